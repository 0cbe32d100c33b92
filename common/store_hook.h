/* store_hook: the webhook tables other than the outbox insert — endpoints,
 * deliveries, attempts, dead letters, replays, retention and event listing.
 * store_event.c writes events and their first delivery rows; everything that
 * reads or changes them afterwards is here.
 *
 * Records own their strings and are freed with their *_clear(); callback
 * records are freed after the callback returns. Functions documented "in a
 * transaction" expect the caller's store_begin(); the others need none. */
#ifndef HEE_STORE_HOOK_H
#define HEE_STORE_HOOK_H

#include <stddef.h>
#include <stdint.h>

#include "common/store.h"

/* next_attempt_at of a pending delivery that may not be sent yet: it waits
 * for an earlier delivery of the same domain to the same endpoint, or for
 * its endpoint to be enabled again. Far beyond any real due time, so the
 * due index never returns it. */
#define STORE_HOOK_PARKED 253402300799000LL

typedef struct store_hook_endpoint {
    char *id;                    /* "whe_…" */
    int64_t project_id;
    char *project_slug;          /* filled by reads */
    char *url;
    char *secret;
    char *old_secret;            /* NULL when no rotation is in progress */
    int64_t old_secret_until;    /* 0 with old_secret */
    char *events;                /* JSON array text; "[]" = every type */
    char *description;
    int ordered;
    int disabled;
    char *disabled_reason;       /* NULL while enabled */
    int64_t failing_since;       /* 0 = not failing */
    int64_t warned_at;           /* 0 = not warned */
    int64_t created_at, updated_at;
} store_hook_endpoint_t;

typedef int (*store_hook_endpoint_cb)(const store_hook_endpoint_t *e, void *arg);

void store_hook_endpoint_clear(store_hook_endpoint_t *e);

/* ---- endpoints (writes in a transaction) ---- */
/* Inserts id, project_id, url, secret, events, description, ordered, created_at. */
int store_hook_endpoint_insert(store_t *s, const store_hook_endpoint_t *e);
/* A live (not deleted) endpoint; project_id > 0 limits it to that project. */
int store_hook_endpoint_get(store_t *s, const char *id, int64_t project_id, store_hook_endpoint_t *out);
/* Live endpoints, project_id > 0: that project's, 0: all; id order after after_id. */
int store_hook_endpoint_list(store_t *s, int64_t project_id, const char *after_id, int limit,
                             store_hook_endpoint_cb cb, void *arg);
/* Writes url, events, description, ordered. */
int store_hook_endpoint_update(store_t *s, const store_hook_endpoint_t *e, int64_t now);
int store_hook_endpoint_set_secrets(store_t *s, const char *id, const char *secret, const char *old_secret,
                                    int64_t old_until, int64_t now);
/* Disables and parks every pending delivery of the endpoint. */
int store_hook_endpoint_disable(store_t *s, const char *id, const char *reason, int64_t now);
/* Enables and replays what it missed: its pending deliveries, plus a new
 * delivery for every event of its project created at or after since (and
 * after the endpoint itself) that matches its filter and was never queued for
 * it. Every replayed delivery starts a fresh retry window at now. */
int store_hook_endpoint_enable(store_t *s, const char *id, int64_t since, int64_t now, int64_t *replayed);
/* Soft delete; pending deliveries become cancelled. */
int store_hook_endpoint_delete(store_t *s, const char *id, int64_t now);
/* Unparks every parked delivery of enabled endpoints (id NULL) or of one;
 * those still waiting for an earlier delivery are parked again when seen. */
int store_hook_unpark(store_t *s, const char *id, int64_t now);

/* After a failed attempt: starts the failing clock if it is not running and
 * reports it. No transaction needed. */
int store_hook_endpoint_failing(store_t *s, const char *id, int64_t now, int64_t *failing_since,
                                int64_t *warned_at, int *disabled);
int store_hook_endpoint_healthy(store_t *s, const char *id);
int store_hook_endpoint_warned(store_t *s, const char *id, int64_t now);

/* ---- the delivery engine ---- */
typedef struct store_hook_due {
    int64_t id;                  /* delivery */
    int64_t event_id;
    int64_t domain_id;           /* 0 = not about a domain */
    char endpoint_id[48];
    unsigned attempts;
    int64_t window_start;        /* deliveries.created_at: the retry window opens here */
    int64_t next_attempt_at;
    int ordered;
    int endpoint_disabled;       /* disabled or deleted */
} store_hook_due_t;

/* What one request needs; loaded only for deliveries about to be sent. */
typedef struct store_hook_message {
    char *public_id;             /* the event's "evt_…", sent as webhook-id */
    char *type;
    char *payload;
    size_t payload_len;
    char *url;
    char *secret;
    char *old_secret;            /* NULL unless still live at now */
} store_hook_message_t;

void store_hook_message_clear(store_hook_message_t *m);
int store_hook_message(store_t *s, int64_t delivery_id, int64_t now, store_hook_message_t *out);

/* Up to max pending deliveries with next_attempt_at <= now that come after
 * (after_at, after_id) in (next_attempt_at, id) order. Fills out[0..*n). */
int store_hook_due_batch(store_t *s, int64_t now, int64_t after_at, int64_t after_id, store_hook_due_t *out,
                         int max, int *n);
/* Pending deliveries of enabled-or-not, live, ordered endpoints that are
 * about a domain, in (endpoint_id, domain_id, id) order: the per-domain
 * queues the engine keeps in memory. */
typedef int (*store_hook_order_cb)(const char *endpoint_id, int64_t domain_id, int64_t id, int64_t next_attempt_at,
                                   int endpoint_disabled, void *arg);
int store_hook_pending_order(store_t *s, store_hook_order_cb cb, void *arg);
/* In a transaction: the delivery may go now, if it was parked and its
 * endpoint is enabled. */
int store_hook_unpark_id(store_t *s, int64_t id, int64_t now);
/* Unparks every parked delivery of enabled endpoints that do not keep order. */
int store_hook_unpark_unordered(store_t *s, int64_t now);
/* In a transaction. */
int store_hook_park(store_t *s, int64_t id);
/* Earliest next_attempt_at of a pending, unparked delivery after now. */
int store_hook_next_due(store_t *s, int64_t now, int64_t *at);

enum store_hook_outcome {
    STORE_HOOK_SUCCEEDED,        /* 2xx */
    STORE_HOOK_RETRY,            /* failed; next attempt at next_at */
    STORE_HOOK_DEAD,             /* failed and out of time: dead letter */
    STORE_HOOK_HOLD,             /* failed; park until the endpoint is enabled */
};

typedef struct store_hook_attempt {
    int64_t delivery_id;
    int64_t window_start;        /* the delivery's created_at when it was sent */
    int64_t at;
    int status_code;             /* 0 = no HTTP response */
    int64_t latency_ms;
    const char *error;           /* NULL on success */
    const char *response;        /* first KiB of the body, valid UTF-8, or NULL */
} store_hook_attempt_t;

/* In a transaction: logs the attempt and moves the delivery to its outcome
 * if it is still pending and was not requeued (redeliver, recover, enable
 * restart its window) while the request was on the wire — a requeued one
 * stays pending and goes again. A delivery of an endpoint disabled
 * meanwhile is parked instead of rescheduled. (Unparking the domain's next
 * delivery is the caller's: see store_hook_unpark_id.) */
int store_hook_record(store_t *s, const store_hook_attempt_t *a, enum store_hook_outcome outcome, int64_t next_at);

/* ---- events and deliveries for the API ---- */
typedef struct store_hook_event {
    int64_t id;
    char *public_id;
    int64_t project_id;
    int64_t domain_id;
    char *type;
    int64_t sequence;
    int64_t created_at;
    char *payload;
} store_hook_event_t;

typedef int (*store_hook_event_cb)(const store_hook_event_t *e, void *arg);
void store_hook_event_clear(store_hook_event_t *e);

int store_hook_event_get(store_t *s, const char *public_id, store_hook_event_t *out);
/* Events with id > after_id and created_at >= since, oldest first.
 * project_id 0 = every project; types: JSON array text of types, or NULL. */
int store_hook_event_list(store_t *s, int64_t project_id, int64_t after_id, int64_t since, const char *types,
                          int limit, store_hook_event_cb cb, void *arg);

typedef struct store_hook_delivery {
    int64_t id;
    char *endpoint_id;
    char *event_public_id;
    char *event_type;
    int64_t event_created_at;
    char *status;                /* pending | succeeded | dead | cancelled */
    unsigned attempts;
    int64_t next_attempt_at;     /* 0 unless pending; STORE_HOOK_PARKED while waiting */
    int64_t last_attempt_at;     /* 0 = never */
    int64_t created_at;
    int last_status_code;        /* of the newest attempt; -1 = none */
    char *last_error;
} store_hook_delivery_t;

typedef int (*store_hook_delivery_cb)(const store_hook_delivery_t *d, void *arg);

int store_hook_event_deliveries(store_t *s, int64_t event_id, store_hook_delivery_cb cb, void *arg);
/* Dead deliveries of the endpoint, newest first, ids below before_id (0 = from the newest). */
int store_hook_dead_letters(store_t *s, const char *endpoint_id, int64_t before_id, int limit,
                            store_hook_delivery_cb cb, void *arg);

typedef struct store_hook_attempt_row {
    int64_t id;
    int64_t delivery_id;
    char *event_public_id;
    char *event_type;
    int64_t at;
    int status_code;
    int64_t latency_ms;
    char *error;
    char *response;
} store_hook_attempt_row_t;

typedef int (*store_hook_attempt_cb)(const store_hook_attempt_row_t *a, void *arg);

/* The endpoint's attempts, newest first, ids below before_id (0 = from the newest). */
int store_hook_attempt_list(store_t *s, const char *endpoint_id, int64_t before_id, int limit,
                            store_hook_attempt_cb cb, void *arg);

/* In a transaction. Queues the event again: for endpoint_id, or (NULL) for
 * every live endpoint of the event's project whose filter matches. Each
 * delivery becomes pending with a fresh window (parked for a disabled
 * endpoint). *n: deliveries queued. */
int store_hook_redeliver(store_t *s, const store_hook_event_t *ev, const char *endpoint_id, int64_t now, int64_t *n);
/* In a transaction. For one endpoint, queues again every event of its project
 * created in [since, until) that it has not received: deliveries dead or
 * cancelled, and matching events never queued for it (created after it). */
int store_hook_recover(store_t *s, const store_hook_endpoint_t *e, int64_t since, int64_t until, int64_t now,
                       int64_t *n);

/* ---- retention ---- */
/* Deletes up to batch attempts logged before cutoff, then up to batch events
 * created before cutoff with their deliveries and attempts. Own transaction.
 * *deleted: rows removed (attempts + events). */
int store_hook_purge(store_t *s, int64_t cutoff, int batch, int *deleted);

#endif
