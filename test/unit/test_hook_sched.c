/* Tests control/hook_sched.c with simulated time: the whole 7-day schedule,
 * jitter bounds, Retry-After and the configurable window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "control/hook_sched.h"

#define S 1000LL
#define M (60 * S)
#define H (60 * M)
#define D (24 * H)
#define T0 1700000000000LL          /* event creation, ms since the epoch */
#define EXACT 0x80000000u           /* rnd giving zero jitter */

/* Runs deliveries that all fail instantly (or after took_ms) and records the
 * attempt times relative to T0 until DEAD. Returns the number of attempts. */
static size_t simulate(const hook_sched_t *s, int64_t max_age, int64_t took_ms, uint32_t rnd,
                       int64_t *at, size_t cap)
{
    int64_t now = T0, next;
    size_t n = 0;
    while (hook_sched_next(s, (unsigned)n, T0, now, max_age, -1, rnd, &next) == HOOK_SCHED_RETRY) {
        assert_true(next >= now);
        assert_true(n < cap);
        at[n++] = next - T0;
        now = next + took_ms;
    }
    return n;
}

static void test_default_week(void **state)
{
    hook_sched_t s;
    hook_sched_default(&s);
    int64_t at[64];
    size_t n = simulate(&s, HOOK_SCHED_DEFAULT_MAX_AGE_MS, 0, EXACT, at, 64);
    static const int64_t want[] = {
        0,                                 /* first try, right away */
        30 * S,                            /* +30s */
        90 * S,                            /* +1m */
        390 * S,                           /* +5m */
        2190 * S,                          /* +30m */
        9390 * S,                          /* +2h */
        30990 * S,                         /* +6h  = 8h36m30s */
        30990 * S + 1 * D,                 /* +1d (last list entry) */
        30990 * S + 2 * D,                 /* then daily */
        30990 * S + 3 * D,
        30990 * S + 4 * D,
        30990 * S + 5 * D,
        30990 * S + 6 * D,
        7 * D,                             /* pulled in to the window's end */
    };
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < n; i++)
        if (at[i] != want[i])
            fail_msg("attempt %zu at %lld ms, want %lld", i + 1, (long long)at[i],
                     (long long)want[i]);
    /* One millisecond before the end a retry is still scheduled; at it, DEAD. */
    int64_t next;
    assert_int_equal(hook_sched_next(&s, 14, T0, T0 + 7 * D - 1, 7 * D, -1, EXACT, &next),
                     HOOK_SCHED_RETRY);
    assert_int_equal(next, T0 + 7 * D);
    assert_int_equal(hook_sched_next(&s, 14, T0, T0 + 7 * D, 7 * D, -1, EXACT, &next),
                     HOOK_SCHED_DEAD);
    assert_int_equal(hook_sched_next(&s, 0, T0, T0 + 8 * D, 7 * D, -1, EXACT, &next),
                     HOOK_SCHED_DEAD);
}

/* Slow failures (each attempt takes 20 s to time out) push the schedule back. */
static void test_slow_attempts(void **state)
{
    hook_sched_t s;
    hook_sched_default(&s);
    int64_t at[64];
    size_t n = simulate(&s, 7 * D, 20 * S, EXACT, at, 64);
    assert_int_equal(at[1], 20 * S + 30 * S);
    assert_int_equal(at[2], at[1] + 20 * S + 1 * M);
    assert_int_equal(at[n - 1], 7 * D);
    assert_int_equal(n, 14);
}

static void test_jitter(void **state)
{
    hook_sched_t s;
    hook_sched_default(&s);
    int64_t next;
    static const struct {
        uint32_t rnd;
        int64_t wait;
    } cases[] = {
        { 0, 27 * S }, { 0x40000000u, 28500 }, { EXACT, 30 * S }, { 0xffffffffu, 33 * S },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(hook_sched_next(&s, 1, T0, T0, 7 * D, -1, cases[i].rnd, &next),
                         HOOK_SCHED_RETRY);
        assert_int_equal(next - T0, cases[i].wait);
    }
    /* Daily waits stay within ±10 % (±2h24m). */
    assert_int_equal(hook_sched_next(&s, 9, T0, T0 + D, 7 * D, -1, 0, &next), HOOK_SCHED_RETRY);
    assert_int_equal(next - T0, D + D - D / 10);
    assert_int_equal(hook_sched_next(&s, 9, T0, T0 + D, 7 * D, -1, 0xffffffffu, &next),
                     HOOK_SCHED_RETRY);
    assert_int_equal(next - T0, D + D + D / 10);
    /* Extreme jitter over the whole week never leaves the window or goes backwards. */
    int64_t at[64];
    size_t lo = simulate(&s, 7 * D, 0, 0, at, 64);
    assert_int_equal(at[lo - 1], 7 * D);
    size_t hi = simulate(&s, 7 * D, 0, 0xffffffffu, at, 64);
    assert_int_equal(at[hi - 1], 7 * D);
    assert_true(lo >= hi);
    /* No jitter configured: rnd is irrelevant. */
    s.jitter_pct = 0;
    assert_int_equal(hook_sched_next(&s, 1, T0, T0, 7 * D, -1, 0, &next), HOOK_SCHED_RETRY);
    assert_int_equal(next - T0, 30 * S);
}

static void test_retry_after(void **state)
{
    hook_sched_t s;
    hook_sched_default(&s);
    int64_t next;
    /* Longer than our wait: honoured exactly. */
    assert_int_equal(hook_sched_next(&s, 1, T0, T0 + 5 * S, 7 * D, 120 * S, EXACT, &next),
                     HOOK_SCHED_RETRY);
    assert_int_equal(next, T0 + 125 * S);
    /* Shorter: our schedule wins. */
    assert_int_equal(hook_sched_next(&s, 1, T0, T0, 7 * D, 10 * S, EXACT, &next),
                     HOOK_SCHED_RETRY);
    assert_int_equal(next, T0 + 30 * S);
    /* Zero is "now" and never beats a positive wait. */
    assert_int_equal(hook_sched_next(&s, 1, T0, T0, 7 * D, 0, EXACT, &next), HOOK_SCHED_RETRY);
    assert_int_equal(next, T0 + 30 * S);
    /* Past the window: capped to its end, then DEAD. */
    assert_int_equal(hook_sched_next(&s, 3, T0, T0 + 6 * D, 7 * D, 30 * D, EXACT, &next),
                     HOOK_SCHED_RETRY);
    assert_int_equal(next, T0 + 7 * D);
    assert_int_equal(hook_sched_next(&s, 3, T0, T0 + 6 * D, 7 * D, INT64_MAX, EXACT, &next),
                     HOOK_SCHED_RETRY);
    assert_int_equal(next, T0 + 7 * D);
}

static void test_window(void **state)
{
    hook_sched_t s;
    hook_sched_default(&s);
    int64_t at[64];
    size_t n = simulate(&s, 1 * H, 0, EXACT, at, 64);
    static const int64_t want[] = { 0, 30 * S, 90 * S, 390 * S, 2190 * S, 1 * H };
    assert_int_equal(n, sizeof(want) / sizeof(want[0]));
    assert_memory_equal(at, want, sizeof(want));
    int64_t next;
    assert_int_equal(hook_sched_next(&s, 0, T0, T0, 0, -1, EXACT, &next), HOOK_SCHED_DEAD);
}

static void test_parse(void **state)
{
    hook_sched_t a, b;
    char err[160];
    hook_sched_default(&a);
    assert_int_equal(hook_sched_parse(&b, HOOK_SCHED_DEFAULT, err, sizeof(err)), 0);
    assert_int_equal(b.nsteps, a.nsteps);
    assert_memory_equal(b.steps_ms, a.steps_ms, sizeof(a.steps_ms[0]) * a.nsteps);
    assert_int_equal(b.repeat_ms, HOOK_SCHED_DAY_MS);
    assert_int_equal(b.jitter_pct, 10);

    assert_int_equal(hook_sched_parse(&b, " 30, 60 ,,300\n", err, sizeof(err)), 0);
    assert_int_equal(b.nsteps, 3);
    assert_int_equal(b.steps_ms[0], 30 * S);
    assert_int_equal(b.steps_ms[1], 60 * S);
    assert_int_equal(b.steps_ms[2], 300 * S);
    assert_int_equal(hook_sched_parse(&b, "250ms 1s 2m 3h 30d", err, sizeof(err)), 0);
    assert_int_equal(b.nsteps, 5);
    assert_int_equal(b.steps_ms[0], 250);
    assert_int_equal(b.steps_ms[4], 30 * D);

    static const char *const bad[] = {
        "", " , ", "0s", "31d", "5x", "-5", "1m,2w", "s", "1.5s", "99999999999999999999",
        "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b = a;
        if (hook_sched_parse(&b, bad[i], err, sizeof(err)) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_true(err[0] != '\0');
        /* A failed parse leaves the schedule alone. */
        assert_memory_equal(&b, &a, sizeof(a));
    }
    assert_int_equal(hook_sched_parse(&b, "1m,2w", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "\"2w\""));

    int64_t ms;
    assert_int_equal(hook_sched_parse_duration("7d", &ms), 0);
    assert_int_equal(ms, 7 * D);
    assert_int_equal(hook_sched_parse_duration("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(hook_sched_parse_duration("12 s", &ms), -1);
    assert_int_equal(hook_sched_parse_duration(NULL, &ms), -1);
}

static void test_parse_retry_after(void **state)
{
    int64_t ms;
    int64_t now = 1445412420000LL;   /* Wed, 21 Oct 2015 07:27:00 GMT */
    assert_int_equal(hook_sched_parse_retry_after("120", now, &ms), 0);
    assert_int_equal(ms, 120 * S);
    assert_int_equal(hook_sched_parse_retry_after(" 5 ", now, &ms), 0);
    assert_int_equal(ms, 5 * S);
    assert_int_equal(hook_sched_parse_retry_after("0", now, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(hook_sched_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now, &ms), 0);
    assert_int_equal(ms, 60 * S);
    assert_int_equal(hook_sched_parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(hook_sched_parse_retry_after("99999999999999999999999", now, &ms), 0);
    assert_true(ms > 30 * D);
    static const char *const bad[] = { "", "soon", "12x", "-1", "1.5",
                                       "Wed, 21 Oct 2015 07:28:00", "Wed, 21 Oct 2015 07:28:00 GMT x" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (hook_sched_parse_retry_after(bad[i], now, &ms) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
    assert_int_equal(hook_sched_parse_retry_after(NULL, now, &ms), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_week),
        cmocka_unit_test(test_slow_attempts),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_window),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
