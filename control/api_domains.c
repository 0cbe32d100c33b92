/* api_domains: /v1/edge/domains — register, list, show, update (metadata;
 * rebind for operators) and soft-delete customer hostnames. Responses carry
 * the Domain object from common/domainobj.h, wrapped as {"domain":{…}}.
 *
 * DESIGN — registrations commit in groups
 * A registration's cost is its COMMIT (synchronous=FULL: an fsync), so
 * registrations are not committed one by one. The handler checks what it
 * can alone (fields, hostname rules, metadata, the project), then defers
 * the request into a batch. The batch is committed — one transaction, one
 * fsync — when the loop has run every callback that was ready alongside it
 * (an event made active at the first registration runs after them), or at
 * once when it holds REG_BATCH_MAX. No timer: a lone client waits for
 * nothing, and clients that keep the API busy find their requests batched
 * because the requests that arrive during one fsync are all ready at the
 * next turn of the loop.
 * Inside the transaction each registration runs under its own savepoint
 * (api_ops_domain_register_tx), so a conflict, a quota refusal or an error
 * undoes that one and not the others; quota and conflicts see the batch's
 * earlier registrations. Every reply goes out after the COMMIT: a 201 is as
 * durable as before. If the COMMIT fails, every registration of the batch
 * gets the 500 (none was acknowledged, none was kept). */
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "common/domainobj.h"
#include "common/hostname.h"
#include "common/log.h"
#include "control/api.h"
#include "control/ctl.h"
#include "control/subsys.h"

#define REG_BATCH_MAX 64

struct reg_job {
    api_req_t *r;                /* deferred until the batch commits */
    int64_t project_id;
    char slug[API_SLUG_MAX + 1];
    char host[HOSTNAME_MAX];
    const char *meta;            /* into r's body; NULL = {} */
    size_t mlen;
};

struct api_domains {
    struct control *c;
    struct event *flush_ev;
    int n;
    struct reg_job jobs[REG_BATCH_MAX];
    uint64_t batches, registrations; /* for the log line at exit */
    int largest;
};

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

/* ---- registration batches ---- */

struct reg_done {
    struct reg_job job;
    store_domain_t d;
    api_ops_err_t e;
    int ok;
};

static void reg_reply(struct reg_done *g, int committed)
{
    api_req_t *r = g->job.r;
    if (!g->ok) {
        api_error_ops(r, &g->e);
        return;
    }
    if (!committed) {
        api_error_internal(r, "cannot commit the registration batch");
        return;
    }
    log_info("domain.created", "host=%s project=%s token=%s", g->d.hostname, g->job.slug, r->auth.token_id);
    /* No probe here: the scheduler checks a new domain within a tick, and a
     * hint would also start issuance — certificates are issued on demand, at
     * the first handshake, not at registration. */
    ctl_domain_changed(r->c, g->d.hostname);
    reply_domain(r, 201, &g->d);
}

/* The batch's registrations in one transaction; 1 if it committed. */
static int reg_commit(store_t *s, struct reg_done *done, int n)
{
    int kept = 0;
    if (store_begin(s) != STORE_OK) {
        for (int i = 0; i < n; i++) {
            done[i].e = (api_ops_err_t){ .status = 500, .code = "internal" };
            snprintf(done[i].e.message, sizeof(done[i].e.message), "%s", "cannot begin a transaction");
        }
        return 0;
    }
    for (int i = 0; i < n; i++) {
        struct reg_job *j = &done[i].job;
        api_ops_t o = api_ops_for(j->r);
        done[i].ok = api_ops_domain_register_tx(&o, j->project_id, j->host, j->meta, j->mlen, &done[i].d,
                                                &done[i].e) == 0;
        kept += done[i].ok;
    }
    if (!kept) {
        store_rollback(s);
        return 0;
    }
    return store_commit(s) == STORE_OK;
}

void api_domains_flush(struct api_domains *ad)
{
    if (!ad || ad->n == 0)
        return;
    int n = ad->n;
    struct reg_done *done = calloc((size_t)n, sizeof(*done));
    if (!done) {
        ad->n = 0;
        for (int i = 0; i < n; i++)
            api_error_internal(ad->jobs[i].r, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++)
        done[i].job = ad->jobs[i];
    ad->n = 0; /* the batch is ours now: a registration from here on starts the next */
    int committed = reg_commit(ad->c->store, done, n);
    ad->batches++;
    ad->registrations += (uint64_t)n;
    if (n > ad->largest)
        ad->largest = n;
    for (int i = 0; i < n; i++) {
        reg_reply(&done[i], committed);
        store_domain_clear(&done[i].d);
    }
    if (committed)
        ctl_events_committed(ad->c);
    free(done);
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    api_domains_flush(arg);
}

static void on_register(api_req_t *r)
{
    static const char *const fields[] = { "hostname", "metadata", "projectSlug", NULL };
    const char *host = NULL, *slug = NULL, *meta = NULL;
    size_t mlen = 0;
    store_project_t p;
    api_ops_err_t e;
    struct api_domains *ad = r->arg;
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, fields) != 0 || api_body_str(r, "hostname", 1, &host) != 0 ||
        api_body_str(r, "projectSlug", 0, &slug) != 0 || body_metadata(r, &meta, &mlen) != 0)
        return;
    if (target_project(r, slug, &p) != 0)
        return;
    struct reg_job *j = &ad->jobs[ad->n];
    api_ops_t o = api_ops_for(r);
    if (api_ops_domain_register_check(&o, host, meta, mlen, j->host, &e) != 0) {
        store_project_clear(&p);
        api_error_ops(r, &e);
        return;
    }
    j->r = r;
    j->project_id = p.id;
    snprintf(j->slug, sizeof(j->slug), "%s", p.slug);
    j->meta = meta;
    j->mlen = mlen;
    store_project_clear(&p);
    api_defer(r);
    if (++ad->n == REG_BATCH_MAX)
        api_domains_flush(ad);
    else if (ad->n == 1)
        event_active(ad->flush_ev, EV_TIMEOUT, 1);
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

struct api_domains *api_domains_init(api_t *a)
{
    struct api_domains *ad = calloc(1, sizeof(*ad));
    if (!ad)
        return NULL;
    ad->c = api_control(a);
    /* Each registration's savepoint journals a dozen pages: in memory. */
    store_tune_writes(ad->c->store);
    int rc = (ad->flush_ev = event_new(ad->c->base, -1, 0, on_flush, ad)) ? 0 : -1;
    rc |= api_route(a, API_POST, "/v1/edge/domains", API_SCOPE_CONNECTIONS_WRITE, API_BODY_JSON, on_register, ad);
    rc |= api_route(a, API_GET, "/v1/edge/domains", API_SCOPE_CONNECTIONS_READ, 0, on_list, NULL);
    rc |= api_route(a, API_GET, "/v1/edge/domains/{hostname}", API_SCOPE_CONNECTIONS_READ, 0, on_show, NULL);
    rc |= api_route(a, API_PATCH, "/v1/edge/domains/{hostname}", API_SCOPE_CONNECTIONS_WRITE, API_BODY_JSON,
                    on_update, NULL);
    rc |= api_route(a, API_DELETE, "/v1/edge/domains/{hostname}", API_SCOPE_CONNECTIONS_WRITE, 0, on_delete, NULL);
    if (rc != 0) {
        api_domains_free(ad);
        return NULL;
    }
    return ad;
}

void api_domains_free(struct api_domains *ad)
{
    if (!ad)
        return;
    api_domains_flush(ad);
    if (ad->flush_ev)
        event_free(ad->flush_ev);
    if (ad->batches)
        log_info("api.registration_batches", "batches=%llu registrations=%llu largest=%d",
                 (unsigned long long)ad->batches, (unsigned long long)ad->registrations, ad->largest);
    free(ad);
}
