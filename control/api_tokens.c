/* api_tokens: /v1/tokens — operator-only minting, listing and revocation of
 * bearer tokens, and the first operator token written to data_dir at the
 * first start. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "control/api.h"
#include "control/ctl.h"

static json_t *iso(int64_t ms)
{
    char ts[32];
    return ms ? json_string(util_iso8601(ms, ts, sizeof(ts))) : json_null();
}

static json_t *scopes_json(const char *text)
{
    json_t *arr = json_array();
    for (const char *p = text; arr && *p;) {
        p += strspn(p, " ");
        size_t n = strcspn(p, " ");
        if (!n)
            break;
        json_array_append_new(arr, json_stringn(p, n));
        p += n;
    }
    return arr;
}

static json_t *token_json(const store_token_t *t)
{
    return json_pack("{s:s,s:s?,s:o,s:s,s:o,s:o,s:o}", "id", t->id, "projectSlug", t->project_slug, "scopes",
                     scopes_json(t->scopes), "name", t->name, "createdAt", iso(t->created_at), "lastUsedAt",
                     iso(t->last_used_at), "revokedAt", iso(t->revoked_at));
}

/* scopes: an array of names or one space-separated string. */
static int body_scopes(api_req_t *r, unsigned *mask)
{
    json_t *v = json_object_get(r->body, "scopes");
    api_ops_err_t e;
    char buf[512] = "";
    if (!v)
        return api_error(r, 400, "invalid", "%s", "field 'scopes' is required"), -1;
    if (json_is_string(v)) {
        snprintf(buf, sizeof(buf), "%s", json_string_value(v));
    } else if (json_is_array(v)) {
        size_t i;
        json_t *s;
        json_array_foreach(v, i, s) {
            if (!json_is_string(s))
                return api_error(r, 400, "invalid", "%s", "field 'scopes' must hold strings"), -1;
            size_t n = strlen(buf);
            snprintf(buf + n, sizeof(buf) - n, " %s", json_string_value(s));
        }
    } else {
        return api_error(r, 400, "invalid", "%s", "field 'scopes' must be an array of scope names"), -1;
    }
    if (api_ops_parse_scopes(buf, mask, &e) != 0)
        return api_error_ops(r, &e), -1;
    return 0;
}

static void on_create(api_req_t *r)
{
    static const char *const fields[] = { "projectSlug", "scopes", "name", "admin", NULL };
    const char *slug = NULL, *name = NULL;
    int admin = 0;
    unsigned mask = API_SCOPE_APPS_ADMIN;
    store_project_t p = { 0 };
    store_token_t t;
    char *secret = NULL;
    api_ops_err_t e;
    if (api_body_allow(r, fields) != 0 || api_body_str(r, "projectSlug", 0, &slug) != 0 ||
        api_body_str(r, "name", 0, &name) != 0 || api_body_bool(r, "admin", 0, &admin) != 0)
        return;
    if (admin && slug) {
        api_error(r, 400, "invalid", "%s", "an operator token (admin: true) belongs to no project");
        return;
    }
    if (!admin && !slug) {
        api_error(r, 400, "invalid", "%s", "field 'projectSlug' is required (or admin: true)");
        return;
    }
    if ((!admin || json_object_get(r->body, "scopes")) && body_scopes(r, &mask) != 0)
        return;
    if (slug && api_project(r, slug, 1, &p) != 0)
        return;
    api_ops_t o = api_ops_for(r);
    if (api_ops_token_create(&o, slug ? &p : NULL, mask, name, &t, &secret, &e) != 0) {
        api_error_ops(r, &e);
    } else {
        json_t *tj = token_json(&t);
        if (tj)
            json_object_set_new(tj, "token", json_string(secret));
        api_reply_header(r, "Cache-Control", "no-store");
        api_reply_json(r, 201, tj ? json_pack("{s:o}", "token", tj) : NULL);
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
        store_token_clear(&t);
    }
    store_project_clear(&p);
}

struct list_ctx {
    json_t *arr;
    char last[48];
    int n;
};

static int list_one(const store_token_t *t, void *arg)
{
    struct list_ctx *lc = arg;
    json_array_append_new(lc->arr, token_json(t));
    snprintf(lc->last, sizeof(lc->last), "%s", t->id);
    lc->n++;
    return 0;
}

/* ?project=SLUG lists one project's tokens, ?admin=true the operator tokens,
 * neither lists all. The cursor is the last token id of the previous page. */
static int list_population(api_req_t *r, int64_t *pid)
{
    const char *slug = api_query(r, "project"), *adm = api_query(r, "admin");
    *pid = -1;
    if (adm && strcmp(adm, "true") != 0 && strcmp(adm, "false") != 0) {
        api_error(r, 400, "invalid", "%s", "admin must be true or false");
        return -1;
    }
    if (slug) {
        store_project_t p;
        if (api_project(r, slug, 1, &p) != 0)
            return -1;
        *pid = p.id;
        store_project_clear(&p);
    } else if (adm && strcmp(adm, "true") == 0) {
        *pid = 0;
    }
    return 0;
}

static void on_list(api_req_t *r)
{
    static const char *const params[] = { "project", "limit", "cursor", "admin", NULL };
    int limit;
    int64_t pid;
    if (api_query_allow(r, params) != 0 || list_population(r, &pid) != 0 ||
        api_page_limit(r, 100, 1000, &limit) != 0)
        return;
    /* Token cursors are ids, not numbers. */
    const char *cursor = api_query(r, "cursor");
    if (cursor && *cursor && strncmp(cursor, "tok_", 4) != 0) {
        api_error(r, 400, "invalid", "%s", "cursor is malformed; pass back nextCursor unchanged");
        return;
    }
    struct list_ctx lc = { .arr = json_array() };
    if (!lc.arr || store_token_list(r->c->store, pid, cursor && *cursor ? cursor : NULL, limit, list_one, &lc) !=
                       STORE_OK) {
        json_decref(lc.arr);
        api_error_internal(r, "cannot list tokens");
        return;
    }
    api_reply_json(r, 200, json_pack("{s:o,s:s?}", "tokens", lc.arr, "nextCursor", lc.n == limit ? lc.last : NULL));
}

static void on_revoke(api_req_t *r)
{
    api_ops_err_t e;
    api_ops_t o = api_ops_for(r);
    if (api_ops_token_revoke(&o, r->param[0], 0, &e) != 0) {
        api_error_ops(r, &e);
        return;
    }
    api_tokens_invalidate(r->api, 0, r->param[0]);
    api_reply_empty(r);
}

/* First start: mint the operator token and write it, once, to a 0600 file
 * (temp file, fsync, rename). If the file cannot be written the token is
 * revoked again. A crash in between leaves a token nobody holds; `hee token
 * create --admin` mints another. */
static int bootstrap_admin(api_t *a, struct control *c)
{
    int64_t n = 0;
    if (store_token_count_operator(c->store, &n) != STORE_OK)
        return -1;
    if (n > 0)
        return 0;
    char *path = config_data_path(c->cfg, "admin.token");
    char *tmp = config_data_path(c->cfg, "admin.token.tmp");
    char *secret = NULL;
    store_token_t t;
    api_ops_err_t e;
    int rc = -1, fd = -1;
    if (!path || !tmp)
        goto out;
    unlink(tmp);
    api_ops_t o = { .store = c->store, .cfg = c->cfg, .actor = "bootstrap" };
    if (api_ops_token_create(&o, NULL, API_SCOPE_APPS_ADMIN, "bootstrap", &t, &secret, &e) != 0) {
        log_error("api.bootstrap_failed", "reason=\"%s\"", e.message);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t len = strlen(secret);
    if (fd < 0 || write(fd, secret, len) != (ssize_t)len || write(fd, "\n", 1) != 1 || fsync(fd) != 0 ||
        rename(tmp, path) != 0) {
        log_error("api.bootstrap_failed", "path=%s error=\"%s\"", path, strerror(errno));
        /* Without the file nobody could use the token: take it back. */
        api_ops_token_revoke(&o, t.id, 0, &e);
        unlink(tmp);
        goto out_token;
    }
    log_info("api.admin_token_created", "token_id=%s path=%s", t.id, path);
    rc = 0;
out_token:
    store_token_clear(&t);
out:
    if (fd >= 0)
        close(fd);
    if (secret) {
        OPENSSL_cleanse(secret, strlen(secret));
        free(secret);
    }
    free(path);
    free(tmp);
    return rc;
}

int api_tokens_init(api_t *a)
{
    struct control *c = api_control(a);
    int rc = 0;
    rc |= api_route(a, API_POST, "/v1/tokens", API_SCOPE_APPS_ADMIN, API_BODY_JSON, on_create, NULL);
    rc |= api_route(a, API_GET, "/v1/tokens", API_SCOPE_APPS_ADMIN, 0, on_list, NULL);
    rc |= api_route(a, API_DELETE, "/v1/tokens/{id}", API_SCOPE_APPS_ADMIN, 0, on_revoke, NULL);
    if (rc == 0 && bootstrap_admin(a, c) != 0)
        rc = -1;
    return rc;
}
