/* DESIGN
 * The scheduler keeps no per-domain state in memory. domains.next_probe_at
 * (with its partial index) is the queue: every tick, and whenever a quarter
 * of the probe slots has freed while more domains are due (once per loop
 * turn), claim() reads due rows and starts probes until [verify] concurrency
 * probes run. A job lives from its probe's start until its result is
 * committed, but holds its slot only while the probe runs: waiting for the
 * commit in a slot left the slots idle for a flush delay per round, which
 * capped a sweep at concurrency / (probe time + flush delay). An index of
 * jobs by domain id lets claim() skip rows whose result is not committed yet
 * (their next_probe_at has not moved), so nothing is written to claim a row
 * and a crash simply leaves rows due. A sweep reads on from a cursor (the
 * last row it handed out) instead of from the soonest row, so those rows are
 * not read again on every claim; it starts over at the end of the due list.
 *
 * Results are recorded in batches: a finished probe joins the done list, and
 * flush() writes every done job in one transaction (check + state + event per
 * domain, reading the domain's state again inside the transaction since the
 * API or the issuer may have moved it meanwhile), then tells the edge and the
 * webhook sender, answers API callers and edge hints. Batching turns
 * thousands of probes per second into tens of fsyncs; an API or edge request
 * flushes at once. No transaction is open while a probe runs.
 *
 * The background thread's store handle never waits for a lock
 * (store_set_nowait): a flush that finds the write lock taken (the control
 * thread's commit, the CLI) writes nothing and keeps its batch, in order;
 * a retry timer tries again (store_retry_next: every few ms) and later
 * results join it. Probes go on meanwhile
 * until claim_room's bound (twice [verify] concurrency scheduler jobs,
 * finished ones included) stops the sweep: however long the lock is held,
 * memory stays bounded.
 *
 * Edge hints (a handshake is parked on an unverified host) probe at once,
 * at most once per host per [verify] first_request_probe, remembered in a
 * fixed-size set-associative table, so memory stays bounded whatever the
 * edge asks. */
#include "control/verify.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <time.h>

#include "common/domain_state.h"
#include "common/hostname.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/store_cert.h"
#include "common/util.h"
#include "control/ctl.h"
#include "control/dns.h"
#include "control/probe.h"
#include "control/subsys.h"

#define VERIFY_BATCH 500         /* most domains claimed at once */
#define VERIFY_FLUSH_BATCH 256   /* done jobs that force a flush */
#define VERIFY_FLUSH_DELAY_MS 50 /* otherwise results wait this long to share a commit */
#define VERIFY_TICK_MS 1000
#define VERIFY_ID_BUCKETS 4096
#define VERIFY_MAX_SERVERS 8
#define VERIFY_MAX_API_JOBS 1024 /* API probes in flight; beyond, 503 */
#define VERIFY_URGENT_ROOM 64    /* probe slots beyond [verify] concurrency for API and edge */
#define VERIFY_LOOKUPS_PER_PROBE 6 /* A, AAAA, TXT and three CAA levels (probe.c) */
#define VERIFY_MAX_DNS_INFLIGHT 65536
#define HINT_SETS 256
#define HINT_WAYS 4

enum origin { O_SCHED, O_API, O_HINT };

struct job {
    TAILQ_ENTRY(job) link;       /* v->running, then v->done */
    struct job *hnext;           /* v->ids chain (RECORD jobs only) */
    struct verify *v;
    probe_t *probe;
    int64_t domain_id;
    enum origin origin;
    verify_kind_t kind;
    bool indexed, hinted, probed;
    int64_t start_us;
    /* the result */
    verify_result_t res;
    int hint_code;
    char method[16];
    char hint[24];
    char *summary, *outcome;
    json_t *report;
    int64_t at;
    verify_done_cb cb;
    void *arg;
    /* what recording did */
    bool recorded, changed, verified_after;
    const char *event;
    char from[32], to[32];
    char host[HOSTNAME_MAX];
};

TAILQ_HEAD(job_list, job);

struct hint_slot {
    int64_t at;                  /* monotonic ms of the last hint-started probe */
    char host[HOSTNAME_MAX];
};

struct verify {
    struct control *c;
    dns_resolver_t *resolver;
    probe_ctx_t *probes;
    /* what the resolver and probe context were built from */
    char *res_spec;
    int res_timeout, res_attempts, res_conc;
    bool swap_pending;
    char **addrs;
    size_t naddrs;
    struct event *tick_ev, *flush_ev, *claim_ev;
    struct event *retry_ev;      /* pending while the batch waits for the store's lock */
    store_retry_t busy;          /* the retries of a flush that found the lock taken */
    bool flush_armed;
    struct job_list running, done;
    size_t nrunning, ndone, nsched, nhint, napi;
    size_t nsched_probing;       /* scheduler jobs whose probe still runs: what concurrency bounds */
    bool cursor;                 /* a sweep is under way: claim resumes after (cursor_at, cursor_id) */
    int64_t cursor_at, cursor_id;
    struct job *ids[VERIFY_ID_BUCKETS];
    struct hint_slot hints[HINT_SETS * HINT_WAYS];
    bool more, stopping;
    /* Pacing while the CPU is contended ([verify] contended_rate): a token
     * bucket of scheduled probe starts, refilled on the monotonic clock. */
    cpugauge_pace_t pace;
    dns_stats_t dns_seen;        /* the resolver's counters already added to /metrics */
    uint64_t rng;                /* xorshift state for schedule jitter (seeded once) */
    verify_stats_t st;
    /* Our ACME account URI at the first [acme] directory, for CAA accounturi
     * (probe_request_t): read at most once a second (VERIFY_TICK_MS), not
     * per probe, since the issuer may create the account any time. NULL:
     * none yet. */
    char *acme_kid;
    int64_t acme_kid_read_us; /* mono; 0: never read */
};

static const char *const progress_hints[] = { "partial", "stray_aaaa", "caa_blocks_issuer", "cloudflare_proxy" };

/* ---- pure decision ------------------------------------------------------ */

verify_result_t verify_classify(bool verified, const char *verdict, const char *hint)
{
    if (verified)
        return VERIFY_R_OK;
    if (verdict && strcmp(verdict, "inconclusive") == 0)
        return VERIFY_R_ERROR;
    for (size_t i = 0; hint && i < UTIL_ARRAY_LEN(progress_hints); i++)
        if (strcmp(hint, progress_hints[i]) == 0)
            return VERIFY_R_PROGRESS;
    return VERIFY_R_MISS;
}

static domain_trigger_t trigger_for(verify_result_t r, int has_cert)
{
    switch (r) {
    case VERIFY_R_TRUST:
        return DT_TRUST;
    case VERIFY_R_OK:
        return has_cert ? DT_DNS_OK_CERT : DT_DNS_OK;
    case VERIFY_R_PROGRESS:
        return DT_DNS_PROGRESS;
    case VERIFY_R_MISS:
        return DT_DNS_MISS;
    default:
        return DT_DNS_ERROR;
    }
}

static bool before_verification(domain_state_t s)
{
    return s == DS_CREATED || s == DS_PENDING_OWNERSHIP || s == DS_VERIFYING;
}

static int64_t next_probe(domain_state_t to, verify_result_t r, const verify_sched_t *sc, int64_t now,
                          int64_t window_end, unsigned jitter)
{
    int64_t iv;
    switch (to) {
    case DS_ARCHIVED:
        return 0;
    case DS_VERIFIED:
    case DS_ISSUING_CERT:
    case DS_LIVE:
    case DS_FAILED:
        iv = sc->verified_interval_s;
        break;
    case DS_STALLED:
        iv = sc->stalled_interval_s;
        break;
    default: /* pending, and drifted: watch for its return as closely */
        iv = sc->pending_interval_s;
        break;
    }
    if (r == VERIFY_R_ERROR && iv > sc->pending_interval_s)
        iv = sc->pending_interval_s; /* a failed lookup says nothing: ask again soon */
    if (jitter > 1000)
        jitter = 1000;
    int64_t ms = iv * 1000 * (900 + (int64_t)jitter / 5) / 1000;
    int64_t next = now + (ms > 0 ? ms : 1);
    /* Probe once more at the window's end, so stalling happens on time. */
    if (before_verification(to) && now < window_end && next > window_end)
        next = window_end;
    return next;
}

int verify_decide(const store_verify_current_t *cur, verify_result_t r, const char *method, const char *hint,
                  const verify_sched_t *sc, int64_t now, unsigned jitter, store_verify_apply_t *out)
{
    domain_state_t from, to;
    const char *event = NULL;
    int64_t window_end = cur->created_at + (int64_t)sc->pending_window_s * 1000;
    bool ok = r == VERIFY_R_OK || r == VERIFY_R_TRUST;

    out->become_verified = ok;
    out->verify_method = ok ? (r == VERIFY_R_TRUST ? "registration" : method) : NULL;
    out->event = out->event_method = out->event_reason = out->event_hint = NULL;
    out->drift = -1;
    if (domain_state_parse(cur->state, &from) != 0) {
        /* Not a state this build knows: record the check, move nothing. */
        out->state = NULL;
        out->next_probe_at = next_probe(DS_PENDING_OWNERSHIP, r, sc, now, window_end, jitter);
        return ok && !cur->verified;
    }
    if (domain_state_next(from, trigger_for(r, cur->has_cert), &to, &event) != 0)
        to = from;
    if (!ok && before_verification(to) && now >= window_end) {
        const char *ev2 = NULL;
        if (domain_state_next(to, DT_WINDOW_EXPIRED, &to, &ev2) == 0 && ev2)
            event = ev2;
    }
    out->state = domain_state_name(to);
    out->next_probe_at = next_probe(to, r, sc, now, window_end, jitter);
    if (to == DS_DRIFTED && from != DS_DRIFTED)
        out->drift = 1;
    else if (from == DS_DRIFTED && to != DS_DRIFTED)
        out->drift = 0;
    out->event = event;
    if (event && strcmp(event, "domain.verified") == 0) {
        out->event_method = out->verify_method;
    } else if (event && strcmp(event, "domain.drift") == 0) {
        out->event_reason = "dns_changed";
        out->event_hint = hint;
    } else if (event && strcmp(event, "domain.monitor_updated") == 0) {
        out->event_reason = "dns_restored";
    } else if (event && strcmp(event, "domain.failed") == 0) {
        out->event_reason = "verification_window_ended";
        out->event_hint = hint;
    }
    return to != from || (ok && !cur->verified);
}

/* ---- configuration ------------------------------------------------------ */

/* Accepted methods from projects.settings "verification". */
static unsigned parse_methods(const char *v, bool *trust)
{
    unsigned m = 0;
    *trust = strcmp(v, "registration") == 0;
    if (strstr(v, "\"cname\""))
        m |= PROBE_M_CNAME;
    if (strstr(v, "\"a\""))
        m |= PROBE_M_A;
    if (strstr(v, "\"txt\""))
        m |= PROBE_M_TXT;
    return m ? m : PROBE_M_CNAME | PROBE_M_A | PROBE_M_TXT;
}

static void free_addrs(struct verify *v)
{
    for (size_t i = 0; i < v->naddrs; i++)
        free(v->addrs[i]);
    free(v->addrs);
    v->addrs = NULL;
    v->naddrs = 0;
}

/* [edge] addresses: space- or comma-separated IP literals. probe_run refuses
 * a request with a bad literal, so bad ones are dropped here, with a warning. */
static int load_addrs(struct verify *v, const char *spec)
{
    free_addrs(v);
    char *copy = strdup(spec ? spec : ""), *save = NULL;
    if (!copy)
        return -1;
    size_t cap = strlen(copy) / 2 + 1;
    if (!(v->addrs = calloc(cap, sizeof(char *)))) {
        free(copy);
        return -1;
    }
    for (char *tok = strtok_r(copy, " ,\t", &save); tok; tok = strtok_r(NULL, " ,\t", &save)) {
        unsigned char buf[16];
        if (inet_pton(AF_INET, tok, buf) != 1 && inet_pton(AF_INET6, tok, buf) != 1) {
            log_warn("verify.bad_edge_address", "address=%.64s", tok);
            continue;
        }
        if (v->naddrs < cap && (v->addrs[v->naddrs] = strdup(tok)))
            v->naddrs++;
    }
    free(copy);
    return 0;
}

/* A running probe asks at most six lookups at once (A, AAAA, TXT, CAA ×3),
 * and UDP queries share the resolver's pooled sockets, so the in-flight cap
 * follows the probes rather than the fd limit: with fewer, a sweep's
 * queries would wait in the resolver's queue behind each other. */
static size_t dns_inflight_cap(int concurrency)
{
    size_t want = ((size_t)concurrency + VERIFY_URGENT_ROOM) * VERIFY_LOOKUPS_PER_PROBE;
    return want > VERIFY_MAX_DNS_INFLIGHT ? VERIFY_MAX_DNS_INFLIGHT : want;
}

/* Only a TCP fallback holds a socket of its own: those stay within a
 * quarter of the fd limit, leaving the rest to the edge and the API. */
static size_t dns_tcp_cap(void)
{
    size_t lim = 256;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < lim)
        lim = rl.rlim_cur / 4;
    return lim < 4 ? 4 : lim;
}

static int deadline_ms(const config_t *cfg)
{
    /* A probe may chase a CNAME chain and fall back to TCP: several
     * sequential queries, each bounded by timeout x attempts. */
    int64_t d = (int64_t)cfg->dns_timeout_ms * cfg->dns_attempts * 4;
    return d < 3000 ? 3000 : d > 30000 ? 30000 : (int)d;
}

static int build_dns(struct verify *v, const config_t *cfg, dns_resolver_t **r_out, probe_ctx_t **p_out, char **err)
{
    dns_resolver_t *r = NULL;
    if (cfg->resolvers[0]) {
        char *copy = strdup(cfg->resolvers), *save = NULL;
        const char *servers[VERIFY_MAX_SERVERS];
        size_t n = 0;
        if (!copy)
            goto fail;
        for (char *t = strtok_r(copy, " ,\t", &save); t && n < VERIFY_MAX_SERVERS; t = strtok_r(NULL, " ,\t", &save))
            servers[n++] = t;
        r = n ? dns_resolver_new(v->c->base, servers, n, cfg->dns_timeout_ms, cfg->dns_attempts) : NULL;
        free(copy);
    } else {
        r = dns_resolver_from_resolv_conf(v->c->base, NULL, cfg->dns_timeout_ms, cfg->dns_attempts);
    }
    if (!r)
        goto fail;
    dns_resolver_set_max_inflight(r, dns_inflight_cap(cfg->probe_concurrency));
    dns_resolver_set_max_tcp(r, dns_tcp_cap());
    /* 0x20: random letter case in every query name, checked in the answer,
     * adds entropy against spoofed answers on top of ports and IDs. */
    dns_resolver_set_0x20(r, true);
    /* Room above the scheduler's own bound, so API and first-request
     * probes do not queue behind a sweep. */
    probe_ctx_t *p = probe_ctx_new(v->c->base, r, (size_t)cfg->probe_concurrency + VERIFY_URGENT_ROOM,
                                   deadline_ms(cfg));
    if (!p) {
        dns_resolver_free(r);
        goto fail;
    }
    *r_out = r;
    *p_out = p;
    return 0;
fail:
    if (err)
        *err = strdup(cfg->resolvers[0] ? "[verify] resolvers: expected numeric host[:port] entries"
                                        : "[verify] resolvers is empty and /etc/resolv.conf has no usable nameserver");
    return -1;
}

static int remember_dns_config(struct verify *v, const config_t *cfg)
{
    char *spec = strdup(cfg->resolvers);
    if (!spec)
        return -1;
    free(v->res_spec);
    v->res_spec = spec;
    v->res_timeout = cfg->dns_timeout_ms;
    v->res_attempts = cfg->dns_attempts;
    v->res_conc = cfg->probe_concurrency;
    return 0;
}

/* The resolver's counters onto /metrics as deltas since the last call: the
 * resolver's stats belong to this thread, metrics are process-wide. */
static void publish_dns(struct verify *v)
{
    dns_stats_t now;
    metrics_t *m = v->c->hub->metrics;
    if (!v->resolver)
        return;
    dns_resolver_stats(v->resolver, &now);
#define PUB(field, counter) metrics_add(m, counter, (int64_t)(now.field - v->dns_seen.field))
    PUB(queries, M_DNS_QUERIES);
    PUB(udp_sent, M_DNS_UDP_SENT);
    PUB(timeouts, M_DNS_TIMEOUTS);
    PUB(malformed, M_DNS_MALFORMED);
    PUB(net_errors, M_DNS_NET_ERRORS);
    PUB(tcp_fallbacks, M_DNS_TCP_FALLBACKS);
    PUB(tcp_refused, M_DNS_TCP_REFUSED);
    PUB(ignored, M_DNS_IGNORED);
#undef PUB
    v->dns_seen = now;
}

/* Swaps in a resolver built from the current config once no probe runs on
 * the old one (probes borrow it). */
static void maybe_swap(struct verify *v)
{
    if (!v->swap_pending || v->nrunning > 0 || v->stopping)
        return;
    v->swap_pending = false;
    dns_resolver_t *r;
    probe_ctx_t *p;
    char *err = NULL;
    if (build_dns(v, v->c->cfg, &r, &p, &err) != 0) {
        log_error("verify.reload_failed", "reason=\"%s\" note=keeping_old_resolver", err ? err : "memory");
        free(err);
        return;
    }
    publish_dns(v); /* the old resolver's last counts; the new one starts at zero */
    memset(&v->dns_seen, 0, sizeof(v->dns_seen));
    probe_ctx_free(v->probes);
    dns_resolver_free(v->resolver);
    v->probes = p;
    v->resolver = r;
    if (remember_dns_config(v, v->c->cfg) != 0)
        log_warn("verify.reload_partial", "%s", "reason=memory");
    log_info("verify.resolver_reloaded", "resolvers=\"%s\" concurrency=%d", v->res_spec ? v->res_spec : "",
             v->res_conc);
}

/* ---- jobs ---------------------------------------------------------------- */

static struct job **bucket(struct verify *v, int64_t id)
{
    return &v->ids[(uint64_t)id % VERIFY_ID_BUCKETS];
}

static struct job *job_find(struct verify *v, int64_t id)
{
    for (struct job *j = *bucket(v, id); j; j = j->hnext)
        if (j->domain_id == id)
            return j;
    return NULL;
}

static void job_unindex(struct job *j)
{
    if (!j->indexed)
        return;
    for (struct job **pp = bucket(j->v, j->domain_id); *pp; pp = &(*pp)->hnext) {
        if (*pp == j) {
            *pp = j->hnext;
            break;
        }
    }
    j->indexed = false;
}

static struct job *job_new(struct verify *v, const store_verify_target_t *t, enum origin o, verify_kind_t kind)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->v = v;
    j->domain_id = t->id;
    j->origin = o;
    j->kind = kind;
    j->start_us = util_mono_us();
    snprintf(j->host, sizeof(j->host), "%s", t->hostname);
    if (kind == VERIFY_RECORD) {
        struct job **b = bucket(v, t->id);
        j->hnext = *b;
        *b = j;
        j->indexed = true;
    }
    if (o == O_SCHED) {
        v->nsched++;
        v->nsched_probing++;
    } else if (o == O_HINT)
        v->nhint++;
    else
        v->napi++;
    return j;
}

static void job_free(struct job *j)
{
    struct verify *v = j->v;
    job_unindex(j);
    if (j->origin == O_SCHED) {
        v->nsched--;
        if (!j->probed)
            v->nsched_probing--;
    } else if (j->origin == O_HINT)
        v->nhint--;
    else
        v->napi--;
    free(j->summary);
    free(j->outcome);
    json_decref(j->report);
    free(j);
}

static size_t njobs(const struct verify *v)
{
    return v->nrunning + v->ndone;
}

static void track_peak(struct verify *v)
{
    if (njobs(v) > v->st.jobs_peak)
        v->st.jobs_peak = njobs(v);
}

static void on_flush(evutil_socket_t fd, short what, void *arg);

static void want_flush(struct verify *v, bool now)
{
    /* While the lock is taken the retry timer flushes: sooner finds it taken. */
    if (v->stopping || evtimer_pending(v->retry_ev, NULL))
        return;
    if (now || v->ndone >= VERIFY_FLUSH_BATCH || v->ndone >= (size_t)v->c->cfg->probe_concurrency) {
        event_active(v->flush_ev, EV_TIMEOUT, 0);
        return;
    }
    if (!v->flush_armed) {
        struct timeval tv = { 0, VERIFY_FLUSH_DELAY_MS * 1000 };
        if (evtimer_add(v->flush_ev, &tv) == 0)
            v->flush_armed = true;
    }
}

static size_t claim_room(const struct verify *v);

/* A running job has its result: it waits for the next commit. Its
 * concurrency slot frees now, not at the commit: the probe no longer runs,
 * and waiting for the commit would idle the slots for a flush delay per
 * round. It stays in the id index, so claim() does not probe it again. */
static void job_done(struct job *j)
{
    struct verify *v = j->v;
    TAILQ_REMOVE(&v->running, j, link);
    v->nrunning--;
    TAILQ_INSERT_TAIL(&v->done, j, link);
    v->ndone++;
    if (j->origin == O_SCHED && !j->probed) {
        j->probed = true;
        v->nsched_probing--;
        if (v->more && !v->stopping && claim_room(v) > 0)
            event_active(v->claim_ev, EV_TIMEOUT, 0); /* once per loop turn, however many finish */
    }
    want_flush(v, j->origin != O_SCHED || j->hinted);
}

/* A report in probe_result_to_json's shape for a result no probe made. */
static json_t *plain_report(struct job *j)
{
    bool ok = j->res == VERIFY_R_TRUST;
    return json_pack("{s:s,s:s,s:b,s:o,s:s,s:[]}", "verdict", ok ? "verified" : "inconclusive", "hint", j->hint,
                     "verified", ok, "method", ok ? json_string(j->method) : json_null(), "outcome",
                     j->outcome ? j->outcome : "", "records");
}

static void call_back(struct job *j, bool with_result)
{
    if (!j->cb)
        return;
    verify_done_cb cb = j->cb;
    j->cb = NULL;
    if (!with_result || !j->report) {
        cb(NULL, j->arg);
        return;
    }
    verify_report_t rep = {
        .probe = j->report,
        .verified = j->res == VERIFY_R_OK || j->res == VERIFY_R_TRUST,
        .hint = j->hint,
        .outcome = j->outcome ? j->outcome : "",
        .at = j->at,
    };
    cb(&rep, j->arg);
}

static void on_probe(const probe_result_t *res, void *arg)
{
    struct job *j = arg;
    struct verify *v = j->v;
    metrics_t *m = v->c->hub->metrics;
    j->probe = NULL;
    j->at = util_now_ms();
    v->st.probes++;
    metrics_inc(m, M_PROBE_RUN);
    metrics_inc(m, res->verified ? M_PROBE_VERIFIED : M_PROBE_FAILED);
    metrics_observe_us(m, H_PROBE, util_mono_us() - j->start_us);
    const char *method = probe_method_str(res->method);
    snprintf(j->method, sizeof(j->method), "%s", res->verified && method ? method : "all");
    snprintf(j->hint, sizeof(j->hint), "%s", probe_hint_str(res->hint));
    j->hint_code = (int)res->hint;
    j->res = verify_classify(res->verified, res->verdict, j->hint);
    j->summary = res->summary ? strdup(res->summary) : NULL;
    j->outcome = res->outcome ? strdup(res->outcome) : NULL;
    if (j->origin == O_API)
        j->report = probe_result_to_json(res);
    log_debug("verify.probed", "host=%s verdict=%s hint=%s method=%s", j->host, res->verdict, j->hint, j->method);
    if (j->kind == VERIFY_DIAGNOSE) {
        TAILQ_REMOVE(&v->running, j, link);
        v->nrunning--;
        call_back(j, true);
        job_free(j);
        return;
    }
    job_done(j);
}

/* The kid of the first [acme] directory (the one an order tries first).
 * A failed read keeps the last value: the probe stays as good as before. */
static const char *acme_kid(struct verify *v, const config_t *cfg)
{
    int64_t now = util_mono_us();
    if (v->acme_kid_read_us && now - v->acme_kid_read_us < (int64_t)VERIFY_TICK_MS * 1000)
        return v->acme_kid;
    v->acme_kid_read_us = now;
    const char *sep = " \t,", *dir = cfg->acme_directory + strspn(cfg->acme_directory, sep);
    size_t len = strcspn(dir, sep);
    char *url = len ? strndup(dir, len) : NULL, *kid = NULL;
    int rc = url ? store_cert_account_kid(v->c->store, url, &kid) : len ? STORE_ERR : STORE_NOTFOUND;
    free(url);
    if (rc == STORE_OK || rc == STORE_NOTFOUND) {
        free(v->acme_kid);
        v->acme_kid = kid;
    }
    return v->acme_kid;
}

/* Starts the probe of a job (or settles it at once when no DNS is needed).
 * 0, or -1 when nothing could start (the job is then freed). */
static int job_start(struct verify *v, struct job *j, const store_verify_target_t *t)
{
    const config_t *cfg = v->c->cfg;
    bool trust;
    unsigned methods = parse_methods(t->verification, &trust);
    TAILQ_INSERT_TAIL(&v->running, j, link);
    v->nrunning++;
    track_peak(v);
    if (trust && j->kind == VERIFY_RECORD) {
        j->res = VERIFY_R_TRUST;
        j->at = util_now_ms();
        snprintf(j->method, sizeof(j->method), "registration");
        snprintf(j->hint, sizeof(j->hint), "ok");
        j->summary = strdup("registration trusted");
        j->outcome = strdup("the project trusts registration; no DNS lookup was made");
        if (j->origin == O_API)
            j->report = plain_report(j);
        job_done(j);
        return 0;
    }
    if (!v->probes) {
        /* No resolver could be set up: nothing can be learnt from DNS. */
        j->res = VERIFY_R_ERROR;
        j->at = util_now_ms();
        j->hint_code = PROBE_HINT_SERVFAIL;
        snprintf(j->method, sizeof(j->method), "all");
        snprintf(j->hint, sizeof(j->hint), "servfail");
        j->summary = strdup("no resolver configured");
        j->outcome = strdup("no DNS resolver is configured on this Hee");
        if (j->origin == O_API)
            j->report = plain_report(j);
        if (j->kind == VERIFY_DIAGNOSE) {
            TAILQ_REMOVE(&v->running, j, link);
            v->nrunning--;
            job_free(j);
            return -1;
        }
        job_done(j);
        return 0;
    }
    probe_request_t req = {
        .hostname = t->hostname,
        .cname_target = cfg->edge_target,
        .edge_addrs = (const char *const *)v->addrs,
        .n_edge_addrs = v->naddrs,
        .txt_value = t->challenge[0] ? t->challenge : NULL,
        .methods = methods,
        .ca_identifier = cfg->acme_caa_identity[0] ? cfg->acme_caa_identity : NULL,
        .acme_account = cfg->acme_caa_identity[0] ? acme_kid(v, cfg) : NULL,
        .acme_challenges = cfg->acme_challenges, /* never blank: config_load fills the default */
    };
    if ((j->probe = probe_run(v->probes, &req, on_probe, j)))
        return 0;
    if (j->kind == VERIFY_DIAGNOSE) {
        TAILQ_REMOVE(&v->running, j, link);
        v->nrunning--;
        job_free(j);
        return -1;
    }
    /* The name cannot be asked (e.g. too long for the TXT name): record a
     * miss so the domain follows the schedule to stalled. */
    log_warn("verify.unprobeable", "host=%s", t->hostname);
    j->res = VERIFY_R_MISS;
    j->at = util_now_ms();
    j->hint_code = PROBE_HINT_MISSING;
    snprintf(j->method, sizeof(j->method), "all");
    snprintf(j->hint, sizeof(j->hint), "invalid_name");
    j->summary = strdup("hostname cannot be queried");
    j->outcome = strdup("the hostname cannot be looked up in DNS");
    job_done(j);
    return 0;
}

/* ---- recording ------------------------------------------------------------ */

static void sched_of(const config_t *cfg, verify_sched_t *sc)
{
    sc->pending_interval_s = cfg->pending_interval_s;
    sc->pending_window_s = cfg->pending_window_s;
    sc->stalled_interval_s = cfg->stalled_interval_s;
    sc->verified_interval_s = cfg->verified_interval_s;
}

/* Jitter needs spread, not secrecy: a cheap generator, no syscall per probe. */
static unsigned jitter(struct verify *v)
{
    uint64_t x = v->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v->rng = x;
    return (unsigned)(x % 1001);
}

static int record(struct verify *v, struct job *j, const verify_sched_t *sc)
{
    store_t *s = v->c->store;
    store_verify_current_t cur;
    int rc = store_verify_current(s, j->domain_id, j->at, &cur);
    if (rc == STORE_NOTFOUND)
        return STORE_OK; /* removed while the probe ran */
    if (rc != STORE_OK)
        return rc;
    bool ok = j->res == VERIFY_R_OK || j->res == VERIFY_R_TRUST;
    store_verify_apply_t a = {
        .domain_id = j->domain_id,
        .now = j->at,
        .method = j->method,
        .outcome = j->hint,
        .probe_verified = ok,
        .summary = j->summary,
        .cname_target = v->c->cfg->edge_target,
    };
    int changed = verify_decide(&cur, j->res, j->method, j->hint, sc, j->at, jitter(v), &a);
    rc = store_verify_apply(s, &a);
    if (rc == STORE_NOTFOUND)
        return STORE_OK;
    if (rc != STORE_OK)
        return rc;
    j->recorded = true;
    j->changed = changed != 0;
    j->verified_after = cur.verified || a.become_verified;
    j->event = a.event;
    snprintf(j->from, sizeof(j->from), "%s", cur.state);
    snprintf(j->to, sizeof(j->to), "%s", a.state ? a.state : cur.state);
    return STORE_OK;
}

static void answer_edge(struct verify *v, struct job *j)
{
    if (j->recorded && j->verified_after) {
        if (!v->stopping)
            ctl_cert_wanted(v->c, j->host);
        return;
    }
    msg_t m = { .type = MSG_CERT_FAILED, .worker = -1 };
    m.code = j->recorded ? VERIFY_FAIL_HINT + j->hint_code : VERIFY_FAIL_UNKNOWN_HOST;
    snprintf(m.host, sizeof(m.host), "%s", j->host);
    hub_broadcast(v->c->hub, &m);
}

/* After the commit: tell the edge and the webhook sender, answer waiters. */
static void settle(struct verify *v, struct job_list *batch, bool committed)
{
    struct job *j;
    bool events = false;
    while ((j = TAILQ_FIRST(batch))) {
        TAILQ_REMOVE(batch, j, link);
        if (committed && j->recorded) {
            v->st.recorded++;
            if (j->changed) {
                v->st.transitions++;
                ctl_domain_changed(v->c, j->host);
                log_info("verify.transition", "host=%s from=%s to=%s event=%s hint=%s method=%s", j->host, j->from,
                         j->to, j->event ? j->event : "-", j->hint, j->method);
            }
            events |= j->event != NULL;
        }
        if (j->hinted)
            answer_edge(v, j);
        call_back(j, committed);
        job_free(j);
    }
    if (events)
        ctl_events_committed(v->c);
}

static void claim(struct verify *v);

/* An API caller (/verify) waiting on a batch the lock has held back this
 * long gets the answer a waiting handle's busy timeout used to give (no
 * result); its probe result stays in the batch and is recorded when the
 * lock frees. */
static void answer_waiting(struct verify *v)
{
    struct job *j;
    TAILQ_FOREACH(j, &v->done, link)
        call_back(j, false);
}

/* The write lock was taken: the batch stays in v->done, a timer tries
 * again, backing off while the lock stays taken. */
static void retry_later(struct verify *v)
{
    if (v->stopping || evtimer_pending(v->retry_ev, NULL))
        return;
    int64_t now = util_mono_ms();
    int warn, ms = store_retry_next(&v->busy, now, &warn);
    if (now - v->busy.since_ms >= STORE_BUSY_WAIT_MS)
        answer_waiting(v);
    if (warn)
        log_warn("verify.store_busy", "results=%zu note=\"the store's write lock is held elsewhere; results "
                 "wait in memory and retry every %d ms\"", v->ndone, STORE_RETRY_MAX_MS);
    struct timeval tv = { ms / 1000, (suseconds_t)(ms % 1000) * 1000 };
    evtimer_add(v->retry_ev, &tv);
}

static void flush(struct verify *v)
{
    struct job_list batch = TAILQ_HEAD_INITIALIZER(batch);
    store_t *s = v->c->store;
    verify_sched_t sc;
    if (v->ndone == 0)
        return;
    int rc = store_begin(s);
    if (rc == STORE_BUSY) {
        /* Nothing was decided yet (record() runs inside the transaction). */
        retry_later(v);
        return;
    }
    store_retry_done(&v->busy);
    TAILQ_CONCAT(&batch, &v->done, link);
    v->ndone = 0;
    sched_of(v->c->cfg, &sc);
    bool ok = rc == STORE_OK;
    for (struct job *j = TAILQ_FIRST(&batch); ok && j; j = TAILQ_NEXT(j, link))
        ok = record(v, j, &sc) == STORE_OK;
    if (ok && store_commit(s) == STORE_OK) {
        v->st.flushes++;
        settle(v, &batch, true);
    } else {
        /* The domains stay due and are probed again; waiters learn nothing. */
        store_rollback(s);
        log_error("verify.record_failed", "%s", "note=results_dropped");
        for (struct job *j = TAILQ_FIRST(&batch); j; j = TAILQ_NEXT(j, link))
            j->recorded = false;
        settle(v, &batch, false);
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct verify *v = arg;
    event_del(v->flush_ev);
    v->flush_armed = false;
    if (!evtimer_pending(v->retry_ev, NULL)) /* else the retry flushes */
        flush(v);
    maybe_swap(v);
    if (v->more)
        claim(v);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    on_flush(fd, what, arg);
}

/* ---- the scheduler ------------------------------------------------------- */

struct claim_ctx {
    struct verify *v;
    size_t want, started;
    bool failed;
};

static int claim_one(const store_verify_target_t *t, void *arg)
{
    struct claim_ctx *cc = arg;
    struct verify *v = cc->v;
    v->cursor = true;
    v->cursor_at = t->next_probe_at;
    v->cursor_id = t->id;
    if (job_find(v, t->id))
        return 0; /* its probe is running or its result awaits the commit */
    struct job *j = job_new(v, t, O_SCHED, VERIFY_RECORD);
    if (!j) {
        cc->failed = true;
        return 1;
    }
    if (job_start(v, j, t) != 0)
        return 0;
    return ++cc->started >= cc->want;
}

/* Probes that may start now; 0 until a quarter of the capacity is free
 * (bigger, fewer reads). Probes running stay within [verify] concurrency,
 * and with the results awaiting their commit within twice that (want_flush
 * commits once `concurrency` results wait), so memory stays bounded even
 * when commits are slow. */
static size_t claim_room(const struct verify *v)
{
    size_t cap = (size_t)v->c->cfg->probe_concurrency;
    if (v->nsched_probing >= cap || v->nsched >= 2 * cap)
        return 0;
    size_t want = cap - v->nsched_probing;
    if (want > 2 * cap - v->nsched)
        want = 2 * cap - v->nsched;
    if (want > VERIFY_BATCH)
        want = VERIFY_BATCH;
    if (v->nsched_probing > 0 && want < cap / 4 && want < VERIFY_BATCH)
        return 0;
    return want;
}

/* One read of the due list. A sweep continues after the last row it handed
 * out, so rows whose probes still run (their next_probe_at moves only at the
 * commit) are not read again and again; it starts over from the soonest row
 * once it reaches the end, which also picks up rows whose recording failed
 * or that became due earlier than the cursor. */
static int claim_read(struct verify *v, struct claim_ctx *cc, int64_t now)
{
    int limit = (int)(cc->want - cc->started + njobs(v));
    if (v->cursor)
        return store_verify_due_after(v->c->store, now, v->cursor_at, v->cursor_id, limit, claim_one, cc);
    return store_verify_due(v->c->store, now, limit, claim_one, cc);
}

static void pace_note(struct verify *v, bool was)
{
    if (v->pace.on == was)
        return;
    metrics_add(v->c->hub->metrics, M_PROBE_PACED, v->pace.on ? 1 : -1);
    log_info("verify.paced", "on=%d rate=%d", v->pace.on, v->c->cfg->probe_contended_rate);
}

/* How many of want scheduled probes may start now. All of them unless the
 * background thread is crowded out by Hee's traffic (cpugauge); then a
 * sweep holds to [verify] contended_rate. nice alone is not enough: the
 * resolver answering the sweep and the kernel's packet work are not niced.
 * /verify and edge-hint probes never wait here. 0 arms claim_ev for when
 * the next probe may start. */
static size_t pace_room(struct verify *v, size_t want)
{
    int64_t now = util_mono_ms(), wait_ms;
    bool was = v->pace.on;
    size_t n = cpugauge_pace_room(&v->pace, cpugauge_contended(v->c->gauge, now),
                                  v->c->cfg->probe_contended_rate, now, want, &wait_ms);
    pace_note(v, was);
    if (n == 0) {
        struct timeval tv = { (time_t)(wait_ms / 1000), (suseconds_t)(wait_ms % 1000) * 1000 };
        v->more = true;
        if (event_add(v->claim_ev, &tv) != 0)
            log_error("verify.pace_failed", "%s", "what=timer");
    }
    return n;
}

static void claim(struct verify *v)
{
    if (v->stopping || v->swap_pending)
        return;
    size_t want = claim_room(v);
    if (want > 0)
        want = pace_room(v, want);
    if (want == 0)
        return;
    struct claim_ctx cc = { .v = v, .want = want };
    int64_t now = util_now_ms();
    bool resumed = v->cursor;
    int rc = claim_read(v, &cc, now);
    if (rc == STORE_OK && !cc.failed && cc.started < want) {
        /* The end of the due list: the sweep is over. */
        v->cursor = false;
        if (resumed) {
            rc = claim_read(v, &cc, now);
            if (cc.started < want)
                v->cursor = false;
        }
    }
    cpugauge_pace_spend(&v->pace, cc.started); /* what started counts, whatever ended the claim */
    if (rc != STORE_OK || cc.failed) {
        v->more = v->cursor = false;
        return;
    }
    v->more = cc.started == want;
    if (cc.started)
        log_debug("verify.claimed", "n=%zu inflight=%zu", cc.started, v->nrunning);
}

static void on_claim(evutil_socket_t fd, short what, void *arg)
{
    claim(arg);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct verify *v = arg;
    publish_dns(v);
    maybe_swap(v);
    claim(v);
}

static int tick_ms(const config_t *cfg)
{
    /* Tick at least four times per pending interval, so a domain is probed
     * within a quarter interval of being due. */
    int64_t ms = (int64_t)cfg->pending_interval_s * 1000 / 4;
    return ms < 100 ? 100 : ms > VERIFY_TICK_MS ? VERIFY_TICK_MS : (int)ms;
}

static int arm_tick(struct verify *v)
{
    int ms = tick_ms(v->c->cfg);
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    return event_add(v->tick_ev, &tv);
}

/* ---- edge hints ------------------------------------------------------------ */

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

/* The slot remembering host, or the one to reuse for it (*found false). */
static struct hint_slot *hint_slot(struct verify *v, const char *host, bool *found)
{
    struct hint_slot *set = &v->hints[(fnv1a(host) % HINT_SETS) * HINT_WAYS], *oldest = &set[0];
    for (int i = 0; i < HINT_WAYS; i++) {
        if (set[i].host[0] && strcmp(set[i].host, host) == 0) {
            *found = true;
            return &set[i];
        }
        if (set[i].at < oldest->at)
            oldest = &set[i];
    }
    *found = false;
    return oldest;
}

static void fail_edge(struct verify *v, const char *host, int code)
{
    msg_t m = { .type = MSG_CERT_FAILED, .worker = -1, .code = code };
    snprintf(m.host, sizeof(m.host), "%s", host);
    hub_broadcast(v->c->hub, &m);
}

void verify_hint(struct verify *v, const char *host)
{
    char norm[HOSTNAME_MAX];
    const char *why = NULL;
    store_verify_target_t t;
    if (!v || v->stopping)
        return;
    v->st.hints++;
    if (hostname_normalize(host, norm, sizeof(norm), &why) != 0) {
        fail_edge(v, host, VERIFY_FAIL_UNKNOWN_HOST);
        return;
    }
    int rc = store_verify_target_by_host(v->c->store, norm, &t);
    if (rc != STORE_OK) {
        fail_edge(v, host, VERIFY_FAIL_UNKNOWN_HOST);
        return;
    }
    if (t.verified) { /* the edge's view was stale: go straight to the certificate */
        ctl_cert_wanted(v->c, t.hostname);
        return;
    }
    struct job *running = job_find(v, t.id);
    if (running) {
        running->hinted = true;
        if (!running->probe) /* already probed, waiting for its commit */
            want_flush(v, true);
        return;
    }
    bool found;
    int64_t now = util_mono_ms();
    struct hint_slot *slot = hint_slot(v, t.hostname, &found);
    /* Handshakes for many different unverified names: each costs a probe,
     * so they share the scheduler's concurrency bound. */
    if ((found && now - slot->at < (int64_t)v->c->cfg->first_request_probe_s * 1000) ||
        v->nhint >= (size_t)v->c->cfg->probe_concurrency) {
        v->st.hints_limited++;
        log_debug("verify.hint_limited", "host=%s", t.hostname);
        fail_edge(v, t.hostname, VERIFY_FAIL_RATE_LIMITED);
        return;
    }
    slot->at = now;
    snprintf(slot->host, sizeof(slot->host), "%s", t.hostname);
    struct job *j = job_new(v, &t, O_HINT, VERIFY_RECORD);
    if (!j) {
        fail_edge(v, t.hostname, VERIFY_FAIL_UNKNOWN_HOST);
        return;
    }
    j->hinted = true;
    log_info("verify.hint", "host=%s", t.hostname);
    (void)job_start(v, j, &t);
}

/* ---- API requests ----------------------------------------------------------- */

int verify_request(struct verify *v, int64_t domain_id, verify_kind_t kind, verify_done_cb cb, void *arg)
{
    store_verify_target_t t;
    if (!v || v->stopping || v->napi >= VERIFY_MAX_API_JOBS)
        return -1;
    int rc = store_verify_target_by_id(v->c->store, domain_id, &t);
    if (rc != STORE_OK)
        return rc == STORE_NOTFOUND ? STORE_NOTFOUND : -1;
    struct job *j = job_new(v, &t, O_API, kind);
    if (!j)
        return -1;
    j->cb = cb;
    j->arg = arg;
    return job_start(v, j, &t);
}

/* ---- life cycle ------------------------------------------------------------- */

struct verify *verify_new(struct control *c, char **err)
{
    struct verify *v = calloc(1, sizeof(*v));
    if (!v) {
        *err = strdup("out of memory");
        return NULL;
    }
    v->c = c;
    TAILQ_INIT(&v->running);
    TAILQ_INIT(&v->done);
    if (util_random(&v->rng, sizeof(v->rng)) != 0 || v->rng == 0)
        v->rng = (uint64_t)util_now_ms() | 1;
    if (build_dns(v, c->cfg, &v->resolver, &v->probes, err) != 0) {
        if (c->cfg->resolvers[0])
            goto fail; /* a configuration error: say so at start-up */
        /* No usable /etc/resolv.conf: run (registration trust works, the
         * API answers) and record DNS probes as inconclusive until a
         * reload brings resolvers. */
        log_error("verify.no_resolver", "reason=\"%s\"", *err ? *err : "?");
        free(*err);
        *err = NULL;
    }
    if (remember_dns_config(v, c->cfg) != 0 || load_addrs(v, c->cfg->edge_addresses) != 0 ||
        !(v->tick_ev = event_new(c->base, -1, EV_PERSIST, on_tick, v)) ||
        !(v->flush_ev = event_new(c->base, -1, 0, on_flush, v)) ||
        !(v->claim_ev = event_new(c->base, -1, 0, on_claim, v)) ||
        !(v->retry_ev = evtimer_new(c->base, on_retry, v)) || arm_tick(v) != 0) {
        *err = strdup("cannot set up verification: out of memory");
        goto fail;
    }
    event_active(v->tick_ev, EV_TIMEOUT, 0); /* whatever fell due while we were down */
    log_info("verify.started", "resolvers=\"%s\" concurrency=%d edge_addresses=%zu tick_ms=%d",
             c->cfg->resolvers[0] ? c->cfg->resolvers : "resolv.conf", c->cfg->probe_concurrency, v->naddrs,
             tick_ms(c->cfg));
    return v;
fail:
    verify_free(v);
    return NULL;
}

void verify_reload(struct verify *v)
{
    if (!v)
        return;
    const config_t *cfg = v->c->cfg;
    if (load_addrs(v, cfg->edge_addresses) != 0)
        log_error("verify.reload_failed", "%s", "what=edge_addresses reason=memory");
    if (!v->stopping && arm_tick(v) != 0)
        log_error("verify.reload_failed", "%s", "what=tick");
    if (!v->probes || !v->res_spec || strcmp(v->res_spec, cfg->resolvers) != 0 || v->res_timeout != cfg->dns_timeout_ms ||
        v->res_attempts != cfg->dns_attempts || v->res_conc != cfg->probe_concurrency) {
        v->swap_pending = true;
        maybe_swap(v);
    }
}

void verify_stop(struct verify *v)
{
    struct job *j;
    if (!v || v->stopping)
        return;
    if (v->tick_ev)
        event_del(v->tick_ev);
    if (v->flush_ev)
        event_del(v->flush_ev);
    if (v->claim_ev)
        event_del(v->claim_ev);
    if (v->retry_ev)
        event_del(v->retry_ev);
    if (v->pace.on) {
        v->pace.on = false;
        pace_note(v, true);
    }
    while ((j = TAILQ_FIRST(&v->running))) {
        TAILQ_REMOVE(&v->running, j, link);
        v->nrunning--;
        probe_cancel(j->probe);
        j->probe = NULL;
        if (j->hinted)
            fail_edge(v, j->host, VERIFY_FAIL_UNKNOWN_HOST);
        call_back(j, false);
        job_free(j);
    }
    v->stopping = true;
    /* Results already in hand are worth keeping, and the loop ends after
     * this: the last flush may wait for the lock like any handle's. */
    store_set_nowait(v->c->store, 0);
    flush(v);
}

void verify_free(struct verify *v)
{
    struct job *j;
    if (!v)
        return;
    /* Only reached with jobs when start-up failed half-way or stop was
     * skipped: nobody waits on them any more. */
    while ((j = TAILQ_FIRST(&v->running))) {
        TAILQ_REMOVE(&v->running, j, link);
        probe_cancel(j->probe);
        j->cb = NULL;
        job_free(j);
    }
    while ((j = TAILQ_FIRST(&v->done))) {
        TAILQ_REMOVE(&v->done, j, link);
        j->cb = NULL;
        job_free(j);
    }
    if (v->tick_ev)
        event_free(v->tick_ev);
    if (v->flush_ev)
        event_free(v->flush_ev);
    if (v->claim_ev)
        event_free(v->claim_ev);
    if (v->retry_ev)
        event_free(v->retry_ev);
    probe_ctx_free(v->probes);
    dns_resolver_free(v->resolver);
    free_addrs(v);
    free(v->res_spec);
    free(v->acme_kid);
    free(v);
}

void verify_stats(const struct verify *v, verify_stats_t *out)
{
    *out = v->st;
    out->jobs = njobs(v);
    /* A job's strings: summary <= 255 bytes, outcome a sentence. */
    out->mem_bytes = sizeof(*v) + v->st.jobs_peak * (sizeof(struct job) + 256 + 160);
}
