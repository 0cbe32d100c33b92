/* keypool: RSA keys arrive through the loop without blocking it; P-256 keys
 * come inline; waiters are woken in order and can be cancelled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "common/util.h"
#include "control/keypool.h"

struct got {
    keypool_t *kp;
    struct event_base *base;
    keypool_waiter_t w;
    EVP_PKEY *key;
    int calls;
};

/* What a real consumer does: take, or wait again when another was first. */
static void on_key(void *arg)
{
    struct got *g = arg;
    g->calls++;
    g->key = keypool_take(g->kp, PKI_KEY_RSA_2048);
    if (!g->key) {
        keypool_wait(g->kp, &g->w, on_key, g);
        return;
    }
    event_base_loopbreak(g->base);
}

static void test_ec_inline(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    keypool_t *kp = keypool_new(base, 2);
    assert_non_null(kp);
    EVP_PKEY *k = keypool_take(kp, PKI_KEY_EC_P256);
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
    EVP_PKEY_free(k);
    keypool_free(kp); /* no RSA demand: no thread was started */
    event_base_free(base);
}

static void test_rsa_through_loop(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    keypool_t *kp = keypool_new(base, 2);
    struct got g = { .kp = kp, .base = base };
    int64_t t0 = util_mono_ms();
    EVP_PKEY *k = keypool_take(kp, PKI_KEY_RSA_2048);
    /* The first call starts the generator; it cannot have a key yet. */
    assert_null(k);
    assert_true(util_mono_ms() - t0 < 50);
    keypool_wait(kp, &g.w, on_key, &g);
    struct timeval tv = { 20, 0 };
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    assert_non_null(g.key);
    assert_int_equal(EVP_PKEY_get_base_id(g.key), EVP_PKEY_RSA);
    assert_int_equal(EVP_PKEY_get_bits(g.key), 2048);
    EVP_PKEY_free(g.key);
    keypool_free(kp); /* joins the generator, possibly mid-key */
    event_base_free(base);
}

static void never(void *arg)
{
    int *called = arg;
    (*called)++;
}

static void test_cancel(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    keypool_t *kp = keypool_new(base, 1);
    int called = 0;
    keypool_waiter_t a = { 0 }, b = { 0 };
    EVP_PKEY_free(keypool_take(kp, PKI_KEY_RSA_2048)); /* starts the generator */
    keypool_wait(kp, &a, never, &called);
    keypool_wait(kp, &b, never, &called);
    keypool_cancel(kp, &a);
    keypool_cancel(kp, &a); /* twice is fine */
    keypool_cancel(kp, &b);
    struct timeval tv = { 0, 300000 };
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    assert_int_equal(called, 0);
    keypool_free(kp);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ec_inline),
        cmocka_unit_test(test_rsa_through_loop),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
