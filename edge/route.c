#include "edge/route.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "edge/clock.h"
#include "edge/conn.h"
#include "edge/loader.h"
#include "edge/worker.h"

/* Most distinct hosts one worker may have in flight at the loader; past
 * it new lookups are refused (a flood of new names must not queue
 * unbounded work). */
#define LOOKUPS_MAX 4096

typedef struct lookup {
    TAILQ_HEAD(, conn) conns;
    int n;
    int stale;  /* the answer may predate a change: ask again */
    char host[];
} lookup_t;

route_t *route_ref(route_t *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

static void route_free(route_t *r)
{
    route_project_unref(r->proj);
    free(r->meta_b64);
    free(r);
}

void route_unref(route_t *r)
{
    if (r && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        route_free(r);
}

void route_unref_cb(void *r)
{
    route_unref(r);
}

void *route_ref_cb(void *r)
{
    return route_ref(r);
}

int route_fresh(const edge_worker_t *w, const route_t *r)
{
    return !atomic_load_explicit(&r->dead, memory_order_relaxed) && r->epoch == atomic_load(&w->sh->epoch) &&
           clock_coarse_ms() - r->loaded_ms < w->cfg->route_ttl_ms;
}

/* ---- cache ---- */

route_t *route_cache_get(edge_worker_t *w, const char *host, size_t len)
{
    route_t *r = strmap_get(w->routes, host, len);
    if (!r)
        return NULL;
    if (route_fresh(w, r))
        return r;
    strmap_del(w->routes, host, len);
    route_unref(r);
    return NULL;
}

void route_cache_put(edge_worker_t *w, route_t *r)
{
    int err = 0;
    if (strmap_count(w->routes) >= (size_t)w->cfg->cert_cache_size)
        route_unref(strmap_evict_one(w->routes, (uint64_t)util_random_below(1u << 30)));
    route_t *old = strmap_put(w->routes, r->host, r->host_len, route_ref(r), &err);
    if (err)
        route_unref(r);
    route_unref(old);
}

static void mark_stale(edge_worker_t *w, const char *host)
{
    lookup_t *lk = strmap_get(w->lookups, host, strlen(host));
    if (lk)
        lk->stale = 1;
}

void route_cache_kill(edge_worker_t *w, const char *host)
{
    size_t len = strlen(host);
    route_t *r = strmap_del(w->routes, host, len);
    if (r) {
        atomic_store(&r->dead, 1);
        route_unref(r);
    }
    /* Other workers' caches and connections may hold the certificate
     * cache's route: marking it dead reaches them all. */
    route_t *cr = certcache_get_route(w->sh->certs, host, route_ref_cb);
    if (cr) {
        atomic_store(&cr->dead, 1);
        route_unref(cr);
    }
    certcache_remove(w->sh->certs, host);
    mark_stale(w, host);
}

void route_cache_free(edge_worker_t *w)
{
    strmap_free(w->routes, route_unref_cb);
    w->routes = NULL;
}

/* ---- pending lookups ---- */

int route_wait(edge_worker_t *w, conn_t *c, const char *host, size_t len)
{
    lookup_t *lk = strmap_get(w->lookups, host, len);
    if (!lk) {
        int err = 0;
        if (w->n_lookups >= LOOKUPS_MAX || !(lk = calloc(1, sizeof(*lk) + len + 1)))
            return -1;
        TAILQ_INIT(&lk->conns);
        memcpy(lk->host, host, len);
        strmap_put(w->lookups, lk->host, len, lk, &err);
        if (err || loader_submit(w->sh->loader, w->index, lk->host, w->results) != 0) {
            if (!err)
                strmap_del(w->lookups, lk->host, len);
            free(lk);
            return -1;
        }
        w->n_lookups++;
    }
    TAILQ_INSERT_TAIL(&lk->conns, c, wlink);
    lk->n++;
    c->wait_on = lk;
    return 0;
}

void route_wait_cancel(conn_t *c)
{
    lookup_t *lk = c->wait_on;
    if (!lk)
        return;
    /* The entry stays until the loader answers, so the host is not
     * looked up twice meanwhile. */
    TAILQ_REMOVE(&lk->conns, c, wlink);
    lk->n--;
    c->wait_on = NULL;
}

void route_on_result(edge_worker_t *w, loader_result_t *res)
{
    size_t len = strlen(res->host);
    lookup_t *lk = strmap_del(w->lookups, res->host, len);
    if (lk)
        w->n_lookups--;
    if (lk && lk->stale && lk->n > 0) {
        int err = 0;
        lk->stale = 0;
        strmap_put(w->lookups, lk->host, len, lk, &err);
        if (!err && loader_submit(w->sh->loader, w->index, lk->host, w->results) == 0) {
            w->n_lookups++;
            loader_result_free(res);
            return;
        }
        if (!err)
            strmap_del(w->lookups, lk->host, len);
    }
    if (res->status == LOAD_FOUND && res->route)
        route_cache_put(w, res->route);
    if (lk) {
        conn_t *c;
        while ((c = TAILQ_FIRST(&lk->conns))) {
            TAILQ_REMOVE(&lk->conns, c, wlink);
            lk->n--;
            c->wait_on = NULL;
            conn_on_route(c, res->route, res->entry, (int)res->status);
        }
        free(lk);
    }
    loader_result_free(res);
}

static void lookup_free(void *p)
{
    free(p);
}

void route_waits_free(edge_worker_t *w)
{
    strmap_free(w->lookups, lookup_free);
    w->lookups = NULL;
}
