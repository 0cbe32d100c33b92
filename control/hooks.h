/* hooks: webhook delivery on the background thread's loop. Reads due deliveries from the
 * outbox (store_hook), signs each request (hook_sign), sends it with libcurl
 * multi (curlev) behind the SSRF guard (ssrf), and records every attempt and
 * the delivery's next state (hook_sched) in one transaction after the answer.
 *
 * hooks_t belongs to the background thread: hooks_new in subsys_start,
 * hooks_stop before the loop exits, hooks_free after. Records passed in are
 * borrowed for the call; test-send callbacks get a result valid only during
 * the callback. api_hooks.c (the HTTP API for endpoints and events, on the
 * control thread) is the other half of this module and is declared here too. */
#ifndef HEE_HOOKS_H
#define HEE_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/store_hook.h"

struct control;
struct api;
typedef struct hooks hooks_t;

hooks_t *hooks_new(struct control *c, char **err);
/* Picks up c->cfg after a reload (schedule, SSRF allow-list, limits). */
void hooks_reload(hooks_t *h);
/* Stops sending: records finished attempts, abandons requests in flight
 * (their deliveries stay pending and are sent again after a restart). */
void hooks_stop(hooks_t *h);
void hooks_free(hooks_t *h);
/* hooks_kick() (control/subsys.h): a commit wrote events; look for due
 * deliveries soon. */
/* A commit parked or released deliveries wholesale (enable, disable,
 * delete, the ordered flag): re-read the per-domain queues, then look for
 * work. Requeued deliveries (redeliver, recover) need only hooks_kick. */
void hooks_changed(hooks_t *h);

/* ---- event types ---- */
/* NULL-terminated list of the types Hee emits. */
const char *const *hooks_event_types(void);
int hooks_event_type_known(const char *type);
/* An example "data" object (JSON text) for type, as documented in
 * docs/webhooks.md; NULL for an unknown type. */
const char *hooks_example_data(const char *type);

/* ---- endpoint URLs ---- */
/* 0 when url may be registered under the current configuration (absolute
 * https URL, or http with [webhooks] allow_http); else -1 and why. Where it
 * points is checked when connecting, not here (DNS can change). */
int hooks_check_url(const config_t *cfg, const char *url, char *why, size_t len);

/* ---- test sends ---- */
typedef struct hooks_test_result {
    const char *event_id;        /* "evt_test_…", sent as webhook-id */
    const char *payload;
    int delivered;               /* 2xx */
    int status_code;             /* 0 = no HTTP response */
    int64_t latency_ms;
    const char *error;           /* NULL when delivered */
    const char *response;        /* first KiB of the body (UTF-8) or "" */
} hooks_test_result_t;

typedef void (*hooks_test_cb)(const hooks_test_result_t *r, void *arg);

/* Sends one signed example event of type to e, once, now: no outbox row, no
 * retry, no attempt log; cb runs on the loop when it ends (also when hooks
 * stops first). 0, or -1 when it could not start (cb not called). */
int hooks_test_send(hooks_t *h, const store_hook_endpoint_t *e, const char *type, hooks_test_cb cb, void *arg);

/* ---- HTTP API (api_hooks.c) ---- */
/* Registers the routes on the control thread's API; they reach the sender
 * (on the background thread) through control/bridge.h. */
int hooks_api_init(struct api *a);

#endif
