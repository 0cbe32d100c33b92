#include "edge/upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "edge/conn.h"
#include "edge/proxy.h"
#include "edge/worker.h"

/* Idle connections kept per target per worker. */
#define POOL_MAX 128

upstream_t *upstream_get(edge_worker_t *w, const upstream_addr_t *a)
{
    upstream_t *u;
    for (u = w->upstreams; u; u = u->next)
        if (strcmp(u->addr.key, a->key) == 0)
            break;
    if (!u) {
        if (!(u = calloc(1, sizeof(*u))))
            return NULL;
        TAILQ_INIT(&u->idle);
        u->addr = *a;
        u->next = w->upstreams;
        w->upstreams = u;
    } else if (a->resolved &&
               (a->addrlen != u->addr.addrlen || memcmp(&a->addr, &u->addr.addr, a->addrlen) != 0)) {
        /* Re-resolved to a new address: pooled connections go to the old one. */
        u->addr = *a;
        upstream_sweep_one(u, 0, 0);
    }
    return u;
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    uconn_t *uc = arg;
    if (!uc->owner) {
        /* Idle in the pool: any byte or EOF means the origin is done with it. */
        upstream_t *u = uc->target;
        TAILQ_REMOVE(&u->idle, uc, link);
        u->n_idle--;
        uconn_close(uc);
        return;
    }
    proxy_on_upstream(uc, what);
}

static uconn_t *uconn_new(edge_worker_t *w, upstream_t *u, int fd, conn_t *owner)
{
    uconn_t *uc = calloc(1, sizeof(*uc));
    if (!uc)
        return NULL;
    uc->w = w;
    uc->target = u;
    uc->fd = fd;
    uc->owner = owner;
    event_assign(&uc->rev, w->base, fd, EV_READ | EV_PERSIST, on_event, uc);
    event_assign(&uc->wev, w->base, fd, EV_WRITE | EV_PERSIST, on_event, uc);
    return uc;
}

uconn_t *uconn_connect(edge_worker_t *w, upstream_t *u, conn_t *owner)
{
    if (u->addr.tls) {
        errno = EPROTONOSUPPORT; /* https upstreams: not yet */
        return NULL;
    }
    if (!u->addr.resolved) {
        errno = EHOSTUNREACH;
        return NULL;
    }
    int fd = socket(u->addr.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, (struct sockaddr *)&u->addr.addr, u->addr.addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return NULL;
    }
    uconn_t *uc = uconn_new(w, u, fd, owner);
    if (!uc) {
        close(fd);
        errno = ENOMEM;
        return NULL;
    }
    worker_count(w, WM_UP_CONNECT);
    uc->state = rc == 0 ? UC_READY : UC_CONNECTING;
    if (uc->state == UC_CONNECTING)
        uconn_want_write(uc, 1);
    return uc;
}

uconn_t *upstream_take(upstream_t *u, conn_t *owner)
{
    uconn_t *uc = TAILQ_FIRST(&u->idle);
    if (!uc)
        return NULL;
    TAILQ_REMOVE(&u->idle, uc, link);
    u->n_idle--;
    uc->owner = owner;
    worker_count(uc->w, WM_UP_REUSE);
    return uc;
}

void uconn_want_read(uconn_t *uc, int on)
{
    if (on && !uc->rd_on) {
        event_add(&uc->rev, NULL);
        uc->rd_on = 1;
    } else if (!on && uc->rd_on) {
        event_del(&uc->rev);
        uc->rd_on = 0;
    }
}

void uconn_want_write(uconn_t *uc, int on)
{
    if (on && !uc->wr_on) {
        event_add(&uc->wev, NULL);
        uc->wr_on = 1;
    } else if (!on && uc->wr_on) {
        event_del(&uc->wev);
        uc->wr_on = 0;
    }
}

void uconn_close(uconn_t *uc)
{
    if (!uc)
        return;
    event_del(&uc->rev);
    event_del(&uc->wev);
    close(uc->fd);
    iobuf_drop(&uc->in, &uc->w->pool);
    free(uc);
}

void uconn_release(uconn_t *uc, int reusable)
{
    upstream_t *u = uc->target;
    edge_worker_t *w = uc->w;
    uc->owner = NULL;
    uconn_want_write(uc, 0);
    if (!reusable || uc->in.len > 0 || uc->state != UC_READY || u->n_idle >= POOL_MAX || w->draining) {
        uconn_close(uc);
        return;
    }
    iobuf_release(&uc->in, &w->pool);
    uc->idle_since_ms = util_mono_ms();
    uc->nreq++;
    uconn_want_read(uc, 1); /* to notice the origin closing it */
    TAILQ_INSERT_HEAD(&u->idle, uc, link);
    u->n_idle++;
}

void upstream_sweep_one(upstream_t *u, int64_t now_ms, int64_t idle_ms)
{
    uconn_t *uc;
    /* Oldest at the tail. */
    while ((uc = TAILQ_LAST(&u->idle, upstream_idle_head)) &&
           (idle_ms == 0 || now_ms - uc->idle_since_ms >= idle_ms)) {
        TAILQ_REMOVE(&u->idle, uc, link);
        u->n_idle--;
        uconn_close(uc);
    }
}

void upstream_sweep(edge_worker_t *w, int64_t now_ms, int64_t idle_ms)
{
    for (upstream_t *u = w->upstreams; u; u = u->next)
        upstream_sweep_one(u, now_ms, idle_ms);
}

void upstream_table_free(edge_worker_t *w)
{
    upstream_t *u = w->upstreams;
    while (u) {
        upstream_t *nx = u->next;
        upstream_sweep_one(u, 0, 0);
        free(u);
        u = nx;
    }
    w->upstreams = NULL;
}
