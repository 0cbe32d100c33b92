/* upstream: project origins as seen by one worker — a parsed and resolved
 * address (upstream_addr_t), a per-worker target with its keep-alive pool
 * (upstream_t), and the TCP connections to it (uconn_t).
 *
 * Ownership: a worker owns its upstream_t table (freed at worker exit) and
 * every uconn_t. A uconn_t is either lent to one client connection (owner
 * set; the proxy drives it and gives it back with uconn_release) or idle in
 * its target's pool (owner NULL; the pool closes it on EOF or after the
 * idle timeout). https:// origins get a TLS client connection (the uconn
 * owns its SSL) verified against [edge] upstream_ca_bundle, or the system
 * trust store when that is empty, and the URL's host name; each target
 * keeps the last session to resume. The TLS client context is built once
 * by the edge (upstream_ssl_ctx_new) and shared read-only by all workers;
 * so is the passive-health board, where each target holds one reference
 * to its origin's entry (health.h). */
#ifndef HEE_EDGE_UPSTREAM_H
#define HEE_EDGE_UPSTREAM_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <sys/uio.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "edge/health.h"
#include "edge/iobuf.h"

struct edge_worker;
struct conn;

#define UPSTREAM_KEY_MAX 300

/* A name keeps every address it resolves to (nginx and HAProxy do too):
 * "localhost" is ::1 and 127.0.0.1 on a stock Debian, and the origin may
 * listen on only one. 8 covers a name's A + AAAA sets in practice. */
#define UPSTREAM_ADDRS_MAX 8

/* One address in sockaddr_in6-sized room (28 bytes, not the 128 of a
 * sockaddr_storage): these sit in every project part. */
typedef union upstream_sa {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} upstream_sa_t;

typedef struct upstream_addr {
    int tls;                         /* https:// */
    char key[UPSTREAM_KEY_MAX];      /* "http://host:port": the pool key */
    size_t key_len;
    char host[256];
    uint16_t port;
    uint8_t n_addrs;
    int resolved;                    /* n_addrs > 0 */
    int64_t resolved_ms;             /* clock_coarse_ms when it was resolved */
    upstream_sa_t addrs[UPSTREAM_ADDRS_MAX]; /* in getaddrinfo's order, no duplicates */
} upstream_addr_t;

/* Parses "http://host[:port][/ignored-path]" (https too). 0, or -1 with a
 * static reason in *why. Pure: any thread. */
int upstream_addr_parse(const char *url, upstream_addr_t *out, const char **why);
/* Resolves out->host (numeric fast path, else getaddrinfo) into addrs:
 * every IPv4/IPv6 answer in order, duplicates dropped, at most
 * UPSTREAM_ADDRS_MAX. BLOCKING: call it on a loader thread only. 0 or -1. */
int upstream_addr_resolve(upstream_addr_t *a);
/* Appends sa unless a already holds it, it is not IPv4/IPv6, or the list
 * is full: 1 appended, 0 not. Pure (resolve's list step, for tests). */
int upstream_addr_add(upstream_addr_t *a, const struct sockaddr *sa, socklen_t len);
/* The socket address length of slot i. */
socklen_t upstream_addr_len(const upstream_addr_t *a, unsigned i);

typedef struct uconn uconn_t;

typedef struct upstream {
    upstream_addr_t addr;
    SSL_SESSION *session;            /* https: last session, for resumption */
    TAILQ_HEAD(upstream_idle_head, uconn) idle; /* most recently used first */
    unsigned n_idle;
    unsigned n_conns;                /* uconns (lent or pooled) pointing here: it lives while > 0 */
    int64_t used_ms;                 /* the worker's tick time (mono_ms) at the last upstream_get */
    health_entry_t *health;          /* the workers' shared passive-health mark (health.h) */
    uint8_t good;                    /* addr.addrs[] index that connected last: tried first */
} upstream_t;

enum uconn_state { UC_CONNECTING, UC_TLS, UC_READY };

struct uconn {
    struct edge_worker *w;
    upstream_t *target;
    int fd;
    uint8_t ai;                      /* target->addr.addrs[] index this connects to */
    uint8_t tried;                   /* addresses tried by this connect, ai included */
    SSL *ssl;                        /* https origins */
    uint8_t state;
    uint8_t rd_on, wr_on;            /* events currently added */
    uint8_t rd_full;                 /* the last read filled its buffer: more may wait */
    int err;                         /* why progress failed (errno value) */
    struct event rev, wev;
    iobuf_t in;                      /* response bytes not yet relayed */
    struct conn *owner;              /* client connection, NULL when pooled */
    int64_t idle_since_ms;
    uint32_t nreq;
    TAILQ_ENTRY(uconn) link;
};

/* The worker's target for a (its table, w->upstreams, is keyed by
 * a->key: one hash lookup), created on first use; its address is
 * refreshed from a when a holds a newer resolution. NULL when out of
 * memory. */
upstream_t *upstream_get(struct edge_worker *w, const upstream_addr_t *a);
void upstream_table_free(struct edge_worker *w);

/* An idle pooled connection (now owned by owner), or NULL. One holding
 * bytes the origin sent while it was idle is closed instead. */
uconn_t *upstream_take(upstream_t *u, struct conn *owner);
/* Starts a non-blocking connect to u's last good address; an address
 * that fails at once (ECONNREFUSED on loopback often does, ENETUNREACH
 * for an IPv6 address without a route) moves on to the next one. NULL
 * with errno set when every address failed at once. */
uconn_t *uconn_connect(struct edge_worker *w, upstream_t *u, struct conn *owner);
/* uc's TCP connect failed or timed out (state UC_CONNECTING): closes it
 * and connects to the target's next untried address, same owner. NULL
 * with errno = uc->err (or the last failure) when none is left; uc is
 * closed either way. A TLS failure is not retried: every address of a
 * name presents the same certificate check. */
uconn_t *uconn_connect_next(uconn_t *uc);
/* Gives the connection back: to the pool when reusable (and the pool has
 * room), closed otherwise — also when the origin sent bytes past its
 * response, so they can never answer another client's request. */
void uconn_release(uconn_t *uc, int reusable);
void uconn_close(uconn_t *uc);
/* Moves a new connection on (TCP connect, then TLS for https) on any
 * event while state != UC_READY: 1 ready, 0 waiting (interest armed),
 * -1 failed (uc->err says why). */
int uconn_progress(uconn_t *uc);
/* I/O that hides TLS: like writev/recv, -1 with errno (EAGAIN when it
 * would block; with TLS, retry later with the same bytes). */
ssize_t uconn_writev(uconn_t *uc, const struct iovec *iov, int n);
ssize_t uconn_send(uconn_t *uc, const void *p, size_t n);
ssize_t uconn_recv(uconn_t *uc, void *buf, size_t len);
/* 1 when decrypted bytes wait inside OpenSSL (epoll will not say so). */
int uconn_pending(const uconn_t *uc);
/* Runs the read handler when OpenSSL holds decrypted bytes, which epoll
 * cannot report. */
void uconn_read_pending(uconn_t *uc);
/* The TLS client context for https upstreams, trusting the PEM bundle
 * ca_bundle (NULL or "" = the system trust store). Reads files: call at
 * start-up. NULL with *err malloc'd on failure. The caller frees it with
 * SSL_CTX_free after every worker is gone. */
SSL_CTX *upstream_ssl_ctx_new(const char *ca_bundle, char **err);
/* Read / write interest (idempotent). */
void uconn_want_read(uconn_t *uc, int on);
void uconn_want_write(uconn_t *uc, int on);
/* Passive health, shared by the workers (as nginx's max_fails=1
 * fail_timeout): a connect that failed on every address marks u's origin
 * down for for_ms ([edge] upstream_fail_timeout; 0 = never) on every
 * worker; a connect that succeeds clears it. upstream_down: marked and
 * nothing pooled on this worker (a pooled connection is proof of life).
 * mark returns 1 for the one caller that took it from up to down. */
int upstream_mark_failed(upstream_t *u, int64_t now_ms, int64_t for_ms);
int upstream_down(const upstream_t *u, int64_t now_ms);
/* Closes pooled connections idle longer than idle_ms; closes all with 0
 * (the pool bound and the idle timeout are [edge] upstream_idle_conns /
 * upstream_idle_timeout). With idle_ms > 0 it also frees up to a few
 * targets that have no connection and were not used for
 * UPSTREAM_UNUSED_MS (origins a project no longer names). now_ms is
 * clock_coarse_ms. */
#ifndef UPSTREAM_UNUSED_MS /* tests may build with a shorter one */
#define UPSTREAM_UNUSED_MS (10 * 60 * 1000)
#endif
void upstream_sweep(struct edge_worker *w, int64_t now_ms, int64_t idle_ms);
void upstream_sweep_one(upstream_t *u, int64_t now_ms, int64_t idle_ms);

#endif
