#include "control/localca.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "common/util.h"

struct localca {
    X509 *cert;
    EVP_PKEY *key;
    char *cert_pem;
    int64_t not_after_s;
};

#define ROOT_YEARS 10

static int ca_finish(localca_t *ca)
{
    pki_cert_info_t info;
    ca->cert_pem = pki_cert_to_pem(ca->cert);
    if (!ca->cert_pem || pki_cert_info(ca->cert, &info) != 0)
        return -1;
    ca->not_after_s = info.not_after_ms / 1000;
    return 0;
}

localca_t *localca_create(void)
{
    localca_t *ca = calloc(1, sizeof(*ca));
    if (!ca)
        return NULL;
    char *tag = util_random_id("", 6);
    char cn[64];
    ca->key = pki_key_new(PKI_KEY_EC_P256);
    ca->cert = X509_new();
    if (!tag || !ca->key || !ca->cert)
        goto fail;
    snprintf(cn, sizeof(cn), "Hee Local CA %s", tag);
    int64_t now = util_now_ms() / 1000;
    X509 *x = ca->cert;
    if (X509_set_version(x, 2) != 1 || pki_random_serial(x) != 0 ||
        pki_set_validity(x, now - 3600, now + (int64_t)ROOT_YEARS * 365 * 86400 + 3 * 86400) != 0 ||
        pki_set_subject_cn(x, cn) != 0 || X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
        X509_set_pubkey(x, ca->key) != 1)
        goto fail;
    if (pki_add_ext(x, NULL, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
        pki_add_ext(x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
        pki_add_ext(x, NULL, NID_subject_key_identifier, "hash") != 0 ||
        X509_sign(x, ca->key, EVP_sha256()) <= 0 || ca_finish(ca) != 0)
        goto fail;
    free(tag);
    char q[96];
    log_info("localca.created", "cn=%s", log_quote(q, sizeof(q), cn));
    return ca;
fail:
    free(tag);
    localca_free(ca);
    return NULL;
}

localca_t *localca_load(const char *cert_pem, const char *key_pem)
{
    localca_t *ca = calloc(1, sizeof(*ca));
    if (!ca)
        return NULL;
    ca->cert = pki_cert_from_pem(cert_pem);
    ca->key = pki_key_from_pem(key_pem);
    if (!ca->cert || !ca->key || !pki_cert_matches_key(ca->cert, ca->key) || X509_check_ca(ca->cert) != 1 ||
        ca_finish(ca) != 0)
        goto fail;
    return ca;
fail:
    localca_free(ca);
    return NULL;
}

int localca_export(const localca_t *ca, char **cert_pem, char **key_pem)
{
    *cert_pem = ca && ca->cert_pem ? strdup(ca->cert_pem) : NULL;
    *key_pem = ca ? pki_key_to_pem(ca->key) : NULL;
    if (*cert_pem && *key_pem)
        return 0;
    free(*cert_pem);
    pki_free_secret(*key_pem);
    *cert_pem = *key_pem = NULL;
    return -1;
}

const char *localca_cert_pem(const localca_t *ca)
{
    return ca ? ca->cert_pem : NULL;
}

X509 *localca_cert(const localca_t *ca)
{
    return ca ? ca->cert : NULL;
}

void localca_free(localca_t *ca)
{
    if (!ca)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca->cert_pem);
    free(ca);
}

static X509 *leaf_new(localca_t *ca, const char *hostname, EVP_PKEY *key, pki_key_type_t key_type,
                      int validity_days)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    int64_t now = util_now_ms() / 1000;
    int64_t end = now + (int64_t)validity_days * 86400;
    if (end > ca->not_after_s)
        end = ca->not_after_s;
    /* RSA keys may also encipher (TLS 1.2 RSA key exchange); EC keys only sign. */
    const char *ku = key_type == PKI_KEY_RSA_2048 ? "critical,digitalSignature,keyEncipherment"
                                                 : "critical,digitalSignature";
    if (X509_set_version(x, 2) != 1 || pki_random_serial(x) != 0 || pki_set_validity(x, now - 3600, end) != 0 ||
        pki_set_subject_cn(x, hostname) != 0 || X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) != 1 ||
        X509_set_pubkey(x, key) != 1)
        goto fail;
    if (pki_add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        pki_add_ext(x, ca->cert, NID_key_usage, ku) != 0 ||
        pki_add_ext(x, ca->cert, NID_ext_key_usage, "serverAuth") != 0 ||
        pki_add_ext(x, ca->cert, NID_subject_key_identifier, "hash") != 0 ||
        pki_add_ext(x, ca->cert, NID_authority_key_identifier, "keyid:always") != 0 ||
        pki_add_san_dns(x, hostname) != 0 || X509_sign(x, ca->key, EVP_sha256()) <= 0)
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

int localca_issue(localca_t *ca, const char *hostname, EVP_PKEY *given, pki_key_type_t key_type,
                  int validity_days, char **cert_chain_pem, char **key_pem)
{
    *cert_chain_pem = *key_pem = NULL;
    if (!ca || !pki_hostname_valid(hostname))
        return -1;
    if (validity_days <= 0)
        validity_days = LOCALCA_DEFAULT_DAYS;
    int rc = -1;
    EVP_PKEY *key = given;
    if (!key)
        key = pki_key_new(key_type);
    X509 *leaf = key ? leaf_new(ca, hostname, key, key_type, validity_days) : NULL;
    if (!leaf)
        goto out;
    *cert_chain_pem = pki_cert_to_pem(leaf);
    *key_pem = pki_key_to_pem(key);
    if (!*cert_chain_pem || !*key_pem)
        goto out;
    rc = 0;
    pki_cert_info_t info;
    if (pki_cert_info(leaf, &info) == 0) {
        char exp[32];
        log_info("localca.issued", "host=%s key=%s serial=%s not_after=%s", hostname, pki_key_type_name(key_type),
                 info.serial_hex, util_iso8601(info.not_after_ms, exp, sizeof(exp)));
    }
out:
    if (rc != 0) {
        ERR_clear_error();
        free(*cert_chain_pem);
        pki_free_secret(*key_pem);
        *cert_chain_pem = *key_pem = NULL;
        log_warn("localca.issue_failed", "host=%s", hostname);
    }
    X509_free(leaf);
    if (key != given)
        EVP_PKEY_free(key);
    return rc;
}
