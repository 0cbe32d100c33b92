/* strmap: a small chained hash map from byte-string keys to pointers, for a
 * worker's per-host tables (routes, pending lookups, parked handshakes)
 * and its upstream pools (keyed by origin).
 *
 * One thread only. The map copies keys; values are the caller's: the map
 * never frees them (strmap_free calls free_val on each, if given). */
#ifndef HEE_EDGE_STRMAP_H
#define HEE_EDGE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct strmap strmap_t;

strmap_t *strmap_new(void);
void strmap_free(strmap_t *m, void (*free_val)(void *));
void *strmap_get(const strmap_t *m, const char *key, size_t len);
/* Inserts or replaces; returns the previous value (or NULL). *err = -1 when
 * out of memory (nothing changed). */
void *strmap_put(strmap_t *m, const char *key, size_t len, void *val, int *err);
/* Removes key; returns its value or NULL. */
void *strmap_del(strmap_t *m, const char *key, size_t len);
size_t strmap_count(const strmap_t *m);
/* Calls fn on every entry; fn may not change the map. */
void strmap_each(strmap_t *m, void (*fn)(const char *key, void *val, void *arg), void *arg);
/* Removes and returns the value of some entry (for bounded eviction), or NULL. */
void *strmap_evict_one(strmap_t *m, uint64_t hint);

#endif
