/* control: the daemon's two control-side threads, each on its own event
 * base — the control thread (API server, ACME orders and the local CA,
 * renewal and retention timers) at the edge's priority, and the background
 * thread (DNS verification probes, webhook delivery) at [server]
 * background_nice. control/bridge.h is how they talk.
 *
 * main() creates both (each opens the store read-write; the control thread
 * binds the API listener), starts them, and at shutdown stops and joins
 * them. The control_t owns both contexts, their bases, store handles and
 * every subsystem; subsystems get a pointer to their thread's context and
 * must not outlive it. Nothing here may block a loop. */
#ifndef HEE_CONTROL_H
#define HEE_CONTROL_H

#include "common/hub.h"

typedef struct control control_t;

control_t *control_new(hub_t *hub, char **err);
int control_start(control_t *c);
/* Asks both loops to finish: refuse new API requests, let deliveries in
 * flight end, checkpoint the store. Thread-safe. */
void control_stop(control_t *c);
void control_join(control_t *c);
void control_free(control_t *c);
/* Hands a new configuration to both threads (thread-safe). */
void control_reload(control_t *c, const config_t *cfg);

#endif
