/* verify: DNS verification on the background thread — the probe scheduler
 * (due domains from the store in batches, bounded in-flight), immediate
 * probes for the API (/verify, /diagnose) and for the edge (verify_hint,
 * declared in subsys.h), and recording: every probe result becomes a check
 * row, a ConnectionState move (common/domain_state.h) and its event, all in
 * one transaction, committed in batches.
 *
 * struct verify is created by subsys_start (verify_new) after the API and
 * owns its resolver, probe context, timers and in-flight jobs; memory grows
 * with probes in flight, never with the number of domains. verify_stop ends
 * every job (API callers get a NULL report), verify_free releases the rest. */
#ifndef HEE_VERIFY_H
#define HEE_VERIFY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/store_verify.h"

struct control;
struct verify;
struct api;

/* What a finished request reports; valid during the callback only. */
typedef struct verify_report {
    json_t *probe;               /* probe_result_to_json-shaped report (borrowed) */
    bool verified;               /* the probe's verdict (not the domain's flag) */
    const char *hint;            /* "ok", "missing", … */
    const char *outcome;         /* one sentence for people */
    int64_t at;                  /* when the probe finished (ms) */
} verify_report_t;

/* rep NULL: the request was dropped (shutdown, or the store failed). */
typedef void (*verify_done_cb)(const verify_report_t *rep, void *arg);

typedef enum {
    VERIFY_RECORD,   /* probe, record the check and any transition, then call back */
    VERIFY_DIAGNOSE, /* probe every method and call back; nothing is written */
} verify_kind_t;

/* MSG_CERT_FAILED codes sent to the edge for an unverified host (apart from
 * the issuer's small enum issuer_fail): VERIFY_FAIL_HINT + the probe's
 * probe_hint_t, or one of the others. */
#define VERIFY_FAIL_UNKNOWN_HOST 98  /* no active domain (or it vanished) */
#define VERIFY_FAIL_RATE_LIMITED 99  /* probed less than first_request_probe ago */
#define VERIFY_FAIL_HINT 100

struct verify *verify_new(struct control *c, char **err);
/* Picks up c->cfg after a reload: addresses, intervals; a changed resolver
 * list, DNS timeouts or concurrency take effect once in-flight probes end. */
void verify_reload(struct verify *v);
void verify_stop(struct verify *v);
void verify_free(struct verify *v);

/* Probes the active domain domain_id now. 0, -1 (no memory / stopping), or
 * STORE_NOTFOUND. For VERIFY_RECORD the callback runs after the commit. */
int verify_request(struct verify *v, int64_t domain_id, verify_kind_t kind, verify_done_cb cb, void *arg);

/* Routes of api_verify.c (on the control thread; they reach the verifier
 * through control/bridge.h); called by subsys_start. */
int api_verify_init(struct api *a);

typedef struct verify_stats {
    uint64_t probes;             /* DNS probes finished */
    uint64_t recorded;           /* checks written */
    uint64_t transitions;        /* state changes written */
    uint64_t flushes;            /* recording transactions committed */
    uint64_t hints, hints_limited;
    size_t jobs;                 /* in flight + awaiting their commit */
    size_t jobs_peak;
    size_t mem_bytes;            /* scheduler memory at the jobs peak: jobs, id index, hint map */
} verify_stats_t;

void verify_stats(const struct verify *v, verify_stats_t *out);

/* ---- pure decision (unit tests) ---------------------------------------- */

typedef enum {
    VERIFY_R_TRUST,    /* the project trusts registration: no DNS asked */
    VERIFY_R_OK,       /* DNS points at the edge (or the ownership TXT matches) */
    VERIFY_R_PROGRESS, /* partly right: partial, stray_aaaa, caa_blocks_issuer, cloudflare_proxy */
    VERIFY_R_MISS,     /* nothing points at the edge */
    VERIFY_R_ERROR,    /* inconclusive: SERVFAIL, timeout */
} verify_result_t;

typedef struct verify_sched {
    int pending_interval_s, pending_window_s, stalled_interval_s, verified_interval_s;
} verify_sched_t;

/* Classifies a probe verdict: verified → OK, "inconclusive" → ERROR, a
 * progress hint → PROGRESS, else MISS. */
verify_result_t verify_classify(bool verified, const char *verdict, const char *hint);

/* Fills the state, verification, schedule and event parts of *out (the
 * check fields and domain_id/now/cname_target are the caller's) for a
 * probe result r with method (when verified) and hint on a domain in cur.
 * jitter: a random value in [0, 1000]; the interval is scaled by
 * 0.9 + 0.2 * jitter / 1000. Returns 1 when the state changes, else 0. */
int verify_decide(const store_verify_current_t *cur, verify_result_t r, const char *method, const char *hint,
                  const verify_sched_t *sc, int64_t now, unsigned jitter, store_verify_apply_t *out);

#endif
