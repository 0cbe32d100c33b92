/* api_domains: /v1/edge/domains — register, list, show, update (metadata;
 * rebind for operators) and soft-delete customer hostnames. Responses carry
 * the Domain object from common/domainobj.h, wrapped as {"domain":{…}}. */
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "common/domainobj.h"
#include "common/log.h"
#include "control/api.h"
#include "control/ctl.h"
#include "control/subsys.h"

static void reply_domain(api_req_t *r, int status, const store_domain_t *d)
{
    json_t *root = json_object();
    json_t *o = domainobj_json(d, r->c->cfg->edge_target);
    char *text = NULL;
    if (root && o && json_object_set_new(root, "domain", o) == 0) {
        o = NULL;
        text = domainobj_dumps(root, d->metadata);
    }
    json_decref(o);
    json_decref(root);
    if (!text) {
        api_error_internal(r, "cannot render the domain");
        return;
    }
    api_reply_json_text(r, status, text, strlen(text));
    free(text);
}

/* After a committed change: the edge drops what it cached for the host, and
 * webhook delivery wakes up. */
static void changed(api_req_t *r, const char *host, int events)
{
    ctl_domain_changed(r->c, host);
    if (events)
        ctl_events_committed(r->c);
}

/* metadata: the exact bytes of the body's member, which must be an object. */
static int body_metadata(api_req_t *r, const char **start, size_t *len)
{
    json_t *v = json_object_get(r->body, "metadata");
    *start = NULL;
    *len = 0;
    if (!v)
        return 0;
    if (!json_is_object(v))
        return api_error(r, 400, "invalid", "%s", "field 'metadata' must be a JSON object"), -1;
    if (api_body_raw_member(r, "metadata", start, len) != 0)
        return api_error_internal(r, "cannot locate metadata in the body"), -1;
    return 0;
}

/* The project a registration goes to: operators name it; project tokens
 * may repeat their own slug but never name another (403 either way, so the
 * answer says nothing about whether that project exists). */
static int target_project(api_req_t *r, const char *slug, store_project_t *p)
{
    if (!r->auth.admin && slug && strcmp(slug, r->auth.project_slug) != 0)
        return api_error(r, 403, "forbidden", "%s",
                         "projectSlug other than the token's own project requires apps:admin"),
               -1;
    if (api_project(r, slug, 1, p) != 0)
        return -1;
    return 0;
}

static void on_register(api_req_t *r)
{
    static const char *const fields[] = { "hostname", "metadata", "projectSlug", NULL };
    const char *host = NULL, *slug = NULL, *meta = NULL;
    size_t mlen = 0;
    store_project_t p;
    store_domain_t d;
    api_ops_err_t e;
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, fields) != 0 || api_body_str(r, "hostname", 1, &host) != 0 ||
        api_body_str(r, "projectSlug", 0, &slug) != 0 || body_metadata(r, &meta, &mlen) != 0 ||
        target_project(r, slug, &p) != 0)
        return;
    api_ops_t o = api_ops_for(r);
    if (api_ops_domain_register(&o, &p, host, meta, mlen, &d, &e) != 0) {
        api_error_ops(r, &e);
    } else {
        log_info("domain.created", "host=%s project=%s token=%s", d.hostname, p.slug, r->auth.token_id);
        /* No probe here: the scheduler checks a new domain within a tick, and
         * a hint would also start issuance — certificates are issued on
         * demand, at the first handshake, not at registration. */
        changed(r, d.hostname, 1);
        reply_domain(r, 201, &d);
        store_domain_clear(&d);
    }
    store_project_clear(&p);
}

struct list_ctx {
    struct evbuffer *out;
    const char *target;
    int64_t last_id;
    int n, failed;
};

static int list_one(const store_domain_t *d, void *arg)
{
    struct list_ctx *lc = arg;
    char *text = domainobj_text(d, lc->target);
    if (!text) {
        lc->failed = 1;
        return 1;
    }
    if (lc->n)
        evbuffer_add(lc->out, ",", 1);
    evbuffer_add(lc->out, text, strlen(text));
    free(text);
    lc->last_id = d->id;
    lc->n++;
    return 0;
}

static int bool_param(api_req_t *r, const char *name, int *out)
{
    const char *v = api_query(r, name);
    if (!v)
        return 0;
    if (strcmp(v, "true") == 0)
        *out = 1;
    else if (strcmp(v, "false") == 0)
        *out = 0;
    else
        return api_error(r, 400, "invalid", "%s must be true or false", name), -1;
    return 0;
}

static int list_filter(api_req_t *r, store_domain_filter_t *f)
{
    static const char *const params[] = { "cursor", "limit", "state", "verified", "includeRemoved", "project", NULL };
    store_project_t p;
    memset(f, 0, sizeof(*f));
    f->verified = -1;
    if (api_query_allow(r, params) != 0 || api_page(r, 100, 1000, &f->limit, &f->after_id) != 0 ||
        bool_param(r, "verified", &f->verified) != 0 || bool_param(r, "includeRemoved", &f->include_removed) != 0)
        return -1;
    f->state = api_query(r, "state");
    if (f->state && !api_ops_valid_state(f->state))
        return api_error(r, 400, "invalid", "%s", "state must be a ConnectionState value (e.g. pending_ownership, verified, live)"),
               -1;
    if (api_project(r, api_query(r, "project"), 0, &p) != 0)
        return -1;
    f->project_id = p.id;
    store_project_clear(&p);
    return 0;
}

static void on_list(api_req_t *r)
{
    store_domain_filter_t f;
    if (list_filter(r, &f) != 0)
        return;
    struct list_ctx lc = { .out = evbuffer_new(), .target = r->c->cfg->edge_target };
    if (!lc.out) {
        api_error_internal(r, "out of memory");
        return;
    }
    evbuffer_add(lc.out, "{\"domains\":[", 12);
    if (store_domain_list(r->c->store, &f, list_one, &lc) != STORE_OK || lc.failed) {
        evbuffer_free(lc.out);
        api_error_internal(r, "cannot list domains");
        return;
    }
    if (lc.n == f.limit)
        evbuffer_add_printf(lc.out, "],\"nextCursor\":\"%lld\"}", (long long)lc.last_id);
    else
        evbuffer_add(lc.out, "],\"nextCursor\":null}", 20);
    size_t len = evbuffer_get_length(lc.out);
    api_reply_json_text(r, 200, (const char *)evbuffer_pullup(lc.out, -1), len);
    evbuffer_free(lc.out);
}

static void on_show(api_req_t *r)
{
    store_domain_t d;
    if (api_query_allow(r, NULL) != 0 || api_domain(r, 0, 1, &d) != 0)
        return;
    reply_domain(r, 200, &d);
    store_domain_clear(&d);
}

/* PATCH with projectSlug naming another project: an operator's rebind. */
static void rebind(api_req_t *r, const store_domain_t *d, const char *slug, const char *meta, size_t mlen)
{
    store_project_t to;
    store_domain_t nd;
    api_ops_err_t e;
    if (api_project(r, slug, 1, &to) != 0)
        return;
    api_ops_t o = api_ops_for(r);
    if (api_ops_domain_rebind(&o, d, &to, meta, mlen, &nd, &e) != 0) {
        api_error_ops(r, &e);
    } else {
        log_info("domain.rebound", "host=%s from=%s to=%s token=%s", d->hostname, d->project_slug, to.slug,
                 r->auth.token_id);
        changed(r, d->hostname, 1);
        reply_domain(r, 200, &nd);
        store_domain_clear(&nd);
    }
    store_project_clear(&to);
}

static void on_update(api_req_t *r)
{
    static const char *const fields[] = { "metadata", "projectSlug", NULL };
    const char *slug = NULL, *meta = NULL;
    size_t mlen = 0;
    store_domain_t d, nd;
    api_ops_err_t e;
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, fields) != 0 ||
        api_body_str(r, "projectSlug", 0, &slug) != 0 || body_metadata(r, &meta, &mlen) != 0)
        return;
    if (!slug && !meta) {
        api_error(r, 400, "invalid", "%s", "expected at least one of metadata, projectSlug");
        return;
    }
    if (slug && !r->auth.admin && strcmp(slug, r->auth.project_slug) != 0) {
        api_error(r, 403, "forbidden", "%s", "moving a domain to another project requires apps:admin");
        return;
    }
    if (api_domain(r, 0, 0, &d) != 0)
        return;
    if (slug && strcmp(slug, d.project_slug) != 0) {
        rebind(r, &d, slug, meta, mlen);
    } else if (!meta) {
        reply_domain(r, 200, &d); /* already there: nothing to change */
    } else {
        api_ops_t o = api_ops_for(r);
        if (api_ops_domain_set_metadata(&o, &d, meta, mlen, &nd, &e) != 0) {
            api_error_ops(r, &e);
        } else {
            changed(r, d.hostname, 0);
            reply_domain(r, 200, &nd);
            store_domain_clear(&nd);
        }
    }
    store_domain_clear(&d);
}

static void on_delete(api_req_t *r)
{
    store_domain_t d, gone;
    api_ops_err_t e;
    if (api_query_allow(r, NULL) != 0 || api_domain(r, 0, 0, &d) != 0)
        return;
    api_ops_t o = api_ops_for(r);
    if (api_ops_domain_remove(&o, &d, &gone, &e) != 0) {
        api_error_ops(r, &e);
    } else {
        log_info("domain.deleted", "host=%s project=%s token=%s", d.hostname, d.project_slug, r->auth.token_id);
        changed(r, d.hostname, 1);
        reply_domain(r, 200, &gone);
        store_domain_clear(&gone);
    }
    store_domain_clear(&d);
}

int api_domains_init(api_t *a)
{
    int rc = 0;
    rc |= api_route(a, API_POST, "/v1/edge/domains", API_SCOPE_CONNECTIONS_WRITE, API_BODY_JSON, on_register, NULL);
    rc |= api_route(a, API_GET, "/v1/edge/domains", API_SCOPE_CONNECTIONS_READ, 0, on_list, NULL);
    rc |= api_route(a, API_GET, "/v1/edge/domains/{hostname}", API_SCOPE_CONNECTIONS_READ, 0, on_show, NULL);
    rc |= api_route(a, API_PATCH, "/v1/edge/domains/{hostname}", API_SCOPE_CONNECTIONS_WRITE, API_BODY_JSON,
                    on_update, NULL);
    rc |= api_route(a, API_DELETE, "/v1/edge/domains/{hostname}", API_SCOPE_CONNECTIONS_WRITE, 0, on_delete, NULL);
    return rc;
}
