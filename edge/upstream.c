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

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"
#include "edge/clock.h"
#include "edge/conn.h"
#include "edge/proxy.h"
#include "edge/worker.h"

static upstream_t *target_new(edge_worker_t *w, const upstream_addr_t *a)
{
    int err = 0;
    upstream_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    TAILQ_INIT(&u->idle);
    u->addr = *a;
    if (!(u->health = health_get(w->sh->health, a->key, a->key_len)))
        goto fail;
    strmap_put(w->upstreams, u->addr.key, u->addr.key_len, u, &err);
    if (err)
        goto fail;
    return u;
fail:
    health_put(u->health);
    free(u);
    return NULL;
}

/* Only a newer answer moves the target, so two projects whose parts
 * resolved the same name at different times do not flip it (and flush
 * its pool) request by request. */
static upstream_t *upstream_refresh(upstream_t *u, const upstream_addr_t *a)
{
    if (!a->resolved || a->resolved_ms <= u->addr.resolved_ms)
        return u;
    if (a->n_addrs != u->addr.n_addrs ||
        memcmp(a->addrs, u->addr.addrs, a->n_addrs * sizeof(a->addrs[0])) != 0) {
        u->addr = *a;
        u->good = 0;
        health_clear(u->health);
        upstream_sweep_one(u, 0, 0); /* pooled connections go to the old addresses */
    } else {
        u->addr.resolved_ms = a->resolved_ms;
    }
    return u;
}

upstream_t *upstream_get(edge_worker_t *w, const upstream_addr_t *a)
{
    upstream_t *u = strmap_get(w->upstreams, a->key, a->key_len);
    if (!u)
        u = target_new(w, a);
    if (u)
        u->used_ms = w->mono_ms; /* the tick's clock: minutes matter here, not ms */
    return u ? upstream_refresh(u, a) : NULL;
}

/* Idle in the pool and readable: a TLS origin may send session tickets,
 * which OpenSSL consumes; any application byte, EOF or error means the
 * origin is done with the connection. */
static int idle_still_usable(uconn_t *uc)
{
    if (!uc->ssl)
        return 0;
    char b[64];
    ERR_clear_error();
    int n = SSL_read(uc->ssl, b, sizeof(b));
    int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(uc->ssl, n);
    ERR_clear_error();
    return n <= 0 && e == SSL_ERROR_WANT_READ;
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    uconn_t *uc = arg;
    if (!uc->owner) {
        if (idle_still_usable(uc))
            return;
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
    u->n_conns++;
    uc->fd = fd;
    uc->owner = owner;
    event_assign(&uc->rev, w->base, fd, EV_READ | EV_PERSIST, on_event, uc);
    event_assign(&uc->wev, w->base, fd, EV_WRITE | EV_PERSIST, on_event, uc);
    return uc;
}

static char *ctx_error(const char *ca_bundle)
{
    char buf[512];
    unsigned long e, sys = 0, last = 0;
    /* A missing file shows as a system error (errno) before a "system lib". */
    while ((e = ERR_get_error())) {
        if (ERR_SYSTEM_ERROR(e))
            sys = e;
        else
            last = e;
    }
    const char *why = sys ? strerror(ERR_GET_REASON(sys)) : last ? ERR_reason_error_string(last) : NULL;
    if (ca_bundle && ca_bundle[0])
        snprintf(buf, sizeof(buf), "[edge] upstream_ca_bundle %s: %s", ca_bundle,
                 why ? why : "cannot be loaded as PEM certificates");
    else
        snprintf(buf, sizeof(buf), "cannot set up the upstream TLS context: %s", why ? why : "unknown error");
    return strdup(buf);
}

SSL_CTX *upstream_ssl_ctx_new(const char *ca_bundle, char **err)
{
    int own = ca_bundle && ca_bundle[0];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        (own ? SSL_CTX_load_verify_file(ctx, ca_bundle) : SSL_CTX_set_default_verify_paths(ctx)) != 1) {
        *err = ctx_error(ca_bundle);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* No SSL_OP_IGNORE_UNEXPECTED_EOF: an origin's TCP close without
     * close_notify must read as an error, not as the end of a
     * close-delimited body (a truncation attack would pass as complete). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    static const unsigned char alpn[] = "\x08http/1.1";
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0) {
        *err = ctx_error(NULL);
        SSL_CTX_free(ctx);
        return NULL;
    }
    ERR_clear_error(); /* the default paths may note files that do not exist */
    return ctx;
}

static int tls_setup(uconn_t *uc)
{
    upstream_t *u = uc->target;
    SSL_CTX *ctx = uc->w->sh->up_ssl_ctx;
    if (!ctx || !(uc->ssl = SSL_new(ctx)) || SSL_set_fd(uc->ssl, uc->fd) != 1)
        return -1;
    struct in6_addr tmp;
    int literal = inet_pton(AF_INET, u->addr.host, &tmp) == 1 || inet_pton(AF_INET6, u->addr.host, &tmp) == 1;
    if (literal) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(uc->ssl), u->addr.host) != 1)
            return -1;
    } else if (SSL_set_tlsext_host_name(uc->ssl, u->addr.host) != 1 || SSL_set1_host(uc->ssl, u->addr.host) != 1) {
        return -1;
    }
    if (u->session)
        SSL_set_session(uc->ssl, u->session);
    SSL_set_connect_state(uc->ssl);
    uc->state = UC_TLS;
    return 0;
}

static int tls_step(uconn_t *uc)
{
    ERR_clear_error();
    int r = SSL_do_handshake(uc->ssl);
    if (r == 1) {
        upstream_t *u = uc->target;
        SSL_SESSION *s = SSL_get1_session(uc->ssl);
        if (s) {
            SSL_SESSION_free(u->session);
            u->session = s;
        }
        uc->state = UC_READY;
        return 1;
    }
    int e = SSL_get_error(uc->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        uconn_want_read(uc, e == SSL_ERROR_WANT_READ);
        uconn_want_write(uc, e == SSL_ERROR_WANT_WRITE);
        return 0;
    }
    long v = SSL_get_verify_result(uc->ssl);
    log_warn("upstream.tls_failed", "upstream=%s verify=\"%s\" reason=\"%s\"", uc->target->addr.key,
             v == X509_V_OK ? "ok" : X509_verify_cert_error_string(v),
             ERR_peek_error() ? ERR_reason_error_string(ERR_peek_error()) : "eof");
    ERR_clear_error();
    uc->err = EPROTO;
    return -1;
}

int uconn_progress(uconn_t *uc)
{
    if (uc->state == UC_CONNECTING) {
        int err = util_socket_error(uc->fd);
        if (err) {
            uc->err = err;
            return -1;
        }
        uc->target->good = uc->ai;
        health_clear(uc->target->health);
        if (!uc->target->addr.tls) {
            uc->state = UC_READY;
            return 1;
        }
        uc->state = UC_TLS; /* from here a failure is not the address's: no next one */
        if (tls_setup(uc) != 0) {
            ERR_clear_error();
            uc->err = ENOMEM;
            return -1;
        }
    }
    if (uc->state == UC_TLS)
        return tls_step(uc);
    return 1;
}

/* SSL results as errno-style returns. */
static ssize_t ssl_result(uconn_t *uc, int r)
{
    int e = SSL_get_error(uc->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    unsigned long le = ERR_peek_error();
    ERR_clear_error();
    if (e == SSL_ERROR_SYSCALL && le == 0 && errno == 0)
        return 0;
    errno = errno ? errno : EIO;
    return -1;
}

ssize_t uconn_writev(uconn_t *uc, const struct iovec *iov, int n)
{
    if (!uc->ssl) {
        /* sendmsg, not writev: the socket call skips the file layer
         * writev goes through (a few % of the proxy's kernel time per
         * request), and MSG_NOSIGNAL needs no SIGPIPE disposition. */
        struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
        return sendmsg(uc->fd, &m, MSG_NOSIGNAL);
    }
    ssize_t total = 0;
    for (int i = 0; i < n; i++) {
        ERR_clear_error();
        int r = SSL_write(uc->ssl, iov[i].iov_base, (int)iov[i].iov_len);
        if (r <= 0) {
            if (total > 0)
                return total;
            return ssl_result(uc, r);
        }
        total += r;
        if ((size_t)r < iov[i].iov_len)
            break;
    }
    return total;
}

ssize_t uconn_send(uconn_t *uc, const void *p, size_t n)
{
    struct iovec iov = { (void *)p, n };
    if (!uc->ssl)
        return send(uc->fd, p, n, MSG_NOSIGNAL);
    return uconn_writev(uc, &iov, 1);
}

ssize_t uconn_recv(uconn_t *uc, void *buf, size_t len)
{
    ssize_t r;
    if (!uc->ssl) {
        r = recv(uc->fd, buf, len, 0);
    } else {
        ERR_clear_error();
        int n = SSL_read(uc->ssl, buf, (int)len);
        r = n > 0 ? n : ssl_result(uc, n);
    }
    uc->rd_full = r > 0 && (size_t)r == len;
    return r;
}

int uconn_pending(const uconn_t *uc)
{
    return uc->ssl && SSL_has_pending(uc->ssl);
}

void uconn_read_pending(uconn_t *uc)
{
    if (uconn_pending(uc))
        event_active(&uc->rev, EV_READ, 0);
}

/* One non-blocking connect to address ai: the fd, or -1 with errno. *now
 * says the connect completed at once. */
static int connect_one(const upstream_addr_t *a, unsigned ai, int *now)
{
    int fd = socket(a->addrs[ai].sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, &a->addrs[ai].sa, upstream_addr_len(a, ai));
    if (rc != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *now = rc == 0;
    return fd;
}

/* Connects to the addresses of u from (start + tried) on, skipping those
 * that fail at once; tried counts the addresses already spent. */
static uconn_t *connect_from(edge_worker_t *w, upstream_t *u, conn_t *owner, unsigned start, unsigned tried)
{
    const upstream_addr_t *a = &u->addr;
    int e = EHOSTUNREACH;
    for (; tried < a->n_addrs; tried++) {
        unsigned ai = (start + tried) % a->n_addrs;
        int now = 0;
        int fd = connect_one(a, ai, &now);
        if (fd < 0) {
            e = errno;
            continue;
        }
        uconn_t *uc = uconn_new(w, u, fd, owner);
        if (!uc) {
            close(fd);
            errno = ENOMEM;
            return NULL;
        }
        worker_count(w, WM_UP_CONNECT);
        uc->state = UC_CONNECTING;
        uc->ai = (uint8_t)ai;
        uc->tried = (uint8_t)(tried + 1);
        if (now && uconn_progress(uc) < 0) {
            errno = uc->err;
            uconn_close(uc);
            return NULL;
        }
        if (uc->state == UC_CONNECTING)
            uconn_want_write(uc, 1);
        return uc;
    }
    errno = e;
    return NULL;
}

uconn_t *uconn_connect(edge_worker_t *w, upstream_t *u, conn_t *owner)
{
    if (!u->addr.resolved || u->addr.n_addrs == 0) {
        errno = EHOSTUNREACH;
        return NULL;
    }
    return connect_from(w, u, owner, u->good < u->addr.n_addrs ? u->good : 0, 0);
}

uconn_t *uconn_connect_next(uconn_t *uc)
{
    edge_worker_t *w = uc->w;
    upstream_t *u = uc->target;
    conn_t *owner = uc->owner;
    unsigned start = (unsigned)uc->ai + u->addr.n_addrs - (uc->tried - 1u);
    unsigned tried = uc->tried;
    int err = uc->err ? uc->err : ETIMEDOUT;
    uconn_close(uc);
    if (tried >= u->addr.n_addrs) {
        errno = err;
        return NULL;
    }
    uconn_t *next = connect_from(w, u, owner, start, tried);
    if (!next && errno == EHOSTUNREACH)
        errno = err;
    return next;
}

/* Bytes the origin sent past the response just relayed. What sits
 * decrypted in OpenSSL epoll cannot report; the socket is asked only
 * when the last read filled its buffer, since a shorter one drained it
 * (bytes that come later wake the idle pool's read event, which closes
 * the connection). */
static int leftover(uconn_t *uc)
{
    return uconn_pending(uc) || (uc->rd_full && util_socket_peek(uc->fd) != -2);
}

uconn_t *upstream_take(upstream_t *u, conn_t *owner)
{
    uconn_t *uc;
    while ((uc = TAILQ_FIRST(&u->idle)) != NULL) {
        TAILQ_REMOVE(&u->idle, uc, link);
        u->n_idle--;
        if (!uconn_pending(uc))
            break;
        uconn_close(uc); /* a TLS record came in while idle: epoll saw it read into OpenSSL */
    }
    if (!uc)
        return NULL;
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
    if (uc->ssl) {
        SSL_set_quiet_shutdown(uc->ssl, 1);
        SSL_free(uc->ssl);
        ERR_clear_error();
    }
    close(uc->fd);
    iobuf_drop(&uc->in, &uc->w->pool);
    uc->target->n_conns--;
    free(uc);
}

void uconn_release(uconn_t *uc, int reusable)
{
    upstream_t *u = uc->target;
    edge_worker_t *w = uc->w;
    uc->owner = NULL;
    uconn_want_write(uc, 0);
    if (!reusable || uc->in.len > 0 || uc->state != UC_READY || u->n_idle >= (unsigned)w->cfg->upstream_idle_conns ||
        w->draining || leftover(uc)) {
        uconn_close(uc);
        return;
    }
    iobuf_release(&uc->in, &w->pool);
    uc->idle_since_ms = clock_coarse_ms();
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

int upstream_mark_failed(upstream_t *u, int64_t now_ms, int64_t for_ms)
{
    return health_mark(u->health, now_ms, for_ms);
}

int upstream_down(const upstream_t *u, int64_t now_ms)
{
    return health_down(u->health, now_ms) && u->n_idle == 0;
}

/* Targets freed per sweep at most: the table may not change while it is
 * walked, so the walk collects and the sweep deletes after. */
#define PRUNE_BATCH 16

struct sweep {
    int64_t now_ms, idle_ms;
    upstream_t *unused[PRUNE_BATCH];
    int n_unused;
};

static void sweep_each(const char *key, void *val, void *arg)
{
    struct sweep *s = arg;
    upstream_t *u = val;
    (void)key;
    upstream_sweep_one(u, s->now_ms, s->idle_ms);
    if (s->idle_ms > 0 && u->n_conns == 0 && s->now_ms - u->used_ms >= UPSTREAM_UNUSED_MS &&
        s->n_unused < PRUNE_BATCH)
        s->unused[s->n_unused++] = u;
}

static void target_free(void *p)
{
    upstream_t *u = p;
    upstream_sweep_one(u, 0, 0);
    SSL_SESSION_free(u->session);
    health_put(u->health);
    free(u);
}

void upstream_sweep(edge_worker_t *w, int64_t now_ms, int64_t idle_ms)
{
    struct sweep s = { .now_ms = now_ms, .idle_ms = idle_ms };
    if (!w->upstreams)
        return;
    strmap_each(w->upstreams, sweep_each, &s);
    for (int i = 0; i < s.n_unused; i++) {
        log_debug("edge.upstream_forgotten", "worker=%d upstream=%s", w->index, s.unused[i]->addr.key);
        strmap_del(w->upstreams, s.unused[i]->addr.key, s.unused[i]->addr.key_len);
        target_free(s.unused[i]);
    }
}

void upstream_table_free(edge_worker_t *w)
{
    strmap_free(w->upstreams, target_free);
    w->upstreams = NULL;
}
