/* route_project: what every route of one project shares — slug, HMAC key,
 * resolved upstream addresses, limits — and the loader's table that keeps
 * the latest one of each project, so a hostname costs a small route_t, not
 * its own copy of the upstream addresses (~1.6 KB) and key.
 *
 * A route_project_t is built once (on a loader thread, which may block in
 * name resolution), immutable afterwards, and freed — key wiped — by the
 * last route_project_unref: the table holds one reference while the part
 * can still be shared, every route built on it holds one.
 *
 * The table (one per loader, any thread: it locks) keeps a part only while
 * it can be handed to a new route: built under the current project epoch
 * and younger than route_ttl. route_project_table_prune drops the others;
 * after a project is deleted or changed (the epoch moves) its part then
 * lives only as long as the routes that still use it. */
#ifndef HEE_EDGE_ROUTE_PROJECT_H
#define HEE_EDGE_ROUTE_PROJECT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "edge/upstream.h"

struct store_edge_host; /* common/store_edge.h */

typedef struct route_project {
    atomic_uint refs;
    int64_t project_id;
    uint64_t epoch;              /* project epoch when built */
    int64_t made_ms;             /* clock_coarse_ms: when the upstreams were resolved */
    char *slug;
    size_t slug_len;
    upstream_addr_t up[2];       /* primary, fallback */
    int n_up;
    unsigned char *hmac_key;     /* secret */
    size_t hmac_len;
    int64_t max_body;            /* project maxBodyBytes, 0 = none */
    int forward_metadata;        /* settings.forwardMetadata */
} route_project_t;

/* A new part (one reference) from the store's row for host (host only
 * names the row in log lines). Resolves the upstream names: BLOCKING, call
 * it on a loader thread. NULL when out of memory. */
route_project_t *route_project_build(const struct store_edge_host *h, const char *host, uint64_t epoch);
route_project_t *route_project_ref(route_project_t *p);
void route_project_unref(route_project_t *p); /* NULL-safe */

typedef struct route_project_table route_project_table_t;

/* epoch is the edge's project epoch, read under the table's lock (borrowed:
 * it must outlive the table). NULL when out of memory. */
route_project_table_t *route_project_table_new(const _Atomic uint64_t *epoch);
void route_project_table_free(route_project_table_t *t); /* NULL-safe */
/* The project's part if it was built under epoch and ttl_ms has not passed
 * since (one more reference), else NULL. */
route_project_t *route_project_table_get(route_project_table_t *t, int64_t project_id, uint64_t epoch,
                                         int64_t now_ms, int64_t ttl_ms);
/* Keeps p (one more reference) as its project's latest, replacing the one
 * before, unless the epoch moved past p's meanwhile. 0, or -1 when out of
 * memory (p is then simply not shared). */
int route_project_table_put(route_project_table_t *t, route_project_t *p);
/* Drops every part no new route may use any more (older epoch, or ttl_ms
 * passed). Returns how many were dropped. */
size_t route_project_table_prune(route_project_table_t *t, int64_t now_ms, int64_t ttl_ms);
size_t route_project_table_count(route_project_table_t *t);

#endif
