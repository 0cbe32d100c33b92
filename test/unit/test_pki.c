/* Tests control/pki.c: keys, PEM, CSR, cert facts, key files, tls-alpn-01. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "common/crypto.h"
#include "common/util.h"
#include "control/pki.h"

static X509 *self_signed(EVP_PKEY *key, const char *cn, int64_t nb, int64_t na)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(pki_random_serial(x), 0);
    assert_int_equal(pki_set_validity(x, nb, na), 0);
    assert_int_equal(pki_set_subject_cn(x, cn), 0);
    assert_int_equal(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
    assert_int_equal(X509_set_pubkey(x, key), 1);
    assert_int_equal(pki_add_san_dns(x, cn), 0);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static void test_key_types(void **state)
{
    pki_key_type_t t;
    assert_int_equal(pki_key_type_parse("ec256", &t), 0);
    assert_int_equal(t, PKI_KEY_EC_P256);
    assert_int_equal(pki_key_type_parse("RSA2048", &t), 0);
    assert_int_equal(t, PKI_KEY_RSA_2048);
    assert_int_equal(pki_key_type_parse("dsa", &t), -1);
    assert_int_equal(pki_key_type_parse(NULL, &t), -1);
    assert_string_equal(pki_key_type_name(PKI_KEY_EC_P256), "ec256");
    assert_string_equal(pki_key_type_name(PKI_KEY_RSA_2048), "rsa2048");
}

static void test_key_pem_roundtrip(void **state)
{
    pki_key_type_t types[] = { PKI_KEY_EC_P256, PKI_KEY_RSA_2048 };
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *k = pki_key_new(types[i]);
        assert_non_null(k);
        assert_int_equal(EVP_PKEY_get_bits(k), i == 0 ? 256 : 2048);
        char *pem = pki_key_to_pem(k);
        assert_non_null(pem);
        assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
        EVP_PKEY *k2 = pki_key_from_pem(pem);
        assert_non_null(k2);
        assert_int_equal(EVP_PKEY_eq(k, k2), 1);
        pki_free_secret(pem);
        EVP_PKEY_free(k);
        EVP_PKEY_free(k2);
    }
    assert_null(pki_key_from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
    assert_null(pki_key_from_pem("garbage"));
    assert_null(pki_key_from_pem(NULL));
    pki_free_secret(NULL);
}

static void test_cert_info_and_chain(void **state)
{
    EVP_PKEY *k = pki_key_new(PKI_KEY_EC_P256);
    int64_t nb = 1700000000, na = 1700000000 + 86400 * 30;
    X509 *a = self_signed(k, "a.example.com", nb, na);
    X509 *b = self_signed(k, "b.example.com", nb, na);
    char *pa = pki_cert_to_pem(a), *pb = pki_cert_to_pem(b);
    assert_non_null(pa);
    size_t la = strlen(pa), lb = strlen(pb);
    char *both = malloc(la + lb + 1);
    memcpy(both, pa, la);
    memcpy(both + la, pb, lb + 1);

    pki_cert_info_t info;
    assert_int_equal(pki_chain_info(both, &info), 0);
    assert_int_equal(info.not_before_ms, nb * 1000);
    assert_int_equal(info.not_after_ms, na * 1000);
    assert_string_equal(info.subject_cn, "a.example.com");
    assert_string_equal(info.issuer_cn, "a.example.com");
    assert_int_equal(strlen(info.serial_hex), 32);
    /* The fingerprint is of the DER. */
    unsigned char *der = NULL;
    int n = i2d_X509(a, &der);
    unsigned char md[32];
    char hex[65];
    crypto_sha256(der, (size_t)n, md);
    util_hex(hex, md, 32);
    OPENSSL_free(der);
    assert_string_equal(info.sha256_hex, hex);

    STACK_OF(X509) *chain = pki_chain_from_pem(both);
    assert_non_null(chain);
    assert_int_equal(sk_X509_num(chain), 2);
    assert_int_equal(X509_cmp(sk_X509_value(chain, 1), b), 0);
    sk_X509_pop_free(chain, X509_free);
    assert_null(pki_chain_from_pem("no certs here"));
    assert_int_equal(pki_chain_info("nothing", &info), -1);

    assert_true(pki_cert_has_dns(a, "a.example.com"));
    assert_true(pki_cert_has_dns(a, "A.Example.COM"));
    assert_false(pki_cert_has_dns(a, "b.example.com"));
    assert_true(pki_cert_matches_key(a, k));
    EVP_PKEY *other = pki_key_new(PKI_KEY_EC_P256);
    assert_false(pki_cert_matches_key(a, other));
    EVP_PKEY_free(other);

    free(both);
    free(pa);
    free(pb);
    X509_free(a);
    X509_free(b);
    EVP_PKEY_free(k);
}

static void test_csr(void **state)
{
    pki_key_type_t types[] = { PKI_KEY_EC_P256, PKI_KEY_RSA_2048 };
    for (size_t i = 0; i < 2; i++) {
        EVP_PKEY *k = pki_key_new(types[i]);
        unsigned char *der = NULL;
        size_t len = 0;
        assert_int_equal(pki_csr_der(k, "shop.customer.example", &der, &len), 0);
        const unsigned char *p = der;
        X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)len);
        assert_non_null(req);
        assert_int_equal(X509_REQ_verify(req, k), 1);
        STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
        assert_non_null(exts);
        GENERAL_NAMES *gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
        assert_non_null(gens);
        assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
        GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, 0);
        assert_int_equal(g->type, GEN_DNS);
        assert_memory_equal(ASN1_STRING_get0_data(g->d.dNSName), "shop.customer.example", 21);
        GENERAL_NAMES_free(gens);
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
        X509_REQ_free(req);
        OPENSSL_free(der);
        EVP_PKEY_free(k);
    }
    /* A name too long for a CN still gets a CSR (SAN only). */
    char longname[120];
    memset(longname, 'a', 60);
    strcpy(longname + 60, ".very-long-label-for-cn-limit.example.com");
    EVP_PKEY *k = pki_key_new(PKI_KEY_EC_P256);
    unsigned char *der = NULL;
    size_t len = 0;
    assert_int_equal(pki_csr_der(k, longname, &der, &len), 0);
    OPENSSL_free(der);
    EVP_PKEY_free(k);
}

static void test_write_key_file(void **state)
{
    char dir[] = "/tmp/hee-pki-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/account.key", dir);
    assert_int_equal(pki_write_key_file(path, "first\n"), 0);
    assert_int_equal(pki_write_key_file(path, "second\n"), 0); /* replaces */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    FILE *f = fopen(path, "r");
    char buf[32] = { 0 };
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    assert_string_equal(buf, "second\n");
    /* No temporary left next to it. */
    DIR *d = opendir(dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            entries++;
    closedir(d);
    assert_int_equal(entries, 1);
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/missing/dir.key", dir);
    assert_int_equal(pki_write_key_file(bad, "x"), -1);
    assert_int_equal(errno, ENOENT);
    unlink(path);
    rmdir(dir);
}

static void test_tls_alpn_cert(void **state)
{
    const char *ka = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
    char *cert_pem = NULL, *key_pem = NULL;
    assert_int_equal(pki_tls_alpn_cert("a.test.example", ka, &cert_pem, &key_pem), 0);
    X509 *x = pki_cert_from_pem(cert_pem);
    EVP_PKEY *k = pki_key_from_pem(key_pem);
    assert_non_null(x);
    assert_non_null(k);
    assert_true(pki_cert_matches_key(x, k));
    assert_int_equal(X509_verify(x, k), 1);
    assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);

    ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    int idx = X509_get_ext_by_OBJ(x, oid, -1);
    assert_true(idx >= 0);
    X509_EXTENSION *ext = X509_get_ext(x, idx);
    assert_int_equal(X509_EXTENSION_get_critical(ext), 1);
    ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
    unsigned char want[34] = { 0x04, 0x20 };
    crypto_sha256(ka, strlen(ka), want + 2);
    assert_int_equal(ASN1_STRING_length(v), 34);
    assert_memory_equal(ASN1_STRING_get0_data(v), want, 34);
    ASN1_OBJECT_free(oid);

    /* Exactly one identifier: the name being validated. */
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    assert_int_equal(sk_GENERAL_NAME_num(gens), 1);
    GENERAL_NAMES_free(gens);
    assert_true(pki_cert_has_dns(x, "a.test.example"));

    X509_free(x);
    EVP_PKEY_free(k);
    free(cert_pem);
    pki_free_secret(key_pem);
    assert_int_equal(pki_tls_alpn_cert("bad name", ka, &cert_pem, &key_pem), -1);
    assert_null(cert_pem);
    assert_null(key_pem);
}

static void test_hostname_valid(void **state)
{
    const char *good[] = { "a.test", "shop.example.com", "xn--bcher-kva.example", "*.example.com",
                           "a-b.c-d.example", "A.B" };
    const char *bad[] = { "", "test", "-a.example", "a-.example", "a..example", "a.example.", ".a.example",
                          "a_b.example", "a.example/", "*example.com", "a.*.example", "sp ace.example",
                          "*.com.", "a.example\n" };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(good); i++)
        assert_true(pki_hostname_valid(good[i]));
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++)
        assert_false(pki_hostname_valid(bad[i]));
    char label[70], name[300];
    memset(label, 'a', 64);
    label[64] = '\0';
    snprintf(name, sizeof(name), "%s.example", label);
    assert_false(pki_hostname_valid(name)); /* 64-byte label */
    label[63] = '\0';
    snprintf(name, sizeof(name), "%s.example", label);
    assert_true(pki_hostname_valid(name));
    assert_false(pki_hostname_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_types),        cmocka_unit_test(test_key_pem_roundtrip),
        cmocka_unit_test(test_cert_info_and_chain), cmocka_unit_test(test_csr),
        cmocka_unit_test(test_write_key_file),   cmocka_unit_test(test_tls_alpn_cert),
        cmocka_unit_test(test_hostname_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
