/* api_ops: the control API's state changes as plain functions, shared by the
 * HTTP handlers (api_*.c) and the admin CLI (cli.c) so both validate the same
 * way, write the same rows and emit the same events and audit entries.
 *
 * Each api_ops_* that writes opens and commits its own transaction (the
 * reply may follow only a committed COMMIT); on failure it rolls back and
 * fills the api_ops_err_t with the HTTP status, seed error code and a
 * message. The *_tx variants write inside the caller's transaction instead,
 * for callers that commit several operations at once. Nothing here touches
 * the event loop or other threads: after a success the API caller tells the
 * edge (ctl_domain_changed …); the CLI cannot, and relies on the edge's
 * cache expiry. Out-records are the caller's to clear. */
#ifndef HEE_API_OPS_H
#define HEE_API_OPS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/store.h"
#include "common/store_domain.h"
#include "common/store_project.h"
#include "common/store_token.h"

/* Seed scopes as bits. apps:admin exists only on operator tokens and implies
 * every other scope on every project. */
enum api_scope {
    API_SCOPE_CONNECTIONS_READ = 1u << 0,
    API_SCOPE_CONNECTIONS_WRITE = 1u << 1,
    API_SCOPE_WEBHOOKS_WRITE = 1u << 2,
    API_SCOPE_USAGE_READ = 1u << 3,
    API_SCOPE_APPS_ADMIN = 1u << 4,
};
#define API_SCOPE_PROJECT_ALL                                                                         \
    (API_SCOPE_CONNECTIONS_READ | API_SCOPE_CONNECTIONS_WRITE | API_SCOPE_WEBHOOKS_WRITE |             \
     API_SCOPE_USAGE_READ)

#define API_METADATA_MAX 16384
#define API_SLUG_MAX 63

typedef struct api_ops {
    store_t *store;
    const config_t *cfg;
    const char *actor;           /* token id, or "cli" */
} api_ops_t;

typedef struct api_ops_err {
    int status;                  /* HTTP status */
    const char *code;            /* seed error code, e.g. "HostnameConflict" */
    char message[256];
} api_ops_err_t;

/* ---- validation (no I/O) ---- */
/* Space- or comma-separated scope names → bits; -1 + e on an unknown name. */
int api_ops_parse_scopes(const char *text, unsigned *mask, api_ops_err_t *e);
/* Canonical space-separated text of mask into buf. */
char *api_ops_scopes_text(unsigned mask, char *buf, size_t len);
int api_ops_check_slug(const char *slug, api_ops_err_t *e);
/* An absolute http(s) URL with a host; what names the field in messages. */
int api_ops_check_upstream(const char *url, const char *what, api_ops_err_t *e);
/* Validates a settings object and returns its canonical text (malloc'd). */
char *api_ops_settings_text(const json_t *settings, api_ops_err_t *e);
/* A JSON object of at most API_METADATA_MAX bytes, as given. */
int api_ops_check_metadata(const char *text, size_t len, api_ops_err_t *e);
/* A ConnectionState name. */
int api_ops_valid_state(const char *state);

/* ---- projects ---- */
/* p: slug, upstream, upstream_fallback, max_domains, settings (text). */
int api_ops_project_create(const api_ops_t *o, store_project_t *p, api_ops_err_t *e);
int api_ops_project_update(const api_ops_t *o, const store_project_t *p, api_ops_err_t *e);
/* Refused while the project has active domains; revokes its tokens. */
int api_ops_project_delete(const api_ops_t *o, const store_project_t *p, api_ops_err_t *e);

/* ---- tokens ---- */
/* project: NULL for an operator token (mask must then be apps:admin).
 * *secret receives the malloc'd token, shown once; out the stored record. */
int api_ops_token_create(const api_ops_t *o, const store_project_t *project, unsigned mask, const char *name,
                         store_token_t *out, char **secret, api_ops_err_t *e);
/* project_id > 0 limits revocation to that project's tokens. */
int api_ops_token_revoke(const api_ops_t *o, const char *id, int64_t project_id, api_ops_err_t *e);

/* ---- domains ---- */
/* One registration in its own transaction: api_ops_domain_register_check,
 * then api_ops_domain_register_tx between store_begin and store_commit. */
int api_ops_domain_register(const api_ops_t *o, const store_project_t *p, const char *hostname,
                            const char *metadata, size_t metadata_len, store_domain_t *out, api_ops_err_t *e);
/* What registration checks before it writes (no I/O): the hostname, as host
 * (normalised, HOSTNAME_MAX bytes), and the metadata (NULL means {}). */
int api_ops_domain_register_check(const api_ops_t *o, const char *hostname, const char *metadata,
                                  size_t metadata_len, char *host, api_ops_err_t *e);
/* The writes of one registration of host (already checked) inside the
 * caller's transaction, under a savepoint: on failure nothing of it remains
 * and the transaction is still usable, so a batch can commit the others.
 * The project is read again here (it may have changed or gone since the
 * caller looked it up); quota and conflicts are decided against the
 * transaction's view, earlier registrations of the batch included. */
int api_ops_domain_register_tx(const api_ops_t *o, int64_t project_id, const char *host, const char *metadata,
                               size_t metadata_len, store_domain_t *out, api_ops_err_t *e);
/* d: the active row. */
int api_ops_domain_set_metadata(const api_ops_t *o, const store_domain_t *d, const char *metadata,
                                size_t metadata_len, store_domain_t *out, api_ops_err_t *e);
/* Moves d to project to: the old row is removed (the old project gets
 * domain.deleted), a new row joins to (which gets domain.created); both carry
 * "reason":"rebind". Verification and certificate state carry over;
 * metadata becomes metadata, or {} — never the old tenant's. */
int api_ops_domain_rebind(const api_ops_t *o, const store_domain_t *d, const store_project_t *to,
                          const char *metadata, size_t metadata_len, store_domain_t *out, api_ops_err_t *e);
int api_ops_domain_remove(const api_ops_t *o, const store_domain_t *d, store_domain_t *out, api_ops_err_t *e);

/* Renders the data object of a domain event: {"domain":{…}[,"reason":r]}. */
char *api_ops_event_data(const store_domain_t *d, const char *cname_target, const char *reason);

#endif
