#include "edge/proxy.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/log.h"
#include "common/util.h"
#include "edge/clock.h"
#include "edge/conn.h"
#include "edge/http1.h"
#include "edge/loader.h"
#include "edge/plain.h"
#include "edge/route.h"
#include "edge/upstream.h"
#include "edge/worker.h"

/* DESIGN
 * One request at a time per connection: pipelined requests wait in c->in
 * (reading stops once the request body is complete) and are answered in
 * order. Bytes move in place: the rewritten upstream head and a chunked
 * request body, re-framed in rq->bout, are the only copies of request
 * bytes; Content-Length bodies go from c->in to the upstream socket, and
 * responses from uc->in to SSL_write. "Approved" counts (bpend, rpend) mark bytes
 * already accounted by the framing (Content-Length or the chunked
 * decoder) but not yet written, so a short write never re-feeds the
 * decoder. Back-pressure is by interest: while the other side cannot take
 * bytes we stop reading, so at most one block per direction is buffered
 * whatever the body size. */

enum {
    RQ_KEEPALIVE = 1 << 0,
    RQ_UPGRADE = 1 << 1,
    RQ_EXPECT = 1 << 2,
    RQ_HTTP10 = 1 << 3,
    RQ_IDEMPOTENT = 1 << 4,
    RQ_SENT_100 = 1 << 5,
    RQ_REUSED = 1 << 6,
    RQ_BODY_DONE = 1 << 7,
    RQ_RESP_HEAD = 1 << 8,  /* response head handed to the client side */
    RQ_RESP_DONE = 1 << 9,  /* response framing complete (rpend may remain) */
    RQ_DECHUNK = 1 << 10,   /* HTTP/1.0 client: strip chunked framing */
    RQ_UP_WBLOCK = 1 << 11, /* upstream socket full */
    RQ_GOT_BYTES = 1 << 12, /* the upstream sent something */
    RQ_BODY_SENT = 1 << 13, /* a body byte went upstream: no replay */
    RQ_LOGGED = 1 << 14,
    RQ_ABANDON = 1 << 15,   /* upstream stopped reading the body */
    RQ_NO_REUSE = 1 << 16,  /* the upstream connection cannot be pooled */
    RQ_HEAD_IN = 1 << 17,   /* the request head still sits at the start of c->in */
    RQ_DISCARD = 1 << 18,   /* answered locally: reading and dropping the body */
    RQ_CONN_TIMEDOUT = 1 << 19, /* an address of this target timed out on connect */
};

typedef struct req {
    struct req *next_free;
    uint32_t flags;
    uint8_t method;
    uint8_t body, rbody;
    uint8_t target, tries;
    int status;
    int64_t body_left, rbody_left, max_body;
    size_t bpend, rpend;
    uint64_t body_seen, bytes_out;
    struct http1_chunked ch, rch;
    iobuf_t head;
    iobuf_t bout;               /* a chunked request body, re-framed (rechunk) */
    uint32_t head_sent;
    uint32_t req_head_len;      /* client head bytes (while RQ_HEAD_IN) */
    uint32_t host_dot;          /* offset of a trailing dot in Host's name (put_host), 0: none */
    uint8_t req_body;           /* client framing (while RQ_HEAD_IN) */
    int64_t t_start, t_sent, t_head;
    route_t *route;
    char method_name[16];
    char path[256];
    char rid[72];
    char host[CH_SNI_MAX + 1];
    uint8_t rid_len, host_len;
    uint16_t path_len;
} req_t;

#define REQ_FREE_MAX 256
/* Largest request body a local answer reads and drops to keep the
 * connection; a bigger one closes it (cheaper than draining it). */
#define DISCARD_MAX 65536

static void u2c(conn_t *c);
static void next_request(conn_t *c);
static void local_error(conn_t *c, int status, const char *what);
static void start_target(conn_t *c, int idx, int fresh);
static int approve_body(conn_t *c);
static void discard_body(conn_t *c);

/* ---- small helpers ---- */

static req_t *req_alloc(edge_worker_t *w)
{
    req_t *rq = w->req_free;
    if (rq) {
        w->req_free = rq->next_free;
        w->n_req_free--;
    } else if (!(rq = malloc(sizeof(*rq)))) {
        return NULL;
    }
    memset(rq, 0, offsetof(req_t, method_name));
    rq->method_name[0] = rq->path[0] = rq->rid[0] = rq->host[0] = '\0';
    rq->rid_len = rq->host_len = 0;
    rq->path_len = 0;
    return rq;
}

static void req_free(edge_worker_t *w, req_t *rq)
{
    iobuf_drop(&rq->head, &w->pool);
    iobuf_drop(&rq->bout, &w->pool);
    route_unref(rq->route);
    rq->route = NULL;
    if (w->n_req_free < REQ_FREE_MAX) {
        rq->next_free = w->req_free;
        w->req_free = rq;
        w->n_req_free++;
    } else {
        free(rq);
    }
}

/* Where approved body bytes wait: c->in for Content-Length, rq->bout for
 * a chunked body (re-framed). */
static iobuf_t *body_buf(conn_t *c)
{
    return c->req->body == HTTP1_BODY_CHUNKED ? &c->req->bout : &c->in;
}

void proxy_free_lists(edge_worker_t *w)
{
    req_t *rq = w->req_free;
    while (rq) {
        req_t *nx = rq->next_free;
        free(rq);
        rq = nx;
    }
    w->req_free = NULL;
    w->n_req_free = 0;
}


static const char HEX[] = "0123456789abcdef";

static void new_rid(edge_worker_t *w, req_t *rq)
{
    uint64_t n = ++w->rid_counter;
    memcpy(rq->rid, w->rid_prefix, 16);
    for (int i = 15; i >= 0; i--, n >>= 4)
        rq->rid[16 + i] = HEX[n & 15];
    rq->rid[32] = '\0';
    rq->rid_len = 32;
}

/* A client-supplied request id is kept when it is a short token. */
static int rid_ok(const struct http1_span *v)
{
    if (v->len == 0 || v->len > 64)
        return 0;
    for (size_t i = 0; i < v->len; i++) {
        char ch = v->p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.' || ch == ':'))
            return 0;
    }
    return 1;
}

static int name_is(const struct http1_span *n, const char *lower, size_t len)
{
    return n->len == len && util_ascii_ieq(n->p, lower, len);
}

/* name_is with '_' read as '-': CGI, WSGI and Rack fold both into one
 * key, so "X_Forwarded_For" would reach such an upstream as a second
 * copy of a header Hee sets. */
static int name_is_folded(const struct http1_span *n, const char *lower, size_t len)
{
    if (n->len != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = n->p[i] == '_' ? '-' : n->p[i];
        if ((ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch) != lower[i])
            return 0;
    }
    return 1;
}

static int all_digits(const struct http1_span *v)
{
    for (size_t i = 0; i < v->len; i++)
        if (v->p[i] < '0' || v->p[i] > '9')
            return 0;
    return v->len > 0;
}

/* Request body bytes not read or not yet passed on. */
static int body_unsent(const req_t *rq)
{
    return !(rq->flags & RQ_BODY_DONE) || rq->bpend;
}

static int64_t min_limit(int64_t a, int64_t b)
{
    if (a <= 0)
        return b;
    if (b <= 0)
        return a;
    return a < b ? a : b;
}

/* ---- access log and counters ---- */

static void account(conn_t *c, req_t *rq)
{
    edge_worker_t *w = c->w;
    if (rq->flags & RQ_LOGGED)
        return;
    rq->flags |= RQ_LOGGED;
    int s = rq->status;
    worker_count(w, s >= 500 ? WM_5XX : s >= 400 ? WM_4XX : s >= 300 ? WM_3XX : s >= 200 ? WM_2XX : WM_5XX);
    int64_t now = clock_now_us();
    metrics_observe_us(w->hub->metrics, H_HTTP_REQUEST, now - rq->t_start);
    if (!log_access_enabled())
        return;
    char qpath[300];
    const char *up = rq->route && rq->route->n_up > rq->target ? rq->route->up[rq->target].key : "-";
    log_access("host=%s method=%s path=%s status=%d bytes=%" PRIu64 " upstream=%s rid=%s peer=%s"
               " t_total_us=%" PRId64 " t_upstream_us=%" PRId64,
               rq->host_len ? rq->host : "-", rq->method_name[0] ? rq->method_name : "-",
               log_quote(qpath, sizeof(qpath), rq->path_len ? rq->path : "-"), s, rq->bytes_out,
               up[0] ? up : "-", rq->rid, c->ip, now - rq->t_start,
               rq->t_head && rq->t_sent ? rq->t_head - rq->t_sent : (int64_t)0);
}

/* ---- local replies ---- */

void proxy_local_reply(conn_t *c, int status, const char *headers, const char *body, size_t body_len,
                       int close)
{
    edge_worker_t *w = c->w;
    req_t *rq = c->req;
    if (!rq || (rq->flags & RQ_RESP_HEAD)) {
        conn_close(c); /* a response already started: only closing tells the client */
        return;
    }
    if (c->up) {
        uconn_close(c->up);
        c->up = NULL;
    }
    if (rq->flags & RQ_HEAD_IN) {
        /* Answered without forwarding: drop the head. A body we do not
         * read makes the connection unusable; a small framed one (plain
         * port answers) is read and dropped after the answer instead. */
        iobuf_consume(&c->in, rq->req_head_len);
        rq->flags &= ~(uint32_t)RQ_HEAD_IN;
        if (rq->req_body == HTTP1_BODY_NONE || (rq->req_body == HTTP1_BODY_LENGTH && rq->body_left == 0))
            rq->flags |= RQ_BODY_DONE;
        else if (!close && (rq->flags & RQ_KEEPALIVE) && !(rq->flags & RQ_EXPECT) && !w->draining &&
                 (rq->req_body == HTTP1_BODY_CHUNKED || rq->body_left <= DISCARD_MAX))
            rq->flags |= RQ_DISCARD; /* a small framed body: drop it, keep the connection.
                                      * Not after Expect: the client may never send it. */
    }
    if (!(rq->flags & RQ_KEEPALIVE))
        close = 1; /* HTTP/1.0 without keep-alive, or Connection: close */
    if (!(rq->flags & (RQ_BODY_DONE | RQ_DISCARD))) {
        close = 1; /* unread body bytes: the connection cannot be reused */
        c->flags |= CF_LINGER;
    }
    if (w->draining)
        close = 1;
    /* Sized from its parts: a port-80 redirect's Location carries the
     * whole target (plain.c allows LOCATION_MAX). */
    const char *extra = headers ? headers : "";
    size_t need = 200 + strlen(extra) + strlen(w->wc.rid_out) + rq->rid_len;
    long room = iobuf_reserve(&c->out, &w->pool, need, c->out.len + need + body_len + IOBUF_BLOCK);
    int n = room < (long)need ? -1 : snprintf(iobuf_tail(&c->out), (size_t)room,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\n%s: %s\r\n%s%s\r\n",
                     status, http1_reason(status), body_len, w->wc.rid_out, rq->rid, extra,
                     close ? "Connection: close\r\n"
                     : (rq->flags & RQ_HTTP10) ? "Connection: keep-alive\r\n" : "");
    if (n < 0 || n >= room) {
        conn_close(c);
        return;
    }
    c->out.len += (uint32_t)n;
    /* A HEAD answer has the same head and no content (RFC 9110 9.3.2). */
    if (rq->method == HTTP1_M_HEAD)
        body_len = 0;
    if (body_len && iobuf_append(&c->out, &w->pool, body, body_len, c->out.len + body_len + IOBUF_BLOCK) != 0) {
        conn_close(c);
        return;
    }
    rq->status = status;
    rq->bytes_out += (uint64_t)n + body_len;
    rq->flags |= RQ_RESP_HEAD | RQ_RESP_DONE;
    if (close)
        c->flags |= CF_CLOSE;
    account(c, rq);
    if (rq->flags & RQ_DISCARD) {
        c->state = CS_REQ;
        rq->body = rq->req_body;
        rq->max_body = DISCARD_MAX;
        if (rq->body == HTTP1_BODY_CHUNKED)
            http1_chunked_init(&rq->ch, NULL);
        if (conn_flush(c) < 0) {
            conn_close(c);
            return;
        }
        conn_deadline(c, w->cfg->header_timeout_ms);
        discard_body(c);
        return;
    }
    req_free(w, rq);
    c->req = NULL;
    next_request(c);
}

/* Drops the body of a request answered locally, then reads the next
 * request. The framing was checked by the parser; the chunked decoder
 * and DISCARD_MAX bound what is read. */
static void discard_body(conn_t *c)
{
    req_t *rq = c->req;
    for (int i = 0; i < 16; i++) {
        if (approve_body(c) != 0)
            return; /* answered or closed */
        iobuf_consume(body_buf(c), rq->bpend);
        rq->bpend = 0;
        if (rq->flags & RQ_BODY_DONE) {
            req_free(c->w, rq);
            c->req = NULL;
            next_request(c);
            return;
        }
        long n = conn_read(c);
        if (n == -2) {
            conn_want_read(c, 1);
            return;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
    }
    conn_kick(c);
}

static void local_error(conn_t *c, int status, const char *what)
{
    req_t *rq = c->req;
    char body[512];
    int n = snprintf(body, sizeof(body), "%d %s: %s\nrequest id: %s\n", status, http1_reason(status), what,
                     rq ? rq->rid : "-");
    proxy_local_reply(c, status, NULL, body, n > 0 ? (size_t)n : 0, 1);
}

/* ---- request heads ---- */

/* Only a WebSocket upgrade is passed on: after a 101 the connection is a
 * raw tunnel that skips every per-request check and header Hee sets, so
 * an h2c (or any other) upgrade is forwarded as a plain request, as
 * Envoy does. Two Upgrade lines are ambiguous and get the same. */
static int websocket_upgrade(const struct http1_request *hr)
{
    const struct http1_header *u = NULL;
    if (!hr->upgrade)
        return 0;
    for (unsigned i = 0; i < hr->n_headers; i++) {
        if (hr->headers[i].id != HTTP1_H_UPGRADE)
            continue;
        if (u)
            return 0;
        u = &hr->headers[i];
    }
    return u && name_is(&u->value, "websocket", 9);
}

/* A 101 must name the protocol asked for (RFC 9110 7.8), the only one
 * Hee asks for. */
static int switched_to_websocket(const struct http1_response *resp)
{
    int n = 0, ws = 0;
    for (unsigned i = 0; i < resp->n_headers; i++) {
        const struct http1_header *h = &resp->headers[i];
        if (h->id == HTTP1_H_UPGRADE) {
            n++;
            ws = name_is(&h->value, "websocket", 9);
        }
    }
    return n == 1 && ws;
}

static void fill_request(conn_t *c, req_t *rq, const struct http1_request *hr)
{
    edge_worker_t *w = c->w;
    rq->t_start = clock_now_us();
    rq->method = (uint8_t)hr->method;
    rq->flags |= RQ_HEAD_IN;
    rq->req_head_len = (uint32_t)hr->head_len;
    rq->req_body = (uint8_t)hr->body;
    size_t ml = hr->method_name.len < sizeof(rq->method_name) - 1 ? hr->method_name.len
                                                                    : sizeof(rq->method_name) - 1;
    memcpy(rq->method_name, hr->method_name.p, ml);
    rq->method_name[ml] = '\0';
    /* The query string may carry secrets: the log gets the path only. */
    size_t pl = 0;
    while (pl < hr->path.len && hr->path.p[pl] != '?')
        pl++;
    if (pl > sizeof(rq->path) - 1)
        pl = sizeof(rq->path) - 1;
    memcpy(rq->path, hr->path.p, pl);
    rq->path[pl] = '\0';
    rq->path_len = (uint16_t)pl;
    if (hr->keep_alive) /* 1.1 without close, 1.0 with keep-alive */
        rq->flags |= RQ_KEEPALIVE;
    if (hr->body == HTTP1_BODY_LENGTH)
        rq->body_left = hr->content_length;
    if (hr->minor == 0)
        rq->flags |= RQ_HTTP10;
    if (websocket_upgrade(hr))
        rq->flags |= RQ_UPGRADE;
    if (hr->expect_continue)
        rq->flags |= RQ_EXPECT;
    switch (hr->method) {
    case HTTP1_M_GET: case HTTP1_M_HEAD: case HTTP1_M_PUT: case HTTP1_M_DELETE:
    case HTTP1_M_OPTIONS: case HTTP1_M_TRACE:
        rq->flags |= RQ_IDEMPOTENT;
        break;
    default:
        break;
    }
    for (unsigned i = 0; i < hr->n_headers; i++) {
        const struct http1_header *h = &hr->headers[i];
        if (h->id == HTTP1_H_OTHER && !h->hop && name_is(&h->name, w->wc.rid_name, w->wc.rid_len) &&
            rid_ok(&h->value)) {
            memcpy(rq->rid, h->value.p, h->value.len);
            rq->rid[h->value.len] = '\0';
            rq->rid_len = (uint8_t)h->value.len;
            break;
        }
    }
    if (!rq->rid_len)
        new_rid(w, rq);
    if (hr->host.p) {
        const char *p = hr->host.p;
        size_t n = hr->host.len;
        if (p[0] == '[') {
            const char *rb = memchr(p, ']', n);
            n = rb ? (size_t)(rb - p) + 1 : n;
        } else {
            const char *colon = memchr(p, ':', n);
            n = colon ? (size_t)(colon - p) : n;
            /* "shop.example." is the same name written absolute (RFC 1034);
             * SNI never carries the dot, and nginx drops it as well. */
            if (n > 1 && p[n - 1] == '.')
                rq->host_dot = (uint32_t)--n;
        }
        if (n > CH_SNI_MAX)
            n = CH_SNI_MAX;
        for (size_t i = 0; i < n; i++)
            rq->host[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (char)(p[i] + 32) : p[i];
        rq->host[n] = '\0';
        rq->host_len = (uint8_t)n;
    }
}

static void bad_request(conn_t *c, int status, const char *why)
{
    edge_worker_t *w = c->w;
    metrics_inc(w->hub->metrics, M_HTTP_BAD_REQUEST);
    worker_count(w, WM_REQUESTS);
    if (!c->req) {
        if (!(c->req = req_alloc(w))) {
            conn_close(c);
            return;
        }
        c->req->t_start = clock_now_us();
        new_rid(w, c->req);
    }
    c->state = CS_REQ;
    c->req->flags |= RQ_BODY_DONE;
    c->flags |= CF_LINGER; /* whatever followed the bad bytes is unread */
    log_debug("http.bad_request", "peer=%s status=%d reason=\"%s\" rid=%s", c->ip, status, why, c->req->rid);
    char body[256];
    int n = snprintf(body, sizeof(body), "%d %s: %s\nrequest id: %s\n", status, http1_reason(status), why,
                     c->req->rid);
    proxy_local_reply(c, status, NULL, body, n > 0 ? (size_t)n : 0, 1);
}

/* Appends to the head being built; the caller sized the buffer. */
struct out {
    char *p, *end;
    int overflow;
};

static void put(struct out *o, const void *s, size_t n)
{
    if ((size_t)(o->end - o->p) < n) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p, s, n);
    o->p += n;
}

#define PUTS(o, lit) put(o, lit, sizeof(lit) - 1)

static void put_span(struct out *o, const struct http1_span *s)
{
    put(o, s->p, s->len);
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_header(struct out *o, const struct http1_header *h)
{
    put_span(o, &h->name);
    PUTS(o, ": ");
    put_span(o, &h->value);
    PUTS(o, "\r\n");
}

static const char *signature(edge_worker_t *w, const route_t *r, size_t *len)
{
    /* Whole seconds: the coarse clock (no hardware clock read) is enough. */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME_COARSE, &now);
    int64_t t = now.tv_sec;
    __typeof__(w->sigcache[0]) *slot = &w->sigcache[r->serial & 63];
    if (slot->serial == r->serial && slot->t == t) {
        *len = slot->len;
        return slot->v;
    }
    char ts[24];
    int tl = snprintf(ts, sizeof(ts), "%" PRId64, t);
    const void *pieces[7] = { ts, ".", r->host, ".", r->slug, ".", r->meta_b64 ? r->meta_b64 : "" };
    size_t lens[7] = { (size_t)tl, 1, r->host_len, 1, r->slug_len, 1, r->meta_b64 ? r->meta_len : 0 };
    unsigned char mac[CRYPTO_SHA256_LEN];
    if (crypto_hmac_sha256_v(r->hmac_key, r->hmac_len, pieces, lens, 7, mac) != 0)
        return NULL;
    char hex[2 * CRYPTO_SHA256_LEN + 1];
    util_hex(hex, mac, sizeof(mac));
    int n = snprintf(slot->v, sizeof(slot->v), "t=%s,v1=%s", ts, hex);
    slot->serial = r->serial;
    slot->t = t;
    slot->len = (uint8_t)n;
    *len = (size_t)n;
    return slot->v;
}

/* What copying the client's headers found, for the headers Hee adds. */
struct fwd {
    int trusted, have_rid, have_xfp, have_xfh;
};

static void put_pair(struct out *o, const char *name, const void *v, size_t n)
{
    put_str(o, name);
    PUTS(o, ": ");
    put(o, v, n);
    PUTS(o, "\r\n");
}

/* The client's Host as sent, less the trailing dot of an absolute name
 * ("shop.example.:8443" → "shop.example:8443", dot at offset `dot` as
 * fill_request found it): Hee treats both spellings as the registered
 * name, and so should an origin that routes by Host. */
static void put_host(struct out *o, const struct http1_span *h, size_t dot)
{
    if (!dot) {
        put_pair(o, "Host", h->p, h->len);
        return;
    }
    PUTS(o, "Host: ");
    put(o, h->p, dot);
    put(o, h->p + dot + 1, h->len - dot - 1);
    PUTS(o, "\r\n");
}

/* A name Hee sets itself, exactly or once '_' reads as '-'. */
static int owned_name(const struct http1_span *n, const worker_conf_t *wc)
{
    static const struct {
        const char *name;
        size_t len;
    } fixed[] = { { "x-forwarded-for", 15 }, { "x-forwarded-proto", 17 }, { "x-forwarded-host", 16 },
                  { "forwarded", 9 } };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        if (name_is_folded(n, fixed[i].name, fixed[i].len))
            return 1;
    return name_is_folded(n, wc->tenant_name, wc->tenant_len) || name_is_folded(n, wc->meta_name, wc->meta_len) ||
           name_is_folded(n, wc->sig_name, wc->sig_len) || name_is_folded(n, wc->rid_name, wc->rid_len);
}

/* Copies end-to-end headers, dropping hop-by-hop ones (the parser marked
 * them), framing/Host/Expect (rewritten) and Hee's own headers, also in
 * their '_' spellings. Inbound forwarding headers survive only from
 * trusted proxies: X-Forwarded-Proto/-Host here, X-Forwarded-For and
 * Forwarded in add_forwarding; a valid X-Request-Id is kept (the first). */
static void copy_headers(struct out *o, const struct http1_request *hr, const worker_conf_t *wc, struct fwd *f)
{
    for (unsigned i = 0; i < hr->n_headers; i++) {
        const struct http1_header *h = &hr->headers[i];
        const struct http1_span *n = &h->name;
        if (h->hop || h->id != HTTP1_H_OTHER)
            continue;
        if (name_is(n, wc->rid_name, wc->rid_len)) {
            if (rid_ok(&h->value) && !f->have_rid) {
                f->have_rid = 1;
                put_header(o, h);
            }
            continue;
        }
        if (f->trusted && (name_is(n, "x-forwarded-proto", 17) || name_is(n, "x-forwarded-host", 16))) {
            put_header(o, h);
            *(n->len == 17 ? &f->have_xfp : &f->have_xfh) = 1;
            continue;
        }
        if (!owned_name(n, wc))
            put_header(o, h);
    }
}

/* A trusted proxy's values of one forwarding header, every line of it in
 * order, each followed by ", " (empty ones skipped). */
static void put_inbound(struct out *o, const struct http1_request *hr, const char *name, size_t len)
{
    for (unsigned i = 0; i < hr->n_headers; i++) {
        const struct http1_header *h = &hr->headers[i];
        if (h->id == HTTP1_H_OTHER && !h->hop && h->value.len && name_is(&h->name, name, len)) {
            put_span(o, &h->value);
            PUTS(o, ", ");
        }
    }
}

/* X-Forwarded-For/-Proto/-Host and Forwarded (RFC 7239), appended to a
 * trusted proxy's values. */
static void add_forwarding(struct out *o, const conn_t *c, const struct http1_request *hr, const route_t *r,
                           const struct fwd *f)
{
    int tls = c->kind == CONN_TLS, v6 = c->peer.ss_family == AF_INET6;
    PUTS(o, "X-Forwarded-For: ");
    if (f->trusted)
        put_inbound(o, hr, "x-forwarded-for", 15);
    put_str(o, c->ip);
    PUTS(o, "\r\n");
    if (!f->have_xfp)
        put_str(o, tls ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
    if (!f->have_xfh)
        put_pair(o, "X-Forwarded-Host", r->host, r->host_len);
    PUTS(o, "Forwarded: ");
    if (f->trusted)
        put_inbound(o, hr, "forwarded", 9);
    put_str(o, v6 ? "for=\"[" : "for=");
    put_str(o, c->ip);
    put_str(o, v6 ? "]\";host=" : ";host=");
    put(o, r->host, r->host_len);
    put_str(o, tls ? ";proto=https\r\n" : ";proto=http\r\n");
}

/* The upstream request head: what the client sent minus hop-by-hop and
 * Hee-owned headers, plus forwarding, request id, tenant, metadata and
 * signature headers (formats in proxy.h). */
static int build_head(conn_t *c, const struct http1_request *hr, const route_t *r)
{
    edge_worker_t *w = c->w;
    const worker_conf_t *wc = &w->wc;
    req_t *rq = c->req;
    size_t need = hr->head_len + 1024 + r->meta_len + r->slug_len + 3 * r->host_len;
    long room = iobuf_reserve(&rq->head, &w->pool, need, need + IOBUF_BLOCK);
    if (room < 0 || (size_t)room < need)
        return -1;
    struct out o = { iobuf_tail(&rq->head), iobuf_tail(&rq->head) + room, 0 };
    struct fwd f = { .trusted = wc->n_trusted > 0 && worker_trusted(w, &c->peer) };

    put_span(&o, &hr->method_name);
    PUTS(&o, " ");
    if (hr->path.len)
        put_span(&o, &hr->path);
    else if (hr->method == HTTP1_M_OPTIONS)
        PUTS(&o, "*"); /* RFC 9112 3.2.4: OPTIONS http://host is OPTIONS * */
    else
        PUTS(&o, "/");
    PUTS(&o, " HTTP/1.1\r\n");
    if (hr->host.p)
        put_host(&o, &hr->host, rq->host_dot);
    else
        put_pair(&o, "Host", r->host, r->host_len);
    copy_headers(&o, hr, wc, &f);
    if (hr->body == HTTP1_BODY_LENGTH) {
        char cl[24];
        int n = snprintf(cl, sizeof(cl), "%" PRId64, hr->content_length);
        put_pair(&o, "Content-Length", cl, (size_t)n);
    } else if (hr->body == HTTP1_BODY_CHUNKED) {
        PUTS(&o, "Transfer-Encoding: chunked\r\n");
    }
    if (rq->flags & RQ_UPGRADE)
        PUTS(&o, "Connection: upgrade\r\nUpgrade: websocket\r\n");
    add_forwarding(&o, c, hr, r, &f);
    if (!f.have_rid)
        put_pair(&o, wc->rid_out, rq->rid, rq->rid_len);
    put_pair(&o, wc->tenant_out, r->slug, r->slug_len);
    if (r->meta_b64)
        put_pair(&o, wc->meta_out, r->meta_b64, r->meta_len);
    size_t sl = 0;
    const char *sig = signature(w, r, &sl);
    if (!sig)
        return -1;
    put_pair(&o, wc->sig_out, sig, sl);
    PUTS(&o, "\r\n");
    if (o.overflow)
        return -1;
    rq->head.len += (uint32_t)(o.p - iobuf_tail(&rq->head));
    return 0;
}

/* ---- client -> upstream ---- */

static int can_read_body(const conn_t *c)
{
    const req_t *rq = c->req;
    return rq && c->up && c->up->state == UC_READY &&
           !(rq->flags & (RQ_BODY_DONE | RQ_UP_WBLOCK | RQ_ABANDON)) && rq->bpend == 0 &&
           c->in.len < IOBUF_BLOCK;
}

/* Interest is dropped lazily, by the read handler when an event finds
 * nothing to do: in the common case (no pipelining, no body) it stays on
 * across requests and costs no epoll_ctl. */
static void set_client_read(conn_t *c)
{
    if (can_read_body(c)) {
        conn_want_read(c, 1);
        /* Read-ahead may hold the next TLS record already: epoll would
         * not tell us. */
        if (conn_pending(c))
            event_active(&c->rev, EV_READ, 0);
    }
}

/* Appends "<hex>\r\n<data>\r\n" at o; the caller reserved the room
 * (at most 16 hex digits). */
static char *put_chunk(char *o, const char *p, size_t n)
{
    o += snprintf(o, 19, "%zx\r\n", n);
    memcpy(o, p, n);
    memcpy(o + n, "\r\n", 2);
    return o + n + 2;
}

/* Decodes the chunked body bytes in c->in into rq->bout as Hee's own
 * minimal framing: each run of payload as one chunk, then "0\r\n\r\n".
 * Sizes with leading zeros, extensions and the trailer section stop here:
 * an origin that reads them differently cannot be shown another message
 * boundary on a pooled connection other clients share, and trailers,
 * which an origin merging them into the header section would take for
 * X-Forwarded-For or tenant headers, never reach it (RFC 9112 7.1.2 lets a
 * recipient drop them). A run needs at most 20 bytes of framing more
 * than the raw bytes carried, and the end 5, so c->in.len + 32 is room
 * for all of it. 1 ok, 0 a framing error, -1 out of memory. */
static int rechunk(conn_t *c)
{
    req_t *rq = c->req;
    const char *in = iobuf_head(&c->in);
    size_t avail = c->in.len, off = 0;
    long room = iobuf_reserve(&rq->bout, &c->w->pool, avail + 32, avail + 32 + IOBUF_BLOCK);
    if (room < (long)(avail + 32))
        return -1;
    char *o = iobuf_tail(&rq->bout), *start = o;
    while (off < avail) {
        /* Holds by the bound above; checked so no input can break it. */
        if ((size_t)room - (size_t)(o - start) < avail - off + 25)
            break;
        size_t used = 0;
        struct http1_span d = { 0 };
        enum http1_result r = http1_chunked_feed(&rq->ch, in + off, avail - off, &used, &d);
        off += used;
        if (r == HTTP1_ERROR)
            return 0;
        if (d.len)
            o = put_chunk(o, d.p, d.len);
        if (r == HTTP1_OK) {
            memcpy(o, "0\r\n\r\n", 5);
            o += 5;
            rq->flags |= RQ_BODY_DONE;
            break;
        }
        if (used == 0)
            break;
    }
    rq->bout.len += (uint32_t)(o - start);
    iobuf_consume(&c->in, off);
    return 1;
}

/* Accounts body bytes waiting in c->in (re-framing a chunked body into
 * rq->bout). -1 on a framing error (answered). */
static int approve_body(conn_t *c)
{
    req_t *rq = c->req;
    size_t avail = c->in.len;
    if (avail == 0 || rq->bpend || (rq->flags & RQ_BODY_DONE))
        return 0;
    if (rq->body == HTTP1_BODY_LENGTH) {
        size_t n = (int64_t)avail < rq->body_left ? avail : (size_t)rq->body_left;
        rq->body_left -= (int64_t)n;
        rq->bpend = n;
        if (rq->body_left == 0)
            rq->flags |= RQ_BODY_DONE;
    } else {
        /* Errors are answered even when part of the body went out: the
         * origin connection is dropped with it, and only a response that
         * started already leaves nothing but closing (proxy_local_reply). */
        int r = rechunk(c);
        if (r <= 0) {
            if (r == 0)
                metrics_inc(c->w->hub->metrics, M_HTTP_BAD_REQUEST);
            local_error(c, r == 0 ? 400 : 500, r < 0 ? "out of memory"
                                               : rq->ch.error ? rq->ch.error : "bad chunked body");
            return -1;
        }
        if (rq->max_body && (int64_t)rq->ch.payload > rq->max_body) {
            local_error(c, 413, "request body too large");
            return -1;
        }
        rq->bpend = rq->bout.len;
    }
    rq->body_seen += rq->bpend;
    return 0;
}

/* The upstream head is kept until a body byte or a response byte shows it
 * can no longer be replayed; then its block goes back to the pool. */
static void drop_head(edge_worker_t *w, req_t *rq)
{
    if (rq->head_sent < rq->head.len)
        return; /* still being written */
    iobuf_drop(&rq->head, &w->pool);
    rq->head_sent = 0;
}

static int retry_possible(const req_t *rq)
{
    return (rq->flags & RQ_REUSED) && (rq->flags & RQ_IDEMPOTENT) && !(rq->flags & RQ_GOT_BYTES) &&
           !(rq->flags & RQ_BODY_SENT) && rq->tries < 2;
}

/* The upstream connection failed before any response byte. */
static void upstream_lost(conn_t *c, const char *what)
{
    req_t *rq = c->req;
    if (retry_possible(rq)) {
        /* A pooled connection the origin had just closed: replay once on
         * a fresh one (idempotent, nothing came back, head still held). */
        rq->tries++;
        uconn_close(c->up);
        c->up = NULL;
        rq->head_sent = 0;
        start_target(c, rq->target, 1);
        return;
    }
    metrics_inc(c->w->hub->metrics, M_UPSTREAM_FAIL);
    if (rq->flags & RQ_RESP_HEAD) {
        conn_close(c);
        return;
    }
    local_error(c, 502, what);
}

/* Writes the head remainder and approved body bytes. 0, or -1 when c or
 * the request is gone. */
static int c2u(conn_t *c)
{
    req_t *rq = c->req;
    uconn_t *uc = c->up;
    for (;;) {
        if (approve_body(c) != 0)
            return -1;
        struct iovec iov[2];
        int n = 0;
        size_t hrem = rq->head.len - rq->head_sent;
        /* A chunked head waits for the first body bytes to pass the
         * decoder, so a malformed first chunk reaches the origin as
         * nothing at all. */
        if (rq->body == HTTP1_BODY_CHUNKED && rq->head_sent == 0 && rq->bpend == 0 &&
            !(rq->flags & RQ_BODY_DONE))
            hrem = 0;
        if (hrem) {
            iov[n].iov_base = iobuf_head(&rq->head) + rq->head_sent;
            iov[n++].iov_len = hrem;
        }
        if (rq->bpend) {
            iov[n].iov_base = iobuf_head(body_buf(c));
            iov[n++].iov_len = rq->bpend;
        }
        if (n == 0)
            break;
        ssize_t wr = uconn_writev(uc, iov, n);
        if (wr < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                rq->flags |= RQ_UP_WBLOCK;
                uconn_want_write(uc, 1);
                set_client_read(c);
                return 0;
            }
            if (rq->flags & RQ_RESP_HEAD) {
                /* The origin answered and stopped reading: finish its
                 * response, then close (the client's stream is out of sync). */
                rq->flags |= RQ_ABANDON;
                c->flags |= CF_CLOSE;
                uconn_want_write(uc, 0);
                set_client_read(c);
                return 0;
            }
            log_debug("proxy.upstream_write_failed", "errno=%d state=%d", errno, uc->state);
            upstream_lost(c, "upstream write failed");
            return -1;
        }
        size_t done = (size_t)wr;
        if (hrem) {
            size_t h = done < hrem ? done : hrem;
            rq->head_sent += (uint32_t)h;
            done -= h;
            if (rq->head_sent == rq->head.len && !rq->t_sent)
                rq->t_sent = clock_now_us();
        }
        if (done) {
            iobuf_consume(body_buf(c), done);
            rq->bpend -= done;
            rq->flags |= RQ_BODY_SENT;
        }
    }
    rq->flags &= ~(uint32_t)RQ_UP_WBLOCK;
    uconn_want_write(uc, 0);
    if ((rq->flags & RQ_BODY_SENT) && rq->head.data)
        drop_head(c->w, rq); /* no replay once body bytes left */
    iobuf_release(&c->in, &c->w->pool);
    iobuf_release(&rq->bout, &c->w->pool);
    set_client_read(c);
    return 0;
}

/* Readable with nothing left to read for this request: a pipelined
 * request (read once this one is answered), or the client gone — then
 * the origin's work is dropped now, not after upstream_timeout (as
 * nginx's proxy_ignore_client_abort off; logged as 499). */
static int client_gone(conn_t *c)
{
    if (!c->req || !(c->req->flags & RQ_BODY_DONE) || c->in.len || conn_pending(c))
        return 0;
    int p = util_socket_peek(c->fd);
    return p == 0 || p == -1;
}

static void client_body(conn_t *c)
{
    for (int i = 0; i < 8; i++) {
        if (!can_read_body(c)) {
            if (client_gone(c))
                conn_close(c);
            else
                conn_want_read(c, 0);
            return;
        }
        long n = conn_read(c);
        if (n == -2)
            return;
        if (n <= 0) {
            conn_close(c); /* the client gave up mid-body */
            return;
        }
        conn_deadline(c, c->w->cfg->upstream_timeout_ms);
        if (c2u(c) != 0)
            return;
    }
    conn_kick(c);
}

static void send_phase(conn_t *c)
{
    req_t *rq = c->req;
    uconn_t *uc = c->up;
    uconn_want_write(uc, 0);
    conn_deadline(c, c->w->cfg->upstream_timeout_ms);
    if ((rq->flags & RQ_EXPECT) && !(rq->flags & (RQ_SENT_100 | RQ_BODY_DONE)) && c->in.len == 0) {
        /* We answer 100-continue ourselves once an origin connection is
         * ready (Expect is not forwarded), so the body streams at once. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (iobuf_append(&c->out, &c->w->pool, cont, sizeof(cont) - 1, IOBUF_BLOCK * 2) == 0) {
            rq->flags |= RQ_SENT_100;
            if (conn_flush(c) < 0) {
                conn_close(c);
                return;
            }
        }
    }
    if (c2u(c) != 0)
        return;
    uconn_want_read(uc, 1);
}

static void connecting(conn_t *c, uconn_t *uc);
static void mark_down(conn_t *c, int err);
static int skip_down_primary(conn_t *c, upstream_t *u);

static void connect_failed(conn_t *c, int err)
{
    edge_worker_t *w = c->w;
    req_t *rq = c->req;
    const route_t *r = rq->route;
    if (err == ETIMEDOUT)
        rq->flags |= RQ_CONN_TIMEDOUT; /* the 502 says so even if a later address refused */
    if (c->up && c->up->state == UC_CONNECTING) {
        /* The TCP connect to one address of the name failed or timed out:
         * its next address first (nothing was sent), then the fallback. */
        log_info("proxy.upstream_address_failed", "host=%s upstream=%s error=\"%s\" rid=%s", rq->host,
                 c->up->target->addr.key, strerror(err), rq->rid);
        c->up->err = err;
        uconn_t *uc = uconn_connect_next(c->up);
        c->up = NULL;
        if (uc) {
            connecting(c, uc);
            return;
        }
        err = errno;
    }
    metrics_inc(w->hub->metrics, M_UPSTREAM_FAIL);
    log_warn("proxy.upstream_connect_failed", "host=%s upstream=%s error=\"%s\" rid=%s", rq->host,
             r->n_up > rq->target ? r->up[rq->target].key : "-", strerror(err), rq->rid);
    if (c->up) {
        uconn_close(c->up);
        c->up = NULL;
    }
    mark_down(c, err);
    if (rq->target == 0 && r->n_up > 1 && !(rq->flags & RQ_BODY_SENT)) {
        metrics_inc(w->hub->metrics, M_UPSTREAM_FALLBACK);
        rq->head_sent = 0;
        start_target(c, 1, 0);
        return;
    }
    local_error(c, 502, err == EPROTO ? "upstream TLS handshake failed"
                        : rq->flags & RQ_CONN_TIMEDOUT ? "upstream connect timed out" : "upstream unreachable");
}

static void mark_down(conn_t *c, int err)
{
    /* Out of descriptors, memory or local ports says nothing about the
     * origin: its requests must not all move to the fallback for it. */
    if (err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS || err == EADDRNOTAVAIL)
        return;
    edge_worker_t *w = c->w;
    req_t *rq = c->req;
    upstream_t *u = upstream_get(w, &rq->route->up[rq->target]);
    int ms = w->cfg->upstream_fail_timeout_ms;
    if (u && upstream_mark_failed(u, clock_coarse_ms(), ms)) {
        metrics_inc(w->hub->metrics, M_UPSTREAM_MARKED_DOWN);
        log_warn("edge.upstream_down", "worker=%d upstream=%s for_ms=%d error=\"%s\"", w->index, u->addr.key, ms,
                 strerror(err));
    }
}

/* The primary failed to connect lately: the fallback answers at once
 * rather than after another connect timeout — unless the fallback is
 * marked down too, then the primary gets its chance again. */
static int skip_down_primary(conn_t *c, upstream_t *u)
{
    int64_t now = clock_coarse_ms();
    if (!upstream_down(u, now))
        return 0;
    upstream_t *fb = upstream_get(c->w, &c->req->route->up[1]);
    if (!fb || upstream_down(fb, now))
        return 0;
    metrics_inc(c->w->hub->metrics, M_UPSTREAM_FALLBACK);
    metrics_inc(c->w->hub->metrics, M_UPSTREAM_DOWN_SKIP);
    start_target(c, 1, 0);
    return 1;
}

static void start_target(conn_t *c, int idx, int fresh)
{
    edge_worker_t *w = c->w;
    req_t *rq = c->req;
    rq->target = (uint8_t)idx;
    rq->flags &= ~(uint32_t)RQ_CONN_TIMEDOUT;
    upstream_t *u = upstream_get(w, &rq->route->up[idx]);
    if (!u) {
        local_error(c, 500, "out of memory");
        return;
    }
    if (idx == 0 && rq->route->n_up > 1 && health_marked(u->health) && skip_down_primary(c, u))
        return;
    uconn_t *uc = fresh ? NULL : upstream_take(u, c);
    if (uc) {
        rq->flags |= RQ_REUSED;
        c->up = uc;
        send_phase(c);
        return;
    }
    rq->flags &= ~(uint32_t)RQ_REUSED;
    if (!(uc = uconn_connect(w, u, c))) {
        connect_failed(c, errno);
        return;
    }
    connecting(c, uc);
}

/* A new upstream connection: send at once when it is ready, else wait for
 * it, [edge] upstream_connect_timeout per address tried. */
static void connecting(conn_t *c, uconn_t *uc)
{
    c->up = uc;
    if (uc->state == UC_READY) {
        send_phase(c);
        return;
    }
    conn_deadline(c, c->w->cfg->upstream_connect_timeout_ms);
}

static void forward(conn_t *c, const struct http1_request *hr, route_t *r)
{
    edge_worker_t *w = c->w;
    req_t *rq = c->req;
    rq->route = route_ref(r);
    rq->max_body = min_limit(w->cfg->max_body_bytes, r->max_body);
    if (hr->body == HTTP1_BODY_LENGTH && rq->max_body && hr->content_length > rq->max_body) {
        local_error(c, 413, "request body too large");
        return;
    }
    if (r->n_up == 0) {
        local_error(c, 502, "no upstream configured");
        return;
    }
    /* As nginx: an origin echoing TRACE would hand the client the signed
     * tenant headers Hee adds. */
    if (hr->method == HTTP1_M_TRACE) {
        local_error(c, 405, "TRACE is not forwarded");
        return;
    }
    if (build_head(c, hr, r) != 0) {
        local_error(c, 500, "cannot build the upstream request");
        return;
    }
    iobuf_consume(&c->in, hr->head_len);
    rq->flags &= ~(uint32_t)RQ_HEAD_IN;
    rq->body = (uint8_t)hr->body;
    /* fill_request set body_left from this head's Content-Length (a head
     * waiting for its route is parsed again from the same bytes). */
    if (hr->body == HTTP1_BODY_CHUNKED)
        http1_chunked_init(&rq->ch, NULL);
    else if (hr->body != HTTP1_BODY_LENGTH || rq->body_left == 0)
        rq->flags |= RQ_BODY_DONE;
    start_target(c, 0, 0);
}

void proxy_wait_route(conn_t *c, const char *host, size_t len)
{
    c->state = CS_ROUTE;
    conn_want_read(c, 0);
    conn_deadline(c, c->w->cfg->handshake_wait_ms);
    if (route_wait(c->w, c, host, len) != 0) {
        c->state = CS_REQ;
        local_error(c, 503, "route lookup unavailable");
    }
}

const char *proxy_https_port(conn_t *c)
{
    return c->w->wc.https_port;
}

static route_t *find_route(conn_t *c, const char *host, size_t len)
{
    edge_worker_t *w = c->w;
    if (c->route && route_fresh(w, c->route))
        return c->route;
    /* A stale route must not pin its project part (key) for as long as the
     * connection lasts: the host may be gone for good. */
    route_unref(c->route);
    c->route = NULL;
    route_t *r = route_cache_get(w, host, len);
    if (!r) {
        route_t *cr = certcache_get_route(w->sh->certs, host, route_ref_cb);
        if (cr && route_fresh(w, cr))
            route_cache_put(w, cr);
        route_unref(cr); /* the cache put above holds it */
        r = route_cache_get(w, host, len);
    }
    if (r && c->kind == CONN_TLS) {
        route_unref(c->route);
        c->route = route_ref(r);
    }
    return r;
}

static void dispatch(conn_t *c, const struct http1_request *hr)
{
    req_t *rq = c->req;
    if (c->kind == CONN_PLAIN) {
        plain_request(c, hr, rq->host, rq->host_len);
        return;
    }
    if (c->flags & CF_DEFAULT_CERT) {
        local_error(c, 421, "this connection has no server name (SNI)");
        return;
    }
    if (rq->host_len == 0) {
        memcpy(rq->host, c->host, c->host_len + 1u);
        rq->host_len = c->host_len;
    } else if (rq->host_len != c->host_len || memcmp(rq->host, c->host, c->host_len) != 0) {
        local_error(c, 421, "Host does not match the TLS server name");
        return;
    }
    route_t *r = find_route(c, rq->host, rq->host_len);
    if (!r) {
        proxy_wait_route(c, rq->host, rq->host_len);
        return;
    }
    forward(c, hr, r);
}

static void begin(conn_t *c, const struct http1_request *hr)
{
    edge_worker_t *w = c->w;
    req_t *rq = req_alloc(w);
    if (!rq) {
        conn_close(c);
        return;
    }
    c->req = rq;
    c->state = CS_REQ;
    c->nreq++;
    worker_count(w, WM_REQUESTS);
    fill_request(c, rq, hr);
    dispatch(c, hr);
}

/* Parses c->in; resumes a head cut across reads from c->partial. */
static enum http1_result parse(conn_t *c, const struct http1_request **out)
{
    edge_worker_t *w = c->w;
    struct http1_request *p = c->partial ? c->partial : &w->hreq;
    if (!c->partial)
        http1_request_init(p);
    enum http1_result r = http1_parse_request(iobuf_head(&c->in), c->in.len, &w->wc.lim, p);
    if (r == HTTP1_INCOMPLETE && !c->partial) {
        /* Rare (heads almost always come whole): keep the scan state so a
         * slow sender costs O(n) parsing, and time the head. */
        if ((c->partial = malloc(sizeof(*c->partial))))
            memcpy(c->partial, p, sizeof(*p));
        conn_deadline(c, w->cfg->header_timeout_ms);
    } else if (r != HTTP1_INCOMPLETE && c->partial) {
        memcpy(&w->hreq, c->partial, sizeof(w->hreq));
        free(c->partial);
        c->partial = NULL;
    }
    *out = r == HTTP1_INCOMPLETE ? NULL : &w->hreq;
    return r;
}

static void read_head(conn_t *c)
{
    edge_worker_t *w = c->w;
    size_t maxcap = w->wc.lim.max_request_line + w->wc.lim.max_header_bytes + 64;
    for (;;) {
        if (c->in.len > 0) {
            const struct http1_request *hr = NULL;
            enum http1_result r = parse(c, &hr);
            if (r == HTTP1_OK) {
                begin(c, hr);
                return;
            }
            if (r == HTTP1_ERROR) {
                bad_request(c, w->hreq.error_status, w->hreq.error ? w->hreq.error : "bad request");
                return;
            }
            if (!c->partial) {
                conn_close(c);
                return;
            }
        }
        if (c->in.len >= IOBUF_BLOCK && iobuf_reserve(&c->in, &w->pool, IOBUF_BLOCK, maxcap) <= 0) {
            bad_request(c, 431, "request head too large");
            return;
        }
        long n = conn_read(c);
        if (n == -2) {
            if (c->in.len == 0)
                iobuf_release(&c->in, &w->pool); /* idle: hold no buffer */
            return;
        }
        if (n <= 0) {
            /* Between requests, the client's close_notify (or FIN) gets ours. */
            if (n == 0 && c->in.len == 0 && !c->partial)
                conn_close_idle(c);
            else
                conn_close(c);
            return;
        }
    }
}

/* ---- upstream -> client ---- */

static int relay_interim(conn_t *c, const struct http1_response *resp)
{
    req_t *rq = c->req;
    if ((resp->status == 100 && (rq->flags & RQ_SENT_100)) || (rq->flags & RQ_HTTP10))
        return 0;
    char line[64];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", resp->status);
    if (iobuf_append(&c->out, &c->w->pool, line, (size_t)n, IOBUF_BLOCK * 4) != 0 ||
        iobuf_append(&c->out, &c->w->pool, resp->reason.p, resp->reason.len, IOBUF_BLOCK * 4) != 0 ||
        iobuf_append(&c->out, &c->w->pool, "\r\n", 2, IOBUF_BLOCK * 4) != 0)
        return -1;
    for (unsigned i = 0; i < resp->n_headers; i++) {
        const struct http1_header *h = &resp->headers[i];
        if (h->hop || h->id == HTTP1_H_CONTENT_LENGTH) /* a 1xx has no content (RFC 9110 8.6) */
            continue;
        if (iobuf_append(&c->out, &c->w->pool, h->name.p, h->name.len, IOBUF_BLOCK * 4) != 0 ||
            iobuf_append(&c->out, &c->w->pool, ": ", 2, IOBUF_BLOCK * 4) != 0 ||
            iobuf_append(&c->out, &c->w->pool, h->value.p, h->value.len, IOBUF_BLOCK * 4) != 0 ||
            iobuf_append(&c->out, &c->w->pool, "\r\n", 2, IOBUF_BLOCK * 4) != 0)
            return -1;
    }
    return iobuf_append(&c->out, &c->w->pool, "\r\n", 2, IOBUF_BLOCK * 4);
}

static int response_head(conn_t *c, const struct http1_response *resp)
{
    edge_worker_t *w = c->w;
    req_t *rq = c->req;
    size_t need = resp->head_len + 256;
    long room = iobuf_reserve(&c->out, &w->pool, need, c->out.len + need + IOBUF_BLOCK);
    if (room < 0 || (size_t)room < need)
        return -1;
    struct out o = { iobuf_tail(&c->out), iobuf_tail(&c->out) + room, 0 };
    char line[32];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d ", resp->status);
    put(&o, line, (size_t)n);
    put_span(&o, &resp->reason);
    PUTS(&o, "\r\n");
    const struct http1_header *upgrade = NULL;
    /* One Content-Length ("5, 5" or two lines of it are one value, RFC
     * 9110 8.6; the parser refused differing ones), none on a 101 or 204. */
    int cl_sent = resp->switching || resp->status == 204;
    for (unsigned i = 0; i < resp->n_headers; i++) {
        const struct http1_header *h = &resp->headers[i];
        if (h->id == HTTP1_H_UPGRADE)
            upgrade = h;
        if (h->hop)
            continue;
        if (h->id == HTTP1_H_CONTENT_LENGTH) {
            if (cl_sent++)
                continue;
            if (!all_digits(&h->value)) {
                char cl[24];
                int k = snprintf(cl, sizeof(cl), "%" PRId64, resp->content_length);
                put_pair(&o, "Content-Length", cl, (size_t)k);
                continue;
            }
        }
        put_header(&o, h);
    }
    /* Answered before the request body was all read: finish() closes, and
     * RFC 9112 9.6 asks that the response say so. */
    if (body_unsent(rq))
        c->flags |= CF_CLOSE;
    rq->rbody = (uint8_t)resp->body;
    if (resp->switching) {
        PUTS(&o, "Connection: upgrade\r\n");
        if (upgrade)
            put_header(&o, upgrade);
    } else {
        if (resp->body == HTTP1_BODY_CHUNKED) {
            if (rq->flags & RQ_HTTP10)
                rq->flags |= RQ_DECHUNK;
            else
                PUTS(&o, "Transfer-Encoding: chunked\r\n");
            http1_chunked_init(&rq->rch, NULL);
        } else if (resp->body == HTTP1_BODY_LENGTH) {
            rq->rbody_left = resp->content_length;
        }
        if (resp->body == HTTP1_BODY_CLOSE || (rq->flags & RQ_DECHUNK) || !(rq->flags & RQ_KEEPALIVE) ||
            w->draining)
            c->flags |= CF_CLOSE;
        if (c->flags & CF_CLOSE)
            PUTS(&o, "Connection: close\r\n");
        else if (rq->flags & RQ_HTTP10)
            PUTS(&o, "Connection: keep-alive\r\n"); /* 1.0 closes unless told */
    }
    PUTS(&o, "\r\n");
    if (o.overflow)
        return -1;
    size_t hl = (size_t)(o.p - iobuf_tail(&c->out));
    c->out.len += (uint32_t)hl;
    rq->bytes_out += hl;
    rq->status = resp->status;
    if (!resp->keep_alive)
        rq->flags |= RQ_NO_REUSE;
    return 0;
}

static void finish(conn_t *c)
{
    edge_worker_t *w = c->w;
    req_t *rq = c->req;
    uconn_t *uc = c->up;
    /* A head not wholly written would prefix the next client's request. */
    int reusable = uc && !(rq->flags & (RQ_NO_REUSE | RQ_ABANDON | RQ_UP_WBLOCK)) && !body_unsent(rq) &&
                   rq->head_sent == rq->head.len && rq->rbody != HTTP1_BODY_CLOSE && uc->in.len == 0;
    if (body_unsent(rq))
        c->flags |= CF_CLOSE | CF_LINGER; /* answered early: the rest of the body is unread */
    if (uc) {
        uconn_release(uc, reusable);
        c->up = NULL;
    }
    account(c, rq);
    req_free(w, rq);
    c->req = NULL;
    next_request(c);
}

static int approve_resp(conn_t *c)
{
    req_t *rq = c->req;
    uconn_t *uc = c->up;
    if (rq->rpend || (rq->flags & RQ_RESP_DONE))
        return 0;
    switch (rq->rbody) {
    case HTTP1_BODY_NONE:
        rq->flags |= RQ_RESP_DONE;
        return 0;
    case HTTP1_BODY_LENGTH: {
        size_t n = (int64_t)uc->in.len < rq->rbody_left ? uc->in.len : (size_t)rq->rbody_left;
        rq->rbody_left -= (int64_t)n;
        rq->rpend = n;
        if (rq->rbody_left == 0)
            rq->flags |= RQ_RESP_DONE;
        return 0;
    }
    case HTTP1_BODY_CHUNKED: {
        if (uc->in.len == 0)
            return 0;
        size_t used = 0;
        enum http1_result r = http1_chunked_feed(&rq->rch, iobuf_head(&uc->in), uc->in.len, &used, NULL);
        if (r == HTTP1_ERROR)
            return -1;
        rq->rpend = used;
        if (r == HTTP1_OK)
            rq->flags |= RQ_RESP_DONE;
        return 0;
    }
    default: /* CLOSE, TUNNEL: everything until EOF */
        rq->rpend = uc->in.len;
        return 0;
    }
}

/* HTTP/1.0 client, chunked response: forward the payload only. */
static int dechunk(conn_t *c)
{
    req_t *rq = c->req;
    uconn_t *uc = c->up;
    while (uc->in.len > 0 && !(rq->flags & RQ_RESP_DONE)) {
        long room = iobuf_reserve(&c->out, &c->w->pool, 1, IOBUF_BLOCK);
        if (room < 0)
            return -1;
        if (room == 0)
            return 0;
        size_t used = 0;
        struct http1_span data = { 0 };
        size_t len = uc->in.len < (size_t)room ? uc->in.len : (size_t)room;
        enum http1_result r = http1_chunked_feed(&rq->rch, iobuf_head(&uc->in), len, &used, &data);
        if (r == HTTP1_ERROR)
            return -1;
        if (data.len) {
            memmove(iobuf_tail(&c->out), data.p, data.len);
            c->out.len += (uint32_t)data.len;
            rq->bytes_out += data.len;
        }
        iobuf_consume(&uc->in, used);
        if (r == HTTP1_OK)
            rq->flags |= RQ_RESP_DONE;
        if (used == 0)
            break;
    }
    return 0;
}

/* Moves approved response bytes to the client. 1: blocked, 0: all moved,
 * -1: failed (caller closes). */
static int u2c_body(conn_t *c)
{
    req_t *rq = c->req;
    uconn_t *uc = c->up;
    for (;;) {
        if (rq->flags & RQ_DECHUNK) {
            if (dechunk(c) != 0)
                return -1;
        } else if (approve_resp(c) != 0) {
            return -1;
        }
        if (rq->rpend == 0)
            break;
        /* Small bodies ride in the same TLS record as the head. */
        if (c->out.len > 0 && c->out.len + rq->rpend <= IOBUF_RECORD) {
            if (iobuf_append(&c->out, &c->w->pool, iobuf_head(&uc->in), rq->rpend, IOBUF_BLOCK) != 0)
                return -1;
            iobuf_consume(&uc->in, rq->rpend);
            rq->bytes_out += rq->rpend;
            rq->rpend = 0;
            continue;
        }
        int f = conn_flush(c);
        if (f < 0)
            return -1;
        if (f == 0)
            return 1;
        long n = conn_write(c, iobuf_head(&uc->in), rq->rpend);
        if (n == -2)
            return 1;
        if (n < 0)
            return -1;
        iobuf_consume(&uc->in, (size_t)n);
        rq->rpend -= (size_t)n;
        rq->bytes_out += (uint64_t)n;
    }
    int f = conn_flush(c);
    if (f < 0)
        return -1;
    return f == 0 ? 1 : 0;
}

static int tunnel_pump(conn_t *c);

static void start_tunnel(conn_t *c)
{
    c->state = CS_TUNNEL;
    c->req->flags |= RQ_RESP_DONE;
    conn_deadline(c, c->w->cfg->upstream_timeout_ms);
    tunnel_pump(c);
}

static void u2c(conn_t *c)
{
    edge_worker_t *w = c->w;
    req_t *rq = c->req;
    uconn_t *uc = c->up;
    while (!(rq->flags & RQ_RESP_HEAD)) {
        if (uc->in.len == 0)
            return;
        struct http1_response *resp = &w->hresp;
        http1_response_init(resp);
        enum http1_result r = http1_parse_response(iobuf_head(&uc->in), uc->in.len, &w->wc.lim,
                                                   (enum http1_method)rq->method, resp);
        if (r == HTTP1_INCOMPLETE) {
            if (uc->in.len >= w->wc.lim.max_request_line + w->wc.lim.max_header_bytes)
                local_error(c, 502, "upstream response head too large");
            else
                uconn_read_pending(uc); /* the rest of a record */
            return;
        }
        if (r == HTTP1_ERROR) {
            log_warn("proxy.bad_response", "host=%s upstream=%s reason=\"%s\" rid=%s", rq->host,
                     rq->route->up[rq->target].key, resp->error ? resp->error : "?", rq->rid);
            local_error(c, 502, "invalid response from upstream");
            return;
        }
        if (resp->status < 200 && resp->status != 101) {
            /* Out at once: 103 Early Hints is useless late, 102 is a
             * keep-alive. A client that does not read stops our reads
             * (upstream_readable) until proxy_on_writable drains it. */
            if (relay_interim(c, resp) != 0 || conn_flush(c) < 0) {
                conn_close(c);
                return;
            }
            iobuf_consume(&uc->in, resp->head_len);
            continue;
        }
        if (resp->switching && (!(rq->flags & RQ_UPGRADE) || !switched_to_websocket(resp))) {
            local_error(c, 502, "unexpected 101 from upstream");
            return;
        }
        rq->t_head = clock_now_us();
        if (rq->t_sent)
            metrics_observe_us(w->hub->metrics, H_UPSTREAM, rq->t_head - rq->t_sent);
        if (response_head(c, resp) != 0) {
            local_error(c, 502, "upstream response head too large");
            return;
        }
        rq->flags |= RQ_RESP_HEAD;
        iobuf_consume(&uc->in, resp->head_len);
        drop_head(w, rq);
        if (resp->switching) {
            start_tunnel(c);
            return;
        }
    }
    int r = u2c_body(c);
    if (r < 0) {
        conn_close(c);
        return;
    }
    if ((rq->flags & RQ_RESP_DONE) && rq->rpend == 0 && !(rq->rbody == HTTP1_BODY_CLOSE)) {
        finish(c);
        return;
    }
    if (r == 0) {
        uconn_want_read(uc, 1);
        uconn_read_pending(uc);
    }
}

/* The origin closed (clean) or the read failed: a reset, or a TLS origin
 * gone without close_notify. Only a clean close ends a close-delimited
 * body; otherwise the client must see the truncation too. */
static void upstream_eof(conn_t *c, int clean)
{
    req_t *rq = c->req;
    if (!(rq->flags & RQ_RESP_HEAD)) {
        upstream_lost(c, "upstream closed the connection");
        return;
    }
    if (rq->rbody == HTTP1_BODY_CLOSE && clean) {
        /* Close-delimited body: EOF is its end. */
        rq->rbody = HTTP1_BODY_NONE;
        rq->flags |= RQ_RESP_DONE | RQ_NO_REUSE;
        int r = u2c_body(c);
        if (r < 0) {
            conn_close(c);
            return;
        }
        uconn_want_read(c->up, 0);
        if (r == 0)
            finish(c);
        /* blocked: proxy_on_writable finishes once the bytes are out */
        return;
    }
    conn_close(c); /* truncated body: only closing tells the client */
}

static void upstream_readable(conn_t *c)
{
    edge_worker_t *w = c->w;
    uconn_t *uc = c->up;
    size_t maxcap = (c->req->flags & RQ_RESP_HEAD) ? IOBUF_BLOCK
                                                     : w->wc.lim.max_request_line + w->wc.lim.max_header_bytes;
    long room = iobuf_reserve(&uc->in, &w->pool, 1, maxcap);
    if (room < 0) {
        conn_close(c);
        return;
    }
    if (room == 0 || c->req->rpend || c->out.len >= IOBUF_BLOCK) {
        uconn_want_read(uc, 0); /* the client is behind: stop reading until it drains */
        return;
    }
    /* At most one TLS record's worth, so relayed records are full ones. */
    size_t want = room > IOBUF_RECORD ? IOBUF_RECORD : (size_t)room;
    ssize_t n = uconn_recv(uc, iobuf_tail(&uc->in), want);
    if (n > 0) {
        uc->in.len += (uint32_t)n;
        /* An https origin's records may already sit decrypted in OpenSSL. */
        while ((size_t)n < want && uconn_pending(uc)) {
            ssize_t m = uconn_recv(uc, iobuf_tail(&uc->in), want - (size_t)n);
            if (m <= 0)
                break;
            uc->in.len += (uint32_t)m;
            n += m;
        }
        c->req->flags |= RQ_GOT_BYTES;
        conn_deadline(c, w->cfg->upstream_timeout_ms);
        u2c(c);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0)
        log_debug("proxy.upstream_read_error", "errno=%d", errno);
    upstream_eof(c, n == 0);
}

/* ---- tunnel ---- */

/* Moves bytes both ways. 0, or -1 when c was closed. */
static int tunnel_pump(conn_t *c)
{
    uconn_t *uc = c->up;
    while (c->in.len > 0) {
        ssize_t n = uconn_send(uc, iobuf_head(&c->in), c->in.len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            conn_close(c);
            return -1;
        }
        iobuf_consume(&c->in, (size_t)n);
    }
    uconn_want_write(uc, c->in.len > 0);
    conn_want_read(c, c->in.len == 0);
    if (c->in.len == 0 && conn_pending(c))
        event_active(&c->rev, EV_READ, 0);
    if (c->in.len == 0)
        iobuf_release(&c->in, &c->w->pool);
    int f = conn_flush(c);
    if (f < 0) {
        conn_close(c);
        return -1;
    }
    while (f == 1 && uc->in.len > 0) {
        long n = conn_write(c, iobuf_head(&uc->in), uc->in.len);
        if (n == -2)
            break;
        if (n < 0) {
            conn_close(c);
            return -1;
        }
        iobuf_consume(&uc->in, (size_t)n);
        c->req->bytes_out += (uint64_t)n;
    }
    /* rec_write takes bytes whose record may still sit in c->rawout: the
     * origin is read again (and its EOF, which closes, seen) only once
     * that record is out. */
    if (f == 1 && c->rec && c->rawout.len)
        f = 0;
    uconn_want_read(uc, f == 1 && uc->in.len == 0);
    if (uc->in.len == 0) {
        iobuf_release(&uc->in, &c->w->pool);
        if (f == 1)
            uconn_read_pending(uc);
    }
    return 0;
}

static void tunnel_client(conn_t *c)
{
    long n = conn_read(c);
    if (n == -2)
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    conn_deadline(c, c->w->cfg->upstream_timeout_ms);
    if (tunnel_pump(c) == 0 && c->in.len == 0)
        conn_kick(c);
}

static void tunnel_upstream(conn_t *c)
{
    uconn_t *uc = c->up;
    long room = iobuf_reserve(&uc->in, &c->w->pool, 1, IOBUF_BLOCK);
    if (room <= 0) {
        uconn_want_read(uc, 0);
        return;
    }
    ssize_t n = uconn_recv(uc, iobuf_tail(&uc->in), (size_t)room);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    uc->in.len += (uint32_t)n;
    conn_deadline(c, c->w->cfg->upstream_timeout_ms);
    tunnel_pump(c);
}

/* ---- event entry points ---- */

void proxy_on_upstream(uconn_t *uc, short what)
{
    conn_t *c = uc->owner;
    if (c->state == CS_TUNNEL) {
        if (what & EV_WRITE)
            tunnel_pump(c);
        else
            tunnel_upstream(c);
        return;
    }
    if (uc->state != UC_READY) {
        int r = uconn_progress(uc);
        if (r < 0)
            connect_failed(c, uc->err);
        else if (r > 0)
            send_phase(c);
        return;
    }
    if (what & EV_WRITE) {
        c2u(c);
        return;
    }
    upstream_readable(c);
}

static void next_request(conn_t *c)
{
    edge_worker_t *w = c->w;
    if ((c->flags & CF_CLOSE) || w->draining) {
        conn_finish(c);
        return;
    }
    c->state = CS_HEAD;
    int f = conn_flush(c);
    if (f < 0) {
        conn_close(c);
        return;
    }
    if (f == 1 && c->watch)
        conn_takeover(c); /* idle, nothing half-written: leave OpenSSL now */
    conn_deadline(c, c->in.len ? w->cfg->header_timeout_ms : w->cfg->idle_timeout_ms);
    iobuf_release(&c->in, &w->pool);
    conn_want_read(c, 1);
    conn_kick(c);
}

void proxy_start(conn_t *c)
{
    c->state = CS_HEAD;
    conn_watch_read(c);
    conn_deadline(c, c->w->cfg->header_timeout_ms);
    conn_want_read(c, 1);
    read_head(c);
}

void proxy_on_readable(conn_t *c)
{
    switch (c->state) {
    case CS_HEAD:
        read_head(c);
        return;
    case CS_REQ:
        if (c->req && (c->req->flags & RQ_DISCARD))
            discard_body(c);
        else
            client_body(c);
        return;
    case CS_TUNNEL:
        tunnel_client(c);
        return;
    default:
        conn_want_read(c, 0);
        return;
    }
}

void proxy_on_writable(conn_t *c)
{
    conn_want_write(c, 0);
    switch (c->state) {
    case CS_FLUSH: {
        int f = conn_flush(c);
        if (f < 0)
            conn_close(c);
        else if (f == 1)
            conn_flushed(c);
        return;
    }
    case CS_TUNNEL:
        tunnel_pump(c);
        return;
    case CS_REQ:
        if (c->up && (c->req->flags & RQ_RESP_HEAD)) {
            u2c(c);
            return;
        }
        if (c->up && c->up->state == UC_READY) {
            /* Interim responses (or our 100) drained: reading the origin
             * may have stopped for them (upstream_readable). */
            int f = conn_flush(c);
            if (f < 0) {
                conn_close(c);
            } else if (f == 1) {
                uconn_want_read(c->up, 1);
                uconn_read_pending(c->up);
            }
            return;
        }
        /* e.g. a 100 Continue still going out */
        __attribute__((fallthrough));
    default: {
        int f = conn_flush(c);
        /* A keep-alive connection told to close (drain) once its last
         * response is out. */
        if (f < 0 || (f == 1 && c->state == CS_HEAD && (c->flags & CF_CLOSE) && c->in.len == 0 && !c->partial))
            conn_close(c);
        return;
    }
    }
}

void proxy_on_timeout(conn_t *c)
{
    req_t *rq = c->req;
    switch (c->state) {
    case CS_HEAD:
        if (c->in.len == 0 && !c->partial) {
            conn_close_idle(c); /* idle keep-alive connection */
            return;
        }
        bad_request(c, 408, "request head not received in time");
        return;
    case CS_ROUTE:
        route_wait_cancel(c);
        c->state = CS_REQ;
        local_error(c, 503, "route lookup timed out");
        return;
    case CS_REQ:
        if (!rq || (rq->flags & RQ_DISCARD)) {
            conn_close(c);
            return;
        }
        if (!c->up || c->up->state != UC_READY) {
            connect_failed(c, ETIMEDOUT);
            return;
        }
        if (!(rq->flags & RQ_RESP_HEAD)) {
            metrics_inc(c->w->hub->metrics, M_UPSTREAM_FAIL);
            local_error(c, 504, "upstream response timed out");
            return;
        }
        conn_close(c);
        return;
    default:
        conn_close(c);
        return;
    }
}

void proxy_on_route(conn_t *c, route_t *r, int status)
{
    edge_worker_t *w = c->w;
    if (c->state != CS_ROUTE || !c->req)
        return;
    c->state = CS_REQ;
    http1_request_init(&w->hreq);
    if (http1_parse_request(iobuf_head(&c->in), c->in.len, &w->wc.lim, &w->hreq) != HTTP1_OK) {
        bad_request(c, 400, "request head lost");
        return;
    }
    req_t *rq = c->req;
    if (c->kind == CONN_PLAIN) {
        plain_on_route(c, &w->hreq, rq->host, rq->host_len, status == LOAD_FOUND ? r : NULL);
        return;
    }
    if (status != LOAD_FOUND || !r) {
        local_error(c, 421, "this host is not served here");
        return;
    }
    route_unref(c->route);
    c->route = route_ref(r);
    forward(c, &w->hreq, r);
}

void proxy_abort(conn_t *c)
{
    req_t *rq = c->req;
    if (c->up) {
        uconn_close(c->up);
        c->up = NULL;
    }
    if (!rq)
        return;
    if (!rq->status)
        rq->status = 499; /* closed before a response: nginx's convention */
    account(c, rq);
    req_free(c->w, rq);
    c->req = NULL;
}
