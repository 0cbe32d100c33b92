/* api_misc: the read-side endpoints — resolve (the hot path the SaaS calls
 * on every upstream request), usage, audit — and the OpenAPI document. */
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hostname.h"
#include "common/store_audit.h"
#include "common/store_usage.h"
#include "common/util.h"
#include "control/api.h"
#include "control/ctl.h"

/* ---- resolve ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, s+n) into out; -1 on bad escapes, NUL or overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (ch == '\0' || o + 1 >= outlen)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

/* Finds ?hostname= without building a key/value list (hot path). */
static int resolve_param(api_req_t *r, char *out, size_t outlen)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(r->req);
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    int found = 0;
    for (const char *p = q; p && *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        if (klen == 8 && memcmp(p, "hostname", 8) == 0) {
            if (found)
                return api_error(r, 400, "invalid", "%s", "hostname is given twice"), -1;
            if (!eq || pct_decode(eq + 1, len - klen - 1, out, outlen) != 0)
                return api_error(r, 400, "invalid", "%s", "hostname is malformed"), -1;
            found = 1;
        } else if (len) {
            return api_error(r, 400, "invalid", "unknown query parameter '%.*s'", (int)(klen > 64 ? 64 : klen), p),
                   -1;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    if (!found || !*out)
        return api_error(r, 400, "invalid", "%s", "query parameter 'hostname' is required"), -1;
    return 0;
}

struct resolve_ctx {
    api_req_t *r;
    const char *host;
    int visible, failed;
    size_t len;
    char buf[API_METADATA_MAX + 1024]; /* metadata plus the fixed fields */
};

/* Appends n bytes to the response being built; 0 or -1 when it would not fit. */
static int put(struct resolve_ctx *rc, const char *s, size_t n)
{
    if (rc->len + n > sizeof(rc->buf))
        return -1;
    memcpy(rc->buf + rc->len, s, n);
    rc->len += n;
    return 0;
}

#define PUT_LIT(rc, lit) put(rc, lit, sizeof(lit) - 1)

static void on_row(const store_resolve_t *row, void *arg)
{
    struct resolve_ctx *rc = arg;
    api_req_t *r = rc->r;
    /* Only the owning project's tokens see a binding — operators included,
     * everyone else gets the answer a miss gets. */
    if (row->project_id != r->auth.project_id)
        return;
    rc->visible = 1;
    char ts[40];
    /* hostname (LDH), slug ([a-z0-9-]) and state (an enum) need no escaping;
     * metadata is spliced byte-for-byte as stored. One buffer, one copy into
     * the reply: no allocation and no evbuffer lock per piece. */
    /* || keeps the pieces in order and stops at the first that does not fit. */
    int bad = PUT_LIT(rc, "{\"hostname\":\"") || put(rc, rc->host, strlen(rc->host)) ||
              PUT_LIT(rc, "\",\"projectSlug\":\"") || put(rc, row->project_slug, strlen(row->project_slug)) ||
              (row->verified ? PUT_LIT(rc, "\",\"verified\":true,\"verifiedAt\":")
                             : PUT_LIT(rc, "\",\"verified\":false,\"verifiedAt\":"));
    if (!bad && row->verified_at) {
        util_iso8601(row->verified_at, ts, sizeof(ts));
        bad = PUT_LIT(rc, "\"") || put(rc, ts, strlen(ts)) || PUT_LIT(rc, "\"");
    } else if (!bad) {
        bad = PUT_LIT(rc, "null");
    }
    bad = bad || PUT_LIT(rc, ",\"state\":\"") || put(rc, row->state, strlen(row->state)) ||
          PUT_LIT(rc, "\",\"metadata\":") || put(rc, row->metadata, row->metadata_len) || PUT_LIT(rc, "}");
    rc->failed = bad != 0;
}

static void on_resolve(api_req_t *r)
{
    char raw[1024], host[HOSTNAME_MAX];
    const char *why;
    raw[0] = '\0';
    if (resolve_param(r, raw, sizeof(raw)) != 0)
        return;
    if (hostname_normalize(raw, host, sizeof(host), &why) != 0) {
        api_error(r, 400, "invalid", "hostname is invalid: %s", why);
        return;
    }
    struct resolve_ctx rc;
    rc.r = r;
    rc.host = host;
    rc.visible = rc.failed = 0;
    rc.len = 0;
    int src = store_domain_resolve(r->c->store, host, on_row, &rc);
    if ((src != STORE_OK && src != STORE_NOTFOUND) || rc.failed) {
        api_error_internal(r, "resolve lookup failed");
        return;
    }
    if (!rc.visible) {
        api_error(r, 404, "not_found", "%s", "no such hostname");
        return;
    }
    api_reply_json_text(r, 200, rc.buf, rc.len);
}

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
    rc |= api_route(a, API_GET, "/v1/edge/resolve", API_SCOPE_CONNECTIONS_READ, API_NO_RATELIMIT, on_resolve, NULL);
    rc |= api_route(a, API_GET, "/v1/usage", API_SCOPE_USAGE_READ, 0, on_usage, NULL);
    rc |= api_route(a, API_GET, "/v1/audit", API_SCOPE_CONNECTIONS_READ, 0, on_audit, NULL);
    rc |= api_route(a, API_GET, "/v1/openapi.yaml", 0, API_PUBLIC, on_openapi, NULL);
    return rc;
}
