/* worker: one edge thread — its event loop, its SO_REUSEPORT listeners, its
 * inbox from the control thread, its loader answers, and everything its
 * connections share (buffer pool, parser scratch, route cache, upstream
 * pools, parked handshakes).
 *
 * The edge (edge.c) allocates the workers and what they share (edge_shared_t),
 * binds the listeners in edge_new and starts the threads; a worker owns and
 * frees everything else it creates, on its own thread, when its loop ends.
 * Nothing in here is touched by another thread except through the queues
 * and the shared, thread-safe objects in edge_shared_t. */
#ifndef HEE_EDGE_WORKER_H
#define HEE_EDGE_WORKER_H

#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/queue.h>

#include "common/hub.h"
#include "edge/certcache.h"
#include "edge/cidr.h"
#include "edge/clienthello.h"
#include "edge/health.h"
#include "edge/http1.h"
#include "edge/iobuf.h"
#include "edge/loader.h"
#include "edge/strmap.h"
#include "edge/tlsrec.h"

struct conn;
struct upstream;

/* Objects every worker uses, owned by the edge. */
typedef struct edge_shared {
    hub_t *hub;
    certcache_t *certs;
    negcache_t *neg;
    loader_t *loader;
    SSL_CTX *up_ssl_ctx;             /* TLS client for https upstreams (read-only) */
    _Atomic uint64_t epoch;          /* bumped by MSG_PROJECT_CHANGED */
    atomic_int negative_ttl_ms;
    atomic_int route_ttl_ms;
    /* per-client-IP connection counts ([edge] max_conns_per_ip) */
    pthread_mutex_t ip_lock;
    strmap_t *ip_counts;
    health_board_t *health;          /* passive upstream health (health.h) */
    /* tls-alpn-01 / default certificate parsed once at start */
    certcache_entry_t *default_cert;
} edge_shared_t;


/* Configuration derived once per config_t (start and each MSG_CONFIG). */
typedef struct worker_conf {
    struct http1_limits lim;
    edge_cidr_t *trusted;
    int n_trusted;
    /* lower-cased header names we set or strip, with lengths */
    char rid_name[64], tenant_name[64], meta_name[64], sig_name[64];
    size_t rid_len, tenant_len, meta_len, sig_len;
    char rid_out[64], tenant_out[64], meta_out[64], sig_out[64]; /* as configured */
    char https_port[8];          /* ":8443" for redirects, "" for 443 */
} worker_conf_t;

enum { LISTEN_TLS = 0, LISTEN_PLAIN = 1 };

typedef struct worker_listener {
    struct edge_worker *w;
    int fd;
    int kind;
    struct evconnlistener *lev;
} worker_listener_t;

/* Counters batched per worker and flushed to hub->metrics on a timer, so
 * the per-request path does not bounce shared cache lines. */
enum { WM_REQUESTS, WM_2XX, WM_3XX, WM_4XX, WM_5XX, WM_UP_REUSE, WM_UP_CONNECT, WM_COUNT };

typedef struct edge_worker {
    int index;
    edge_shared_t *sh;
    hub_t *hub;
    const config_t *cfg;             /* current; MSG_CONFIG swaps it */
    worker_conf_t wc;
    struct event_base *base;
    pthread_t thread;
    int started;
    queue_t *inbox;                  /* hub->to_worker[index] */
    queue_t *results;                /* loader answers */
    SSL_CTX *ssl_ctx;
    SSL_CTX *ssl_ctx_watch;          /* ssl_ctx + the callbacks feeding tlsrec (tls.c) */
    tlsrec_policy_t watch_policy;    /* which handshakes get them (tls.c, conn.c) */
    EVP_CIPHER *ticket_cipher;       /* fetched once for the ticket callback */
    tlsrec_algs_t algs;              /* AEADs and HKDF for taken-over connections */
    worker_listener_t listeners[2 * CONFIG_MAX_LISTEN];
    int n_listeners;
    struct event tick;               /* 100 ms: metrics flush, pool sweep, drain check */
    int tick_on;

    TAILQ_HEAD(, conn) conns;        /* every client connection */
    int n_conns;
    int draining, forced;
    int accept_full, shedding;       /* at max_conns_per_worker (worker.c: accept_cap) */
    int64_t full_since_ms, full_logged_ms;
    int64_t mono_ms;                 /* refreshed by the tick */

    iobuf_pool_t pool;
    strmap_t *routes;                /* host -> route_t* (one reference) */
    strmap_t *lookups;               /* host -> pending lookup (route.c) */
    strmap_t *parked;                /* host -> parked handshakes (tls.c) */
    int n_lookups;
    strmap_t *upstreams;             /* upstream_addr_t.key -> upstream_t (upstream.c) */
    void *req_free;                  /* proxy.c free list of request states */
    int n_req_free;

    /* request ids: per-worker random prefix + counter */
    char rid_prefix[17];
    uint64_t rid_counter;
    /* signature cache: (route serial, second) -> header value */
    struct { uint64_t serial; int64_t t; char v[96]; uint8_t len; } sigcache[64];

    int64_t wm[WM_COUNT];

    /* scratch, one user at a time on this thread */
    struct http1_request hreq;
    struct http1_response hresp;
    uint8_t hello[CH_MAX_WIRE_LEN];
} edge_worker_t;

/* Creates worker i's loop and state (no thread yet); binds nothing. */
edge_worker_t *worker_new(edge_shared_t *sh, int index, char **err);
/* Adds an already-bound listening socket (the worker owns fd from now). */
int worker_add_listener(edge_worker_t *w, int fd, int kind, char **err);
/* Sets hub->to_worker[index] and starts the thread, bound to CPU cpu when
 * cpu >= 0 (a CPU that is not usable fails the start). */
int worker_start(edge_worker_t *w, int cpu);
void worker_join(edge_worker_t *w);
/* After join (and after every producer stopped): frees queues and loop. */
void worker_free(edge_worker_t *w);

/* Recomputes wc from cfg (start and MSG_CONFIG). 0 or -1. */
int worker_apply_config(edge_worker_t *w, const config_t *cfg);
/* Called when a connection is counted: at max_conns_per_worker the worker
 * stops accepting (new connections wait in its listen backlog). */
void worker_conn_added(edge_worker_t *w);
/* Called when a connection goes away: accepts again below the cap; exits
 * the loop when draining ends. */
void worker_conn_gone(edge_worker_t *w);
/* 1 when ip (text) is in [edge] trusted_proxies. */
int worker_trusted(const edge_worker_t *w, const struct sockaddr_storage *ss);
/* Per-IP accounting; 0 when allowed (and counted), -1 over the limit. */
int worker_ip_acquire(edge_worker_t *w, const char *ip);
void worker_ip_release(edge_worker_t *w, const char *ip);

static inline void worker_count(edge_worker_t *w, int m)
{
    w->wm[m]++;
}

#endif
