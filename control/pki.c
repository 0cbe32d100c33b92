#include "control/pki.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include "common/crypto.h"
#include "common/util.h"

static const struct {
    const char *name;
    pki_key_type_t type;
} key_names[] = {
    { "ec256", PKI_KEY_EC_P256 }, { "p256", PKI_KEY_EC_P256 },  { "ecdsa", PKI_KEY_EC_P256 },
    { "ec", PKI_KEY_EC_P256 },    { "rsa2048", PKI_KEY_RSA_2048 }, { "rsa", PKI_KEY_RSA_2048 },
};

int pki_key_type_parse(const char *s, pki_key_type_t *out)
{
    for (size_t i = 0; s && i < UTIL_ARRAY_LEN(key_names); i++) {
        if (strcasecmp(s, key_names[i].name) == 0) {
            *out = key_names[i].type;
            return 0;
        }
    }
    return -1;
}

const char *pki_key_type_name(pki_key_type_t t)
{
    return t == PKI_KEY_RSA_2048 ? "rsa2048" : "ec256";
}

EVP_PKEY *pki_key_new(pki_key_type_t type)
{
    switch (type) {
    case PKI_KEY_EC_P256:
        return EVP_EC_gen("P-256");
    case PKI_KEY_RSA_2048:
        return EVP_RSA_gen(2048);
    }
    return NULL;
}

/* Copies a memory BIO's contents into a NUL-terminated malloc'd string. */
static char *bio_string(BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    if (n <= 0 || !data)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    memcpy(s, data, (size_t)n);
    s[n] = '\0';
    return s;
}

char *pki_key_to_pem(EVP_PKEY *key)
{
    /* secmem: the buffer holding the key is wiped when the BIO goes away. */
    BIO *b = BIO_new(BIO_s_secmem());
    char *s = NULL;
    if (b && key && PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1)
        s = bio_string(b);
    BIO_free(b);
    return s;
}

EVP_PKEY *pki_key_from_pem(const char *pem)
{
    if (!pem)
        return NULL;
    BIO *b = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!k)
        ERR_clear_error();
    return k;
}

void pki_free_secret(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

char *pki_cert_to_pem(X509 *cert)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *s = NULL;
    if (b && cert && PEM_write_bio_X509(b, cert) == 1)
        s = bio_string(b);
    BIO_free(b);
    return s;
}

X509 *pki_cert_from_pem(const char *pem)
{
    if (!pem)
        return NULL;
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    if (!x)
        ERR_clear_error();
    return x;
}

STACK_OF(X509) *pki_chain_from_pem(const char *pem)
{
    if (!pem)
        return NULL;
    BIO *b = BIO_new_mem_buf(pem, -1);
    STACK_OF(X509) *chain = sk_X509_new_null();
    if (!b || !chain)
        goto fail;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(chain, x)) {
            X509_free(x);
            goto fail;
        }
    }
    ERR_clear_error(); /* the read that ended the loop left "no start line" */
    if (sk_X509_num(chain) == 0)
        goto fail;
    BIO_free(b);
    return chain;
fail:
    BIO_free(b);
    sk_X509_pop_free(chain, X509_free);
    return NULL;
}

static GENERAL_NAMES *dns_names(const char *hostname)
{
    GENERAL_NAMES *gens = GENERAL_NAMES_new();
    GENERAL_NAME *gen = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    if (!gens || !gen || !ia5 || ASN1_STRING_set(ia5, hostname, (int)strlen(hostname)) != 1)
        goto fail;
    GENERAL_NAME_set0_value(gen, GEN_DNS, ia5);
    ia5 = NULL;
    if (!sk_GENERAL_NAME_push(gens, gen))
        goto fail;
    return gens;
fail:
    ASN1_IA5STRING_free(ia5);
    GENERAL_NAME_free(gen);
    GENERAL_NAMES_free(gens);
    return NULL;
}

static int name_set_cn(X509_NAME *name, const char *cn)
{
    if (!cn || strlen(cn) > 64)
        return 0;
    return X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                      -1, 0) == 1
               ? 0
               : -1;
}

int pki_csr_der(EVP_PKEY *key, const char *hostname, unsigned char **der, size_t *der_len)
{
    int rc = -1;
    X509_REQ *req = X509_REQ_new();
    X509_NAME *name = X509_NAME_new();
    GENERAL_NAMES *gens = hostname ? dns_names(hostname) : NULL;
    STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
    X509_EXTENSION *san = gens ? X509V3_EXT_i2d(NID_subject_alt_name, 0, gens) : NULL;
    *der = NULL;
    if (!req || !name || !exts || !san || !key)
        goto out;
    if (X509_REQ_set_version(req, 0) != 1 || name_set_cn(name, hostname) != 0 ||
        X509_REQ_set_subject_name(req, name) != 1 || X509_REQ_set_pubkey(req, key) != 1)
        goto out;
    if (!sk_X509_EXTENSION_push(exts, san))
        goto out;
    san = NULL;
    if (X509_REQ_add_extensions(req, exts) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0)
        goto out;
    int n = i2d_X509_REQ(req, der);
    if (n <= 0)
        goto out;
    *der_len = (size_t)n;
    rc = 0;
out:
    X509_EXTENSION_free(san);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    GENERAL_NAMES_free(gens);
    X509_NAME_free(name);
    X509_REQ_free(req);
    return rc;
}

static int asn1_time_ms(const ASN1_TIME *t, int64_t *ms)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return -1;
    *ms = (int64_t)timegm(&tm) * 1000;
    return 0;
}

static void name_cn(const X509_NAME *name, char *out, size_t len)
{
    out[0] = '\0';
    int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (i >= 0) {
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
        if (n >= 0)
            snprintf(out, len, "%.*s", n, (const char *)utf8);
        OPENSSL_free(utf8);
        return;
    }
    X509_NAME_oneline(name, out, (int)len);
}

int pki_cert_info(X509 *cert, pki_cert_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!cert)
        return -1;
    if (asn1_time_ms(X509_get0_notBefore(cert), &out->not_before_ms) != 0 ||
        asn1_time_ms(X509_get0_notAfter(cert), &out->not_after_ms) != 0)
        return -1;
    name_cn(X509_get_subject_name(cert), out->subject_cn, sizeof(out->subject_cn));
    name_cn(X509_get_issuer_name(cert), out->issuer_cn, sizeof(out->issuer_cn));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    BN_free(bn);
    if (!hex)
        return -1;
    snprintf(out->serial_hex, sizeof(out->serial_hex), "%s", hex);
    OPENSSL_free(hex);
    for (char *p = out->serial_hex; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p + 32);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32)
        return -1;
    util_hex(out->sha256_hex, md, mdlen);
    return 0;
}

int pki_chain_info(const char *pem, pki_cert_info_t *out)
{
    X509 *x = pki_cert_from_pem(pem);
    int rc = pki_cert_info(x, out);
    X509_free(x);
    return rc;
}

int pki_cert_has_dns(X509 *cert, const char *hostname)
{
    if (!cert || !hostname)
        return 0;
    return X509_check_host(cert, hostname, 0,
                           X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                           NULL) == 1;
}

int pki_cert_matches_key(X509 *cert, EVP_PKEY *key)
{
    if (!cert || !key)
        return 0;
    int ok = X509_check_private_key(cert, key) == 1;
    ERR_clear_error();
    return ok;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fsync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? (slash == path ? strdup("/") : util_strndup(path, (size_t)(slash - path))) : strdup(".");
    if (!dir)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int pki_write_key_file(const char *path, const char *pem)
{
    if (!path || !pem)
        return errno = EINVAL, -1;
    unsigned char rnd[8];
    char hex[17];
    if (util_random(rnd, sizeof(rnd)) != 0)
        return errno = EIO, -1;
    util_hex(hex, rnd, sizeof(rnd));
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp)
        return -1;
    snprintf(tmp, tlen, "%s.tmp-%s", path, hex);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        goto fail_nofile;
    if (write_all(fd, pem, strlen(pem)) != 0 || fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    free(tmp);
    /* The rename is durable only once the directory entry is. */
    return fsync_parent(path);
fail: {
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = e;
}
fail_nofile:
    free(tmp);
    return -1;
}

int pki_random_serial(X509 *cert)
{
    unsigned char b[16];
    if (util_random(b, sizeof(b)) != 0)
        return -1;
    b[0] &= 0x7f; /* positive, and DER needs no leading zero byte */
    b[0] |= 0x01; /* never zero, always 16 bytes long */
    BIGNUM *bn = BN_bin2bn(b, sizeof(b), NULL);
    ASN1_INTEGER *ai = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
    int rc = ai && X509_set_serialNumber(cert, ai) == 1 ? 0 : -1;
    ASN1_INTEGER_free(ai);
    BN_free(bn);
    return rc;
}

int pki_set_validity(X509 *cert, int64_t not_before_s, int64_t not_after_s)
{
    return ASN1_TIME_set(X509_getm_notBefore(cert), (time_t)not_before_s) &&
                   ASN1_TIME_set(X509_getm_notAfter(cert), (time_t)not_after_s)
               ? 0
               : -1;
}

int pki_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    int rc = ext && X509_add_ext(cert, ext, -1) == 1 ? 0 : -1;
    X509_EXTENSION_free(ext);
    return rc;
}

int pki_add_san_dns(X509 *cert, const char *hostname)
{
    GENERAL_NAMES *gens = dns_names(hostname);
    int rc = gens && X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_REPLACE) == 1 ? 0 : -1;
    GENERAL_NAMES_free(gens);
    return rc;
}

int pki_set_subject_cn(X509 *cert, const char *cn)
{
    X509_NAME *name = X509_NAME_new();
    int rc = name && name_set_cn(name, cn) == 0 && X509_set_subject_name(cert, name) == 1 ? 0 : -1;
    X509_NAME_free(name);
    return rc;
}

/* The acmeIdentifier extension: its extnValue is the DER of an OCTET STRING
 * holding SHA-256(keyAuthorization), i.e. 04 20 <32 bytes>. */
static int add_acme_identifier(X509 *cert, const char *key_authorization)
{
    unsigned char der[2 + CRYPTO_SHA256_LEN] = { 0x04, CRYPTO_SHA256_LEN };
    if (crypto_sha256(key_authorization, strlen(key_authorization), der + 2) != 0)
        return -1;
    int rc = -1;
    ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    if (!oid || !val || ASN1_OCTET_STRING_set(val, der, sizeof(der)) != 1)
        goto out;
    ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, val);
    if (!ext || X509_add_ext(cert, ext, -1) != 1)
        goto out;
    rc = 0;
out:
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(val);
    ASN1_OBJECT_free(oid);
    return rc;
}

int pki_tls_alpn_cert(const char *hostname, const char *key_authorization, char **cert_pem, char **key_pem)
{
    int rc = -1;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    *cert_pem = *key_pem = NULL;
    if (!hostname || !key_authorization || !pki_hostname_valid(hostname))
        goto out;
    key = pki_key_new(PKI_KEY_EC_P256);
    x = X509_new();
    if (!key || !x)
        goto out;
    int64_t now = util_now_ms() / 1000;
    if (X509_set_version(x, 2) != 1 || pki_random_serial(x) != 0 ||
        pki_set_validity(x, now - 3600, now + 7 * 86400) != 0 || pki_set_subject_cn(x, hostname) != 0 ||
        X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 || X509_set_pubkey(x, key) != 1 ||
        pki_add_san_dns(x, hostname) != 0 || add_acme_identifier(x, key_authorization) != 0 ||
        X509_sign(x, key, EVP_sha256()) <= 0)
        goto out;
    *cert_pem = pki_cert_to_pem(x);
    *key_pem = pki_key_to_pem(key);
    if (!*cert_pem || !*key_pem)
        goto out;
    rc = 0;
out:
    if (rc != 0) {
        free(*cert_pem);
        pki_free_secret(*key_pem);
        *cert_pem = *key_pem = NULL;
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return rc;
}

int pki_hostname_valid(const char *h)
{
    if (!h)
        return 0;
    size_t len = strlen(h);
    if (len == 0 || len > 253)
        return 0;
    if (h[0] == '*') {
        if (h[1] != '.')
            return 0;
        h += 2;
    }
    int labels = 0;
    const char *p = h;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (l == 0 || l > 63 || p[0] == '-' || p[l - 1] == '-')
            return 0;
        for (size_t i = 0; i < l; i++) {
            char c = p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
                return 0;
        }
        labels++;
        if (!dot)
            break;
        p = dot + 1;
    }
    return labels >= 2;
}
