/* api: router, authentication, rate limiting, JSON plumbing.
 *
 * DESIGN
 * Every request on the API listener arrives at on_request() from api_http
 * (our own HTTP/1.1 server on the socket control.c bound): /healthz, /readyz
 * and /metrics are answered first, then the router matches the raw path against the route table (segments, {captures}),
 * answers 404/405 itself, authenticates the bearer token, applies the
 * token's rate limit, validates the body, and calls the handler with an
 * api_req_t. Errors are always {"error":{"code","message","ref"}}.
 *
 * Tokens: the SHA-256 of the presented token indexes a 256 × 4 set-associative
 * cache (so the hot path does no SQL); entries are re-validated against the
 * store every TOKEN_TTL_MS, so revocations made by the CLI (another process)
 * take effect within that time, and at once for revocations made here.
 * The cache entry also carries the token's rate-limit bucket and the time it
 * was last used; api_call counts accumulate per project in memory. A timer
 * writes both every FLUSH_MS in one transaction — never a write per request.
 */
#include "control/api.h"

#include <sys/queue.h> /* before evhttp's keyvalq: TAILQ_* */

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/crypto.h"
#include "common/hostname.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/store_token.h"
#include "common/store_usage.h"
#include "common/util.h"
#include "control/api_http.h"
#include "edge/http1.h"
#include "control/ctl.h"

#define MAX_ROUTES 128
#define MAX_SEGS 8
#define CACHE_SETS 256
#define CACHE_WAYS 4
#define TOKEN_TTL_MS 10000
#define TOUCH_EVERY_MS 60000
#define FLUSH_MS 5000
#define USAGE_SLOTS_MIN 64

struct route {
    unsigned methods, scope, flags;
    int nsegs;
    char *segs[MAX_SEGS];        /* NULL = capture */
    api_handler fn;
    void *arg;
};

struct tok_entry {
    int used;
    unsigned char hash[CRYPTO_SHA256_LEN];
    char id[48];
    int64_t project_id;
    char slug[API_SLUG_MAX + 1];
    unsigned scopes;
    int admin;
    int64_t loaded_mono;         /* re-validated after TOKEN_TTL_MS */
    int64_t lru_mono;
    int64_t used_wall;           /* last use (wall ms) */
    int64_t touched_wall;        /* last_used_at as stored */
    double bucket;
    int64_t bucket_us;
};

struct usage_slot {
    int64_t project_id;          /* 0 = empty */
    int64_t calls;
};

struct api {
    struct control *c;
    struct route routes[MAX_ROUTES];
    int nroutes;
    struct tok_entry cache[CACHE_SETS][CACHE_WAYS];
    struct usage_slot *usage;
    size_t usage_cap, usage_used;
    struct event *flush_ev;
    uint64_t ref_seq;
    time_t date_at;              /* the second date[] shows */
    char date[64];
    char ref_prefix[8];
    /* SHA-256 fetched once: an implicit fetch per request costs more than
     * hashing a token. */
    EVP_MD *sha256;
    EVP_MD_CTX *md;
    struct api_domains *domains;
    struct api_resolve *resolve;
    api_http_t *http;
};

/* ---- small helpers ---- */


static const char *method_name(unsigned m)
{
    switch (m) {
    case API_GET: return "GET";
    case API_POST: return "POST";
    case API_PUT: return "PUT";
    case API_PATCH: return "PATCH";
    case API_DELETE: return "DELETE";
    default: return "?";
    }
}

/* ---- request life ---- */

static void req_free(api_req_t *r)
{
    for (int i = 0; i < API_MAX_PARAMS; i++)
        free(r->_params_mem[i]);
    if (r->_query) {
        evhttp_clear_headers(r->_query);
        free(r->_query);
    }
    json_decref(r->body);
    free(r);
}

/* The Date header, formatted once a second rather than by evhttp for every
 * reply (gmtime and a printf each). */
static const char *http_date(api_t *a)
{
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t now = time(NULL);
    struct tm tm;
    if (now != a->date_at && gmtime_r(&now, &tm)) {
        snprintf(a->date, sizeof(a->date), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
        a->date_at = now;
    }
    return a->date;
}

void api_reply_header(api_req_t *r, const char *name, const char *value)
{
    size_t room = sizeof(r->_hdrs) - r->_hdrs_len;
    int n = snprintf(r->_hdrs + r->_hdrs_len, room, "%s: %s\r\n", name, value);
    if (n > 0 && (size_t)n < room)
        r->_hdrs_len += (size_t)n;
    else
        r->_hdrs[r->_hdrs_len] = '\0';
}

static void finish(api_req_t *r, int status, const char *content_type, const void *data, size_t len)
{
    struct control *c = r->c;
    if (!r->_uncounted && status >= 400)
        metrics_inc(c->hub->metrics, M_API_ERRORS);
    if (!r->_uncounted)
        metrics_observe_us(c->hub->metrics, H_API, util_mono_us() - r->_start_us);
    api_http_reply(r->hreq, status, http1_reason(status), http_date(r->api), content_type, r->_hdrs, r->_hdrs_len,
                   data, len, r->_close);
    r->_done = 1;
    /* A deferred request replied to later is ours to free here; one answered
     * during dispatch is freed by on_request. */
    if (r->_deferred && !r->_dispatching)
        req_free(r);
}

void api_reply_raw(api_req_t *r, int status, const char *content_type, const void *data, size_t len)
{
    finish(r, status, content_type, data, len);
}

void api_reply_json_text(api_req_t *r, int status, const char *text, size_t len)
{
    api_reply_raw(r, status, "application/json", text, len);
}

void api_reply_json(api_req_t *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (!text) {
        api_error_internal(r, "cannot serialise the response");
        return;
    }
    api_reply_json_text(r, status, text, strlen(text));
    free(text);
}

void api_reply_empty(api_req_t *r)
{
    finish(r, 204, NULL, NULL, 0);
}

static const char *make_ref(api_req_t *r)
{
    if (!r->_ref[0])
        snprintf(r->_ref, sizeof(r->_ref), "ref_%s%06llx", r->api->ref_prefix,
                 (unsigned long long)(++r->api->ref_seq & 0xffffff));
    return r->_ref;
}

__attribute__((format(printf, 4, 0))) static void verror(api_req_t *r, int status, const char *code,
                                                         const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    json_t *body = json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", msg, "ref", make_ref(r));
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (status == 401)
        api_reply_header(r, "WWW-Authenticate", "Bearer");
    log_debug("api.error", "ref=%s status=%d code=%s method=%s path=%.200s", r->_ref, status, code,
              method_name(r->method), r->path ? r->path : "");
    if (text) {
        api_reply_json_text(r, status, text, strlen(text));
        free(text);
    } else {
        api_reply_raw(r, status, NULL, NULL, 0);
    }
}

void api_error(api_req_t *r, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(r, status, code, fmt, ap);
    va_end(ap);
}

void api_error_internal(api_req_t *r, const char *what)
{
    log_error("api.internal", "ref=%s method=%s path=%.200s what=\"%s\"", make_ref(r), method_name(r->method),
              r->path ? r->path : "", what);
    api_error(r, 500, "internal", "internal error; quote ref %s when reporting it", r->_ref);
}

void api_error_ops(api_req_t *r, const api_ops_err_t *e)
{
    if (e->status >= 500) {
        api_error_internal(r, e->message);
        return;
    }
    if (e->status == 402) {
        const char *url = r->c->cfg->upgrade_url;
        json_t *body = json_pack("{s:{s:s,s:s,s:s,s:s}}", "error", "code", e->code, "message", e->message, "ref",
                                 make_ref(r), "upgrade_url", url);
        api_reply_json(r, 402, body);
        return;
    }
    api_error(r, e->status, e->code, "%s", e->message);
}

void api_defer(api_req_t *r)
{
    r->_deferred = 1;
}

/* ---- routes ---- */

int api_route(api_t *a, unsigned methods, const char *pattern, unsigned scope, unsigned flags, api_handler fn,
              void *arg)
{
    if (a->nroutes == MAX_ROUTES || pattern[0] != '/')
        return -1;
    struct route *rt = &a->routes[a->nroutes];
    memset(rt, 0, sizeof(*rt));
    for (const char *p = pattern + 1; *p || rt->nsegs == 0;) {
        size_t len = strcspn(p, "/");
        if (rt->nsegs == MAX_SEGS)
            goto fail;
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}')
            rt->segs[rt->nsegs] = NULL;
        else if (!(rt->segs[rt->nsegs] = util_strndup(p, len)))
            goto fail;
        rt->nsegs++;
        p += len;
        if (*p == '/')
            p++;
        else
            break;
    }
    rt->methods = methods;
    rt->scope = scope;
    rt->flags = flags;
    rt->fn = fn;
    rt->arg = arg;
    a->nroutes++;
    return 0;
fail:
    for (int i = 0; i < MAX_SEGS; i++)
        free(rt->segs[i]);
    return -1;
}

/* Splits the raw path into at most MAX_SEGS (ptr, len) pieces; -1 if more. */
static int split_path(const char *path, const char *seg[MAX_SEGS], size_t len[MAX_SEGS])
{
    int n = 0;
    if (path[0] != '/')
        return -1;
    for (const char *p = path + 1;;) {
        size_t l = strcspn(p, "/");
        if (n == MAX_SEGS)
            return -1;
        seg[n] = p;
        len[n++] = l;
        if (p[l] != '/')
            break;
        p += l + 1;
    }
    return n;
}

static int route_matches(const struct route *rt, int n, const char *seg[], const size_t len[])
{
    if (rt->nsegs != n)
        return 0;
    for (int i = 0; i < n; i++) {
        if (!rt->segs[i]) {
            if (len[i] == 0)
                return 0;
        } else if (strlen(rt->segs[i]) != len[i] || memcmp(rt->segs[i], seg[i], len[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

static int capture(api_req_t *r, const struct route *rt, const char *seg[], const size_t len[])
{
    for (int i = 0; i < rt->nsegs; i++) {
        if (rt->segs[i] || r->nparams == API_MAX_PARAMS)
            continue;
        char *raw = util_strndup(seg[i], len[i]);
        size_t dlen = 0;
        char *dec = raw ? evhttp_uridecode(raw, 0, &dlen) : NULL;
        free(raw);
        if (!dec)
            return -1;
        if (strlen(dec) != dlen) { /* %00 */
            free(dec);
            return -1;
        }
        r->_params_mem[r->nparams] = dec;
        r->param[r->nparams++] = dec;
    }
    return 0;
}

static void reply_allow(api_req_t *r, unsigned allow, int status)
{
    char buf[64] = "";
    static const unsigned order[] = { API_GET, API_POST, API_PUT, API_PATCH, API_DELETE };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(order); i++) {
        if (!(allow & order[i]))
            continue;
        if (buf[0])
            strcat(buf, ", ");
        strcat(buf, method_name(order[i]));
        if (order[i] == API_GET)
            strcat(buf, ", HEAD");
    }
    api_reply_header(r, "Allow", buf);
    if (status == 204)
        api_reply_empty(r);
    else
        api_error(r, 405, "invalid", "method not allowed; allowed: %s", buf);
}

/* ---- token cache and authentication ---- */

static void entry_fill(struct tok_entry *e, const store_token_t *t, unsigned scopes, int64_t now_mono)
{
    snprintf(e->id, sizeof(e->id), "%s", t->id);
    e->project_id = t->project_id;
    snprintf(e->slug, sizeof(e->slug), "%s", t->project_slug ? t->project_slug : "");
    e->scopes = scopes;
    e->admin = (scopes & API_SCOPE_APPS_ADMIN) != 0;
    e->loaded_mono = now_mono;
    e->touched_wall = t->last_used_at;
}

/* Loads the token from the store: 1 valid (entry filled), 0 invalid, -1 error. */
static int token_load(api_t *a, const unsigned char hash[CRYPTO_SHA256_LEN], struct tok_entry *e, int64_t now)
{
    store_token_t t;
    int rc = store_token_by_hash(a->c->store, hash, &t);
    if (rc == STORE_NOTFOUND)
        return 0;
    if (rc != STORE_OK)
        return -1;
    unsigned mask = 0;
    api_ops_err_t err;
    int valid = crypto_ct_equal(t.hash, hash, CRYPTO_SHA256_LEN) && !t.revoked_at && !t.project_deleted &&
                api_ops_parse_scopes(t.scopes, &mask, &err) == 0;
    if (valid) {
        if (mask & API_SCOPE_APPS_ADMIN)
            mask |= API_SCOPE_PROJECT_ALL;
        entry_fill(e, &t, mask, now);
    }
    store_token_clear(&t);
    return valid;
}

static struct tok_entry *cache_find(api_t *a, const unsigned char hash[CRYPTO_SHA256_LEN])
{
    struct tok_entry *set = a->cache[hash[0]];
    for (int i = 0; i < CACHE_WAYS; i++)
        if (set[i].used && crypto_ct_equal(set[i].hash, hash, CRYPTO_SHA256_LEN))
            return &set[i];
    return NULL;
}

static struct tok_entry *cache_victim(api_t *a, const unsigned char hash[CRYPTO_SHA256_LEN])
{
    struct tok_entry *set = a->cache[hash[0]], *v = &set[0];
    for (int i = 0; i < CACHE_WAYS; i++) {
        if (!set[i].used)
            return &set[i];
        if (set[i].lru_mono < v->lru_mono)
            v = &set[i];
    }
    return v;
}

void api_tokens_invalidate(api_t *a, int64_t project_id, const char *token_id)
{
    for (int s = 0; s < CACHE_SETS; s++) {
        for (int w = 0; w < CACHE_WAYS; w++) {
            struct tok_entry *e = &a->cache[s][w];
            if (!e->used)
                continue;
            if ((project_id <= 0 && !token_id) || (project_id > 0 && e->project_id == project_id) ||
                (token_id && strcmp(e->id, token_id) == 0))
                e->used = 0;
        }
    }
}

static int token_hash(api_t *a, const char *tok, size_t len, unsigned char out[CRYPTO_SHA256_LEN])
{
    unsigned int n = 0;
    if (!a->md)
        return crypto_sha256(tok, len, out);
    if (EVP_DigestInit_ex(a->md, a->sha256, NULL) != 1 || EVP_DigestUpdate(a->md, tok, len) != 1 ||
        EVP_DigestFinal_ex(a->md, out, &n) != 1 || n != CRYPTO_SHA256_LEN)
        return -1;
    return 0;
}

/* Returns the cache entry for the bearer token, or NULL after replying. */
static struct tok_entry *authenticate(api_req_t *r)
{
    size_t hlen = 0;
    const char *hv = api_http_header(r->hreq, "Authorization", &hlen);
    char h[320];
    if (hv && hlen >= sizeof(h))
        hlen = sizeof(h) - 1; /* still over the 256-byte token limit below */
    if (hv) {
        memcpy(h, hv, hlen);
        h[hlen] = '\0';
    }
    if (!hv)
        return api_error(r, 401, "unauthorized", "%s", "missing Authorization: Bearer <token>"), NULL;
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return api_error(r, 401, "unauthorized", "%s", "expected Authorization: Bearer <token>"), NULL;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen(tok);
    while (len && tok[len - 1] == ' ')
        len--;
    unsigned char hash[CRYPTO_SHA256_LEN];
    if (len == 0 || len > 256 || token_hash(r->api, tok, len, hash) != 0)
        return api_error(r, 401, "unauthorized", "%s", "invalid token"), NULL;
    api_t *a = r->api;
    int64_t now = util_mono_ms();
    struct tok_entry *e = cache_find(a, hash);
    if (e && now - e->loaded_mono < TOKEN_TTL_MS) {
        e->lru_mono = now;
        return e;
    }
    struct tok_entry fresh = { 0 };
    int rc = token_load(a, hash, &fresh, now);
    if (rc < 0)
        return api_error_internal(r, "token lookup failed"), NULL;
    if (rc == 0) {
        if (e)
            e->used = 0;
        return api_error(r, 401, "unauthorized", "%s", "invalid or revoked token"), NULL;
    }
    if (e) { /* keep the bucket and the pending lastUsedAt across re-validation */
        fresh.bucket = e->bucket;
        fresh.bucket_us = e->bucket_us;
        fresh.used_wall = e->used_wall;
        if (e->touched_wall > fresh.touched_wall)
            fresh.touched_wall = e->touched_wall;
    } else {
        e = cache_victim(a, hash);
        fresh.bucket = r->c->cfg->api_rate_burst;
        fresh.bucket_us = util_mono_us();
    }
    memcpy(fresh.hash, hash, sizeof(hash));
    fresh.used = 1;
    fresh.lru_mono = now;
    *e = fresh;
    return e;
}

/* Token bucket; 0 = allowed, else seconds to wait. rate_limit 0 disables. */
static int rate_limited(const config_t *cfg, struct tok_entry *e)
{
    if (cfg->api_rate_limit <= 0)
        return 0;
    int64_t now = util_mono_us();
    double burst = cfg->api_rate_burst;
    e->bucket += (double)(now - e->bucket_us) * cfg->api_rate_limit / 1e6;
    if (e->bucket > burst)
        e->bucket = burst;
    e->bucket_us = now;
    if (e->bucket >= 1.0) {
        e->bucket -= 1.0;
        return 0;
    }
    int wait = (int)((1.0 - e->bucket) / cfg->api_rate_limit) + 1;
    return wait;
}

/* ---- usage batching ---- */

static int usage_grow(api_t *a)
{
    size_t ncap = a->usage_cap ? a->usage_cap * 2 : USAGE_SLOTS_MIN;
    struct usage_slot *n = calloc(ncap, sizeof(*n));
    if (!n)
        return -1;
    for (size_t i = 0; i < a->usage_cap; i++) {
        if (!a->usage[i].project_id)
            continue;
        size_t j = (size_t)a->usage[i].project_id & (ncap - 1);
        while (n[j].project_id)
            j = (j + 1) & (ncap - 1);
        n[j] = a->usage[i];
    }
    free(a->usage);
    a->usage = n;
    a->usage_cap = ncap;
    return 0;
}

static void count_call(api_t *a, int64_t project_id)
{
    if (project_id <= 0)
        return;
    if ((a->usage_used + 1) * 2 > a->usage_cap && usage_grow(a) != 0)
        return;
    size_t j = (size_t)project_id & (a->usage_cap - 1);
    while (a->usage[j].project_id && a->usage[j].project_id != project_id)
        j = (j + 1) & (a->usage_cap - 1);
    if (!a->usage[j].project_id) {
        a->usage[j].project_id = project_id;
        a->usage_used++;
    }
    a->usage[j].calls++;
}

void api_flush(api_t *a)
{
    int touches = 0;
    for (int s = 0; s < CACHE_SETS && !touches; s++)
        for (int w = 0; w < CACHE_WAYS; w++)
            if (a->cache[s][w].used && a->cache[s][w].used_wall - a->cache[s][w].touched_wall >= TOUCH_EVERY_MS)
                touches = 1;
    if (!a->usage_used && !touches)
        return;
    store_t *st = a->c->store;
    if (store_begin(st) != STORE_OK)
        return;
    for (size_t i = 0; i < a->usage_cap; i++)
        if (a->usage[i].project_id &&
            store_usage_add(st, a->usage[i].project_id, USAGE_API_CALL, a->usage[i].calls) != STORE_OK)
            goto fail;
    for (int s = 0; s < CACHE_SETS; s++) {
        for (int w = 0; w < CACHE_WAYS; w++) {
            struct tok_entry *e = &a->cache[s][w];
            if (e->used && e->used_wall - e->touched_wall >= TOUCH_EVERY_MS &&
                store_token_touch(st, e->id, e->used_wall) != STORE_OK)
                goto fail;
        }
    }
    if (store_commit(st) != STORE_OK)
        return;
    memset(a->usage, 0, a->usage_cap * sizeof(*a->usage));
    a->usage_used = 0;
    for (int s = 0; s < CACHE_SETS; s++)
        for (int w = 0; w < CACHE_WAYS; w++)
            if (a->cache[s][w].used && a->cache[s][w].used_wall - a->cache[s][w].touched_wall >= TOUCH_EVERY_MS)
                a->cache[s][w].touched_wall = a->cache[s][w].used_wall;
    return;
fail:
    store_rollback(st);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    api_flush(arg);
}

/* ---- bodies ---- */

static int json_content_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; ");
    if (n != 16 || strncasecmp(ct, "application/json", 16) != 0)
        return 0;
    const char *cs = strcasestr(ct + n, "charset=");
    if (cs) {
        cs += 8;
        if (*cs == '"')
            cs++;
        if (strncasecmp(cs, "utf-8", 5) != 0)
            return 0;
    }
    return 1;
}

static int read_body(api_req_t *r, const struct route *rt)
{
    size_t len = r->hreq->body_len;
    const config_t *cfg = r->c->cfg;
    if (len > (size_t)cfg->api_max_body)
        return api_error(r, 413, "invalid", "request body is %zu bytes; the limit is %d", len, cfg->api_max_body), -1;
    if (!(rt->flags & (API_BODY_JSON | API_BODY_OPTIONAL))) {
        if (len)
            return api_error(r, 400, "invalid", "%s", "this endpoint takes no request body"), -1;
        return 0;
    }
    if (len == 0) {
        if (rt->flags & API_BODY_JSON)
            return api_error(r, 400, "invalid", "%s", "a JSON object body is required"), -1;
        return 0;
    }
    size_t ctlen = 0;
    const char *ctv = api_http_header(r->hreq, "Content-Type", &ctlen);
    char ct[256];
    if (ctv && ctlen < sizeof(ct)) {
        memcpy(ct, ctv, ctlen);
        ct[ctlen] = '\0';
    }
    if (!ctv || ctlen >= sizeof(ct) || !json_content_type(ct))
        return api_error(r, 415, "invalid", "%s", "Content-Type must be application/json"), -1;
    r->body_raw = r->hreq->body;
    r->body_len = len;
    json_error_t jerr;
    r->body = json_loadb(r->body_raw, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!r->body)
        return api_error(r, 400, "invalid", "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                         jerr.text),
               -1;
    if (!json_is_object(r->body))
        return api_error(r, 400, "invalid", "%s", "the request body must be a JSON object"), -1;
    return 0;
}

/* ---- dispatch ---- */

static unsigned req_method(const api_http_req_t *hr, int *is_options)
{
    *is_options = 0;
    switch (hr->method) {
    case HTTP1_M_GET:
    case HTTP1_M_HEAD: return API_GET;
    case HTTP1_M_POST: return API_POST;
    case HTTP1_M_PUT: return API_PUT;
    case HTTP1_M_PATCH: return API_PATCH;
    case HTTP1_M_DELETE: return API_DELETE;
    case HTTP1_M_OPTIONS: *is_options = 1; return 0;
    default: return 0;
    }
}

static const struct route *find_route(api_t *a, const char *path, unsigned method, unsigned *allow,
                                      const char *seg[MAX_SEGS], size_t len[MAX_SEGS])
{
    int n = split_path(path, seg, len);
    *allow = 0;
    if (n < 0)
        return NULL;
    const struct route *hit = NULL;
    for (int i = 0; i < a->nroutes; i++) {
        if (!route_matches(&a->routes[i], n, seg, len))
            continue;
        *allow |= a->routes[i].methods;
        if (!hit && (a->routes[i].methods & method))
            hit = &a->routes[i];
    }
    return hit;
}

static int admit(api_req_t *r, const struct route *rt)
{
    if (rt->flags & API_PUBLIC)
        return 0;
    struct tok_entry *e = authenticate(r);
    if (!e)
        return -1;
    e->used_wall = util_now_ms();
    r->auth.token_id = e->id;
    r->auth.project_id = e->project_id;
    r->auth.project_slug = e->project_id ? e->slug : NULL;
    r->auth.scopes = e->scopes;
    r->auth.admin = e->admin;
    count_call(r->api, e->project_id);
    if ((rt->scope & e->scopes) != rt->scope) {
        char need[128];
        return api_error(r, 403, "forbidden", "this token lacks the scope %s",
                         api_ops_scopes_text(rt->scope & ~e->scopes, need, sizeof(need))),
               -1;
    }
    int wait = (rt->flags & API_NO_RATELIMIT) ? 0 : rate_limited(r->c->cfg, e);
    if (wait > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", wait);
        api_reply_header(r, "Retry-After", v);
        return api_error(r, 429, "rate_limited", "rate limit of %d requests per second exceeded; retry in %d s",
                         r->c->cfg->api_rate_limit, wait),
               -1;
    }
    return 0;
}

/* /healthz, /readyz and /metrics: no token, no route table, no counting. */
static int fixed_path(api_req_t *r)
{
    struct control *c = r->c;
    const char *p = r->path;
    if (r->method != API_GET)
        return 0;
    if (strcmp(p, "/healthz") == 0) {
        api_reply_raw(r, 200, "application/json", "{\"status\":\"ok\"}\n", 16);
    } else if (strcmp(p, "/readyz") == 0) {
        if (c->stopping)
            api_reply_raw(r, 503, "application/json", "{\"status\":\"draining\"}\n", 22);
        else
            api_reply_raw(r, 200, "application/json", "{\"status\":\"ready\"}\n", 19);
    } else if (strcmp(p, "/metrics") == 0) {
        size_t len = 0;
        char *text = metrics_render(c->hub->metrics, &len);
        if (!text)
            api_error_internal(r, "cannot render metrics");
        else
            api_reply_raw(r, 200, "text/plain; version=0.0.4", text, len);
        free(text);
    } else {
        return 0;
    }
    return 1;
}

/* A request api_http could not read: a JSON error, then the connection
 * closes (the rest of its bytes cannot be trusted). */
static void reply_unreadable(api_req_t *r, int status, const char *why)
{
    r->_close = 1;
    if (status == 413)
        api_error(r, 413, "invalid", "request body is over the limit of %d bytes", r->c->cfg->api_max_body);
    else if (status == 411)
        api_error(r, 411, "invalid", "%s", why ? why : "Content-Length is required");
    else if (status == 501 || status == 505)
        api_error(r, status, "invalid", "unsupported request: %s", why ? why : "this HTTP feature");
    else
        api_error(r, status, "invalid", "malformed request: %s", why ? why : "bad request");
}

static void on_request(api_http_req_t *hr, void *arg)
{
    api_t *a = arg;
    api_req_t *r = calloc(1, sizeof(*r));
    if (!r) {
        api_http_reply(hr, 500, http1_reason(500), http_date(a), NULL, NULL, 0, NULL, 0, 1);
        return;
    }
    r->api = a;
    r->c = a->c;
    r->hreq = hr;
    r->_start_us = util_mono_us();
    if (hr->bad_status) {
        metrics_inc(a->c->hub->metrics, M_API_REQUESTS);
        reply_unreadable(r, hr->bad_status, hr->bad_why);
        goto out;
    }
    r->path = hr->path;
    int is_options;
    r->method = req_method(hr, &is_options);
    r->_uncounted = 1;
    if (fixed_path(r))
        goto out;
    r->_uncounted = 0;
    metrics_inc(a->c->hub->metrics, M_API_REQUESTS);
    const char *seg[MAX_SEGS];
    size_t len[MAX_SEGS];
    unsigned allow = 0;
    const struct route *rt = r->path ? find_route(a, r->path, r->method, &allow, seg, len) : NULL;
    if (!rt) {
        if (allow)
            reply_allow(r, allow, is_options ? 204 : 405);
        else
            api_error(r, 404, "not_found", "%s", "no such endpoint");
        goto out;
    }
    r->arg = rt->arg;
    if (capture(r, rt, seg, len) != 0) {
        api_error(r, 400, "invalid", "%s", "malformed percent-encoding in the path");
        goto out;
    }
    if (admit(r, rt) != 0 || read_body(r, rt) != 0)
        goto out;
    r->_dispatching = 1;
    rt->fn(r);
    r->_dispatching = 0;
    if (!r->_done && !r->_deferred)
        api_error_internal(r, "handler returned without replying");
out:
    if (r->_done || !r->_deferred)
        req_free(r);
}

/* ---- helpers for handlers ---- */

const char *api_query(api_req_t *r, const char *name)
{
    if (!r->_query) {
        const char *q = r->hreq->query;
        if (!(r->_query = calloc(1, sizeof(*r->_query))))
            return NULL;
        TAILQ_INIT(r->_query);
        if (q && evhttp_parse_query_str(q, r->_query) != 0)
            evhttp_clear_headers(r->_query);
    }
    return evhttp_find_header(r->_query, name);
}

int api_query_allow(api_req_t *r, const char *const *allowed)
{
    api_query(r, "");
    if (!r->_query)
        return api_error_internal(r, "out of memory"), -1;
    const struct evkeyval *kv;
    TAILQ_FOREACH(kv, r->_query, next) {
        int ok = 0;
        for (int i = 0; allowed && allowed[i]; i++)
            if (strcmp(kv->key, allowed[i]) == 0)
                ok = 1;
        if (!ok)
            return api_error(r, 400, "invalid", "unknown query parameter '%.64s'", kv->key), -1;
    }
    return 0;
}

int api_body_allow(api_req_t *r, const char *const *allowed)
{
    const char *key;
    json_t *v;
    if (!r->body)
        return 0;
    json_object_foreach(r->body, key, v) {
        int ok = 0;
        for (int i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = 1;
        if (!ok)
            return api_error(r, 400, "invalid", "unknown field '%.64s'", key), -1;
    }
    return 0;
}

static json_t *member(api_req_t *r, const char *key, int required, int *rc)
{
    json_t *v = r->body ? json_object_get(r->body, key) : NULL;
    *rc = 0;
    if (!v && required) {
        api_error(r, 400, "invalid", "field '%s' is required", key);
        *rc = -1;
    }
    return v;
}

int api_body_str(api_req_t *r, const char *key, int required, const char **out)
{
    int rc;
    json_t *v = member(r, key, required, &rc);
    if (!v)
        return rc;
    if (!json_is_string(v))
        return api_error(r, 400, "invalid", "field '%s' must be a string", key), -1;
    *out = json_string_value(v);
    return 0;
}

int api_body_int(api_req_t *r, const char *key, int required, int64_t min, int64_t max, int64_t *out, int *present)
{
    int rc;
    json_t *v = member(r, key, required, &rc);
    if (present)
        *present = v != NULL;
    if (!v)
        return rc;
    if (!json_is_integer(v))
        return api_error(r, 400, "invalid", "field '%s' must be an integer", key), -1;
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return api_error(r, 400, "invalid", "field '%s' must be between %lld and %lld", key, (long long)min,
                         (long long)max),
               -1;
    *out = x;
    return 0;
}

int api_body_bool(api_req_t *r, const char *key, int required, int *out)
{
    int rc;
    json_t *v = member(r, key, required, &rc);
    if (!v)
        return rc;
    if (!json_is_boolean(v))
        return api_error(r, 400, "invalid", "field '%s' must be true or false", key), -1;
    *out = json_is_true(v);
    return 0;
}

/* A scanner for text jansson has already accepted, so it only has to find
 * boundaries, not validate. */
static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return end;
}

static const char *skip_value(const char *p, const char *end)
{
    if (p < end && *p == '"')
        return skip_string(p, end);
    int depth = 0;
    for (; p < end; p++) {
        if (*p == '"') {
            p = skip_string(p, end) - 1;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (depth == 0)
                return p;
            if (--depth == 0)
                return p + 1;
        } else if (depth == 0 && (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
            return p;
        }
    }
    return p;
}

static int key_equals(const char *ks, const char *ke, const char *key)
{
    size_t n = (size_t)(ke - ks);
    if (!memchr(ks, '\\', n))
        return n == strlen(key) && memcmp(ks, key, n) == 0;
    json_t *k = json_loadb(ks - 1, n + 2, JSON_DECODE_ANY, NULL);
    int eq = json_is_string(k) && strcmp(json_string_value(k), key) == 0;
    json_decref(k);
    return eq;
}

int api_body_raw_member(api_req_t *r, const char *key, const char **start, size_t *len)
{
    const char *p = r->body_raw, *end = p ? p + r->body_len : NULL;
    if (!p)
        return -1;
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return -1;
    for (p++;;) {
        p = skip_ws(p, end);
        if (p >= end || *p != '"')
            return -1;
        const char *ks = p + 1, *ke = skip_string(p, end) - 1;
        p = skip_ws(ke + 1, end);
        if (p >= end || *p != ':')
            return -1;
        p = skip_ws(p + 1, end);
        const char *vs = p;
        p = skip_value(p, end);
        if (key_equals(ks, ke, key)) {
            *start = vs;
            *len = (size_t)(p - vs);
            return 0;
        }
        p = skip_ws(p, end);
        if (p >= end || *p != ',')
            return -1;
        p++;
    }
}

int api_page_limit(api_req_t *r, int dflt, int max, int *limit)
{
    const char *l = api_query(r, "limit");
    int64_t v = dflt;
    if (l && (util_parse_digits(l, &v) != 0 || v < 1 || v > max))
        return api_error(r, 400, "invalid", "limit must be an integer from 1 to %d", max), -1;
    *limit = (int)v;
    return 0;
}

int api_page(api_req_t *r, int dflt, int max, int *limit, int64_t *cursor)
{
    const char *c = api_query(r, "cursor");
    if (api_page_limit(r, dflt, max, limit) != 0)
        return -1;
    *cursor = 0;
    if (c && *c && util_parse_digits(c, cursor) != 0)
        return api_error(r, 400, "invalid", "%s", "cursor is malformed; pass back nextCursor unchanged"), -1;
    return 0;
}

int api_project(api_req_t *r, const char *slug, int required, store_project_t *out)
{
    int rc;
    if (!r->auth.admin) {
        if (slug && strcmp(slug, r->auth.project_slug) != 0)
            return api_error(r, 404, "not_found", "%s", "no such project"), -1;
        rc = store_project_get(r->c->store, r->auth.project_id, out);
    } else if (!slug) {
        if (required)
            return api_error(r, 400, "invalid", "%s", "operator tokens must name the project (projectSlug)"), -1;
        memset(out, 0, sizeof(*out));
        return 0;
    } else {
        rc = store_project_by_slug(r->c->store, slug, out);
    }
    if (rc == STORE_NOTFOUND)
        return api_error(r, 404, "not_found", "%s", "no such project"), -1;
    if (rc != STORE_OK)
        return api_error_internal(r, "project lookup failed"), -1;
    return 0;
}

int api_domain(api_req_t *r, int idx, int latest, store_domain_t *out)
{
    char host[HOSTNAME_MAX];
    const char *why;
    if (idx >= r->nparams)
        return api_error_internal(r, "route has no hostname parameter"), -1;
    if (hostname_normalize(r->param[idx], host, sizeof(host), &why) != 0)
        return api_error(r, 400, "invalid", "hostname is invalid: %s", why), -1;
    int64_t pid = r->auth.admin ? 0 : r->auth.project_id;
    int rc = latest ? store_domain_latest(r->c->store, host, pid, out) : store_domain_active(r->c->store, host, out);
    if (rc == STORE_OK && !r->auth.admin && out->project_id != r->auth.project_id) {
        store_domain_clear(out);
        rc = STORE_NOTFOUND;
    }
    if (rc == STORE_NOTFOUND)
        return api_error(r, 404, "not_found", "%s", "no such domain"), -1;
    if (rc != STORE_OK)
        return api_error_internal(r, "domain lookup failed"), -1;
    return 0;
}

api_ops_t api_ops_for(api_req_t *r)
{
    api_ops_t o = { .store = r->c->store, .cfg = r->c->cfg, .actor = r->auth.token_id ? r->auth.token_id : "api" };
    return o;
}

/* ---- life cycle ---- */

void api_quiesce(api_t *a)
{
    if (!a)
        return;
    api_domains_flush(a->domains);
    api_resolve_quiesce(a->resolve);
    api_http_detach(a->http); /* control frees the listener next */
}

struct control *api_control(api_t *a)
{
    return a->c;
}

/* openapi-v1.yaml, compiled in by CMake (hee_embed). */
extern const char api_openapi_yaml[];
extern const size_t api_openapi_yaml_len;

const char *api_openapi(api_t *a, size_t *len)
{
    (void)a;
    *len = api_openapi_yaml_len;
    return api_openapi_yaml;
}

/* Bodies a little over [api] max_body are read and answered with a JSON
 * 413 (the limit is checked per request, so a reload can raise it within
 * the margin); far larger ones are refused unread. */
static size_t read_limit(const config_t *cf)
{
    int64_t lim = (int64_t)cf->api_max_body * 4;
    return (size_t)(lim < 1048576 ? 1048576 : lim);
}

void api_reload(api_t *a)
{
    if (a)
        api_http_set_max_body(a->http, read_limit(a->c->cfg));
}

api_t *api_new(struct control *c, char **err)
{
    api_t *a = calloc(1, sizeof(*a));
    if (!a)
        return *err = strdup("out of memory"), NULL;
    a->c = c;
    unsigned char rnd[3];
    if (util_random(rnd, sizeof(rnd)) != 0)
        memset(rnd, 0, sizeof(rnd));
    util_hex(a->ref_prefix, rnd, sizeof(rnd));
    if (usage_grow(a) != 0)
        goto oom;
    /* Best effort: without them tokens are hashed through crypto_sha256. */
    if ((a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) != NULL)
        a->md = EVP_MD_CTX_new();
    if (api_projects_init(a) != 0 || api_tokens_init(a) != 0 || !(a->domains = api_domains_init(a)) ||
        api_misc_init(a) != 0 || !(a->resolve = api_resolve_init(a))) {
        *err = strdup("cannot initialise the API (routes or admin token)");
        goto fail;
    }
    if (!(a->flush_ev = event_new(c->base, -1, EV_PERSIST, on_flush, a)))
        goto oom;
    struct timeval tv = { FLUSH_MS / 1000, (FLUSH_MS % 1000) * 1000 };
    event_add(a->flush_ev, &tv);
    if (!(a->http = api_http_new(c->listener, read_limit(c->cfg), c->cfg->api_max_conns, on_request, a)))
        goto oom;
    return a;
oom:
    *err = strdup("out of memory");
fail:
    api_free(a);
    return NULL;
}

void api_free(api_t *a)
{
    if (!a)
        return;
    api_domains_flush(a->domains); /* before the usage flush: a transaction each */
    if (a->usage)
        api_flush(a);
    if (a->flush_ev)
        event_free(a->flush_ev);
    for (int i = 0; i < a->nroutes; i++)
        for (int j = 0; j < MAX_SEGS; j++)
            free(a->routes[i].segs[j]);
    api_domains_free(a->domains);
    api_resolve_free(a->resolve);
    api_http_free(a->http);
    free(a->usage);
    EVP_MD_CTX_free(a->md);
    EVP_MD_free(a->sha256);
    free(a);
}
