/* crypto: hashing, MACs and constant-time comparison over OpenSSL 3.
 * Nothing here allocates except crypto_hmac_sha256_hex (caller frees). */
#ifndef HEE_CRYPTO_H
#define HEE_CRYPTO_H

#include <stddef.h>

#define CRYPTO_SHA256_LEN 32

int crypto_sha256(const void *in, size_t len, unsigned char out[CRYPTO_SHA256_LEN]);
int crypto_hmac_sha256(const void *key, size_t keylen, const void *in, size_t len,
                       unsigned char out[CRYPTO_SHA256_LEN]);
/* HMAC over several pieces, hashed in order as if concatenated (no copy):
 * pieces[i]/lens[i], n of them. */
int crypto_hmac_sha256_v(const void *key, size_t keylen, const void *const *pieces,
                         const size_t *lens, size_t n, unsigned char out[CRYPTO_SHA256_LEN]);
/* 1 when equal; time depends only on len. */
int crypto_ct_equal(const void *a, const void *b, size_t len);

#endif
