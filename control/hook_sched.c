#include "control/hook_sched.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

#define SEPS ", \t\r\n"

void hook_sched_default(hook_sched_t *s)
{
    static const int64_t steps[] = {
        30 * 1000LL, 60 * 1000LL, 5 * 60 * 1000LL, 30 * 60 * 1000LL,
        2 * 3600 * 1000LL, 6 * 3600 * 1000LL, HOOK_SCHED_DAY_MS,
    };
    memset(s, 0, sizeof(*s));
    memcpy(s->steps_ms, steps, sizeof(steps));
    s->nsteps = UTIL_ARRAY_LEN(steps);
    s->repeat_ms = HOOK_SCHED_DAY_MS;
    s->jitter_pct = HOOK_SCHED_DEFAULT_JITTER_PCT;
}

int hook_sched_parse_duration(const char *text, int64_t *ms)
{
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {
        { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60 * 1000 },
        { "h", 3600 * 1000 }, { "d", HOOK_SCHED_DAY_MS },
    };
    const char *p = text;
    int64_t v = 0;
    if (!p || *p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(units); i++) {
        if (strcmp(p, units[i].suffix) != 0)
            continue;
        if (v > INT64_MAX / units[i].ms)
            return -1;
        *ms = v * units[i].ms;
        return 0;
    }
    return -1;
}

int hook_sched_parse(hook_sched_t *s, const char *spec, char *err, size_t errlen)
{
    hook_sched_t tmp;
    hook_sched_default(&tmp);
    tmp.nsteps = 0;
    for (const char *p = spec ? spec : ""; *p;) {
        p += strspn(p, SEPS);
        size_t n = strcspn(p, SEPS);
        if (n == 0)
            break;
        char tok[32];
        int64_t ms = 0;
        if (n >= sizeof(tok)) {
            snprintf(err, errlen, "retry schedule entry too long: %.*s…", 16, p);
            return -1;
        }
        memcpy(tok, p, n);
        tok[n] = '\0';
        if (hook_sched_parse_duration(tok, &ms) != 0 || ms <= 0 || ms > HOOK_SCHED_MAX_STEP_MS) {
            snprintf(err, errlen,
                     "bad retry schedule entry \"%s\" (want e.g. 30s, 5m, 2h, 1d; > 0, <= 30d)", tok);
            return -1;
        }
        if (tmp.nsteps == HOOK_SCHED_MAX_STEPS) {
            snprintf(err, errlen, "retry schedule has more than %d entries", HOOK_SCHED_MAX_STEPS);
            return -1;
        }
        tmp.steps_ms[tmp.nsteps++] = ms;
        p += n;
    }
    if (tmp.nsteps == 0) {
        snprintf(err, errlen, "retry schedule is empty");
        return -1;
    }
    *s = tmp;
    return 0;
}

/* wait ± pct %, spread by rnd over [-off, +off]. Bounded inputs keep
 * (2*off+1)*rnd below 2^64. */
static int64_t jitter(int64_t wait, unsigned pct, uint32_t rnd)
{
    if (pct > HOOK_SCHED_MAX_JITTER_PCT)
        pct = HOOK_SCHED_MAX_JITTER_PCT;
    uint64_t off = (uint64_t)wait * pct / 100;
    int64_t j = (int64_t)(((2 * off + 1) * (uint64_t)rnd) >> 32) - (int64_t)off;
    return wait + j;
}

hook_sched_verdict_t hook_sched_next(const hook_sched_t *s, unsigned attempts_done,
                                     int64_t event_created_ms, int64_t now_ms,
                                     int64_t max_age_ms, int64_t retry_after_ms,
                                     uint32_t rnd, int64_t *next_ms)
{
    int64_t deadline = event_created_ms + (max_age_ms > 0 ? max_age_ms : 0);
    if (now_ms >= deadline)
        return HOOK_SCHED_DEAD;
    if (attempts_done == 0) {
        *next_ms = now_ms;
        return HOOK_SCHED_RETRY;
    }
    int64_t wait = attempts_done <= s->nsteps ? s->steps_ms[attempts_done - 1] : s->repeat_ms;
    if (wait < 0)
        wait = 0;
    if (wait > HOOK_SCHED_MAX_STEP_MS)
        wait = HOOK_SCHED_MAX_STEP_MS;
    wait = jitter(wait, s->jitter_pct, rnd);
    /* The server knows its own recovery time better than our table does. */
    if (retry_after_ms > wait)
        wait = retry_after_ms;
    *next_ms = wait >= deadline - now_ms ? deadline : now_ms + wait;
    return HOOK_SCHED_RETRY;
}

int hook_sched_parse_retry_after(const char *value, int64_t now_ms, int64_t *ms)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value >= '0' && *value <= '9') {
        int64_t secs = 0;
        const char *p = value;
        for (; *p >= '0' && *p <= '9'; p++)
            if (secs < 1000000000000LL)   /* saturate: the window caps it anyway */
                secs = secs * 10 + (*p - '0');
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p)
            return -1;
        *ms = secs * 1000;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end)
        return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end)
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    int64_t d = (int64_t)t * 1000 - now_ms;
    *ms = d > 0 ? d : 0;
    return 0;
}
