#include "edge/loader.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/store_edge.h"
#include "common/util.h"

/* DESIGN
 * One FIFO of jobs under a mutex + condvar, served by a few threads; each
 * thread owns one read-only store handle for its whole life. A job's answer
 * goes to the reply queue the worker named (queue_push wakes its loop).
 * Everything slow for one hostname happens here, once: the two indexed
 * SELECTs, PEM parsing into a certcache entry, settings JSON, metadata
 * base64 and the upstream resolution (getaddrinfo may block; it is the
 * reason there is more than one thread). */

#define LOADER_BACKLOG_MAX 16384
#define PROJECT_BUCKETS 256
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
    pthread_mutex_t plock; /* projects */
    struct project_slot *projects[PROJECT_BUCKETS];
};

/* The latest shared part of each project's routes (route_project_t). */
struct project_slot {
    struct project_slot *next;
    route_project_t *p; /* one reference */
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

static void settings_apply(route_project_t *p, const char *settings)
{
    json_error_t jerr;
    json_t *s = json_loads(settings, 0, &jerr);
    if (!json_is_object(s)) {
        json_decref(s);
        return;
    }
    json_t *mb = json_object_get(s, "maxBodyBytes");
    if (json_is_integer(mb) && json_integer_value(mb) > 0)
        p->max_body = json_integer_value(mb);
    p->forward_metadata = json_is_true(json_object_get(s, "forwardMetadata"));
    json_decref(s);
}

static void target(route_project_t *p, const char *url, const char *host)
{
    const char *why = NULL;
    upstream_addr_t *a = &p->up[p->n_up];
    if (upstream_addr_parse(url, a, &why) != 0) {
        log_warn("edge.upstream_bad", "host=%s reason=\"%s\"", host, why);
        return;
    }
    if (upstream_addr_resolve(a) != 0)
        log_warn("edge.upstream_unresolved", "host=%s upstream=%s", host, a->key);
    p->n_up++;
}

static route_project_t *build_project(const store_edge_host_t *h, const char *host, uint64_t epoch)
{
    route_project_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    atomic_init(&p->refs, 1);
    p->project_id = h->project_id;
    p->epoch = epoch;
    p->made_ms = util_mono_ms();
    p->slug = strdup(h->slug);
    p->slug_len = strlen(h->slug);
    p->hmac_key = malloc(h->hmac_key_len ? h->hmac_key_len : 1);
    if (!p->slug || !p->hmac_key) {
        route_project_unref(p);
        return NULL;
    }
    memcpy(p->hmac_key, h->hmac_key, h->hmac_key_len);
    p->hmac_len = h->hmac_key_len;
    target(p, h->upstream, host);
    if (h->upstream_fallback && h->upstream_fallback[0]) {
        if (p->n_up == 0) /* keep the fallback in slot 1 */
            p->n_up = 1;
        target(p, h->upstream_fallback, host);
    }
    settings_apply(p, h->settings);
    return p;
}

static struct project_slot **project_find(loader_t *l, int64_t project_id)
{
    struct project_slot **s = &l->projects[(uint64_t)project_id % PROJECT_BUCKETS];
    while (*s && (*s)->p->project_id != project_id)
        s = &(*s)->next;
    return s;
}

/* The project's shared part: the one built under this epoch within
 * route_ttl (so upstream names are resolved again after it), or a new one.
 * Two threads may build at once; the later one stays in the table. */
static route_project_t *project_part(loader_t *l, const store_edge_host_t *h, const char *host, uint64_t epoch)
{
    int64_t ttl = atomic_load(l->sh.route_ttl_ms);
    route_project_t *p = NULL;
    pthread_mutex_lock(&l->plock);
    struct project_slot *s = *project_find(l, h->project_id);
    if (s && s->p->epoch == epoch && util_mono_ms() - s->p->made_ms < ttl)
        p = route_project_ref(s->p);
    pthread_mutex_unlock(&l->plock);
    if (p || !(p = build_project(h, host, epoch)))
        return p;
    pthread_mutex_lock(&l->plock);
    struct project_slot **sp = project_find(l, h->project_id);
    if (!*sp && (*sp = calloc(1, sizeof(**sp))) == NULL) {
        pthread_mutex_unlock(&l->plock);
        return p; /* used, just not shared */
    }
    route_project_unref((*sp)->p);
    (*sp)->p = route_project_ref(p);
    pthread_mutex_unlock(&l->plock);
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

static void *thread_main(void *p)
{
    struct thread_arg *ta = p;
    loader_t *l = ta->l;
    store_t *s = l->st[ta->i];
    free(ta);
    for (;;) {
        pthread_mutex_lock(&l->lock);
        while (!l->stop && !l->head)
            pthread_cond_wait(&l->cond, &l->lock);
        if (l->stop) {
            pthread_mutex_unlock(&l->lock);
            break;
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
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    pthread_mutex_init(&l->plock, NULL);
    l->sh = *sh;
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
    for (int b = 0; b < PROJECT_BUCKETS; b++) {
        for (struct project_slot *s = l->projects[b], *nx; s; s = nx) {
            nx = s->next;
            route_project_unref(s->p);
            free(s);
        }
    }
    pthread_mutex_destroy(&l->plock);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
