/* Tests edge/certcache.c (included, to reach its static functions): entries
 * from PEM and from objects, chain interning, refcounts (run under ASan),
 * LRU eviction, the two tiers (cold records parsed again on a get, with
 * keys that really sign; demotion and eviction while entries are held),
 * 4-thread smoke tests with a roomy and a tiny hot tier, the negative
 * cache's fixed bound, and a measurement over 10,000 generated P-256
 * leaves sharing one intermediate: bytes per cached certificate and the
 * time of a cold and of a hot get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "edge/certcache.c"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* ---- certificate generation ---- */

typedef struct {
    EVP_PKEY *key;
    X509 *cert;
    char *pem;
} ca_t;

static char *bio_string(BIO *b)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    return s;
}

static void add_ext_der(X509 *x, ASN1_OBJECT *obj, const unsigned char *der, int len)
{
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    assert_int_equal(ASN1_OCTET_STRING_set(os, der, len), 1);
    X509_EXTENSION *ext = X509_EXTENSION_create_by_OBJ(NULL, obj, 0, os);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
}

/* Two embedded SCTs as CT logs write them: fixed log ids, fresh
 * timestamps and signatures. */
static void add_scts(X509 *x)
{
    unsigned char der[3 + 2 + 2 * 119], *p = der;
    *p++ = 0x04; /* OCTET STRING, 2 + 2 * 119 = 240 bytes */
    *p++ = 0x81;
    *p++ = 240;
    *p++ = 0;
    *p++ = 238;
    for (int i = 0; i < 2; i++) {
        *p++ = 0; /* this SCT's length: 117 */
        *p++ = 117;
        *p++ = 0; /* v1 */
        memset(p, 0xa0 + i, 32); /* log id */
        p += 32;
        assert_int_equal(util_random(p, 8), 0); /* timestamp */
        p += 8;
        *p++ = 0; /* no extensions */
        *p++ = 0;
        *p++ = 4; /* sha256, ecdsa */
        *p++ = 3;
        *p++ = 0;
        *p++ = 70;
        assert_int_equal(util_random(p, 70), 0);
        p += 70;
    }
    assert_int_equal(p - der, (long)sizeof(der));
    ASN1_OBJECT *obj = OBJ_txt2obj("1.3.6.1.4.1.11129.2.4.2", 1);
    add_ext_der(x, obj, der, (int)sizeof(der));
    ASN1_OBJECT_free(obj);
}

/* The rest of what a Let's Encrypt leaf carries, so that the measured
 * records are those of production certificates (~900 B of DER, not ~350). */
static void add_le_extensions(X509 *x, X509V3_CTX *ctx)
{
    static const char *const conf[][2] = {
        { "keyUsage", "critical,digitalSignature" },
        { "extendedKeyUsage", "serverAuth,clientAuth" },
        { "basicConstraints", "critical,CA:FALSE" },
        { "subjectKeyIdentifier", "hash" },
        { "authorityInfoAccess", "caIssuers;URI:http://e5.i.lencr.org/" },
        { "crlDistributionPoints", "URI:http://e5.c.lencr.org/17.crl" },
    };
    for (size_t i = 0; i < sizeof(conf) / sizeof(conf[0]); i++) {
        X509_EXTENSION *ext = X509V3_EXT_nconf(NULL, ctx, conf[i][0], conf[i][1]);
        assert_non_null(ext);
        assert_int_equal(X509_add_ext(x, ext, -1), 1);
        X509_EXTENSION_free(ext);
    }
    unsigned char aki[24] = { 0x30, 0x16, 0x80, 0x14 }; /* the issuer's key id */
    memset(aki + 4, 0x9f, 20);
    add_ext_der(x, OBJ_nid2obj(NID_authority_key_identifier), aki, (int)sizeof(aki));
    static const unsigned char policy[] = { /* domain-validated, 2.23.140.1.2.1 */
        0x30, 0x0a, 0x30, 0x08, 0x06, 0x06, 0x67, 0x81, 0x0c, 0x01, 0x02, 0x01,
    };
    add_ext_der(x, OBJ_nid2obj(NID_certificate_policies), policy, (int)sizeof(policy));
    add_scts(x);
}

enum { LEAF_MIN = 0, CERT_CA = 1, LEAF_LE = 2 };

static X509 *make_cert(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *signer, int ca,
                       long serial)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 90L * 86400));
    X509_NAME *name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)cn, -1, -1, 0), 1);
    assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
    assert_int_equal(X509_set_pubkey(x, pub), 1);
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
    char san[300];
    snprintf(san, sizeof(san), "DNS:%s", cn);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, ca == CERT_CA ? NID_basic_constraints
                                                                        : NID_subject_alt_name,
                                              ca == CERT_CA ? "critical,CA:TRUE" : san);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
    if (ca == LEAF_LE)
        add_le_extensions(x, &ctx);
    assert_true(X509_sign(x, signer, EVP_sha256()) > 0);
    return x;
}

static char *cert_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(b, x), 1);
    char *s = bio_string(b);
    BIO_free(b);
    return s;
}

static char *key_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    char *s = bio_string(b);
    BIO_free(b);
    return s;
}

static void ca_make(ca_t *ca, const char *cn)
{
    ca->key = EVP_EC_gen("P-256");
    assert_non_null(ca->key);
    ca->cert = make_cert(cn, ca->key, NULL, ca->key, 1, 1);
    ca->pem = cert_pem(ca->cert);
}

static void ca_free(ca_t *ca)
{
    EVP_PKEY_free(ca->key);
    X509_free(ca->cert);
    free(ca->pem);
}

typedef struct {
    char *chain; /* leaf PEM then the CA's */
    char *key;
    size_t der_bytes; /* leaf DER + key DER */
} leaf_pem_t;

/* A leaf for k (which stays the caller's), signed by ca. */
static void leaf_make_key(const ca_t *ca, const char *host, long serial, EVP_PKEY *k,
                          int shape, leaf_pem_t *out)
{
    X509 *x = make_cert(host, k, ca->cert, ca->key, shape, serial);
    char *lp = cert_pem(x);
    out->chain = malloc(strlen(lp) + strlen(ca->pem) + 1);
    assert_non_null(out->chain);
    strcpy(out->chain, lp);
    strcat(out->chain, ca->pem);
    out->key = key_pem(k);
    out->der_bytes = (size_t)i2d_X509(x, NULL) + (size_t)i2d_PrivateKey(k, NULL);
    free(lp);
    X509_free(x);
}

static void leaf_make_shape(const ca_t *ca, const char *host, long serial, int shape,
                            leaf_pem_t *out)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    leaf_make_key(ca, host, serial, k, shape, out);
    EVP_PKEY_free(k);
}

static void leaf_make(const ca_t *ca, const char *host, long serial, leaf_pem_t *out)
{
    leaf_make_shape(ca, host, serial, LEAF_MIN, out);
}

static void leaf_free(leaf_pem_t *l)
{
    free(l->chain);
    free(l->key);
}

/* route data whose frees are counted */
static int routes_freed;
static void route_free(void *p)
{
    routes_freed++;
    free(p);
}

static certcache_entry_t *entry_for(certcache_t *cc, const leaf_pem_t *l, const char **err)
{
    int *route = malloc(sizeof(int));
    assert_non_null(route);
    *route = 42;
    certcache_entry_t *e = certcache_entry_from_pem(cc, l->chain, strlen(l->chain), l->key,
                                                    strlen(l->key), route, route_free, err);
    if (!e)
        free(route);
    return e;
}

/* ---- tests ---- */

static void test_siphash_vectors(void **state)
{
    uint8_t key[16], in[15];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        in[i] = (uint8_t)i;
    /* SipHash-2-4 reference vectors (Aumasson & Bernstein, appendix A). */
    assert_true(siphash24(key, in, 0) == 0x726fdb47dd0e0e31ULL);
    assert_true(siphash24(key, in, 15) == 0xa129ca6149be45e5ULL);
}

static void test_entry_from_pem(void **state)
{
    ca_t ca;
    leaf_pem_t l;
    const char *err = NULL;
    ca_make(&ca, "Hee Test Intermediate");
    leaf_make(&ca, "a.example.com", 2, &l);
    certcache_t *cc = certcache_new(100);
    assert_non_null(cc);
    routes_freed = 0;

    certcache_entry_t *e = entry_for(cc, &l, &err);
    assert_non_null(e);
    assert_int_equal(sk_X509_num(e->chain), 1);
    assert_int_equal(X509_cmp(sk_X509_value(e->chain, 0), ca.cert), 0);
    assert_int_equal(*(int *)e->route, 42);
    time_t now = time(NULL);
    assert_true(e->not_after > now + 89L * 86400 && e->not_after <= now + 91L * 86400);
    assert_true(e->bytes > 1000);

    /* Keys as "openssl ecparam -genkey" writes them: SEC1, after a
     * parameters block. */
    BIO *kin = BIO_new_mem_buf(l.key, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(kin, NULL, NULL, NULL);
    BIO *sec1 = BIO_new(BIO_s_mem());
    BIO_puts(sec1, "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n");
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(sec1, k, NULL, NULL, 0, NULL, NULL), 1);
    char *sec1_pem = bio_string(sec1);
    assert_non_null(strstr(sec1_pem, "BEGIN EC PRIVATE KEY"));
    leaf_pem_t l2 = { l.chain, sec1_pem, 0 };
    certcache_entry_t *e2 = entry_for(cc, &l2, &err);
    assert_non_null(e2);
    assert_int_equal(EVP_PKEY_eq(e2->key, k), 1);
    certcache_entry_unref(e2);
    free(sec1_pem);
    BIO_free(sec1);
    BIO_free(kin);
    EVP_PKEY_free(k);
    routes_freed = 0;

    /* Ready for a real SSL, which keeps its own references. */
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    assert_int_equal(SSL_use_cert_and_key(ssl, e->leaf, e->key, e->chain, 1), 1);
    assert_int_equal(SSL_check_private_key(ssl), 1);
    certcache_entry_unref(e);
    assert_int_equal(routes_freed, 1);
    assert_non_null(SSL_get_certificate(ssl));
    SSL_free(ssl);
    SSL_CTX_free(ctx);

    certcache_stats_t st;
    certcache_stats(cc, &st);
    assert_int_equal(st.chain_certs, 0);
    certcache_free(cc);
    leaf_free(&l);
    ca_free(&ca);
}

static void test_entry_errors(void **state)
{
    ca_t ca;
    leaf_pem_t a, b;
    const char *err = NULL;
    ca_make(&ca, "Hee Test Intermediate");
    leaf_make(&ca, "a.example.com", 2, &a);
    leaf_make(&ca, "b.example.com", 3, &b);
    certcache_t *cc = certcache_new(10);
    routes_freed = 0;

    /* a's certificate with b's key */
    leaf_pem_t mixed = { a.chain, b.key, 0 };
    assert_null(entry_for(cc, &mixed, &err));
    assert_string_equal(err, "private key does not match the certificate");
    leaf_pem_t nocert = { "not pem at all", a.key, 0 };
    assert_null(entry_for(cc, &nocert, &err));
    assert_string_equal(err, "no certificate in PEM");
    leaf_pem_t onlyca = { ca.pem, a.key, 0 };
    assert_null(entry_for(cc, &onlyca, &err));

    /* A corrupt block after a good one is an error, not a short chain. */
    char *broken = malloc(strlen(a.chain) + 100);
    strcpy(broken, a.chain);
    strcpy(strstr(broken, "-----END CERTIFICATE-----\n-----BEGIN") + 60, "@@@@\n-----END CERTIFICATE-----\n");
    leaf_pem_t bad = { broken, a.key, 0 };
    assert_null(entry_for(cc, &bad, &err));
    assert_string_equal(err, "bad PEM in certificate chain");

    /* An encrypted key fails without prompting for a passphrase. */
    BIO *bio = BIO_new(BIO_s_mem());
    BIO *kin = BIO_new_mem_buf(a.key, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(kin, NULL, NULL, NULL);
    assert_int_equal(PEM_write_bio_PrivateKey(bio, k, EVP_aes_128_cbc(),
                                              (unsigned char *)"pass", 4, NULL, NULL), 1);
    char *enc = bio_string(bio);
    leaf_pem_t locked = { a.chain, enc, 0 };
    assert_null(entry_for(cc, &locked, &err));
    assert_string_equal(err, "private key is encrypted");
    /* ... and so does the traditional form with a Proc-Type header. */
    BIO *bio2 = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio2, k, EVP_aes_128_cbc(),
                                                          (unsigned char *)"pass", 4, NULL,
                                                          NULL), 1);
    char *enc2 = bio_string(bio2);
    assert_non_null(strstr(enc2, "Proc-Type: 4,ENCRYPTED"));
    leaf_pem_t locked2 = { a.chain, enc2, 0 };
    assert_null(entry_for(cc, &locked2, &err));
    assert_string_equal(err, "private key is encrypted");
    leaf_pem_t nokey = { a.chain, ca.pem, 0 };
    assert_null(entry_for(cc, &nokey, &err));
    assert_string_equal(err, "private key does not parse");
    free(enc2);
    BIO_free(bio2);

    /* Failures leave no OpenSSL errors behind and never free the route. */
    assert_int_equal(ERR_peek_error(), 0);
    assert_int_equal(routes_freed, 0);
    certcache_stats_t st;
    certcache_stats(cc, &st);
    assert_int_equal(st.chain_certs, 0);

    free(enc);
    free(broken);
    BIO_free(bio);
    BIO_free(kin);
    EVP_PKEY_free(k);
    certcache_free(cc);
    leaf_free(&a);
    leaf_free(&b);
    ca_free(&ca);
}

static void test_entry_new_and_interning(void **state)
{
    ca_t ca;
    leaf_pem_t a;
    const char *err = NULL;
    ca_make(&ca, "Hee Test Intermediate");
    leaf_make(&ca, "a.example.com", 2, &a);
    certcache_t *cc = certcache_new(10);
    routes_freed = 0;

    certcache_entry_t *e1 = entry_for(cc, &a, &err);
    assert_non_null(e1);
    /* The same intermediate given as an object is the interned one. */
    STACK_OF(X509) *chain = sk_X509_new_null();
    sk_X509_push(chain, ca.cert);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *self = make_cert("c.example.com", k, ca.cert, ca.key, 0, 9);
    certcache_entry_t *e2 = certcache_entry_new(cc, self, k, chain, NULL, NULL, &err);
    assert_non_null(e2);
    assert_ptr_equal(sk_X509_value(e1->chain, 0), sk_X509_value(e2->chain, 0));
    assert_ptr_not_equal(sk_X509_value(e2->chain, 0), ca.cert);
    certcache_stats_t st;
    certcache_stats(cc, &st);
    assert_int_equal(st.chain_certs, 1);
    /* The caller still owns what it passed. */
    X509_free(self);
    EVP_PKEY_free(k);
    sk_X509_free(chain);
    assert_null(certcache_entry_new(cc, NULL, NULL, NULL, NULL, NULL, &err));

    /* Entries outlive the cache that built them. */
    certcache_free(cc);
    assert_non_null(e2->leaf);
    certcache_entry_unref(e1);
    assert_int_equal(routes_freed, 1);
    certcache_entry_unref(e2);
    leaf_free(&a);
    ca_free(&ca);
}

static void test_rsa_keys(void **state)
{
    ca_t ca;
    const char *err = NULL;
    ca_make(&ca, "Hee Test Intermediate");
    EVP_PKEY *k = EVP_RSA_gen(2048);
    assert_non_null(k);
    X509 *x = make_cert("rsa.example.com", k, ca.cert, ca.key, 0, 7);
    char *cp = cert_pem(x);
    char *chain = malloc(strlen(cp) + strlen(ca.pem) + 1);
    strcpy(chain, cp);
    strcat(chain, ca.pem);
    certcache_t *cc = certcache_new(10);
    for (int traditional = 0; traditional < 2; traditional++) {
        BIO *b = BIO_new(BIO_s_mem());
        if (traditional)
            assert_int_equal(PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL,
                                                                  NULL), 1);
        else
            assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
        char *kp = bio_string(b);
        assert_non_null(strstr(kp, traditional ? "RSA PRIVATE KEY" : "BEGIN PRIVATE KEY"));
        certcache_entry_t *e = certcache_entry_from_pem(cc, chain, strlen(chain), kp,
                                                        strlen(kp), NULL, NULL, &err);
        assert_non_null(e);
        assert_int_equal(EVP_PKEY_get_base_id(e->key), EVP_PKEY_RSA);
        assert_int_equal(EVP_PKEY_eq(e->key, k), 1);
        certcache_entry_unref(e);
        free(kp);
        BIO_free(b);
    }
    certcache_free(cc);
    free(chain);
    free(cp);
    X509_free(x);
    EVP_PKEY_free(k);
    ca_free(&ca);
}

/* One certificate under many names, used throughout the table tests. */
typedef struct {
    ca_t ca;
    leaf_pem_t l[4];
    certcache_entry_t *e[4];
} fixture_t;

static int fixture_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    ca_make(&f->ca, "Hee Test Intermediate");
    for (int i = 0; i < 4; i++) {
        char host[32];
        snprintf(host, sizeof(host), "h%d.example.com", i);
        leaf_make(&f->ca, host, 10 + i, &f->l[i]);
    }
    *state = f;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture_t *f = *state;
    for (int i = 0; i < 4; i++)
        leaf_free(&f->l[i]);
    ca_free(&f->ca);
    free(f);
    return 0;
}

static void make_entries(fixture_t *f, certcache_t *cc)
{
    const char *err;
    for (int i = 0; i < 4; i++) {
        f->e[i] = entry_for(cc, &f->l[i], &err);
        assert_non_null(f->e[i]);
    }
}

static void drop_entries(fixture_t *f)
{
    for (int i = 0; i < 4; i++)
        certcache_entry_unref(f->e[i]);
}

static void test_get_put_remove(void **state)
{
    fixture_t *f = *state;
    certcache_t *cc = certcache_new(100);
    routes_freed = 0;
    make_entries(f, cc);

    assert_null(certcache_get(cc, "a.example.com"));
    assert_int_equal(certcache_put(cc, "A.Example.com", f->e[0]), 0);
    certcache_entry_t *got = certcache_get(cc, "a.EXAMPLE.com");
    assert_ptr_equal(got, f->e[0]);
    certcache_entry_unref(got);
    /* Replace, and store one entry under a second name. */
    assert_int_equal(certcache_put(cc, "a.example.com", f->e[1]), 0);
    assert_int_equal(certcache_put(cc, "www.a.example.com", f->e[1]), 0);
    got = certcache_get(cc, "a.example.com");
    assert_ptr_equal(got, f->e[1]);
    certcache_entry_unref(got);

    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(certcache_put(cc, longname, f->e[0]), -1);
    assert_int_equal(certcache_put(cc, "", f->e[0]), -1);
    assert_null(certcache_get(cc, longname));

    certcache_stats_t st;
    certcache_stats(cc, &st);
    assert_int_equal(st.count, 2);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.inserts, 2);
    assert_int_equal(st.replaced, 1);
    assert_int_equal(st.chain_certs, 1);
    assert_true(st.bytes > 2 * f->e[1]->bytes);

    assert_int_equal(certcache_remove(cc, "a.example.com"), 0);
    assert_int_equal(certcache_remove(cc, "a.example.com"), -1);
    assert_null(certcache_get(cc, "a.example.com"));
    got = certcache_get(cc, "www.a.example.com");
    assert_ptr_equal(got, f->e[1]);
    certcache_entry_unref(got);

    drop_entries(f);
    assert_int_equal(routes_freed, 3); /* e[1] is still stored */
    certcache_free(cc);
    assert_int_equal(routes_freed, 4);
}

static void test_lru_eviction(void **state)
{
    fixture_t *f = *state;
    certcache_t *cc = certcache_new(3);
    routes_freed = 0;
    make_entries(f, cc);
    assert_int_equal(certcache_put(cc, "a", f->e[0]), 0);
    assert_int_equal(certcache_put(cc, "b", f->e[1]), 0);
    assert_int_equal(certcache_put(cc, "c", f->e[2]), 0);
    certcache_entry_unref(certcache_get(cc, "a")); /* a is now most recent */
    assert_int_equal(certcache_put(cc, "d", f->e[3]), 0); /* evicts b */
    drop_entries(f);
    assert_int_equal(routes_freed, 1); /* only b's entry had no other holder */

    certcache_entry_t *e;
    assert_null(certcache_get(cc, "b"));
    const char *kept[] = { "a", "c", "d" };
    for (int i = 0; i < 3; i++) {
        e = certcache_get(cc, kept[i]);
        assert_non_null(e);
        certcache_entry_unref(e);
    }
    certcache_stats_t st;
    certcache_stats(cc, &st);
    assert_int_equal(st.count, 3);
    assert_int_equal(st.evictions, 1);
    certcache_free(cc);
    assert_int_equal(routes_freed, 4);

    /* A sharded cache never holds more than max_entries either. */
    cc = certcache_new(1000);
    make_entries(f, cc);
    for (int i = 0; i < 5000; i++) {
        char host[32];
        snprintf(host, sizeof(host), "n%d.example", i);
        assert_int_equal(certcache_put(cc, host, f->e[i % 4]), 0);
    }
    certcache_stats(cc, &st);
    assert_int_equal(st.count, 1000);
    assert_int_equal(st.evictions, 4000);
    drop_entries(f);
    certcache_free(cc);
}

/* The leaf template codec: round trips of inputs spliced from the
 * template and noise, every truncation refused, garbage never overruns
 * (ASan). */
static void test_tmpl_codec(void **state)
{
    static unsigned char dict[3000], in[4000], enc[4100], out[4000];
    unsigned seed = 7;
    for (size_t i = 0; i < sizeof(dict); i++)
        dict[i] = (unsigned char)rand_r(&seed);
    for (int round = 0; round < 300; round++) {
        size_t dlen = round % 10 == 0 ? 0 : (size_t)rand_r(&seed) % sizeof(dict);
        size_t n = 1 + (size_t)rand_r(&seed) % (sizeof(in) - 1);
        for (size_t i = 0; i < n;) {
            size_t run = 1 + (size_t)rand_r(&seed) % 200;
            run = run > n - i ? n - i : run;
            size_t from = dlen > run ? (size_t)rand_r(&seed) % (dlen - run) : 0;
            for (size_t k = 0; k < run; k++)
                in[i + k] = rand_r(&seed) % 2 && dlen > run ? dict[from + k] : (unsigned char)rand_r(&seed);
            i += run;
        }
        size_t len = tmpl_encode(dict, dlen, in, n, enc);
        assert_true(len > 0 && len <= tmpl_bound(n));
        assert_int_equal(tmpl_decode(dict, dlen, enc, len, out, n), 0);
        assert_memory_equal(out, in, n);
        assert_int_equal(tmpl_decode(dict, dlen, enc, len, out, n - 1), -1);
        for (size_t cut = 0; cut < len; cut += 1 + len / 16)
            assert_int_equal(tmpl_decode(dict, dlen, enc, cut, out, n), -1);
        for (size_t k = 0; k < len; k++)
            enc[k] = (unsigned char)rand_r(&seed);
        size_t want = (size_t)rand_r(&seed) % sizeof(out);
        int rc = tmpl_decode(dict, dlen, enc, len, out, want);
        assert_true(rc == 0 || rc == -1);
    }
    /* A leaf against its own template is a handful of copies. */
    size_t len = tmpl_encode(dict, 1000, dict, 1000, enc);
    assert_true(len <= 3 * (1000 / TMPL_MAX + 1));
}

/* ---- the two tiers ---- */

/* e's key signs what its leaf's public key verifies, and a real SSL takes
 * the pair: EVP_PKEY_eq compares only public halves, so a cold record's
 * rebuilt private key must be checked by use. */
static void assert_usable(certcache_entry_t *e)
{
    static const unsigned char msg[] = "hee cold record";
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    const EVP_MD *md = EVP_PKEY_get_base_id(e->key) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(m, NULL, md, NULL, e->key), 1);
    assert_int_equal(EVP_DigestSign(m, sig, &siglen, msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(m);
    m = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(m, NULL, md, NULL, X509_get0_pubkey(e->leaf)), 1);
    assert_int_equal(EVP_DigestVerify(m, sig, siglen, msg, sizeof(msg)), 1);
    EVP_MD_CTX_free(m);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL *ssl = SSL_new(ctx);
    assert_int_equal(SSL_use_cert_and_key(ssl, e->leaf, e->key, e->chain, 1), 1);
    assert_int_equal(SSL_check_private_key(ssl), 1);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
}

/* Every key form survives demotion: stored under "x" in a one-entry hot
 * tier, pushed out by "y", parsed again by a get. */
static void test_cold_key_forms(void **state)
{
    static const struct {
        const char *what;
        int form;
    } kinds[] = {
        { "P-256", KEY_EC }, { "P-384", KEY_EC }, { "RSA", KEY_RSA }, { "ED25519", KEY_DER },
    };
    ca_t ca;
    leaf_pem_t other;
    const char *err = NULL;
    ca_make(&ca, "Hee Test Intermediate");
    leaf_make(&ca, "y.example.com", 99, &other);
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        EVP_PKEY *k = strcmp(kinds[i].what, "RSA") == 0       ? EVP_RSA_gen(2048)
                      : strcmp(kinds[i].what, "ED25519") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
                                                              : EVP_EC_gen(kinds[i].what);
        assert_non_null(k);
        leaf_pem_t l;
        leaf_make_key(&ca, "x.example.com", 50 + (long)i, k, i % 2 ? LEAF_LE : LEAF_MIN, &l);
        certcache_t *cc = certcache_new2(10, 1);
        routes_freed = 0;
        certcache_entry_t *e = entry_for(cc, &l, &err);
        assert_non_null(e);
        assert_int_equal(e->_rec->key_form, kinds[i].form);
        certcache_entry_t *y = entry_for(cc, &other, &err);
        assert_int_equal(certcache_put(cc, "x.example.com", e), 0);
        assert_int_equal(certcache_put(cc, "y.example.com", y), 0);
        certcache_entry_unref(y);

        certcache_entry_t *got = certcache_get(cc, "x.example.com");
        assert_non_null(got);
        assert_ptr_not_equal(got, e);
        assert_ptr_not_equal(got->leaf, e->leaf);
        assert_int_equal(X509_cmp(got->leaf, e->leaf), 0);
        assert_int_equal(EVP_PKEY_eq(got->key, k), 1);
        assert_ptr_equal(got->route, e->route);
        assert_true(got->not_after == e->not_after);
        assert_ptr_equal(sk_X509_value(got->chain, 0), sk_X509_value(e->chain, 0));
        assert_usable(got);
        assert_usable(e);
        certcache_stats_t st;
        certcache_stats(cc, &st);
        assert_int_equal(st.cold_hits, 1);
        assert_int_equal(st.parse_errors, 0);
        assert_int_equal(st.hot, 1);
        assert_int_equal(st.certs, 2);
        assert_int_equal(ERR_peek_error(), 0);

        certcache_entry_unref(got);
        certcache_entry_unref(e);
        assert_int_equal(routes_freed, 0); /* x and y are still stored */
        certcache_free(cc);
        assert_int_equal(routes_freed, 2);
        leaf_free(&l);
        EVP_PKEY_free(k);
    }
    leaf_free(&other);
    ca_free(&ca);
}

static void expect_tiers(certcache_t *cc, size_t count, size_t certs, size_t hot,
                         uint64_t cold_hits, uint64_t promotions, uint64_t demotions)
{
    certcache_stats_t st;
    certcache_stats(cc, &st);
    assert_int_equal(st.count, count);
    assert_int_equal(st.certs, certs);
    assert_int_equal(st.hot, hot);
    assert_int_equal(st.cold_hits, cold_hits);
    assert_int_equal(st.promotions, promotions);
    assert_int_equal(st.demotions, demotions);
    assert_true(st.cold_bytes >= certs * 100 && st.cold_bytes <= certs * 1000);
}

static void test_tier_eviction(void **state)
{
    fixture_t *f = *state;
    certcache_t *cc = certcache_new2(4, 2);
    const char *err;
    routes_freed = 0;
    make_entries(f, cc);
    assert_int_equal(certcache_put(cc, "a", f->e[0]), 0);
    assert_int_equal(certcache_put(cc, "b", f->e[1]), 0);
    assert_int_equal(certcache_put(cc, "c", f->e[2]), 0); /* the hand pushes a out */
    expect_tiers(cc, 3, 3, 2, 0, 3, 1);

    /* A cold get parses a new entry for the same record and promotes it,
     * pushing b out; a hot get hands that same entry out again. */
    certcache_entry_t *a = certcache_get(cc, "a");
    assert_non_null(a);
    assert_ptr_not_equal(a, f->e[0]);
    assert_ptr_equal(a->route, f->e[0]->route);
    expect_tiers(cc, 3, 3, 2, 1, 4, 2);
    certcache_entry_t *again = certcache_get(cc, "a");
    assert_ptr_equal(again, a);
    certcache_entry_unref(again);
    expect_tiers(cc, 3, 3, 2, 1, 4, 2);

    /* Only d's record had no other holder. */
    drop_entries(f);
    assert_int_equal(routes_freed, 1);

    /* Name LRU (4 names) across tiers: b, cold and least recent, goes and
     * takes its record and route with it. */
    certcache_entry_t *d = entry_for(cc, &f->l[3], &err);
    certcache_entry_t *e = entry_for(cc, &f->l[3], &err);
    assert_int_equal(certcache_put(cc, "d", d), 0);
    assert_int_equal(certcache_put(cc, "e", e), 0);
    certcache_entry_unref(d);
    certcache_entry_unref(e);
    assert_null(certcache_get(cc, "b"));
    assert_int_equal(routes_freed, 2);
    expect_tiers(cc, 4, 4, 2, 1, 6, 4);

    /* a, held, is demoted and then its name removed: it stays usable and
     * its record and route go with the last reference. */
    assert_int_equal(certcache_remove(cc, "a"), 0);
    assert_int_equal(routes_freed, 2);
    assert_usable(a);
    assert_int_equal(*(int *)a->route, 42);
    certcache_entry_unref(a);
    assert_int_equal(routes_freed, 3);

    /* Removing a hot name frees its slot: e's (d was pushed out by e). */
    assert_int_equal(certcache_remove(cc, "e"), 0);
    assert_int_equal(routes_freed, 4);
    expect_tiers(cc, 2, 2, 0, 1, 6, 6);
    certcache_entry_t *c = certcache_get(cc, "c");
    assert_non_null(c);
    expect_tiers(cc, 2, 2, 1, 2, 7, 6); /* took a free slot, pushed nothing */
    certcache_entry_unref(c);

    /* An entry parsed from a cold record can be stored under a new name. */
    c = certcache_get(cc, "c");
    assert_int_equal(certcache_put(cc, "c2", c), 0);
    certcache_entry_unref(c);
    expect_tiers(cc, 3, 2, 1, 2, 7, 6);
    certcache_free(cc);
    assert_int_equal(routes_freed, 6);
}

static void *ref_route(void *r)
{
    (*(int *)r)++;
    return r;
}

static void test_get_route(void **state)
{
    fixture_t *f = *state;
    certcache_t *cc = certcache_new2(10, 1);
    routes_freed = 0;
    make_entries(f, cc);
    assert_int_equal(certcache_put(cc, "r.example", f->e[0]), 0);
    assert_int_equal(certcache_put(cc, "s.example", f->e[1]), 0); /* r goes cold */
    assert_ptr_equal(certcache_get_route(cc, "R.example", NULL), f->e[0]->route);
    assert_ptr_equal(certcache_get_route(cc, "r.example", ref_route), f->e[0]->route);
    assert_int_equal(*(int *)f->e[0]->route, 43);
    assert_null(certcache_get_route(cc, "t.example", ref_route));
    certcache_t *other = certcache_new(4); /* entries are not portable */
    assert_int_equal(certcache_put(other, "r.example", f->e[0]), -1);
    certcache_free(other);
    certcache_stats_t st;
    certcache_stats(cc, &st);
    assert_int_equal(st.cold_hits, 0);
    assert_int_equal(st.hits + st.misses, 0);
    assert_int_equal(st.hot, 1);
    drop_entries(f);
    certcache_free(cc);
    assert_int_equal(routes_freed, 4);
}

typedef struct {
    certcache_t *cc;
    fixture_t *f;
    unsigned seed;
    uint64_t gets, puts, removes, found;
} worker_t;

static int shared_route = 42; /* never freed: no route_free */

static void *worker(void *arg)
{
    worker_t *w = arg;
    int64_t end = util_mono_ms() + 1000;
    while (util_mono_ms() < end) {
        for (int i = 0; i < 200; i++) {
            char host[32];
            unsigned r = (unsigned)rand_r(&w->seed);
            snprintf(host, sizeof(host), "h%u.example", r % 64);
            unsigned op = (r >> 8) % 10;
            if (op == 6) {
                int *route = certcache_get_route(w->cc, host, NULL);
                if (route && *route != 42)
                    abort();
            } else if (op < 6) {
                certcache_entry_t *e = certcache_get(w->cc, host);
                w->gets++;
                if (e) {
                    w->found++;
                    if (!e->leaf || !e->key || sk_X509_num(e->chain) != 1 ||
                        *(int *)e->route != 42)
                        abort();
                    certcache_entry_unref(e);
                }
            } else if (op < 9) {
                certcache_entry_t *e = w->f->e[(r >> 16) % 4];
                const leaf_pem_t *l = &w->f->l[(r >> 16) % 4];
                const char *err;
                /* Now and then a fresh entry: chain interning under contention. */
                if ((r >> 20) % 16 == 0)
                    e = certcache_entry_from_pem(w->cc, l->chain, strlen(l->chain), l->key,
                                                 strlen(l->key), &shared_route, NULL, &err);
                else
                    certcache_entry_ref(e);
                if (!e || certcache_put(w->cc, host, e) != 0)
                    abort();
                certcache_entry_unref(e);
                w->puts++;
            } else {
                certcache_remove(w->cc, host);
                w->removes++;
            }
        }
    }
    return NULL;
}

/* Four threads on 64 names in a 48-name cache; with a 4-entry hot tier
 * most gets parse, promote and demote, racing puts and removes. */
static void run_threads(fixture_t *f, size_t max_hot)
{
    certcache_t *cc = certcache_new2(48, max_hot); /* smaller than the name set: evicts too */
    routes_freed = 0;
    make_entries(f, cc);
    worker_t w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){ .cc = cc, .f = f, .seed = (unsigned)i * 7919 + 1 };
        assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    }
    uint64_t gets = 0, found = 0, ops = 0;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        gets += w[i].gets;
        found += w[i].found;
        ops += w[i].gets + w[i].puts + w[i].removes;
    }
    certcache_stats_t st;
    certcache_stats(cc, &st);
    assert_int_equal(st.hits, found);
    assert_int_equal(st.hits + st.misses, gets);
    assert_true(st.count <= 48);
    assert_true(st.hot <= st.max_hot && st.hot <= st.certs);
    assert_int_equal(st.parse_errors, 0);
    printf("certcache threads (hot tier %zu): %llu ops in 1 s over 4 threads, %zu stored, "
           "%llu evictions, %llu cold gets, %llu demotions\n",
           st.max_hot, (unsigned long long)ops, st.count, (unsigned long long)st.evictions,
           (unsigned long long)st.cold_hits, (unsigned long long)st.demotions);
    certcache_free(cc);
    drop_entries(f);
    assert_int_equal(routes_freed, 4);
}

static void test_threads(void **state)
{
    run_threads(*state, 0);
}

static void test_threads_small_hot(void **state)
{
    run_threads(*state, 4);
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* n generated P-256 leaves, one shared intermediate. */
typedef struct {
    ca_t ca;
    leaf_pem_t *l;
    size_t n, der;
} certset_t;

static void host_name(char *buf, size_t len, size_t i)
{
    snprintf(buf, len, "customer-%zu.example.net", i);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* A new cache holding every certificate of cs; *heap gets what it took. */
static certcache_t *load_set(const certset_t *cs, size_t max_hot, size_t *heap, double *us)
{
    malloc_trim(0);
    size_t heap0 = heap_in_use();
    double t0 = now_us();
    certcache_t *cc = certcache_new2(cs->n, max_hot);
    assert_non_null(cc);
    for (size_t i = 0; i < cs->n; i++) {
        const char *err;
        char host[64];
        host_name(host, sizeof(host), i);
        const leaf_pem_t *l = &cs->l[i];
        certcache_entry_t *e = certcache_entry_from_pem(cc, l->chain, strlen(l->chain), l->key,
                                                        strlen(l->key), NULL, NULL, &err);
        assert_non_null(e);
        assert_int_equal(certcache_put(cc, host, e), 0);
        certcache_entry_unref(e);
    }
    *us = (now_us() - t0) / (double)cs->n;
    size_t heap1 = heap_in_use();
    *heap = heap1 > heap0 ? heap1 - heap0 : 0;
    return cc;
}

/* Gets every name once, oldest first, so all but the hot ones parse.
 * Returns us per cold get, the best of two sweeps (the machine is shared). */
static double sweep_cold(certcache_t *cc, size_t n)
{
    double best = 0;
    for (int round = 0; round < 2; round++) {
        certcache_stats_t st0, st1;
        certcache_stats(cc, &st0);
        double t0 = now_us();
        for (size_t i = 0; i < n; i++) {
            char host[64];
            host_name(host, sizeof(host), i);
            certcache_entry_t *e = certcache_get(cc, host);
            assert_non_null(e);
            certcache_entry_unref(e);
        }
        double t = now_us() - t0;
        certcache_stats(cc, &st1);
        assert_int_equal(st1.parse_errors, 0);
        assert_true(st1.cold_hits > st0.cold_hits);
        double per = t / (double)(st1.cold_hits - st0.cold_hits);
        best = round == 0 || per < best ? per : best;
    }
    return best;
}

/* ns per get of one hot name, best of three runs. */
static double hot_get_ns(certcache_t *cc, const char *host)
{
    double best = 0;
    for (int round = 0; round < 3; round++) {
        double t0 = now_us();
        for (int i = 0; i < 100000; i++) {
            certcache_entry_t *e = certcache_get(cc, host);
            assert_non_null(e);
            certcache_entry_unref(e);
        }
        double per = (now_us() - t0) * 1000 / 100000;
        best = round == 0 || per < best ? per : best;
    }
    return best;
}

/* What a cold get is made of, on one record. */
#define PARTS_N 100
typedef struct {
    cc_rec_t *rec;
    X509 *leaves[PARTS_N];
    unsigned char *kder;
    int klen;
} parts_bench_t;

static X509 *rec_x509(cc_rec_t *r)
{
    unsigned char scratch[4096], *heap = NULL;
    const unsigned char *p = rec_der(r, scratch, sizeof(scratch), &heap);
    assert_non_null(p);
    X509 *x = d2i_X509(NULL, &p, (long)r->der_len);
    free(heap);
    assert_non_null(x);
    return x;
}

static void part_leaf(parts_bench_t *b, int i)
{
    X509 *x = rec_x509(b->rec);
    assert_int_equal(warm_x509(x), 0);
    X509_free(x);
}

static void part_tmpl(parts_bench_t *b, int i)
{
    unsigned char scratch[4096], *heap = NULL;
    assert_non_null(rec_der(b->rec, scratch, sizeof(scratch), &heap));
    free(heap);
}

static void part_unpack(parts_bench_t *b, int i)
{
    cc_rec_t *r = b->rec;
    EVP_PKEY *k = key_unpack(r->key_form, r->key_id, rec_key(r), r->key_len, b->leaves[i]);
    assert_non_null(k);
    EVP_PKEY_free(k);
}

static void part_d2i_key(parts_bench_t *b, int i)
{
    const unsigned char *p = b->kder;
    EVP_PKEY *k = d2i_PrivateKey_ex(EVP_PKEY_EC, NULL, &p, b->klen, NULL, NULL);
    assert_non_null(k);
    EVP_PKEY_free(k);
}

static void part_entry(parts_bench_t *b, int i)
{
    certcache_entry_t *e = entry_parse(b->rec);
    assert_non_null(e);
    certcache_entry_unref(e);
}

static double part_us(void (*fn)(parts_bench_t *, int), parts_bench_t *b)
{
    double best = 0;
    for (int round = 0; round < 5; round++) {
        double t0 = now_us();
        for (int i = 0; i < PARTS_N; i++)
            fn(b, i);
        double per = (now_us() - t0) / PARTS_N;
        best = round == 0 || per < best ? per : best;
    }
    return best;
}

static void print_parts(certcache_entry_t *e)
{
    parts_bench_t b = { .rec = e->_rec };
    b.klen = i2d_PrivateKey(e->key, &b.kder);
    assert_true(b.klen > 0);
    for (int i = 0; i < PARTS_N; i++)
        b.leaves[i] = rec_x509(b.rec);
    double leaf = part_us(part_leaf, &b), unpack = part_us(part_unpack, &b);
    double d2i = part_us(part_d2i_key, &b), whole = part_us(part_entry, &b);
    double tmpl = part_us(part_tmpl, &b);
    printf("  cold parse, best of 5 x %d: %.0f us = leaf (template decode %.1f us, d2i_X509)"
           " %.0f us + key rebuilt %.0f us + entry;\n  a generic d2i_PrivateKey_ex would"
           " take %.0f us instead of the rebuild\n",
           PARTS_N, whole, tmpl, leaf, unpack, d2i);
    for (int i = 0; i < PARTS_N; i++)
        X509_free(b.leaves[i]);
    OPENSSL_free(b.kder);
}

static void set_make(certset_t *cs, size_t n, int shape)
{
    memset(cs, 0, sizeof(*cs));
    cs->n = n;
    ca_make(&cs->ca, shape == LEAF_LE ? "E5" : "Hee Bench Intermediate");
    cs->l = calloc(n, sizeof(*cs->l));
    assert_non_null(cs->l);
    for (size_t i = 0; i < n; i++) {
        char host[64];
        host_name(host, sizeof(host), i);
        leaf_make_shape(&cs->ca, host, (long)i + 100, shape, &cs->l[i]);
        cs->der += cs->l[i].der_bytes;
    }
}

static void set_free(certset_t *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        leaf_free(&cs->l[i]);
    free(cs->l);
    ca_free(&cs->ca);
}

/* The cold tier for Let's Encrypt-shaped leaves, whose DER is ~2.5 times
 * the minimal ones': B/cert of heap and of records, and the leaves' DER. */
static void measure_le_shaped(size_t n, size_t per_hot, size_t *per, size_t *rec, size_t *der)
{
    certset_t le;
    size_t heap;
    double us;
    set_make(&le, n, LEAF_LE);
    certcache_t *cc = load_set(&le, 1, &heap, &us);
    certcache_stats_t st;
    certcache_stats(cc, &st);
    assert_int_equal(st.certs, n);
    *per = heap / n - per_hot / n;
    *rec = st.cold_bytes / n;
    *der = 0;
    for (size_t i = 0; i < n; i++) {
        BIO *b = BIO_new_mem_buf(le.l[i].chain, -1);
        X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
        *der += (size_t)i2d_X509(x, NULL);
        X509_free(x);
        BIO_free(b);
    }
    *der /= n;
    certcache_free(cc);
    set_free(&le);
}

static void test_memory_per_cert(void **state)
{
    /* ASan's allocator hides malloc from mallinfo2 and pads every block:
     * the numbers are only meaningful in a plain build. */
    certset_t cs;
    set_make(&cs, UNDER_ASAN ? 1000 : 10000, LEAF_MIN);

    /* The default hot tier (1024 for 10,000 names), full after the load. */
    size_t heap_all, heap_cold;
    double load_us, load_us2;
    certcache_t *cc = load_set(&cs, UNDER_ASAN ? 100 : 0, &heap_all, &load_us);
    certcache_stats_t st;
    certcache_stats(cc, &st);
    assert_int_equal(st.count, cs.n);
    assert_int_equal(st.certs, cs.n);
    assert_int_equal(st.chain_certs, 1);
    assert_int_equal(st.hot, st.max_hot);
    double cold_us = sweep_cold(cc, cs.n);
    char last[64];
    host_name(last, sizeof(last), cs.n - 1);
    double hot_ns = hot_get_ns(cc, last);
    certcache_entry_t *e = certcache_get(cc, last);
    print_parts(e);
    certcache_entry_unref(e);
    certcache_free(cc);

    /* The cold tier alone (a one-entry hot tier). */
    cc = load_set(&cs, 1, &heap_cold, &load_us2);
    certcache_stats_t cold;
    certcache_stats(cc, &cold);
    certcache_free(cc);

    printf("certcache: %zu P-256 certs, one shared intermediate, hot tier %zu; loaded in %.0f us/cert"
           "%s\n  get: cold (parse + promote) %.0f us, hot %.0f ns\n",
           cs.n, st.max_hot, load_us, UNDER_ASAN ? " (ASan)" : "", cold_us, hot_ns);
    if (UNDER_ASAN || heap_all == 0 || heap_cold == 0 || heap_all <= heap_cold) {
        printf("  per-cert memory needs a build without sanitizers\n");
    } else {
        size_t per = heap_all / cs.n, per_cold = heap_cold / cs.n;
        size_t per_hot = (heap_all - heap_cold) / (st.max_hot - 1);
        double big = (double)per_cold + (double)per_hot * (double)hot_size(1000000, 0) / 1e6;
        printf("  heap (mallinfo2) %zu B/cert with the hot tier full (stats estimate %zu);\n"
               "  cold tier alone %zu B/cert (records %zu B, the rest names and table;"
               " leaf + key DER %zu B), one hot entry %zu B\n"
               "  projected for 1,000,000 certs, default hot tier %zu: %.0f B/cert\n",
               per, st.bytes / cs.n, per_cold, cold.cold_bytes / cs.n, cs.der / cs.n, per_hot,
               hot_size(1000000, 0), big);
        assert_true(per <= 1700); /* a quarter of Caddy's 6.8 KB */

        size_t le_per, le_rec, le_der;
        measure_le_shaped(2000, per_hot, &le_per, &le_rec, &le_der);
        printf("  Let's Encrypt-shaped leaves (DER %zu B): cold tier %zu B/cert (records %zu B);"
               "\n  with the default hot tier %zu B/cert at 10,000, %.0f B/cert at 1,000,000\n",
               le_der, le_per, le_rec, le_per + per_hot * st.max_hot / cs.n,
               (double)le_per + (double)per_hot * (double)hot_size(1000000, 0) / 1e6);
    }
    set_free(&cs);
}

/* ---- negative cache ---- */

static void test_negcache_basics(void **state)
{
    negcache_t *nc = negcache_new(100);
    assert_non_null(nc);
    int64_t now = 1000000;
    assert_int_equal(negcache_get(nc, "x.example", now), NEGCACHE_MISS);
    assert_int_equal(negcache_put(nc, "X.example", NEGCACHE_UNKNOWN, now, 5000), 0);
    assert_int_equal(negcache_get(nc, "x.EXAMPLE", now + 4999), NEGCACHE_UNKNOWN);
    assert_int_equal(negcache_get(nc, "x.example", now + 5000), NEGCACHE_MISS);
    assert_int_equal(negcache_get(nc, "x.example", now + 5001), NEGCACHE_MISS);

    /* Overwrite keeps one slot and takes the new outcome and expiry. */
    assert_int_equal(negcache_put(nc, "y.example", NEGCACHE_UNKNOWN, now, 100), 0);
    assert_int_equal(negcache_put(nc, "y.example", NEGCACHE_NOT_VERIFIED, now, 10000), 0);
    assert_int_equal(negcache_get(nc, "y.example", now + 500), NEGCACHE_NOT_VERIFIED);
    assert_int_equal(negcache_remove(nc, "y.example"), 0);
    assert_int_equal(negcache_remove(nc, "y.example"), -1);
    assert_int_equal(negcache_get(nc, "y.example", now + 500), NEGCACHE_MISS);

    assert_int_equal(negcache_put(nc, "z", NEGCACHE_MISS, now, 10), -1);
    assert_int_equal(negcache_put(nc, "z", NEGCACHE_OUTCOMES, now, 10), -1);
    assert_int_equal(negcache_put(nc, "z", NEGCACHE_UNKNOWN, now, 0), -1);
    assert_int_equal(negcache_put(nc, "", NEGCACHE_UNKNOWN, now, 10), -1);
    assert_int_equal(negcache_put(nc, "z", NEGCACHE_BLOCKED, INT64_MAX - 5, 10), 0);
    assert_int_equal(negcache_get(nc, "z", INT64_MAX - 1), NEGCACHE_BLOCKED);

    negcache_stats_t st;
    negcache_stats(nc, &st);
    assert_int_equal(st.count, 1);
    assert_int_equal(st.capacity, 100);
    assert_int_equal(st.hits[NEGCACHE_UNKNOWN], 1);
    assert_int_equal(st.hits[NEGCACHE_NOT_VERIFIED], 1);
    assert_int_equal(st.hits[NEGCACHE_BLOCKED], 1);
    assert_int_equal(st.hits[NEGCACHE_MISS], 4);
    assert_int_equal(st.inserts[NEGCACHE_UNKNOWN], 2);
    assert_int_equal(st.expired, 1);
    assert_string_equal(negcache_outcome_name(NEGCACHE_NOT_VERIFIED), "not_verified");
    assert_string_equal(negcache_outcome_name(99), "invalid");
    negcache_free(nc);
}

static void test_negcache_flood(void **state)
{
    const size_t cap = 10000, names = 100000;
    negcache_t *nc = negcache_new(cap);
    assert_non_null(nc);
    int64_t now = 5000;
    char host[64];
    assert_int_equal(negcache_put(nc, "hot.example", NEGCACHE_UNKNOWN, now, 600000), 0);
    size_t heap0 = heap_in_use();
    for (size_t i = 0; i < names; i++) {
        snprintf(host, sizeof(host), "flood-%zu.attacker.example", i);
        assert_int_equal(negcache_put(nc, host, NEGCACHE_UNKNOWN, now, 600000), 0);
        /* A name in use keeps its slot through the flood (CLOCK second chance). */
        assert_int_equal(negcache_get(nc, "hot.example", now), NEGCACHE_UNKNOWN);
        if (i % 1000 == 0) {
            negcache_stats_t st;
            negcache_stats(nc, &st);
            assert_true(st.count <= cap);
        }
    }
    size_t heap1 = heap_in_use();
    assert_true(heap1 <= heap0 + 4096); /* both 0 under sanitizers */
    negcache_stats_t st;
    negcache_stats(nc, &st);
    assert_int_equal(st.count, cap);
    assert_int_equal(st.inserts[NEGCACHE_UNKNOWN], names + 1);
    assert_int_equal(st.evictions, names + 1 - cap);
    /* The most recent names are all still there. */
    for (size_t i = names - 100; i < names; i++) {
        snprintf(host, sizeof(host), "flood-%zu.attacker.example", i);
        assert_int_equal(negcache_get(nc, host, now), NEGCACHE_UNKNOWN);
    }
    /* Expired slots are reused before live ones are evicted. */
    uint64_t ev = st.evictions;
    for (size_t i = 0; i < 100; i++) {
        snprintf(host, sizeof(host), "later-%zu.example", i);
        assert_int_equal(negcache_put(nc, host, NEGCACHE_STORE_ERROR, now + 700000, 1000), 0);
    }
    negcache_stats(nc, &st);
    assert_int_equal(st.evictions, ev);
    assert_int_equal(st.count, cap);
    printf("negcache: %zu names into %zu slots, %llu evictions, heap growth %zd B\n", names + 1,
           cap, (unsigned long long)ev, (ssize_t)(heap1 - heap0));
    negcache_free(nc);
}

typedef struct {
    negcache_t *nc;
    unsigned seed;
} nworker_t;

static void *nworker(void *arg)
{
    nworker_t *w = arg;
    int64_t end = util_mono_ms() + 500;
    while (util_mono_ms() < end) {
        for (int i = 0; i < 200; i++) {
            char host[32];
            unsigned r = (unsigned)rand_r(&w->seed);
            snprintf(host, sizeof(host), "n%u.example", r % 3000);
            int64_t now = util_mono_ms();
            if ((r >> 12) % 3 == 0)
                negcache_put(w->nc, host, 1 + (int)((r >> 16) % 5), now, 50);
            else if ((r >> 12) % 3 == 1)
                negcache_get(w->nc, host, now);
            else
                negcache_remove(w->nc, host);
        }
    }
    return NULL;
}

static void test_negcache_threads(void **state)
{
    negcache_t *nc = negcache_new(1000);
    nworker_t w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (nworker_t){ .nc = nc, .seed = (unsigned)i + 11 };
        assert_int_equal(pthread_create(&t[i], NULL, nworker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    negcache_stats_t st;
    negcache_stats(nc, &st);
    assert_true(st.count <= 1000);
    negcache_free(nc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_entry_from_pem),
        cmocka_unit_test(test_entry_errors),
        cmocka_unit_test(test_entry_new_and_interning),
        cmocka_unit_test(test_rsa_keys),
        cmocka_unit_test_setup_teardown(test_get_put_remove, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_lru_eviction, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_tmpl_codec),
        cmocka_unit_test(test_cold_key_forms),
        cmocka_unit_test_setup_teardown(test_tier_eviction, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_get_route, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_threads, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_threads_small_hot, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_memory_per_cert),
        cmocka_unit_test(test_negcache_basics),
        cmocka_unit_test(test_negcache_flood),
        cmocka_unit_test(test_negcache_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
