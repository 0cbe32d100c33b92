/* The ConnectionState transition table (common/domain_state.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/domain_state.h"

static void expect_move(domain_state_t from, domain_trigger_t t, domain_state_t want, const char *event)
{
    domain_state_t to;
    const char *ev = "unset";
    if (domain_state_next(from, t, &to, &ev) != 0)
        fail_msg("%s --%s--> refused, expected %s", domain_state_name(from), domain_trigger_name(t),
                 domain_state_name(want));
    if (to != want)
        fail_msg("%s --%s--> %s, expected %s", domain_state_name(from), domain_trigger_name(t),
                 domain_state_name(to), domain_state_name(want));
    if (event == NULL ? ev != NULL : (ev == NULL || strcmp(ev, event) != 0))
        fail_msg("%s --%s--> event %s, expected %s", domain_state_name(from), domain_trigger_name(t),
                 ev ? ev : "none", event ? event : "none");
}

static void expect_refused(domain_state_t from, domain_trigger_t t)
{
    domain_state_t to = DS_COUNT;
    const char *ev = "unset";
    assert_int_equal(domain_state_next(from, t, &to, &ev), -1);
    assert_int_equal(to, from);
    assert_null(ev);
}

static void test_names_roundtrip(void **state)
{
    (void)state;
    static const char *const seed[] = { "created", "pending_ownership", "verifying", "verified", "dns_writing",
                                        "propagating", "stalled", "issuing_cert", "live", "drifted", "failed",
                                        "archived" };
    assert_int_equal(DS_COUNT, 12);
    for (int i = 0; i < DS_COUNT; i++) {
        domain_state_t s;
        assert_string_equal(domain_state_name((domain_state_t)i), seed[i]);
        assert_int_equal(domain_state_parse(seed[i], &s), 0);
        assert_int_equal(s, i);
    }
    domain_state_t s;
    assert_int_equal(domain_state_parse("Verified", &s), -1);
    assert_int_equal(domain_state_parse("", &s), -1);
    assert_int_equal(domain_state_parse(NULL, &s), -1);
    assert_string_equal(domain_state_name(DS_COUNT), "?");
    assert_string_equal(domain_trigger_name(DT_COUNT), "?");
    for (int t = 0; t < DT_COUNT; t++)
        assert_string_not_equal(domain_trigger_name((domain_trigger_t)t), "?");
}

/* The seed's happy path: registered → verified → issuing → live. */
static void test_lifecycle(void **state)
{
    (void)state;
    expect_move(DS_CREATED, DT_REGISTER, DS_PENDING_OWNERSHIP, "domain.created");
    expect_move(DS_PENDING_OWNERSHIP, DT_DNS_MISS, DS_PENDING_OWNERSHIP, NULL);
    expect_move(DS_PENDING_OWNERSHIP, DT_DNS_PROGRESS, DS_VERIFYING, NULL);
    expect_move(DS_VERIFYING, DT_DNS_OK, DS_VERIFIED, "domain.verified");
    expect_move(DS_VERIFIED, DT_ISSUE_START, DS_ISSUING_CERT, NULL);
    expect_move(DS_ISSUING_CERT, DT_ISSUE_OK, DS_LIVE, "ssl.issued");
    expect_move(DS_LIVE, DT_ISSUE_OK, DS_LIVE, "domain.monitor_updated"); /* renewal */
    expect_move(DS_LIVE, DT_REMOVE, DS_ARCHIVED, "domain.deleted");
}

/* Verification is one-way: no trigger takes a verified domain back to a
 * state before verification. */
static void test_one_way(void **state)
{
    (void)state;
    for (int from = 0; from < DS_COUNT; from++) {
        if (!domain_state_is_verified((domain_state_t)from))
            continue;
        for (int t = 0; t < DT_COUNT; t++) {
            domain_state_t to;
            const char *ev;
            if (domain_state_next((domain_state_t)from, (domain_trigger_t)t, &to, &ev) != 0)
                continue;
            if (!domain_state_is_verified(to) && to != DS_ARCHIVED)
                fail_msg("%s --%s--> %s loses verification", domain_state_name((domain_state_t)from),
                         domain_trigger_name((domain_trigger_t)t), domain_state_name(to));
        }
    }
}

static void test_drift_and_recovery(void **state)
{
    (void)state;
    expect_move(DS_VERIFIED, DT_DNS_MISS, DS_DRIFTED, "domain.drift");
    expect_move(DS_LIVE, DT_DNS_MISS, DS_DRIFTED, "domain.drift");
    expect_move(DS_ISSUING_CERT, DT_DNS_MISS, DS_DRIFTED, "domain.drift");
    expect_move(DS_FAILED, DT_DNS_MISS, DS_DRIFTED, "domain.drift");
    expect_move(DS_LIVE, DT_DNS_PROGRESS, DS_DRIFTED, "domain.drift");
    expect_move(DS_DRIFTED, DT_DNS_MISS, DS_DRIFTED, NULL);
    expect_move(DS_DRIFTED, DT_DNS_OK, DS_VERIFIED, "domain.monitor_updated");
    expect_move(DS_DRIFTED, DT_DNS_OK_CERT, DS_LIVE, "domain.monitor_updated");
    /* a drifted domain keeps its certificate flow apart */
    expect_move(DS_DRIFTED, DT_ISSUE_START, DS_DRIFTED, NULL);
    expect_move(DS_DRIFTED, DT_ISSUE_OK, DS_DRIFTED, "ssl.issued");
}

static void test_transient_errors_move_nothing(void **state)
{
    (void)state;
    for (int from = 0; from < DS_COUNT; from++) {
        domain_state_t to;
        const char *ev;
        if (domain_state_next((domain_state_t)from, DT_DNS_ERROR, &to, &ev) != 0)
            continue;
        assert_int_equal(to, from);
        assert_null(ev);
    }
    expect_move(DS_LIVE, DT_DNS_ERROR, DS_LIVE, NULL);
    expect_move(DS_PENDING_OWNERSHIP, DT_DNS_ERROR, DS_PENDING_OWNERSHIP, NULL);
}

static void test_window_and_stalled(void **state)
{
    (void)state;
    expect_move(DS_PENDING_OWNERSHIP, DT_WINDOW_EXPIRED, DS_STALLED, "domain.failed");
    expect_move(DS_VERIFYING, DT_WINDOW_EXPIRED, DS_STALLED, "domain.failed");
    expect_move(DS_STALLED, DT_WINDOW_EXPIRED, DS_STALLED, NULL);
    expect_move(DS_STALLED, DT_DNS_MISS, DS_STALLED, NULL);
    expect_move(DS_STALLED, DT_DNS_PROGRESS, DS_STALLED, NULL);
    expect_move(DS_STALLED, DT_DNS_OK, DS_VERIFIED, "domain.verified");
    expect_move(DS_STALLED, DT_DNS_OK_CERT, DS_LIVE, "domain.verified");
    expect_refused(DS_VERIFIED, DT_WINDOW_EXPIRED);
    expect_refused(DS_LIVE, DT_WINDOW_EXPIRED);
    expect_refused(DS_DRIFTED, DT_WINDOW_EXPIRED);
}

static void test_trust_registration(void **state)
{
    (void)state;
    expect_move(DS_PENDING_OWNERSHIP, DT_TRUST, DS_VERIFIED, "domain.verified");
    expect_move(DS_STALLED, DT_TRUST, DS_VERIFIED, "domain.verified");
    expect_move(DS_CREATED, DT_TRUST, DS_VERIFIED, "domain.verified");
    expect_move(DS_LIVE, DT_TRUST, DS_LIVE, NULL);
    expect_move(DS_VERIFIED, DT_TRUST, DS_VERIFIED, NULL);
}

static void test_issuer_moves(void **state)
{
    (void)state;
    expect_move(DS_ISSUING_CERT, DT_ISSUE_FAIL, DS_FAILED, "domain.failed");
    expect_move(DS_FAILED, DT_ISSUE_START, DS_ISSUING_CERT, NULL);
    expect_move(DS_FAILED, DT_ISSUE_OK, DS_LIVE, "ssl.issued");
    expect_move(DS_LIVE, DT_ISSUE_FAIL, DS_LIVE, "domain.monitor_updated");
    expect_refused(DS_PENDING_OWNERSHIP, DT_ISSUE_START);
    expect_refused(DS_STALLED, DT_ISSUE_OK);
    expect_refused(DS_VERIFYING, DT_ISSUE_FAIL);
}

static void test_archived_is_final(void **state)
{
    (void)state;
    for (int t = 0; t < DT_COUNT; t++)
        expect_refused(DS_ARCHIVED, (domain_trigger_t)t);
    for (int from = 0; from < DS_COUNT; from++)
        if (from != DS_ARCHIVED)
            expect_move((domain_state_t)from, DT_REMOVE, DS_ARCHIVED, "domain.deleted");
}

/* The table itself: no duplicate (from, trigger), every row in range, every
 * event one of the documented types, and a DNS trigger has a row for every
 * state the scheduler probes. */
static void test_table_is_well_formed(void **state)
{
    (void)state;
    static const char *const events[] = { "domain.created", "domain.verified", "domain.drift",
                                          "domain.monitor_updated", "domain.failed", "domain.deleted",
                                          "ssl.issued" };
    size_t n;
    const domain_transition_t *tab = domain_state_table(&n);
    assert_true(n > 50);
    for (size_t i = 0; i < n; i++) {
        assert_true(tab[i].from < DS_COUNT && tab[i].to < DS_COUNT && tab[i].trigger < DT_COUNT);
        for (size_t k = i + 1; k < n; k++)
            if (tab[i].from == tab[k].from && tab[i].trigger == tab[k].trigger)
                fail_msg("duplicate row %s/%s", domain_state_name(tab[i].from), domain_trigger_name(tab[i].trigger));
        if (tab[i].event) {
            int known = 0;
            for (size_t e = 0; e < sizeof(events) / sizeof(events[0]); e++)
                known |= strcmp(tab[i].event, events[e]) == 0;
            assert_true(known);
        }
    }
    const domain_trigger_t dns[] = { DT_DNS_OK, DT_DNS_OK_CERT, DT_DNS_PROGRESS, DT_DNS_MISS, DT_DNS_ERROR, DT_TRUST };
    for (int from = 0; from < DS_COUNT; from++) {
        domain_state_t s = (domain_state_t)from;
        if (!domain_state_is_pending(s) && !domain_state_is_verified(s))
            continue;
        for (size_t t = 0; t < sizeof(dns) / sizeof(dns[0]); t++) {
            domain_state_t to;
            const char *ev;
            if (domain_state_next(s, dns[t], &to, &ev) != 0)
                fail_msg("probed state %s has no row for %s", domain_state_name(s), domain_trigger_name(dns[t]));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_roundtrip),
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_one_way),
        cmocka_unit_test(test_drift_and_recovery),
        cmocka_unit_test(test_transient_errors_move_nothing),
        cmocka_unit_test(test_window_and_stalled),
        cmocka_unit_test(test_trust_registration),
        cmocka_unit_test(test_issuer_moves),
        cmocka_unit_test(test_archived_is_final),
        cmocka_unit_test(test_table_is_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
