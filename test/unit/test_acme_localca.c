/* Tests control/localca.c: the root, issuance, and X509_verify_cert of every
 * leaf against the root with the TLS-server purpose and a hostname check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "common/util.h"
#include "control/localca.h"

/* X509_V_OK or the verification error. */
static int verify(X509 *root, const char *chain_pem, const char *host)
{
    STACK_OF(X509) *chain = pki_chain_from_pem(chain_pem);
    assert_non_null(chain);
    X509 *leaf = sk_X509_shift(chain);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, root);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, chain), 1);
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    X509_VERIFY_PARAM *vp = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_flags(vp, X509_V_FLAG_X509_STRICT);
    X509_VERIFY_PARAM_set1_host(vp, host, 0);
    int ok = X509_verify_cert(ctx);
    int err = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    return err;
}

static void test_root(void **state)
{
    localca_t *ca = localca_create();
    assert_non_null(ca);
    X509 *root = localca_cert(ca);
    assert_int_equal(X509_check_ca(root), 1);
    pki_cert_info_t info;
    assert_int_equal(pki_chain_info(localca_cert_pem(ca), &info), 0);
    assert_memory_equal(info.subject_cn, "Hee Local CA ", 13);
    assert_true(strlen(info.subject_cn) > 13);
    int64_t years = (info.not_after_ms - util_now_ms()) / (365LL * 86400 * 1000);
    assert_int_equal(years, 10);

    /* basicConstraints critical CA:TRUE; keyUsage keyCertSign|cRLSign critical. */
    int crit = 0;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(root, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    ASN1_BIT_STRING *ku = X509_get_ext_d2i(root, NID_key_usage, &crit, NULL);
    assert_int_equal(crit, 1);
    assert_true(ASN1_BIT_STRING_get_bit(ku, 5)); /* keyCertSign */
    assert_true(ASN1_BIT_STRING_get_bit(ku, 6)); /* cRLSign */
    assert_false(ASN1_BIT_STRING_get_bit(ku, 0));
    ASN1_BIT_STRING_free(ku);
    assert_int_equal(X509_check_issued(root, root), X509_V_OK);

    /* Export → load keeps the same root; a foreign key is refused. */
    char *cp = NULL, *kp = NULL;
    assert_int_equal(localca_export(ca, &cp, &kp), 0);
    localca_t *again = localca_load(cp, kp);
    assert_non_null(again);
    assert_int_equal(X509_cmp(localca_cert(again), root), 0);
    localca_t *other = localca_create();
    char *cp2 = NULL, *kp2 = NULL;
    assert_int_equal(localca_export(other, &cp2, &kp2), 0);
    assert_null(localca_load(cp, kp2));
    assert_null(localca_load(cp, NULL));
    assert_null(localca_load("junk", kp));
    free(cp);
    free(cp2);
    pki_free_secret(kp);
    pki_free_secret(kp2);
    localca_free(other);
    localca_free(again);
    localca_free(ca);
    localca_free(NULL);
}

static void test_issue_verifies(void **state)
{
    localca_t *ca = localca_create();
    pki_key_type_t types[] = { PKI_KEY_EC_P256, PKI_KEY_RSA_2048 };
    for (size_t i = 0; i < 2; i++) {
        char *chain = NULL, *key = NULL;
        assert_int_equal(localca_issue(ca, "shop.customer.example", NULL, types[i], 0, &chain, &key), 0);
        assert_int_equal(verify(localca_cert(ca), chain, "shop.customer.example"), X509_V_OK);
        assert_int_equal(verify(localca_cert(ca), chain, "other.example"), X509_V_ERR_HOSTNAME_MISMATCH);

        X509 *leaf = pki_cert_from_pem(chain);
        EVP_PKEY *k = pki_key_from_pem(key);
        assert_true(pki_cert_matches_key(leaf, k));
        assert_int_equal(EVP_PKEY_get_base_id(k), i == 0 ? EVP_PKEY_EC : EVP_PKEY_RSA);

        /* Leaf only: the root is not sent. */
        STACK_OF(X509) *all = pki_chain_from_pem(chain);
        assert_int_equal(sk_X509_num(all), 1);
        sk_X509_pop_free(all, X509_free);

        pki_cert_info_t info;
        assert_int_equal(pki_cert_info(leaf, &info), 0);
        assert_int_equal((info.not_after_ms - info.not_before_ms) / 1000, 90 * 86400 + 3600);
        assert_int_equal(strlen(info.serial_hex), 32);
        assert_string_equal(info.subject_cn, "shop.customer.example");

        /* serverAuth EKU, not a CA, AKI = root's SKI. */
        assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
        assert_int_equal(X509_check_ca(leaf), 0);
        const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(leaf);
        const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(localca_cert(ca));
        assert_non_null(aki);
        assert_non_null(X509_get0_subject_key_id(leaf));
        assert_int_equal(ASN1_OCTET_STRING_cmp(aki, ski), 0);

        X509_free(leaf);
        EVP_PKEY_free(k);
        free(chain);
        pki_free_secret(key);
    }
    localca_free(ca);
}

static void test_issue_options_and_errors(void **state)
{
    localca_t *ca = localca_create();
    char *chain = NULL, *key = NULL, *chain2 = NULL, *key2 = NULL;
    assert_int_equal(localca_issue(ca, "a.test", NULL, PKI_KEY_EC_P256, 7, &chain, &key), 0);
    assert_int_equal(localca_issue(ca, "a.test", NULL, PKI_KEY_EC_P256, 7, &chain2, &key2), 0);
    pki_cert_info_t a, b;
    assert_int_equal(pki_chain_info(chain, &a), 0);
    assert_int_equal(pki_chain_info(chain2, &b), 0);
    assert_int_equal((a.not_after_ms - a.not_before_ms) / 1000, 7 * 86400 + 3600);
    assert_string_not_equal(a.serial_hex, b.serial_hex);
    assert_string_not_equal(key, key2);
    free(chain);
    free(chain2);
    pki_free_secret(key);
    pki_free_secret(key2);

    /* Never past the root's own end. */
    assert_int_equal(localca_issue(ca, "long.test", NULL, PKI_KEY_EC_P256, 20 * 365, &chain, &key), 0);
    pki_cert_info_t root, leaf;
    assert_int_equal(pki_chain_info(localca_cert_pem(ca), &root), 0);
    assert_int_equal(pki_chain_info(chain, &leaf), 0);
    assert_true(leaf.not_after_ms <= root.not_after_ms);
    free(chain);
    pki_free_secret(key);

    assert_int_equal(localca_issue(ca, "bad name", NULL, PKI_KEY_EC_P256, 0, &chain, &key), -1);
    assert_null(chain);
    assert_null(key);
    assert_int_equal(localca_issue(NULL, "a.test", NULL, PKI_KEY_EC_P256, 0, &chain, &key), -1);
    assert_int_equal(localca_issue(ca, NULL, NULL, PKI_KEY_EC_P256, 0, &chain, &key), -1);
    localca_free(ca);
}

static void test_issue_many_distinct_roots(void **state)
{
    /* A leaf from one local CA never verifies against another. */
    localca_t *a = localca_create(), *b = localca_create();
    char *chain = NULL, *key = NULL;
    assert_int_equal(localca_issue(a, "x.test", NULL, PKI_KEY_EC_P256, 0, &chain, &key), 0);
    assert_int_not_equal(verify(localca_cert(b), chain, "x.test"), X509_V_OK);
    free(chain);
    pki_free_secret(key);
    localca_free(a);
    localca_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root),
        cmocka_unit_test(test_issue_verifies),
        cmocka_unit_test(test_issue_options_and_errors),
        cmocka_unit_test(test_issue_many_distinct_roots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
