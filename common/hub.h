/* hub: what edge workers, the control thread and the background thread
 * share — the only meeting point between edge/ and control/ besides the
 * store file.
 *
 * main() creates the hub and everything in it before any thread starts and
 * frees it after every thread has joined; threads only read the pointers.
 * The pointed-to objects are thread-safe on their own (queues, metrics,
 * challenge table, ticket keys). */
#ifndef HEE_HUB_H
#define HEE_HUB_H

#include <stdatomic.h>

#include "common/challenge.h"
#include "common/config.h"
#include "common/metrics.h"
#include "common/msg.h"
#include "common/queue.h"
#include "common/tickets.h"

typedef struct hub {
    const config_t *cfg;         /* configuration at start; reloads arrive as MSG_CONFIG */
    char *store_path;            /* SQLite file every thread opens its own handle on */
    metrics_t *metrics;
    challenge_table_t *challenges;
    tickets_t *tickets;          /* TLS session ticket keys, rotated by control */
    queue_t *to_control;         /* edge → control (set once the control loop exists) */
    queue_t *to_bg;              /* → background thread (probes, webhooks) */
    atomic_uint_least64_t store_commits; /* commits on the control-side read-write handles (store_count_commits) */
    queue_t **to_worker;         /* control → worker i (set as each worker starts) */
    int n_workers;
} hub_t;

/* Queues msg on q; takes ownership of msg in every case (freed when it
 * cannot be queued). -1 then. */
int hub_push(queue_t *q, msg_t *msg);
/* hub_msg(type, host) with ptr, then hub_push. */
int hub_send(queue_t *q, enum msg_type type, const char *host, void *ptr);
/* hub_push to the control thread (issuance) / the background thread
 * (probes, webhooks). */
int hub_to_control(hub_t *h, msg_t *msg);
int hub_to_bg(hub_t *h, msg_t *msg);
/* Sends a copy of msg to every worker; the caller keeps msg. */
int hub_broadcast(hub_t *h, const msg_t *msg);
/* Allocates a zeroed message of type with host copied (may be NULL). */
msg_t *hub_msg(enum msg_type type, const char *host);

#endif
