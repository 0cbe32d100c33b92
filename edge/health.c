#include "edge/health.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "edge/strmap.h"

struct health_board {
    pthread_mutex_t lock; /* the map and every entry's refs */
    strmap_t *map;        /* key -> health_entry_t* */
};

struct health_entry {
    health_board_t *board;
    _Atomic int64_t until_ms; /* 0 = up */
    unsigned refs;
    size_t key_len;
    char key[];
};

health_board_t *health_board_new(void)
{
    health_board_t *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    if (!(b->map = strmap_new())) {
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->lock, NULL);
    return b;
}

void health_board_free(health_board_t *b)
{
    if (!b)
        return;
    strmap_free(b->map, free); /* empty once every worker put its entries */
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static health_entry_t *entry_new(health_board_t *b, const char *key, size_t len)
{
    health_entry_t *e = calloc(1, sizeof(*e) + len);
    if (!e)
        return NULL;
    e->board = b;
    atomic_init(&e->until_ms, 0);
    e->key_len = len;
    memcpy(e->key, key, len);
    int err = 0;
    strmap_put(b->map, key, len, e, &err);
    if (err) {
        free(e);
        return NULL;
    }
    return e;
}

health_entry_t *health_get(health_board_t *b, const char *key, size_t len)
{
    pthread_mutex_lock(&b->lock);
    health_entry_t *e = strmap_get(b->map, key, len);
    if (!e)
        e = entry_new(b, key, len);
    if (e)
        e->refs++;
    pthread_mutex_unlock(&b->lock);
    return e;
}

void health_put(health_entry_t *e)
{
    if (!e)
        return;
    health_board_t *b = e->board;
    pthread_mutex_lock(&b->lock);
    if (--e->refs == 0) {
        strmap_del(b->map, e->key, e->key_len);
        free(e);
    }
    pthread_mutex_unlock(&b->lock);
}

int health_mark(health_entry_t *e, int64_t now_ms, int64_t for_ms)
{
    if (for_ms <= 0)
        return 0;
    int64_t until = now_ms + for_ms;
    int64_t old = atomic_load_explicit(&e->until_ms, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&e->until_ms, &old, until, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
    return old <= now_ms;
}

void health_clear(health_entry_t *e)
{
    /* Read first: the common case is "not marked", and a store would
     * bounce the line between the workers on every connect. */
    if (atomic_load_explicit(&e->until_ms, memory_order_relaxed) != 0)
        atomic_store_explicit(&e->until_ms, 0, memory_order_relaxed);
}

int health_down(const health_entry_t *e, int64_t now_ms)
{
    return atomic_load_explicit(&e->until_ms, memory_order_relaxed) > now_ms;
}

int health_marked(const health_entry_t *e)
{
    return atomic_load_explicit(&e->until_ms, memory_order_relaxed) != 0;
}
