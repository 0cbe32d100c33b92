/* api_misc: the read-side endpoints — usage, audit — and the OpenAPI
 * document. Resolve, the hot path, lives in api_resolve.c. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/store_audit.h"
#include "common/store_usage.h"
#include "common/util.h"
#include "control/api.h"
#include "control/ctl.h"

/* ---- usage ---- */

static int valid_period(const char *p)
{
    return strlen(p) == 7 && p[4] == '-' && strspn(p, "0123456789-") == 7 && strchr(p, '-') == p + 4 &&
           ((p[5] == '0' && p[6] >= '1' && p[6] <= '9') || (p[5] == '1' && p[6] >= '0' && p[6] <= '2'));
}

static void on_usage(api_req_t *r)
{
    static const char *const params[] = { "period", "project", NULL };
    char now_period[16];
    int64_t counts[USAGE_KIND_COUNT];
    store_project_t p;
    if (api_query_allow(r, params) != 0)
        return;
    const char *period = api_query(r, "period");
    store_usage_period(util_now_ms(), now_period, sizeof(now_period));
    if (!period)
        period = now_period;
    if (!valid_period(period)) {
        api_error(r, 400, "invalid", "%s", "period must be YYYY-MM");
        return;
    }
    if (api_project(r, api_query(r, "project"), 1, &p) != 0)
        return;
    api_flush(r->api); /* include this month's calls still batched in memory */
    if (store_usage_get(r->c->store, p.id, period, counts) != STORE_OK) {
        store_project_clear(&p);
        api_error_internal(r, "cannot read usage");
        return;
    }
    if (strcmp(period, now_period) == 0 && counts[USAGE_ACTIVE_DOMAIN] < p.active_domains)
        counts[USAGE_ACTIVE_DOMAIN] = p.active_domains;
    json_t *u = json_object();
    for (int k = 0; u && k < USAGE_KIND_COUNT; k++)
        json_object_set_new(u, store_usage_kind_name(k), json_integer(counts[k]));
    api_reply_json(r, 200, json_pack("{s:s,s:s,s:o}", "projectSlug", p.slug, "period", period, "usage", u));
    store_project_clear(&p);
}

/* ---- audit ---- */

struct audit_ctx {
    json_t *arr;
    int64_t last;
    int n;
};

static int audit_one(const store_audit_t *a, void *arg)
{
    struct audit_ctx *ac = arg;
    char ts[32];
    json_t *detail = json_loads(a->detail, 0, NULL);
    json_array_append_new(ac->arr, json_pack("{s:I,s:s?,s:s?,s:s,s:s,s:o,s:s}", "id", (json_int_t)a->id,
                                             "projectSlug", a->project_slug, "tokenId", a->token_id, "action",
                                             a->action, "target", a->target, "detail",
                                             detail ? detail : json_object(), "at",
                                             util_iso8601(a->at, ts, sizeof(ts))));
    ac->last = a->id;
    ac->n++;
    return 0;
}

static void on_audit(api_req_t *r)
{
    static const char *const params[] = { "cursor", "limit", "project", NULL };
    int limit;
    int64_t cursor;
    store_project_t p;
    if (api_query_allow(r, params) != 0 || api_page(r, 100, 1000, &limit, &cursor) != 0 ||
        api_project(r, api_query(r, "project"), 0, &p) != 0)
        return;
    struct audit_ctx ac = { .arr = json_array() };
    int64_t pid = p.id ? p.id : -1;
    store_project_clear(&p);
    if (!ac.arr || store_audit_list(r->c->store, pid, cursor, limit, audit_one, &ac) != STORE_OK) {
        json_decref(ac.arr);
        api_error_internal(r, "cannot list the audit log");
        return;
    }
    char next[24];
    snprintf(next, sizeof(next), "%lld", (long long)ac.last);
    api_reply_json(r, 200, json_pack("{s:o,s:s?}", "entries", ac.arr, "nextCursor", ac.n == limit ? next : NULL));
}

/* ---- OpenAPI ---- */

static void on_openapi(api_req_t *r)
{
    size_t len = 0;
    const char *doc = api_openapi(r->api, &len);
    if (!doc) {
        api_error(r, 404, "not_found", "%s", "the OpenAPI document is not installed");
        return;
    }
    api_reply_raw(r, 200, "application/yaml", doc, len);
}

int api_misc_init(api_t *a)
{
    int rc = 0;
    rc |= api_route(a, API_GET, "/v1/usage", API_SCOPE_USAGE_READ, 0, on_usage, NULL);
    rc |= api_route(a, API_GET, "/v1/audit", API_SCOPE_CONNECTIONS_READ, 0, on_audit, NULL);
    rc |= api_route(a, API_GET, "/v1/openapi.yaml", 0, API_PUBLIC, on_openapi, NULL);
    return rc;
}
