/* Tests common/util.c and common/crypto.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/util.h"

static void test_base64_roundtrip(void **unused)
{
    static const struct { const char *in, *std, *url; } v[] = {
        { "", "", "" }, { "f", "Zg==", "Zg" }, { "fo", "Zm8=", "Zm8" }, { "foo", "Zm9v", "Zm9v" },
        { "foob", "Zm9vYg==", "Zm9vYg" }, { "\xfb\xff", "+/8=", "-_8" },
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(v); i++) {
        char *s = util_b64(v[i].in, strlen(v[i].in), 0);
        char *u = util_b64(v[i].in, strlen(v[i].in), 1);
        assert_string_equal(s, v[i].std);
        assert_string_equal(u, v[i].url);
        size_t n;
        unsigned char *d = util_unb64(u, strlen(u), &n);
        assert_int_equal(n, strlen(v[i].in));
        assert_memory_equal(d, v[i].in, n);
        free(d);
        d = util_unb64(s, strlen(s), &n);
        assert_int_equal(n, strlen(v[i].in));
        free(d);
        free(s);
        free(u);
    }
    size_t n;
    assert_null(util_unb64("a*bc", 4, &n));
    assert_null(util_unb64("abcde", 5, &n));
}

static void test_iso8601(void **unused)
{
    char buf[32];
    assert_string_equal(util_iso8601(1614265330123, buf, sizeof(buf)), "2021-02-25T15:02:10.123Z");
    int64_t ms;
    assert_int_equal(util_parse_iso8601("2021-02-25T15:02:10.123Z", &ms), 0);
    assert_int_equal(ms, 1614265330123);
    assert_int_equal(util_parse_iso8601("2021-02-25T16:02:10+01:00", &ms), 0);
    assert_int_equal(ms, 1614265330000);
    assert_int_equal(util_parse_iso8601("2021-02-25", &ms), -1);
    assert_int_equal(util_parse_iso8601("2021-02-25T15:02:10Zjunk", &ms), -1);
}

static void test_random_id(void **unused)
{
    char *a = util_random_id("evt_", 16), *b = util_random_id("evt_", 16);
    assert_true(strncmp(a, "evt_", 4) == 0);
    assert_true(strlen(a) >= 4 + 22);
    assert_string_not_equal(a, b);
    for (const char *p = a + 4; *p; p++)
        assert_non_null(strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", *p));
    free(a);
    free(b);
    for (int i = 0; i < 1000; i++)
        assert_true(util_random_below(7) < 7);
}

static void test_hmac_rfc4231_case2(void **unused)
{
    unsigned char mac[32];
    char hex[65];
    const char *data = "what do ya want for nothing?";
    assert_int_equal(crypto_hmac_sha256("Jefe", 4, data, strlen(data), mac), 0);
    util_hex(hex, mac, 32);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    const void *pieces[] = { "what do ya ", "want for nothing?" };
    size_t lens[] = { 11, 17 };
    unsigned char mac2[32];
    assert_int_equal(crypto_hmac_sha256_v("Jefe", 4, pieces, lens, 2, mac2), 0);
    assert_true(crypto_ct_equal(mac, mac2, 32));
}

static void test_digits_and_hex(void **unused)
{
    int64_t v;
    assert_int_equal(util_parse_digits("1614265330", &v), 0);
    assert_int_equal(v, 1614265330);
    assert_int_equal(util_parse_digits("999999999999999999", &v), 0);
    assert_int_equal(util_parse_digits("1000000000000000000", &v), -1); /* 19 digits */
    assert_int_equal(util_parse_digits("", &v), -1);
    assert_int_equal(util_parse_digits("-1", &v), -1);
    assert_int_equal(util_parse_digits("12 ", &v), -1);
    assert_int_equal(util_parse_digits(NULL, &v), -1);
    assert_int_equal(util_hexval('0'), 0);
    assert_int_equal(util_hexval('f'), 15);
    assert_int_equal(util_hexval('F'), 15);
    assert_int_equal(util_hexval('g'), -1);
}

/* util_usable_cpus follows the affinity mask, as taskset narrows it. */
static void test_usable_cpus(void **unused)
{
    (void)unused;
    cpu_set_t orig, one;
    assert_int_equal(sched_getaffinity(0, sizeof(orig), &orig), 0);
    int n = CPU_COUNT(&orig), lowest = -1, highest = -1;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &orig)) {
            lowest = lowest < 0 ? c : lowest;
            highest = c;
        }
    }
    int cpus[2] = { -1, -1 };
    assert_int_equal(util_usable_cpus(NULL, 0), n);
    assert_int_equal(util_usable_cpus(cpus, 1), n);
    assert_int_equal(cpus[0], lowest);
    assert_int_equal(cpus[1], -1); /* never beyond cap */
    CPU_ZERO(&one);
    CPU_SET(highest, &one);
    assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
    assert_int_equal(util_usable_cpus(cpus, 2), 1);
    assert_int_equal(cpus[0], highest);
    assert_int_equal(sched_setaffinity(0, sizeof(orig), &orig), 0);
}

/* The socket helpers the edge uses to tell a peer gone from bytes
 * waiting, without reading them. */
static void test_socket_peek_and_error(void **unused)
{
    (void)unused;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(util_socket_peek(sv[0]), -2);
    assert_int_equal(util_socket_error(sv[0]), 0);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(util_socket_peek(sv[0]), 1);
    assert_int_equal(util_socket_peek(sv[0]), 1); /* peeked, not read */
    char b;
    assert_int_equal(read(sv[0], &b, 1), 1);
    close(sv[1]);
    assert_int_equal(util_socket_peek(sv[0]), 0);
    close(sv[0]);
    assert_int_equal(util_socket_peek(sv[0]), -1);
    assert_int_not_equal(util_socket_error(sv[0]), 0); /* not a socket any more */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_roundtrip),
        cmocka_unit_test(test_iso8601),
        cmocka_unit_test(test_random_id),
        cmocka_unit_test(test_hmac_rfc4231_case2),
        cmocka_unit_test(test_digits_and_hex),
        cmocka_unit_test(test_usable_cpus),
        cmocka_unit_test(test_socket_peek_and_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
