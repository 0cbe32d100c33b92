/* api_http: a lean HTTP/1.1 server for the control API.
 *
 * DESIGN
 * One connection = one read buffer and one write buffer. A read parses as
 * many complete requests as the buffer holds, one at a time: a request is
 * handed to the dispatcher and the next is looked at only once it has been
 * answered (pipelined requests are answered in order). An answer is written
 * at once with one send(); only a short write arms a write event. While a
 * request waits for a deferred answer or an answer waits for the socket,
 * the connection is not read, so a client cannot make it buffer more than
 * one request (head limits plus max_body). The read event stays armed
 * otherwise, so a keep-alive request costs a read, a send and its share of
 * an epoll_wait — no per-request allocation or event change.
 * Request bodies: Content-Length only (411 for chunked); "Expect:
 * 100-continue" gets its interim answer. Faults in the head are handed to
 * the dispatcher as bad_status so that every answer is the API's JSON. */
#include "control/api_http.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define IN_START 4096
#define OUT_START 4096
#define HEAD_MAX (8192 + 32768 + 64)
#define IDLE_S 30
#define TARGET_MAX 8192 /* request line limit */

struct api_http {
    api_http_dispatch fn;
    void *arg;
    size_t max_body;
    struct http1_limits lim;
    struct api_http_conn *conns; /* every open connection (for api_http_free) */
    struct evconnlistener *listener; /* NULL once detached */
    int nconns, max_conns;
    int paused;                  /* accepting is off: nconns reached max_conns */
    /* libevent's common timeout for IDLE_S: re-arming it on every read is a
     * queue append, where a plain timeout is a heap operation. */
    const struct timeval *idle_tv;
};

struct api_http_conn {
    api_http_t *h;
    struct api_http_conn *prev, *next;
    evutil_socket_t fd;          /* -1 once the client is gone */
    struct event *rev, *wev;
    int reading;                 /* rev is added */
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_len, out_off, out_cap;
    size_t consumed;             /* bytes of in the request being answered uses */
    int busy;                    /* a request is with the dispatcher */
    int processing;              /* inside process(): it resumes by itself */
    int closing;                 /* close once out is written */
    int eof;                     /* the client will send nothing more */
    int head_only, keep_alive, minor, sent_continue;
    api_http_req_t req;
    struct http1_request head;
};

static void process(api_http_conn_t *c);

/* ---- connection life ---- */

/* Accepting pauses at max_conns so a flood of idle connections cannot run
 * the process out of descriptors (which the edge shares); the kernel's
 * backlog holds the next ones until a slot frees. */
static void admit(api_http_t *h)
{
    int full = h->max_conns > 0 && h->nconns >= h->max_conns;
    if (!h->listener || full == h->paused)
        return;
    if ((full ? evconnlistener_disable(h->listener) : evconnlistener_enable(h->listener)) != 0)
        return;
    h->paused = full;
    if (full)
        log_warn("api.connections_full", "open=%d max=%d", h->nconns, h->max_conns);
}

static void conn_free(api_http_conn_t *c)
{
    api_http_t *h = c->h;
    h->nconns--;
    admit(h);
    if (c->prev)
        c->prev->next = c->next;
    else if (h->conns == c)
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* The client is gone (or must be dropped). A request still with the
 * dispatcher keeps the struct alive until its reply, which frees it. */
static void conn_gone(api_http_conn_t *c)
{
    if (!c->busy) {
        conn_free(c);
        return;
    }
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    c->rev = c->wev = NULL;
    c->reading = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static void want_read(api_http_conn_t *c, int on)
{
    if (!c->rev || c->reading == on)
        return;
    if (on) {
        if (event_add(c->rev, c->h->idle_tv) == 0)
            c->reading = 1;
    } else {
        event_del(c->rev);
        c->reading = 0;
    }
}

static int reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

/* ---- writing ---- */

/* Writes what it can: 0 when out is empty afterwards, 1 when the rest
 * waits for the socket (on_write resumes), -1 when the connection was freed
 * (a send error, or everything written on a connection that was to close). */
static int flush(api_http_conn_t *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            want_read(c, 0);
            if (event_add(c->wev, c->h->idle_tv) != 0)
                return conn_free(c), -1;
            return 1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        conn_free(c);
        return -1;
    }
    c->out_off = c->out_len = 0;
    if (c->closing) {
        conn_free(c);
        return -1;
    }
    return 0;
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    api_http_conn_t *c = arg;
    if (what & EV_TIMEOUT) {
        conn_free(c);
        return;
    }
    if (flush(c) == 0)
        process(c);
}

static int out_add(api_http_conn_t *c, const void *p, size_t n)
{
    if (reserve(&c->out, &c->out_cap, c->out_len + n) != 0)
        return -1;
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

/* Appends s to buf[*n, cap); 0 when it does not fit. */
static int cat(char *buf, size_t *n, size_t cap, const char *s)
{
    size_t l = strlen(s);
    if (*n + l > cap)
        return 0;
    memcpy(buf + *n, s, l);
    *n += l;
    return 1;
}

static int cat_uint(char *buf, size_t *n, size_t cap, size_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    tmp[--i] = '\0';
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return cat(buf, n, cap, tmp + i);
}

void api_http_reply(api_http_req_t *r, int status, const char *reason, const char *date, const char *content_type,
                    const char *extra, size_t extra_len, const void *body, size_t len, int close_after)
{
    api_http_conn_t *c = r->conn;
    c->busy = 0;
    if (close_after || !c->keep_alive)
        c->closing = 1;
    if (c->fd < 0) {
        if (!c->processing)
            conn_free(c);
        return;
    }
    /* The head is assembled by hand: printf's machinery costs more than
     * the rest of a resolve answer's formatting. */
    char head[512];
    size_t n = 0;
    int ok = cat(head, &n, sizeof(head), c->minor ? "HTTP/1.1 " : "HTTP/1.0 ") &&
             cat_uint(head, &n, sizeof(head), (size_t)status) && cat(head, &n, sizeof(head), " ") &&
             cat(head, &n, sizeof(head), reason) && cat(head, &n, sizeof(head), "\r\nDate: ") &&
             cat(head, &n, sizeof(head), date) && cat(head, &n, sizeof(head), "\r\n");
    if (ok && content_type)
        ok = cat(head, &n, sizeof(head), "Content-Type: ") && cat(head, &n, sizeof(head), content_type) &&
             cat(head, &n, sizeof(head), "\r\n");
    if (ok && status != 204)
        ok = cat(head, &n, sizeof(head), "Content-Length: ") && cat_uint(head, &n, sizeof(head), len) &&
             cat(head, &n, sizeof(head), "\r\n");
    if (ok)
        ok = cat(head, &n, sizeof(head),
                 c->closing ? "Connection: close\r\n" : c->minor == 0 ? "Connection: keep-alive\r\n" : "");
    if (!ok || out_add(c, head, n) != 0 || (extra_len && out_add(c, extra, extra_len) != 0) ||
        out_add(c, "\r\n", 2) != 0 || (!c->head_only && status != 204 && len && out_add(c, body, len) != 0)) {
        /* Out of memory: drop the connection (process() does it when the
         * handler returns, if this is inside its dispatch). */
        c->out_len = c->out_off = 0;
        c->closing = 1;
        if (!c->processing)
            conn_free(c);
        return;
    }
    /* The request's bytes go; pipelined ones move to the front. */
    memmove(c->in, c->in + c->consumed, c->in_len - c->consumed);
    c->in_len -= c->consumed;
    c->consumed = 0;
    /* Answered during dispatch: process() writes it when the handler returns. */
    if (!c->processing && flush(c) == 0)
        process(c);
}

/* ---- reading ---- */

static void dispatch(api_http_conn_t *c, int bad_status, const char *why)
{
    api_http_req_t *r = &c->req;
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->bad_status = bad_status;
    r->bad_why = why;
    if (bad_status) {
        c->closing = 1;
        c->head_only = 0;
        c->minor = 1;
    } else {
        const struct http1_request *hd = &c->head;
        /* The path is NUL-terminated in place: the byte after it is the SP
         * before the version, which nothing reads once the head is parsed. */
        char *path = hd->path.p ? c->in + (hd->path.p - c->in) : NULL, *q = NULL;
        if (path && hd->path.len) {
            path[hd->path.len] = '\0';
            if ((q = memchr(path, '?', hd->path.len)) != NULL)
                *q++ = '\0';
        }
        r->method = hd->method;
        r->path = path && path[0] ? path : "/";
        r->query = q;
        r->head = hd;
        if (hd->content_length > 0) {
            r->body = c->in + hd->head_len;
            r->body_len = (size_t)hd->content_length;
        }
    }
    c->busy = 1;
    c->h->fn(r, c->h->arg);
}

/* Looks at the buffered bytes: answers complete requests one by one. */
static void process(api_http_conn_t *c)
{
    api_http_t *h = c->h;
    c->processing = 1;
    while (!c->busy && !c->closing && c->fd >= 0 && c->out_len == 0 && c->in_len > 0) {
        http1_request_init(&c->head);
        enum http1_result rc = http1_parse_request(c->in, c->in_len, &h->lim, &c->head);
        if (rc == HTTP1_INCOMPLETE)
            break;
        if (rc == HTTP1_ERROR) {
            c->consumed = c->in_len;
            dispatch(c, c->head.error_status ? c->head.error_status : 400, c->head.error);
            goto sent;
        }
        const struct http1_request *hd = &c->head;
        c->minor = hd->minor;
        c->keep_alive = hd->keep_alive;
        c->head_only = hd->method == HTTP1_M_HEAD;
        if (hd->chunked) {
            c->consumed = c->in_len;
            dispatch(c, 411, "chunked request bodies are not accepted; send Content-Length");
            goto sent;
        }
        size_t cl = hd->content_length > 0 ? (size_t)hd->content_length : 0;
        if (cl > h->max_body) {
            c->consumed = c->in_len;
            dispatch(c, 413, "request body too large");
            goto sent;
        }
        size_t need = hd->head_len + cl;
        if (c->in_len < need) {
            if (reserve(&c->in, &c->in_cap, need) != 0) {
                conn_gone(c);
                return;
            }
            if (hd->expect_continue && !c->sent_continue) {
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                c->sent_continue = 1;
                if (out_add(c, cont, sizeof(cont) - 1) != 0) {
                    conn_gone(c);
                    return;
                }
                goto sent;
            }
            break;
        }
        c->sent_continue = 0;
        c->consumed = need;
        dispatch(c, 0, NULL);
        if (c->busy)
            break;
        int f = flush(c);
        if (f < 0)
            return; /* freed */
        if (f > 0)
            goto waiting;
    }
    c->processing = 0;
    if (c->fd < 0 && !c->busy) {
        conn_free(c);
        return;
    }
    if (c->eof && !c->busy && c->out_len == 0) {
        conn_free(c);
        return;
    }
    want_read(c, !c->busy && !c->closing && !c->eof && c->out_len == 0);
    return;
sent: /* an error answer or the interim 100: write it, then wait */
    if (c->busy)
        goto waiting;
    if (flush(c) < 0)
        return;
    if (c->out_len == 0 && !c->closing) {
        c->processing = 0;
        want_read(c, 1);
        return;
    }
waiting:
    c->processing = 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    api_http_conn_t *c = arg;
    if (what & EV_TIMEOUT) {
        if (!c->busy && c->out_len == 0)
            conn_free(c);
        return;
    }
    if (c->in_len == c->in_cap &&
        (c->in_cap >= HEAD_MAX + c->h->max_body || reserve(&c->in, &c->in_cap, c->in_cap * 2) != 0)) {
        conn_free(c); /* cannot happen within the limits process() enforces */
        return;
    }
    ssize_t n = recv(fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        if (n < 0 || c->in_len == 0) {
            conn_gone(c);
            return;
        }
        c->eof = 1; /* answer what was sent, then close */
        c->keep_alive = 0;
    } else {
        c->in_len += (size_t)n;
    }
    process(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    api_http_t *h = arg;
    api_http_conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->h = h;
    c->fd = fd;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    admit(h);
    int one = 1;
    /* Answers are one send each; Nagle would only hold back pipelined ones. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct event_base *base = evconnlistener_get_base(l);
    if (reserve(&c->in, &c->in_cap, IN_START) != 0 || reserve(&c->out, &c->out_cap, OUT_START) != 0 ||
        !(c->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c)) ||
        !(c->wev = event_new(base, fd, EV_WRITE, on_write, c))) {
        conn_free(c);
        return;
    }
    want_read(c, 1);
    if (!c->reading)
        conn_free(c);
}

/* ---- the server ---- */

api_http_t *api_http_new(struct evconnlistener *listener, size_t max_body, int max_conns, api_http_dispatch fn,
                         void *arg)
{
    if (!listener)
        return NULL;
    api_http_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->fn = fn;
    h->arg = arg;
    h->max_body = max_body;
    h->listener = listener;
    h->max_conns = max_conns;
    struct timeval tv = { IDLE_S, 0 };
    if (!(h->idle_tv = event_base_init_common_timeout(evconnlistener_get_base(listener), &tv))) {
        free(h);
        return NULL;
    }
    http1_limits_default(&h->lim);
    h->lim.max_request_line = TARGET_MAX;
    evconnlistener_set_cb(listener, on_accept, h);
    return h;
}

void api_http_set_max_body(api_http_t *h, size_t max_body)
{
    if (h)
        h->max_body = max_body;
}

void api_http_detach(api_http_t *h)
{
    if (h)
        h->listener = NULL;
}

void api_http_free(api_http_t *h)
{
    if (!h)
        return;
    h->listener = NULL;
    while (h->conns) {
        h->conns->busy = 0;
        conn_free(h->conns);
    }
    free(h);
}

const char *api_http_header(const api_http_req_t *r, const char *name, size_t *len)
{
    const struct http1_request *hd = r->head;
    size_t nl = strlen(name);
    for (unsigned i = 0; hd && i < hd->n_headers; i++) {
        const struct http1_header *x = &hd->headers[i];
        if (x->name.len == nl && util_ascii_ieq(x->name.p, name, nl)) {
            *len = x->value.len;
            return x->value.p;
        }
    }
    return NULL;
}
