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
    /* alone in its process: whatever the machine does, not contended */
    assert_false(cpugauge_contended(g, CPUGAUGE_PERIOD_MS));
    cpugauge_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdict_rule),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
