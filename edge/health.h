/* health: the passive-health board every edge worker shares — for each
 * upstream origin (its key, scheme://host:port), the time until which
 * every worker treats it as down because a connect to it failed on every
 * address. Shared so that one failed connect, not one per worker, is what
 * it costs before requests move to the fallback (nginx keeps its
 * max_fails state in shared memory for the same reason).
 *
 * A worker's upstream target takes its entry once (health_get, under the
 * board's lock) and drops it when the target is freed (health_put); the
 * mark itself is one atomic, read on the request path without a lock.
 * The board owns the entries: the last put frees one. health_board_free
 * runs after every worker has put its entries back. */
#ifndef HEE_EDGE_HEALTH_H
#define HEE_EDGE_HEALTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct health_board health_board_t;
typedef struct health_entry health_entry_t;

health_board_t *health_board_new(void);
void health_board_free(health_board_t *b);
/* The entry for key, created unmarked on first use; NULL when out of
 * memory. Each get is paired with one put. */
health_entry_t *health_get(health_board_t *b, const char *key, size_t len);
void health_put(health_entry_t *e);
/* Marks e down until now_ms + for_ms (clock_coarse_ms times). Returns 1
 * for exactly one caller per transition from up to down — the one that
 * logs and counts it — and 0 when it was marked already or for_ms <= 0. */
int health_mark(health_entry_t *e, int64_t now_ms, int64_t for_ms);
/* Clears the mark (a connect succeeded, or the name has new addresses). */
void health_clear(health_entry_t *e);
int health_down(const health_entry_t *e, int64_t now_ms);
/* Marked at all, expired or not: the request path's cheap first test. */
int health_marked(const health_entry_t *e);

#endif
