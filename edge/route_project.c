#include "edge/route_project.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/store_edge.h"
#include "edge/clock.h"

#define BUCKETS 256

struct slot {
    struct slot *next;
    route_project_t *p; /* one reference */
};

struct route_project_table {
    pthread_mutex_t lock;
    const _Atomic uint64_t *epoch;
    size_t n;
    struct slot *b[BUCKETS];
};

route_project_t *route_project_ref(route_project_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void route_project_unref(route_project_t *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(p->slug);
    if (p->hmac_key) {
        OPENSSL_cleanse(p->hmac_key, p->hmac_len);
        free(p->hmac_key);
    }
    free(p);
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

route_project_t *route_project_build(const store_edge_host_t *h, const char *host, uint64_t epoch)
{
    route_project_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    atomic_init(&p->refs, 1);
    p->project_id = h->project_id;
    p->epoch = epoch;
    p->made_ms = clock_coarse_ms();
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

/* ---- table ---- */

route_project_table_t *route_project_table_new(const _Atomic uint64_t *epoch)
{
    route_project_table_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return NULL;
    }
    t->epoch = epoch;
    return t;
}

void route_project_table_free(route_project_table_t *t)
{
    if (!t)
        return;
    for (int i = 0; i < BUCKETS; i++) {
        for (struct slot *s = t->b[i], *nx; s; s = nx) {
            nx = s->next;
            route_project_unref(s->p);
            free(s);
        }
    }
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static struct slot **find(route_project_table_t *t, int64_t project_id)
{
    struct slot **s = &t->b[(uint64_t)project_id % BUCKETS];
    while (*s && (*s)->p->project_id != project_id)
        s = &(*s)->next;
    return s;
}

static int usable(const route_project_t *p, uint64_t epoch, int64_t now_ms, int64_t ttl_ms)
{
    return p->epoch == epoch && now_ms - p->made_ms < ttl_ms;
}

route_project_t *route_project_table_get(route_project_table_t *t, int64_t project_id, uint64_t epoch,
                                         int64_t now_ms, int64_t ttl_ms)
{
    route_project_t *p = NULL;
    pthread_mutex_lock(&t->lock);
    struct slot *s = *find(t, project_id);
    if (s && usable(s->p, epoch, now_ms, ttl_ms))
        p = route_project_ref(s->p);
    pthread_mutex_unlock(&t->lock);
    return p;
}

int route_project_table_put(route_project_table_t *t, route_project_t *p)
{
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    /* Read under the lock: a prune that follows an epoch bump either sees
     * this slot or this put sees the new epoch, so a part built from a
     * read before a deletion never outlives the prune. */
    if (p->epoch != atomic_load(t->epoch))
        goto out;
    struct slot **sp = find(t, p->project_id);
    if (!*sp) {
        if (!(*sp = calloc(1, sizeof(**sp)))) {
            rc = -1;
            goto out;
        }
        t->n++;
    }
    route_project_unref((*sp)->p);
    (*sp)->p = route_project_ref(p);
out:
    pthread_mutex_unlock(&t->lock);
    return rc;
}

size_t route_project_table_prune(route_project_table_t *t, int64_t now_ms, int64_t ttl_ms)
{
    size_t dropped = 0;
    pthread_mutex_lock(&t->lock);
    uint64_t epoch = atomic_load(t->epoch);
    for (int i = 0; i < BUCKETS && t->n > 0; i++) {
        for (struct slot **sp = &t->b[i]; *sp;) {
            struct slot *s = *sp;
            if (usable(s->p, epoch, now_ms, ttl_ms)) {
                sp = &s->next;
                continue;
            }
            *sp = s->next;
            route_project_unref(s->p);
            free(s);
            t->n--;
            dropped++;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return dropped;
}

size_t route_project_table_count(route_project_table_t *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->n;
    pthread_mutex_unlock(&t->lock);
    return n;
}
