/* route: what the edge knows about one hostname — its project, upstreams,
 * signing key, limits and whether a certificate can be served — and the
 * per-worker tables around it: a route cache, and the pending store lookups
 * with the connections waiting on each.
 *
 * A route_t is built once (on a loader thread) and never changes except for
 * its `dead` flag; it is shared between workers through the certificate
 * cache (certcache entry->route) and freed by the last route_unref (atomic
 * count). A worker's route cache and each connection hold one reference
 * each. Waiters are connections (not owned): conn.c removes a closing
 * connection from its wait list with route_wait_cancel. */
#ifndef HEE_EDGE_ROUTE_H
#define HEE_EDGE_ROUTE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/route_project.h"
#include "edge/upstream.h"

struct edge_worker;
struct conn;
struct loader_result;

enum route_kind {
    ROUTE_READY = 0,      /* verified, active, with a usable certificate */
    ROUTE_NEED_CERT,      /* verified, but no (valid) certificate yet */
    ROUTE_UNVERIFIED,     /* registered, DNS not verified yet */
};

typedef struct route {
    atomic_uint refs;
    atomic_int dead;             /* set by MSG_DOMAIN_CHANGED */
    uint64_t serial;             /* unique per route object (signature cache key) */
    uint64_t epoch;              /* project epoch when loaded */
    int64_t loaded_ms;           /* clock_coarse_ms (its project part's made_ms) */
    enum route_kind kind;
    char *host;                  /* stored after the struct */
    size_t host_len;
    int64_t domain_id, project_id;
    route_project_t *proj;       /* one reference; the fields below point into it */
    const char *slug;
    size_t slug_len;
    upstream_addr_t *up;         /* proj->up: primary, fallback */
    int n_up;
    char *meta_b64;              /* base64url of the metadata JSON, or NULL
                                    unless the project sets forwardMetadata */
    size_t meta_len;
    const unsigned char *hmac_key; /* secret */
    size_t hmac_len;
    int64_t max_body;            /* project maxBodyBytes, 0 = none */
} route_t;

route_t *route_ref(route_t *r);
void route_unref(route_t *r);               /* NULL-safe */
void route_unref_cb(void *r);                /* for certcache_entry route_free */
void *route_ref_cb(void *r);                 /* for certcache_get_route */
/* Usable by w: not dead, loaded under the current project epoch, and
 * younger than [edge] route_ttl (how long a route is trusted without
 * hearing from the control thread). */
int route_fresh(const struct edge_worker *w, const route_t *r);

/* ---- per-worker route cache ---- */
/* A fresh cached route (borrowed: route_ref to keep it) or NULL. */
route_t *route_cache_get(struct edge_worker *w, const char *host, size_t len);
void route_cache_put(struct edge_worker *w, route_t *r);
/* Marks the host's route dead and forgets it (MSG_DOMAIN_CHANGED). */
void route_cache_kill(struct edge_worker *w, const char *host);
void route_cache_free(struct edge_worker *w);

/* ---- pending lookups ----
 * Parks c until the loader answers for host (one store lookup per host per
 * worker however many connections wait), then calls conn_on_route(c, …).
 * 0, or -1 when the lookup cannot be queued (caller fails the connection). */
int route_wait(struct edge_worker *w, struct conn *c, const char *host, size_t len);
void route_wait_cancel(struct conn *c);
/* Installs a loader answer and wakes its waiters; frees res. */
void route_on_result(struct edge_worker *w, struct loader_result *res);
void route_waits_free(struct edge_worker *w);

#endif
