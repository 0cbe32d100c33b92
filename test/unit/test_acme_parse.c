/* Tests the parsers of ACME responses (control/acme_parse.h, implemented
 * in control/acme.c) on RFC 8555 / RFC 9773 examples and on the hostile
 * shapes the fuzz target found interesting: exact results, not just
 * survival (fuzz_acme does that). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/acme_parse.h"

#define S(lit) lit, strlen(lit)
#define P "urn:ietf:params:acme:error:"

static void test_problem(void **state)
{
    acme_problem_t p;
    assert_int_equal(acme_parse_problem(S("{\"type\":\"" P "rateLimited\",\"detail\":\"slow down\"}"), &p), 0);
    assert_string_equal(p.type, P "rateLimited");
    assert_string_equal(p.detail, "slow down");
    acme_problem_clear(&p);
    assert_null(p.type);
    assert_int_equal(acme_parse_problem(S("{\"type\":7}"), &p), 0);
    assert_null(p.type);
    assert_int_equal(acme_parse_problem(S("<html>502</html>"), &p), -1);
    assert_int_equal(acme_parse_problem(S("[1,2]"), &p), -1);
    assert_int_equal(acme_parse_problem(NULL, 0, &p), -1);
    acme_problem_clear(NULL);
}

static void test_directory(void **state)
{
    acme_directory_t d;
    assert_int_equal(acme_parse_directory(S("{\"newNonce\":\"https://ca/n\",\"newAccount\":\"https://ca/a\","
                                            "\"newOrder\":\"https://ca/o\",\"renewalInfo\":\"https://ca/ari\","
                                            "\"meta\":{\"externalAccountRequired\":true}}"),
                                          &d),
                     0);
    assert_string_equal(d.new_order, "https://ca/o");
    assert_string_equal(d.renewal_info, "https://ca/ari");
    assert_int_equal(d.eab_required, 1);
    acme_directory_clear(&d);
    assert_int_equal(acme_parse_directory(S("{\"newNonce\":\"n\",\"newAccount\":\"a\",\"newOrder\":[]}"), &d), -1);
    assert_null(d.new_nonce);
    /* A string past the bound counts as absent. */
    size_t big = ACME_PARSE_MAX_STR + 10;
    char *body = malloc(big + 100);
    int n = snprintf(body, big + 100, "{\"newNonce\":\"n\",\"newAccount\":\"a\",\"newOrder\":\"%0*d\"}",
                     (int)big, 0);
    assert_int_equal(acme_parse_directory(body, (size_t)n, &d), -1);
    free(body);
}

static void test_order(void **state)
{
    acme_order_obj_t o;
    assert_int_equal(acme_parse_order(S("{\"status\":\"pending\",\"authorizations\":[\"https://ca/az/1\","
                                        "\"https://ca/az/2\"],\"finalize\":\"https://ca/fin\"}"),
                                      &o),
                     0);
    assert_int_equal(o.status, ACME_OBJ_PENDING);
    assert_int_equal(o.nauthz, 2);
    assert_string_equal(o.authz[1], "https://ca/az/2");
    assert_string_equal(o.finalize, "https://ca/fin");
    assert_null(o.certificate);
    acme_order_obj_clear(&o);

    assert_int_equal(acme_parse_order(S("{\"status\":\"invalid\",\"error\":{\"type\":\"" P
                                        "unauthorized\",\"detail\":\"CAA\"}}"),
                                      &o),
                     0);
    assert_int_equal(o.status, ACME_OBJ_INVALID);
    assert_null(o.authz);
    assert_string_equal(o.error.detail, "CAA");
    acme_order_obj_clear(&o);

    assert_int_equal(acme_parse_order(S("{\"status\":\"bogus\",\"authorizations\":[]}"), &o), 0);
    assert_int_equal(o.status, ACME_OBJ_UNKNOWN);
    assert_non_null(o.authz); /* present and empty, unlike absent */
    assert_int_equal(o.nauthz, 0);
    acme_order_obj_clear(&o);

    assert_int_equal(acme_parse_order(S("{\"status\":\"pending\",\"authorizations\":[\"a\",3]}"), &o), -1);
    assert_int_equal(acme_parse_order(S("{\"status\":\"pending\",\"authorizations\":\"a\"}"), &o), -1);
    char body[64 * (ACME_PARSE_MAX_AUTHZ + 2)];
    size_t n = (size_t)snprintf(body, sizeof(body), "{\"authorizations\":[\"x\"");
    for (int i = 0; i < ACME_PARSE_MAX_AUTHZ; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, ",\"x\"");
    n += (size_t)snprintf(body + n, sizeof(body) - n, "]}");
    assert_int_equal(acme_parse_order(body, n, &o), -1);
    assert_int_equal(o.nauthz, 0);
}

static void test_authz(void **state)
{
    static const char *const prefs[] = { "tls-alpn-01", "http-01" };
    const char *body = "{\"status\":\"pending\",\"challenges\":["
                       "{\"type\":\"http-01\",\"url\":\"https://ca/ch/1\",\"token\":\"tok-http\"},"
                       "{\"type\":\"tls-alpn-01\",\"url\":\"https://ca/ch/2\",\"token\":\"../etc\"},"
                       "{\"type\":\"tls-alpn-01\",\"url\":\"https://ca/ch/3\",\"token\":\"tok_alpn\","
                       "\"status\":\"processing\"}]}";
    acme_authz_obj_t a;
    assert_int_equal(acme_parse_authz(body, strlen(body), prefs, 2, &a), 0);
    assert_int_equal(a.status, ACME_OBJ_PENDING);
    assert_int_equal(a.chall, 0); /* the alpn one with a usable token */
    assert_string_equal(a.chall_url, "https://ca/ch/3");
    assert_string_equal(a.chall_token, "tok_alpn");
    assert_int_equal(a.chall_status, ACME_OBJ_PROCESSING);
    acme_authz_obj_clear(&a);
    assert_int_equal(a.chall, -1);
    assert_int_equal(acme_parse_authz(body, strlen(body), prefs + 1, 1, &a), 0);
    assert_int_equal(a.chall, 0);
    assert_string_equal(a.chall_token, "tok-http");
    acme_authz_obj_clear(&a);
    assert_int_equal(acme_parse_authz(body, strlen(body), NULL, 0, &a), 0);
    assert_int_equal(a.chall, -1);

    body = "{\"status\":\"invalid\",\"challenges\":[{\"type\":\"http-01\"},"
           "{\"type\":\"http-01\",\"error\":{\"type\":\"" P "connection\",\"detail\":\"timeout\"}},"
           "{\"error\":{\"detail\":\"second\"}}]}";
    assert_int_equal(acme_parse_authz(body, strlen(body), prefs, 2, &a), 0);
    assert_int_equal(a.status, ACME_OBJ_INVALID);
    assert_int_equal(a.chall, -1);
    assert_string_equal(a.error.type, P "connection");
    assert_string_equal(a.error.detail, "timeout");
    acme_authz_obj_clear(&a);
}

static void test_challenge_and_ari(void **state)
{
    acme_chall_obj_t c;
    assert_int_equal(acme_parse_challenge(S("{\"status\":\"invalid\",\"error\":{\"detail\":\"no\"}}"), &c), 0);
    assert_int_equal(c.status, ACME_OBJ_INVALID);
    assert_string_equal(c.error.detail, "no");
    acme_chall_obj_clear(&c);

    acme_ari_obj_t a;
    assert_int_equal(acme_parse_renewal_info(S("{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\","
                                               "\"end\":\"2025-01-03T04:00:00Z\"},"
                                               "\"explanationURL\":\"https://ca/why\"}"),
                                             &a),
                     0);
    assert_true(a.end_ms - a.start_ms == 86400000);
    assert_string_equal(a.explanation_url, "https://ca/why");
    acme_ari_obj_clear(&a);
    assert_int_equal(acme_parse_renewal_info(S("{\"suggestedWindow\":{\"start\":\"2025-01-03T04:00:00Z\","
                                               "\"end\":\"2025-01-02T04:00:00Z\"}}"),
                                             &a),
                     -1);
    assert_int_equal(acme_parse_renewal_info(S("{\"suggestedWindow\":{\"start\":\"soon\",\"end\":\"later\"}}"), &a),
                     -1);
    assert_null(a.explanation_url);
}

static void test_headers(void **state)
{
    const char *name, *v;
    size_t nl, vl;
    assert_int_equal(acme_header_split(S("HTTP/2 201\r\n"), &name, &nl, &v, &vl), ACME_HDR_STATUS);
    assert_int_equal(acme_header_split(S("\r\n"), &name, &nl, &v, &vl), ACME_HDR_OTHER);
    assert_int_equal(acme_header_split(S(": x\r\n"), &name, &nl, &v, &vl), ACME_HDR_OTHER);
    assert_int_equal(acme_header_split(S("Retry-After: \t 120 \r\n"), &name, &nl, &v, &vl), ACME_HDR_FIELD);
    assert_int_equal(nl, 11);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "120", 3);

    const int64_t now = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */
    assert_int_equal(acme_parse_retry_after(S("120"), now), 120);
    assert_int_equal(acme_parse_retry_after(S(" 0 \r\n"), now), 0);
    assert_int_equal(acme_parse_retry_after(S("99999999999999999999999"), now), ACME_PARSE_MAX_DELAY);
    assert_int_equal(acme_parse_retry_after(S("120abc"), now), -1);
    assert_int_equal(acme_parse_retry_after(S("-5"), now), -1);
    assert_int_equal(acme_parse_retry_after(S(""), now), -1);
    assert_int_equal(acme_parse_retry_after(S("Wed, 21 Oct 2015 07:30:00 GMT"), now), 120);
    assert_int_equal(acme_parse_retry_after(S("Wed, 21 Oct 2015 07:00:00 GMT"), now), 0);
    assert_int_equal(acme_parse_retry_after(S("Wed, 21 Oct 2099 07:00:00 GMT"), now), ACME_PARSE_MAX_DELAY);
    assert_int_equal(acme_parse_retry_after(S("next tuesday-ish"), now), -1);
}

static void expect_link(const char *value, const char *rel, const char *want)
{
    char *got = acme_parse_link(value, strlen(value), rel);
    if (want)
        assert_string_equal(got, want);
    else
        assert_null(got);
    free(got);
}

static void test_link(void **state)
{
    const char *v = "<https://ca/dir>;rel=\"index\", <https://ca/cert/1,2>; title=\"a, \\\"b\\\"\"; "
                    "rel=\"alternate\", <https://ca/cert/3>; REL=alternate";
    expect_link(v, "index", "https://ca/dir");
    expect_link(v, "alternate", "https://ca/cert/1,2");
    expect_link(v, "ALTERNATE", "https://ca/cert/1,2");
    expect_link(v, "up", NULL);
    expect_link(v, "", NULL);
    expect_link("<https://ca/az>; rel=\"next up\"", "up", "https://ca/az");
    expect_link("<https://ca/az>; rel=\"up", "up", NULL);  /* unterminated quote */
    expect_link("https://ca/az; rel=up", "up", NULL);      /* no <target> */
    expect_link("<https://ca/az; rel=up", "up", NULL);     /* no '>' */
    expect_link("<https://ca/x> junk; rel=up", "up", NULL);
    expect_link("<https://ca/x>;;; rel=up,", "up", "https://ca/x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_problem),   cmocka_unit_test(test_directory),
        cmocka_unit_test(test_order),     cmocka_unit_test(test_authz),
        cmocka_unit_test(test_challenge_and_ari), cmocka_unit_test(test_headers),
        cmocka_unit_test(test_link),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
