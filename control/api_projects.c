/* api_projects: /v1/projects — operator-only (apps:admin) management of
 * tenants: create, list, show, update, delete. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "control/api.h"
#include "control/ctl.h"

#define FREE_TIER_DOMAINS 50
#define MAX_DOMAINS_LIMIT 1000000000

static json_t *iso(int64_t ms)
{
    char ts[32];
    return ms ? json_string(util_iso8601(ms, ts, sizeof(ts))) : json_null();
}

/* with_key: include the HMAC key the upstream verifies tenant headers with. */
static json_t *project_json(const store_project_t *p, int with_key)
{
    json_t *settings = json_loads(p->settings, 0, NULL);
    json_t *o = json_pack("{s:s,s:s,s:s?,s:I,s:I,s:o,s:o,s:o}", "slug", p->slug, "upstream", p->upstream,
                          "upstreamFallback", p->upstream_fallback, "maxDomains", (json_int_t)p->max_domains,
                          "activeDomains", (json_int_t)p->active_domains, "settings",
                          settings ? settings : json_object(), "createdAt", iso(p->created_at), "updatedAt",
                          iso(p->updated_at));
    if (o && with_key) {
        char *k = util_b64(p->hmac_key, sizeof(p->hmac_key), 1);
        if (!k || json_object_set_new(o, "hmacKey", json_string(k)) != 0) {
            json_decref(o);
            o = NULL;
        }
        free(k);
    }
    return o;
}

static void reply_project(api_req_t *r, int status, const store_project_t *p, int with_key)
{
    json_t *o = project_json(p, with_key);
    if (!o) {
        api_error_internal(r, "cannot render the project");
        return;
    }
    api_reply_header(r, "Cache-Control", "no-store");
    api_reply_json(r, status, json_pack("{s:o}", "project", o));
}

/* upstreamFallback: absent (untouched), null (cleared) or a string. */
static int body_fallback(api_req_t *r, store_project_t *p)
{
    json_t *v = json_object_get(r->body, "upstreamFallback");
    if (!v)
        return 0;
    if (!json_is_null(v) && !json_is_string(v))
        return api_error(r, 400, "invalid", "%s", "field 'upstreamFallback' must be a string or null"), -1;
    char *dup = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    if (json_is_string(v) && !dup)
        return api_error_internal(r, "out of memory"), -1;
    free(p->upstream_fallback);
    p->upstream_fallback = dup;
    return 0;
}

static int body_settings(api_req_t *r, store_project_t *p)
{
    json_t *v = json_object_get(r->body, "settings");
    if (!v)
        return 0;
    api_ops_err_t e;
    char *text = api_ops_settings_text(v, &e);
    if (!text)
        return api_error_ops(r, &e), -1;
    free(p->settings);
    p->settings = text;
    return 0;
}

static int body_upstream(api_req_t *r, store_project_t *p, int required)
{
    const char *up = NULL;
    if (api_body_str(r, "upstream", required, &up) != 0)
        return -1;
    if (up) {
        char *dup = strdup(up);
        if (!dup)
            return api_error_internal(r, "out of memory"), -1;
        free(p->upstream);
        p->upstream = dup;
    }
    return 0;
}

static void on_create(api_req_t *r)
{
    static const char *const fields[] = { "slug", "upstream", "upstreamFallback", "maxDomains", "settings", NULL };
    store_project_t p = { .max_domains = FREE_TIER_DOMAINS };
    const char *slug = NULL;
    api_ops_err_t e;
    if (api_body_allow(r, fields) != 0 || api_body_str(r, "slug", 1, &slug) != 0 || body_upstream(r, &p, 1) != 0 ||
        body_fallback(r, &p) != 0 ||
        api_body_int(r, "maxDomains", 0, 0, MAX_DOMAINS_LIMIT, &p.max_domains, NULL) != 0 ||
        body_settings(r, &p) != 0)
        goto out;
    if (!p.settings && !(p.settings = strdup("{}"))) {
        api_error_internal(r, "out of memory");
        goto out;
    }
    if (!(p.slug = strdup(slug))) {
        api_error_internal(r, "out of memory");
        goto out;
    }
    api_ops_t o = api_ops_for(r);
    if (api_ops_project_create(&o, &p, &e) != 0) {
        api_error_ops(r, &e);
        goto out;
    }
    reply_project(r, 201, &p, 1);
out:
    store_project_clear(&p);
}

struct list_ctx {
    json_t *arr;
    int64_t last_id;
    int n;
};

static int list_one(const store_project_t *p, void *arg)
{
    struct list_ctx *lc = arg;
    json_array_append_new(lc->arr, project_json(p, 0));
    lc->last_id = p->id;
    lc->n++;
    return 0;
}

static void on_list(api_req_t *r)
{
    static const char *const params[] = { "limit", "cursor", NULL };
    int limit;
    int64_t cursor;
    if (api_query_allow(r, params) != 0 || api_page(r, 100, 1000, &limit, &cursor) != 0)
        return;
    struct list_ctx lc = { .arr = json_array() };
    if (!lc.arr || store_project_list(r->c->store, cursor, limit, list_one, &lc) != STORE_OK) {
        json_decref(lc.arr);
        api_error_internal(r, "cannot list projects");
        return;
    }
    char next[24];
    snprintf(next, sizeof(next), "%lld", (long long)lc.last_id);
    api_reply_json(r, 200, json_pack("{s:o,s:s?}", "projects", lc.arr, "nextCursor", lc.n == limit ? next : NULL));
}

static int load(api_req_t *r, store_project_t *p)
{
    int rc = store_project_by_slug(r->c->store, r->param[0], p);
    if (rc == STORE_NOTFOUND)
        return api_error(r, 404, "not_found", "%s", "no such project"), -1;
    if (rc != STORE_OK)
        return api_error_internal(r, "project lookup failed"), -1;
    return 0;
}

static void on_show(api_req_t *r)
{
    store_project_t p;
    if (api_query_allow(r, NULL) != 0 || load(r, &p) != 0)
        return;
    reply_project(r, 200, &p, 1);
    store_project_clear(&p);
}

static void on_update(api_req_t *r)
{
    static const char *const fields[] = { "upstream", "upstreamFallback", "maxDomains", "settings", NULL };
    store_project_t p;
    api_ops_err_t e;
    if (api_body_allow(r, fields) != 0)
        return;
    if (json_object_size(r->body) == 0) {
        api_error(r, 400, "invalid", "%s", "expected at least one of upstream, upstreamFallback, maxDomains, settings");
        return;
    }
    if (load(r, &p) != 0)
        return;
    if (body_upstream(r, &p, 0) != 0 || body_fallback(r, &p) != 0 ||
        api_body_int(r, "maxDomains", 0, 0, MAX_DOMAINS_LIMIT, &p.max_domains, NULL) != 0 ||
        body_settings(r, &p) != 0)
        goto out;
    api_ops_t o = api_ops_for(r);
    if (api_ops_project_update(&o, &p, &e) != 0) {
        api_error_ops(r, &e);
        goto out;
    }
    ctl_project_changed(r->c, p.id);
    store_project_clear(&p);
    if (load(r, &p) == 0)
        reply_project(r, 200, &p, 0);
out:
    store_project_clear(&p);
}

static void on_delete(api_req_t *r)
{
    store_project_t p;
    api_ops_err_t e;
    if (api_query_allow(r, NULL) != 0 || load(r, &p) != 0)
        return;
    api_ops_t o = api_ops_for(r);
    if (api_ops_project_delete(&o, &p, &e) != 0) {
        api_error_ops(r, &e);
    } else {
        api_tokens_invalidate(r->api, p.id, NULL);
        ctl_project_changed(r->c, p.id);
        api_reply_empty(r);
    }
    store_project_clear(&p);
}

int api_projects_init(api_t *a)
{
    int rc = 0;
    rc |= api_route(a, API_POST, "/v1/projects", API_SCOPE_APPS_ADMIN, API_BODY_JSON, on_create, NULL);
    rc |= api_route(a, API_GET, "/v1/projects", API_SCOPE_APPS_ADMIN, 0, on_list, NULL);
    rc |= api_route(a, API_GET, "/v1/projects/{slug}", API_SCOPE_APPS_ADMIN, 0, on_show, NULL);
    rc |= api_route(a, API_PATCH, "/v1/projects/{slug}", API_SCOPE_APPS_ADMIN, API_BODY_JSON, on_update, NULL);
    rc |= api_route(a, API_DELETE, "/v1/projects/{slug}", API_SCOPE_APPS_ADMIN, 0, on_delete, NULL);
    return rc;
}
