/* store_verify: the SQL of DNS verification — which domains are due for a
 * probe, what a probe needs to know about one, recording a probe's check
 * together with the state change and its webhook event, and listing checks.
 *
 * Targets are plain structs with fixed buffers (no allocation): the
 * scheduler reads hundreds per tick. store_verify_apply must run inside the
 * caller's transaction (store_begin), so a check, the domain's new state
 * and the event that reports it commit together or not at all. */
#ifndef HEE_STORE_VERIFY_H
#define HEE_STORE_VERIFY_H

#include <stdint.h>

#include "common/store.h"

/* Checks kept per domain; older ones are trimmed as new ones are written. */
#define STORE_VERIFY_KEEP_CHECKS 100

typedef struct store_verify_target {
    int64_t id;
    int64_t project_id;
    char hostname[254];
    char challenge[256];
    /* projects.settings "verification": "" (absent: every DNS method),
     * "registration", or the JSON array text, e.g. ["cname","txt"]. */
    char verification[128];
    char state[32];
    int verified;
    int64_t next_probe_at;       /* where the row sits in the due order */
} store_verify_target_t;

/* Calls cb for up to limit active domains whose next_probe_at <= now,
 * soonest first, ties by id (walks the domains_next_probe index). cb
 * returns non-zero to stop. The target is valid only during cb. */
int store_verify_due(store_t *s, int64_t now, int limit,
                     int (*cb)(const store_verify_target_t *t, void *arg), void *arg);
/* The same walk resumed after the row (after_at = its next_probe_at,
 * after_id): a scheduler continuing a sweep skips the rows it has already
 * handed out and whose probes have not been recorded yet. */
int store_verify_due_after(store_t *s, int64_t now, int64_t after_at, int64_t after_id, int limit,
                           int (*cb)(const store_verify_target_t *t, void *arg), void *arg);
/* The active domain with this id / hostname. STORE_NOTFOUND otherwise. */
int store_verify_target_by_id(store_t *s, int64_t id, store_verify_target_t *out);
int store_verify_target_by_host(store_t *s, const char *host, store_verify_target_t *out);

/* A domain's current state, read again inside the recording transaction
 * (the API or the issuer may have moved it while the probe ran). */
typedef struct store_verify_current {
    int64_t project_id;
    char state[32];
    int verified;
    int64_t created_at;
    int has_cert;                /* a current certificate serves the hostname */
} store_verify_current_t;

/* STORE_NOTFOUND when the domain was removed meanwhile. In a transaction. */
int store_verify_current(store_t *s, int64_t id, int64_t now, store_verify_current_t *out);

typedef struct store_verify_apply {
    int64_t domain_id;
    int64_t now;
    /* the check row */
    const char *method;          /* cname | a | txt | registration | all */
    const char *outcome;         /* the probe's hint: ok | missing | wrong_target | … */
    int probe_verified;
    const char *summary;
    /* the domain row */
    const char *state;           /* new state (may equal the old one); NULL: keep the stored one */
    int become_verified;         /* sets verified, verified_at and verify_method once */
    const char *verify_method;
    int64_t next_probe_at;       /* 0 = NULL: never again */
    int drift;                   /* 1: set drifted_at, 0: clear it, -1: leave it */
    /* the event, when event != NULL: data {"domain":{…}[,"method"][,"reason"][,"hint"]} */
    const char *event;
    const char *event_method;
    const char *event_reason;
    const char *event_hint;
    const char *cname_target;    /* [edge] target, for the Domain object */
} store_verify_apply_t;

/* Writes the check (trimming the domain's oldest beyond
 * STORE_VERIFY_KEEP_CHECKS), updates the domain and emits the event. In the
 * caller's transaction; STORE_NOTFOUND when the domain is no longer active. */
int store_verify_apply(store_t *s, const store_verify_apply_t *a);

typedef struct store_verify_check {
    int64_t id;
    int64_t at;
    const char *method;
    const char *outcome;
    int verified;
    const char *summary;
} store_verify_check_t;

/* The domain's newest checks first, at most limit; strings borrowed for cb. */
int store_verify_checks(store_t *s, int64_t domain_id, int limit,
                        int (*cb)(const store_verify_check_t *c, void *arg), void *arg);

#endif
