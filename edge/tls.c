#include "edge/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "common/util.h"
#include "edge/clienthello.h"
#include "edge/clock.h"
#include "edge/conn.h"
#include "edge/loader.h"
#include "edge/proxy.h"
#include "edge/route.h"
#include "edge/worker.h"

/* DESIGN
 * A TLS connection goes HELLO -> (LOOKUP -> (PARKED ->) LOOKUP ->)
 * HANDSHAKE -> proxy. The ClientHello is only peeked at (MSG_PEEK) until
 * a certificate is chosen, so it stays in the kernel's socket buffer while
 * the connection waits: a parked handshake costs a conn_t and nothing
 * else. Then an SSL is created with that certificate and reads the hello
 * from the socket itself. During HELLO the read event is edge-triggered
 * (peeked bytes keep a socket readable); while waiting it watches only for
 * the peer hanging up (EV_CLOSED). */

/* Mozilla "intermediate" (v5.7): TLS 1.2 suites; TLS 1.3 uses OpenSSL's
 * defaults, which are the same three. */
static const char CIPHERS12[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
static const char SUITES13[] = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
static const char GROUPS[] = "X25519:P-256:P-384";

static const unsigned char ALPN_H11[] = "\x08http/1.1";
static const unsigned char ALPN_ACME[] = "\x0a" "acme-tls/1";

typedef struct park {
    TAILQ_HEAD(, conn) conns;
    int n;
    int asked;
    char host[];
} park_t;

/* ---- SSL_CTX ---- */

static int alpn_cb(SSL *s, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                   unsigned int inlen, void *arg)
{
    conn_t *c = SSL_get_app_data(s);
    int acme = c && (c->flags & CF_ACME);
    const unsigned char *ours = acme ? ALPN_ACME : ALPN_H11;
    unsigned ours_len = acme ? sizeof(ALPN_ACME) - 1 : sizeof(ALPN_H11) - 1;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, ours, ours_len, in, inlen) == OPENSSL_NPN_NEGOTIATED) {
        *out = sel;
        return SSL_TLSEXT_ERR_OK;
    }
    /* A validation handshake must negotiate acme-tls/1 (RFC 8737 3);
     * an ordinary client without http/1.1 just gets no ALPN. */
    return acme ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
}

/* Session tickets sealed with hub->tickets keys, so any worker (and any
 * later key period, until rotation drops the key) can resume a session. */
static int ticket_cb(SSL *s, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
    edge_worker_t *w = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
    tickets_key_t k;
    int rc = -1, current = 1;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (enc) {
        if (tickets_current(w->hub->tickets, &k) != 0)
            return -1;
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(w->ticket_cipher)) != 1)
            goto out;
        memcpy(key_name, k.name, TICKETS_NAME_LEN);
        if (EVP_EncryptInit_ex2(cctx, w->ticket_cipher, k.aes, iv, NULL) != 1)
            goto out;
    } else {
        if (tickets_find(w->hub->tickets, key_name, &k, &current) != 0)
            return 0; /* unknown key: full handshake, fresh ticket */
        if (EVP_DecryptInit_ex2(cctx, w->ticket_cipher, k.aes, iv, NULL) != 1)
            goto out;
    }
    if (EVP_MAC_init(hctx, k.hmac, sizeof(k.hmac), params) != 1)
        goto out;
    /* 2 = "renew": a fresh ticket after the resumption. Always in TLS 1.3,
     * where clients use each ticket once (RFC 8446 C.4): without a new one
     * every other connection would need a full handshake. */
    rc = enc ? 1 : (!current || SSL_version(s) == TLS1_3_VERSION) ? 2 : 1;
out:
    OPENSSL_cleanse(&k, sizeof(k));
    return rc;
}

/* The two callbacks feed the connection's tlsrec watch (see tlsrec.h):
 * application secrets from the key log, record counts from the message
 * callback. Secrets stay in memory, never in a log. */
static void keylog_cb(const SSL *s, const char *line)
{
    conn_t *c = SSL_get_app_data(s);
    if (c && c->watch)
        tlsrec_watch_keylog(c->watch, line);
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len, SSL *s, void *arg)
{
    conn_t *c = SSL_get_app_data(s);
    if (c && c->watch)
        tlsrec_watch_msg(c->watch, write_p, content_type, buf, len);
}

/* watch: with the callbacks that feed tlsrec. Without them OpenSSL skips
 * formatting the key log (tlsrec.h, "capture policy"). */
static SSL_CTX *ctx_new(edge_worker_t *w, int watch)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        goto fail;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, CIPHERS12) != 1 || SSL_CTX_set_ciphersuites(ctx, SUITES13) != 1 ||
        SSL_CTX_set1_groups_list(ctx, GROUPS) != 1 || SSL_CTX_set_dh_auto(ctx, 1) != 1)
        goto fail;
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* RELEASE_BUFFERS: an idle connection keeps no 16 KB record buffers.
     * Read-ahead: one read(2) per record instead of header + body. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"hee", 3);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_app_data(ctx, w);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
    if (watch) {
        SSL_CTX_set_keylog_callback(ctx, keylog_cb);
        SSL_CTX_set_msg_callback(ctx, msg_cb);
    }
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_cb) != 1)
        goto fail;
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_ctx_init(edge_worker_t *w, char **err)
{
    w->ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (!w->ticket_cipher || !(w->ssl_ctx = ctx_new(w, 0)) || !(w->ssl_ctx_watch = ctx_new(w, 1)))
        goto fail;
    return 0;
fail:
    ERR_clear_error(); /* what is built is freed by tls_ctx_free */
    *err = strdup("cannot set up the TLS context");
    return -1;
}

void tls_ctx_free(edge_worker_t *w)
{
    SSL_CTX_free(w->ssl_ctx);
    w->ssl_ctx = NULL;
    SSL_CTX_free(w->ssl_ctx_watch);
    w->ssl_ctx_watch = NULL;
    EVP_CIPHER_free(w->ticket_cipher);
    w->ticket_cipher = NULL;
}

/* ---- refusing ---- */

static void drain_peeked(conn_t *c)
{
    /* Unread bytes at close() make the kernel send RST, which can destroy
     * the alert before the client reads it. */
    ssize_t n;
    do {
        n = recv(c->fd, c->w->hello, sizeof(c->w->hello), MSG_DONTWAIT);
    } while (n == (ssize_t)sizeof(c->w->hello));
}

void tls_refuse(conn_t *c, int alert)
{
    uint8_t rec[CH_ALERT_LEN];
    size_t n = ch_alert_bytes(CH_ALERT_FATAL, (uint8_t)alert, rec);
    drain_peeked(c);
    if (send(c->fd, rec, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("tls.alert_failed", "errno=%d", errno);
    metrics_inc(c->w->hub->metrics, M_TLS_HANDSHAKE_FAILED);
    log_debug("tls.refused", "peer=%s host=%s alert=%d", c->ip, c->host ? c->host : "-", alert);
    shutdown(c->fd, SHUT_WR);
    conn_close(c);
}

static void refuse_not_tls(conn_t *c, const ch_info_t *ci)
{
    static const char resp[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 34\r\nConnection: close\r\n\r\n"
                               "This port speaks TLS: use https.\r\n";
    drain_peeked(c);
    if (ci->not_tls == CH_NOT_TLS_HTTP && send(c->fd, resp, sizeof(resp) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("tls.not_tls_reply_failed", "errno=%d", errno);
    metrics_inc(c->w->hub->metrics, M_TLS_HANDSHAKE_FAILED);
    shutdown(c->fd, SHUT_WR);
    conn_close(c);
}

/* ---- handshake ---- */

static void step(conn_t *c)
{
    edge_worker_t *w = c->w;
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        metrics_inc(w->hub->metrics, M_TLS_HANDSHAKES);
        if (SSL_session_reused(c->ssl))
            metrics_inc(w->hub->metrics, M_TLS_RESUMED);
        metrics_observe_us(w->hub->metrics, H_TLS_HANDSHAKE, clock_now_us() - c->t0_us);
        conn_want_write(c, 0);
        if (c->flags & CF_ACME) {
            log_info("tls.acme_validation", "host=%s peer=%s", c->host ? c->host : "-", c->ip);
            conn_close(c);
            return;
        }
        /* tlsrec takes over at the first idle point (proxy.c), so a
         * connection that closes after one request never pays for it. */
        proxy_start(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        conn_want_write(c, 0);
        conn_want_read(c, 1);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        conn_want_write(c, 1);
        return;
    }
    unsigned long le = ERR_peek_error();
    log_debug("tls.handshake_failed", "peer=%s host=%s ssl_error=%d reason=\"%s\"", c->ip,
              c->host ? c->host : "-", e, le ? ERR_reason_error_string(le) : "eof");
    ERR_clear_error();
    metrics_inc(w->hub->metrics, M_TLS_HANDSHAKE_FAILED);
    conn_close(c);
}

static void handshake(conn_t *c, certcache_entry_t *e)
{
    edge_worker_t *w = c->w;
    conn_watch_read(c);
    /* No watch, no takeover: the connection stays on OpenSSL for good. */
    int watch = !(c->flags & CF_ACME) && w->cfg->compact_idle_tls && tlsrec_policy_capture(&w->watch_policy);
    SSL *s = SSL_new(watch ? w->ssl_ctx_watch : w->ssl_ctx);
    if (!s)
        goto fail;
    c->ssl = s; /* conn_close frees it from now on */
    SSL_set_app_data(s, c);
    if (watch && !(c->watch = calloc(1, sizeof(*c->watch))))
        goto fail;
    if (SSL_set_fd(s, c->fd) != 1 || SSL_use_cert_and_key(s, e->leaf, e->key, e->chain, 1) != 1)
        goto fail;
    SSL_set_accept_state(s);
    c->state = CS_HANDSHAKE;
    conn_deadline(c, w->cfg->header_timeout_ms);
    step(c);
    return;
fail:
    ERR_clear_error();
    log_warn("tls.setup_failed", "host=%s", c->host ? c->host : "-");
    tls_refuse(c, CH_ALERT_INTERNAL_ERROR);
}

/* ---- waiting ---- */

static void lookup(conn_t *c)
{
    c->state = CS_LOOKUP;
    if (route_wait(c->w, c, c->host, c->host_len) != 0)
        tls_refuse(c, CH_ALERT_INTERNAL_ERROR);
}

static void park_free(void *p)
{
    free(p);
}

static void park(conn_t *c, enum route_kind why)
{
    edge_worker_t *w = c->w;
    park_t *p = strmap_get(w->parked, c->host, c->host_len);
    if (!p) {
        int err = 0;
        p = calloc(1, sizeof(*p) + c->host_len + 1);
        if (!p)
            goto fail;
        TAILQ_INIT(&p->conns);
        memcpy(p->host, c->host, c->host_len);
        strmap_put(w->parked, p->host, c->host_len, p, &err);
        if (err) {
            free(p);
            goto fail;
        }
    }
    c->state = CS_PARKED;
    c->park_why = (uint8_t)why;
    c->wait_on = p;
    TAILQ_INSERT_TAIL(&p->conns, c, wlink);
    p->n++;
    metrics_inc(w->hub->metrics, M_ISSUE_PARKED);
    if (!p->asked) {
        /* One message per host per worker; the control thread dedups
         * across workers, so one order however many handshakes wait. */
        msg_t *m = hub_msg(why == ROUTE_UNVERIFIED ? MSG_PROBE_WANTED : MSG_CERT_WANTED, c->host);
        if (m) {
            m->worker = w->index;
            if (why == ROUTE_UNVERIFIED)
                hub_to_bg(w->hub, m); /* the probes run there */
            else
                hub_to_control(w->hub, m);
        }
        p->asked = 1;
        log_info(why == ROUTE_UNVERIFIED ? "tls.probe_wanted" : "tls.cert_wanted", "host=%s worker=%d",
                 c->host, w->index);
    }
    return;
fail:
    tls_refuse(c, CH_ALERT_INTERNAL_ERROR);
}

void tls_park_cancel(conn_t *c)
{
    park_t *p = c->wait_on;
    if (!p)
        return;
    TAILQ_REMOVE(&p->conns, c, wlink);
    c->wait_on = NULL;
    if (--p->n == 0) {
        strmap_del(c->w->parked, p->host, strlen(p->host));
        free(p);
    }
}

static park_t *unpark_all(edge_worker_t *w, const char *host)
{
    return strmap_del(w->parked, host, strlen(host));
}

void tls_cert_ready(edge_worker_t *w, const char *host)
{
    negcache_remove(w->sh->neg, host);
    route_cache_kill(w, host);
    park_t *p = unpark_all(w, host);
    if (!p)
        return;
    log_info("tls.cert_ready", "host=%s parked=%d worker=%d", host, p->n, w->index);
    conn_t *c;
    while ((c = TAILQ_FIRST(&p->conns))) {
        TAILQ_REMOVE(&p->conns, c, wlink);
        c->wait_on = NULL;
        lookup(c);
    }
    free(p);
}

void tls_cert_failed(edge_worker_t *w, const char *host, int code)
{
    park_t *p = unpark_all(w, host);
    if (!p)
        return;
    conn_t *c = TAILQ_FIRST(&p->conns);
    int unverified = c && c->park_why == ROUTE_UNVERIFIED;
    negcache_put(w->sh->neg, host, unverified ? NEGCACHE_NOT_VERIFIED : NEGCACHE_ISSUE_FAILED,
                 util_mono_ms(), w->cfg->negative_ttl_ms > 0 ? w->cfg->negative_ttl_ms : 1000);
    log_info("tls.cert_failed", "host=%s parked=%d code=%d worker=%d", host, p->n, code, w->index);
    while ((c = TAILQ_FIRST(&p->conns))) {
        TAILQ_REMOVE(&p->conns, c, wlink);
        c->wait_on = NULL;
        tls_refuse(c, c->park_why == ROUTE_UNVERIFIED ? CH_ALERT_UNRECOGNIZED_NAME : CH_ALERT_INTERNAL_ERROR);
    }
    free(p);
}

void tls_parked_free(edge_worker_t *w)
{
    strmap_free(w->parked, park_free);
    w->parked = NULL;
}

/* ---- deciding by SNI ---- */

static int entry_usable(edge_worker_t *w, certcache_entry_t *e)
{
    route_t *r = e->route;
    return r && r->kind == ROUTE_READY && route_fresh(w, r) &&
           (int64_t)e->not_after * 1000 > util_now_ms();
}

void tls_on_route(conn_t *c, route_t *r, certcache_entry_t *e, int status)
{
    edge_worker_t *w = c->w;
    if (status == LOAD_UNKNOWN) {
        metrics_inc(w->hub->metrics, M_SNI_UNKNOWN);
        tls_refuse(c, CH_ALERT_UNRECOGNIZED_NAME);
        return;
    }
    if (status != LOAD_FOUND || !r) {
        tls_refuse(c, CH_ALERT_INTERNAL_ERROR);
        return;
    }
    if (r->kind == ROUTE_UNVERIFIED) {
        metrics_inc(w->hub->metrics, M_SNI_UNVERIFIED);
        park(c, ROUTE_UNVERIFIED);
        return;
    }
    if (r->kind == ROUTE_NEED_CERT) {
        park(c, ROUTE_NEED_CERT);
        return;
    }
    certcache_entry_t *own = e ? certcache_entry_ref(e) : certcache_get(w->sh->certs, c->host);
    if (!own) {
        tls_refuse(c, CH_ALERT_INTERNAL_ERROR);
        return;
    }
    metrics_inc(w->hub->metrics, M_SNI_KNOWN);
    route_unref(c->route);
    c->route = route_ref(r);
    handshake(c, own);
    certcache_entry_unref(own);
}

static void no_name(conn_t *c)
{
    certcache_entry_t *d = c->w->sh->default_cert;
    if (!d) {
        tls_refuse(c, CH_ALERT_UNRECOGNIZED_NAME);
        return;
    }
    c->flags |= CF_DEFAULT_CERT;
    handshake(c, d);
}

static void acme(conn_t *c, const char *host)
{
    edge_worker_t *w = c->w;
    char *cert = NULL, *key = NULL;
    if (challenge_alpn_get(w->hub->challenges, host, &cert, &key) != 0) {
        tls_refuse(c, CH_ALERT_UNRECOGNIZED_NAME);
        return;
    }
    const char *why = NULL;
    certcache_entry_t *e = certcache_entry_from_pem(w->sh->certs, cert, strlen(cert), key, strlen(key),
                                                    NULL, NULL, &why);
    OPENSSL_cleanse(key, strlen(key));
    free(key);
    free(cert);
    if (!e) {
        log_warn("tls.acme_cert_bad", "host=%s reason=\"%s\"", host, why ? why : "?");
        tls_refuse(c, CH_ALERT_INTERNAL_ERROR);
        return;
    }
    c->flags |= CF_ACME;
    handshake(c, e);
    certcache_entry_unref(e);
}

static void decide(conn_t *c, const ch_info_t *ci)
{
    edge_worker_t *w = c->w;
    metrics_t *m = w->hub->metrics;
    switch (ci->sni_status) {
    case CH_SNI_NONE:
        metrics_inc(m, M_SNI_MISSING);
        no_name(c);
        return;
    case CH_SNI_IP:
        metrics_inc(m, M_SNI_IP);
        no_name(c);
        return;
    case CH_SNI_OK:
        break;
    default:
        metrics_inc(m, M_SNI_UNKNOWN);
        tls_refuse(c, CH_ALERT_UNRECOGNIZED_NAME);
        return;
    }
    if (!(c->host = util_strndup(ci->sni, ci->sni_len))) {
        tls_refuse(c, CH_ALERT_INTERNAL_ERROR);
        return;
    }
    c->host_len = (uint8_t)ci->sni_len;
    if (ci->alpn_acme && !ci->alpn_http11 && !ci->alpn_h2) {
        acme(c, c->host);
        return;
    }
    int neg = negcache_get(w->sh->neg, c->host, util_mono_ms());
    if (neg != NEGCACHE_MISS) {
        metrics_inc(m, M_SNI_NEGCACHE_HIT);
        tls_refuse(c, neg == NEGCACHE_UNKNOWN || neg == NEGCACHE_NOT_VERIFIED ? CH_ALERT_UNRECOGNIZED_NAME
                                                                             : CH_ALERT_INTERNAL_ERROR);
        return;
    }
    certcache_entry_t *e = certcache_get(w->sh->certs, c->host);
    if (e && entry_usable(w, e)) {
        metrics_inc(m, M_SNI_KNOWN);
        c->route = route_ref(e->route);
        handshake(c, e);
        certcache_entry_unref(e);
        return;
    }
    certcache_entry_unref(e);
    /* The worker may already know the host waits for a certificate or a
     * probe: park without another store lookup. */
    conn_watch_close(c);
    conn_deadline(c, w->cfg->handshake_wait_ms);
    route_t *r = route_cache_get(w, c->host, c->host_len);
    if (r && r->kind != ROUTE_READY) {
        c->state = CS_LOOKUP;
        tls_on_route(c, r, NULL, LOAD_FOUND);
        return;
    }
    lookup(c);
}

static void hello(conn_t *c)
{
    edge_worker_t *w = c->w;
    ssize_t n = recv(c->fd, w->hello, sizeof(w->hello), MSG_PEEK);
    if (n == 0) {
        conn_close(c);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            conn_close(c);
        else
            conn_watch_hello(c);
        return;
    }
    ch_info_t ci;
    ch_result_t r = ch_parse(w->hello, (size_t)n, &ci);
    switch (r) {
    case CH_NEED_MORE:
        if ((size_t)n >= sizeof(w->hello)) {
            tls_refuse(c, CH_ALERT_DECODE_ERROR);
            return;
        }
        if (util_socket_error(c->fd) != 0) {
            /* A reset after half a hello: the peek still shows the old
             * bytes, and no new edge will ever come. */
            conn_close(c);
            return;
        }
        conn_watch_hello(c); /* the next segment brings a new edge */
        return;
    case CH_NOT_TLS:
        refuse_not_tls(c, &ci);
        return;
    case CH_MALFORMED:
        log_debug("tls.bad_hello", "peer=%s", c->ip);
        tls_refuse(c, CH_ALERT_DECODE_ERROR);
        return;
    case CH_OK:
        break;
    }
    c->t0_us = clock_now_us();
    decide(c, &ci);
}

void tls_on_accept(conn_t *c)
{
    c->state = CS_HELLO;
    conn_deadline(c, c->w->cfg->header_timeout_ms);
    /* TCP_DEFER_ACCEPT: the hello is usually here already, so no event is
     * registered unless we have to wait for it. */
    hello(c);
}

void tls_on_readable(conn_t *c, short what)
{
    switch (c->state) {
    case CS_HELLO:
        if (what & EV_CLOSED) {
            conn_close(c);
            return;
        }
        hello(c);
        return;
    case CS_LOOKUP:
    case CS_PARKED:
        if (what & EV_CLOSED)
            conn_close(c); /* the client gave up waiting */
        return;
    case CS_HANDSHAKE:
        step(c);
        return;
    default:
        return;
    }
}

void tls_on_writable(conn_t *c)
{
    if (c->state == CS_HANDSHAKE)
        step(c);
}

void tls_on_timeout(conn_t *c)
{
    switch (c->state) {
    case CS_LOOKUP:
        log_info("tls.wait_timeout", "host=%s peer=%s stage=lookup", c->host ? c->host : "-", c->ip);
        tls_refuse(c, CH_ALERT_INTERNAL_ERROR);
        return;
    case CS_PARKED:
        log_info("tls.wait_timeout", "host=%s peer=%s stage=%s", c->host ? c->host : "-", c->ip,
                 c->park_why == ROUTE_UNVERIFIED ? "probe" : "certificate");
        tls_refuse(c, c->park_why == ROUTE_UNVERIFIED ? CH_ALERT_UNRECOGNIZED_NAME : CH_ALERT_INTERNAL_ERROR);
        return;
    default:
        metrics_inc(c->w->hub->metrics, M_TLS_HANDSHAKE_FAILED);
        conn_close(c);
        return;
    }
}
