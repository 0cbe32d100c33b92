#include "edge/loader.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/store_edge.h"
#include "common/util.h"
#include "edge/clock.h"

/* DESIGN
 * One FIFO of jobs under a mutex + condvar, served by a few threads; each
 * thread owns one read-only store handle for its whole life. A job's answer
 * goes to the reply queue the worker named (queue_push wakes its loop).
 * Everything slow for one hostname happens here, once: the two indexed
 * SELECTs, PEM parsing into a certcache entry, settings JSON, metadata
 * base64 and the upstream resolution (getaddrinfo may block; it is the
 * reason there is more than one thread). */

#define LOADER_BACKLOG_MAX 16384
/* How often thread 0 drops project parts no new route may use (see
 * loader_prune): a project deleted behind the daemon's back (the CLI)
 * keeps its key in the table at most route_ttl + this long. */
#define PRUNE_EVERY_MS 10000
/* Outcomes we cache negatively when the store itself failed: briefly. */
#define STORE_ERROR_TTL_MS 1000

struct job {
    struct job *next;
    int worker;
    queue_t *reply;
    char host[MSG_HOST_MAX];
};

struct loader {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct job *head, *tail;
    int n, stop;
    int nthreads, started;
    pthread_t th[LOADER_THREADS_MAX];
    store_t *st[LOADER_THREADS_MAX];
    loader_shared_t sh;
    _Atomic uint64_t serial;
    route_project_table_t *projects; /* the latest shared part of each project */
};

struct thread_arg {
    loader_t *l;
    int i;
};

void loader_result_free(void *p)
{
    loader_result_t *r = p;
    if (!r)
        return;
    route_unref(r->route);
    certcache_entry_unref(r->entry);
    free(r);
}

/* The project's shared part: the one built under this epoch within
 * route_ttl (so upstream names are resolved again after it), or a new one.
 * Two threads may build at once; the later one stays in the table. */
static route_project_t *project_part(loader_t *l, const store_edge_host_t *h, const char *host, uint64_t epoch)
{
    int64_t ttl = atomic_load(l->sh.route_ttl_ms);
    route_project_t *p = route_project_table_get(l->projects, h->project_id, epoch, clock_coarse_ms(), ttl);
    if (p || !(p = route_project_build(h, host, epoch)))
        return p;
    (void)route_project_table_put(l->projects, p); /* when it fails: used, just not shared */
    return p;
}

static route_t *build_route(loader_t *l, const store_edge_host_t *h, const char *host, uint64_t epoch)
{
    size_t hlen = strlen(host);
    route_t *r = calloc(1, sizeof(*r) + hlen + 1);
    if (!r)
        return NULL;
    atomic_init(&r->refs, 1);
    atomic_init(&r->dead, 0);
    r->serial = atomic_fetch_add(&l->serial, 1) + 1;
    r->epoch = epoch;
    r->host = (char *)(r + 1);
    memcpy(r->host, host, hlen + 1);
    r->host_len = hlen;
    r->domain_id = h->domain_id;
    r->project_id = h->project_id;
    route_project_t *p = r->proj = project_part(l, h, host, epoch);
    if (!p) {
        route_unref(r);
        return NULL;
    }
    /* The route is as old as its upstream addresses: a shared part made
     * just before route_ttl ran out must not live another route_ttl. */
    r->loaded_ms = p->made_ms;
    r->slug = p->slug;
    r->slug_len = p->slug_len;
    r->up = p->up;
    r->n_up = p->n_up;
    r->hmac_key = p->hmac_key;
    r->hmac_len = p->hmac_len;
    r->max_body = p->max_body;
    if (p->forward_metadata && h->metadata) {
        r->meta_b64 = util_b64(h->metadata, strlen(h->metadata), 1);
        r->meta_len = r->meta_b64 ? strlen(r->meta_b64) : 0;
    }
    r->kind = !h->verified ? ROUTE_UNVERIFIED : ROUTE_NEED_CERT;
    return r;
}

/* The row's private key as PEM: h's own bytes, or (sealed) a malloc'd
 * plaintext in *plain that the caller wipes with keyseal_free_secret. The
 * context is the hostname the issuer sealed it under. 0, or -1 with *why. */
static int open_key(loader_t *l, const store_edge_host_t *h, const char *host, const char **pem,
                    size_t *len, char **plain, const char **why)
{
    *plain = NULL;
    if (!h->key_sealed) {
        *pem = h->key_pem;
        *len = h->key_pem_len;
        return 0;
    }
    if (!l->sh.seal) {
        *why = "sealed key but no [store] key_encryption_key";
        return -1;
    }
    if (keyseal_open(l->sh.seal, host, h->key_pem, h->key_pem_len, plain, len) != 0) {
        *why = "sealed key does not open with key_encryption_key";
        return -1;
    }
    *pem = *plain;
    return 0;
}

/* Turns the stored certificate into a cache entry when it can be served. */
static void attach_cert(loader_t *l, loader_result_t *res, const store_edge_host_t *h)
{
    route_t *r = res->route;
    if (r->kind == ROUTE_UNVERIFIED || !h->has_cert)
        return;
    if (h->cert_not_after <= util_now_ms()) {
        res->why = "certificate expired";
        return;
    }
    const char *why = NULL, *key = NULL;
    char *plain = NULL;
    size_t key_len = 0;
    if (open_key(l, h, res->host, &key, &key_len, &plain, &why) != 0) {
        res->why = why;
        res->status = LOAD_ERROR;
        log_warn("edge.cert_unusable", "host=%s reason=\"%s\"", res->host, res->why);
        return;
    }
    r->kind = ROUTE_READY; /* before the entry shares r with other threads */
    certcache_entry_t *e = certcache_entry_from_pem(l->sh.certs, h->chain_pem, strlen(h->chain_pem),
                                                    key, key_len, route_ref(r), route_unref_cb, &why);
    keyseal_free_secret(plain, key_len); /* NULL when the key was not sealed */
    if (!e) {
        route_unref(r);
        r->kind = ROUTE_NEED_CERT;
        res->why = why ? why : "unusable certificate";
        res->status = LOAD_ERROR;
        log_warn("edge.cert_unusable", "host=%s reason=\"%s\"", res->host, res->why);
        return;
    }
    if (certcache_put(l->sh.certs, res->host, e) != 0)
        log_warn("edge.certcache_put_failed", "host=%s", res->host);
    res->entry = e;
}

static loader_result_t *lookup(loader_t *l, store_t *s, const struct job *j)
{
    loader_result_t *res = calloc(1, sizeof(*res));
    if (!res)
        return NULL;
    res->worker = j->worker;
    memcpy(res->host, j->host, sizeof(res->host));
    uint64_t epoch = atomic_load(l->sh.epoch); /* before reading: a change during the read makes it stale */
    int ttl = atomic_load(l->sh.negative_ttl_ms);
    store_edge_host_t h;
    int rc = store_edge_lookup(s, j->host, &h);
    metrics_inc(l->sh.metrics, rc == STORE_OK         ? M_STORE_LOOKUP_FOUND
                               : rc == STORE_NOTFOUND ? M_STORE_LOOKUP_NOTFOUND
                                                      : M_STORE_LOOKUP_ERROR);
    if (rc == STORE_NOTFOUND) {
        res->status = LOAD_UNKNOWN;
        if (ttl > 0)
            negcache_put(l->sh.neg, j->host, NEGCACHE_UNKNOWN, util_mono_ms(), ttl);
        return res;
    }
    if (rc != STORE_OK) {
        res->status = LOAD_ERROR;
        res->why = "store error";
        negcache_put(l->sh.neg, j->host, NEGCACHE_STORE_ERROR, util_mono_ms(), STORE_ERROR_TTL_MS);
        return res;
    }
    res->route = build_route(l, &h, j->host, epoch);
    if (!res->route) {
        res->status = LOAD_ERROR;
        res->why = "out of memory";
    } else {
        res->status = LOAD_FOUND;
        attach_cert(l, res, &h);
        if (res->status != LOAD_FOUND) {
            route_unref(res->route);
            res->route = NULL;
        }
    }
    store_edge_clear(&h);
    return res;
}

/* Waits on l->cond (l->lock held) until at_ms (clock_coarse_ms). */
static int wait_until(loader_t *l, int64_t at_ms)
{
    struct timespec ts;
    int64_t ms = at_ms - clock_coarse_ms();
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the condvar's clock (loader_new) */
    ms = ms < 1 ? 1 : ms;
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return pthread_cond_timedwait(&l->cond, &l->lock, &ts);
}

static void *thread_main(void *p)
{
    struct thread_arg *ta = p;
    loader_t *l = ta->l;
    util_name_thread("hee-loader", ta->i);
    store_t *s = l->st[ta->i];
    int pruner = ta->i == 0;
    int64_t prune_at = clock_coarse_ms() + PRUNE_EVERY_MS;
    free(ta);
    for (;;) {
        if (pruner && clock_coarse_ms() >= prune_at) {
            loader_prune(l);
            prune_at = clock_coarse_ms() + PRUNE_EVERY_MS;
        }
        pthread_mutex_lock(&l->lock);
        int due = 0;
        while (!l->stop && !l->head && !due) {
            if (pruner)
                due = wait_until(l, prune_at) == ETIMEDOUT;
            else
                pthread_cond_wait(&l->cond, &l->lock);
        }
        if (l->stop || !l->head) {
            int stop = l->stop;
            pthread_mutex_unlock(&l->lock);
            if (stop)
                break;
            continue; /* time to prune */
        }
        struct job *j = l->head;
        l->head = j->next;
        if (!l->head)
            l->tail = NULL;
        pthread_mutex_unlock(&l->lock);
        loader_result_t *res = lookup(l, s, j);
        if (res && queue_push(j->reply, res) != 0) {
            /* the worker's bounded wait answers the parked connection */
            log_warn("edge.loader_reply_failed", "host=%s", j->host);
            loader_result_free(res);
        }
        pthread_mutex_lock(&l->lock);
        l->n--;
        pthread_mutex_unlock(&l->lock);
        free(j);
    }
    return NULL;
}

loader_t *loader_new(const char *store_path, int nthreads, const loader_shared_t *sh, char **err)
{
    loader_t *l = calloc(1, sizeof(*l));
    if (!l) {
        *err = strdup("out of memory");
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_mutex_init(&l->lock, NULL);
    /* Thread 0's prune timer must not follow wall-clock jumps. */
    int cok = 0;
    if (pthread_condattr_init(&ca) == 0) {
        cok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(&l->cond, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (!cok) {
        pthread_mutex_destroy(&l->lock);
        free(l);
        *err = strdup("cannot set up the loader's condition variable");
        return NULL;
    }
    l->sh = *sh;
    if (!(l->projects = route_project_table_new(sh->epoch))) {
        *err = strdup("out of memory");
        loader_free(l);
        return NULL;
    }
    l->nthreads = nthreads < 1 ? 1 : nthreads > LOADER_THREADS_MAX ? LOADER_THREADS_MAX : nthreads;
    for (int i = 0; i < l->nthreads; i++) {
        if (!(l->st[i] = store_open(store_path, STORE_RO, err))) {
            loader_free(l);
            return NULL;
        }
    }
    return l;
}

int loader_start(loader_t *l)
{
    for (int i = 0; i < l->nthreads; i++) {
        struct thread_arg *ta = malloc(sizeof(*ta));
        if (!ta)
            return -1;
        ta->l = l;
        ta->i = i;
        if (pthread_create(&l->th[i], NULL, thread_main, ta) != 0) {
            free(ta);
            return -1;
        }
        l->started++;
    }
    return 0;
}

int loader_submit(loader_t *l, int worker, const char *host, queue_t *reply)
{
    struct job *j = malloc(sizeof(*j));
    if (!j)
        return -1;
    j->next = NULL;
    j->worker = worker;
    j->reply = reply;
    strncpy(j->host, host, sizeof(j->host) - 1);
    j->host[sizeof(j->host) - 1] = '\0';
    pthread_mutex_lock(&l->lock);
    if (l->stop || l->n >= LOADER_BACKLOG_MAX) {
        pthread_mutex_unlock(&l->lock);
        free(j);
        return -1;
    }
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    l->n++;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->lock);
    return 0;
}

void loader_prune(loader_t *l)
{
    if (!l)
        return;
    size_t n = route_project_table_prune(l->projects, clock_coarse_ms(), atomic_load(l->sh.route_ttl_ms));
    if (n)
        log_debug("edge.project_parts_dropped", "count=%zu", n);
}

int loader_backlog(loader_t *l)
{
    pthread_mutex_lock(&l->lock);
    int n = l->n;
    pthread_mutex_unlock(&l->lock);
    return n;
}

void loader_stop(loader_t *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->stop = 1;
    pthread_cond_broadcast(&l->cond);
    pthread_mutex_unlock(&l->lock);
    for (int i = 0; i < l->started; i++)
        pthread_join(l->th[i], NULL);
    l->started = 0;
}

void loader_free(loader_t *l)
{
    if (!l)
        return;
    loader_stop(l);
    for (struct job *j = l->head, *nx; j; j = nx) {
        nx = j->next;
        free(j);
    }
    for (int i = 0; i < l->nthreads; i++)
        store_close(l->st[i]);
    route_project_table_free(l->projects);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
