#include "edge/strmap.h"

#include <stdlib.h>
#include <string.h>

struct ent {
    struct ent *next;
    uint64_t hash;
    void *val;
    size_t len;
    char key[];
};

struct strmap {
    struct ent **b;
    size_t nb, n;
};

static uint64_t fnv(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)k[i]) * 1099511628211ULL;
    return h;
}

strmap_t *strmap_new(void)
{
    strmap_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->nb = 64;
    if (!(m->b = calloc(m->nb, sizeof(*m->b)))) {
        free(m);
        return NULL;
    }
    return m;
}

void strmap_free(strmap_t *m, void (*free_val)(void *))
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nb; i++) {
        for (struct ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            if (free_val)
                free_val(e->val);
            free(e);
        }
    }
    free(m->b);
    free(m);
}

static struct ent **find(const strmap_t *m, const char *key, size_t len, uint64_t h)
{
    struct ent **pp = &m->b[h & (m->nb - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0)
            return pp;
    return pp;
}

void *strmap_get(const strmap_t *m, const char *key, size_t len)
{
    struct ent **pp = find(m, key, len, fnv(key, len));
    return *pp ? (*pp)->val : NULL;
}

static void grow(strmap_t *m)
{
    size_t nb = m->nb * 2;
    struct ent **b = calloc(nb, sizeof(*b));
    if (!b)
        return; /* keep working with longer chains */
    for (size_t i = 0; i < m->nb; i++) {
        for (struct ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
}

void *strmap_put(strmap_t *m, const char *key, size_t len, void *val, int *err)
{
    uint64_t h = fnv(key, len);
    struct ent **pp = find(m, key, len, h);
    *err = 0;
    if (*pp) {
        void *old = (*pp)->val;
        (*pp)->val = val;
        return old;
    }
    struct ent *e = malloc(sizeof(*e) + len + 1);
    if (!e) {
        *err = -1;
        return NULL;
    }
    e->hash = h;
    e->val = val;
    e->len = len;
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    e->next = NULL;
    *pp = e;
    if (++m->n > m->nb)
        grow(m);
    return NULL;
}

void *strmap_del(strmap_t *m, const char *key, size_t len)
{
    struct ent **pp = find(m, key, len, fnv(key, len));
    struct ent *e = *pp;
    if (!e)
        return NULL;
    *pp = e->next;
    void *v = e->val;
    free(e);
    m->n--;
    return v;
}

size_t strmap_count(const strmap_t *m)
{
    return m->n;
}

void strmap_each(strmap_t *m, void (*fn)(const char *key, void *val, void *arg), void *arg)
{
    for (size_t i = 0; i < m->nb; i++)
        for (struct ent *e = m->b[i]; e; e = e->next)
            fn(e->key, e->val, arg);
}

void *strmap_evict_one(strmap_t *m, uint64_t hint)
{
    if (m->n == 0)
        return NULL;
    for (size_t i = 0; i < m->nb; i++) {
        struct ent **pp = &m->b[(hint + i) & (m->nb - 1)];
        if (*pp) {
            struct ent *e = *pp;
            *pp = e->next;
            void *v = e->val;
            free(e);
            m->n--;
            return v;
        }
    }
    return NULL;
}
