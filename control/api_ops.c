#include "control/api_ops.h"

#include <ctype.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/domainobj.h"
#include "common/hostname.h"
#include "common/log.h"
#include "common/store_audit.h"
#include "common/store_event.h"
#include "common/store_usage.h"
#include "common/util.h"

static const struct {
    const char *name;
    unsigned bit;
} scope_names[] = {
    { "connections:read", API_SCOPE_CONNECTIONS_READ },
    { "connections:write", API_SCOPE_CONNECTIONS_WRITE },
    { "webhooks:write", API_SCOPE_WEBHOOKS_WRITE },
    { "usage:read", API_SCOPE_USAGE_READ },
    { "apps:admin", API_SCOPE_APPS_ADMIN },
};

static const char *const states[] = {
    "created", "pending_ownership", "verifying", "verified", "dns_writing", "propagating",
    "stalled", "issuing_cert", "live", "drifted", "failed", "archived",
};

__attribute__((format(printf, 4, 5))) static int fail(api_ops_err_t *e, int status, const char *code,
                                                      const char *fmt, ...)
{
    e->status = status;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int internal(api_ops_err_t *e, const char *what)
{
    return fail(e, 500, "internal", "%s", what);
}

/* ---- validation ---- */

int api_ops_parse_scopes(const char *text, unsigned *mask, api_ops_err_t *e)
{
    *mask = 0;
    for (const char *p = text; p && *p;) {
        p += strspn(p, " ,\t");
        size_t len = strcspn(p, " ,\t");
        if (len == 0)
            break;
        unsigned bit = 0;
        for (size_t i = 0; i < UTIL_ARRAY_LEN(scope_names); i++)
            if (strlen(scope_names[i].name) == len && memcmp(scope_names[i].name, p, len) == 0)
                bit = scope_names[i].bit;
        if (!bit)
            return fail(e, 400, "invalid",
                        "unknown scope '%.*s'; expected connections:read, connections:write, "
                        "webhooks:write, usage:read or apps:admin",
                        (int)(len > 40 ? 40 : len), p);
        *mask |= bit;
        p += len;
    }
    if (!*mask)
        return fail(e, 400, "invalid", "%s", "at least one scope is required");
    return 0;
}

char *api_ops_scopes_text(unsigned mask, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < UTIL_ARRAY_LEN(scope_names); i++) {
        if (!(mask & scope_names[i].bit))
            continue;
        int m = snprintf(buf + n, len - n, "%s%s", n ? " " : "", scope_names[i].name);
        if (m < 0 || (size_t)m >= len - n)
            break;
        n += (size_t)m;
    }
    return buf;
}

int api_ops_check_slug(const char *slug, api_ops_err_t *e)
{
    size_t n = slug ? strlen(slug) : 0;
    if (n == 0 || n > API_SLUG_MAX)
        return fail(e, 400, "invalid", "slug must be 1 to %d characters", API_SLUG_MAX);
    for (size_t i = 0; i < n; i++) {
        char ch = slug[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || (ch == '-' && i > 0 && i + 1 < n);
        if (!ok)
            return fail(e, 400, "invalid", "%s",
                        "slug may hold only a-z, 0-9 and inner hyphens");
    }
    return 0;
}

int api_ops_check_upstream(const char *url, const char *what, api_ops_err_t *e)
{
    if (!url || !*url)
        return fail(e, 400, "invalid", "%s is required", what);
    if (strlen(url) > 2048)
        return fail(e, 400, "invalid", "%s is longer than 2048 bytes", what);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return fail(e, 400, "invalid", "%s contains spaces or non-ASCII characters", what);
    struct evhttp_uri *u = evhttp_uri_parse_with_flags(url, 0);
    int rc = 0;
    const char *scheme = u ? evhttp_uri_get_scheme(u) : NULL;
    const char *host = u ? evhttp_uri_get_host(u) : NULL;
    if (!u || !scheme || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
        rc = fail(e, 400, "invalid", "%s must be an http:// or https:// URL", what);
    else if (!host || !*host)
        rc = fail(e, 400, "invalid", "%s has no host", what);
    else if (evhttp_uri_get_userinfo(u))
        rc = fail(e, 400, "invalid", "%s must not carry credentials", what);
    else if (evhttp_uri_get_query(u) || evhttp_uri_get_fragment(u))
        rc = fail(e, 400, "invalid", "%s must not have a query or fragment", what);
    if (u)
        evhttp_uri_free(u);
    return rc;
}

static int check_verification(const json_t *v, api_ops_err_t *e)
{
    if (json_is_string(v)) {
        if (strcmp(json_string_value(v), "registration") == 0)
            return 0;
        return fail(e, 400, "invalid", "%s",
                    "settings.verification must be \"registration\" or an array of \"cname\", \"a\", \"txt\"");
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(e, 400, "invalid", "%s",
                    "settings.verification must be \"registration\" or a non-empty array of \"cname\", \"a\", \"txt\"");
    unsigned seen = 0;
    size_t i;
    const json_t *m;
    json_array_foreach(v, i, m) {
        const char *s = json_string_value(m);
        unsigned bit = !s ? 0 : strcmp(s, "cname") == 0 ? 1 : strcmp(s, "a") == 0 ? 2 : strcmp(s, "txt") == 0 ? 4 : 0;
        if (!bit)
            return fail(e, 400, "invalid", "%s", "settings.verification entries must be \"cname\", \"a\" or \"txt\"");
        if (seen & bit)
            return fail(e, 400, "invalid", "settings.verification lists \"%s\" twice", s);
        seen |= bit;
    }
    return 0;
}

char *api_ops_settings_text(const json_t *settings, api_ops_err_t *e)
{
    if (!settings)
        return strdup("{}");
    if (!json_is_object(settings))
        return fail(e, 400, "invalid", "%s", "settings must be a JSON object"), NULL;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)settings, key, v) {
        if (strcmp(key, "verification") == 0) {
            if (check_verification(v, e) != 0)
                return NULL;
        } else if (strcmp(key, "forwardMetadata") == 0) {
            if (!json_is_boolean(v))
                return fail(e, 400, "invalid", "%s", "settings.forwardMetadata must be a boolean"), NULL;
        } else if (strcmp(key, "maxBodyBytes") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0)
                return fail(e, 400, "invalid", "%s", "settings.maxBodyBytes must be an integer >= 0"), NULL;
        } else {
            return fail(e, 400, "invalid",
                        "unknown field 'settings.%.64s'; expected verification, forwardMetadata, maxBodyBytes",
                        key),
                   NULL;
        }
    }
    char *text = json_dumps(settings, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        internal(e, "cannot serialise settings");
    return text;
}

int api_ops_check_metadata(const char *text, size_t len, api_ops_err_t *e)
{
    if (len > API_METADATA_MAX)
        return fail(e, 400, "invalid", "metadata is %zu bytes; the limit is %d", len, API_METADATA_MAX);
    json_error_t jerr;
    json_t *m = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    int rc = 0;
    if (!m)
        rc = fail(e, 400, "invalid", "metadata is not valid JSON: %s", jerr.text);
    else if (!json_is_object(m))
        rc = fail(e, 400, "invalid", "%s", "metadata must be a JSON object");
    json_decref(m);
    return rc;
}

int api_ops_valid_state(const char *state)
{
    for (size_t i = 0; state && i < UTIL_ARRAY_LEN(states); i++)
        if (strcmp(states[i], state) == 0)
            return 1;
    return 0;
}

/* ---- transactions ---- */

static int begin(const api_ops_t *o, api_ops_err_t *e)
{
    if (store_begin(o->store) != STORE_OK)
        return internal(e, "cannot begin a transaction");
    return 0;
}

static int commit(const api_ops_t *o, api_ops_err_t *e)
{
    if (store_commit(o->store) != STORE_OK)
        return internal(e, "cannot commit");
    return 0;
}

static int abort_tx(const api_ops_t *o)
{
    store_rollback(o->store);
    return -1;
}

static int audit(const api_ops_t *o, int64_t project_id, const char *action, const char *target,
                 const char *detail)
{
    return store_audit_add(o->store, project_id, o->actor, action, target, detail, util_now_ms());
}

/* ---- projects ---- */

int api_ops_project_create(const api_ops_t *o, store_project_t *p, api_ops_err_t *e)
{
    if (api_ops_check_slug(p->slug, e) != 0 || api_ops_check_upstream(p->upstream, "upstream", e) != 0)
        return -1;
    if (p->upstream_fallback && api_ops_check_upstream(p->upstream_fallback, "upstreamFallback", e) != 0)
        return -1;
    if (p->max_domains < 0)
        return fail(e, 400, "invalid", "%s", "maxDomains must be >= 0");
    if (begin(o, e) != 0)
        return -1;
    int rc = store_project_create(o->store, p, util_now_ms());
    if (rc == STORE_CONFLICT)
        return abort_tx(o), fail(e, 400, "invalid", "project slug '%s' is taken", p->slug);
    if (rc != STORE_OK || audit(o, p->id, "project.create", p->slug, NULL) != STORE_OK)
        return abort_tx(o), internal(e, "cannot create the project");
    return commit(o, e);
}

int api_ops_project_update(const api_ops_t *o, const store_project_t *p, api_ops_err_t *e)
{
    if (api_ops_check_upstream(p->upstream, "upstream", e) != 0)
        return -1;
    if (p->upstream_fallback && api_ops_check_upstream(p->upstream_fallback, "upstreamFallback", e) != 0)
        return -1;
    if (p->max_domains < 0)
        return fail(e, 400, "invalid", "%s", "maxDomains must be >= 0");
    if (begin(o, e) != 0)
        return -1;
    int rc = store_project_update(o->store, p, util_now_ms());
    if (rc == STORE_NOTFOUND)
        return abort_tx(o), fail(e, 404, "not_found", "%s", "no such project");
    if (rc != STORE_OK || audit(o, p->id, "project.update", p->slug, NULL) != STORE_OK)
        return abort_tx(o), internal(e, "cannot update the project");
    return commit(o, e);
}

int api_ops_project_delete(const api_ops_t *o, const store_project_t *p, api_ops_err_t *e)
{
    if (begin(o, e) != 0)
        return -1;
    int64_t n = 0;
    int64_t now = util_now_ms();
    if (store_domain_count_active(o->store, p->id, &n) != STORE_OK)
        return abort_tx(o), internal(e, "cannot count domains");
    if (n > 0)
        return abort_tx(o), fail(e, 400, "invalid",
                                 "project '%s' has %lld active domains; remove or move them first", p->slug,
                                 (long long)n);
    int rc = store_project_delete(o->store, p->id, now);
    if (rc == STORE_NOTFOUND)
        return abort_tx(o), fail(e, 404, "not_found", "%s", "no such project");
    if (rc != STORE_OK || store_token_revoke_project(o->store, p->id, now) != STORE_OK ||
        audit(o, p->id, "project.delete", p->slug, NULL) != STORE_OK)
        return abort_tx(o), internal(e, "cannot delete the project");
    return commit(o, e);
}

/* ---- tokens ---- */

int api_ops_token_create(const api_ops_t *o, const store_project_t *project, unsigned mask, const char *name,
                         store_token_t *out, char **secret, api_ops_err_t *e)
{
    char scopes[128];
    memset(out, 0, sizeof(*out));
    *secret = NULL;
    if (!project && mask != API_SCOPE_APPS_ADMIN)
        return fail(e, 400, "invalid", "%s", "operator tokens carry exactly the scope apps:admin");
    if (project && (mask & API_SCOPE_APPS_ADMIN))
        return fail(e, 400, "invalid", "%s",
                    "apps:admin is an operator scope; project tokens may hold connections:read, "
                    "connections:write, webhooks:write and usage:read");
    if (name && strlen(name) > 200)
        return fail(e, 400, "invalid", "%s", "name is longer than 200 bytes");
    char *rnd = util_random_id("", 32);
    out->id = util_random_id("tok_", 12);
    out->scopes = strdup(api_ops_scopes_text(mask, scopes, sizeof(scopes)));
    out->name = strdup(name ? name : "");
    out->project_id = project ? project->id : 0;
    out->project_slug = project ? strdup(project->slug) : NULL;
    out->created_at = util_now_ms();
    size_t slen = rnd ? strlen(rnd) + 5 : 0;
    *secret = rnd ? malloc(slen) : NULL;
    if (!rnd || !out->id || !out->scopes || !out->name || (project && !out->project_slug) || !*secret)
        goto oom;
    snprintf(*secret, slen, "hee_%s", rnd);
    if (crypto_sha256(*secret, strlen(*secret), out->hash) != 0)
        goto oom;
    free(rnd);
    rnd = NULL;
    if (begin(o, e) != 0)
        goto fail;
    if (store_token_create(o->store, out) != STORE_OK ||
        audit(o, out->project_id, "token.create", out->id, NULL) != STORE_OK) {
        abort_tx(o);
        internal(e, "cannot store the token");
        goto fail;
    }
    if (commit(o, e) != 0)
        goto fail;
    return 0;
oom:
    internal(e, "out of memory");
fail:
    free(rnd);
    store_token_clear(out);
    if (*secret)
        OPENSSL_cleanse(*secret, strlen(*secret));
    free(*secret);
    *secret = NULL;
    return -1;
}

int api_ops_token_revoke(const api_ops_t *o, const char *id, int64_t project_id, api_ops_err_t *e)
{
    store_token_t t;
    if (begin(o, e) != 0)
        return -1;
    int rc = store_token_get(o->store, id, &t);
    if (rc == STORE_NOTFOUND || (rc == STORE_OK && (t.revoked_at || (project_id > 0 && t.project_id != project_id)))) {
        if (rc == STORE_OK)
            store_token_clear(&t);
        return abort_tx(o), fail(e, 404, "not_found", "%s", "no such active token");
    }
    if (rc != STORE_OK)
        return abort_tx(o), internal(e, "cannot read the token");
    int64_t pid = t.project_id;
    store_token_clear(&t);
    if (store_token_revoke(o->store, id, util_now_ms()) != STORE_OK ||
        audit(o, pid, "token.revoke", id, NULL) != STORE_OK)
        return abort_tx(o), internal(e, "cannot revoke the token");
    return commit(o, e);
}

/* ---- domains ---- */

char *api_ops_event_data(const store_domain_t *d, const char *cname_target, const char *reason)
{
    json_t *data = json_object();
    json_t *dom = domainobj_json(d, cname_target);
    char *text = NULL;
    if (!data || !dom || json_object_set_new(data, "domain", dom) != 0) {
        json_decref(dom);
        goto out;
    }
    if (reason && json_object_set_new(data, "reason", json_string(reason)) != 0)
        goto out;
    text = domainobj_dumps(data, d->metadata);
out:
    json_decref(data);
    return text;
}

/* Writes the event for d's current row; d is re-read so the payload shows
 * what was committed. */
static int emit(const api_ops_t *o, int64_t domain_id, const char *type, const char *reason, store_domain_t *out)
{
    if (store_domain_get(o->store, domain_id, out) != STORE_OK)
        return -1;
    char *data = api_ops_event_data(out, o->cfg->edge_target, reason);
    int rc = data ? store_event_emit(o->store, out->project_id, out->id, type, data, NULL) : STORE_ERR;
    free(data);
    if (rc != STORE_OK) {
        store_domain_clear(out);
        return -1;
    }
    return 0;
}

static int quota_check(const api_ops_t *o, const store_project_t *p, int64_t *active, api_ops_err_t *e)
{
    if (store_domain_count_active(o->store, p->id, active) != STORE_OK)
        return internal(e, "cannot count domains");
    if (*active >= p->max_domains)
        return fail(e, 402, "QuotaExceeded", "project '%s' has reached its plan limit of %lld active domains",
                    p->slug, (long long)p->max_domains);
    return 0;
}

int api_ops_domain_register_check(const api_ops_t *o, const char *hostname, const char *metadata,
                                  size_t metadata_len, char *host, api_ops_err_t *e)
{
    const char *why = NULL;
    if (hostname_check_registrable(hostname, o->cfg->edge_target, host, HOSTNAME_MAX, &why) != 0)
        return fail(e, 400, "invalid", "hostname is invalid: %s", why);
    if (metadata && api_ops_check_metadata(metadata, metadata_len, e) != 0)
        return -1;
    return 0;
}

/* The body of api_ops_domain_register_tx, inside its savepoint. */
static int register_writes(const api_ops_t *o, int64_t project_id, const char *hostname, char *meta, size_t mlen,
                           char *challenge, store_domain_t *out, api_ops_err_t *e)
{
    char detail[64], host[HOSTNAME_MAX];
    snprintf(host, sizeof(host), "%s", hostname);
    store_project_t p;
    int rc = store_project_get(o->store, project_id, &p);
    if (rc == STORE_NOTFOUND)
        return fail(e, 404, "not_found", "%s", "no such project");
    if (rc != STORE_OK)
        return internal(e, "cannot read the project");
    if (p.active_domains >= p.max_domains) {
        fail(e, 402, "QuotaExceeded", "project '%s' has reached its plan limit of %lld active domains", p.slug,
             (long long)p.max_domains);
        store_project_clear(&p);
        return -1;
    }
    int64_t active = p.active_domains;
    store_project_clear(&p);
    store_domain_t d = {
        .hostname = host, .project_id = project_id, .state = "pending_ownership",
        .challenge = challenge, .metadata = meta, .cert_status = "none",
        .created_at = util_now_ms(),
    };
    int src = store_domain_insert(o->store, &d);
    if (src == STORE_CONFLICT)
        return fail(e, 409, "HostnameConflict", "%s is already registered", host);
    snprintf(detail, sizeof(detail), "{\"metadataBytes\":%zu}", mlen);
    if (src != STORE_OK || emit(o, d.id, "domain.created", NULL, out) != 0)
        return internal(e, "cannot register the domain");
    if (audit(o, project_id, "domain.create", host, detail) != STORE_OK ||
        store_usage_max(o->store, project_id, USAGE_ACTIVE_DOMAIN, active + 1) != STORE_OK) {
        store_domain_clear(out);
        return internal(e, "cannot register the domain");
    }
    return 0;
}

int api_ops_domain_register_tx(const api_ops_t *o, int64_t project_id, const char *host, const char *metadata,
                               size_t metadata_len, store_domain_t *out, api_ops_err_t *e)
{
    memset(out, 0, sizeof(*out));
    if (!metadata) {
        metadata = "{}";
        metadata_len = 2;
    }
    char *meta = util_strndup(metadata, metadata_len);
    char *challenge = util_random_id("", 24);
    int rc = -1;
    if (!meta || !challenge) {
        internal(e, "out of memory");
        goto out;
    }
    if (store_savepoint(o->store) != STORE_OK) {
        internal(e, "cannot open a savepoint");
        goto out;
    }
    if (register_writes(o, project_id, host, meta, metadata_len, challenge, out, e) != 0) {
        store_savepoint_undo(o->store);
        goto out;
    }
    if (store_savepoint_release(o->store) != STORE_OK) {
        store_domain_clear(out);
        store_savepoint_undo(o->store);
        internal(e, "cannot release the savepoint");
        goto out;
    }
    rc = 0;
out:
    free(meta);
    free(challenge);
    return rc;
}

int api_ops_domain_register(const api_ops_t *o, const store_project_t *p, const char *hostname,
                            const char *metadata, size_t metadata_len, store_domain_t *out, api_ops_err_t *e)
{
    char host[HOSTNAME_MAX];
    memset(out, 0, sizeof(*out));
    if (api_ops_domain_register_check(o, hostname, metadata, metadata_len, host, e) != 0 || begin(o, e) != 0)
        return -1;
    if (api_ops_domain_register_tx(o, p->id, host, metadata, metadata_len, out, e) != 0)
        return abort_tx(o);
    if (commit(o, e) != 0) {
        store_domain_clear(out);
        return -1;
    }
    return 0;
}

int api_ops_domain_set_metadata(const api_ops_t *o, const store_domain_t *d, const char *metadata,
                                size_t metadata_len, store_domain_t *out, api_ops_err_t *e)
{
    char detail[64];
    memset(out, 0, sizeof(*out));
    if (api_ops_check_metadata(metadata, metadata_len, e) != 0 || begin(o, e) != 0)
        return -1;
    int rc = store_domain_set_metadata(o->store, d->id, metadata, metadata_len, util_now_ms());
    if (rc == STORE_NOTFOUND)
        return abort_tx(o), fail(e, 404, "not_found", "%s", "no such domain");
    snprintf(detail, sizeof(detail), "{\"metadataBytes\":%zu}", metadata_len);
    if (rc != STORE_OK || audit(o, d->project_id, "domain.update", d->hostname, detail) != STORE_OK ||
        store_domain_get(o->store, d->id, out) != STORE_OK) {
        store_domain_clear(out);
        return abort_tx(o), internal(e, "cannot update the domain");
    }
    if (commit(o, e) != 0) {
        store_domain_clear(out);
        return -1;
    }
    return 0;
}

int api_ops_domain_rebind(const api_ops_t *o, const store_domain_t *d, const store_project_t *to,
                          const char *metadata, size_t metadata_len, store_domain_t *out, api_ops_err_t *e)
{
    store_domain_t old = { 0 };
    memset(out, 0, sizeof(*out));
    if (!metadata) {
        metadata = "{}";
        metadata_len = 2;
    }
    if (api_ops_check_metadata(metadata, metadata_len, e) != 0)
        return -1;
    char *meta = util_strndup(metadata, metadata_len);
    char *challenge = util_random_id("", 24);
    int64_t now = util_now_ms(), active = 0;
    int rc = -1;
    if (!meta || !challenge) {
        internal(e, "out of memory");
        goto out;
    }
    store_domain_t nd = {
        .hostname = d->hostname, .project_id = to->id, .state = d->state, .verified = d->verified,
        .verified_at = d->verified_at, .verify_method = d->verify_method, .challenge = challenge,
        .metadata = meta, .cert_status = d->cert_status, .created_at = now,
    };
    if (begin(o, e) != 0)
        goto out;
    if (quota_check(o, to, &active, e) != 0) {
        abort_tx(o);
        goto out;
    }
    int src = store_domain_remove(o->store, d->id, now);
    if (src == STORE_NOTFOUND) {
        abort_tx(o);
        fail(e, 404, "not_found", "%s", "no such domain");
        goto out;
    }
    if (src != STORE_OK || emit(o, d->id, "domain.deleted", "rebind", &old) != 0 ||
        store_domain_insert(o->store, &nd) != STORE_OK || emit(o, nd.id, "domain.created", "rebind", out) != 0 ||
        audit(o, d->project_id, "domain.rebind", d->hostname, "{\"direction\":\"out\"}") != STORE_OK ||
        audit(o, to->id, "domain.rebind", d->hostname, "{\"direction\":\"in\"}") != STORE_OK ||
        store_usage_max(o->store, to->id, USAGE_ACTIVE_DOMAIN, active + 1) != STORE_OK) {
        abort_tx(o);
        store_domain_clear(out);
        internal(e, "cannot move the domain");
        goto out;
    }
    if (commit(o, e) != 0) {
        store_domain_clear(out);
        goto out;
    }
    rc = 0;
out:
    store_domain_clear(&old);
    free(meta);
    free(challenge);
    return rc;
}

int api_ops_domain_remove(const api_ops_t *o, const store_domain_t *d, store_domain_t *out, api_ops_err_t *e)
{
    memset(out, 0, sizeof(*out));
    if (begin(o, e) != 0)
        return -1;
    int rc = store_domain_remove(o->store, d->id, util_now_ms());
    if (rc == STORE_NOTFOUND)
        return abort_tx(o), fail(e, 404, "not_found", "%s", "no such domain");
    if (rc != STORE_OK || emit(o, d->id, "domain.deleted", NULL, out) != 0 ||
        audit(o, d->project_id, "domain.delete", d->hostname, NULL) != STORE_OK) {
        store_domain_clear(out);
        return abort_tx(o), internal(e, "cannot remove the domain");
    }
    if (commit(o, e) != 0) {
        store_domain_clear(out);
        return -1;
    }
    return 0;
}
