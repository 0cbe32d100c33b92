/* hook_sched: when to retry a failed webhook delivery, and when to give up.
 *
 * Pure arithmetic on caller-supplied times (ms since the epoch) and an
 * injected random value, so schedules are exact under test. A hook_sched_t is
 * a plain value filled by hook_sched_default/hook_sched_parse; nothing here
 * allocates and nothing needs freeing. */
#ifndef HEE_HOOK_SCHED_H
#define HEE_HOOK_SCHED_H

#include <stddef.h>
#include <stdint.h>

#define HOOK_SCHED_MAX_STEPS 32
#define HOOK_SCHED_DEFAULT "30s,1m,5m,30m,2h,6h,1d"
#define HOOK_SCHED_DAY_MS (24 * 3600 * 1000LL)
#define HOOK_SCHED_DEFAULT_MAX_AGE_MS (7 * HOOK_SCHED_DAY_MS)
#define HOOK_SCHED_MAX_STEP_MS (30 * HOOK_SCHED_DAY_MS)
#define HOOK_SCHED_DEFAULT_JITTER_PCT 10
#define HOOK_SCHED_MAX_JITTER_PCT 50

/* steps_ms[i] is the wait after the (i+1)-th failed attempt; once the list is
 * exhausted every further wait is repeat_ms (one day by default). Each wait is
 * jittered by ±jitter_pct percent so endpoints that failed together do not
 * get retried in lock-step. */
typedef struct hook_sched {
    int64_t steps_ms[HOOK_SCHED_MAX_STEPS];
    size_t nsteps;
    int64_t repeat_ms;
    unsigned jitter_pct;
} hook_sched_t;

typedef enum hook_sched_verdict {
    HOOK_SCHED_RETRY,     /* try again at *next_ms */
    HOOK_SCHED_DEAD,      /* window over: dead-letter the message */
} hook_sched_verdict_t;

/* HOOK_SCHED_DEFAULT, daily repeat, 10 % jitter. */
void hook_sched_default(hook_sched_t *s);

/* Parses a comma/space-separated list of durations ("30s,1m,5m,30m,2h,6h,1d";
 * bare numbers are seconds; units ms, s, m, h, d). Each step must be > 0 and
 * <= 30 days. Leaves repeat_ms and jitter_pct at their defaults. 0, or -1
 * with a message naming the bad entry in err. */
int hook_sched_parse(hook_sched_t *s, const char *spec, char *err, size_t errlen);

/* One duration as above ("7d", "90", "250ms") into *ms; 0 or -1. Zero is allowed. */
int hook_sched_parse_duration(const char *text, int64_t *ms);

/* Decides the next attempt after attempts_done attempts have all failed
 * (attempts_done == 0: nothing tried yet, next_ms = now_ms).
 *   wait = steps[attempts_done-1] (or repeat_ms), jittered by rnd, where rnd is
 *          uniform in [0, 2^32): 0 → -jitter, 2^31 → exact, 2^32-1 → +jitter;
 *   retry_after_ms (-1 = none): the server's Retry-After; used instead of the
 *          wait when longer;
 *   next = now + wait, but never past event_created_ms + max_age_ms: the last
 *          attempt is pulled in to the window's end, so the window is tried.
 * DEAD when now_ms >= event_created_ms + max_age_ms. */
hook_sched_verdict_t hook_sched_next(const hook_sched_t *s, unsigned attempts_done,
                                     int64_t event_created_ms, int64_t now_ms,
                                     int64_t max_age_ms, int64_t retry_after_ms,
                                     uint32_t rnd, int64_t *next_ms);

/* Parses an HTTP Retry-After value: delta-seconds ("120") or an IMF-fixdate
 * ("Wed, 21 Oct 2015 07:28:00 GMT"), relative to now_ms. Dates in the past
 * give 0. 0, or -1 when the value is neither. */
int hook_sched_parse_retry_after(const char *value, int64_t now_ms, int64_t *ms);

#endif
