/* store_cert: the issuer's tables — certificates (current and superseded),
 * per-hostname issuance backoff (issuance), the issuance log that the weekly
 * per-registered-domain limit counts, ACME accounts, and the built-in CA
 * (local_ca) — plus the certificate columns of domains (cert_status,
 * cert_error, state) the issuer writes.
 *
 * Functions marked "in a transaction" expect the caller's; the others run
 * alone. Records own their strings and are freed with their *_clear(), which
 * wipes key bytes first. Key bytes are stored as given (PEM, or a
 * common/keyseal.h blob with key_sealed = 1): this module never logs them. */
#ifndef HEE_STORE_CERT_H
#define HEE_STORE_CERT_H

#include <stddef.h>
#include <stdint.h>

#include "common/store.h"

/* ---- certificates ---- */

typedef struct store_cert {
    int64_t id;
    char *hostname;
    char *chain_pem;             /* leaf first */
    unsigned char *key;          /* PEM or sealed blob; NULL in reads that skip it */
    size_t key_len;
    int key_sealed;
    char *key_type;              /* ecdsa-p256 | rsa-2048 */
    char *issuer;                /* "internal" or the ACME directory URL */
    char *issuer_name;           /* issuer CN */
    char *serial;
    int64_t not_before, not_after, renew_at, created_at;
    int64_t superseded_at;       /* 0 while current */
} store_cert_t;

void store_cert_clear(store_cert_t *c);

/* In a transaction: marks every current row of c->hostname superseded (now)
 * and inserts c as the new current one (created_at = now); sets c->id. */
int store_cert_insert(store_t *s, store_cert_t *c, int64_t now);

/* The current certificate of host (not superseded, latest notAfter), without
 * its key. STORE_NOTFOUND when none. */
int store_cert_current(store_t *s, const char *host, store_cert_t *out);

/* A certificate due for renewal (renew_at <= now). */
typedef struct store_cert_due {
    int64_t id;
    char hostname[254];
    int64_t not_after, renew_at;
} store_cert_due_t;

/* Fills up to max rows due at now, soonest first (index certificates_renew);
 * *n = rows filled. */
int store_cert_due(store_t *s, int64_t now, store_cert_due_t *out, int max, int *n);
/* The earliest renew_at of any current certificate; STORE_NOTFOUND when none. */
int store_cert_next_renew_at(store_t *s, int64_t *at);
/* Moves one current row's renew_at (claim, retry later, or park). */
int store_cert_set_renew_at(store_t *s, int64_t id, int64_t renew_at);
/* Retires a current row that expired without renewal (superseded_at = now). */
int store_cert_retire(store_t *s, int64_t id, int64_t now);

/* ---- issuance backoff (one row per hostname) ---- */

typedef struct store_issuance {
    int failures;
    int64_t next_attempt_at;     /* ms; 0 = now */
    char *last_error;
    int64_t updated_at;
} store_issuance_t;

void store_issuance_clear(store_issuance_t *i);
/* STORE_NOTFOUND when host has no row (never failed, or cleared). */
int store_cert_backoff_get(store_t *s, const char *host, store_issuance_t *out);
int store_cert_backoff_set(store_t *s, const char *host, int failures, int64_t next_attempt_at,
                           const char *last_error, int64_t now);
int store_cert_backoff_clear(store_t *s, const char *host);

/* ---- issuance log (weekly limit per registered domain) ---- */

int store_cert_log_add(store_t *s, const char *registered_domain, const char *host, const char *issuer,
                       int64_t at);
/* Certificates issued for registered_domain since `since` by issuers other
 * than "internal" (index issuance_log_regdom); *oldest = the earliest
 * issued_at among them (0 when count is 0). */
int store_cert_log_count(store_t *s, const char *registered_domain, int64_t since, int64_t *count,
                         int64_t *oldest);

/* ---- ACME order starts (the hourly cap) ---- */
/* Records orders started at at[0..n) and forgets those before `before`, in
 * one transaction of its own. */
int store_cert_orders_note(store_t *s, const int64_t *at, size_t n, int64_t before);
/* cb(started_at, arg) for every order started at or after since. */
int store_cert_orders_since(store_t *s, int64_t since, void (*cb)(int64_t at, void *arg), void *arg);

/* ---- domains: the issuer's columns ---- */

/* Sets cert_status, cert_error (NULL clears) and, when state is non-NULL,
 * state, on domain id if it is active. STORE_NOTFOUND when it is not. */
int store_cert_domain_status(store_t *s, int64_t domain_id, const char *state, const char *cert_status,
                             const char *cert_error, int64_t now);

/* ---- ACME accounts (one per directory URL) ---- */

/* *key (PEM or sealed blob, NUL-terminated, wipe with the length) and *kid
 * (may be NULL) are malloc'd. STORE_NOTFOUND when none. */
int store_cert_account_get(store_t *s, const char *directory_url, unsigned char **key, size_t *key_len,
                           char **kid);
/* *kid (malloc'd; NULL when the row has none) of directory_url's account,
 * without reading its key. STORE_NOTFOUND when there is no account. */
int store_cert_account_kid(store_t *s, const char *directory_url, char **kid);
/* Inserts or replaces the account of directory_url. kid may be NULL. */
int store_cert_account_put(store_t *s, const char *directory_url, const void *key, size_t key_len,
                           const char *kid, const char *contact, int64_t now);

/* ---- the built-in CA (local_ca row 1) ---- */

typedef struct store_local_ca {
    char *cert_pem;
    unsigned char *key;          /* PEM or sealed blob (KEYSEAL_CTX_LOCAL_CA), NUL-terminated */
    size_t key_len;
    int64_t created_at;
} store_local_ca_t;

void store_local_ca_clear(store_local_ca_t *ca);
/* The root. with_key = 0 leaves out->key NULL (`hee ca export` needs only
 * the certificate). STORE_NOTFOUND before the issuer has created it. */
int store_cert_local_ca_get(store_t *s, store_local_ca_t *out, int with_key);
/* Stores the root unless one exists: STORE_CONFLICT then (read it back). */
int store_cert_local_ca_put(store_t *s, const char *cert_pem, const void *key, size_t key_len, int64_t now);

#endif
