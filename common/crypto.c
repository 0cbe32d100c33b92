#include "common/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

int crypto_sha256(const void *in, size_t len, unsigned char out[CRYPTO_SHA256_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) == 1 && n == CRYPTO_SHA256_LEN ? 0 : -1;
}

int crypto_hmac_sha256_v(const void *key, size_t keylen, const void *const *pieces,
                         const size_t *lens, size_t n, unsigned char out[CRYPTO_SHA256_LEN])
{
    int rc = -1;
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    if (!ctx)
        goto out;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    /* OpenSSL refuses a NULL key even when it is empty. */
    static const unsigned char empty[1];
    if (EVP_MAC_init(ctx, keylen ? key : empty, keylen, params) != 1)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (lens[i] && EVP_MAC_update(ctx, pieces[i], lens[i]) != 1)
            goto out;
    size_t outl = 0;
    if (EVP_MAC_final(ctx, out, &outl, CRYPTO_SHA256_LEN) != 1 || outl != CRYPTO_SHA256_LEN)
        goto out;
    rc = 0;
out:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

int crypto_hmac_sha256(const void *key, size_t keylen, const void *in, size_t len,
                       unsigned char out[CRYPTO_SHA256_LEN])
{
    const void *pieces[1] = { in };
    size_t lens[1] = { len };
    return crypto_hmac_sha256_v(key, keylen, pieces, lens, 1, out);
}

int crypto_ct_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}
