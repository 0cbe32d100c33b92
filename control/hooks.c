/* DESIGN
 *
 * The outbox is the queue. A delivery row is 'pending' until an attempt
 * that got a 2xx is committed, so a crash at any point re-sends it (with the
 * same webhook-id: the event's public id) — delivery is at-least-once.
 *
 * A pass (on hooks_kick — a commit wrote events, or an answer freed a
 * connection —, on the timer, after a flush) walks the due deliveries in
 * (next_attempt_at, id) order with two cursors kept between passes. The head
 * walk starts just before the oldest row not yet sent and stays there when
 * that row's endpoint is at its hook_per_endpoint limit, so a busy
 * endpoint's deliveries go oldest first instead of waiting for a wrap. The
 * explore walk then goes on from its own cursor past rows it cannot use,
 * wrapping at the end, so one endpoint's backlog never hides another's rows.
 * Rows whose job is still tracked are walked past (the flush moves them). A
 * walk stops when hook_concurrency requests are on the wire, after a run of
 * rows it could not use (the answers will wake it again), or after
 * PASS_PARKS_MAX parks (the flush writes them and walks on): bounded work
 * per loop turn.
 *
 * Per-domain order: a delivery to an ordered endpoint may go only when no
 * pending delivery to that endpoint for the same domain has a smaller id.
 * The engine keeps those queues in memory — per (endpoint, domain), the
 * sorted ids of the pending deliveries it knows — so the check costs a hash
 * lookup, not a scan (the schema has no index on (endpoint, domain)). The
 * queues are read from the store at start, when the API enables, disables
 * or deletes an endpoint (hooks_changed), after a purge and hourly; in
 * between, deliveries join them as the due walk meets them — new ones in id
 * order, because store_event_emit makes them due at once; replayed ones
 * wherever their id puts them. One that must wait is
 * parked (next_attempt_at = STORE_HOOK_PARKED, out of the due index) and is
 * unparked in the transaction that takes its predecessor out of 'pending'.
 * Deliveries of disabled endpoints are parked too.
 *
 * No transaction is held across network I/O, and nothing the walk decides
 * costs an fsync of its own: parks and results wait in memory and a flush
 * writes them all in one transaction (parks first, so that a result that
 * releases a parked successor wins). An answered job frees its endpoint's
 * connection at once (per_endpoint and concurrency count requests on the
 * wire) but stays tracked — not sent twice, its domain's successor still
 * held — until the flush committed. The flush waits FLUSH_DELAY_US when a
 * successor waits for the result, FLUSH_LAZY_US otherwise, or runs at once
 * with FLUSH_MAX waiting: under load, one fsync records many attempts, and
 * the control loop (which also commits the API's registrations) spends its
 * time sending, not syncing. A crash before the flush loses only the
 * record: the delivery is still 'pending' and goes again, same webhook-id.
 *
 * The background thread's store handle never waits for a lock
 * (store_set_nowait): when another connection holds the write lock — the
 * control thread's commit, the CLI, a backup — a write fails at once with
 * STORE_BUSY instead of sleeping in SQLite's busy handler with the loop
 * stopped. The flush then keeps its batch (parks and results, in order)
 * and a retry timer tries again (store_retry_next: every few ms); results
 * of later answers join the same batch.
 * Meanwhile requests still go out, but can_send() bounds what waits in
 * memory (FLUSH_MAX results beyond the wire, PARKS_MAX parks), so a lock
 * held for minutes stops new work instead of growing the batch. A re-read
 * of the per-domain queues that finds the lock taken is retried the same
 * way, and no walk runs on the old queues meanwhile. */
#include "control/hooks.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "control/ctl.h"
#include "control/hook_sched.h"
#include "control/hook_sign.h"
#include "control/ssrf.h"
#include "control/subsys.h"

#define BATCH_ROWS 64            /* due rows read per query */
#define IDLE_ROWS_MAX 16         /* a walk gives up after this many unusable rows in a row */
#define EXPLORE_EVERY_MS 10      /* the explore walk runs at most this often */
#define PASS_PARKS_MAX 256       /* a pass yields to the flush after deciding this many parks */
#define FLUSH_DELAY_US 2000      /* a result the domain's next delivery waits for: this long to share a transaction */
#define FLUSH_LAZY_US 20000      /* any other result (its connection is already free): this long */
#define FLUSH_MAX 256            /* …or until this many are waiting */
#define PARKS_MAX (4 * PASS_PARKS_MAX) /* parks waiting in memory past which walks stop (flush cannot commit) */
#define TIMER_MAX_MS 1000        /* rows written by other processes (CLI) are seen within this */
#define PURGE_EVERY_MS 60000
#define PURGE_BATCH 500
#define SWEEP_EVERY_MS (3600 * 1000)
#define RESPONSE_KEEP 1024       /* body bytes kept in the attempt log */
#define RESPONSE_READ_MAX (256 * 1024) /* body bytes read before hanging up */
#define ID_BUCKETS 1024
#define EP_BUCKETS 256
#define ORDER_BUCKETS_MIN 1024
#define CURSOR_START INT64_MIN

/* The SSRF policy is swapped on reload while requests still borrow the old one. */
struct policy_ref {
    ssrf_policy_t *policy;
    int refs;
};

struct ep_slot {
    char id[48];
    int inflight;                /* tracked jobs: on the wire or not yet recorded */
    int wire;                    /* of those, requests not yet answered (per_endpoint) */
    struct job *jobs;            /* via job->ep_next */
    struct ep_slot *next;
};

/* The pending deliveries of one (endpoint, domain), ids ascending; the
 * head, ids[start], is the only one that may be on the wire. */
struct okey {
    char endpoint_id[48];
    int64_t domain_id;
    int64_t *ids;
    int start, n, cap;           /* live ids are ids[start .. n) */
    struct okey *next;
};

struct order {
    struct okey **buckets;
    size_t nbuckets, count;
};

enum job_result { JOB_PENDING, JOB_OK, JOB_GONE, JOB_FAILED };

struct job {
    struct hooks *h;
    struct job *prev, *next;     /* h->inflight or h->done */
    struct job *id_next;         /* h->by_id bucket */
    struct job *ep_next;         /* slot->jobs */
    struct ep_slot *slot;
    struct policy_ref *pol;
    CURL *easy;
    struct curl_slist *hdrs;
    /* what is sent */
    int64_t delivery_id, domain_id, window_start;
    unsigned attempts;
    int ordered;
    int on_wire;                 /* counted in slot->wire */
    int leaves;                  /* this result takes it out of 'pending' */
    char endpoint_id[48];
    char *event_id;
    char *payload;
    size_t payload_len;
    /* what came back */
    int64_t start_us, start_ms, latency_us;
    ssrf_curl_ctx_t ssrf;
    char errbuf[CURL_ERROR_SIZE];
    char body[RESPONSE_KEEP + 1];
    size_t body_len, body_seen;
    int body_capped;
    int64_t retry_after_ms;      /* -1 = none */
    enum job_result result;
    long status_code;
    int64_t latency_ms;
    char error[256];
    /* test sends only */
    hooks_test_cb test_cb;
    void *test_arg;
};

struct hooks {
    struct control *c;
    hook_sched_t sched;
    struct policy_ref *pol;
    struct event *kick_ev, *timer_ev, *flush_ev, *purge_ev;
    struct event *retry_ev;      /* pending while a write waits for the store's lock */
    store_retry_t busy;          /* the retries of a write that found the lock taken */
    int rebuild_wanted;          /* the per-domain queues must be re-read before the next walk */
    struct job *inflight;        /* requests on the wire (deliveries and tests) */
    struct job *done, *done_tail;/* answered, not yet recorded */
    int ninflight;               /* deliveries on the wire or waiting to be recorded */
    int nwire;                   /* of those, requests not yet answered ([webhooks] concurrency) */
    int64_t flush_at;            /* mono us the flush timer is set for (0: not set) */
    int ndone;
    int64_t *parks;              /* deliveries to park, written by the next flush */
    int nparks, parks_cap;
    struct job *by_id[ID_BUCKETS];
    struct ep_slot *slots[EP_BUCKETS];
    struct order order;
    int64_t cur_at, cur_id;      /* explore cursor: moves past skipped rows, wraps */
    int64_t head_at, head_id;    /* head cursor: just before the oldest row not sent */
    int64_t explored_ms;         /* mono ms of the last explore walk */
    int64_t last_sweep_ms;
    int in_pass;
    int stopping;
};

static void pass(struct hooks *h);
static int flush(struct hooks *h);
static void arm_timer(struct hooks *h, int64_t delay_ms);

/* ------------------------------------------------------------ event types -- */

/* Examples shared by test sends and docs/webhooks.md (keep them in step). */
#define EXAMPLE_DOMAIN(state, verified, verified_at, cert, removed)                                        \
    "{\"domain\":{\"hostname\":\"docs.customer.example\",\"projectSlug\":\"acme\",\"verified\":" verified   \
    ",\"verifiedAt\":" verified_at ",\"createdAt\":\"2026-01-05T09:30:00.000Z\","                           \
    "\"metadata\":{\"workspaceId\":\"ws_abc123\"},\"state\":\"" state "\","                                 \
    "\"ownershipChallenge\":{\"name\":\"_customdomain-challenge.docs.customer.example\",\"type\":\"TXT\","  \
    "\"value\":\"hee-verify-3k9T2bQ8xZ\"},\"cnameTarget\":\"edge.hee.la\",\"certificate\":" cert            \
    ",\"removedAt\":" removed "}"
#define EX_NOCERT "{\"status\":\"none\",\"notAfter\":null,\"issuer\":null}"
#define EX_CERT "{\"status\":\"issued\",\"notAfter\":\"2026-04-05T09:35:12.000Z\",\"issuer\":\"R11\"}"
#define EX_EXPIRED "{\"status\":\"failed\",\"notAfter\":\"2026-04-05T09:35:12.000Z\",\"issuer\":\"R11\"}"
#define EX_VERIFIED_AT "\"2026-01-05T09:35:10.000Z\""

#define EX_CERT_DATA ",\"certificate\":{\"notAfter\":\"2026-04-05T09:35:12.000Z\",\"issuer\":\"R11\"}"

static const struct {
    const char *type;
    const char *example;
} event_types[] = {
    { "domain.created", EXAMPLE_DOMAIN("pending_ownership", "false", "null", EX_NOCERT, "null") "}" },
    { "domain.verified",
      EXAMPLE_DOMAIN("verified", "true", EX_VERIFIED_AT, EX_NOCERT, "null") ",\"method\":\"cname\"}" },
    { "domain.drift", EXAMPLE_DOMAIN("drifted", "true", EX_VERIFIED_AT, EX_CERT, "null")
                      ",\"reason\":\"dns_changed\",\"hint\":\"docs.customer.example is a CNAME to "
                      "old-proxy.example.net, not edge.hee.la\"}" },
    { "domain.monitor_updated",
      EXAMPLE_DOMAIN("live", "true", EX_VERIFIED_AT, EX_CERT, "null") EX_CERT_DATA ",\"reason\":\"renewed\"}" },
    { "domain.failed", EXAMPLE_DOMAIN("stalled", "false", "null", EX_NOCERT, "null")
                       ",\"reason\":\"verification_window_ended\",\"hint\":\"no CNAME or A record for "
                       "docs.customer.example points at edge.hee.la\"}" },
    { "domain.expired", EXAMPLE_DOMAIN("live", "true", EX_VERIFIED_AT, EX_EXPIRED, "null")
                        ",\"reason\":\"certificate expired without renewal\"}" },
    { "domain.deleted",
      EXAMPLE_DOMAIN("archived", "true", EX_VERIFIED_AT, EX_CERT, "\"2026-02-01T12:00:00.000Z\"") "}" },
    { "ssl.issued", EXAMPLE_DOMAIN("live", "true", EX_VERIFIED_AT, EX_CERT, "null") EX_CERT_DATA "}" },
    { "domain.flow.completed", EXAMPLE_DOMAIN("live", "true", EX_VERIFIED_AT, EX_CERT, "null") EX_CERT_DATA "}" },
};

/* Same order as event_types. */
static const char *const type_names[] = {
    "domain.created", "domain.verified", "domain.drift", "domain.monitor_updated", "domain.failed",
    "domain.expired", "domain.deleted", "ssl.issued", "domain.flow.completed", NULL,
};
_Static_assert(UTIL_ARRAY_LEN(type_names) == UTIL_ARRAY_LEN(event_types) + 1, "type_names out of step");

const char *const *hooks_event_types(void)
{
    return type_names;
}

int hooks_event_type_known(const char *type)
{
    return hooks_example_data(type) != NULL;
}

const char *hooks_example_data(const char *type)
{
    for (size_t i = 0; type && i < UTIL_ARRAY_LEN(event_types); i++)
        if (strcmp(event_types[i].type, type) == 0)
            return event_types[i].example;
    return NULL;
}

/* ------------------------------------------------------------------ urls -- */

int hooks_check_url(const config_t *cfg, const char *url, char *why, size_t len)
{
    int rc = -1;
    char *scheme = NULL, *host = NULL;
    CURLU *u = curl_url();
    if (!u) {
        snprintf(why, len, "out of memory");
        return -1;
    }
    if (!url || !*url || strlen(url) > 2048) {
        snprintf(why, len, "url must be 1 to 2048 characters");
        goto out;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        snprintf(why, len, "url must be an absolute URL with a host");
        goto out;
    }
    if (strcmp(scheme, "https") != 0 && !(strcmp(scheme, "http") == 0 && cfg->hook_allow_http)) {
        snprintf(why, len, "%s", cfg->hook_allow_http ? "url must use https or http"
                                                             : "url must use https ([webhooks] allow_http is off)");
        goto out;
    }
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* ------------------------------------------------------- in-flight sets -- */

static unsigned id_bucket(int64_t id)
{
    return (unsigned)((uint64_t)id * 0x9e3779b97f4a7c15ull >> 54) & (ID_BUCKETS - 1);
}

static unsigned ep_bucket(const char *id)
{
    unsigned v = 2166136261u;
    for (; *id; id++)
        v = (v ^ (unsigned char)*id) * 16777619u;
    return v & (EP_BUCKETS - 1);
}

static int inflight_has(struct hooks *h, int64_t delivery_id)
{
    for (struct job *j = h->by_id[id_bucket(delivery_id)]; j; j = j->id_next)
        if (j->delivery_id == delivery_id)
            return 1;
    return 0;
}

static struct ep_slot *slot_find(struct hooks *h, const char *id, int create)
{
    unsigned b = ep_bucket(id);
    for (struct ep_slot *s = h->slots[b]; s; s = s->next)
        if (strcmp(s->id, id) == 0)
            return s;
    if (!create)
        return NULL;
    struct ep_slot *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    snprintf(s->id, sizeof(s->id), "%s", id);
    s->next = h->slots[b];
    h->slots[b] = s;
    return s;
}

static void slot_release(struct hooks *h, struct ep_slot *s)
{
    if (s->inflight > 0)
        return;
    struct ep_slot **pp = &h->slots[ep_bucket(s->id)];
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    free(s);
}

static int slot_has_domain(const struct ep_slot *s, int64_t domain_id)
{
    for (const struct job *j = s->jobs; j; j = j->ep_next)
        if (j->domain_id == domain_id)
            return 1;
    return 0;
}

/* Registers a delivery job as in flight (until its result is recorded). */
static void track(struct hooks *h, struct job *j, struct ep_slot *s)
{
    unsigned b = id_bucket(j->delivery_id);
    j->id_next = h->by_id[b];
    h->by_id[b] = j;
    j->slot = s;
    j->ep_next = s->jobs;
    s->jobs = j;
    s->inflight++;
    s->wire++;
    j->on_wire = 1;
    h->nwire++;
    h->ninflight++;
}

/* The answer is in: the endpoint's connection is free for the next request,
 * though the job stays tracked (not sent again, its domain's successor still
 * parked) until its result is recorded. */
static void off_wire(struct job *j)
{
    if (j->slot && j->on_wire) {
        j->slot->wire--;
        j->h->nwire--;
    }
    j->on_wire = 0;
}

/* Room for another request: [webhooks] concurrency on the wire, and a bound
 * on answered results and parks waiting for the flush (FLUSH_MAX starts it
 * at once, so only a flush that cannot commit reaches these bounds). */
static int can_send(const struct hooks *h)
{
    int limit = h->c->cfg->hook_concurrency;
    return h->nwire < limit && h->ninflight < limit + FLUSH_MAX && h->nparks < PARKS_MAX;
}

static void untrack(struct hooks *h, struct job *j)
{
    struct job **pp = &h->by_id[id_bucket(j->delivery_id)];
    while (*pp && *pp != j)
        pp = &(*pp)->id_next;
    if (*pp)
        *pp = j->id_next;
    struct ep_slot *s = j->slot;
    if (s) {
        for (pp = &s->jobs; *pp && *pp != j; pp = &(*pp)->ep_next)
            ;
        if (*pp)
            *pp = j->ep_next;
        off_wire(j);
        s->inflight--;
        slot_release(h, s);
    }
    j->slot = NULL;
    h->ninflight--;
}

static void list_unlink(struct job **head, struct job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        *head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->prev = j->next = NULL;
}

static void list_push(struct job **head, struct job *j)
{
    j->prev = NULL;
    j->next = *head;
    if (*head)
        (*head)->prev = j;
    *head = j;
}

/* ----------------------------------------------------- per-domain order -- */

static size_t okey_hash(const char *ep, int64_t domain_id)
{
    uint64_t v = 1469598103934665603ull ^ (uint64_t)domain_id * 0x9e3779b97f4a7c15ull;
    for (; *ep; ep++)
        v = (v ^ (unsigned char)*ep) * 1099511628211ull;
    return (size_t)(v ^ (v >> 29));
}

static void order_clear(struct order *o)
{
    for (size_t b = 0; b < o->nbuckets; b++) {
        while (o->buckets[b]) {
            struct okey *k = o->buckets[b];
            o->buckets[b] = k->next;
            free(k->ids);
            free(k);
        }
    }
    free(o->buckets);
    memset(o, 0, sizeof(*o));
}

static int order_grow(struct order *o)
{
    size_t nb = o->nbuckets ? o->nbuckets * 2 : ORDER_BUCKETS_MIN;
    struct okey **nbk = calloc(nb, sizeof(*nbk));
    if (!nbk)
        return -1;
    for (size_t b = 0; b < o->nbuckets; b++) {
        while (o->buckets[b]) {
            struct okey *k = o->buckets[b];
            o->buckets[b] = k->next;
            size_t i = okey_hash(k->endpoint_id, k->domain_id) & (nb - 1);
            k->next = nbk[i];
            nbk[i] = k;
        }
    }
    free(o->buckets);
    o->buckets = nbk;
    o->nbuckets = nb;
    return 0;
}

static struct okey *order_find(struct order *o, const char *ep, int64_t domain_id, int create)
{
    if (o->nbuckets) {
        for (struct okey *k = o->buckets[okey_hash(ep, domain_id) & (o->nbuckets - 1)]; k; k = k->next)
            if (k->domain_id == domain_id && strcmp(k->endpoint_id, ep) == 0)
                return k;
    }
    if (!create || ((o->count + 1 > o->nbuckets * 2 || !o->nbuckets) && order_grow(o) != 0))
        return NULL;
    struct okey *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    snprintf(k->endpoint_id, sizeof(k->endpoint_id), "%s", ep);
    k->domain_id = domain_id;
    size_t i = okey_hash(ep, domain_id) & (o->nbuckets - 1);
    k->next = o->buckets[i];
    o->buckets[i] = k;
    o->count++;
    return k;
}

static void order_drop(struct order *o, struct okey *k)
{
    struct okey **pp = &o->buckets[okey_hash(k->endpoint_id, k->domain_id) & (o->nbuckets - 1)];
    while (*pp && *pp != k)
        pp = &(*pp)->next;
    if (*pp)
        *pp = k->next;
    free(k->ids);
    free(k);
    o->count--;
}

/* Adds id (if new) and returns its place in the queue (0 = head), or -1. */
static int okey_add(struct okey *k, int64_t id)
{
    int lo = k->start, hi = k->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (k->ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < k->n && k->ids[lo] == id)
        return lo - k->start;
    if (k->n == k->cap) {
        if (k->start > 0) {
            memmove(k->ids, k->ids + k->start, (size_t)(k->n - k->start) * sizeof(*k->ids));
            lo -= k->start;
            k->n -= k->start;
            k->start = 0;
        } else {
            int cap = k->cap ? k->cap * 2 : 4;
            int64_t *ni = realloc(k->ids, (size_t)cap * sizeof(*ni));
            if (!ni)
                return -1;
            k->ids = ni;
            k->cap = cap;
        }
    }
    memmove(k->ids + lo + 1, k->ids + lo, (size_t)(k->n - lo) * sizeof(*k->ids));
    k->ids[lo] = id;
    k->n++;
    return lo - k->start;
}

/* The head once id has left the queue; 0 when none would remain. */
static int64_t okey_next_head(const struct okey *k, int64_t id)
{
    for (int i = k->start; i < k->n; i++)
        if (k->ids[i] != id)
            return k->ids[i];
    return 0;
}

static void okey_remove(struct order *o, struct okey *k, int64_t id)
{
    for (int i = k->start; i < k->n; i++) {
        if (k->ids[i] != id)
            continue;
        if (i == k->start) {
            k->start++;
        } else {
            memmove(k->ids + i, k->ids + i + 1, (size_t)(k->n - i - 1) * sizeof(*k->ids));
            k->n--;
        }
        break;
    }
    if (k->start >= k->n)
        order_drop(o, k);
}

struct rebuild {
    struct hooks *h;
    struct order o;
    int64_t *unpark;
    size_t nunpark, cap;
    int failed;
};

static int rebuild_row(const char *ep, int64_t domain_id, int64_t id, int64_t next_at, int disabled, void *arg)
{
    struct rebuild *r = arg;
    struct okey *k = order_find(&r->o, ep, domain_id, 1);
    int pos = k ? okey_add(k, id) : -1;
    if (pos < 0)
        return r->failed = 1;
    if (pos == 0 && next_at == STORE_HOOK_PARKED && !disabled) {
        if (r->nunpark == r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 64;
            int64_t *nu = realloc(r->unpark, cap * sizeof(*nu));
            if (!nu)
                return r->failed = 1;
            r->unpark = nu;
            r->cap = cap;
        }
        r->unpark[r->nunpark++] = id;
    }
    return 0;
}

static void retry_later(struct hooks *h);

/* Reads the per-domain queues from the store and lets every queue's head
 * (and every delivery of an unordered endpoint) go. STORE_OK, STORE_ERR
 * (the previous queues stay), or STORE_BUSY: the write lock was taken, the
 * re-read is retried from the retry timer and no walk runs until then. */
static int order_rebuild(struct hooks *h)
{
    store_t *s = h->c->store;
    /* Parks still in memory were decided on the old queues: write them
     * first, so the heads the rebuild releases stay released. */
    int rc = flush(h);
    if (rc == STORE_BUSY) {
        h->rebuild_wanted = 1;
        return rc;
    }
    int64_t now = util_now_ms();
    struct rebuild r = { .h = h };
    rc = store_hook_pending_order(s, rebuild_row, &r);
    if (rc == STORE_OK && r.failed)
        rc = STORE_ERR;
    if (rc == STORE_OK && (rc = store_begin(s)) == STORE_OK) {
        for (size_t i = 0; rc == STORE_OK && i < r.nunpark; i++)
            rc = store_hook_unpark_id(s, r.unpark[i], now);
        if (rc == STORE_OK)
            rc = store_hook_unpark_unordered(s, now);
        if (rc == STORE_OK)
            rc = store_commit(s);
        else
            store_rollback(s);
    }
    free(r.unpark);
    if (rc != STORE_OK)
        order_clear(&r.o);
    if (rc == STORE_BUSY) {
        h->rebuild_wanted = 1;
        retry_later(h);
        return rc;
    }
    h->rebuild_wanted = 0;
    if (rc != STORE_OK) {
        log_error("hook.order_failed", "%s", "note=\"per-domain queues not re-read; kept the previous ones\"");
        return STORE_ERR;
    }
    order_clear(&h->order);
    h->order = r.o;
    h->cur_at = h->cur_id = h->head_at = h->head_id = CURSOR_START;
    log_debug("hook.order_loaded", "queues=%zu", h->order.count);
    return STORE_OK;
}

/* ------------------------------------------------------------------ jobs -- */

static void policy_put(struct policy_ref *p)
{
    if (p && --p->refs == 0) {
        ssrf_policy_free(p->policy);
        free(p);
    }
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    if (j->easy)
        curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->hdrs);
    policy_put(j->pol);
    free(j->event_id);
    free(j->payload);
    free(j);
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t len = size * n;
    if (j->body_len < RESPONSE_KEEP) {
        size_t take = len < RESPONSE_KEEP - j->body_len ? len : RESPONSE_KEEP - j->body_len;
        memcpy(j->body + j->body_len, data, take);
        j->body_len += take;
    }
    j->body_seen += len;
    if (j->body_seen > RESPONSE_READ_MAX) {
        /* We have the status line; an endless body is not worth the wait. */
        j->body_capped = 1;
        return 0;
    }
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct job *j = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        char v[64];
        size_t vl = len - (sizeof(name) - 1);
        if (vl >= sizeof(v))
            vl = sizeof(v) - 1;
        memcpy(v, data + sizeof(name) - 1, vl);
        v[vl] = '\0';
        v[strcspn(v, "\r\n")] = '\0';
        int64_t ms;
        j->retry_after_ms = hook_sched_parse_retry_after(v, util_now_ms(), &ms) == 0 ? ms : -1;
    }
    return len;
}

static int add_header(struct curl_slist **l, const char *name, const char *value)
{
    char line[512];
    if ((size_t)snprintf(line, sizeof(line), "%s: %s", name, value) >= sizeof(line))
        return -1;
    struct curl_slist *n = curl_slist_append(*l, line);
    if (!n)
        return -1;
    *l = n;
    return 0;
}

/* Signed headers for the exact bytes in j->payload. */
static int build_headers(struct job *j, const char *type, const char *secret, const char *old_secret)
{
    const char *secrets[2] = { secret, old_secret };
    hook_sign_out_t sig;
    hook_sign_result_t sr = hook_sign_request(secrets, old_secret ? 2 : 1, j->event_id, util_now_ms() / 1000,
                                              j->payload, j->payload_len, &sig);
    if (sr != HOOK_SIGN_OK) {
        snprintf(j->error, sizeof(j->error), "cannot sign: %s", hook_sign_result_name(sr));
        return -1;
    }
    int bad = add_header(&j->hdrs, "Content-Type", "application/json") |
              add_header(&j->hdrs, "User-Agent", "Hee-Webhooks/" HEE_VERSION) |
              add_header(&j->hdrs, HOOK_SIGN_HDR_ID, j->event_id) |
              add_header(&j->hdrs, HOOK_SIGN_HDR_TIMESTAMP, sig.timestamp) |
              add_header(&j->hdrs, HOOK_SIGN_HDR_SIGNATURE, sig.signature) |
              add_header(&j->hdrs, HOOK_SIGN_HDR_HEE_TIMESTAMP, sig.timestamp) |
              add_header(&j->hdrs, HOOK_SIGN_HDR_HEE_SIGNATURE, sig.hee_signature) |
              add_header(&j->hdrs, "X-Hee-Event-Type", type);
    if (sig.hee_signature_previous[0])
        bad |= add_header(&j->hdrs, HOOK_SIGN_HDR_HEE_SIGNATURE_PREV, sig.hee_signature_previous);
    /* curl would otherwise wait for "100 Continue" on larger bodies. */
    bad |= add_header(&j->hdrs, "Expect", "");
    memset(&sig, 0, sizeof(sig));
    if (bad)
        snprintf(j->error, sizeof(j->error), "out of memory");
    return bad ? -1 : 0;
}

static int setup_easy(struct hooks *h, struct job *j, const char *url)
{
    const config_t *cfg = h->c->cfg;
    long timeout_ms = (long)cfg->hook_timeout_s * 1000;
    const char *protos = cfg->hook_allow_http ? "http,https" : "https";
    if (!(j->easy = curl_easy_init()))
        return -1;
    j->pol = h->pol;
    j->pol->refs++;
    j->ssrf.policy = j->pol->policy;
    CURL *e = j->easy;
    int bad = curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, protos) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, protos) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    /* Not HTTP/2: one stalled multiplexed connection would hold every
     * delivery to the endpoint (as in acme.c, "the wire"). */
    bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->payload) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->payload_len) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->hdrs) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, j) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, j) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf) != CURLE_OK;
    bad |= ssrf_curl_attach(e, &j->ssrf) != 0;
    return bad ? -1 : 0;
}

/* Keeps the body as valid UTF-8 (JSON output needs it): invalid or control
 * bytes become '?'; a sequence cut at the 1 KiB mark is dropped. */
static void body_text(struct job *j)
{
    unsigned char *p = (unsigned char *)j->body;
    size_t n = j->body_len, i = 0;
    while (i < n) {
        unsigned c = p[i];
        size_t need = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 9;
        if (need == 0) {
            if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
                p[i] = '?';
            i++;
            continue;
        }
        if (need != 9 && i + need >= n && j->body_len == RESPONSE_KEEP) {
            n = i; /* truncated sequence at the end */
            break;
        }
        size_t k = 1;
        while (need != 9 && k <= need && i + k < n && (p[i + k] & 0xc0) == 0x80)
            k++;
        if (need == 9 || k != need + 1 || c == 0xc0 || c == 0xc1 || c > 0xf4) {
            p[i++] = '?';
            continue;
        }
        i += k;
    }
    j->body[n] = '\0';
    j->body_len = n;
}

static void classify(struct job *j, CURL *easy, CURLcode rc)
{
    const config_t *cfg = j->h->c->cfg;
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    int answered = rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && j->body_capped);
    j->status_code = code;
    j->latency_us = util_mono_us() - j->start_us;
    j->latency_ms = j->latency_us / 1000;
    body_text(j);
    if (answered && code >= 200 && code < 300) {
        j->result = JOB_OK;
        return;
    }
    j->result = answered && code == 410 ? JOB_GONE : JOB_FAILED;
    if (!answered && rc == CURLE_COULDNT_CONNECT && j->ssrf.refused)
        snprintf(j->error, sizeof(j->error), "ssrf: %s", j->ssrf.reason);
    else if (!answered && rc == CURLE_UNSUPPORTED_PROTOCOL && !cfg->hook_allow_http)
        snprintf(j->error, sizeof(j->error), "url refused: only https is allowed ([webhooks] allow_http is off)");
    else if (!answered)
        snprintf(j->error, sizeof(j->error), "%.80s%s%.160s", curl_easy_strerror(rc), j->errbuf[0] ? ": " : "",
                 j->errbuf);
    else if (code >= 300 && code < 400)
        snprintf(j->error, sizeof(j->error), "HTTP %ld: redirects are not followed", code);
    else if (code == 410)
        snprintf(j->error, sizeof(j->error), "HTTP 410 Gone: endpoint disabled");
    else
        snprintf(j->error, sizeof(j->error), "HTTP %ld", code);
    if (!answered || (code != 429 && code != 503))
        j->retry_after_ms = -1;
}

static void test_finish(struct job *j)
{
    hooks_test_result_t r = {
        .event_id = j->event_id,
        .payload = j->payload,
        .delivered = j->result == JOB_OK,
        .status_code = (int)j->status_code,
        .latency_ms = j->latency_ms,
        .error = j->result == JOB_OK ? NULL : j->error,
        .response = j->body,
    };
    j->test_cb(&r, j->test_arg);
    job_free(j);
}

/* urgent: a delivery waits for this result (its domain's next one). Other
 * results wait longer, so that more share one fsync: their connection is
 * free already and their row is not sent twice meanwhile. */
static void schedule_flush(struct hooks *h, int urgent)
{
    int64_t delay = urgent ? FLUSH_DELAY_US : FLUSH_LAZY_US, now = util_mono_us();
    if (evtimer_pending(h->retry_ev, NULL))
        return; /* the retry writes the whole batch; trying sooner finds the lock taken */
    if (h->ndone + h->nparks >= FLUSH_MAX) {
        event_active(h->flush_ev, 0, 0);
    } else if (!evtimer_pending(h->flush_ev, NULL) || now + delay < h->flush_at) {
        struct timeval tv = { 0, (suseconds_t)delay };
        if (evtimer_add(h->flush_ev, &tv) == 0)
            h->flush_at = now + delay;
    }
}

/* 1 when another delivery of j's (endpoint, domain) waits behind it. */
static int has_successor(struct hooks *h, const struct job *j)
{
    if (!j->ordered || j->domain_id <= 0)
        return 0;
    struct okey *k = order_find(&h->order, j->endpoint_id, j->domain_id, 0);
    return k && k->n - k->start > 1;
}

static void on_done(CURL *easy, CURLcode rc, void *arg)
{
    struct job *j = arg;
    struct hooks *h = j->h;
    list_unlink(&h->inflight, j);
    classify(j, easy, rc);
    curl_easy_cleanup(easy);
    j->easy = NULL;
    metrics_t *m = h->c->hub->metrics;
    metrics_observe_us(m, H_HOOK, j->latency_us);
    if (j->test_cb) {
        test_finish(j);
        return;
    }
    metrics_inc(m, j->result == JOB_OK ? M_HOOK_DELIVERED : M_HOOK_FAILED);
    off_wire(j);
    /* Queue for the flush; the job still counts as in flight until then. */
    j->next = NULL;
    j->prev = h->done_tail;
    if (h->done_tail)
        h->done_tail->next = j;
    else
        h->done = j;
    h->done_tail = j;
    h->ndone++;
    schedule_flush(h, has_successor(h, j));
    /* Its connection is free now: the next request need not wait for the
     * flush's fsync. */
    hooks_kick(h);
}

/* Starts a job whose payload, event_id and headers are set. 0 or -1. */
static int job_start(struct hooks *h, struct job *j, const char *url)
{
    j->h = h;
    j->retry_after_ms = -1;
    j->start_us = util_mono_us();
    j->start_ms = util_now_ms();
    if (setup_easy(h, j, url) != 0 || curlev_add(h->c->curl, j->easy, on_done, j) != 0)
        return -1;
    list_push(&h->inflight, j);
    return 0;
}

/* ------------------------------------------------------------ recording -- */

/* Failure bookkeeping: warn at half of disable_after, disable at the end. */
static void endpoint_failed(struct hooks *h, const struct job *j, int64_t now)
{
    store_t *s = h->c->store;
    int64_t since = 0, warned = 0, limit = (int64_t)h->c->cfg->hook_disable_after_s * 1000;
    int disabled = 0;
    char ts[32];
    if (j->result == JOB_GONE) {
        if (store_hook_endpoint_disable(s, j->endpoint_id, "gone", now) == STORE_OK)
            log_warn("hook.endpoint_disabled", "endpoint=%s reason=gone status=410", j->endpoint_id);
        return;
    }
    if (store_hook_endpoint_failing(s, j->endpoint_id, now, &since, &warned, &disabled) != STORE_OK || disabled)
        return;
    /* The warning always comes first, on its own failure: attempts spaced
     * wider than limit/2 must not skip it and disable without notice. */
    if (!warned && now - since >= limit / 2) {
        char at[32];
        if (store_hook_endpoint_warned(s, j->endpoint_id, now) == STORE_OK)
            log_warn("hook.endpoint_failing", "endpoint=%s failing_since=%s disable_at=%s", j->endpoint_id,
                     util_iso8601(since, ts, sizeof(ts)), util_iso8601(since + limit, at, sizeof(at)));
    } else if (warned && now - since >= limit) {
        if (store_hook_endpoint_disable(s, j->endpoint_id, "failing", now) == STORE_OK)
            log_warn("hook.endpoint_disabled", "endpoint=%s reason=failing failing_since=%s", j->endpoint_id,
                     util_iso8601(since, ts, sizeof(ts)));
    }
}

static enum store_hook_outcome decide(struct hooks *h, const struct job *j, int64_t now, int64_t *next_at)
{
    if (j->result == JOB_OK)
        return STORE_HOOK_SUCCEEDED;
    if (j->result == JOB_GONE)
        return STORE_HOOK_HOLD;
    int64_t max_age = (int64_t)h->c->cfg->hook_max_age_s * 1000;
    uint32_t rnd = (uint32_t)util_random_below(1ull << 32);
    if (hook_sched_next(&h->sched, j->attempts + 1, j->window_start, now, max_age, j->retry_after_ms, rnd,
                        next_at) == HOOK_SCHED_DEAD)
        return STORE_HOOK_DEAD;
    return STORE_HOOK_RETRY;
}

static int record_one(struct hooks *h, struct job *j, int64_t now)
{
    store_t *s = h->c->store;
    int64_t next_at = 0;
    enum store_hook_outcome o = decide(h, j, now, &next_at);
    store_hook_attempt_t a = {
        .delivery_id = j->delivery_id,
        .window_start = j->window_start,
        .at = j->start_ms,
        .status_code = (int)j->status_code,
        .latency_ms = j->latency_ms,
        .error = j->result == JOB_OK ? NULL : j->error,
        .response = j->body_len ? j->body : NULL,
    };
    if (store_hook_record(s, &a, o, next_at) != STORE_OK)
        return -1;
    j->leaves = o == STORE_HOOK_SUCCEEDED || o == STORE_HOOK_DEAD;
    if (j->leaves && j->ordered && j->domain_id > 0) {
        /* The domain's next delivery may go, in this same transaction. */
        struct okey *k = order_find(&h->order, j->endpoint_id, j->domain_id, 0);
        int64_t next = k ? okey_next_head(k, j->delivery_id) : 0;
        if (next && store_hook_unpark_id(s, next, now) != STORE_OK)
            return -1;
    }
    if (j->result == JOB_OK) {
        if (store_hook_endpoint_healthy(s, j->endpoint_id) != STORE_OK)
            return -1;
    } else {
        endpoint_failed(h, j, now);
    }
    if (o == STORE_HOOK_DEAD) {
        metrics_inc(h->c->hub->metrics, M_HOOK_DEAD);
        log_warn("hook.dead_letter", "delivery=%lld endpoint=%s event=%s attempts=%u", (long long)j->delivery_id,
                 j->endpoint_id, j->event_id, j->attempts + 1);
    }
    if (j->result == JOB_OK) {
        log_debug("hook.delivered", "delivery=%lld endpoint=%s event=%s status=%ld ms=%lld",
                  (long long)j->delivery_id, j->endpoint_id, j->event_id, j->status_code,
                  (long long)j->latency_ms);
    } else {
        char q[300];
        log_info("hook.attempt_failed", "delivery=%lld endpoint=%s event=%s status=%ld error=%s",
                 (long long)j->delivery_id, j->endpoint_id, j->event_id, j->status_code,
                 log_quote(q, sizeof(q), j->error));
    }
    return 0;
}

/* Records every answered job and decided park in one transaction.
 * STORE_BUSY: the write lock was taken and nothing was written; the batch
 * stays as it is (later results join its tail) and the retry timer is
 * armed. Otherwise the batch is gone: STORE_OK, or STORE_ERR (logged; the
 * deliveries are still pending and go again). */
static int flush(struct hooks *h)
{
    if (!h->done && !h->nparks)
        return STORE_OK;
    store_t *s = h->c->store;
    int64_t now = util_now_ms();
    int rc = store_begin(s);
    if (rc == STORE_BUSY) {
        /* Nothing of the batch was decided yet (record_one's retry time,
         * logs and counters come after BEGIN): the retry does it all. */
        retry_later(h);
        return rc;
    }
    store_retry_done(&h->busy);
    int ok = rc == STORE_OK;
    /* Parks first: a result recorded below may unpark one of them (its
     * predecessor leaving), and that must win. */
    for (int i = 0; ok && i < h->nparks; i++)
        ok = store_hook_park(s, h->parks[i]) == STORE_OK;
    for (struct job *j = h->done; ok && j; j = j->next)
        ok = record_one(h, j, now) == 0;
    if (ok)
        ok = store_commit(s) == STORE_OK;
    else
        store_rollback(s);
    if (!ok)
        /* The deliveries are still pending (and due): they go again
         * (at-least-once); a lost park is decided again by the next walk. */
        log_error("hook.record_failed", "results=%d parks=%d", h->ndone, h->nparks);
    h->nparks = 0;
    while (h->done) {
        struct job *j = h->done;
        h->done = j->next;
        if (ok && j->leaves && j->ordered && j->domain_id > 0) {
            struct okey *k = order_find(&h->order, j->endpoint_id, j->domain_id, 0);
            if (k)
                okey_remove(&h->order, k, j->delivery_id);
        }
        untrack(h, j);
        job_free(j);
    }
    h->done_tail = NULL;
    h->ndone = 0;
    return ok ? STORE_OK : STORE_ERR;
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct hooks *h = arg;
    if (evtimer_pending(h->retry_ev, NULL))
        return; /* the retry flushes, then passes */
    flush(h);
    pass(h);
}

/* A write found the store's lock taken: try again later, backing off while
 * it stays taken. One timer for everything waiting (the batch, a re-read). */
static void retry_later(struct hooks *h)
{
    if (h->stopping || evtimer_pending(h->retry_ev, NULL))
        return;
    int warn, ms = store_retry_next(&h->busy, util_mono_ms(), &warn);
    if (warn)
        log_warn("hook.store_busy", "results=%d parks=%d note=\"the store's write lock is held elsewhere; "
                 "records wait in memory and retry every %d ms\"", h->ndone, h->nparks, STORE_RETRY_MAX_MS);
    struct timeval tv = { ms / 1000, (suseconds_t)(ms % 1000) * 1000 };
    evtimer_add(h->retry_ev, &tv);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct hooks *h = arg;
    /* order_rebuild flushes first. */
    int rc = h->rebuild_wanted ? order_rebuild(h) : flush(h);
    if (rc == STORE_BUSY)
        return; /* re-armed, with a longer delay */
    store_retry_done(&h->busy);
    pass(h);
}

/* --------------------------------------------------------------- passes -- */

/* Sends delivery d now. 0, or -1 when it could not start (it stays due). */
static int dispatch(struct hooks *h, const store_hook_due_t *d, struct ep_slot *slot, int64_t now)
{
    store_hook_message_t m;
    int rc = store_hook_message(h->c->store, d->id, now, &m);
    if (rc != STORE_OK)
        return -1;
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        goto fail;
    j->delivery_id = d->id;
    j->domain_id = d->domain_id;
    j->window_start = d->window_start;
    j->attempts = d->attempts;
    j->ordered = d->ordered;
    snprintf(j->endpoint_id, sizeof(j->endpoint_id), "%s", d->endpoint_id);
    j->event_id = m.public_id;
    j->payload = m.payload;
    j->payload_len = m.payload_len;
    m.public_id = m.payload = NULL;
    if (build_headers(j, m.type, m.secret, m.old_secret) != 0 || job_start(h, j, m.url) != 0) {
        log_error("hook.dispatch_failed", "delivery=%lld endpoint=%s error=\"%s\"", (long long)d->id,
                  d->endpoint_id, j->error[0] ? j->error : "cannot start the request");
        goto fail;
    }
    track(h, j, slot);
    store_hook_message_clear(&m);
    return 0;
fail:
    store_hook_message_clear(&m);
    job_free(j);
    return -1;
}

/* V_BUSY: on the wire or waiting for the flush, which moves its row (out
 * of 'pending', or to its retry time): no reason to come back to it. */
enum verdict { V_SENT, V_PARK, V_SKIP, V_BUSY };

static enum verdict consider(struct hooks *h, const store_hook_due_t *d, int64_t now)
{
    const config_t *cfg = h->c->cfg;
    if (d->endpoint_disabled)
        return V_PARK;
    if (inflight_has(h, d->id))
        return V_BUSY;
    struct ep_slot *slot = slot_find(h, d->endpoint_id, 0);
    if (slot && slot->wire >= cfg->hook_per_endpoint)
        return V_SKIP;
    if (d->ordered && d->domain_id > 0) {
        struct okey *k = order_find(&h->order, d->endpoint_id, d->domain_id, 1);
        int pos = k ? okey_add(k, d->id) : -1;
        if (pos < 0)
            return V_SKIP;
        if (pos > 0)
            return V_PARK;
        /* A replayed older delivery may be the head while a newer one is on
         * the wire: never two at once for one domain. */
        if (slot && slot_has_domain(slot, d->domain_id))
            return V_SKIP;
    }
    if (!slot && !(slot = slot_find(h, d->endpoint_id, 1)))
        return V_SKIP;
    if (dispatch(h, d, slot, now) != 0) {
        slot_release(h, slot);
        return V_SKIP;
    }
    return V_SENT;
}

/* Parks ride in the next flush's transaction rather than paying their own
 * fsync: until then the row is merely due, and the cursor has passed it. */
static int park_later(struct hooks *h, int64_t id)
{
    if (h->nparks == h->parks_cap) {
        int cap = h->parks_cap ? h->parks_cap * 2 : 256;
        int64_t *np = realloc(h->parks, (size_t)cap * sizeof(*np));
        if (!np)
            return -1;
        h->parks = np;
        h->parks_cap = cap;
    }
    h->parks[h->nparks++] = id;
    return 0;
}

struct walk {
    int nparks, idle, at_end;
};

/* One verdict; 1 when the walk must stop (work bound reached). */
static int walk_row(struct hooks *h, const store_hook_due_t *d, int64_t now, struct walk *w, enum verdict *v)
{
    *v = consider(h, d, now);
    if (*v == V_PARK && park_later(h, d->id) == 0)
        w->nparks++;
    w->idle = *v == V_SKIP ? w->idle + 1 : *v == V_BUSY ? w->idle : 0;
    return !can_send(h) || w->idle >= IDLE_ROWS_MAX || w->nparks >= PASS_PARKS_MAX;
}

/* From the head cursor: the oldest due rows first. The cursor stops before
 * the first row that could not go (its endpoint busy), so that row is the
 * first the next pass tries again; rows still tracked are walked past (the
 * flush moves them). No wrap: rows become due after the head (new ones,
 * retries and unparks are stamped now), the explore walk meets the rest. */
static void walk_head(struct hooks *h, int64_t now, struct walk *w)
{
    store_hook_due_t rows[BATCH_ROWS];
    int64_t at = h->head_at, id = h->head_id;
    int held = 0, stop = 0, n = BATCH_ROWS;
    while (!stop && n == BATCH_ROWS) {
        if (store_hook_due_batch(h->c->store, now, at, id, rows, BATCH_ROWS, &n) != STORE_OK)
            return;
        for (int i = 0; i < n && !stop; i++) {
            enum verdict v;
            at = rows[i].next_attempt_at;
            id = rows[i].id;
            stop = walk_row(h, &rows[i], now, w, &v);
            held = held || v == V_SKIP;
            if (!held) {
                h->head_at = at;
                h->head_id = id;
            }
        }
    }
    /* Everything due after the head was considered. */
    w->at_end = !stop;
}

/* From the explore cursor, past whatever it cannot use, wrapping at the
 * end: reaches other endpoints' rows behind a busy endpoint's backlog, and
 * rows that became due behind the head (written by another process). */
static void walk_explore(struct hooks *h, int64_t now, struct walk *w)
{
    store_hook_due_t rows[BATCH_ROWS];
    int wrapped = h->cur_at == CURSOR_START, stop = 0;
    w->idle = 0;
    while (!stop) {
        int n = 0;
        if (store_hook_due_batch(h->c->store, now, h->cur_at, h->cur_id, rows, BATCH_ROWS, &n) != STORE_OK)
            break;
        for (int i = 0; i < n && !stop; i++) {
            enum verdict v;
            h->cur_at = rows[i].next_attempt_at;
            h->cur_id = rows[i].id;
            stop = walk_row(h, &rows[i], now, w, &v);
        }
        if (!stop && n < BATCH_ROWS) {
            /* Reached the end: the next walk starts from the beginning. */
            h->cur_at = h->cur_id = CURSOR_START;
            if (wrapped) {
                w->at_end = 1;
                break;
            }
            wrapped = 1;
        }
    }
}

static void pass(struct hooks *h)
{
    struct walk w = { 0 };
    int64_t now = util_now_ms();
    /* With the queues waiting to be re-read, a walk would decide on old
     * ones; the retry re-reads them and passes. */
    if (h->stopping || h->in_pass || h->rebuild_wanted)
        return;
    h->in_pass = 1;
    if (can_send(h))
        walk_head(h, now, &w);
    /* Exploring costs a read of rows that mostly cannot go; behind a busy
     * endpoint's backlog it is rationed (the head walk is what keeps up). */
    int64_t mono = util_mono_ms();
    int explore_due = mono - h->explored_ms >= EXPLORE_EVERY_MS;
    if (can_send(h) && w.nparks < PASS_PARKS_MAX && explore_due) {
        h->explored_ms = mono;
        walk_explore(h, now, &w);
    }
    h->in_pass = 0;
    int64_t next = 0, delay = TIMER_MAX_MS;
    if (!w.at_end && !explore_due)
        delay = EXPLORE_EVERY_MS;
    if (w.nparks >= PASS_PARKS_MAX && !evtimer_pending(h->retry_ev, NULL)) {
        /* Bounded work per loop turn: write these parks, then walk on. */
        event_active(h->flush_ev, 0, 0);
        return;
    }
    if (h->nparks)
        schedule_flush(h, 0);
    /* The next due time is asked from the walk's own `now`: every row due
     * by then was walked (what could not go waits on an answer or a flush,
     * which walk again), and a row that fell due while the walk ran — the
     * timer fires up to a coarse-clock tick early, a niced thread is
     * preempted — is still counted as coming. Asked from a later clock, such
     * a row was neither walked nor coming, and waited TIMER_MAX_MS. Its
     * delay is then <= 0: walk again at once (arm_timer's 1 ms).
     *
     * A walk that stopped early with a request slot still free stopped on
     * a run of rows it could not use (a busy endpoint's backlog): another
     * endpoint's retry may fall due before anything answers there, so the
     * next due time counts then too, if sooner. With every slot taken
     * (or the batch at its bound) it is not asked: the answer that frees
     * a slot kicks the next pass (on_done), the flush too, and waking at
     * due times would only run passes that cannot send. */
    int early = !w.at_end;
    if ((!early || can_send(h)) && store_hook_next_due(h->c->store, now, &next) == STORE_OK) {
        int64_t due = next - util_now_ms();
        if (!early || due < delay)
            delay = due;
    }
    arm_timer(h, delay);
}

static void arm_timer(struct hooks *h, int64_t delay_ms)
{
    if (delay_ms < 1)
        delay_ms = 1;
    if (delay_ms > TIMER_MAX_MS)
        delay_ms = TIMER_MAX_MS;
    struct timeval tv = { (time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000) * 1000 };
    evtimer_add(h->timer_ev, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    pass(arg);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    pass(arg);
}

void hooks_kick(struct hooks *h)
{
    if (h && !h->stopping)
        event_active(h->kick_ev, 0, 0);
}

void hooks_changed(hooks_t *h)
{
    if (!h || h->stopping)
        return;
    order_rebuild(h);
    hooks_kick(h);
}

/* ------------------------------------------------------------ retention -- */

static void on_purge(evutil_socket_t fd, short what, void *arg)
{
    struct hooks *h = arg;
    const config_t *cfg = h->c->cfg;
    int64_t now = util_now_ms();
    /* Never purge what may still be retried. */
    int64_t keep_s = cfg->hook_retention_s > cfg->hook_max_age_s ? cfg->hook_retention_s : cfg->hook_max_age_s;
    int deleted = 0;
    int rc = store_hook_purge(h->c->store, now - keep_s * 1000, PURGE_BATCH, &deleted);
    if (rc == STORE_OK && deleted > 0)
        log_info("hook.purged", "rows=%d", deleted);
    /* A purge may take pending deliveries of long-disabled endpoints. A
     * re-read that finds the lock taken is retried by the retry timer. */
    if (deleted > 0 || now - h->last_sweep_ms >= SWEEP_EVERY_MS) {
        h->last_sweep_ms = now;
        if (order_rebuild(h) == STORE_OK)
            hooks_kick(h);
    }
    /* A full batch means more is waiting, and a purge that found the lock
     * taken did nothing: try again soon. */
    struct timeval tv = { deleted >= PURGE_BATCH || rc == STORE_BUSY ? 1 : PURGE_EVERY_MS / 1000, 0 };
    evtimer_add(h->purge_ev, &tv);
}

/* ------------------------------------------------------------ test send -- */

int hooks_test_send(hooks_t *h, const store_hook_endpoint_t *e, const char *type, hooks_test_cb cb, void *arg)
{
    const char *data = hooks_example_data(type);
    if (!data || h->stopping)
        return -1;
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -1;
    char ts[32];
    util_iso8601(util_now_ms(), ts, sizeof(ts));
    char *rnd = util_random_id("", 12);
    size_t n = strlen(data) + strlen(type) + 160;
    j->event_id = rnd ? malloc(strlen(rnd) + 10) : NULL;
    j->payload = malloc(n);
    if (!j->event_id || !j->payload)
        goto fail;
    snprintf(j->event_id, strlen(rnd) + 10, "evt_test_%s", rnd);
    j->payload_len = (size_t)snprintf(j->payload, n,
                                      "{\"id\":\"%s\",\"type\":\"%s\",\"createdAt\":\"%s\",\"sequence\":0,"
                                      "\"test\":true,\"data\":%s}",
                                      j->event_id, type, ts, data);
    j->test_cb = cb;
    j->test_arg = arg;
    int64_t now = util_now_ms();
    const char *old = e->old_secret && e->old_secret_until > now ? e->old_secret : NULL;
    if (build_headers(j, type, e->secret, old) != 0 || job_start(h, j, e->url) != 0)
        goto fail;
    free(rnd);
    log_info("hook.test_sent", "endpoint=%s type=%s event=%s", e->id, type, j->event_id);
    return 0;
fail:
    free(rnd);
    job_free(j);
    return -1;
}

/* ------------------------------------------------------------ lifecycle -- */

static int load_settings(struct hooks *h, char **err)
{
    const config_t *cfg = h->c->cfg;
    char why[256];
    hook_sched_t sched;
    if (hook_sched_parse(&sched, cfg->hook_retry_schedule, why, sizeof(why)) != 0)
        goto fail;
    /* As conf/hee.conf says: the last delay repeats until max_age. */
    sched.repeat_ms = sched.steps_ms[sched.nsteps - 1];
    struct policy_ref *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(why, sizeof(why), "out of memory");
        goto fail;
    }
    if (!(p->policy = ssrf_policy_new(cfg->hook_allow_private, why, sizeof(why)))) {
        free(p);
        goto fail;
    }
    p->refs = 1;
    policy_put(h->pol);
    h->pol = p;
    h->sched = sched;
    return 0;
fail:
    if (err) {
        size_t n = strlen(why) + 16;
        if ((*err = malloc(n)))
            snprintf(*err, n, "[webhooks] %s", why);
    } else {
        log_error("hook.reload_failed", "reason=\"%s\" note=\"previous webhook settings stay\"", why);
    }
    return -1;
}

hooks_t *hooks_new(struct control *c, char **err)
{
    struct hooks *h = calloc(1, sizeof(*h));
    if (!h) {
        *err = strdup("out of memory");
        return NULL;
    }
    h->c = c;
    h->cur_at = h->cur_id = h->head_at = h->head_id = CURSOR_START;
    if (load_settings(h, err) != 0)
        goto fail;
    h->kick_ev = event_new(c->base, -1, 0, on_kick, h);
    h->timer_ev = evtimer_new(c->base, on_timer, h);
    h->flush_ev = evtimer_new(c->base, on_flush, h);
    h->purge_ev = evtimer_new(c->base, on_purge, h);
    h->retry_ev = evtimer_new(c->base, on_retry, h);
    if (!h->kick_ev || !h->timer_ev || !h->flush_ev || !h->purge_ev || !h->retry_ev) {
        *err = strdup("cannot create webhook timers");
        goto fail;
    }
    h->last_sweep_ms = util_now_ms();
    /* The lock taken (STORE_BUSY) is no reason not to start: the re-read
     * is retried, and nothing is sent before it succeeds. */
    if (order_rebuild(h) == STORE_ERR) {
        *err = strdup("cannot read the webhook outbox");
        goto fail;
    }
    struct timeval tv = { 5, 0 };
    evtimer_add(h->purge_ev, &tv);
    hooks_kick(h);
    return h;
fail:
    hooks_free(h);
    return NULL;
}

void hooks_reload(hooks_t *h)
{
    if (h)
        load_settings(h, NULL);
}

void hooks_stop(hooks_t *h)
{
    if (!h || h->stopping)
        return;
    h->stopping = 1;
    /* The loop ends after this: the last batch may wait for the lock like
     * any handle's write (what it records is not sent again after the
     * restart). */
    store_set_nowait(h->c->store, 0);
    flush(h);
    while (h->inflight) {
        struct job *j = h->inflight;
        list_unlink(&h->inflight, j);
        curlev_cancel(h->c->curl, j->easy);
        if (j->test_cb) {
            j->result = JOB_FAILED;
            snprintf(j->error, sizeof(j->error), "hee is shutting down");
            test_finish(j);
            continue;
        }
        untrack(h, j);
        job_free(j);
    }
    struct event *evs[] = { h->kick_ev, h->timer_ev, h->flush_ev, h->purge_ev, h->retry_ev };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(evs); i++)
        if (evs[i])
            event_del(evs[i]);
}

void hooks_free(hooks_t *h)
{
    if (!h)
        return;
    hooks_stop(h);
    if (h->kick_ev)
        event_free(h->kick_ev);
    if (h->timer_ev)
        event_free(h->timer_ev);
    if (h->flush_ev)
        event_free(h->flush_ev);
    if (h->purge_ev)
        event_free(h->purge_ev);
    if (h->retry_ev)
        event_free(h->retry_ev);
    policy_put(h->pol);
    order_clear(&h->order);
    free(h->parks);
    free(h);
}
