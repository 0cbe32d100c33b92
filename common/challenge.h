/* challenge: ACME challenge responses the edge must serve, published by the
 * control thread's ACME client and read by edge workers (http-01 tokens on
 * the HTTP listener, tls-alpn-01 certificates on the TLS listener).
 *
 * One table shared by all threads behind a mutex; entries are small and
 * short-lived. Lookups copy out what they return, so nothing the table owns
 * escapes its lock. */
#ifndef HEE_CHALLENGE_H
#define HEE_CHALLENGE_H

#include <stddef.h>

typedef struct challenge_table challenge_table_t;

challenge_table_t *challenge_table_new(void);
void challenge_table_free(challenge_table_t *t);

/* http-01: token → key authorization. */
int challenge_http_set(challenge_table_t *t, const char *host, const char *token, const char *keyauth);
/* Copies the key authorization for token into buf; 0 when found. */
int challenge_http_get(challenge_table_t *t, const char *token, char *buf, size_t len);

/* tls-alpn-01: host → PEM certificate and key carrying the acmeIdentifier. */
int challenge_alpn_set(challenge_table_t *t, const char *host, const char *cert_pem, const char *key_pem);
/* Returns malloc'd copies in *cert_pem and *key_pem (caller frees); 0 when found. */
int challenge_alpn_get(challenge_table_t *t, const char *host, char **cert_pem, char **key_pem);

/* Removes the challenge for (host, token); token NULL removes tls-alpn-01 for host. */
void challenge_remove(challenge_table_t *t, const char *host, const char *token);

#endif
