/* keyseal: private keys at rest, sealed with AES-256-GCM under the 32-byte
 * key named by [store] key_encryption_key. The control thread seals what it
 * writes (certificate keys, ACME account keys, the local CA key); the edge
 * opens certificate keys it reads (certificates.key_sealed = 1).
 *
 * Sealed blob: "HEEK1" | 12-byte random nonce | ciphertext | 16-byte tag; the
 * additional data is the magic plus a context string naming the row (a
 * certificate's hostname, an account's directory URL, "local_ca"), so a
 * sealed key copied to another row does not open. A keyseal_t is immutable
 * after keyseal_load() and may be shared by threads. Buffers returned are
 * malloc'd; opened keys must be released with keyseal_free_secret(). */
#ifndef HEE_KEYSEAL_H
#define HEE_KEYSEAL_H

#include <stddef.h>

typedef struct keyseal keyseal_t;

#define KEYSEAL_KEY_LEN 32
#define KEYSEAL_CTX_LOCAL_CA "local_ca"

/* Reads the key file: exactly 32 raw bytes, or 64 hex digits (optionally
 * followed by a newline). Blocking file I/O: call at start-up only. Refuses a
 * file readable by group or others. NULL with *err malloc'd on failure. */
keyseal_t *keyseal_load(const char *path, char **err);
/* From raw key bytes (tests, or callers holding the key already). */
keyseal_t *keyseal_new(const unsigned char key[KEYSEAL_KEY_LEN]);
void keyseal_free(keyseal_t *k);

/* 1 when blob starts with the sealed format's magic (a PEM never does). */
int keyseal_is_sealed(const void *blob, size_t len);

/* Seals len bytes of plain under context (may be NULL = ""). *out is
 * malloc'd (free()), *outlen set. 0 or -1. */
int keyseal_seal(const keyseal_t *k, const char *context, const void *plain, size_t len, unsigned char **out,
                 size_t *outlen);
/* Opens a sealed blob made with the same context. *out is malloc'd with a
 * NUL after *outlen bytes (PEM is used as a C string); release it with
 * keyseal_free_secret(*out, *outlen). 0, or -1 (wrong key, wrong context,
 * tampered or truncated blob). */
int keyseal_open(const keyseal_t *k, const char *context, const void *blob, size_t len, char **out,
                 size_t *outlen);
/* Wipes and frees; NULL-safe. */
void keyseal_free_secret(void *p, size_t len);

#endif
