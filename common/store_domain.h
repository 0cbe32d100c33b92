/* store_domain: the domains table — customer hostnames and their lifecycle.
 * A hostname has at most one active row (removed_at NULL) across all
 * projects; removal is a soft delete that keeps the row as history, and a
 * later registration inserts a new row.
 *
 * Records own their strings (store_domain_clear). Writes expect the caller's
 * transaction. store_domain_resolve is the hot path: one cached statement,
 * no allocation, borrowed pointers valid only inside its callback. */
#ifndef HEE_STORE_DOMAIN_H
#define HEE_STORE_DOMAIN_H

#include <stddef.h>
#include <stdint.h>

#include "common/store.h"

typedef struct store_domain {
    int64_t id;
    char *hostname;
    int64_t project_id;
    char *project_slug;
    char *state;                 /* a ConnectionState value */
    int verified;
    int64_t verified_at;         /* 0 = never */
    char *verify_method;         /* NULL until verified */
    char *challenge;             /* ownership TXT value */
    char *metadata;              /* verbatim JSON object text */
    int64_t sequence;
    char *cert_status;           /* none | issuing | issued | failed */
    char *cert_error;
    int64_t created_at, updated_at;
    int64_t removed_at;          /* 0 while active */
    int64_t cert_not_after;      /* current certificate for the hostname; 0 = none */
    char *cert_issuer;           /* its issuer name; NULL = none */
} store_domain_t;

typedef int (*store_domain_cb)(const store_domain_t *d, void *arg);

typedef struct store_domain_filter {
    int64_t project_id;          /* 0 = every project */
    int64_t after_id;            /* cursor: rows with a larger id */
    int limit;
    const char *state;           /* NULL = any */
    int verified;                /* -1 = any, 0 or 1 */
    int include_removed;
} store_domain_filter_t;

/* What resolve needs; pointers borrowed from SQLite, valid in the callback.
 * The strings are NOT NUL-terminated (SQLite would copy each to add one):
 * use the lengths. */
typedef struct store_resolve {
    int64_t project_id;
    const char *project_slug;
    size_t project_slug_len;
    int verified;
    int64_t verified_at;
    const char *state;
    size_t state_len;
    const char *metadata;
    size_t metadata_len;
} store_resolve_t;

void store_domain_clear(store_domain_t *d);

/* Inserts hostname, project_id, state, verified, verified_at, verify_method,
 * challenge, metadata, cert_status, created_at (also updated_at and the first
 * probe time); sets d->id. STORE_CONFLICT when the hostname is active. */
int store_domain_insert(store_t *s, store_domain_t *d);

/* The active row for host. */
int store_domain_active(store_t *s, const char *host, store_domain_t *out);
/* The active row, else the most recently removed one; project_id > 0 limits
 * the search to that project's rows. */
int store_domain_latest(store_t *s, const char *host, int64_t project_id, store_domain_t *out);
int store_domain_get(store_t *s, int64_t id, store_domain_t *out);
int store_domain_list(store_t *s, const store_domain_filter_t *f, store_domain_cb cb, void *arg);

/* STORE_NOTFOUND unless the row is active. */
int store_domain_set_metadata(store_t *s, int64_t id, const char *metadata, size_t len, int64_t now);
int store_domain_remove(store_t *s, int64_t id, int64_t now);
int store_domain_count_active(store_t *s, int64_t project_id, int64_t *n);

/* Looks up the active row for host and calls cb with it (once) before the
 * statement is reset. STORE_NOTFOUND when there is none. No transaction. */
int store_domain_resolve(store_t *s, const char *host, void (*cb)(const store_resolve_t *r, void *arg),
                         void *arg);

/* The built-in CA's root certificate PEM (local_ca row 1), malloc'd into
 * *pem; STORE_NOTFOUND before the issuer has created it. Lives here until
 * the issuer's store module takes it over. */
int store_domain_local_ca_pem(store_t *s, char **pem);

#endif
