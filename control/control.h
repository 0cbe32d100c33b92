/* control: the control thread — API server, DNS verification, ACME orders,
 * webhook delivery, renewal and retention timers — on one event base.
 *
 * main() creates it (opening the store read-write and binding the API
 * listener), starts its thread, and at shutdown stops and joins it. The
 * control_t owns its base, store handle and every subsystem; subsystems get a
 * pointer to it and must not outlive it. Nothing here may block the loop. */
#ifndef HEE_CONTROL_H
#define HEE_CONTROL_H

#include "common/hub.h"

typedef struct control control_t;

control_t *control_new(hub_t *hub, char **err);
int control_start(control_t *c);
/* Asks the loop to finish: refuse new API requests, let deliveries in flight
 * end, checkpoint the store. Thread-safe. */
void control_stop(control_t *c);
void control_join(control_t *c);
void control_free(control_t *c);
/* Hands a new configuration to the control thread (thread-safe). */
void control_reload(control_t *c, const config_t *cfg);

#endif
