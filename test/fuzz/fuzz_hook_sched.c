/* fuzz_hook_sched: hook_sched_parse(), hook_sched_parse_duration() and
 * hook_sched_parse_retry_after() on arbitrary text, and hook_sched_next()
 * with the parsed schedule and times taken from the input.
 *
 * Input: schedule text, a NUL byte, Retry-After text, a NUL byte, then
 * 8-byte little-endian numbers (attempts, created, now, max_age, retry
 * after, random). Invariants: a parsed schedule has 1..32 steps, each in
 * (0, 30 days]; a RETRY never lands before now (for attempts > 0, never
 * before now when the window is open) nor after the window's end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/hook_sched.h"

static int64_t take(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (int i = 0; i < 8 && *p < end; i++, (*p)++)
        v |= (uint64_t)**p << (8 * i);
    return (int64_t)v;
}

static char *cstr(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nul = memchr(*p, 0, (size_t)(end - *p));
    size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, *p, n);
    s[n] = '\0';
    *p += n + (nul != NULL);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *spec = cstr(&p, end), *ra = spec ? cstr(&p, end) : NULL;
    char err[256];
    hook_sched_t s;
    int64_t ms = 0;
    if (!spec || !ra)
        goto out;
    hook_sched_parse_duration(spec, &ms);
    hook_sched_parse_retry_after(ra, 1700000000000LL, &ms);
    if (hook_sched_parse(&s, spec, err, sizeof(err)) != 0) {
        if (!memchr(err, '\0', sizeof(err)))
            abort();
        hook_sched_default(&s);
    }
    if (s.nsteps < 1 || s.nsteps > HOOK_SCHED_MAX_STEPS)
        abort();
    for (size_t i = 0; i < s.nsteps; i++)
        if (s.steps_ms[i] <= 0 || s.steps_ms[i] > HOOK_SCHED_MAX_STEP_MS)
            abort();
    /* Keep times in a range real callers pass (epoch ms, ages < 1000 days). */
    unsigned attempts = (unsigned)(take(&p, end) & 0xffff);
    int64_t created = take(&p, end) & ((1LL << 42) - 1);
    int64_t now = created + (take(&p, end) & ((1LL << 37) - 1));
    int64_t max_age = take(&p, end) & ((1LL << 37) - 1);
    int64_t retry_after = take(&p, end) % (1LL << 37);
    uint32_t rnd = (uint32_t)take(&p, end);
    int64_t next = 0;
    if (hook_sched_next(&s, attempts, created, now, max_age, retry_after, rnd, &next) == HOOK_SCHED_RETRY) {
        if (next < now || next > created + max_age)
            abort();
    } else if (now < created + max_age) {
        abort();
    }
out:
    free(spec);
    free(ra);
    return 0;
}
