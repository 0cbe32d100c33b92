/* loader: the edge's blocking work, off the event loops — store lookups
 * (common/store_edge), PEM parsing into certificate-cache entries and
 * upstream name resolution — on a few threads, each with its own
 * read-only store handle.
 *
 * A worker submits (host, its reply queue); a loader thread answers with a
 * malloc'd loader_result_t pushed to that queue, which the worker frees with
 * loader_result_free after taking what it wants (route, entry). The loader
 * also fills the shared caches: certcache on a usable certificate,
 * negcache on an unknown name. It keeps the latest shared part of each
 * project (route_project.h) while new routes may use it (loader_prune).
 * Sealed private keys (keyseal.h) are opened here with the edge's key and
 * the plaintext is wiped once the entry is built. The loader_t is owned by the edge; stop it only after the workers
 * stopped submitting, free its queues after that. Everything in
 * loader_shared_t is borrowed and must outlive the loader. */
#ifndef HEE_EDGE_LOADER_H
#define HEE_EDGE_LOADER_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/keyseal.h"
#include "common/metrics.h"
#include "common/msg.h"
#include "common/queue.h"
#include "edge/certcache.h"
#include "edge/route.h"

typedef struct loader loader_t;

enum loader_status {
    LOAD_FOUND = 0,   /* route set (kind says whether a cert is usable) */
    LOAD_UNKNOWN,     /* no active domain: negcache'd, refuse */
    LOAD_ERROR,       /* store or parse failure: refuse for now */
};

typedef struct loader_result {
    int worker;
    enum loader_status status;
    char host[MSG_HOST_MAX];
    route_t *route;              /* one reference, LOAD_FOUND only */
    certcache_entry_t *entry;    /* one reference when kind == ROUTE_READY */
    const char *why;             /* static reason for logs (never secret) */
} loader_result_t;

typedef struct loader_shared {
    certcache_t *certs;
    negcache_t *neg;
    const _Atomic uint64_t *epoch;    /* project epoch (edge-owned) */
    const atomic_int *negative_ttl_ms; /* current [edge] negative_ttl */
    const atomic_int *route_ttl_ms;    /* current [edge] route_ttl */
    const keyseal_t *seal;            /* [store] key_encryption_key, or NULL */
    metrics_t *metrics;               /* store lookup counters (may be NULL) */
} loader_shared_t;

/* Most loader threads (and read-only store handles). */
#define LOADER_THREADS_MAX 16

/* Opens nthreads (1..LOADER_THREADS_MAX) read-only store handles on
 * store_path. NULL + *err. */
loader_t *loader_new(const char *store_path, int nthreads, const loader_shared_t *sh, char **err);
int loader_start(loader_t *l);
/* Queues a lookup; the answer goes to reply. 0, or -1 when the backlog is
 * full or memory ran out. */
int loader_submit(loader_t *l, int worker, const char *host, queue_t *reply);
/* Drops the project parts no new route may use any more (built under an
 * older project epoch, or older than route_ttl), so a deleted project's
 * key and upstreams stay in memory only while routes still use them. Call
 * it after bumping the epoch (MSG_PROJECT_CHANGED); thread 0 also runs it
 * every few seconds, for projects deleted by another process. Any thread. */
void loader_prune(loader_t *l);
/* Lookups queued and not yet answered (all workers). */
int loader_backlog(loader_t *l);
/* Stops and joins the threads; queued lookups are dropped. */
void loader_stop(loader_t *l);
void loader_free(loader_t *l);
void loader_result_free(void *res);

#endif
