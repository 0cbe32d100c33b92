/* issuer: certificates on demand and their renewal.
 *
 * DESIGN
 * A job is one hostname's way to a certificate; the in-flight map (a small
 * hash of jobs by hostname) is what makes "one order per host however many
 * workers ask" true: issuer_want() on a host with a job does nothing, since
 * the job's outcome is broadcast to every worker anyway.
 *
 *   issuer_want: domain active + verified?      no  → MSG_CERT_FAILED
 *                current certificate valid?     yes → MSG_CERT_READY (a late worker)
 *                backing off / over a cap?      yes → MSG_CERT_FAILED
 *      └▶ job_start ─▶ job_run ─┬─ local CA: 0 s timer, sign, job_succeed()
 *                               └─ ACME (state issuing_cert): acme_order_start on
 *                                  the current directory, or queued beyond
 *                                  max_concurrent_orders
 *   on_acme_done ── OK ─────────────────────────▶ job_succeed(): ONE transaction
 *       │ TRANSIENT: the same directory again (up to DIR_TRIES, doubling delay),
 *       │            then the next one
 *       │ FAILED / RATE_LIMITED: the next directory at once
 *       └ no directory left ────────────────────▶ job_fail(): backoff row, events
 *
 * A directory that fails transiently DIR_TRIES times in a row is skipped by
 * new jobs for [acme] backoff_base, so a dead CA costs one job, not all.
 *
 * Renewal: a timer reads at most RENEW_BATCH due rows (renew_at <= now) from
 * the certificates_renew index, claims each by moving renew_at a lease ahead
 * and starts a renewal job; results move renew_at again (success supersedes
 * the row, failure sets it to the backoff time). A due ACME certificate first
 * asks its CA's renewalInfo (RFC 9773): before the window opens it only
 * moves renew_at to the next look. The timer sleeps until the
 * earliest renew_at (bounded), so idle cost is one indexed MIN per minute and
 * start-up never reads certificates.
 *
 * Events (see common/domain_state.h for the state moves): success always
 * writes ssl.issued, plus domain.flow.completed when the domain becomes live
 * for the first time or domain.monitor_updated for a renewal. A failure
 * writes domain.failed only when the CA refused for good (ACME_FAILED after
 * every directory was tried): transient trouble and rate limits are retried
 * with backoff and are not the customer's problem yet. A certificate that
 * expires without renewal writes domain.expired (active domains only). */
#include "control/issuer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/domain_state.h"
#include "common/domainobj.h"
#include "common/hostname.h"
#include "common/keyseal.h"
#include "common/log.h"
#include "common/store_cert.h"
#include "common/store_domain.h"
#include "common/store_event.h"
#include "common/util.h"
#include "control/acme.h"
#include "control/ctl.h"
#include "control/keypool.h"
#include "control/localca.h"
#include "control/pki.h"
#include "control/subsys.h"

#define DIR_MAX 8
#define DIR_TRIES 3                     /* transient attempts per directory and job */
#define RETRY_FIRST_MS 250              /* then doubling */
#define JOB_BUCKETS 1024
#define QUEUE_MAX 10000
#define RENEW_BATCH 16
#define RENEW_LEASE_MS (15 * 60 * 1000) /* a claimed renewal is retried after this if we crash */
#define TICK_START_MS 2000
#define TICK_MIN_MS 1000
#define TICK_MAX_MS 60000
#define ARI_POLL_MS (6LL * 3600 * 1000)  /* RFC 9773: ask again this late at most without Retry-After */
#define KEYPOOL_STOCK 4                 /* RSA keys kept ready (~0.5 s of generation each) */
#define HOUR_BUCKETS 60                 /* orders started per minute, for the hourly cap */
#define HOUR_MS (60 * 60000LL)
#define ORDERS_SAVE_MS 1000             /* order starts reach the store in batches this often */
#define ORDERS_UNSAVED_MAX 64
#define FAR_FUTURE_MS ((int64_t)1 << 62)
#define WEEK_MS ((int64_t)7 * 86400 * 1000)
#define PROBLEM_LOCALCA "urn:hee:issuer:local-ca"
#define PROBLEM_STORE "urn:hee:issuer:store"

struct issuer;

struct acme_dir {
    char *url;
    acme_client_t *client;
    int transient;       /* consecutive transient failures, all jobs */
    int64_t down_until;  /* mono ms: new jobs skip this directory until then */
};

struct job {
    struct job *hnext;   /* in-flight map chain */
    struct job *qnext;   /* waiting for a free order slot */
    struct issuer *iss;
    char host[HOSTNAME_MAX];
    int renewal;         /* the domain already has a certificate it is replacing */
    int64_t cert_id;     /* renewal started by the timer: the row it claimed */
    int queued;
    int dir;             /* ACME directory index in use */
    int tries;           /* transient attempts on dir */
    int dirs_tried;
    acme_order_t *order;
    struct event *timer; /* internal CA run, retry delay */
    keypool_waiter_t keywait; /* internal CA run waiting for an RSA key */
    int64_t t0;          /* mono ms when wanted */
};

/* A renewalInfo request in flight for a certificate that came due. */
struct aricheck {
    struct aricheck *next;
    struct issuer *iss;
    int64_t cert_id, not_before, not_after;
    char host[HOSTNAME_MAX];
};

struct issuer {
    struct control *c;
    keyseal_t *seal;
    keypool_t *keys;     /* RSA keys made off the loop, for both issuers */
    localca_t *ca;
    struct acme_dir dirs[DIR_MAX];
    int ndirs;
    char *acme_sig;      /* the settings the clients were built from */
    struct job *jobs[JOB_BUCKETS];
    struct job *q_head, *q_tail;
    unsigned njobs, queued, running, renewals;
    struct aricheck *aris; /* owned; their requests belong to dirs' clients */
    unsigned naris;
    struct event *tick;
    int64_t tick_at;     /* mono ms the tick is set for (0: not set) */
    int64_t hour_minute[HOUR_BUCKETS];
    unsigned hour_count[HOUR_BUCKETS];
    /* Order starts not yet in the store: written in one transaction per
     * ORDERS_SAVE_MS rather than one fsync per order of a burst. A crash
     * forgets at most that second's; the cap is a guard, not a ledger. */
    int64_t unsaved[ORDERS_UNSAVED_MAX];
    unsigned nunsaved;
    struct event *save_ev;
    int stopping;
};

static void job_run(struct job *j);
static void schedule_tick(struct issuer *iss, int64_t delay_ms);

/* ---- small helpers ---------------------------------------------------- */

static const config_t *cfg(const struct issuer *iss)
{
    return iss->c->cfg;
}

static int acme_mode(const struct issuer *iss)
{
    return iss->ndirs > 0;
}

static pki_key_type_t key_type(const struct issuer *iss)
{
    return strcmp(cfg(iss)->key_type, "rsa-2048") == 0 ? PKI_KEY_RSA_2048 : PKI_KEY_EC_P256;
}

static void send_msg(struct issuer *iss, enum msg_type type, const char *host, int code)
{
    msg_t m = { .type = type, .worker = -1, .code = code };
    snprintf(m.host, sizeof(m.host), "%s", host);
    hub_broadcast(iss->c->hub, &m);
}

int64_t issuer_backoff_ms(int base_s, int max_s, int failures)
{
    int64_t ms = (int64_t)(base_s > 0 ? base_s : 1) * 1000, cap = (int64_t)(max_s > 0 ? max_s : 1) * 1000;
    for (int i = 1; i < failures && ms < cap; i++)
        ms *= 2;
    return ms < cap ? ms : cap;
}

int64_t issuer_renew_at(int64_t not_before, int64_t not_after, int64_t ari_start, int64_t ari_end, double rnd)
{
    if (ari_end > ari_start && ari_start > 0)
        return ari_start + (int64_t)((double)(ari_end - ari_start) * rnd);
    int64_t life = not_after - not_before;
    if (life <= 0)
        return not_after;
    int64_t jitter = (int64_t)((double)(life / 15) * rnd) - life / 30; /* ± life/30 */
    return not_before + life * 2 / 3 + jitter;
}

int issuer_ari_decide(int64_t now, int64_t not_before, int64_t not_after, const issuer_ari_answer_t *a,
                      double rnd, int64_t *next)
{
    int64_t life = not_after - not_before;
    if (a && a->ok && a->end > a->start && a->start > 0) {
        if (now >= a->start)
            return 1;
        int64_t poll = a->retry_after_s > 0 ? (int64_t)a->retry_after_s * 1000 : ARI_POLL_MS;
        if (poll < 60000)
            poll = 60000; /* a CA asking for a storm gets a minute */
        if (poll > 24LL * 3600 * 1000)
            poll = 24LL * 3600 * 1000;
        int64_t pick = a->start + (int64_t)((double)(a->end - a->start) * rnd);
        *next = pick < now + poll ? pick : now + poll;
        return 0;
    }
    /* No window (the CA has no ARI, or asking failed): the lifetime rule,
     * from the earliest point its jitter could have chosen. */
    int64_t due = life > 0 ? not_before + life * 2 / 3 - life / 30 : not_after;
    if (now >= due)
        return 1;
    int64_t retry = now + ARI_POLL_MS / 6;
    *next = due < retry ? due : retry;
    return 0;
}

static double random_unit(void)
{
    return (double)util_random_below(1000000) / 1e6;
}

/* ---- the in-flight map and the queue ------------------------------------ */

static unsigned host_hash(const char *h)
{
    uint32_t x = 2166136261u;
    for (; *h; h++)
        x = (x ^ (unsigned char)*h) * 16777619u;
    return x % JOB_BUCKETS;
}

static struct job *job_find(struct issuer *iss, const char *host)
{
    for (struct job *j = iss->jobs[host_hash(host)]; j; j = j->hnext)
        if (strcmp(j->host, host) == 0)
            return j;
    return NULL;
}

static void queue_remove(struct issuer *iss, struct job *j)
{
    if (!j->queued)
        return;
    struct job **p = &iss->q_head;
    while (*p && *p != j)
        p = &(*p)->qnext;
    if (*p)
        *p = j->qnext;
    iss->q_tail = NULL;
    for (struct job *q = iss->q_head; q; q = q->qnext)
        iss->q_tail = q;
    j->qnext = NULL;
    j->queued = 0;
    iss->queued--;
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    struct issuer *iss = j->iss;
    for (struct job **p = &iss->jobs[host_hash(j->host)]; *p; p = &(*p)->hnext) {
        if (*p == j) {
            *p = j->hnext;
            iss->njobs--;
            break;
        }
    }
    queue_remove(iss, j);
    keypool_cancel(iss->keys, &j->keywait);
    if (j->order) {
        acme_order_cancel(j->order);
        iss->running--;
    }
    if (j->renewal && j->cert_id)
        iss->renewals--;
    if (j->timer)
        event_free(j->timer);
    free(j);
}

/* Starts queued jobs while order slots are free. */
static void pump(struct issuer *iss)
{
    while (iss->q_head && iss->running < (unsigned)cfg(iss)->acme_max_concurrent) {
        struct job *j = iss->q_head;
        queue_remove(iss, j);
        job_run(j);
    }
}

/* ---- the hourly cap --------------------------------------------------- */

static unsigned hour_total(const struct issuer *iss, int64_t now_min)
{
    unsigned n = 0;
    for (int i = 0; i < HOUR_BUCKETS; i++)
        if (now_min - iss->hour_minute[i] < HOUR_BUCKETS)
            n += iss->hour_count[i];
    return n;
}

static void hour_note(struct issuer *iss, int64_t now_min)
{
    int i = (int)(now_min % HOUR_BUCKETS);
    if (iss->hour_minute[i] != now_min) {
        iss->hour_minute[i] = now_min;
        iss->hour_count[i] = 0;
    }
    iss->hour_count[i]++;
}

static void orders_save(struct issuer *iss)
{
    int64_t now = util_now_ms();
    if (iss->nunsaved == 0)
        return;
    if (store_cert_orders_note(iss->c->store, iss->unsaved, iss->nunsaved, now - HOUR_MS) != STORE_OK)
        log_warn("issuer.orders_save_failed", "orders=%u", iss->nunsaved); /* the memory count still holds */
    iss->nunsaved = 0;
}

static void on_orders_save(evutil_socket_t fd, short what, void *arg)
{
    orders_save(arg);
}

/* An order started now: counted at once, stored within ORDERS_SAVE_MS. */
static void order_started(struct issuer *iss)
{
    int64_t now = util_now_ms();
    hour_note(iss, now / 60000);
    if (iss->nunsaved == ORDERS_UNSAVED_MAX)
        orders_save(iss);
    iss->unsaved[iss->nunsaved++] = now;
    struct timeval tv = { ORDERS_SAVE_MS / 1000, (ORDERS_SAVE_MS % 1000) * 1000 };
    if (iss->save_ev && !evtimer_pending(iss->save_ev, NULL) && evtimer_add(iss->save_ev, &tv) != 0)
        orders_save(iss);
}

/* At start: the orders of the last hour, as a previous run recorded them. */
static void order_seen(int64_t at, void *arg)
{
    hour_note(arg, at / 60000);
}

/* ---- events ----------------------------------------------------------- */

/* {"domain":{…},"certificate":{…}|absent,"reason":…|absent} for domain id. */
static int emit(struct issuer *iss, int64_t domain_id, const char *type, const store_cert_t *cert,
                const char *reason)
{
    store_t *s = iss->c->store;
    store_domain_t d;
    if (store_domain_get(s, domain_id, &d) != STORE_OK)
        return -1;
    char na[32];
    json_t *data = json_object(), *dom = domainobj_json(&d, cfg(iss)->edge_target), *ce = NULL;
    char *text = NULL;
    int rc = -1;
    if (!data || !dom || json_object_set_new(data, "domain", dom) != 0) {
        json_decref(dom);
        goto out;
    }
    if (cert) {
        ce = json_pack("{s:s, s:s}", "notAfter", util_iso8601(cert->not_after, na, sizeof(na)), "issuer",
                       cert->issuer_name && cert->issuer_name[0] ? cert->issuer_name : cert->issuer);
        if (!ce || json_object_set_new(data, "certificate", ce) != 0)
            goto out;
    }
    if (reason && json_object_set_new(data, "reason", json_string(reason)) != 0)
        goto out;
    if ((text = domainobj_dumps(data, d.metadata)) &&
        store_event_emit(s, d.project_id, d.id, type, text, NULL) == STORE_OK)
        rc = 0;
out:
    free(text);
    json_decref(data);
    store_domain_clear(&d);
    return rc;
}

/* store_domain_active, with *d cleared (safe to clear again) on a miss. */
static int domain_active(store_t *s, const char *host, store_domain_t *d)
{
    int rc = store_domain_active(s, host, d);
    if (rc != STORE_OK)
        memset(d, 0, sizeof(*d));
    return rc;
}

/* Where trigger t takes d; *state NULL when it does not move. */
static void transition(const store_domain_t *d, domain_trigger_t t, domain_state_t *from, const char **state,
                       const char **event)
{
    domain_state_t to;
    *state = *event = NULL;
    if (domain_state_parse(d->state, from) != 0) {
        *from = DS_COUNT;
        return;
    }
    if (domain_state_next(*from, t, &to, event) != 0)
        return;
    if (to != *from)
        *state = domain_state_name(to);
}

/* ---- start ------------------------------------------------------------ */

/* Records that an ACME order starts: verified/failed → issuing_cert (first
 * certificates only; a live domain keeps serving its current one). The
 * local CA signs within milliseconds: its domains go straight to live, which
 * saves a durable commit per certificate in a burst. */
static void mark_issuing(struct issuer *iss, const char *host)
{
    store_t *s = iss->c->store;
    store_domain_t d;
    if (!acme_mode(iss))
        return;
    if (domain_active(s, host, &d) != STORE_OK)
        return;
    domain_state_t from;
    const char *state, *event;
    transition(&d, DT_ISSUE_START, &from, &state, &event);
    if (from != DS_LIVE && store_begin(s) == STORE_OK) {
        int ok = store_cert_domain_status(s, d.id, state, "issuing", NULL, util_now_ms()) == STORE_OK &&
                 (!event || emit(iss, d.id, event, NULL, NULL) == 0);
        if (!ok || store_commit(s) != STORE_OK) {
            store_rollback(s);
            log_warn("issuer.mark_failed", "host=%s", host);
        } else if (event) {
            ctl_events_committed(iss->c);
        }
    }
    store_domain_clear(&d);
}

static void on_job_timer(evutil_socket_t fd, short what, void *arg);

/* 0, or -1 when out of memory (nothing started). */
static int job_start(struct issuer *iss, const char *host, int renewal, int64_t cert_id)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j || !(j->timer = evtimer_new(iss->c->base, on_job_timer, j))) {
        free(j);
        return -1;
    }
    j->iss = iss;
    snprintf(j->host, sizeof(j->host), "%s", host);
    j->renewal = renewal;
    j->cert_id = cert_id;
    j->t0 = util_mono_ms();
    for (int i = 0; i < iss->ndirs; i++) { /* the first directory not resting */
        if (iss->dirs[i].down_until <= j->t0) {
            j->dir = i;
            break;
        }
    }
    unsigned b = host_hash(host);
    j->hnext = iss->jobs[b];
    iss->jobs[b] = j;
    iss->njobs++;
    if (renewal && cert_id)
        iss->renewals++;
    metrics_inc(iss->c->hub->metrics, M_ISSUE_STARTED);
    log_info("issuer.order_start", "host=%s issuer=%s renewal=%d queued=%u running=%u", host,
             acme_mode(iss) ? iss->dirs[j->dir].url : "internal", renewal, iss->queued, iss->running);
    mark_issuing(iss, host);
    job_run(j); /* may finish (and free) j */
    return 0;
}

/* ---- success ---------------------------------------------------------- */

typedef struct {
    const char *chain_pem, *key_pem, *issuer;
    int64_t ari_start, ari_end;
} outcome_t;

/* Everything a stored certificate changes, in the caller's transaction. */
static int record_success(struct issuer *iss, struct job *j, store_cert_t *cert, int *events)
{
    store_t *s = iss->c->store;
    char regdom[HOSTNAME_MAX];
    int64_t now = util_now_ms();
    if (hostname_registered_domain(j->host, regdom, sizeof(regdom)) != 0)
        snprintf(regdom, sizeof(regdom), "%s", j->host);
    if (store_cert_insert(s, cert, now) != STORE_OK ||
        store_cert_log_add(s, regdom, j->host, cert->issuer, now) != STORE_OK ||
        store_cert_backoff_clear(s, j->host) != STORE_OK)
        return -1;
    store_domain_t d;
    int rc = domain_active(s, j->host, &d);
    if (rc == STORE_NOTFOUND) /* removed meanwhile: keep the certificate, tell nobody */
        return 0;
    if (rc != STORE_OK)
        return -1;
    domain_state_t from;
    const char *state, *event;
    transition(&d, DT_ISSUE_OK, &from, &state, &event);
    /* ssl.issued always; then the domain's first time live completes the
     * flow, while a renewal reports what the table says (monitor_updated). */
    int first = from != DS_LIVE && state && strcmp(state, "live") == 0;
    const char *second = first ? "domain.flow.completed" : event && strcmp(event, "ssl.issued") != 0 ? event : NULL;
    rc = -1;
    if (store_cert_domain_status(s, d.id, state, "issued", NULL, now) == STORE_OK &&
        emit(iss, d.id, "ssl.issued", cert, NULL) == 0 &&
        (!second || emit(iss, d.id, second, cert, first ? NULL : "renewed") == 0))
        rc = 0;
    *events = 1;
    j->renewal = j->renewal || from == DS_LIVE;
    store_domain_clear(&d);
    return rc;
}

static void job_fail(struct issuer *iss, struct job *j, acme_status_t st, const char *type, const char *detail,
                     int retry_after_s);

/* Fills cert from the outcome; the key is sealed when a key-encryption key
 * is configured. */
static int build_cert(struct issuer *iss, struct job *j, const outcome_t *o, store_cert_t *cert)
{
    pki_cert_info_t info;
    memset(cert, 0, sizeof(*cert));
    if (pki_chain_info(o->chain_pem, &info) != 0)
        return -1;
    cert->hostname = j->host;
    cert->chain_pem = (char *)o->chain_pem;
    cert->key_type = cfg(iss)->key_type;
    cert->issuer = (char *)o->issuer;
    cert->not_before = info.not_before_ms;
    cert->not_after = info.not_after_ms;
    cert->renew_at = issuer_renew_at(info.not_before_ms, info.not_after_ms, o->ari_start, o->ari_end, random_unit());
    if (o->ari_end > o->ari_start && o->ari_start > 0 && cert->renew_at > util_now_ms() + ARI_POLL_MS)
        cert->renew_at = util_now_ms() + ARI_POLL_MS; /* poll the window, it may move (RFC 9773 §4.3) */
    cert->issuer_name = strdup(info.issuer_cn);
    cert->serial = strdup(info.serial_hex);
    if (!cert->issuer_name || !cert->serial)
        return -1;
    size_t klen = strlen(o->key_pem);
    if (iss->seal) {
        cert->key_sealed = 1;
        return keyseal_seal(iss->seal, j->host, o->key_pem, klen, &cert->key, &cert->key_len);
    }
    cert->key = (unsigned char *)util_strndup(o->key_pem, klen);
    cert->key_len = klen;
    return cert->key ? 0 : -1;
}

static void drop_cert(store_cert_t *cert)
{
    keyseal_free_secret(cert->key, cert->key_len);
    free(cert->issuer_name);
    free(cert->serial);
    memset(cert, 0, sizeof(*cert));
}

static void job_succeed(struct issuer *iss, struct job *j, const outcome_t *o)
{
    store_t *s = iss->c->store;
    store_cert_t cert;
    int events = 0;
    if (build_cert(iss, j, o, &cert) != 0) {
        drop_cert(&cert);
        job_fail(iss, j, ACME_TRANSIENT, ACME_PROBLEM_INTERNAL, "cannot prepare the certificate for storage", 0);
        return;
    }
    if (store_begin(s) != STORE_OK || record_success(iss, j, &cert, &events) != 0 || store_commit(s) != STORE_OK) {
        store_rollback(s);
        drop_cert(&cert);
        job_fail(iss, j, ACME_TRANSIENT, PROBLEM_STORE, "cannot store the certificate", 0);
        return;
    }
    if (events)
        ctl_events_committed(iss->c);
    send_msg(iss, MSG_CERT_READY, j->host, 0);
    int64_t ms = util_mono_ms() - j->t0;
    metrics_t *m = iss->c->hub->metrics;
    metrics_inc(m, j->renewal ? M_RENEW_OK : M_ISSUE_OK);
    metrics_observe_us(m, H_ISSUE, ms * 1000);
    char na[32], ra[32], q[300];
    log_info("issuer.issued", "host=%s issuer=%s issuer_cn=%s renewal=%d ms=%" PRId64 " not_after=%s renew_at=%s sealed=%d",
             j->host, o->issuer, log_quote(q, sizeof(q), cert.issuer_name), j->renewal, ms,
             util_iso8601(cert.not_after, na, sizeof(na)), util_iso8601(cert.renew_at, ra, sizeof(ra)), cert.key_sealed);
    int64_t due_in = cert.renew_at - util_now_ms();
    if (!iss->tick_at || util_mono_ms() + due_in < iss->tick_at)
        schedule_tick(iss, due_in);
    drop_cert(&cert);
    job_free(j);
    pump(iss);
}

/* ---- failure ---------------------------------------------------------- */

static int record_failure(struct issuer *iss, struct job *j, int for_good, int failures, int64_t next,
                          const char *err, int *events)
{
    store_t *s = iss->c->store;
    int64_t now = util_now_ms();
    if (store_cert_backoff_set(s, j->host, failures, next, err, now) != STORE_OK)
        return -1;
    if (j->cert_id && store_cert_set_renew_at(s, j->cert_id, next) == STORE_ERR)
        return -1;
    store_domain_t d;
    int rc = domain_active(s, j->host, &d);
    if (rc == STORE_NOTFOUND)
        return 0;
    if (rc != STORE_OK)
        return -1;
    domain_state_t from;
    const char *state, *event;
    transition(&d, DT_ISSUE_FAIL, &from, &state, &event);
    if (event && strcmp(event, "domain.failed") == 0 && !for_good)
        event = NULL;
    /* A live domain still serves its certificate: only the error is new. */
    rc = -1;
    if (store_cert_domain_status(s, d.id, state, from == DS_LIVE ? "issued" : "failed", err, now) == STORE_OK &&
        (!event || emit(iss, d.id, event, NULL, err) == 0))
        rc = 0;
    *events = event != NULL;
    store_domain_clear(&d);
    return rc;
}

static void job_fail(struct issuer *iss, struct job *j, acme_status_t st, const char *type, const char *detail,
                     int retry_after_s)
{
    store_t *s = iss->c->store;
    store_issuance_t prev;
    int failures = 1, events = 0, for_good = st == ACME_FAILED;
    if (store_cert_backoff_get(s, j->host, &prev) == STORE_OK)
        failures = prev.failures + 1;
    store_issuance_clear(&prev);
    int64_t delay = issuer_backoff_ms(cfg(iss)->acme_backoff_base_s, cfg(iss)->acme_backoff_max_s, failures);
    if (st == ACME_RATE_LIMITED && (int64_t)retry_after_s * 1000 > delay)
        delay = (int64_t)retry_after_s * 1000;
    int64_t next = util_now_ms() + delay;
    char err[512];
    snprintf(err, sizeof(err), "%s: %s", type ? type : "unknown", detail ? detail : "");
    if (store_begin(s) != STORE_OK || record_failure(iss, j, for_good, failures, next, err, &events) != 0 ||
        store_commit(s) != STORE_OK) {
        store_rollback(s);
        events = 0;
        log_error("issuer.record_failed", "host=%s", j->host);
    }
    if (events)
        ctl_events_committed(iss->c);
    metrics_t *m = iss->c->hub->metrics;
    metrics_inc(m, j->renewal ? M_RENEW_FAILED : M_ISSUE_FAILED);
    if (st == ACME_RATE_LIMITED)
        metrics_inc(m, M_ISSUE_RATE_LIMITED);
    char q[400], na[32];
    log_warn("issuer.failed", "host=%s status=%s for_good=%d renewal=%d problem=%s detail=%s failures=%d next_attempt=%s",
             j->host, acme_status_name(st), for_good, j->renewal, type ? type : "-",
             log_quote(q, sizeof(q), detail ? detail : ""), failures, util_iso8601(next, na, sizeof(na)));
    send_msg(iss, MSG_CERT_FAILED, j->host, ISSUER_FAIL_ERROR);
    /* The tick slept past the claimed lease: wake it for the retry (or the
     * expiry) instead of up to TICK_MAX_MS late. */
    int64_t retry_in = next - util_now_ms();
    if (j->cert_id && (!iss->tick_at || util_mono_ms() + retry_in < iss->tick_at))
        schedule_tick(iss, retry_in);
    job_free(j);
    pump(iss);
}

/* ---- running a job: internal CA --------------------------------------- */

static void run_internal(struct job *j);

static void resume_internal(void *arg)
{
    run_internal(arg);
}

static void run_internal(struct job *j)
{
    struct issuer *iss = j->iss;
    if (!iss->ca) {
        job_fail(iss, j, ACME_TRANSIENT, PROBLEM_LOCALCA, "the local CA is not loaded", 0);
        return;
    }
    pki_key_type_t kt = key_type(iss);
    EVP_PKEY *pkey = keypool_take(iss->keys, kt);
    if (!pkey && kt == PKI_KEY_RSA_2048) {
        keypool_wait(iss->keys, &j->keywait, resume_internal, j);
        return;
    }
    int days = (int)((cfg(iss)->internal_validity_s + 86399) / 86400);
    char *chain = NULL, *key = NULL;
    int rc = pkey ? localca_issue(iss->ca, j->host, pkey, kt, days, &chain, &key) : -1;
    EVP_PKEY_free(pkey);
    if (rc != 0) {
        job_fail(iss, j, ACME_TRANSIENT, PROBLEM_LOCALCA, "the local CA could not issue", 0);
        return;
    }
    outcome_t o = { .chain_pem = chain, .key_pem = key, .issuer = "internal" };
    job_succeed(iss, j, &o);
    free(chain);
    pki_free_secret(key);
}

/* ---- running a job: ACME ---------------------------------------------- */

static void on_acme_done(const acme_result_t *res, void *arg);

static void launch_acme(struct job *j)
{
    struct issuer *iss = j->iss;
    struct acme_dir *d = &iss->dirs[j->dir];
    j->order = acme_order_start(d->client, j->host, key_type(iss), on_acme_done, j);
    if (!j->order) {
        job_fail(iss, j, ACME_FAILED, ACME_PROBLEM_INTERNAL, "the ACME client refused the order", 0);
        return;
    }
    iss->running++;
    order_started(iss);
}

/* The next directory this job has not tried; -1 when none. */
static int next_dir(struct job *j)
{
    if (j->dirs_tried + 1 >= j->iss->ndirs)
        return -1;
    return (j->dir + 1) % j->iss->ndirs;
}

static void on_acme_done(const acme_result_t *res, void *arg)
{
    struct job *j = arg;
    struct issuer *iss = j->iss;
    struct acme_dir *d = &iss->dirs[j->dir];
    j->order = NULL;
    iss->running--;
    if (res->status == ACME_OK) {
        d->transient = 0;
        d->down_until = 0;
        outcome_t o = { .chain_pem = res->cert_pem, .key_pem = res->key_pem, .issuer = d->url,
                        .ari_start = res->ari_start_ms, .ari_end = res->ari_end_ms };
        job_succeed(iss, j, &o);
        return;
    }
    int64_t now = util_mono_ms();
    if (res->status == ACME_TRANSIENT) {
        j->tries++;
        if (++d->transient >= DIR_TRIES && d->down_until <= now) {
            d->down_until = now + (int64_t)cfg(iss)->acme_backoff_base_s * 1000;
            log_warn("issuer.directory_resting", "dir=%s failures=%d seconds=%d", d->url, d->transient,
                     cfg(iss)->acme_backoff_base_s);
        }
        if (j->tries < DIR_TRIES && d->down_until <= now) {
            int64_t wait = (int64_t)RETRY_FIRST_MS << (j->tries - 1);
            struct timeval tv = { (time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000 };
            if (evtimer_add(j->timer, &tv) == 0) {
                log_info("issuer.retry", "host=%s dir=%s try=%d in_ms=%" PRId64, j->host, d->url, j->tries + 1, wait);
                pump(iss);
                return;
            }
        }
    }
    int nd = next_dir(j);
    if (nd >= 0) {
        log_info("issuer.fallback", "host=%s from=%s to=%s status=%s problem=%s", j->host, d->url,
                 iss->dirs[nd].url, acme_status_name(res->status), res->problem_type ? res->problem_type : "-");
        j->dir = nd;
        j->dirs_tried++;
        j->tries = 0;
        job_run(j);
        pump(iss);
        return;
    }
    job_fail(iss, j, res->status, res->problem_type, res->problem_detail, res->retry_after_s);
}

/* ACME: starts j's order now, or queues it behind max_concurrent_orders. */
static void acme_run(struct job *j)
{
    struct issuer *iss = j->iss;
    if (j->dir >= iss->ndirs)
        j->dir = 0;
    if (iss->running >= (unsigned)cfg(iss)->acme_max_concurrent) {
        j->queued = 1;
        if (iss->q_tail)
            iss->q_tail->qnext = j;
        else
            iss->q_head = j;
        iss->q_tail = j;
        iss->queued++;
        return;
    }
    launch_acme(j);
}

/* Timer: the local CA's turn (never inside issuer_want), or an ACME retry. */
static void on_job_timer(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    if (acme_mode(j->iss))
        acme_run(j);
    else
        run_internal(j);
}

/* Runs (or queues) j with the issuer as configured now. */
static void job_run(struct job *j)
{
    if (acme_mode(j->iss)) {
        acme_run(j);
        return;
    }
    struct timeval zero = { 0, 0 };
    if (evtimer_add(j->timer, &zero) != 0)
        job_fail(j->iss, j, ACME_TRANSIENT, ACME_PROBLEM_INTERNAL, "cannot schedule the local CA", 0);
}

/* ---- issuer_want ------------------------------------------------------ */

static void refuse(struct issuer *iss, const char *host, int code, const char *reason)
{
    log_info("issuer.refused", "host=%s reason=%s", host, reason);
    send_msg(iss, MSG_CERT_FAILED, host, code);
}

/* CA-side limits (ACME only: the local CA has none). 0 = go ahead. */
static int over_limits(struct issuer *iss, const char *host, int renewal)
{
    const config_t *cf = cfg(iss);
    int64_t now = util_now_ms();
    if (iss->queued >= QUEUE_MAX)
        return log_warn("issuer.queue_full", "host=%s queued=%u", host, iss->queued), 1;
    if (hour_total(iss, now / 60000) + iss->queued >= (unsigned)cf->acme_max_per_hour) {
        metrics_inc(iss->c->hub->metrics, M_ISSUE_RATE_LIMITED);
        return log_warn("issuer.hourly_limit", "host=%s limit=%d", host, cf->acme_max_per_hour), 1;
    }
    if (renewal) /* CAs exempt renewals from the new-certificate limits */
        return 0;
    char regdom[HOSTNAME_MAX];
    int64_t count = 0, oldest = 0;
    if (hostname_registered_domain(host, regdom, sizeof(regdom)) != 0)
        snprintf(regdom, sizeof(regdom), "%s", host);
    if (store_cert_log_count(iss->c->store, regdom, now - WEEK_MS, &count, &oldest) != STORE_OK)
        return 0; /* the CA enforces its own limit anyway */
    if (count < cf->acme_weekly_limit)
        return 0;
    /* Next attempt when the oldest issuance leaves the window. */
    char err[400], na[32];
    snprintf(err, sizeof(err), "urn:hee:issuer:weekly-limit: %lld certificates for %s in 7 days", (long long)count,
             regdom);
    store_cert_backoff_set(iss->c->store, host, 0, oldest + WEEK_MS, err, now);
    metrics_inc(iss->c->hub->metrics, M_ISSUE_RATE_LIMITED);
    log_warn("issuer.weekly_limit", "host=%s registered_domain=%s count=%lld limit=%d until=%s", host, regdom,
             (long long)count, cf->acme_weekly_limit, util_iso8601(oldest + WEEK_MS, na, sizeof(na)));
    return 1;
}

/* Backoff: 1 (and *until) while host must not be tried. */
static int backing_off(struct issuer *iss, const char *host, int64_t *until)
{
    store_issuance_t b;
    int rc = store_cert_backoff_get(iss->c->store, host, &b);
    int off = rc == STORE_OK && b.next_attempt_at > util_now_ms();
    *until = off ? b.next_attempt_at : 0;
    store_issuance_clear(&b);
    return off;
}

void issuer_want(struct issuer *iss, const char *host_in)
{
    char host[HOSTNAME_MAX];
    size_t n = host_in ? strlen(host_in) : 0;
    if (!iss || iss->stopping || n == 0 || n >= sizeof(host))
        return;
    for (size_t i = 0; i <= n; i++)
        host[i] = (char)(host_in[i] >= 'A' && host_in[i] <= 'Z' ? host_in[i] + 32 : host_in[i]);
    if (job_find(iss, host)) /* its outcome reaches every worker */
        return;
    store_domain_t d;
    int rc = domain_active(iss->c->store, host, &d);
    int verified = rc == STORE_OK && d.verified;
    store_domain_clear(&d);
    if (!verified) {
        refuse(iss, host, ISSUER_FAIL_UNKNOWN, rc == STORE_OK ? "not_verified" : "unknown_host");
        return;
    }
    store_cert_t cur;
    int64_t now = util_now_ms(), until = 0;
    int have = store_cert_current(iss->c->store, host, &cur) == STORE_OK;
    int valid = have && cur.not_after > now;
    store_cert_clear(&cur);
    if (valid) { /* stored while this worker's lookup was on its way */
        send_msg(iss, MSG_CERT_READY, host, 0);
        return;
    }
    if (backing_off(iss, host, &until)) {
        char na[32];
        log_info("issuer.backing_off", "host=%s until=%s", host, util_iso8601(until, na, sizeof(na)));
        send_msg(iss, MSG_CERT_FAILED, host, ISSUER_FAIL_BACKOFF);
        return;
    }
    if (acme_mode(iss) && over_limits(iss, host, have)) {
        refuse(iss, host, ISSUER_FAIL_LIMIT, "limit");
        return;
    }
    if (job_start(iss, host, have, 0) != 0)
        refuse(iss, host, ISSUER_FAIL_ERROR, "out_of_memory");
}

/* ---- renewal ---------------------------------------------------------- */

/* An expired certificate nobody renewed: domain.expired for an active
 * domain, then the row retires and the next handshake (or this call) asks
 * for a new one under the usual backoff. */
static void expired(struct issuer *iss, const store_cert_due_t *row)
{
    store_t *s = iss->c->store;
    store_domain_t d;
    int rc = domain_active(s, row->hostname, &d);
    if (rc != STORE_OK || !d.verified) { /* removed: nothing happens */
        store_cert_set_renew_at(s, row->id, FAR_FUTURE_MS);
        store_domain_clear(&d);
        return;
    }
    int64_t now = util_now_ms();
    const char *why = "certificate expired without renewal";
    int ok = store_begin(s) == STORE_OK && store_cert_retire(s, row->id, now) == STORE_OK &&
             store_cert_domain_status(s, d.id, NULL, "failed", why, now) == STORE_OK &&
             emit(iss, d.id, "domain.expired", NULL, why) == 0 && store_commit(s) == STORE_OK;
    if (!ok) {
        store_rollback(s);
        log_error("issuer.expire_failed", "host=%s", row->hostname);
        store_domain_clear(&d);
        return;
    }
    char na[32];
    log_warn("issuer.expired", "host=%s not_after=%s", row->hostname, util_iso8601(row->not_after, na, sizeof(na)));
    ctl_events_committed(iss->c);
    store_domain_clear(&d);
    issuer_want(iss, row->hostname);
}

/* ---- RFC 9773 renewal information ----------------------------------------
 * A due ACME certificate first asks its CA for the suggested window: the
 * CA may have moved it (mass revocation) or may want it left alone. The
 * answer either starts the renewal or moves renew_at to the next look. */

static void ari_unlink(struct issuer *iss, struct aricheck *a)
{
    for (struct aricheck **p = &iss->aris; *p; p = &(*p)->next) {
        if (*p == a) {
            *p = a->next;
            iss->naris--;
            return;
        }
    }
}

/* Before the clients go: their requests are freed without callbacks. The
 * claimed rows come due again when their lease runs out. */
static void ari_drop_all(struct issuer *iss)
{
    while (iss->aris) {
        struct aricheck *a = iss->aris;
        iss->aris = a->next;
        free(a);
    }
    iss->naris = 0;
}

static void on_ari(const acme_ari_t *ari, void *arg)
{
    struct aricheck *a = arg;
    struct issuer *iss = a->iss;
    ari_unlink(iss, a);
    issuer_ari_answer_t ans = { ari->status == ACME_OK, ari->start_ms, ari->end_ms, ari->retry_after_s };
    int64_t next = 0, now = util_now_ms();
    if (issuer_ari_decide(now, a->not_before, a->not_after, &ans, random_unit(), &next)) {
        if (!job_find(iss, a->host) && job_start(iss, a->host, 1, a->cert_id) != 0)
            log_warn("issuer.renew_start_failed", "host=%s note=retry_after_lease", a->host);
    } else if (store_cert_set_renew_at(iss->c->store, a->cert_id, next) == STORE_OK) {
        char at[32];
        log_info("issuer.renewal_deferred", "host=%s ari=%s next_look=%s", a->host,
                 ans.ok ? "window_not_open" : "none", util_iso8601(next, at, sizeof(at)));
    }
    free(a);
}

/* 0: a renewalInfo request is on its way; -1: renew by the lifetime rule. */
static int ari_start(struct issuer *iss, const store_cert_due_t *row)
{
    store_cert_t cur;
    if (store_cert_current(iss->c->store, row->hostname, &cur) != STORE_OK)
        return -1;
    int rc = -1;
    struct acme_dir *d = NULL;
    for (int i = 0; i < iss->ndirs && cur.id == row->id && cur.issuer && !d; i++)
        if (iss->dirs[i].client && strcmp(cur.issuer, iss->dirs[i].url) == 0)
            d = &iss->dirs[i]; /* certificates of a CA no longer configured renew by lifetime */
    struct aricheck *a = d ? calloc(1, sizeof(*a)) : NULL;
    if (!a)
        goto out;
    a->iss = iss;
    a->cert_id = row->id;
    a->not_before = cur.not_before;
    a->not_after = cur.not_after;
    snprintf(a->host, sizeof(a->host), "%s", row->hostname);
    a->next = iss->aris;
    iss->aris = a;
    iss->naris++;
    rc = acme_renewal_info(d->client, cur.chain_pem, on_ari, a);
    if (rc != 0) {
        ari_unlink(iss, a);
        free(a);
    }
out:
    store_cert_clear(&cur);
    return rc;
}

/* 1 when the batch should stop (renewal slots or the hourly budget are used). */
static int renew_one(struct issuer *iss, const store_cert_due_t *row)
{
    store_t *s = iss->c->store;
    int64_t now = util_now_ms(), until = 0;
    if (job_find(iss, row->hostname)) {
        store_cert_set_renew_at(s, row->id, now + RENEW_LEASE_MS);
        return 0;
    }
    if (row->not_after <= now) {
        expired(iss, row);
        return 0;
    }
    store_domain_t d;
    int rc = domain_active(s, row->hostname, &d);
    int verified = rc == STORE_OK && d.verified;
    store_domain_clear(&d);
    if (rc == STORE_ERR)
        return 1;
    if (!verified) { /* removed: look again at expiry, in case it comes back */
        store_cert_set_renew_at(s, row->id, row->not_after);
        return 0;
    }
    if (backing_off(iss, row->hostname, &until)) {
        store_cert_set_renew_at(s, row->id, until);
        return 0;
    }
    unsigned slots = (unsigned)cfg(iss)->acme_max_concurrent / 2;
    if (iss->renewals + iss->naris >= (slots ? slots : 1))
        return 1;
    if (acme_mode(iss) && over_limits(iss, row->hostname, 1))
        return 1;
    if (store_cert_set_renew_at(s, row->id, now + RENEW_LEASE_MS) != STORE_OK)
        return 1;
    if (acme_mode(iss) && ari_start(iss, row) == 0)
        return 0; /* on_ari decides */
    return job_start(iss, row->hostname, 1, row->id) == 0 ? 0 : 1;
}

static void schedule_tick(struct issuer *iss, int64_t delay_ms)
{
    if (!iss->tick || iss->stopping)
        return;
    if (delay_ms < TICK_MIN_MS)
        delay_ms = TICK_MIN_MS;
    if (delay_ms > TICK_MAX_MS)
        delay_ms = TICK_MAX_MS;
    struct timeval tv = { (time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000) * 1000 };
    if (evtimer_add(iss->tick, &tv) == 0)
        iss->tick_at = util_mono_ms() + delay_ms;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct issuer *iss = arg;
    store_cert_due_t rows[RENEW_BATCH];
    int n = 0, stopped = 0;
    int64_t now = util_now_ms(), next = 0;
    iss->tick_at = 0;
    if (store_cert_due(iss->c->store, now, rows, RENEW_BATCH, &n) != STORE_OK)
        n = 0;
    for (int i = 0; i < n && !stopped; i++)
        stopped = renew_one(iss, &rows[i]);
    if (n > 0)
        log_debug("issuer.renew_tick", "due=%d stopped=%d", n, stopped);
    if (n == RENEW_BATCH || stopped)
        schedule_tick(iss, TICK_MIN_MS);
    else if (store_cert_next_renew_at(iss->c->store, &next) == STORE_OK)
        schedule_tick(iss, next - util_now_ms());
    else
        schedule_tick(iss, TICK_MAX_MS);
}

/* ---- ACME hooks ------------------------------------------------------- */

static int h_load_account(void *arg, const char *dir_url, char **key_pem, char **kid)
{
    struct issuer *iss = arg;
    unsigned char *key = NULL;
    size_t len = 0, plen = 0;
    *key_pem = *kid = NULL;
    int rc = store_cert_account_get(iss->c->store, dir_url, &key, &len, kid);
    if (rc == STORE_NOTFOUND)
        return 0;
    if (rc != STORE_OK)
        return -1;
    if (!keyseal_is_sealed(key, len)) {
        *key_pem = (char *)key;
        return 0;
    }
    rc = iss->seal ? keyseal_open(iss->seal, dir_url, key, len, key_pem, &plen) : -1;
    keyseal_free_secret(key, len);
    if (rc != 0) {
        log_error("issuer.account_key_sealed", "dir=%s reason=%s", dir_url,
                  iss->seal ? "cannot open with key_encryption_key" : "no key_encryption_key configured");
        free(*kid);
        *kid = NULL;
        return -1;
    }
    return 0;
}

static int h_save_account(void *arg, const char *dir_url, const char *key_pem, const char *kid)
{
    struct issuer *iss = arg;
    unsigned char *sealed = NULL;
    size_t slen = 0;
    const char *email = cfg(iss)->acme_email;
    if (iss->seal && keyseal_seal(iss->seal, dir_url, key_pem, strlen(key_pem), &sealed, &slen) != 0)
        return -1;
    int rc = store_cert_account_put(iss->c->store, dir_url, sealed ? (void *)sealed : (const void *)key_pem,
                                    sealed ? slen : strlen(key_pem), kid, email[0] ? email : NULL, util_now_ms());
    free(sealed);
    if (rc == STORE_OK)
        log_info("issuer.account_saved", "dir=%s kid=%s", dir_url, kid ? kid : "-");
    return rc == STORE_OK ? 0 : -1;
}

static int h_publish(void *arg, const char *type, const char *host, const char *token, const char *keyauth)
{
    struct issuer *iss = arg;
    challenge_table_t *t = iss->c->hub->challenges;
    if (strcmp(type, "http-01") == 0)
        return challenge_http_set(t, host, token, keyauth) == 0 ? 0 : -1;
    char *cert = NULL, *key = NULL;
    if (strcmp(type, "tls-alpn-01") != 0 || pki_tls_alpn_cert(host, keyauth, &cert, &key) != 0)
        return -1;
    int rc = challenge_alpn_set(t, host, cert, key);
    free(cert);
    pki_free_secret(key);
    return rc == 0 ? 0 : -1;
}

static void h_unpublish(void *arg, const char *type, const char *host, const char *token)
{
    struct issuer *iss = arg;
    challenge_remove(iss->c->hub->challenges, host, strcmp(type, "http-01") == 0 ? token : NULL);
}

/* ---- building the ACME clients ---------------------------------------- */

static char *acme_signature(const config_t *cf)
{
    const char *parts[] = { cf->acme_directory, cf->acme_ca_bundle, cf->acme_email, cf->acme_eab_kid,
                            cf->acme_eab_hmac_key, cf->acme_challenges };
    size_t n = 1;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(parts); i++)
        n += strlen(parts[i]) + 1;
    char *sig = malloc(n);
    if (!sig)
        return NULL;
    sig[0] = '\0';
    for (size_t i = 0; i < UTIL_ARRAY_LEN(parts); i++) {
        strcat(sig, parts[i]);
        strcat(sig, "\n");
    }
    return sig;
}

static void dirs_free(struct acme_dir *dirs, int *n)
{
    for (int i = 0; i < *n; i++) {
        acme_client_free(dirs[i].client);
        free(dirs[i].url);
    }
    memset(dirs, 0, sizeof(*dirs) * DIR_MAX);
    *n = 0;
}

static const char *nz(const char *s)
{
    return s && s[0] ? s : NULL;
}

/* One client per URL of cf's [acme] directory, into dirs (DIR_MAX slots). */
static int dirs_build(struct issuer *iss, const config_t *cf, struct acme_dir *dirs, int *n, char **err)
{
    char *list = strdup(cf->acme_directory), *save = NULL, buf[600];
    *n = 0;
    if (!list)
        return *err = strdup("out of memory"), -1;
    for (char *u = strtok_r(list, " \t,", &save); u; u = strtok_r(NULL, " \t,", &save)) {
        if (*n == DIR_MAX) {
            free(list);
            return *err = strdup("[acme] directory: at most 8 directory URLs"), -1;
        }
        if (strncmp(u, "https://", 8) != 0 || !u[8]) {
            snprintf(buf, sizeof(buf), "[acme] directory %s: expected an https:// URL", u);
            free(list);
            return *err = strdup(buf), -1;
        }
        struct acme_dir *d = &dirs[*n];
        acme_config_t ac = {
            .directory_url = u,
            .ca_file = nz(cf->acme_ca_bundle),
            .contact_email = nz(cf->acme_email),
            .eab_kid = nz(cf->acme_eab_kid),
            .eab_hmac_key = nz(cf->acme_eab_hmac_key),
            .challenges = cf->acme_challenges,
            .hooks = { h_load_account, h_save_account, h_publish, h_unpublish, iss },
            .max_orders = cf->acme_max_concurrent,
            .keys = iss->keys,
        };
        memset(d, 0, sizeof(*d));
        d->url = strdup(u);
        d->client = d->url ? acme_client_new(iss->c->base, iss->c->curl, &ac) : NULL;
        if (!d->client) {
            snprintf(buf, sizeof(buf), "[acme] cannot use directory %s (URL, eab_kid/eab_hmac_key or challenges)", u);
            free(d->url);
            d->url = NULL;
            free(list);
            return *err = strdup(buf), -1;
        }
        (*n)++;
    }
    free(list);
    return 0;
}

/* The local CA from the store, or a new one stored now (first start). */
static int ca_load(struct issuer *iss, char **err)
{
    store_t *s = iss->c->store;
    store_local_ca_t row;
    char *key = NULL;
    size_t klen = 0;
    int rc = store_cert_local_ca_get(s, &row, 1);
    if (rc == STORE_NOTFOUND) {
        localca_t *ca = localca_create();
        char *cert_pem = NULL, *key_pem = NULL;
        unsigned char *sealed = NULL;
        size_t slen = 0;
        if (!ca || localca_export(ca, &cert_pem, &key_pem) != 0 ||
            (iss->seal && keyseal_seal(iss->seal, KEYSEAL_CTX_LOCAL_CA, key_pem, strlen(key_pem), &sealed, &slen) != 0))
            rc = STORE_ERR;
        else
            rc = store_cert_local_ca_put(s, cert_pem, sealed ? (void *)sealed : key_pem,
                                         sealed ? slen : strlen(key_pem), util_now_ms());
        free(cert_pem);
        pki_free_secret(key_pem);
        free(sealed);
        if (rc == STORE_OK) {
            iss->ca = ca;
            log_info("issuer.local_ca_created", "sealed=%d", iss->seal != NULL);
            return 0;
        }
        localca_free(ca);
        if (rc != STORE_CONFLICT) /* a concurrent `hee` process made one: use it */
            return *err = strdup("cannot create the local CA"), -1;
        rc = store_cert_local_ca_get(s, &row, 1);
    }
    if (rc != STORE_OK)
        return *err = strdup("cannot read the local CA from the store"), -1;
    if (keyseal_is_sealed(row.key, row.key_len)) {
        if (!iss->seal || keyseal_open(iss->seal, KEYSEAL_CTX_LOCAL_CA, row.key, row.key_len, &key, &klen) != 0) {
            store_local_ca_clear(&row);
            return *err = strdup("the local CA key is sealed and [store] key_encryption_key cannot open it"), -1;
        }
    }
    iss->ca = localca_load(row.cert_pem, key ? key : (const char *)row.key);
    keyseal_free_secret(key, klen);
    store_local_ca_clear(&row);
    return iss->ca ? 0 : (*err = strdup("the stored local CA is unusable"), -1);
}

/* Builds the issuing side for cfg (ACME clients, or the local CA) and
 * installs it; on failure nothing changes. Jobs in flight are the caller's
 * business (issuer_reload restarts them). */
static int setup(struct issuer *iss, char **err)
{
    struct acme_dir dirs[DIR_MAX];
    int n = 0;
    char *sig = acme_signature(cfg(iss));
    memset(dirs, 0, sizeof(dirs));
    if (!sig)
        return *err = strdup("out of memory"), -1;
    if (dirs_build(iss, cfg(iss), dirs, &n, err) != 0 || (n == 0 && !iss->ca && ca_load(iss, err) != 0)) {
        dirs_free(dirs, &n);
        free(sig);
        return -1;
    }
    ari_drop_all(iss);
    dirs_free(iss->dirs, &iss->ndirs);
    memcpy(iss->dirs, dirs, sizeof(dirs));
    iss->ndirs = n;
    free(iss->acme_sig);
    iss->acme_sig = sig;
    log_info("issuer.ready", "mode=%s directories=%d sealed=%d", acme_mode(iss) ? "acme" : "internal", iss->ndirs,
             iss->seal != NULL);
    return 0;
}

/* ---- lifecycle -------------------------------------------------------- */

struct issuer *issuer_new(struct control *c, char **err)
{
    struct issuer *iss = calloc(1, sizeof(*iss));
    if (!iss)
        return *err = strdup("out of memory"), NULL;
    iss->c = c;
    const char *kek = c->cfg->key_encryption_key;
    if (kek && kek[0]) {
        char *path = config_data_path(c->cfg, kek);
        iss->seal = path ? keyseal_load(path, err) : NULL;
        if (!path)
            *err = strdup("out of memory");
        free(path);
        if (!iss->seal)
            goto fail;
    }
    if (!(iss->tick = evtimer_new(c->base, on_tick, iss))) {
        *err = strdup("cannot create the renewal timer");
        goto fail;
    }
    if (!(iss->keys = keypool_new(c->base, KEYPOOL_STOCK))) {
        *err = strdup("cannot create the key pool");
        goto fail;
    }
    if (!(iss->save_ev = evtimer_new(c->base, on_orders_save, iss))) {
        *err = strdup("cannot create the order timer");
        goto fail;
    }
    if (store_cert_orders_since(c->store, util_now_ms() - HOUR_MS, order_seen, iss) != STORE_OK)
        log_warn("issuer.orders_load_failed", "%s", "hourly cap counts this run's orders only");
    if (setup(iss, err) != 0)
        goto fail;
    schedule_tick(iss, TICK_START_MS);
    return iss;
fail:
    issuer_free(iss);
    return NULL;
}

/* Jobs in flight stop their orders; they run again with the new setup. */
static void requeue_all(struct issuer *iss, struct job **list)
{
    *list = NULL;
    for (int b = 0; b < JOB_BUCKETS; b++) {
        for (struct job *j = iss->jobs[b]; j; j = j->hnext) {
            queue_remove(iss, j);
            keypool_cancel(iss->keys, &j->keywait);
            if (j->order) {
                acme_order_cancel(j->order);
                j->order = NULL;
                iss->running--;
            }
            if (j->timer)
                evtimer_del(j->timer);
            j->dir = j->tries = j->dirs_tried = 0;
            j->qnext = *list;
            *list = j;
        }
    }
}

void issuer_reload(struct issuer *iss)
{
    if (!iss || iss->stopping)
        return;
    char *sig = acme_signature(cfg(iss)), *err = NULL;
    if (sig && iss->acme_sig && strcmp(sig, iss->acme_sig) != 0) {
        /* Orders in flight belong to the old clients: stop them before the
         * swap frees those, and run them again on the new setup. */
        struct job *list, *next;
        requeue_all(iss, &list);
        if (setup(iss, &err) != 0) {
            log_error("issuer.reload_failed", "error=\"%s\" note=keeping_previous_issuer", err ? err : "?");
            free(err);
        }
        for (struct job *j = list; j; j = next) {
            next = j->qnext;
            j->qnext = NULL;
            job_run(j);
        }
    }
    free(sig);
    schedule_tick(iss, 0);
}

void issuer_stop(struct issuer *iss)
{
    if (!iss)
        return;
    iss->stopping = 1;
    for (int b = 0; b < JOB_BUCKETS; b++)
        while (iss->jobs[b])
            job_free(iss->jobs[b]);
    if (iss->tick)
        evtimer_del(iss->tick);
    if (iss->save_ev)
        evtimer_del(iss->save_ev);
    orders_save(iss);
    ari_drop_all(iss);
    dirs_free(iss->dirs, &iss->ndirs);
}

void issuer_free(struct issuer *iss)
{
    if (!iss)
        return;
    issuer_stop(iss);
    if (iss->tick)
        event_free(iss->tick);
    if (iss->save_ev)
        event_free(iss->save_ev);
    localca_free(iss->ca);
    keypool_free(iss->keys);
    keyseal_free(iss->seal);
    free(iss->acme_sig);
    free(iss);
}

void issuer_stats(const struct issuer *iss, issuer_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!iss)
        return;
    out->running = iss->running;
    out->queued = iss->queued;
    out->renewals = iss->renewals;
}
