/* api: the control API on the control thread (HTTP/1.1 by api_http) — the
 * router, bearer-token authentication (SHA-256 + constant-time compare, with
 * a small in-memory cache), per-token rate limiting, JSON bodies, JSON
 * errors, and batched usage/lastUsedAt writes. Resources live in api_*.c and
 * register their routes from api_new(); other subsystems (verification,
 * webhooks) add theirs with api_route() once api_new() has run.
 *
 * Ownership: api_t belongs to the control thread (api_new in subsys_start,
 * api_free in subsys_free). An api_req_t is created per request by the
 * router and freed by the reply call (api_reply_*, api_error*); a handler
 * either replies before returning or calls api_defer() and replies later
 * from the same loop. Everything api_req_t points to lives until then. */
#ifndef HEE_API_H
#define HEE_API_H

#include <event2/http.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/store_domain.h"
#include "common/store_project.h"
#include "control/api_ops.h"

struct control;
typedef struct api api_t;
typedef struct api_req api_req_t;

enum api_method {
    API_GET = 1u << 0,           /* also answers HEAD */
    API_POST = 1u << 1,
    API_PUT = 1u << 2,
    API_PATCH = 1u << 3,
    API_DELETE = 1u << 4,
};

/* Route flags. */
#define API_PUBLIC 0x100u        /* no token needed (scope ignored) */
#define API_BODY_JSON 0x200u     /* requires an application/json object body */
#define API_BODY_OPTIONAL 0x400u /* a JSON object body may be sent (empty allowed) */
#define API_NO_RATELIMIT 0x800u  /* exempt from the per-token rate limit */

#define API_MAX_PARAMS 4

/* What the token proves; valid for the request's life. */
typedef struct api_auth {
    const char *token_id;        /* "tok_…" */
    int64_t project_id;          /* 0 = operator token */
    const char *project_slug;    /* NULL for operator tokens */
    unsigned scopes;             /* enum api_scope bits (operators: all) */
    int admin;                   /* holds apps:admin */
} api_auth_t;

struct api_req {
    api_t *api;
    struct control *c;
    struct api_http_req *hreq;   /* the request as read (api_http.h) */
    unsigned method;             /* one enum api_method bit */
    const char *path;            /* raw path, no query */
    const char *param[API_MAX_PARAMS]; /* percent-decoded {name} segments, in order */
    int nparams;
    api_auth_t auth;
    json_t *body;                /* parsed object for BODY_JSON/OPTIONAL routes, else NULL */
    const char *body_raw;        /* the request body bytes (not NUL-terminated) */
    size_t body_len;
    void *arg;                   /* the route's arg */
    /* private */
    int _deferred, _done, _dispatching;
    char *_params_mem[API_MAX_PARAMS];
    struct evkeyvalq *_query;
    char _ref[32];
    int64_t _start_us;
    int _close;                  /* close the connection after the reply */
    int _uncounted;              /* /healthz, /readyz, /metrics: not API traffic */
    size_t _hdrs_len;
    char _hdrs[384];             /* extra reply header lines (api_reply_header) */
};

typedef void (*api_handler)(api_req_t *r);

api_t *api_new(struct control *c, char **err);
void api_free(api_t *a);
struct control *api_control(api_t *a);
/* Writes batched counters now (also done every few seconds and by api_free). */
void api_flush(api_t *a);
/* Before shutdown: commits and answers the registrations waiting in a
 * batch, lets go of the read-lock pin so that a checkpoint can finish, and
 * of the listener, which the control thread frees next. Requests on open
 * connections work as before. */
void api_quiesce(api_t *a);
/* Picks up a reloaded configuration (c->cfg): the body read limit. */
void api_reload(api_t *a);

/* Adds a route. pattern: literal segments and {name} captures, e.g.
 * "/v1/edge/domains/{hostname}/verify". methods: API_GET|API_POST…;
 * scope: the enum api_scope bit(s) all required (0 = any valid token);
 * flags: API_PUBLIC, API_BODY_JSON, API_BODY_OPTIONAL, API_NO_RATELIMIT.
 * The same pattern may be registered again with other methods; the router
 * answers 405 with Allow listing them all. 0 or -1. */
int api_route(api_t *a, unsigned methods, const char *pattern, unsigned scope, unsigned flags, api_handler fn,
              void *arg);

/* Adds a header line to the reply to come (Allow, Retry-After, …); a line
 * that does not fit in the request's small header space is dropped. */
void api_reply_header(api_req_t *r, const char *name, const char *value);

/* ---- replying (each ends the request and frees r) ---- */
/* Takes ownership of body. */
void api_reply_json(api_req_t *r, int status, json_t *body);
/* text: a complete JSON document (e.g. from domainobj_dumps); copied. */
void api_reply_json_text(api_req_t *r, int status, const char *text, size_t len);
void api_reply_raw(api_req_t *r, int status, const char *content_type, const void *data, size_t len);
/* 204 No Content. */
void api_reply_empty(api_req_t *r);
/* {"error":{"code","message","ref"}}; code is a seed code ("invalid", …). */
void api_error(api_req_t *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 500 internal with a generic message; what goes only to the log with the ref. */
void api_error_internal(api_req_t *r, const char *what);
void api_error_ops(api_req_t *r, const api_ops_err_t *e);
/* The handler will reply later (from the control loop). If the client goes
 * away meanwhile, the reply is dropped harmlessly. */
void api_defer(api_req_t *r);

/* ---- request helpers: on failure they reply (400/404) and return -1 ---- */
/* Query parameter (decoded) or NULL. */
const char *api_query(api_req_t *r, const char *name);
/* Refuses query parameters not listed (NULL-terminated). */
int api_query_allow(api_req_t *r, const char *const *allowed);
/* Refuses body fields not listed (NULL-terminated). */
int api_body_allow(api_req_t *r, const char *const *allowed);
/* Typed body fields: absent → *out untouched and 0 (400 if required); a
 * wrong type (JSON null included) → 400. For nullable fields read r->body
 * with jansson directly. */
int api_body_str(api_req_t *r, const char *key, int required, const char **out);
int api_body_int(api_req_t *r, const char *key, int required, int64_t min, int64_t max, int64_t *out, int *present);
int api_body_bool(api_req_t *r, const char *key, int required, int *out);
/* The exact bytes of top-level member key's value in the request body. */
int api_body_raw_member(api_req_t *r, const char *key, const char **start, size_t *len);
/* ?limit= (1..max, default dflt) and ?cursor= (a decimal id) */
int api_page(api_req_t *r, int dflt, int max, int *limit, int64_t *cursor);
int api_page_limit(api_req_t *r, int dflt, int max, int *limit);

/* The project a request acts on: the token's own, or for operator tokens
 * the one named slug (required → 400 when missing; not required → *out
 * zeroed, id 0 meaning "every project"). A project token naming another
 * slug, and deleted projects, are 404. */
int api_project(api_req_t *r, const char *slug, int required, store_project_t *out);
/* The domain named by path parameter idx (normalised) that the caller may
 * see: the active row, or with latest=1 the most recent one. 404 otherwise. */
int api_domain(api_req_t *r, int idx, int latest, store_domain_t *out);
/* Operation context for api_ops_* calls made on behalf of r. */
api_ops_t api_ops_for(api_req_t *r);

/* The OpenAPI document (NULL when it could not be read at start). */
const char *api_openapi(api_t *a, size_t *len);

/* Drops cached tokens (after a revocation); project_id > 0 drops that
 * project's, token_id names one, both 0/NULL drop everything. */
void api_tokens_invalidate(api_t *a, int64_t project_id, const char *token_id);

/* Resource registration (api_*.c). */
int api_projects_init(api_t *a);
int api_tokens_init(api_t *a);
/* /v1/edge/domains (api_domains.c); NULL on failure. Registrations wait in
 * a batch for one commit; _flush commits and answers them now (api_quiesce
 * and api_free do). */
struct api_domains *api_domains_init(api_t *a);
void api_domains_flush(struct api_domains *ad);
void api_domains_free(struct api_domains *ad);
int api_misc_init(api_t *a);     /* usage, audit, openapi */
/* GET /v1/edge/resolve (api_resolve.c), with the read-lock pin its lookups
 * share; NULL on failure. _quiesce lets go of the pin (api_quiesce does);
 * api_free frees it. */
struct api_resolve *api_resolve_init(api_t *a);
void api_resolve_quiesce(struct api_resolve *rv);
void api_resolve_free(struct api_resolve *rv);

#endif
