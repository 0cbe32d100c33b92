/* store_edge: the edge's read-only view of the store — everything a worker
 * needs to route one hostname and terminate TLS for it, in one call.
 *
 * Runs on an edge loader thread with its own STORE_RO handle (never on a
 * worker's event loop: SQLite may wait on the disk). The record owns its
 * strings and key bytes; store_edge_clear() frees them, wiping the private
 * key and the project's HMAC key first. */
#ifndef HEE_STORE_EDGE_H
#define HEE_STORE_EDGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/store.h"

typedef struct store_edge_host {
    /* domain: the active row (removed_at IS NULL) for the hostname */
    int64_t domain_id;
    char *state;              /* domains.state */
    int verified;             /* one-way flag */
    char *metadata;           /* verbatim JSON object text */
    /* project owning it (a soft-deleted project makes the host unknown) */
    int64_t project_id;
    char *slug;
    char *upstream;           /* primary upstream URL */
    char *upstream_fallback;  /* NULL when none */
    char *settings;           /* JSON object text */
    unsigned char *hmac_key;
    size_t hmac_key_len;
    /* current certificate (superseded_at IS NULL, largest not_after);
     * has_cert = 0 when there is none. key_pem may be sealed
     * (key_sealed = 1, common/keyseal.h, context = the hostname): the
     * edge's loader opens it. */
    int has_cert;
    char *chain_pem;          /* leaf first */
    char *key_pem;            /* secret: never log */
    size_t key_pem_len;
    int key_sealed;
    int64_t cert_not_after;   /* ms since the epoch */
} store_edge_host_t;

/* Fills *out for hostname (lowercase, no trailing dot). STORE_OK,
 * STORE_NOTFOUND when no active domain of a live project has that name
 * (removed domains count as unknown), or STORE_ERR (logged). On anything
 * but STORE_OK *out is left cleared. */
int store_edge_lookup(store_t *s, const char *hostname, store_edge_host_t *out);
void store_edge_clear(store_edge_host_t *h);

#endif
