#include "edge/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "common/log.h"
#include "common/util.h"
#include "edge/clock.h"
#include "edge/proxy.h"
#include "edge/route.h"
#include "edge/tls.h"
#include "edge/worker.h"

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void on_timer(evutil_socket_t fd, short what, void *arg);

static void peer_text(conn_t *c)
{
    const void *a = NULL;
    if (c->peer.ss_family == AF_INET)
        a = &((struct sockaddr_in *)&c->peer)->sin_addr;
    else if (c->peer.ss_family == AF_INET6)
        a = &((struct sockaddr_in6 *)&c->peer)->sin6_addr;
    if (!a || !inet_ntop(c->peer.ss_family, a, c->ip, sizeof(c->ip)))
        strcpy(c->ip, "unknown");
}

conn_t *conn_new(edge_worker_t *w, int fd, const struct sockaddr *sa, int salen, int kind)
{
    const config_t *cfg = w->cfg;
    metrics_inc(w->hub->metrics, M_CONN_ACCEPTED);
    if (w->draining || w->n_conns >= cfg->max_conns_per_worker) {
        metrics_inc(w->hub->metrics, M_CONN_REFUSED_LIMIT);
        close(fd);
        return NULL;
    }
    conn_t *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return NULL;
    }
    c->w = w;
    c->fd = fd;
    c->kind = (uint8_t)kind;
    if (salen > 0 && (size_t)salen <= sizeof(c->peer))
        memcpy(&c->peer, sa, (size_t)salen);
    peer_text(c);
    if (cfg->max_conns_per_ip > 0) {
        if (worker_ip_acquire(w, c->ip) != 0) {
            metrics_inc(w->hub->metrics, M_CONN_REFUSED_LIMIT);
            close(fd);
            free(c);
            return NULL;
        }
        c->flags |= CF_COUNTED_IP;
    }
    event_assign(&c->rev, w->base, fd, EV_READ | EV_PERSIST, on_read, c);
    event_assign(&c->wev, w->base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    evtimer_assign(&c->tev, w->base, on_timer, c);
    TAILQ_INSERT_TAIL(&w->conns, c, link);
    w->n_conns++;
    metrics_add(w->hub->metrics, M_CONN_ACTIVE, 1);
    c->t0_us = clock_now_us();
    worker_conn_added(w);
    return c;
}

void conn_close(conn_t *c)
{
    edge_worker_t *w = c->w;
    if (c->wait_on) {
        if (c->state == CS_PARKED)
            tls_park_cancel(c);
        else
            route_wait_cancel(c);
    }
    proxy_abort(c);
    /* Unconditionally: an event made active with event_active (conn_kick)
     * is queued even when it was never added. */
    event_del(&c->rev);
    event_del(&c->wev);
    event_del(&c->tev);
    if (c->ssl) {
        /* Abrupt end: nothing more is written (conn_finish sent
         * close_notify on a graceful one). */
        SSL_set_quiet_shutdown(c->ssl, 1);
        SSL_free(c->ssl);
        ERR_clear_error();
    }
    tlsrec_free(c->rec);
    if (c->watch) {
        if (c->state > CS_HANDSHAKE)
            tlsrec_policy_learn(&w->watch_policy, 0); /* never went idle */
        tlsrec_watch_clear(c->watch);
        free(c->watch);
    }
    iobuf_drop(&c->raw, &w->pool);
    iobuf_drop(&c->rawout, &w->pool);
    if (c->fd >= 0)
        close(c->fd);
    iobuf_drop(&c->in, &w->pool);
    iobuf_drop(&c->out, &w->pool);
    free(c->partial);
    free(c->host);
    route_unref(c->route);
    if (c->flags & CF_COUNTED_IP)
        worker_ip_release(w, c->ip);
    TAILQ_REMOVE(&w->conns, c, link);
    w->n_conns--;
    metrics_add(w->hub->metrics, M_CONN_ACTIVE, -1);
    free(c);
    worker_conn_gone(w);
}

int conn_pending(const conn_t *c)
{
    return (c->ssl && SSL_has_pending(c->ssl)) || (c->rec && c->raw.len > 0);
}

int conn_takeover(conn_t *c)
{
    if (!c->ssl || !c->watch)
        return 0;
    if (c->watch->bad || SSL_version(c->ssl) != TLS1_3_VERSION) {
        /* TLS 1.2 or an unexpected message: OpenSSL keeps it for good. */
        tlsrec_watch_clear(c->watch);
        free(c->watch);
        c->watch = NULL;
        return 0;
    }
    tlsrec_t *r = tlsrec_takeover(&c->w->algs, c->ssl, c->watch);
    if (!r)
        return 0; /* bytes still inside OpenSSL: try at the next idle point */
    free(c->watch);
    c->watch = NULL;
    tlsrec_policy_learn(&c->w->watch_policy, 1);
    c->rec = r;
    SSL_set_quiet_shutdown(c->ssl, 1);
    SSL_free(c->ssl); /* sends nothing; the fd stays ours (BIO_NOCLOSE) */
    c->ssl = NULL;
    metrics_inc(c->w->hub->metrics, M_TLS_TAKEOVER);
    return 1;
}

void conn_want_read(conn_t *c, int on)
{
    if (on && !(c->flags & CF_RD)) {
        event_add(&c->rev, NULL);
        c->flags |= CF_RD;
    } else if (!on && (c->flags & CF_RD)) {
        event_del(&c->rev);
        c->flags &= (uint16_t)~CF_RD;
    }
}

void conn_kick(conn_t *c)
{
    if (conn_pending(c) || c->in.len > 0)
        event_active(&c->rev, EV_READ, 0);
}

void conn_want_write(conn_t *c, int on)
{
    if (on && !(c->flags & CF_WR)) {
        event_add(&c->wev, NULL);
        c->flags |= CF_WR;
    } else if (!on && (c->flags & CF_WR)) {
        event_del(&c->wev);
        c->flags &= (uint16_t)~CF_WR;
    }
}

/* Re-arms the read event with other flags. An added event is re-added
 * only when keep is set: switching back to level-triggered reads leaves it
 * off until someone wants to read (one epoll_ctl fewer). */
static void reassign_read(conn_t *c, short events, uint16_t et, int keep)
{
    int was = (c->flags & CF_RD) != 0;
    if (was) {
        event_del(&c->rev);
        c->flags &= (uint16_t)~CF_RD;
    }
    event_assign(&c->rev, c->w->base, c->fd, events, on_read, c);
    c->flags = (uint16_t)((c->flags & ~CF_ET) | et);
    if (was && keep)
        conn_want_read(c, 1);
}

void conn_watch_hello(conn_t *c)
{
    /* EV_CLOSED too: a peer that sends half a hello and hangs up leaves
     * the peeked bytes readable, so EOF would not show otherwise. */
    if (!(c->flags & CF_ET) || !(c->flags & CF_RD))
        reassign_read(c, EV_READ | EV_CLOSED | EV_ET | EV_PERSIST, CF_ET, 1);
    conn_want_read(c, 1);
}

void conn_watch_close(conn_t *c)
{
    /* Parked: the hello stays unread in the kernel, so a level-triggered
     * read event would fire forever; EV_CLOSED reports only the hang-up. */
    reassign_read(c, EV_CLOSED | EV_ET | EV_PERSIST, CF_ET, 1);
    conn_want_read(c, 1);
}

void conn_watch_read(conn_t *c)
{
    if (c->flags & CF_ET)
        reassign_read(c, EV_READ | EV_PERSIST, 0, 0);
}

static void arm(conn_t *c, int64_t ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
    evtimer_add(&c->tev, &tv);
    c->flags |= CF_TIMER;
}

void conn_deadline(conn_t *c, int64_t ms)
{
    if (ms <= 0) {
        c->deadline_ms = 0;
        return; /* a pending timer finds no deadline and stops */
    }
    int64_t now = clock_coarse_ms();
    c->deadline_ms = now + ms;
    if (!(c->flags & CF_TIMER) || c->timer_at_ms > c->deadline_ms) {
        c->timer_at_ms = c->deadline_ms;
        arm(c, ms);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    c->flags &= (uint16_t)~CF_TIMER;
    if (c->deadline_ms == 0)
        return;
    int64_t now = clock_coarse_ms();
    if (now < c->deadline_ms) {
        c->timer_at_ms = c->deadline_ms;
        arm(c, c->deadline_ms - now);
        return;
    }
    c->deadline_ms = 0;
    if (c->state <= CS_HANDSHAKE)
        tls_on_timeout(c);
    else if (c->state == CS_LINGER)
        conn_close(c);
    else
        proxy_on_timeout(c);
}

/* ---- tlsrec I/O ---- */

static int rawout_flush(conn_t *c)
{
    while (c->rawout.len > 0) {
        ssize_t n = send(c->fd, iobuf_head(&c->rawout), c->rawout.len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                conn_want_write(c, 1);
                return 0;
            }
            return -1;
        }
        iobuf_consume(&c->rawout, (size_t)n);
    }
    iobuf_release(&c->rawout, &c->w->pool);
    return 1;
}

static int queue_key_update(conn_t *c)
{
    long room = iobuf_reserve(&c->rawout, &c->w->pool, TLSREC_OVERHEAD + 5, 2 * IOBUF_BLOCK);
    if (room < TLSREC_OVERHEAD + 5)
        return -1;
    long n = tlsrec_seal_key_update(c->rec, (uint8_t *)iobuf_tail(&c->rawout));
    if (n < 0)
        return -1;
    c->rawout.len += (uint32_t)n;
    return rawout_flush(c) < 0 ? -1 : 0;
}

/* Best effort: the alert a failed record calls for (RFC 8446 6.2), sealed
 * under the current write key and sent now if the socket takes it at once
 * and nothing else is queued before it; the connection closes either way. */
static void rec_fail(conn_t *c)
{
    int desc = tlsrec_alert(c->rec);
    uint8_t alert[2] = { 2, (uint8_t)desc }, out[2 + TLSREC_OVERHEAD];
    if (desc < 0 || c->rawout.len != 0)
        return;
    long n = tlsrec_seal_alert(c->rec, alert, out);
    if (n > 0) /* a failed send changes nothing: the connection closes */
        (void)send(c->fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static long rec_read(conn_t *c)
{
    edge_worker_t *w = c->w;
    for (;;) {
        long rl = tlsrec_record_len((const uint8_t *)iobuf_head(&c->raw), c->raw.len);
        if (rl < 0) {
            tlsrec_fail_header(c->rec, (const uint8_t *)iobuf_head(&c->raw), c->raw.len);
            rec_fail(c);
            return -1;
        }
        if (rl > 0 && (size_t)rl <= c->raw.len) {
            /* Whole record: decrypt straight into c->in, which may hold a
             * head up to the limits already (read_head answers 431 beyond
             * them), so there is room for one more record on top. */
            size_t cap = w->wc.lim.max_request_line + w->wc.lim.max_header_bytes + 64 + TLSREC_MAX_RECORD;
            long room = iobuf_reserve(&c->in, &w->pool, (size_t)rl, cap < 2 * IOBUF_BLOCK ? 2 * IOBUF_BLOCK : cap);
            if (room < rl)
                return -1;
            int eof = 0, upd = 0;
            long n = tlsrec_open(c->rec, (const uint8_t *)iobuf_head(&c->raw), (size_t)rl,
                                 (uint8_t *)iobuf_tail(&c->in), &eof, &upd);
            iobuf_consume(&c->raw, (size_t)rl);
            if (n < 0)
                rec_fail(c);
            if (n < 0 || (upd && queue_key_update(c) != 0))
                return -1;
            if (eof)
                return 0;
            if (c->raw.len == 0)
                iobuf_release(&c->raw, &w->pool);
            if (n > 0) {
                c->in.len += (uint32_t)n;
                return n;
            }
            continue;
        }
        long room = iobuf_reserve(&c->raw, &w->pool, rl > 0 ? (size_t)rl - c->raw.len : TLSREC_HEADER,
                                  IOBUF_BLOCK);
        if (room <= 0)
            return -1;
        ssize_t n = recv(c->fd, iobuf_tail(&c->raw), (size_t)room, 0);
        if (n > 0) {
            c->raw.len += (uint32_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (c->raw.len == 0)
                iobuf_release(&c->raw, &w->pool);
            return -2;
        }
        return n == 0 || errno == ECONNRESET ? 0 : -1;
    }
}

/* Seals up to one record of p. Returns the plaintext bytes taken (their
 * record may still sit in c->rawout, with write interest armed). */
static long rec_write(conn_t *c, const void *p, size_t n)
{
    int f = rawout_flush(c);
    if (f <= 0)
        return f < 0 ? -1 : -2;
    /* A tunnel that lives for days reaches the key's record limit. */
    if (tlsrec_should_rekey(c->rec) && queue_key_update(c) != 0)
        return -1;
    size_t k = n < IOBUF_RECORD ? n : IOBUF_RECORD;
    long room = iobuf_reserve(&c->rawout, &c->w->pool, k + TLSREC_OVERHEAD, IOBUF_BLOCK);
    if (room < (long)(k + TLSREC_OVERHEAD))
        return -1;
    long rl = tlsrec_seal(c->rec, p, k, (uint8_t *)iobuf_tail(&c->rawout));
    if (rl < 0)
        return -1;
    c->rawout.len += (uint32_t)rl;
    return rawout_flush(c) < 0 ? -1 : (long)k;
}

long conn_read(conn_t *c)
{
    if (c->rec)
        return rec_read(c);
    long room = iobuf_reserve(&c->in, &c->w->pool, 1, IOBUF_BLOCK);
    if (room <= 0)
        return room == 0 ? -2 : -1;
    if (c->ssl) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, iobuf_tail(&c->in), (int)room);
        if (n > 0) {
            c->in.len += (uint32_t)n;
            return n;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            return -2;
        if (e == SSL_ERROR_WANT_WRITE) {
            c->flags |= CF_SSL_RD_WR;
            conn_want_write(c, 1);
            return -2;
        }
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        /* A peer that closes without close_notify is routine for HTTP. */
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0 && (errno == 0 || errno == ECONNRESET))
            return 0;
        ERR_clear_error();
        return -1;
    }
    ssize_t n = recv(c->fd, iobuf_tail(&c->in), (size_t)room, 0);
    if (n > 0) {
        c->in.len += (uint32_t)n;
        return n;
    }
    if (n == 0)
        return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return -2;
    return errno == ECONNRESET ? 0 : -1;
}

long conn_write(conn_t *c, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (c->rec)
        return rec_write(c, p, n);
    if (c->ssl) {
        ERR_clear_error();
        int len = n > INT32_MAX ? INT32_MAX : (int)n;
        int r = SSL_write(c->ssl, p, len);
        if (r > 0)
            return r;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_WRITE) {
            conn_want_write(c, 1);
            return -2;
        }
        if (e == SSL_ERROR_WANT_READ) {
            c->flags |= CF_SSL_WR_RD;
            conn_want_read(c, 1);
            return -2;
        }
        ERR_clear_error();
        return -1;
    }
    ssize_t r = send(c->fd, p, n, MSG_NOSIGNAL);
    if (r >= 0)
        return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        conn_want_write(c, 1);
        return -2;
    }
    return -1;
}

int conn_flush(conn_t *c)
{
    while (c->out.len > 0) {
        long n = conn_write(c, iobuf_head(&c->out), c->out.len);
        if (n == -2)
            return 0;
        if (n < 0)
            return -1;
        iobuf_consume(&c->out, (size_t)n);
    }
    iobuf_release(&c->out, &c->w->pool);
    return c->rec && c->rawout.len ? rawout_flush(c) : 1;
}

static void close_notify(conn_t *c)
{
    if (c->ssl) {
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* one non-blocking write of the alert; the reply is not awaited */
        ERR_clear_error();
        return;
    }
    if (!c->rec)
        return;
    static const uint8_t alert[2] = { 1, 0 }; /* warning, close_notify */
    long room = iobuf_reserve(&c->rawout, &c->w->pool, TLSREC_OVERHEAD + 2, 2 * IOBUF_BLOCK);
    long n = room >= TLSREC_OVERHEAD + 2 ? tlsrec_seal_alert(c->rec, alert, (uint8_t *)iobuf_tail(&c->rawout)) : -1;
    if (n > 0) {
        c->rawout.len += (uint32_t)n;
        rawout_flush(c);
    }
}

void conn_close_idle(conn_t *c)
{
    close_notify(c);
    conn_close(c);
}

void conn_flushed(conn_t *c)
{
    int linger_ms = c->w->cfg->close_linger_ms;
    close_notify(c);
    if (linger_ms == 0 || (!(c->flags & CF_LINGER) && c->in.len == 0)) {
        conn_close(c);
        return;
    }
    /* Our answer is out, but the client may still be sending (a body we
     * refused, pipelined requests): closing now would reset the
     * connection and could destroy the answer in flight. */
    shutdown(c->fd, SHUT_WR);
    c->state = CS_LINGER;
    conn_watch_read(c);
    conn_want_read(c, 1);
    conn_deadline(c, linger_ms);
}

static void linger_read(conn_t *c)
{
    char buf[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n > 0)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        break;
    }
    conn_close(c);
}

void conn_finish(conn_t *c)
{
    c->state = CS_FLUSH;
    conn_want_read(c, 0);
    int r = conn_flush(c);
    if (r < 0) {
        conn_close(c);
        return;
    }
    if (r == 1) {
        conn_flushed(c);
        return;
    }
    conn_deadline(c, c->w->cfg->idle_timeout_ms);
}

void conn_on_route(conn_t *c, struct route *r, certcache_entry_t *e, int status)
{
    if (c->state == CS_LOOKUP)
        tls_on_route(c, r, e, status);
    else
        proxy_on_route(c, r, status);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    if (c->flags & CF_SSL_WR_RD) {
        c->flags &= (uint16_t)~CF_SSL_WR_RD;
        proxy_on_writable(c);
        return;
    }
    if (c->state <= CS_HANDSHAKE) {
        tls_on_readable(c, what);
        return;
    }
    if (c->state == CS_LINGER) {
        linger_read(c);
        return;
    }
    proxy_on_readable(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    conn_t *c = arg;
    if (c->rec && c->rawout.len) {
        int f = rawout_flush(c);
        if (f < 0) {
            conn_close(c);
            return;
        }
        if (f == 0)
            return;
    }
    if (c->flags & CF_SSL_RD_WR) {
        c->flags &= (uint16_t)~CF_SSL_RD_WR;
        conn_want_write(c, 0);
        event_active(&c->rev, EV_READ, 0);
        return;
    }
    if (c->state == CS_HANDSHAKE) {
        tls_on_writable(c);
        return;
    }
    proxy_on_writable(c);
}
