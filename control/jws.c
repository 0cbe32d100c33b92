#include "control/jws.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>

#include "common/crypto.h"
#include "common/util.h"

#define ES256_COORD 32

static int is_p256(EVP_PKEY *key)
{
    char group[32];
    size_t len = 0;
    return EVP_PKEY_get_base_id(key) == EVP_PKEY_EC &&
           EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &len) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

const char *jws_alg(EVP_PKEY *key)
{
    if (!key)
        return NULL;
    if (is_p256(key))
        return "ES256";
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA)
        return "RS256";
    return NULL;
}

/* base64url of a big number: fixed width when pad > 0 (EC coordinates),
 * minimal octets otherwise (RSA n and e, RFC 7518 §6.3.1). */
static char *bn_b64(EVP_PKEY *key, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    char *out = NULL;
    if (EVP_PKEY_get_bn_param(key, param, &bn) != 1)
        return NULL;
    if (BN_num_bytes(bn) <= (int)sizeof(buf) && pad <= (int)sizeof(buf)) {
        int n = pad > 0 ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
        if (n > 0)
            out = util_b64(buf, (size_t)n, 1);
    }
    BN_free(bn);
    return out;
}

static json_t *jwk_object(EVP_PKEY *key)
{
    const char *alg = jws_alg(key);
    char *a = NULL, *b = NULL;
    json_t *o = NULL;
    if (!alg)
        return NULL;
    if (alg[0] == 'E') {
        a = bn_b64(key, OSSL_PKEY_PARAM_EC_PUB_X, ES256_COORD);
        b = bn_b64(key, OSSL_PKEY_PARAM_EC_PUB_Y, ES256_COORD);
        if (a && b)
            o = json_pack("{s:s, s:s, s:s, s:s}", "crv", "P-256", "kty", "EC", "x", a, "y", b);
    } else {
        a = bn_b64(key, OSSL_PKEY_PARAM_RSA_E, 0);
        b = bn_b64(key, OSSL_PKEY_PARAM_RSA_N, 0);
        if (a && b)
            o = json_pack("{s:s, s:s, s:s}", "e", a, "kty", "RSA", "n", b);
    }
    free(a);
    free(b);
    ERR_clear_error();
    return o;
}

/* Compact, key-sorted text: RFC 7638's canonical form for these members. */
static char *json_text(json_t *o)
{
    return o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

char *jws_jwk(EVP_PKEY *key)
{
    json_t *o = jwk_object(key);
    char *s = json_text(o);
    json_decref(o);
    return s;
}

char *jws_thumbprint(EVP_PKEY *key)
{
    char *jwk = jws_jwk(key);
    unsigned char md[CRYPTO_SHA256_LEN];
    char *out = NULL;
    if (jwk && crypto_sha256(jwk, strlen(jwk), md) == 0)
        out = util_b64(md, sizeof(md), 1);
    free(jwk);
    return out;
}

char *jws_key_authorization(const char *token, EVP_PKEY *key)
{
    char *tp = token ? jws_thumbprint(key) : NULL;
    if (!tp)
        return NULL;
    size_t tl = strlen(token), pl = strlen(tp);
    char *out = malloc(tl + 1 + pl + 1);
    if (out) {
        memcpy(out, token, tl);
        out[tl] = '.';
        memcpy(out + tl + 1, tp, pl + 1);
    }
    free(tp);
    return out;
}

/* ECDSA gives DER SEQUENCE{r, s}; JWS wants r||s, 32 bytes each (RFC 7518 §3.4). */
static int ecdsa_der_to_raw(const unsigned char *der, size_t len, unsigned char raw[2 * ES256_COORD])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!sig)
        return -1;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(sig, &r, &s);
    int ok = BN_bn2binpad(r, raw, ES256_COORD) == ES256_COORD &&
             BN_bn2binpad(s, raw + ES256_COORD, ES256_COORD) == ES256_COORD;
    ECDSA_SIG_free(sig);
    return ok ? 0 : -1;
}

/* base64url signature over input with key's algorithm. */
static char *sign_b64(EVP_PKEY *key, const char *input)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *sig = NULL;
    size_t siglen = 0;
    char *out = NULL;
    if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &siglen, (const unsigned char *)input, strlen(input)) != 1)
        goto out;
    sig = OPENSSL_malloc(siglen);
    if (!sig || EVP_DigestSign(md, sig, &siglen, (const unsigned char *)input, strlen(input)) != 1)
        goto out;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        unsigned char raw[2 * ES256_COORD];
        if (ecdsa_der_to_raw(sig, siglen, raw) == 0)
            out = util_b64(raw, sizeof(raw), 1);
    } else {
        out = util_b64(sig, siglen, 1);
    }
out:
    OPENSSL_free(sig);
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return out;
}

static char *hs256_b64(const unsigned char *k, size_t klen, const char *input)
{
    unsigned char mac[CRYPTO_SHA256_LEN];
    if (crypto_hmac_sha256(k, klen, input, strlen(input), mac) != 0)
        return NULL;
    return util_b64(mac, sizeof(mac), 1);
}

/* Assembles protected/payload/signature; sign() gets "b64(protected).b64(payload)". */
static char *flatten(json_t *protected_hdr, const char *payload, EVP_PKEY *key, const unsigned char *hk,
                     size_t hklen)
{
    char *hdr = json_text(protected_hdr);
    char *h64 = hdr ? util_b64(hdr, strlen(hdr), 1) : NULL;
    char *p64 = util_b64(payload ? payload : "", payload ? strlen(payload) : 0, 1);
    char *input = NULL, *s64 = NULL, *out = NULL;
    if (!h64 || !p64)
        goto out;
    size_t hl = strlen(h64), pl = strlen(p64);
    input = malloc(hl + 1 + pl + 1);
    if (!input)
        goto out;
    memcpy(input, h64, hl);
    input[hl] = '.';
    memcpy(input + hl + 1, p64, pl + 1);
    s64 = key ? sign_b64(key, input) : hs256_b64(hk, hklen, input);
    if (!s64)
        goto out;
    json_t *o = json_pack("{s:s, s:s, s:s}", "protected", h64, "payload", p64, "signature", s64);
    out = json_text(o);
    json_decref(o);
out:
    free(hdr);
    free(h64);
    free(p64);
    free(input);
    free(s64);
    return out;
}

char *jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url, const char *payload)
{
    const char *alg = jws_alg(key);
    if (!alg || !url)
        return NULL;
    json_t *hdr = json_pack("{s:s, s:s}", "alg", alg, "url", url);
    char *out = NULL;
    if (!hdr)
        return NULL;
    if (nonce && json_object_set_new(hdr, "nonce", json_string(nonce)) != 0)
        goto out;
    if (kid) {
        if (json_object_set_new(hdr, "kid", json_string(kid)) != 0)
            goto out;
    } else {
        json_t *jwk = jwk_object(key);
        if (!jwk || json_object_set_new(hdr, "jwk", jwk) != 0)
            goto out;
    }
    out = flatten(hdr, payload, key, NULL, 0);
out:
    json_decref(hdr);
    return out;
}

char *jws_eab(EVP_PKEY *account_key, const char *eab_kid, const char *hmac_key_b64url, const char *url)
{
    if (!account_key || !eab_kid || !hmac_key_b64url || !url)
        return NULL;
    size_t klen = 0;
    unsigned char *k = util_unb64(hmac_key_b64url, strlen(hmac_key_b64url), &klen);
    char *jwk = jws_jwk(account_key);
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "kid", eab_kid, "url", url);
    char *out = NULL;
    if (k && klen > 0 && jwk && hdr)
        out = flatten(hdr, jwk, NULL, k, klen);
    if (k) {
        OPENSSL_cleanse(k, klen);
        free(k);
    }
    free(jwk);
    json_decref(hdr);
    return out;
}
