/* api_verify: POST /v1/edge/domains/{hostname}/verify (probe now, record,
 * answer with the domain and the probe), POST …/diagnose (every lookup now,
 * nothing written) and GET …/checks (the stored probe history). The probes
 * run on the verifier (control/verify.h) on the background thread; these
 * handlers defer their reply until it answers through control/bridge.h. */
#include <stdlib.h>
#include <string.h>

#include "common/domainobj.h"
#include "common/log.h"
#include "common/util.h"
#include "control/api.h"
#include "control/bridge.h"
#include "control/ctl.h"
#include "control/verify.h"

#define CHECKS_DEFAULT 20

static const char *const no_fields[] = { NULL };

static void reply_unavailable(api_req_t *r)
{
    api_error(r, 503, "unavailable", "%s", "the probe was interrupted (shutting down or store failure); try again");
}

/* {"domain":{…},"probe":{…}} with the stored metadata spliced back. */
static void reply_verified(api_req_t *r, const store_domain_t *d, json_t *probe)
{
    json_t *root = json_object();
    json_t *o = domainobj_json(d, r->c->cfg->edge_target);
    char *text = NULL;
    if (root && o && json_object_set_new(root, "domain", o) == 0) {
        o = NULL;
        if (json_object_set(root, "probe", probe) == 0)
            text = domainobj_dumps(root, d->metadata);
    }
    json_decref(o);
    json_decref(root);
    if (!text) {
        api_error_internal(r, "cannot render the verification result");
        return;
    }
    api_reply_json_text(r, 200, text, strlen(text));
    free(text);
}

struct verify_call {
    api_req_t *r;
    int64_t domain_id;
};

static void reply_not_started(api_req_t *r, int rc)
{
    if (rc == STORE_NOTFOUND)
        api_error(r, 404, "not_found", "%s", "no such domain");
    else
        api_error(r, 503, "unavailable", "%s", "verification is not available right now");
}

static void on_verified(int brc, const verify_report_t *rep, void *arg)
{
    struct verify_call *vc = arg;
    api_req_t *r = vc->r;
    store_domain_t d;
    int64_t id = vc->domain_id;
    free(vc);
    if (!rep) {
        if (brc == STORE_NOTFOUND)
            reply_not_started(r, brc);
        else
            reply_unavailable(r);
        return;
    }
    int rc = store_domain_get(r->c->store, id, &d);
    if (rc == STORE_NOTFOUND || (rc == STORE_OK && d.removed_at)) {
        if (rc == STORE_OK)
            store_domain_clear(&d);
        api_error(r, 404, "not_found", "%s", "the domain was removed while it was being verified");
        return;
    }
    if (rc != STORE_OK) {
        api_error_internal(r, "cannot read the domain after verification");
        return;
    }
    if (d.verified)
        reply_verified(r, &d, rep->probe);
    else
        api_error(r, 409, "ownership_not_found",
                  "%s is not verified: %s (hint: %s). Point a CNAME at %s or publish the TXT record %s%s; "
                  "POST .../diagnose shows every lookup",
                  d.hostname, rep->outcome, rep->hint, r->c->cfg->edge_target, "_customdomain-challenge.",
                  d.hostname);
    store_domain_clear(&d);
}


static void on_verify(api_req_t *r)
{
    store_domain_t d;
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, no_fields) != 0 || api_domain(r, 0, 0, &d) != 0)
        return;
    struct verify_call *vc = calloc(1, sizeof(*vc));
    int64_t id = d.id;
    store_domain_clear(&d);
    if (!vc) {
        api_error_internal(r, "out of memory");
        return;
    }
    vc->r = r;
    vc->domain_id = id;
    int rc = bridge_verify(r->c, id, VERIFY_RECORD, on_verified, vc);
    if (rc == 0) {
        api_defer(r);
        return;
    }
    free(vc);
    reply_not_started(r, rc);
}

struct diag_call {
    api_req_t *r;
    char host[256];
    char *accepted;              /* the project's accepted methods, as JSON */
};

static void on_diagnosed(int brc, const verify_report_t *rep, void *arg)
{
    struct diag_call *dc = arg;
    api_req_t *r = dc->r;
    char ts[32];
    if (!rep && brc == STORE_NOTFOUND) {
        reply_not_started(r, brc);
    } else if (!rep) {
        reply_unavailable(r);
    } else {
        /* The report itself, with what it is about in front. */
        json_t *body = json_pack("{s:s,s:s}", "hostname", dc->host, "checkedAt", util_iso8601(rep->at, ts, sizeof(ts)));
        json_t *acc = dc->accepted ? json_loads(dc->accepted, JSON_DECODE_ANY, NULL) : NULL;
        if (body && acc)
            json_object_set_new(body, "acceptedMethods", acc);
        else
            json_decref(acc);
        if (body && json_object_update(body, rep->probe) != 0) {
            json_decref(body);
            body = NULL;
        }
        api_reply_json(r, 200, body);
    }
    free(dc->accepted);
    free(dc);
}

/* ["cname","a","txt"] (the default), the project's list, or "registration". */
static char *accepted_methods(store_t *s, int64_t domain_id)
{
    store_verify_target_t t;
    if (store_verify_target_by_id(s, domain_id, &t) != STORE_OK)
        return NULL;
    if (!t.verification[0])
        return strdup("[\"cname\",\"a\",\"txt\"]");
    if (strcmp(t.verification, "registration") == 0)
        return strdup("\"registration\"");
    return strdup(t.verification);
}

static void on_diagnose(api_req_t *r)
{
    store_domain_t d;
    if (api_query_allow(r, NULL) != 0 || api_body_allow(r, no_fields) != 0 || api_domain(r, 0, 0, &d) != 0)
        return;
    struct diag_call *dc = calloc(1, sizeof(*dc));
    int64_t id = d.id;
    if (dc) {
        dc->r = r;
        snprintf(dc->host, sizeof(dc->host), "%s", d.hostname);
        dc->accepted = accepted_methods(r->c->store, id);
    }
    store_domain_clear(&d);
    if (!dc) {
        api_error_internal(r, "out of memory");
        return;
    }
    int rc = bridge_verify(r->c, id, VERIFY_DIAGNOSE, on_diagnosed, dc);
    if (rc == 0) {
        api_defer(r);
        return;
    }
    free(dc->accepted);
    free(dc);
    reply_not_started(r, rc);
}

static int add_check(const store_verify_check_t *c, void *arg)
{
    json_t *arr = arg;
    char ts[32];
    json_t *o = json_pack("{s:s,s:s,s:s,s:b,s:s}", "at", util_iso8601(c->at, ts, sizeof(ts)), "method", c->method,
                          "outcome", c->outcome, "verified", c->verified, "summary", c->summary);
    return !o || json_array_append_new(arr, o) != 0;
}

static void on_checks(api_req_t *r)
{
    static const char *const params[] = { "limit", NULL };
    store_domain_t d;
    int limit = CHECKS_DEFAULT;
    if (api_query_allow(r, params) != 0 || api_page_limit(r, CHECKS_DEFAULT, STORE_VERIFY_KEEP_CHECKS, &limit) != 0 ||
        api_domain(r, 0, 1, &d) != 0)
        return;
    json_t *arr = json_array();
    int rc = arr ? store_verify_checks(r->c->store, d.id, limit, add_check, arr) : STORE_ERR;
    json_t *body = rc == STORE_OK ? json_pack("{s:s,s:o}", "hostname", d.hostname, "checks", arr) : NULL;
    if (rc != STORE_OK)
        json_decref(arr);
    store_domain_clear(&d);
    if (!body) {
        api_error_internal(r, "cannot list checks");
        return;
    }
    api_reply_json(r, 200, body);
}

int api_verify_init(struct api *a)
{
    int rc = 0;
    rc |= api_route(a, API_POST, "/v1/edge/domains/{hostname}/verify", API_SCOPE_CONNECTIONS_WRITE, API_BODY_OPTIONAL,
                    on_verify, NULL);
    rc |= api_route(a, API_POST, "/v1/edge/domains/{hostname}/diagnose", API_SCOPE_CONNECTIONS_READ,
                    API_BODY_OPTIONAL, on_diagnose, NULL);
    rc |= api_route(a, API_GET, "/v1/edge/domains/{hostname}/checks", API_SCOPE_CONNECTIONS_READ, 0, on_checks, NULL);
    return rc;
}
