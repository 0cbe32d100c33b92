/* api_hooks: the webhook half of the control API —
 *   /v1/webhook-endpoints[/{id}[/rotate-secret|revoke-old-secret|test|
 *                               recover|dead-letters|attempts]]
 *   /v1/events[/{id}[/redeliver]]
 * Writing needs webhooks:write, reading connections:read. An endpoint or
 * event of another project is 404, never 403. Event payloads are spliced
 * into responses byte for byte (they hold customer metadata verbatim). */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/store_audit.h"
#include "common/store_hook.h"
#include "common/util.h"
#include "control/api.h"
#include "control/bridge.h"
#include "control/ctl.h"
#include "control/hook_sign.h"
#include "control/hooks.h"

#define DESCRIPTION_MAX 512
#define LIST_MAX 100

/* ------------------------------------------------------------- helpers -- */

static json_t *iso(int64_t ms)
{
    char ts[32];
    return ms > 0 ? json_string(util_iso8601(ms, ts, sizeof(ts))) : json_null();
}

static int64_t project_scope(const api_req_t *r)
{
    return r->auth.admin ? 0 : r->auth.project_id;
}

/* The endpoint object; secret only when given (creation, rotation). */
static json_t *endpoint_json(const store_hook_endpoint_t *e, const char *secret, int64_t now)
{
    json_t *events = json_loads(e->events, 0, NULL);
    json_t *o = json_object();
    if (!o || !events)
        goto fail;
    int bad = json_object_set_new(o, "id", json_string(e->id));
    bad |= json_object_set_new(o, "projectSlug", json_string(e->project_slug));
    bad |= json_object_set_new(o, "url", json_string(e->url));
    if (secret)
        bad |= json_object_set_new(o, "secret", json_string(secret));
    bad |= json_object_set_new(o, "events", events);
    events = NULL;
    bad |= json_object_set_new(o, "description", json_string(e->description));
    bad |= json_object_set_new(o, "ordered", json_boolean(e->ordered));
    bad |= json_object_set_new(o, "disabled", json_boolean(e->disabled));
    bad |= json_object_set_new(o, "disabledReason", e->disabled_reason ? json_string(e->disabled_reason) : json_null());
    bad |= json_object_set_new(o, "failingSince", iso(e->failing_since));
    bad |= json_object_set_new(o, "warnedAt", iso(e->warned_at));
    int rotating = e->old_secret && e->old_secret_until > now;
    bad |= json_object_set_new(o, "previousSecretExpiresAt", iso(rotating ? e->old_secret_until : 0));
    bad |= json_object_set_new(o, "createdAt", iso(e->created_at));
    bad |= json_object_set_new(o, "updatedAt", iso(e->updated_at));
    if (bad)
        goto fail;
    return o;
fail:
    json_decref(events);
    json_decref(o);
    return NULL;
}

static void reply_endpoint(api_req_t *r, int status, const store_hook_endpoint_t *e, const char *secret,
                           json_t *extra)
{
    json_t *root = json_object();
    json_t *o = endpoint_json(e, secret, util_now_ms());
    if (!root || !o || json_object_set_new(root, "endpoint", o) != 0) {
        json_decref(o);
        json_decref(root);
        json_decref(extra);
        api_error_internal(r, "cannot render the endpoint");
        return;
    }
    if (extra && json_object_update(root, extra) != 0) {
        json_decref(extra);
        json_decref(root);
        api_error_internal(r, "cannot render the endpoint");
        return;
    }
    json_decref(extra);
    api_reply_json(r, status, root);
}

/* The endpoint named by path parameter 0, if the caller may see it. */
static int load_endpoint(api_req_t *r, store_hook_endpoint_t *e)
{
    int rc = store_hook_endpoint_get(r->c->store, r->param[0], project_scope(r), e);
    if (rc == STORE_NOTFOUND)
        return api_error(r, 404, "not_found", "%s", "no such webhook endpoint"), -1;
    if (rc != STORE_OK)
        return api_error_internal(r, "endpoint lookup failed"), -1;
    return 0;
}

/* events: a JSON array of known type names → canonical text (malloc'd). */
static char *events_text(api_req_t *r, const json_t *v)
{
    if (!json_is_array(v))
        return api_error(r, 400, "invalid", "%s", "field 'events' must be an array of event types"), NULL;
    json_t *out = json_array();
    size_t i;
    json_t *t;
    if (!out)
        return api_error_internal(r, "out of memory"), NULL;
    json_array_foreach(v, i, t) {
        const char *name = json_string_value(t);
        if (!name || !hooks_event_type_known(name)) {
            json_decref(out);
            return api_error(r, 400, "invalid", "unknown event type '%.64s' (see GET /v1/openapi.yaml or "
                                                "docs/webhooks.md for the list)",
                             name ? name : "(not a string)"),
                   NULL;
        }
        int dup = 0;
        size_t k;
        json_t *seen;
        json_array_foreach(out, k, seen)
            dup |= strcmp(json_string_value(seen), name) == 0;
        if (!dup && json_array_append_new(out, json_string(name)) != 0) {
            json_decref(out);
            return api_error_internal(r, "out of memory"), NULL;
        }
    }
    char *text = json_dumps(out, JSON_COMPACT);
    json_decref(out);
    if (!text)
        api_error_internal(r, "out of memory");
    return text;
}

static int check_description(api_req_t *r, const char *d)
{
    if (d && strlen(d) > DESCRIPTION_MAX)
        return api_error(r, 400, "invalid", "description is longer than %d bytes", DESCRIPTION_MAX), -1;
    return 0;
}

static int check_url(api_req_t *r, const char *url)
{
    char why[160];
    if (hooks_check_url(r->c->cfg, url, why, sizeof(why)) != 0)
        return api_error(r, 400, "invalid", "%s", why), -1;
    return 0;
}

static int audit(api_req_t *r, int64_t project_id, const char *action, const char *target, json_t *detail)
{
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    json_decref(detail);
    int rc = store_audit_add(r->c->store, project_id, r->auth.token_id, action, target, text, util_now_ms());
    free(text);
    return rc;
}

/* Ends a transaction started by a handler; replies 500 on failure. */
static int commit(api_req_t *r)
{
    if (store_commit(r->c->store) != STORE_OK)
        return api_error_internal(r, "commit failed"), -1;
    return 0;
}

static void rollback_internal(api_req_t *r, const char *what)
{
    store_rollback(r->c->store);
    api_error_internal(r, what);
}

/* ------------------------------------------------------------ endpoints -- */

static void on_create(api_req_t *r)
{
    static const char *const fields[] = { "url", "events", "description", "ordered", "projectSlug", NULL };
    const char *url = NULL, *desc = "", *slug = NULL;
    int ordered = 1;
    char *events = NULL, *secret = NULL, *id = NULL;
    store_project_t p = { 0 };
    store_hook_endpoint_t e = { 0 };
    json_t *ev = json_object_get(r->body, "events");
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, fields) != 0 || api_body_str(r, "url", 1, &url) != 0 ||
        api_body_str(r, "description", 0, &desc) != 0 || api_body_bool(r, "ordered", 0, &ordered) != 0 ||
        api_body_str(r, "projectSlug", 0, &slug) != 0 || check_url(r, url) != 0 || check_description(r, desc) != 0)
        goto out;
    if (!(events = ev ? events_text(r, ev) : strdup("[]"))) {
        if (!ev)
            api_error_internal(r, "out of memory");
        goto out;
    }
    if (api_project(r, slug, 1, &p) != 0)
        goto out;
    if (!(secret = hook_sign_new_secret()) || !(id = util_random_id("whe_", 16))) {
        api_error_internal(r, "cannot generate the endpoint id or secret");
        goto out;
    }
    store_hook_endpoint_t in = { .id = id, .project_id = p.id, .url = (char *)url, .secret = secret,
                                 .events = events, .description = (char *)desc, .ordered = ordered,
                                 .created_at = util_now_ms() };
    store_t *s = r->c->store;
    if (store_begin(s) != STORE_OK) {
        api_error_internal(r, "begin failed");
        goto out;
    }
    if (store_hook_endpoint_insert(s, &in) != STORE_OK ||
        audit(r, p.id, "webhook_endpoint.create", id, json_pack("{s:s}", "events", events)) != STORE_OK) {
        rollback_internal(r, "cannot store the endpoint");
        goto out;
    }
    if (commit(r) != 0)
        goto out;
    if (store_hook_endpoint_get(s, id, 0, &e) != STORE_OK) {
        api_error_internal(r, "cannot read the endpoint back");
        goto out;
    }
    log_info("hook.endpoint_created", "endpoint=%s project=%s", id, p.slug);
    reply_endpoint(r, 201, &e, secret, NULL);
out:
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
    free(id);
    free(events);
    store_project_clear(&p);
    store_hook_endpoint_clear(&e);
}

struct list_ctx {
    json_t *items;
    int64_t now;
    int n;
    char last[48];
    int bad;
};

static int list_one(const store_hook_endpoint_t *e, void *arg)
{
    struct list_ctx *x = arg;
    json_t *o = endpoint_json(e, NULL, x->now);
    if (!o || json_array_append_new(x->items, o) != 0)
        return x->bad = 1;
    snprintf(x->last, sizeof(x->last), "%s", e->id);
    x->n++;
    return 0;
}

static int query_limit(api_req_t *r, int *limit)
{
    const char *l = api_query(r, "limit");
    char *end = NULL;
    long v = l ? strtol(l, &end, 10) : 50;
    if (l && (!*l || *end || v < 1 || v > LIST_MAX))
        return api_error(r, 400, "invalid", "limit must be an integer from 1 to %d", LIST_MAX), -1;
    *limit = (int)v;
    return 0;
}

static void on_list(api_req_t *r)
{
    static const char *const q[] = { "limit", "after", "projectSlug", NULL };
    store_project_t p = { 0 };
    int limit;
    if (api_query_allow(r, q) != 0 || query_limit(r, &limit) != 0 ||
        api_project(r, api_query(r, "projectSlug"), 0, &p) != 0)
        return;
    struct list_ctx x = { .items = json_array(), .now = util_now_ms() };
    int rc = x.items ? store_hook_endpoint_list(r->c->store, p.id, api_query(r, "after"), limit, list_one, &x)
                     : STORE_ERR;
    store_project_clear(&p);
    if (rc != STORE_OK || x.bad) {
        json_decref(x.items);
        api_error_internal(r, "cannot list endpoints");
        return;
    }
    api_reply_json(r, 200, json_pack("{s:o,s:o}", "endpoints", x.items, "nextCursor",
                                     x.n == limit ? json_string(x.last) : json_null()));
}

static void on_show(api_req_t *r)
{
    store_hook_endpoint_t e;
    if (api_query_allow(r, NULL) != 0 || load_endpoint(r, &e) != 0)
        return;
    reply_endpoint(r, 200, &e, NULL, NULL);
    store_hook_endpoint_clear(&e);
}

/* PATCH: url, events, description, ordered, disabled. Re-enabling replays
 * what the endpoint missed while it was disabled. */
static void on_update(api_req_t *r)
{
    static const char *const fields[] = { "url", "events", "description", "ordered", "disabled", NULL };
    store_hook_endpoint_t e = { 0 }, after = { 0 };
    const char *url = NULL, *desc = NULL;
    int ordered = -1, disabled = -1;
    char *events = NULL;
    int64_t replayed = 0, now = util_now_ms();
    json_t *ev = json_object_get(r->body, "events");
    store_t *s = r->c->store;
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, fields) != 0 || api_body_str(r, "url", 0, &url) != 0 ||
        api_body_str(r, "description", 0, &desc) != 0 || api_body_bool(r, "ordered", 0, &ordered) != 0 ||
        api_body_bool(r, "disabled", 0, &disabled) != 0 || (url && check_url(r, url) != 0) ||
        check_description(r, desc) != 0 || (ev && !(events = events_text(r, ev))) || load_endpoint(r, &e) != 0)
        goto out;
    store_hook_endpoint_t upd = e;
    upd.url = url ? (char *)url : e.url;
    upd.description = desc ? (char *)desc : e.description;
    upd.events = events ? events : e.events;
    upd.ordered = ordered >= 0 ? ordered : e.ordered;
    if (store_begin(s) != STORE_OK) {
        api_error_internal(r, "begin failed");
        goto out;
    }
    int rc = store_hook_endpoint_update(s, &upd, now);
    if (rc == STORE_OK && disabled == 1 && !e.disabled)
        rc = store_hook_endpoint_disable(s, e.id, "manual", now);
    if (rc == STORE_OK && disabled == 0 && e.disabled)
        rc = store_hook_endpoint_enable(s, e.id, 0, now, &replayed);
    if (rc == STORE_OK && upd.ordered != e.ordered && !upd.ordered)
        rc = store_hook_unpark(s, e.id, now);
    json_t *detail = json_object();
    if (detail) {
        json_object_set_new(detail, "fields", json_copy(r->body));
        json_object_del(json_object_get(detail, "fields"), "url"); /* may carry credentials */
    }
    if (rc == STORE_OK)
        rc = audit(r, e.project_id, "webhook_endpoint.update", e.id, detail);
    else
        json_decref(detail);
    if (rc != STORE_OK) {
        rollback_internal(r, "cannot update the endpoint");
        goto out;
    }
    if (commit(r) != 0)
        goto out;
    /* Queues change shape only when deliveries were parked or released. */
    if ((disabled >= 0 && disabled != e.disabled) || upd.ordered != e.ordered)
        bridge_hooks_changed(r->c);
    if (disabled == 0 && e.disabled)
        log_info("hook.endpoint_enabled", "endpoint=%s replayed=%lld", e.id, (long long)replayed);
    if (store_hook_endpoint_get(s, e.id, 0, &after) != STORE_OK) {
        api_error_internal(r, "cannot read the endpoint back");
        goto out;
    }
    reply_endpoint(r, 200, &after, NULL,
                   disabled == 0 && e.disabled ? json_pack("{s:I}", "replayed", (json_int_t)replayed) : NULL);
out:
    free(events);
    store_hook_endpoint_clear(&e);
    store_hook_endpoint_clear(&after);
}

static void on_delete(api_req_t *r)
{
    store_hook_endpoint_t e;
    store_t *s = r->c->store;
    if (api_query_allow(r, NULL) != 0 || load_endpoint(r, &e) != 0)
        return;
    if (store_begin(s) != STORE_OK) {
        api_error_internal(r, "begin failed");
    } else if (store_hook_endpoint_delete(s, e.id, util_now_ms()) != STORE_OK ||
               audit(r, e.project_id, "webhook_endpoint.delete", e.id, NULL) != STORE_OK) {
        rollback_internal(r, "cannot delete the endpoint");
    } else if (commit(r) == 0) {
        bridge_hooks_changed(r->c);
        log_info("hook.endpoint_deleted", "endpoint=%s", e.id);
        api_reply_empty(r);
    }
    store_hook_endpoint_clear(&e);
}

/* rotate-secret (new secret, the old one keeps signing for secret_overlap)
 * and revoke-old-secret (stop signing with the old one now). */
static void set_secrets(api_req_t *r, int rotate)
{
    store_hook_endpoint_t e = { 0 }, after = { 0 };
    char *secret = NULL;
    int64_t now = util_now_ms(), overlap = (int64_t)r->c->cfg->hook_secret_overlap_s * 1000;
    store_t *s = r->c->store;
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, (const char *const[]){ NULL }) != 0 ||
        load_endpoint(r, &e) != 0)
        goto out;
    if (rotate && !(secret = hook_sign_new_secret())) {
        api_error_internal(r, "cannot generate a secret");
        goto out;
    }
    const char *next = rotate ? secret : e.secret;
    const char *old = rotate && overlap > 0 ? e.secret : NULL;
    if (store_begin(s) != STORE_OK) {
        api_error_internal(r, "begin failed");
        goto out;
    }
    if (store_hook_endpoint_set_secrets(s, e.id, next, old, now + overlap, now) != STORE_OK ||
        audit(r, e.project_id, rotate ? "webhook_endpoint.rotate_secret" : "webhook_endpoint.revoke_old_secret",
              e.id, NULL) != STORE_OK) {
        rollback_internal(r, "cannot store the secret");
        goto out;
    }
    if (commit(r) != 0)
        goto out;
    if (store_hook_endpoint_get(s, e.id, 0, &after) != STORE_OK) {
        api_error_internal(r, "cannot read the endpoint back");
        goto out;
    }
    log_info(rotate ? "hook.secret_rotated" : "hook.old_secret_revoked", "endpoint=%s", e.id);
    reply_endpoint(r, 200, &after, secret, NULL);
out:
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
    store_hook_endpoint_clear(&e);
    store_hook_endpoint_clear(&after);
}

static void on_rotate(api_req_t *r)
{
    set_secrets(r, 1);
}

static void on_revoke_old(api_req_t *r)
{
    set_secrets(r, 0);
}

static void on_test_done(int rc, const hooks_test_result_t *t, void *arg)
{
    api_req_t *r = arg;
    if (rc == STORE_NOTFOUND) {
        api_error(r, 404, "not_found", "%s", "no such webhook endpoint");
        return;
    }
    if (!t) {
        api_error(r, 503, "unavailable", "%s", "the test send was interrupted (shutting down); try again");
        return;
    }
    json_t *o = json_pack("{s:s,s:b,s:i,s:I,s:o,s:s}", "eventId", t->event_id, "delivered", t->delivered,
                          "statusCode", t->status_code, "latencyMs", (json_int_t)t->latency_ms, "error",
                          t->error ? json_string(t->error) : json_null(), "response", t->response ? t->response : "");
    api_reply_json(r, 200, o ? json_pack("{s:o}", "test", o) : NULL);
}

/* Sends an example event at once (not stored, not retried, not logged as an
 * attempt) and answers with what the endpoint said. */
static void on_test(api_req_t *r)
{
    static const char *const fields[] = { "type", NULL };
    const char *type = "domain.created";
    store_hook_endpoint_t e;
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, fields) != 0 || api_body_str(r, "type", 0, &type) != 0)
        return;
    if (!hooks_event_type_known(type)) {
        api_error(r, 400, "invalid", "unknown event type '%.64s'", type);
        return;
    }
    if (load_endpoint(r, &e) != 0)
        return;
    int rc = bridge_hook_test(r->c, e.id, e.project_id, type, on_test_done, r);
    store_hook_endpoint_clear(&e);
    if (rc == STORE_NOTFOUND)
        api_error(r, 404, "not_found", "%s", "no such webhook endpoint");
    else if (rc != 0)
        api_error_internal(r, "cannot start the test request");
    else
        api_defer(r);
}

static int body_time(api_req_t *r, const char *key, int required, int64_t *ms)
{
    const char *v = NULL;
    if (api_body_str(r, key, required, &v) != 0)
        return -1;
    if (v && util_parse_iso8601(v, ms) != 0)
        return api_error(r, 400, "invalid", "field '%s' must be an RFC 3339 time", key), -1;
    return 0;
}

/* recover {since, until?}: queue again what the endpoint did not receive. */
static void on_recover(api_req_t *r)
{
    static const char *const fields[] = { "since", "until", NULL };
    int64_t now = util_now_ms(), since = 0, until = now + 1, n = 0;
    store_hook_endpoint_t e;
    store_t *s = r->c->store;
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, fields) != 0 || body_time(r, "since", 1, &since) != 0 ||
        body_time(r, "until", 0, &until) != 0)
        return;
    if (since >= until) {
        api_error(r, 400, "invalid", "%s", "since must be before until");
        return;
    }
    if (load_endpoint(r, &e) != 0)
        return;
    if (store_begin(s) != STORE_OK) {
        api_error_internal(r, "begin failed");
    } else if (store_hook_recover(s, &e, since, until, now, &n) != STORE_OK ||
               audit(r, e.project_id, "webhook_endpoint.recover", e.id,
                     json_pack("{s:I,s:I,s:I}", "since", (json_int_t)since, "until", (json_int_t)until, "queued",
                               (json_int_t)n)) != STORE_OK) {
        rollback_internal(r, "cannot queue the recovery");
    } else if (commit(r) == 0) {
        bridge_hooks_kick(r->c); /* the due walk meets the requeued ones */
        log_info("hook.recover", "endpoint=%s queued=%lld", e.id, (long long)n);
        api_reply_json(r, 202, json_pack("{s:s,s:I}", "endpointId", e.id, "queued", (json_int_t)n));
    }
    store_hook_endpoint_clear(&e);
}

static json_t *delivery_json(const store_hook_delivery_t *d)
{
    int64_t next = d->next_attempt_at == STORE_HOOK_PARKED ? 0 : d->next_attempt_at;
    return json_pack("{s:I,s:s,s:s,s:s,s:o,s:s,s:i,s:o,s:o,s:o,s:o,s:o}", "deliveryId", (json_int_t)d->id,
                     "endpointId", d->endpoint_id, "eventId", d->event_public_id, "type", d->event_type,
                     "eventCreatedAt", iso(d->event_created_at), "status", d->status, "attempts", (int)d->attempts,
                     "waiting", json_boolean(d->next_attempt_at == STORE_HOOK_PARKED), "nextAttemptAt", iso(next),
                     "lastAttemptAt", iso(d->last_attempt_at), "lastStatusCode",
                     d->last_status_code >= 0 ? json_integer(d->last_status_code) : json_null(), "lastError",
                     d->last_error ? json_string(d->last_error) : json_null());
}

struct dlv_ctx {
    json_t *items;
    int64_t last;
    int n, bad;
};

static int dlv_one(const store_hook_delivery_t *d, void *arg)
{
    struct dlv_ctx *x = arg;
    json_t *o = delivery_json(d);
    if (!o || json_array_append_new(x->items, o) != 0)
        return x->bad = 1;
    x->last = d->id;
    x->n++;
    return 0;
}

static json_t *cursor_json(int full, int64_t last)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", (long long)last);
    return full ? json_string(buf) : json_null();
}

static void on_dead_letters(api_req_t *r)
{
    static const char *const q[] = { "limit", "cursor", NULL };
    store_hook_endpoint_t e;
    int limit;
    int64_t cursor;
    if (api_query_allow(r, q) != 0 || api_page(r, 50, LIST_MAX, &limit, &cursor) != 0 || load_endpoint(r, &e) != 0)
        return;
    struct dlv_ctx x = { .items = json_array() };
    int rc = x.items ? store_hook_dead_letters(r->c->store, e.id, cursor, limit, dlv_one, &x) : STORE_ERR;
    store_hook_endpoint_clear(&e);
    if (rc != STORE_OK || x.bad) {
        json_decref(x.items);
        api_error_internal(r, "cannot list dead letters");
        return;
    }
    api_reply_json(r, 200, json_pack("{s:o,s:o}", "deadLetters", x.items, "nextCursor", cursor_json(x.n == limit, x.last)));
}

struct att_ctx {
    json_t *items;
    int64_t last;
    int n, bad;
};

static int att_one(const store_hook_attempt_row_t *a, void *arg)
{
    struct att_ctx *x = arg;
    json_t *o = json_pack("{s:I,s:I,s:s,s:s,s:o,s:o,s:I,s:o,s:o}", "id", (json_int_t)a->id, "deliveryId",
                          (json_int_t)a->delivery_id, "eventId", a->event_public_id, "type", a->event_type, "at",
                          iso(a->at), "statusCode", a->status_code ? json_integer(a->status_code) : json_null(),
                          "latencyMs", (json_int_t)a->latency_ms, "error",
                          a->error ? json_string(a->error) : json_null(), "response",
                          a->response ? json_string(a->response) : json_string(""));
    if (!o || json_array_append_new(x->items, o) != 0)
        return x->bad = 1;
    x->last = a->id;
    x->n++;
    return 0;
}

static void on_attempts(api_req_t *r)
{
    static const char *const q[] = { "limit", "cursor", NULL };
    store_hook_endpoint_t e;
    int limit;
    int64_t cursor;
    if (api_query_allow(r, q) != 0 || api_page(r, 50, LIST_MAX, &limit, &cursor) != 0 || load_endpoint(r, &e) != 0)
        return;
    struct att_ctx x = { .items = json_array() };
    int rc = x.items ? store_hook_attempt_list(r->c->store, e.id, cursor, limit, att_one, &x) : STORE_ERR;
    store_hook_endpoint_clear(&e);
    if (rc != STORE_OK || x.bad) {
        json_decref(x.items);
        api_error_internal(r, "cannot list attempts");
        return;
    }
    api_reply_json(r, 200, json_pack("{s:o,s:o}", "attempts", x.items, "nextCursor", cursor_json(x.n == limit, x.last)));
}

/* --------------------------------------------------------------- events -- */

/* The event named by path parameter 0, if the caller may see it. */
static int load_event(api_req_t *r, store_hook_event_t *ev)
{
    int rc = store_hook_event_get(r->c->store, r->param[0], ev);
    if (rc == STORE_OK && !r->auth.admin && ev->project_id != r->auth.project_id) {
        store_hook_event_clear(ev);
        rc = STORE_NOTFOUND;
    }
    if (rc == STORE_NOTFOUND)
        return api_error(r, 404, "not_found", "%s", "no such event"), -1;
    if (rc != STORE_OK)
        return api_error_internal(r, "event lookup failed"), -1;
    return 0;
}

struct ev_ctx {
    struct evbuffer *out;
    char last[64];
    int n, bad;
};

static int ev_one(const store_hook_event_t *e, void *arg)
{
    struct ev_ctx *x = arg;
    if (evbuffer_add_printf(x->out, "%s%s", x->n ? "," : "", e->payload) < 0)
        return x->bad = 1;
    snprintf(x->last, sizeof(x->last), "%s", e->public_id);
    x->n++;
    return 0;
}

/* ?type=a,b → a JSON array text of known types (malloc'd), NULL for none. */
static int types_filter(api_req_t *r, char **out)
{
    const char *t = api_query(r, "type");
    *out = NULL;
    if (!t || !*t)
        return 0;
    json_t *a = json_array();
    for (const char *p = t; a && *p;) {
        size_t n = strcspn(p, ",");
        char name[64];
        if (n == 0 || n >= sizeof(name)) {
            json_decref(a);
            return api_error(r, 400, "invalid", "%s", "type must be a comma-separated list of event types"), -1;
        }
        memcpy(name, p, n);
        name[n] = '\0';
        if (!hooks_event_type_known(name)) {
            json_decref(a);
            return api_error(r, 400, "invalid", "unknown event type '%s'", name), -1;
        }
        json_array_append_new(a, json_string(name));
        p += n + (p[n] == ',');
    }
    if (!a || !(*out = json_dumps(a, JSON_COMPACT))) {
        json_decref(a);
        return api_error_internal(r, "out of memory"), -1;
    }
    json_decref(a);
    return 0;
}

static void on_events(api_req_t *r)
{
    static const char *const q[] = { "limit", "after", "type", "projectSlug", NULL };
    store_project_t p = { 0 };
    store_hook_event_t after = { 0 };
    char *types = NULL;
    int limit;
    const char *a;
    struct ev_ctx x = { 0 };
    if (api_query_allow(r, q) != 0 || query_limit(r, &limit) != 0 || types_filter(r, &types) != 0 ||
        api_project(r, api_query(r, "projectSlug"), 0, &p) != 0)
        goto out;
    if ((a = api_query(r, "after")) && *a) {
        int rc = store_hook_event_get(r->c->store, a, &after);
        if (rc == STORE_OK && p.id && after.project_id != p.id)
            rc = STORE_NOTFOUND;
        if (rc != STORE_OK) {
            if (rc == STORE_NOTFOUND)
                api_error(r, 400, "invalid", "%s", "after must be an event id from this project");
            else
                api_error_internal(r, "event lookup failed");
            goto out;
        }
    }
    int64_t since = util_now_ms() - (int64_t)r->c->cfg->hook_max_age_s * 1000;
    if (!(x.out = evbuffer_new()) || evbuffer_add_printf(x.out, "{\"events\":[") < 0 ||
        store_hook_event_list(r->c->store, p.id, after.id, since, types, limit, ev_one, &x) != STORE_OK || x.bad) {
        api_error_internal(r, "cannot list events");
        goto out;
    }
    if (x.n == limit)
        evbuffer_add_printf(x.out, "],\"nextCursor\":\"%s\"}", x.last);
    else
        evbuffer_add_printf(x.out, "],\"nextCursor\":null}");
    size_t len = evbuffer_get_length(x.out);
    api_reply_json_text(r, 200, (const char *)evbuffer_pullup(x.out, -1), len);
out:
    if (x.out)
        evbuffer_free(x.out);
    free(types);
    store_project_clear(&p);
    store_hook_event_clear(&after);
}

static int dlv_collect(api_req_t *r, int64_t event_id, json_t **items)
{
    struct dlv_ctx x = { .items = json_array() };
    int rc = x.items ? store_hook_event_deliveries(r->c->store, event_id, dlv_one, &x) : STORE_ERR;
    if (rc != STORE_OK || x.bad) {
        json_decref(x.items);
        return -1;
    }
    *items = x.items;
    return 0;
}

/* {"event":<payload verbatim>,"deliveries":[…]} plus extra members. */
static void reply_event(api_req_t *r, int status, const store_hook_event_t *ev, const char *extra)
{
    json_t *items = NULL;
    char *text = NULL;
    if (dlv_collect(r, ev->id, &items) != 0 || !(text = json_dumps(items, JSON_COMPACT))) {
        json_decref(items);
        api_error_internal(r, "cannot list deliveries");
        return;
    }
    json_decref(items);
    struct evbuffer *out = evbuffer_new();
    if (!out || evbuffer_add_printf(out, "{\"event\":%s,\"deliveries\":%s%s}", ev->payload, text, extra ? extra : "") < 0) {
        api_error_internal(r, "out of memory");
    } else {
        size_t len = evbuffer_get_length(out);
        api_reply_json_text(r, status, (const char *)evbuffer_pullup(out, -1), len);
    }
    if (out)
        evbuffer_free(out);
    free(text);
}

static void on_event(api_req_t *r)
{
    store_hook_event_t ev;
    if (api_query_allow(r, NULL) != 0 || load_event(r, &ev) != 0)
        return;
    reply_event(r, 200, &ev, NULL);
    store_hook_event_clear(&ev);
}

/* redeliver {endpointId?}: one endpoint, or every endpoint subscribed to the type. */
static void on_redeliver(api_req_t *r)
{
    static const char *const fields[] = { "endpointId", NULL };
    const char *ep = NULL;
    store_hook_event_t ev;
    store_hook_endpoint_t e = { 0 };
    store_t *s = r->c->store;
    int64_t n = 0;
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, fields) != 0 || api_body_str(r, "endpointId", 0, &ep) != 0 ||
        load_event(r, &ev) != 0)
        return;
    if (ep) {
        int rc = store_hook_endpoint_get(s, ep, ev.project_id, &e);
        if (rc != STORE_OK) {
            if (rc == STORE_NOTFOUND)
                api_error(r, 404, "not_found", "%s", "no such webhook endpoint in the event's project");
            else
                api_error_internal(r, "endpoint lookup failed");
            goto out;
        }
    }
    if (store_begin(s) != STORE_OK) {
        api_error_internal(r, "begin failed");
        goto out;
    }
    if (store_hook_redeliver(s, &ev, ep, util_now_ms(), &n) != STORE_OK ||
        audit(r, ev.project_id, "event.redeliver", ev.public_id,
              ep ? json_pack("{s:s}", "endpointId", ep) : NULL) != STORE_OK) {
        rollback_internal(r, "cannot queue the redelivery");
        goto out;
    }
    if (commit(r) != 0)
        goto out;
    bridge_hooks_kick(r->c);
    log_info("hook.redeliver", "event=%s endpoint=%s queued=%lld", ev.public_id, ep ? ep : "*", (long long)n);
    char extra[48];
    snprintf(extra, sizeof(extra), ",\"queued\":%lld", (long long)n);
    reply_event(r, 202, &ev, extra);
out:
    store_hook_event_clear(&ev);
    store_hook_endpoint_clear(&e);
}

/* ---------------------------------------------------------------- routes -- */

int hooks_api_init(struct api *a)
{
    const unsigned W = API_SCOPE_WEBHOOKS_WRITE, R = API_SCOPE_CONNECTIONS_READ;
    const char *ep = "/v1/webhook-endpoints/{id}";
    int rc = 0;
    if (!a)
        return -1;
    rc |= api_route(a, API_POST, "/v1/webhook-endpoints", W, API_BODY_JSON, on_create, NULL);
    rc |= api_route(a, API_GET, "/v1/webhook-endpoints", R, 0, on_list, NULL);
    rc |= api_route(a, API_GET, ep, R, 0, on_show, NULL);
    rc |= api_route(a, API_PATCH, ep, W, API_BODY_JSON, on_update, NULL);
    rc |= api_route(a, API_DELETE, ep, W, 0, on_delete, NULL);
    rc |= api_route(a, API_POST, "/v1/webhook-endpoints/{id}/rotate-secret", W, API_BODY_OPTIONAL, on_rotate, NULL);
    rc |= api_route(a, API_POST, "/v1/webhook-endpoints/{id}/revoke-old-secret", W, API_BODY_OPTIONAL, on_revoke_old,
                    NULL);
    rc |= api_route(a, API_POST, "/v1/webhook-endpoints/{id}/test", W, API_BODY_OPTIONAL, on_test, NULL);
    rc |= api_route(a, API_POST, "/v1/webhook-endpoints/{id}/recover", W, API_BODY_JSON, on_recover, NULL);
    rc |= api_route(a, API_GET, "/v1/webhook-endpoints/{id}/dead-letters", R, 0, on_dead_letters, NULL);
    rc |= api_route(a, API_GET, "/v1/webhook-endpoints/{id}/attempts", R, 0, on_attempts, NULL);
    rc |= api_route(a, API_GET, "/v1/events", R, 0, on_events, NULL);
    rc |= api_route(a, API_GET, "/v1/events/{id}", R, 0, on_event, NULL);
    rc |= api_route(a, API_POST, "/v1/events/{id}/redeliver", W, API_BODY_OPTIONAL, on_redeliver, NULL);
    return rc ? -1 : 0;
}
