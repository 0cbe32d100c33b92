/* edge: the worker threads that accept client connections, terminate TLS,
 * pick certificates by SNI and proxy requests to project upstreams.
 *
 * main() creates the edge (binding every listener, so start-up fails early
 * on a bad address), starts it, and at shutdown drains then joins it. The
 * edge_t owns its threads, their event bases, listeners, certificate cache
 * and connections; it borrows the hub, which must outlive it. */
#ifndef HEE_EDGE_H
#define HEE_EDGE_H

#include "common/hub.h"

typedef struct edge edge_t;

/* Binds listeners for hub->cfg; no thread runs yet. NULL + *err on failure. */
edge_t *edge_new(hub_t *hub, char **err);
/* Starts hub->n_workers threads; sets hub->to_worker[i] before returning. */
int edge_start(edge_t *e);
/* Stops accepting; connections finish their in-flight request and close. */
void edge_drain(edge_t *e);
/* Waits up to grace_ms for connections to finish, then closes the rest and
 * joins every thread. */
void edge_join(edge_t *e, int grace_ms);
void edge_free(edge_t *e);

#endif
