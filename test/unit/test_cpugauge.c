/* cpugauge: the contention rule and the kernel's text format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/cpugauge.h"

#define MS 1000000ULL

#define W (250 * MS) /* a sample window */

static void test_verdict_rule(void **state)
{
    (void)state;
    /* crowded out while the rest of Hee is busy */
    assert_true(cpugauge_verdict(10 * MS, 11 * MS, W, W, false));
    assert_false(cpugauge_verdict(10 * MS, 0, W, W, false));
    /* between a quarter and the whole: the last verdict stands */
    assert_true(cpugauge_verdict(10 * MS, 5 * MS, W, W, true));
    assert_false(cpugauge_verdict(10 * MS, 5 * MS, W, W, false));
    assert_false(cpugauge_verdict(10 * MS, 2 * MS, W, W, true));
    /* waiting while the rest of Hee is idle: load that is not Hee's traffic
     * (or that the sweep causes itself, such as a local resolver) */
    assert_false(cpugauge_verdict(10 * MS, 50 * MS, W / 8, W, false));
    assert_false(cpugauge_verdict(10 * MS, 50 * MS, W / 8, W, true));
    assert_false(cpugauge_verdict(10 * MS, 50 * MS, W / 3, W, false));
    assert_true(cpugauge_verdict(10 * MS, 50 * MS, W / 3, W, true));
    /* too little run time says nothing */
    assert_true(cpugauge_verdict(1 * MS, 0, 0, W, true));
    assert_false(cpugauge_verdict(1 * MS, 50 * MS, W, W, false));
}

static void test_parse(void **state)
{
    (void)state;
    uint64_t r = 0, w = 0;
    assert_int_equal(cpugauge_parse("13241512 51969885 6\n", &r, &w), 0);
    assert_true(r == 13241512ULL && w == 51969885ULL);
    assert_int_equal(cpugauge_parse("", &r, &w), -1);
    assert_int_equal(cpugauge_parse("12\n", &r, &w), -1);
}

/* The pacer: no limit while free; while contended a quarter second's
 * burst, then rate per second, and the wait until the next start. */
static void test_pace(void **state)
{
    (void)state;
    cpugauge_pace_t p = { 0 };
    int64_t wait = -1;
    assert_int_equal(cpugauge_pace_room(&p, false, 1000, 0, 5000, &wait), 5000);
    assert_int_equal(wait, 0);
    assert_int_equal(cpugauge_pace_room(&p, true, 1000, 10, 5000, &wait), 250);
    cpugauge_pace_spend(&p, 250);
    assert_int_equal(cpugauge_pace_room(&p, true, 1000, 10, 5000, &wait), 0);
    assert_int_equal(wait, 2); /* 1 ms for one token, rounded up */
    assert_int_equal(cpugauge_pace_room(&p, true, 1000, 110, 5000, &wait), 100);
    cpugauge_pace_spend(&p, 40);
    assert_int_equal(cpugauge_pace_room(&p, true, 1000, 110, 30, &wait), 30);
    /* the bucket never holds more than the burst */
    assert_int_equal(cpugauge_pace_room(&p, true, 1000, 100000, 5000, &wait), 250);
    /* rate 0: no pacing at all; a tiny rate still lets one through */
    assert_int_equal(cpugauge_pace_room(&p, true, 0, 100001, 7, &wait), 7);
    cpugauge_pace_t q = { 0 };
    assert_int_equal(cpugauge_pace_room(&q, true, 2, 0, 10, &wait), 1);
    cpugauge_pace_spend(&q, 1);
    assert_int_equal(cpugauge_pace_room(&q, true, 2, 100, 10, &wait), 0);
    assert_true(wait > 300 && wait <= 401);
    /* free again: the limit goes at once */
    assert_int_equal(cpugauge_pace_room(&q, false, 2, 200, 10, &wait), 10);
    /* a reload that lowers the rate takes effect at once, even within the same ms */
    cpugauge_pace_t r = { 0 };
    assert_int_equal(cpugauge_pace_room(&r, true, 1000, 0, 5000, &wait), 250);
    assert_int_equal(cpugauge_pace_room(&r, true, 40, 0, 5000, &wait), 10);
    /* spending while free changes nothing */
    cpugauge_pace_spend(&q, 100);
    assert_int_equal(cpugauge_pace_room(&q, true, 2, 200, 10, &wait), 1);
}

/* On a kernel with schedstat the gauge samples; a NULL gauge (kernel
 * without it) is never contended. */
static void test_live(void **state)
{
    (void)state;
    assert_false(cpugauge_contended(NULL, 0));
    cpugauge_t *g = cpugauge_open();
    if (!g)
        skip();
    assert_false(cpugauge_contended(g, 0)); /* the first sample only sets a baseline */
    volatile uint64_t x = 0;
    for (uint64_t i = 0; i < 20000000ULL; i++)
        x += i;
    assert_true(x > 0); /* spent CPU: the loop ran (and clang sees x used) */
    /* alone in its process: whatever the machine does, not contended */
    assert_false(cpugauge_contended(g, CPUGAUGE_PERIOD_MS));
    cpugauge_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdict_rule),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_pace),
        cmocka_unit_test(test_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
