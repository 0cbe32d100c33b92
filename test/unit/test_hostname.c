/* Tests common/hostname.c: normalisation and the registration rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/hostname.h"

static void ok(const char *in, const char *want)
{
    char out[HOSTNAME_MAX];
    const char *why = NULL;
    int rc = hostname_check_registrable(in, "edge.hee.la", out, sizeof(out), &why);
    if (rc != 0)
        fail_msg("%s refused: %s", in, why);
    assert_string_equal(out, want);
}

static void bad(const char *in, const char *why_part)
{
    char out[HOSTNAME_MAX];
    const char *why = NULL;
    int rc = hostname_check_registrable(in, "edge.hee.la other.example.net.", out, sizeof(out), &why);
    if (rc == 0)
        fail_msg("%s accepted as %s", in, out);
    assert_non_null(why);
    if (!strstr(why, why_part))
        fail_msg("%s: reason '%s' lacks '%s'", in, why, why_part);
}

static void test_normalise(void **state)
{
    ok("docs.customer.com", "docs.customer.com");
    ok("Docs.Customer.COM", "docs.customer.com");
    ok("docs.customer.com.", "docs.customer.com");
    ok("b\xc3\xbc" "cher.de", "xn--bcher-kva.de");
    ok("B\xc3\x9c" "CHER.de.", "xn--bcher-kva.de");
    ok("xn--bcher-kva.de", "xn--bcher-kva.de");
    ok("fa\xc3\x9f.de", "xn--fa-hia.de"); /* non-transitional: ß kept */
    ok("a-b.c-d.example.org", "a-b.c-d.example.org");
    ok("1a.example.com", "1a.example.com");
    ok("example.com", "example.com");
    ok("shop.example.co.uk", "shop.example.co.uk");
}

static void test_lengths(void **state)
{
    char label63[64], label64[65], host[300];
    memset(label63, 'a', 63);
    label63[63] = '\0';
    memset(label64, 'a', 64);
    label64[64] = '\0';
    snprintf(host, sizeof(host), "%s.example.com", label63);
    ok(host, host);
    snprintf(host, sizeof(host), "%s.example.com", label64);
    bad(host, "63");
    /* 4 × 63 + 3 dots = 255 > 253 */
    snprintf(host, sizeof(host), "%s.%s.%s.%s", label63, label63, label63, label63);
    bad(host, "253");
    /* exactly 253: 3 × 63 + 61 + 3 dots */
    char l61[62];
    memset(l61, 'b', 61);
    l61[61] = '\0';
    snprintf(host, sizeof(host), "%s.%s.%s.%s", label63, label63, label63, l61);
    assert_int_equal(strlen(host), 253);
    char out[HOSTNAME_MAX];
    const char *why;
    assert_int_equal(hostname_normalize(host, out, sizeof(out), &why), 0);
}

static void test_refused(void **state)
{
    bad("", "empty");
    bad(".", "empty");
    bad("localhost", "single-label");
    bad("com", "single-label");
    bad("192.168.0.1", "IP");
    bad("127.0.0.1.", "IP");
    bad("[::1]", "IP");
    bad("2001:db8::1", "IP");
    bad("*.example.com", "wildcard");
    bad("a..example.com", "empty label");
    bad(".example.com", "empty label");
    bad("-a.example.com", "hyphen");
    bad("a-.example.com", "hyphen");
    bad("a_b.example.com", "underscore");
    bad("a b.example.com", "whitespace");
    bad("a/b.example.com", "character");
    bad("co.uk", "public suffix");
    bad("github.io", "public suffix");
    bad("edge.hee.la", "edge");
    bad("EDGE.hee.la.", "edge");
    bad("x.edge.hee.la", "edge");
    bad("other.example.net", "edge");
    bad("xn--zz.example.com", "internationalised");
}

static void test_not_edge_lookalike(void **state)
{
    ok("myedge.hee.la", "myedge.hee.la");
}

static void test_registered_domain(void **state)
{
    char out[HOSTNAME_MAX];
    assert_int_equal(hostname_registered_domain("a.b.example.co.uk", out, sizeof(out)), 0);
    assert_string_equal(out, "example.co.uk");
    assert_int_equal(hostname_registered_domain("docs.customer.com", out, sizeof(out)), 0);
    assert_string_equal(out, "customer.com");
    assert_int_equal(hostname_registered_domain("customer.com", out, sizeof(out)), 0);
    assert_string_equal(out, "customer.com");
    assert_int_equal(hostname_registered_domain("co.uk", out, sizeof(out)), -1);
    char small[4];
    assert_int_equal(hostname_registered_domain("customer.com", small, sizeof(small)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_not_edge_lookalike),
        cmocka_unit_test(test_registered_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
