#include "acme_httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct acme_httpd {
    int lfd;
    int port;
    int stopping;
    acme_httpd_handler handler;
    void *arg;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned live;  /* connection threads running */
    unsigned count; /* requests answered */
    unsigned busy, peak; /* requests read and not yet answered; their most at once */
};

struct conn {
    acme_httpd_t *h;
    int fd;
};

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads headers and a Content-Length body into a growing buffer. */
static int read_request(int fd, acme_httpd_req_t *req, char **raw)
{
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return -1;
    char *end = NULL;
    size_t need = 0;
    for (;;) {
        if (end && len >= need)
            break;
        if (len == cap) {
            char *nb = cap > (8u << 20) ? NULL : realloc(buf, cap * 2 + 1);
            if (!nb)
                goto fail;
            buf = nb;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        len += (size_t)n;
        buf[len] = '\0';
        if (!end && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            size_t hdr_len = (size_t)(end - buf) + 4;
            size_t clen = 0;
            for (char *p = buf; p < end;) {
                char *eol = strstr(p, "\r\n");
                if (strncasecmp(p, "Content-Length:", 15) == 0)
                    clen = strtoul(p + 15, NULL, 10);
                p = eol + 2;
            }
            need = hdr_len + clen;
        }
    }
    if (sscanf(buf, "%15s %1023s", req->method, req->path) != 2)
        goto fail;
    *end = '\0';
    req->headers = buf;
    req->body = end + 4;
    req->body_len = need - (size_t)(end + 4 - buf);
    *raw = buf;
    return 0;
fail:
    free(buf);
    return -1;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

static void *conn_main(void *p)
{
    struct conn *c = p;
    acme_httpd_t *h = c->h;
    acme_httpd_req_t req = { 0 };
    acme_httpd_resp_t resp = { 0 };
    char *raw = NULL;
    if (read_request(c->fd, &req, &raw) == 0) {
        pthread_mutex_lock(&h->mu);
        if (++h->busy > h->peak)
            h->peak = h->busy;
        pthread_mutex_unlock(&h->mu);
        resp.status = 200;
        h->handler(&req, &resp, h->arg);
        if (resp.delay_ms > 0) {
            struct timespec ts = { resp.delay_ms / 1000, (long)(resp.delay_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        /* Counted before the answer leaves: a client that has its response
         * must already see the request in acme_httpd_count(), and no longer
         * in busy (so peak never exceeds what the client had in flight). */
        pthread_mutex_lock(&h->mu);
        h->count++;
        h->busy--;
        pthread_mutex_unlock(&h->mu);
        if (resp.status > 0) {
            char head[4096];
            int n = snprintf(head, sizeof(head),
                             "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                             resp.status, reason(resp.status), resp.body_len, resp.headers);
            if (n > 0 && (size_t)n < sizeof(head) && write_all(c->fd, head, (size_t)n) == 0 &&
                strcmp(req.method, "HEAD") != 0 && resp.body_len)
                write_all(c->fd, resp.body, resp.body_len);
        }
    }
    free(resp.body);
    free(raw);
    shutdown(c->fd, SHUT_WR);
    close(c->fd);
    free(c);
    pthread_mutex_lock(&h->mu);
    h->live--;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static void *accept_main(void *p)
{
    acme_httpd_t *h = p;
    for (;;) {
        struct pollfd pfd = { .fd = h->lfd, .events = POLLIN };
        int r = poll(&pfd, 1, 50);
        pthread_mutex_lock(&h->mu);
        int stop = h->stopping;
        pthread_mutex_unlock(&h->mu);
        if (stop)
            break;
        if (r <= 0)
            continue;
        int fd = accept(h->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        struct conn *c = malloc(sizeof(*c));
        pthread_t t;
        if (!c) {
            close(fd);
            continue;
        }
        /* A client that never sends must not hold acme_httpd_stop() forever. */
        struct timeval tv = { 5, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        c->h = h;
        c->fd = fd;
        pthread_mutex_lock(&h->mu);
        h->live++;
        pthread_mutex_unlock(&h->mu);
        if (pthread_create(&t, NULL, conn_main, c) != 0) {
            close(fd);
            free(c);
            pthread_mutex_lock(&h->mu);
            h->live--;
            pthread_mutex_unlock(&h->mu);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

acme_httpd_t *acme_httpd_start(acme_httpd_handler handler, void *arg)
{
    acme_httpd_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->handler = handler;
    h->arg = arg;
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    if (h->lfd < 0 || bind(h->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(h->lfd, 128) != 0 ||
        getsockname(h->lfd, (struct sockaddr *)&sa, &sl) != 0)
        goto fail;
    h->port = ntohs(sa.sin_port);
    if (pthread_create(&h->acceptor, NULL, accept_main, h) != 0)
        goto fail;
    return h;
fail:
    if (h->lfd >= 0)
        close(h->lfd);
    free(h);
    return NULL;
}

int acme_httpd_port(const acme_httpd_t *h)
{
    return h->port;
}

unsigned acme_httpd_count(acme_httpd_t *h)
{
    pthread_mutex_lock(&h->mu);
    unsigned n = h->count;
    pthread_mutex_unlock(&h->mu);
    return n;
}

unsigned acme_httpd_peak(acme_httpd_t *h)
{
    pthread_mutex_lock(&h->mu);
    unsigned n = h->peak;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void acme_httpd_stop(acme_httpd_t *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    pthread_mutex_unlock(&h->mu);
    pthread_join(h->acceptor, NULL);
    close(h->lfd);
    pthread_mutex_lock(&h->mu);
    while (h->live)
        pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
}
