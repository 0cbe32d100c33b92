/* acme: RFC 8555 client as resumable state machines on libevent.
 *
 * DESIGN
 * Three layers, top to bottom:
 *  - the client (one per directory URL) owns what all orders share: the
 *    directory, the account, the nonce pool. Getting the first two ready is
 *    a small machine of its own (DIRECTORY → LOAD → LOOKUP/CREATE → READY);
 *    orders that need it queue as waiters and are woken by a 0-second timer,
 *    so no callback ever runs inside another one.
 *  - an order is a machine over `enum step` (NEW_ORDER, AUTHZ, CHALLENGE,
 *    POLL_AUTHZ, FINALIZE, POLL_ORDER, DOWNLOAD, ARI); each step sends one
 *    request and its handler reads the response and picks the next step
 *    (HAProxy's acme.c steps × request/response, uacme's one function per
 *    RFC 8555 object). Waits (polling, Retry-After) are the order's timer.
 *  - a request (struct req) is one logical HTTP exchange: it gets a nonce
 *    (pool, else HEAD newNonce), signs at send time, harvests Replay-Nonce
 *    from every response (errors included), resends at once on badNonce
 *    (bounded), and retries idempotent reads after transport errors/5xx;
 *    at most MAX_WIRE of them per CA are on the wire (HTTP/1.1), the rest
 *    wait their turn.
 * Results are OK / FAILED / RATE_LIMITED / TRANSIENT; the caller schedules
 * retries. Every order ends through finish(), which detaches it from the
 * client before calling the user, so the user may free the client there. */
#include "control/acme.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/x509v3.h>

#include "common/config.h"
#include "common/log.h"
#include "common/util.h"
#include "control/acme_parse.h"
#include "control/jws.h"

#ifndef HEE_VERSION
#define HEE_VERSION "dev"
#endif

#define NONCE_POOL 16
#define MAX_BODY (1u << 20)
#define MAX_CHALLENGES 4
#define TRANSPORT_RETRIES 2
/* Exchanges on the wire per CA (each an HTTP/1.1 connection at most). */
#define MAX_WIRE 16

#define PROB_PREFIX "urn:ietf:params:acme:error:"

/* ---- types ------------------------------------------------------------ */

enum chall { CH_HTTP01, CH_TLSALPN01 };
static const char *const chall_names[] = { "http-01", "tls-alpn-01" };

enum step {
    ST_START,
    ST_NEW_ORDER,
    ST_AUTHZ,
    ST_CHALLENGE,
    ST_POLL_AUTHZ,
    ST_FINALIZE,
    ST_POLL_ORDER,
    ST_DOWNLOAD,
    ST_ARI,
};
static const char *const step_names[] = { "start",    "new-order",  "authz",    "challenge",   "poll-authz",
                                          "finalize", "poll-order", "download", "renewal-info" };

enum cstep { CL_IDLE, CL_DIRECTORY, CL_LOOKUP, CL_CREATE, CL_READY };
static const char *const cstep_names[] = { "idle", "directory", "account-lookup", "account-create", "ready" };

enum method { M_GET, M_HEAD, M_POST };

struct req {
    acme_client_t *c;
    void (*on_done)(void *owner);
    void *owner;
    struct event *timer; /* transport retry */
    CURL *easy;
    struct curl_slist *hdrs;
    /* what to send */
    enum method method;
    char *url;
    char *payload; /* POST body JSON; NULL = POST-as-GET */
    const char *accept;
    int sign_with_jwk;
    int nonce_phase; /* 1 while a HEAD newNonce runs on its behalf */
    int waiting;     /* in the client's wire queue */
    struct req *wnext;
    int badnonce_left;
    int retries_left;
    int64_t sent_ms;
    int64_t http_ms, wait_ms; /* summed over every exchange, for acme_result_t */
    unsigned nreq;
    /* what came back */
    CURLcode curl_rc;
    long status;
    char *body;
    size_t len;
    char *location, *nonce, *content_type;
    int retry_after_s; /* -1: none */
    char *ptype, *pdetail;
};

enum kind { K_ORDER, K_ARI };

struct acme_order {
    acme_client_t *c;
    acme_order_t *prev, *next; /* client's orders */
    acme_order_t *wnext;       /* waiters / queue link */
    int queued, waiting;
    enum kind kind;
    enum step step;
    char *hostname;
    pki_key_type_t key_type;
    acme_done_cb done;
    acme_ari_cb ari_done;
    void *arg;
    struct req req;
    struct event *timer;
    struct event *deadline;
    int64_t started_ms;
    int64_t wait_ms, wait_from_ms; /* planned waits; wait_from_ms: parked since */
    int polls;
    int64_t poll_started_ms;
    /* server objects */
    char *order_url, *finalize_url, *cert_url;
    char **authzs; /* the order's authorization URLs */
    size_t nauthz, authz_i;
    enum chall chall;
    char *chall_url, *chall_token;
    int published;
    EVP_PKEY *cert_key;
    keypool_waiter_t keywait; /* finalize waits for a key from c->keys */
    char *cert_pem;
    pki_cert_info_t info;
    char *ari_id;
    /* outcome */
    int failed;
    acme_status_t status;
    char *ptype, *pdetail;
    int retry_after_s;
    int64_t ari_start_ms, ari_end_ms, ari_retry_s;
    char *ari_expl;
};

struct acme_client {
    struct event_base *base;
    curlev_t *cv;
    char *dir_url, *ca_file, *contact, *eab_kid, *eab_hmac;
    enum chall pref[MAX_CHALLENGES];
    int npref;
    acme_hooks_t hooks;
    int badnonce_retries, poll_first_ms, poll_max_ms, poll_total_ms, order_timeout_ms, request_timeout_ms;
    int max_orders, allow_http;
    keypool_t *keys;
    /* directory */
    char *u_nonce, *u_account, *u_order, *u_ari;
    int eab_required;
    /* account */
    EVP_PKEY *key;
    char *kid;
    int loaded;
    enum cstep cstep;
    struct req creq;
    acme_order_t *waiters;
    /* nonces: a LIFO, so a badNonce resend uses the nonce of that very error */
    char *nonces[NONCE_POOL];
    int nnonces;
    acme_order_t *orders;
    unsigned running;
    acme_order_t *queue_head, *queue_tail;
    /* exchanges on the wire, and those waiting for a slot (FIFO) */
    unsigned wire;
    struct req *wq_head, *wq_tail;
    struct event *pump;
    acme_stats_t stats;
};

const char *acme_status_name(acme_status_t s)
{
    static const char *const names[] = { "ok", "failed", "rate_limited", "transient" };
    return (unsigned)s < UTIL_ARRAY_LEN(names) ? names[s] : "?";
}

/* ---- small helpers ---------------------------------------------------- */

static char *dupstr(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void set_str(char **dst, const char *s)
{
    free(*dst);
    *dst = dupstr(s);
}

static int is_problem(const struct req *r, const char *name)
{
    return r->ptype && strncmp(r->ptype, PROB_PREFIX, strlen(PROB_PREFIX)) == 0 &&
           strcmp(r->ptype + strlen(PROB_PREFIX), name) == 0;
}

static int64_t mono_ms(void)
{
    return util_mono_ms();
}

static void timer_in(struct event *ev, int64_t ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
    if (ms < 0)
        tv.tv_sec = tv.tv_usec = 0;
    event_add(ev, &tv);
}

/* ---- nonce pool ------------------------------------------------------- */

static void nonce_push(acme_client_t *c, const char *n)
{
    if (!n || !*n || strlen(n) > 256)
        return;
    char *copy = strdup(n);
    if (!copy)
        return;
    if (c->nnonces == NONCE_POOL) { /* drop the oldest */
        free(c->nonces[0]);
        memmove(c->nonces, c->nonces + 1, (NONCE_POOL - 1) * sizeof(c->nonces[0]));
        c->nnonces--;
    }
    c->nonces[c->nnonces++] = copy;
}

static char *nonce_pop(acme_client_t *c)
{
    return c->nnonces ? c->nonces[--c->nnonces] : NULL;
}

/* ---- requests --------------------------------------------------------- */

static void req_on_timer(evutil_socket_t fd, short what, void *arg);

static int req_init(struct req *r, acme_client_t *c, void (*on_done)(void *), void *owner)
{
    memset(r, 0, sizeof(*r));
    r->c = c;
    r->on_done = on_done;
    r->owner = owner;
    r->retry_after_s = -1;
    r->timer = evtimer_new(c->base, req_on_timer, r);
    return r->timer ? 0 : -1;
}

static void req_clear_response(struct req *r)
{
    free(r->body);
    free(r->location);
    free(r->nonce);
    free(r->content_type);
    free(r->ptype);
    free(r->pdetail);
    r->body = r->location = r->nonce = r->content_type = r->ptype = r->pdetail = NULL;
    r->len = 0;
    r->status = 0;
    r->curl_rc = CURLE_OK;
    r->retry_after_s = -1;
}

/* ---- the wire: at most MAX_WIRE exchanges per CA ----------------------
 * HTTP/1.1, one exchange per connection, rather than every order
 * multiplexed on one HTTP/2 connection: Debian 12's libcurl (7.88) has
 * HTTP/2 stalls that were fixed only in later releases, and on one shared
 * connection a stall holds every order at once (a 50-name burst against
 * Pebble: in 1 run of 6 nothing reached Pebble for 30 s, until every
 * transfer timed out). Over 1.1 a stall holds one exchange, for its timeout.
 * Requests beyond MAX_WIRE wait in arrival order (the POST after its nonce
 * and a badNonce resend keep the slot they had); a freed slot is handed on
 * from a 0-second event, so no request starts inside another's callback. */

static void wq_remove(acme_client_t *c, struct req *r)
{
    struct req **pp = &c->wq_head, *prev = NULL;
    while (*pp && *pp != r)
        prev = *pp, pp = &(*pp)->wnext;
    if (!*pp)
        return;
    *pp = r->wnext;
    if (c->wq_tail == r)
        c->wq_tail = prev;
    r->wnext = NULL;
    r->waiting = 0;
}

static void wire_release(acme_client_t *c)
{
    c->wire--;
    if (c->wq_head && c->pump)
        event_active(c->pump, EV_TIMEOUT, 1);
}

static void req_stop(struct req *r)
{
    if (r->waiting)
        wq_remove(r->c, r);
    if (r->easy) {
        curlev_cancel(r->c->cv, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
        wire_release(r->c);
    }
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
    if (r->timer)
        evtimer_del(r->timer);
}

static void req_fini(struct req *r)
{
    req_stop(r);
    req_clear_response(r);
    free(r->url);
    free(r->payload);
    r->url = r->payload = NULL;
    if (r->timer)
        event_free(r->timer);
    r->timer = NULL;
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct req *r = arg;
    size_t add = sz * n;
    if (r->len + add > MAX_BODY)
        return 0; /* aborts the transfer: no CA sends a megabyte */
    char *nb = realloc(r->body, r->len + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + r->len, p, add);
    r->body = nb;
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct req *r = arg;
    size_t len = sz * n, nl, vl;
    const char *name, *v;
    int kind = acme_header_split(p, len, &name, &nl, &v, &vl);
    if (kind == ACME_HDR_STATUS) { /* a new response (after 1xx) */
        set_str(&r->location, NULL);
        set_str(&r->nonce, NULL);
        set_str(&r->content_type, NULL);
        r->retry_after_s = -1;
        return len;
    }
    if (kind != ACME_HDR_FIELD)
        return len;
    char **dst = NULL;
    if (nl == 12 && util_ascii_ieq(name, "Replay-Nonce", 12))
        dst = &r->nonce;
    else if (nl == 8 && util_ascii_ieq(name, "Location", 8))
        dst = &r->location;
    else if (nl == 12 && util_ascii_ieq(name, "Content-Type", 12))
        dst = &r->content_type;
    if (dst) {
        free(*dst);
        *dst = util_strndup(v, vl);
    } else if (nl == 11 && util_ascii_ieq(name, "Retry-After", 11)) {
        r->retry_after_s = acme_parse_retry_after(v, vl, util_now_ms() / 1000);
    }
    return len;
}

static void req_on_curl(CURL *easy, CURLcode rc, void *arg);
static void req_deliver(struct req *r);

static int req_launch_easy(struct req *r, const char *url, enum method m, const char *body)
{
    acme_client_t *c = r->c;
    CURL *e = curl_easy_init();
    if (!e)
        return -1;
    struct curl_slist *h = NULL, *t;
    int ok = 1;
    char ua[64];
    snprintf(ua, sizeof(ua), "hee/%s", HEE_VERSION);
    ok &= curl_easy_setopt(e, CURLOPT_URL, url) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, c->allow_http ? "https,http" : "https") == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_USERAGENT, ua) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->request_timeout_ms) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) == CURLE_OK; /* see "the wire" */
    ok &= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK;
    ok &= curl_easy_setopt(e, CURLOPT_HEADERDATA, r) == CURLE_OK;
    if (c->ca_file)
        ok &= curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file) == CURLE_OK;
    if (m == M_HEAD)
        ok &= curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK;
    if (m == M_POST) {
        ok &= (t = curl_slist_append(h, "Content-Type: application/jose+json")) != NULL;
        h = t ? t : h;
        ok &= (t = curl_slist_append(h, "Expect:")) != NULL; /* no 100-continue round trip */
        h = t ? t : h;
        ok &= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body)) == CURLE_OK;
        ok &= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) == CURLE_OK;
    }
    if (r->accept && m != M_HEAD) {
        char a[128];
        snprintf(a, sizeof(a), "Accept: %s", r->accept);
        ok &= (t = curl_slist_append(h, a)) != NULL;
        h = t ? t : h;
    }
    if (h)
        ok &= curl_easy_setopt(e, CURLOPT_HTTPHEADER, h) == CURLE_OK;
    if (!ok || curlev_add(c->cv, e, req_on_curl, r) != 0) {
        curl_easy_cleanup(e);
        curl_slist_free_all(h);
        return -1;
    }
    r->easy = e;
    r->hdrs = h;
    r->sent_ms = mono_ms();
    r->nreq++;
    c->wire++;
    c->stats.requests++;
    return 0;
}

static void req_fail_local(struct req *r, CURLcode rc)
{
    r->curl_rc = rc;
    req_deliver(r);
}

/* Sends the request proper (the nonce, if needed, is in the pool). */
static void req_send_now(struct req *r)
{
    acme_client_t *c = r->c;
    req_clear_response(r);
    if (r->method != M_POST) {
        if (req_launch_easy(r, r->url, r->method, NULL) != 0)
            req_fail_local(r, CURLE_OUT_OF_MEMORY);
        return;
    }
    if (c->nnonces == 0) {
        r->nonce_phase = 1;
        if (!c->u_nonce || req_launch_easy(r, c->u_nonce, M_HEAD, NULL) != 0)
            req_fail_local(r, CURLE_OUT_OF_MEMORY);
        return;
    }
    char *nonce = nonce_pop(c);
    char *jws = jws_sign(c->key, r->sign_with_jwk ? NULL : c->kid, nonce, r->url, r->payload);
    free(nonce);
    if (!jws || req_launch_easy(r, r->url, M_POST, jws) != 0)
        req_fail_local(r, CURLE_OUT_OF_MEMORY);
    free(jws);
}

static void req_send(struct req *r)
{
    acme_client_t *c = r->c;
    if (c->wire < MAX_WIRE && !c->wq_head) {
        req_send_now(r);
        return;
    }
    r->waiting = 1;
    r->wnext = NULL;
    if (c->wq_tail)
        c->wq_tail->wnext = r;
    else
        c->wq_head = r;
    c->wq_tail = r;
}

static void wire_on_pump(evutil_socket_t fd, short what, void *arg)
{
    acme_client_t *c = arg;
    if (c->wire >= MAX_WIRE || !c->wq_head)
        return;
    struct req *r = c->wq_head;
    wq_remove(c, r);
    if (c->wq_head)
        event_active(c->pump, EV_TIMEOUT, 1);
    /* Last: a local failure ends the order, and its user may free c. */
    req_send_now(r);
}

/* Starts a request; takes ownership of payload. */
static void req_start(struct req *r, enum method m, const char *url, char *payload, const char *accept)
{
    req_stop(r);
    set_str(&r->url, url);
    free(r->payload);
    r->payload = payload;
    r->method = m;
    r->accept = accept;
    r->sign_with_jwk = 0;
    r->nonce_phase = 0;
    r->badnonce_left = r->c->badnonce_retries;
    r->retries_left = TRANSPORT_RETRIES;
    if (!r->url) {
        req_fail_local(r, CURLE_OUT_OF_MEMORY);
        return;
    }
    req_send(r);
}

static void req_on_timer(evutil_socket_t fd, short what, void *arg)
{
    req_send(arg);
}

static void parse_problem(struct req *r)
{
    acme_problem_t p;
    if (acme_parse_problem(r->body, r->len, &p) != 0)
        return;
    free(r->ptype);
    free(r->pdetail);
    r->ptype = p.type; /* taken over */
    r->pdetail = p.detail;
}

static int idempotent(const struct req *r)
{
    return r->method != M_POST || r->payload == NULL;
}

static void req_on_curl(CURL *easy, CURLcode rc, void *arg)
{
    struct req *r = arg;
    acme_client_t *c = r->c;
    r->http_ms += mono_ms() - r->sent_ms;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(easy);
    r->easy = NULL;
    wire_release(c);
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
    r->curl_rc = rc;
    /* Every response carries a fresh nonce, errors included. */
    nonce_push(c, r->nonce);
    /* A continuation (the POST after its nonce, a badNonce resend) takes
     * the slot just freed, with the nonce just pooled: not the queue's tail. */
    if (r->nonce_phase) {
        r->nonce_phase = 0;
        if (rc == CURLE_OK && c->nnonces > 0) {
            req_send_now(r);
            return;
        }
        if (rc == CURLE_OK)
            r->status = r->status >= 400 ? r->status : 502; /* no nonce: treat as a server fault */
    } else if (rc == CURLE_OK && r->status >= 400) {
        parse_problem(r);
        if (is_problem(r, "badNonce") && r->badnonce_left > 0) {
            r->badnonce_left--;
            c->stats.badnonce_retries++;
            log_debug("acme.bad_nonce", "url=%s left=%d", r->url, r->badnonce_left);
            req_send_now(r);
            return;
        }
    }
    int transport = rc != CURLE_OK || r->status >= 500;
    if (transport && idempotent(r) && r->retries_left > 0) {
        int64_t wait = 250LL << (TRANSPORT_RETRIES - r->retries_left);
        if (r->retry_after_s > 0 && r->retry_after_s <= 10)
            wait = r->retry_after_s * 1000LL;
        r->retries_left--;
        r->wait_ms += wait;
        log_debug("acme.retry", "url=%s curl=%d http=%ld wait_ms=%" PRId64, r->url, (int)rc, r->status, wait);
        timer_in(r->timer, wait);
        return;
    }
    req_deliver(r);
}

static void req_deliver(struct req *r)
{
    r->on_done(r->owner);
}

static int req_ok(const struct req *r)
{
    return r->curl_rc == CURLE_OK && r->status >= 200 && r->status < 300;
}

/* Maps a failed exchange to status + problem: what the caller reports. */
static acme_status_t req_failure(const struct req *r, const char **type, const char **detail, char *buf,
                                 size_t len)
{
    if (r->curl_rc != CURLE_OK) {
        *type = ACME_PROBLEM_TRANSPORT;
        *detail = curl_easy_strerror(r->curl_rc);
        return ACME_TRANSIENT;
    }
    if (r->ptype) {
        *type = r->ptype;
        *detail = r->pdetail;
        if (is_problem(r, "rateLimited"))
            return ACME_RATE_LIMITED;
        if (is_problem(r, "serverInternal") || is_problem(r, "badNonce") || r->status >= 500)
            return ACME_TRANSIENT;
        return ACME_FAILED;
    }
    snprintf(buf, len, "unexpected HTTP %ld", r->status);
    *type = ACME_PROBLEM_PROTOCOL;
    *detail = buf;
    return r->status >= 500 || r->status == 429 ? ACME_TRANSIENT : ACME_FAILED;
}

/* ---- orders: lifecycle ------------------------------------------------ */

static void order_on_timer(evutil_socket_t fd, short what, void *arg);
static void order_on_deadline(evutil_socket_t fd, short what, void *arg);
static void order_on_resp(void *arg);
static void client_prepare(acme_client_t *c);

static void unpublish(acme_order_t *o)
{
    acme_client_t *c = o->c;
    if (!o->published)
        return;
    o->published = 0;
    if (c->hooks.unpublish_challenge)
        c->hooks.unpublish_challenge(c->hooks.arg, chall_names[o->chall], o->hostname, o->chall_token);
}

static void list_remove(acme_order_t **head, acme_order_t *o)
{
    for (acme_order_t **p = head; *p; p = &(*p)->wnext) {
        if (*p == o) {
            *p = o->wnext;
            o->wnext = NULL;
            return;
        }
    }
}

static void queue_pop_next(acme_client_t *c)
{
    while (c->queue_head && c->running < (unsigned)c->max_orders) {
        acme_order_t *n = c->queue_head;
        c->queue_head = n->wnext;
        if (!c->queue_head)
            c->queue_tail = NULL;
        n->wnext = NULL;
        n->queued = 0;
        c->running++;
        timer_in(n->timer, 0);
    }
}

/* Cuts every tie between o and its client (no callbacks run). */
static void order_detach(acme_order_t *o)
{
    acme_client_t *c = o->c;
    unpublish(o);
    keypool_cancel(c->keys, &o->keywait);
    req_stop(&o->req);
    if (o->timer)
        evtimer_del(o->timer);
    if (o->deadline)
        evtimer_del(o->deadline);
    if (o->waiting)
        list_remove(&c->waiters, o);
    if (o->queued) {
        list_remove(&c->queue_head, o);
        c->queue_tail = NULL;
        for (acme_order_t *q = c->queue_head; q; q = q->wnext)
            c->queue_tail = q;
    } else {
        c->running--;
    }
    o->waiting = o->queued = 0;
    if (o->prev)
        o->prev->next = o->next;
    else
        c->orders = o->next;
    if (o->next)
        o->next->prev = o->prev;
    o->prev = o->next = NULL;
    queue_pop_next(c);
}

/* Never touches o->c: after finish() the user may have freed the client. */
static void order_free(acme_order_t *o)
{
    req_fini(&o->req);
    if (o->timer)
        event_free(o->timer);
    if (o->deadline)
        event_free(o->deadline);
    free(o->hostname);
    free(o->order_url);
    free(o->finalize_url);
    free(o->cert_url);
    for (size_t i = 0; i < o->nauthz; i++)
        free(o->authzs[i]);
    free(o->authzs);
    free(o->chall_url);
    free(o->chall_token);
    EVP_PKEY_free(o->cert_key);
    free(o->cert_pem);
    free(o->ari_id);
    free(o->ptype);
    free(o->pdetail);
    free(o->ari_expl);
    free(o);
}

static void finish_ari(acme_order_t *o)
{
    acme_ari_t a = {
        .status = o->failed ? o->status : ACME_OK,
        .start_ms = o->ari_start_ms,
        .end_ms = o->ari_end_ms,
        .explanation_url = o->ari_expl,
        .retry_after_s = o->failed ? o->retry_after_s : (int)o->ari_retry_s,
        .problem_type = o->ptype,
        .problem_detail = o->pdetail,
    };
    log_debug("acme.ari", "id=%s status=%s", o->ari_id, acme_status_name(a.status));
    acme_ari_cb cb = o->ari_done;
    void *arg = o->arg;
    order_detach(o);
    cb(&a, arg);
    order_free(o);
}

static void finish(acme_order_t *o)
{
    acme_client_t *c = o->c;
    if (o->kind == K_ARI) {
        finish_ari(o);
        return;
    }
    char *key_pem = NULL;
    acme_result_t res = {
        .status = o->failed ? o->status : ACME_OK,
        .hostname = o->hostname,
        .problem_type = o->ptype,
        .problem_detail = o->pdetail,
        .retry_after_s = o->retry_after_s,
        .elapsed_ms = mono_ms() - o->started_ms,
        .http_ms = o->req.http_ms,
        .wait_ms = o->req.wait_ms + o->wait_ms,
        .requests = o->req.nreq,
    };
    if (res.status == ACME_OK) {
        key_pem = pki_key_to_pem(o->cert_key);
        if (!key_pem) {
            res.status = ACME_FAILED;
            res.problem_type = ACME_PROBLEM_INTERNAL;
            res.problem_detail = "cannot encode the key";
        } else {
            res.cert_pem = o->cert_pem;
            res.key_pem = key_pem;
            res.not_before_ms = o->info.not_before_ms;
            res.not_after_ms = o->info.not_after_ms;
            res.issuer = o->info.issuer_cn;
            res.serial_hex = o->info.serial_hex;
            res.ari_start_ms = o->ari_start_ms;
            res.ari_end_ms = o->ari_end_ms;
        }
    }
    if (res.status == ACME_OK) {
        char na[32], q[300];
        c->stats.orders_ok++;
        log_info("acme.order_done", "host=%s status=ok ms=%" PRId64 " issuer=%s not_after=%s", o->hostname,
                 res.elapsed_ms, log_quote(q, sizeof(q), res.issuer), util_iso8601(res.not_after_ms, na, sizeof(na)));
    } else {
        char qd[400];
        c->stats.orders_failed++;
        log_info("acme.order_done", "host=%s status=%s ms=%" PRId64 " step=%s problem=%s detail=%s retry_after=%d",
                 o->hostname, acme_status_name(res.status), res.elapsed_ms, step_names[o->step],
                 res.problem_type ? res.problem_type : "-",
                 log_quote(qd, sizeof(qd), res.problem_detail ? res.problem_detail : ""), res.retry_after_s);
    }
    acme_done_cb cb = o->done;
    void *arg = o->arg;
    order_detach(o);
    cb(&res, arg); /* may free the client: o is already on its own */
    pki_free_secret(key_pem);
    order_free(o);
}

static void fail(acme_order_t *o, acme_status_t st, const char *type, const char *detail, int retry_after)
{
    o->failed = 1;
    o->status = st;
    set_str(&o->ptype, type);
    set_str(&o->pdetail, detail);
    o->retry_after_s = retry_after > 0 ? retry_after : 0;
    finish(o);
}

static void fail_req(acme_order_t *o)
{
    char buf[64];
    const char *type = NULL, *detail = NULL;
    struct req *r = &o->req;
    acme_status_t st = req_failure(r, &type, &detail, buf, sizeof(buf));
    /* A forgotten or deactivated account: find or make it again next time. */
    if (is_problem(r, "accountDoesNotExist") && o->c->kid && !r->sign_with_jwk) {
        free(o->c->kid);
        o->c->kid = NULL;
        o->c->cstep = CL_IDLE;
        st = ACME_TRANSIENT;
    }
    fail(o, st, type, detail, r->retry_after_s);
}

static acme_order_t *order_new(acme_client_t *c, enum kind kind, void *arg)
{
    acme_order_t *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->c = c;
    o->kind = kind;
    o->arg = arg;
    o->started_ms = o->wait_from_ms = mono_ms();
    o->timer = evtimer_new(c->base, order_on_timer, o);
    o->deadline = evtimer_new(c->base, order_on_deadline, o);
    if (!o->timer || !o->deadline || req_init(&o->req, c, order_on_resp, o) != 0) {
        order_free(o);
        return NULL;
    }
    o->next = c->orders;
    if (c->orders)
        c->orders->prev = o;
    c->orders = o;
    if (c->running < (unsigned)c->max_orders) {
        c->running++;
        timer_in(o->timer, 0);
    } else {
        o->queued = 1;
        if (c->queue_tail)
            c->queue_tail->wnext = o;
        else
            c->queue_head = o;
        c->queue_tail = o;
    }
    timer_in(o->deadline, c->order_timeout_ms);
    return o;
}

static void order_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    acme_order_t *o = arg;
    fail(o, ACME_TRANSIENT, ACME_PROBLEM_TIMEOUT, "order took too long", 0);
}

/* ---- orders: steps ---------------------------------------------------- */

static void step_send(acme_order_t *o, enum step st, const char *url, char *payload, const char *accept)
{
    o->step = st;
    req_start(&o->req, M_POST, url, payload, accept);
}

static void step_new_order(acme_order_t *o)
{
    json_t *p = json_pack("{s:[{s:s, s:s}]}", "identifiers", "type", "dns", "value", o->hostname);
    char *payload = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (!payload) {
        fail(o, ACME_FAILED, ACME_PROBLEM_INTERNAL, "out of memory", 0);
        return;
    }
    step_send(o, ST_NEW_ORDER, o->c->u_order, payload, NULL);
}

static void step_ari(acme_order_t *o)
{
    acme_client_t *c = o->c;
    if (!c->u_ari) {
        if (o->kind == K_ARI)
            fail(o, ACME_FAILED, ACME_PROBLEM_NO_ARI, "directory has no renewalInfo", 0);
        else
            finish(o);
        return;
    }
    size_t n = strlen(c->u_ari) + strlen(o->ari_id) + 2;
    char *url = malloc(n);
    if (!url) {
        fail(o, ACME_FAILED, ACME_PROBLEM_INTERNAL, "out of memory", 0);
        return;
    }
    snprintf(url, n, "%s%s%s", c->u_ari, c->u_ari[strlen(c->u_ari) - 1] == '/' ? "" : "/", o->ari_id);
    o->step = ST_ARI;
    req_start(&o->req, M_GET, url, NULL, NULL);
    free(url);
}

/* Runs the step the order is parked on (after a wait or a wake-up). */
static void step_start(acme_order_t *o)
{
    acme_client_t *c = o->c;
    if (o->failed) { /* recorded by the client while we waited */
        finish(o);
        return;
    }
    int ready = o->kind == K_ARI ? c->u_order != NULL : c->cstep == CL_READY;
    if (ready) {
        if (o->kind == K_ARI)
            step_ari(o);
        else
            step_new_order(o);
        return;
    }
    o->waiting = 1;
    o->wait_from_ms = mono_ms();
    o->wnext = c->waiters;
    c->waiters = o;
    if (c->cstep == CL_IDLE)
        client_prepare(c);
}

static void resume_finalize(void *arg);

/* The certificate key: kept across finalize retries; RSA comes from the
 * key pool, so the order parks (no loop stall) until one is ready. */
static int have_cert_key(acme_order_t *o)
{
    if (o->cert_key)
        return 1;
    acme_client_t *c = o->c;
    o->cert_key = c->keys ? keypool_take(c->keys, o->key_type) : pki_key_new(o->key_type);
    if (o->cert_key || !c->keys || o->key_type != PKI_KEY_RSA_2048)
        return 1;
    keypool_wait(c->keys, &o->keywait, resume_finalize, o);
    return 0;
}

static void step_finalize(acme_order_t *o)
{
    if (!have_cert_key(o))
        return;
    unsigned char *der = NULL;
    size_t len = 0;
    char *csr = NULL, *payload = NULL;
    if (o->cert_key && pki_csr_der(o->cert_key, o->hostname, &der, &len) == 0)
        csr = util_b64(der, len, 1);
    OPENSSL_free(der);
    json_t *p = csr ? json_pack("{s:s}", "csr", csr) : NULL;
    payload = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    free(csr);
    if (!payload || !o->finalize_url) {
        free(payload);
        fail(o, ACME_FAILED, o->finalize_url ? ACME_PROBLEM_INTERNAL : ACME_PROBLEM_PROTOCOL,
             o->finalize_url ? "cannot make the CSR" : "order has no finalize URL", 0);
        return;
    }
    step_send(o, ST_FINALIZE, o->finalize_url, payload, NULL);
}

static void resume_finalize(void *arg)
{
    step_finalize(arg);
}

static void start_authz(acme_order_t *o)
{
    if (o->authz_i < o->nauthz)
        step_send(o, ST_AUTHZ, o->authzs[o->authz_i], NULL, NULL);
    else
        step_finalize(o);
}

static void next_authz(acme_order_t *o)
{
    o->authz_i++;
    start_authz(o);
}

/* Waits before the next poll of the current step: the server's Retry-After
 * whenever it gave one; else right away the first time (validation and
 * issuance are often done by then), then poll_first_ms doubling up to
 * poll_max_ms; all within poll_total_ms. */
static void schedule_poll(acme_order_t *o)
{
    acme_client_t *c = o->c;
    struct req *r = &o->req;
    int64_t now = mono_ms();
    if (o->polls == 0)
        o->poll_started_ms = now;
    int64_t wait;
    if (r->retry_after_s >= 0)
        wait = r->retry_after_s * 1000LL;
    else if (o->polls == 0)
        wait = 0;
    else {
        int shift = o->polls - 1 > 20 ? 20 : o->polls - 1;
        wait = (int64_t)c->poll_first_ms << shift;
        if (wait > c->poll_max_ms)
            wait = c->poll_max_ms;
    }
    if (now + wait - o->poll_started_ms > c->poll_total_ms) {
        fail(o, ACME_TRANSIENT, ACME_PROBLEM_TIMEOUT, "still pending after the polling bound",
             (int)((wait + 999) / 1000));
        return;
    }
    o->polls++;
    o->wait_from_ms = now;
    timer_in(o->timer, wait);
}

static void order_on_timer(evutil_socket_t fd, short what, void *arg)
{
    acme_order_t *o = arg;
    o->wait_ms += mono_ms() - o->wait_from_ms;
    switch (o->step) {
    case ST_START:
        step_start(o);
        break;
    case ST_POLL_AUTHZ:
        req_start(&o->req, M_POST, o->authzs[o->authz_i], NULL, NULL);
        break;
    case ST_POLL_ORDER:
        req_start(&o->req, M_POST, o->order_url, NULL, NULL);
        break;
    default:
        break;
    }
}

static void begin_poll(acme_order_t *o, enum step st)
{
    o->step = st;
    o->polls = 0;
    schedule_poll(o);
}

/* The order object (newOrder, finalize and order polls all return it). */
static void handle_order_object(acme_order_t *o, acme_order_obj_t *ord)
{
    if (ord->finalize)
        set_str(&o->finalize_url, ord->finalize);
    if (ord->certificate)
        set_str(&o->cert_url, ord->certificate);
    if (ord->authz && !o->authzs) { /* taken over */
        o->authzs = ord->authz;
        o->nauthz = ord->nauthz;
        ord->authz = NULL;
        ord->nauthz = 0;
    }
    switch (ord->status) {
    case ACME_OBJ_UNKNOWN:
        fail(o, ACME_TRANSIENT, ACME_PROBLEM_PROTOCOL, "order without a known status", 0);
        return;
    case ACME_OBJ_INVALID:
        fail(o, ACME_FAILED, ord->error.type ? ord->error.type : PROB_PREFIX "orderInvalid",
             ord->error.detail ? ord->error.detail : "order is invalid", 0);
        return;
    default:
        break;
    }
    if (ord->status == ACME_OBJ_VALID && o->cert_url) {
        step_send(o, ST_DOWNLOAD, o->cert_url, NULL, "application/pem-certificate-chain");
    } else if (ord->status == ACME_OBJ_READY && o->step == ST_NEW_ORDER) { /* authorizations reused */
        step_finalize(o);
    } else if (ord->status == ACME_OBJ_PENDING && o->step == ST_NEW_ORDER) {
        if (o->nauthz == 0) {
            fail(o, ACME_FAILED, ACME_PROBLEM_PROTOCOL, "pending order without authorizations", 0);
            return;
        }
        o->authz_i = 0;
        start_authz(o);
    } else if (o->step == ST_POLL_ORDER) {
        schedule_poll(o); /* processing (or ready while the CA catches up) */
    } else {
        begin_poll(o, ST_POLL_ORDER);
    }
}

static void fail_authz(acme_order_t *o, const acme_authz_obj_t *az)
{
    char detail[128];
    snprintf(detail, sizeof(detail), "authorization is %s", acme_obj_status_name(az->status));
    unpublish(o);
    fail(o, ACME_FAILED, az->error.type ? az->error.type : PROB_PREFIX "unauthorized",
         az->error.detail ? az->error.detail : detail, 0);
}

static void answer_challenge(acme_order_t *o, const acme_authz_obj_t *az)
{
    acme_client_t *c = o->c;
    o->chall = c->pref[az->chall];
    set_str(&o->chall_url, az->chall_url);
    set_str(&o->chall_token, az->chall_token);
    if (az->chall_status == ACME_OBJ_PROCESSING) { /* answered before (reused authz) */
        begin_poll(o, ST_POLL_AUTHZ);
        return;
    }
    char *ka = o->chall_token ? jws_key_authorization(o->chall_token, c->key) : NULL;
    if (!ka || !o->chall_url) {
        free(ka);
        fail(o, ACME_FAILED, ACME_PROBLEM_INTERNAL, "cannot compute the key authorization", 0);
        return;
    }
    int rc = c->hooks.publish_challenge
                 ? c->hooks.publish_challenge(c->hooks.arg, chall_names[o->chall], o->hostname, o->chall_token, ka)
                 : 0;
    OPENSSL_cleanse(ka, strlen(ka));
    free(ka);
    if (rc != 0) {
        fail(o, ACME_TRANSIENT, ACME_PROBLEM_HOOK, "publish_challenge failed", 0);
        return;
    }
    o->published = c->hooks.publish_challenge != NULL;
    char *payload = strdup("{}");
    if (!payload) {
        fail(o, ACME_FAILED, ACME_PROBLEM_INTERNAL, "out of memory", 0);
        return;
    }
    step_send(o, ST_CHALLENGE, o->chall_url, payload, NULL);
}

static void handle_authz(acme_order_t *o, const acme_authz_obj_t *az)
{
    if (az->status == ACME_OBJ_UNKNOWN) {
        fail(o, ACME_TRANSIENT, ACME_PROBLEM_PROTOCOL, "authorization without a known status", 0);
        return;
    }
    if (az->status == ACME_OBJ_VALID) {
        unpublish(o);
        next_authz(o);
        return;
    }
    if (az->status != ACME_OBJ_PENDING) {
        fail_authz(o, az);
        return;
    }
    if (o->step == ST_POLL_AUTHZ) {
        schedule_poll(o);
        return;
    }
    if (az->chall < 0) {
        fail(o, ACME_FAILED, ACME_PROBLEM_NO_CHALLENGE, "no offered challenge type is enabled", 0);
        return;
    }
    answer_challenge(o, az);
}

static void handle_download(acme_order_t *o)
{
    struct req *r = &o->req;
    STACK_OF(X509) *chain = NULL;
    if (r->len == 0 || !(chain = pki_chain_from_pem(r->body))) {
        fail(o, ACME_TRANSIENT, ACME_PROBLEM_PROTOCOL, "certificate download is not a PEM chain", 0);
        return;
    }
    X509 *leaf = sk_X509_value(chain, 0);
    int ok = pki_cert_matches_key(leaf, o->cert_key) && pki_cert_has_dns(leaf, o->hostname) &&
             pki_cert_info(leaf, &o->info) == 0;
    sk_X509_pop_free(chain, X509_free);
    if (!ok) {
        fail(o, ACME_FAILED, ACME_PROBLEM_BAD_CERT, "certificate does not match our key and name", 0);
        return;
    }
    o->cert_pem = util_strndup(r->body, r->len);
    o->ari_id = acme_ari_cert_id(o->cert_pem);
    if (!o->cert_pem) {
        fail(o, ACME_FAILED, ACME_PROBLEM_INTERNAL, "out of memory", 0);
        return;
    }
    if (o->c->u_ari && o->ari_id)
        step_ari(o);
    else
        finish(o);
}

static void handle_ari(acme_order_t *o)
{
    struct req *r = &o->req;
    acme_ari_obj_t ari;
    if (!req_ok(r) || acme_parse_renewal_info(r->body, r->len, &ari) != 0) {
        if (o->kind == K_ORDER) { /* the certificate is fine without it */
            log_debug("acme.ari_unavailable", "host=%s http=%ld", o->hostname, r->status);
            finish(o);
            return;
        }
        if (!req_ok(r))
            fail_req(o);
        else
            fail(o, ACME_TRANSIENT, ACME_PROBLEM_PROTOCOL, "renewalInfo without a valid suggestedWindow", 0);
        return;
    }
    o->ari_start_ms = ari.start_ms;
    o->ari_end_ms = ari.end_ms;
    o->ari_retry_s = r->retry_after_s > 0 ? r->retry_after_s : 0;
    set_str(&o->ari_expl, ari.explanation_url);
    acme_ari_obj_clear(&ari);
    finish(o);
}

/* Order objects: newOrder (which must say where the order lives),
 * finalize and polls. */
static void on_order_object(acme_order_t *o, const struct req *r)
{
    acme_order_obj_t ord;
    if (acme_parse_order(r->body, r->len, &ord) != 0) {
        fail(o, ACME_TRANSIENT, ACME_PROBLEM_PROTOCOL, "response is not an order object", 0);
        return;
    }
    if (o->step == ST_NEW_ORDER && !r->location) {
        fail(o, ACME_TRANSIENT, ACME_PROBLEM_PROTOCOL, "newOrder without Location", 0);
    } else {
        if (o->step == ST_NEW_ORDER)
            set_str(&o->order_url, r->location);
        handle_order_object(o, &ord); /* may end (free) o */
    }
    acme_order_obj_clear(&ord);
}

static void on_authz_object(acme_order_t *o, const struct req *r)
{
    const char *types[MAX_CHALLENGES];
    for (int i = 0; i < o->c->npref; i++)
        types[i] = chall_names[o->c->pref[i]];
    acme_authz_obj_t az;
    if (acme_parse_authz(r->body, r->len, types, o->c->npref, &az) != 0) {
        fail(o, ACME_TRANSIENT, ACME_PROBLEM_PROTOCOL, "response is not an authorization object", 0);
        return;
    }
    handle_authz(o, &az);
    acme_authz_obj_clear(&az);
}

static void on_challenge_object(acme_order_t *o, const struct req *r)
{
    acme_chall_obj_t ch;
    if (acme_parse_challenge(r->body, r->len, &ch) != 0) {
        fail(o, ACME_TRANSIENT, ACME_PROBLEM_PROTOCOL, "response is not a challenge object", 0);
        return;
    }
    if (ch.status == ACME_OBJ_INVALID) {
        unpublish(o);
        fail(o, ACME_FAILED, ch.error.type ? ch.error.type : PROB_PREFIX "unauthorized",
             ch.error.detail ? ch.error.detail : "challenge is invalid", 0);
    } else {
        begin_poll(o, ST_POLL_AUTHZ);
    }
    acme_chall_obj_clear(&ch);
}

static void order_on_resp(void *arg)
{
    acme_order_t *o = arg;
    struct req *r = &o->req;
    log_debug("acme.step", "host=%s step=%s http=%ld curl=%d ms=%" PRId64, o->hostname ? o->hostname : "-",
              step_names[o->step], r->status, (int)r->curl_rc, mono_ms() - r->sent_ms);
    if (o->step == ST_ARI) {
        handle_ari(o);
        return;
    }
    if (!req_ok(r)) {
        fail_req(o);
        return;
    }
    switch (o->step) {
    case ST_DOWNLOAD:
        handle_download(o);
        break;
    case ST_NEW_ORDER:
    case ST_FINALIZE:
    case ST_POLL_ORDER:
        on_order_object(o, r);
        break;
    case ST_AUTHZ:
    case ST_POLL_AUTHZ:
        on_authz_object(o, r);
        break;
    case ST_CHALLENGE:
        on_challenge_object(o, r);
        break;
    default:
        fail(o, ACME_FAILED, ACME_PROBLEM_INTERNAL, "response in an unexpected step", 0);
        break;
    }
}

/* ---- client: directory and account ------------------------------------ */

static void client_on_resp(void *arg);

/* Ends a preparation attempt: waiters resume (or fail) from their own timer. */
static void client_wake(acme_client_t *c, int only_ari, acme_status_t st, const char *type, const char *detail,
                        int retry_after)
{
    acme_order_t **p = &c->waiters;
    while (*p) {
        acme_order_t *o = *p;
        if (only_ari && o->kind != K_ARI) {
            p = &o->wnext;
            continue;
        }
        *p = o->wnext;
        o->wnext = NULL;
        o->waiting = 0;
        if (type) {
            o->failed = 1;
            o->status = st;
            set_str(&o->ptype, type);
            set_str(&o->pdetail, detail);
            o->retry_after_s = retry_after > 0 ? retry_after : 0;
        }
        timer_in(o->timer, 0);
    }
}

static void client_fail(acme_client_t *c, acme_status_t st, const char *type, const char *detail, int retry_after)
{
    char qd[300];
    log_info("acme.account_failed", "dir=%s step=%s status=%s problem=%s detail=%s", c->dir_url,
             cstep_names[c->cstep], acme_status_name(st), type, log_quote(qd, sizeof(qd), detail ? detail : ""));
    c->cstep = CL_IDLE;
    client_wake(c, 0, st, type, detail, retry_after);
}

static void client_fail_req(acme_client_t *c)
{
    char buf[64];
    const char *type = NULL, *detail = NULL;
    acme_status_t st = req_failure(&c->creq, &type, &detail, buf, sizeof(buf));
    client_fail(c, st, type, detail, c->creq.retry_after_s);
}

static void client_ready(acme_client_t *c)
{
    c->cstep = CL_READY;
    log_debug("acme.account_ready", "dir=%s kid=%s", c->dir_url, c->kid);
    client_wake(c, 0, ACME_OK, NULL, NULL, 0);
}

static int save_account(acme_client_t *c)
{
    if (!c->hooks.save_account)
        return 0;
    char *pem = pki_key_to_pem(c->key);
    int rc = pem ? c->hooks.save_account(c->hooks.arg, c->dir_url, pem, c->kid) : -1;
    pki_free_secret(pem);
    return rc;
}

static void account_post(acme_client_t *c, enum cstep st, int only_existing)
{
    if (!only_existing && c->eab_required && !c->eab_kid) {
        c->cstep = st;
        client_fail(c, ACME_FAILED, PROB_PREFIX "externalAccountRequired",
                    "the CA requires external account binding and none is configured", 0);
        return;
    }
    json_t *p = json_object();
    char *eab = NULL;
    if (!p)
        goto oom;
    if (only_existing) {
        json_object_set_new(p, "onlyReturnExisting", json_true());
    } else {
        json_object_set_new(p, "termsOfServiceAgreed", json_true());
        if (c->contact) {
            char mail[320];
            snprintf(mail, sizeof(mail), "mailto:%s", c->contact);
            json_object_set_new(p, "contact", json_pack("[s]", mail));
        }
        if (c->eab_kid) {
            eab = jws_eab(c->key, c->eab_kid, c->eab_hmac, c->u_account);
            json_t *e = eab ? json_loads(eab, 0, NULL) : NULL;
            if (!e)
                goto oom;
            json_object_set_new(p, "externalAccountBinding", e);
        }
    }
    char *payload = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    free(eab);
    if (!payload) {
        client_fail(c, ACME_FAILED, ACME_PROBLEM_INTERNAL, "out of memory", 0);
        return;
    }
    c->cstep = st;
    req_stop(&c->creq);
    set_str(&c->creq.url, c->u_account);
    free(c->creq.payload);
    c->creq.payload = payload;
    c->creq.method = M_POST;
    c->creq.accept = NULL;
    c->creq.sign_with_jwk = 1;
    c->creq.nonce_phase = 0;
    c->creq.badnonce_left = c->badnonce_retries;
    c->creq.retries_left = 0;
    req_send(&c->creq);
    return;
oom:
    json_decref(p);
    free(eab);
    client_fail(c, ACME_FAILED, ACME_PROBLEM_INTERNAL, "cannot build the account request", 0);
}

/* Account: known → ready; key only → look it up; nothing → make and save a
 * key first (a crash then leaves a key to look up, not a lost account). */
static void account_step(acme_client_t *c)
{
    if (!c->loaded && c->hooks.load_account) {
        char *pem = NULL, *kid = NULL;
        if (c->hooks.load_account(c->hooks.arg, c->dir_url, &pem, &kid) != 0) {
            pki_free_secret(pem);
            free(kid);
            client_fail(c, ACME_TRANSIENT, ACME_PROBLEM_HOOK, "load_account failed", 0);
            return;
        }
        c->loaded = 1;
        if (pem) {
            c->key = pki_key_from_pem(pem);
            if (!c->key || !jws_alg(c->key)) {
                EVP_PKEY_free(c->key);
                c->key = NULL;
                free(kid);
                kid = NULL;
                log_warn("acme.account_key_unusable", "dir=%s", c->dir_url);
            }
        }
        pki_free_secret(pem);
        if (c->key)
            c->kid = kid;
        else
            free(kid);
    }
    c->loaded = 1;
    if (c->key && c->kid) {
        client_ready(c);
    } else if (c->key) {
        account_post(c, CL_LOOKUP, 1);
    } else {
        c->key = pki_key_new(PKI_KEY_EC_P256);
        if (!c->key || save_account(c) != 0) {
            EVP_PKEY_free(c->key);
            c->key = NULL;
            client_fail(c, ACME_TRANSIENT, ACME_PROBLEM_HOOK, "cannot create and save an account key", 0);
            return;
        }
        account_post(c, CL_CREATE, 0);
    }
}

static void client_prepare(acme_client_t *c)
{
    if (c->u_order) {
        account_step(c);
        return;
    }
    c->cstep = CL_DIRECTORY;
    req_start(&c->creq, M_GET, c->dir_url, NULL, NULL);
}

static int handle_directory(acme_client_t *c)
{
    acme_directory_t d;
    if (acme_parse_directory(c->creq.body, c->creq.len, &d) != 0)
        return -1;
    set_str(&c->u_nonce, d.new_nonce);
    set_str(&c->u_account, d.new_account);
    set_str(&c->u_order, d.new_order);
    set_str(&c->u_ari, d.renewal_info);
    c->eab_required = d.eab_required;
    acme_directory_clear(&d);
    return c->u_nonce && c->u_account && c->u_order ? 0 : -1;
}

static void client_on_resp(void *arg)
{
    acme_client_t *c = arg;
    struct req *r = &c->creq;
    log_debug("acme.step", "dir=%s step=%s http=%ld curl=%d ms=%" PRId64, c->dir_url, cstep_names[c->cstep],
              r->status, (int)r->curl_rc, mono_ms() - r->sent_ms);
    switch (c->cstep) {
    case CL_DIRECTORY:
        if (!req_ok(r)) {
            client_fail_req(c);
        } else if (handle_directory(c) != 0) {
            client_fail(c, ACME_TRANSIENT, ACME_PROBLEM_PROTOCOL, "directory lacks newNonce/newAccount/newOrder", 0);
        } else {
            client_wake(c, 1, ACME_OK, NULL, NULL, 0); /* ARI needs no account */
            account_step(c);
        }
        break;
    case CL_LOOKUP:
        if (req_ok(r) && r->location) {
            set_str(&c->kid, r->location);
            if (save_account(c) != 0)
                log_warn("acme.account_save_failed", "dir=%s", c->dir_url);
            log_info("acme.account_found", "dir=%s kid=%s", c->dir_url, c->kid);
            client_ready(c);
        } else if (is_problem(r, "accountDoesNotExist")) {
            account_post(c, CL_CREATE, 0);
        } else {
            client_fail_req(c);
        }
        break;
    case CL_CREATE:
        if (!req_ok(r) || !r->location) {
            client_fail_req(c);
            break;
        }
        set_str(&c->kid, r->location);
        if (!c->kid || save_account(c) != 0) {
            /* Go on in memory: onlyReturnExisting recovers it next run. */
            log_warn("acme.account_save_failed", "dir=%s", c->dir_url);
        }
        log_info("acme.account_created", "dir=%s kid=%s", c->dir_url, c->kid);
        client_ready(c);
        break;
    default:
        break;
    }
}

/* ---- public API ------------------------------------------------------- */

static int parse_challenges(acme_client_t *c, const char *list)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", list ? list : CONFIG_DEFAULT_CHALLENGES);
    c->npref = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        int found = -1;
        for (size_t i = 0; i < UTIL_ARRAY_LEN(chall_names); i++)
            if (strcmp(t, chall_names[i]) == 0)
                found = (int)i;
        if (found < 0 || c->npref == MAX_CHALLENGES)
            return -1;
        c->pref[c->npref++] = (enum chall)found;
    }
    return c->npref > 0 ? 0 : -1;
}

static int pick(int v, int def)
{
    return v > 0 ? v : def;
}

acme_client_t *acme_client_new(struct event_base *base, curlev_t *cv, const acme_config_t *cfg)
{
    if (!base || !cv || !cfg || !cfg->directory_url || (!!cfg->eab_kid != !!cfg->eab_hmac_key))
        return NULL;
    acme_client_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base = base;
    c->cv = cv;
    c->dir_url = strdup(cfg->directory_url);
    c->ca_file = dupstr(cfg->ca_file);
    c->contact = dupstr(cfg->contact_email);
    c->eab_kid = dupstr(cfg->eab_kid);
    c->eab_hmac = dupstr(cfg->eab_hmac_key);
    c->hooks = cfg->hooks;
    c->badnonce_retries = pick(cfg->badnonce_retries, 10);
    c->poll_first_ms = pick(cfg->poll_first_ms, 25);
    c->poll_max_ms = pick(cfg->poll_max_ms, 8000);
    c->poll_total_ms = pick(cfg->poll_total_ms, 120000);
    c->order_timeout_ms = pick(cfg->order_timeout_ms, 300000);
    c->request_timeout_ms = pick(cfg->request_timeout_ms, 30000);
    c->max_orders = pick(cfg->max_orders, 16);
    c->allow_http = cfg->allow_http;
    c->keys = cfg->keys;
    if (!c->dir_url || (cfg->ca_file && !c->ca_file) || (cfg->contact_email && !c->contact) ||
        (cfg->eab_kid && (!c->eab_kid || !c->eab_hmac)) || parse_challenges(c, cfg->challenges) != 0 ||
        !(c->pump = event_new(base, -1, 0, wire_on_pump, c)) || req_init(&c->creq, c, client_on_resp, c) != 0)
        goto fail;
    if (c->eab_hmac) { /* catch a mangled key now, not at the first order */
        size_t n = 0;
        unsigned char *k = util_unb64(c->eab_hmac, strlen(c->eab_hmac), &n);
        if (k)
            OPENSSL_cleanse(k, n);
        free(k);
        if (!k || n == 0)
            goto fail;
    }
    return c;
fail:
    acme_client_free(c);
    return NULL;
}

void acme_client_free(acme_client_t *c)
{
    if (!c)
        return;
    while (c->orders) {
        acme_order_t *o = c->orders;
        order_detach(o);
        order_free(o);
    }
    req_fini(&c->creq);
    if (c->pump)
        event_free(c->pump);
    for (int i = 0; i < c->nnonces; i++)
        free(c->nonces[i]);
    free(c->dir_url);
    free(c->ca_file);
    free(c->contact);
    free(c->eab_kid);
    if (c->eab_hmac) {
        OPENSSL_cleanse(c->eab_hmac, strlen(c->eab_hmac));
        free(c->eab_hmac);
    }
    free(c->u_nonce);
    free(c->u_account);
    free(c->u_order);
    free(c->u_ari);
    EVP_PKEY_free(c->key);
    free(c->kid);
    free(c);
}

void acme_client_stats(const acme_client_t *c, acme_stats_t *out)
{
    if (c)
        *out = c->stats;
    else
        memset(out, 0, sizeof(*out));
}

acme_order_t *acme_order_start(acme_client_t *c, const char *hostname, pki_key_type_t key_type,
                               acme_done_cb done_cb, void *arg)
{
    if (!c || !done_cb || !pki_hostname_valid(hostname) || hostname[0] == '*' ||
        (key_type != PKI_KEY_EC_P256 && key_type != PKI_KEY_RSA_2048))
        return NULL;
    char *host = strdup(hostname);
    if (!host)
        return NULL;
    for (char *p = host; *p; p++) /* CAs compare identifiers in lower case */
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p + 32);
    acme_order_t *o = order_new(c, K_ORDER, arg);
    if (!o) {
        free(host);
        return NULL;
    }
    o->hostname = host;
    o->key_type = key_type;
    o->done = done_cb;
    log_debug("acme.order_start", "host=%s key=%s queued=%d", host, pki_key_type_name(key_type), o->queued);
    return o;
}

void acme_order_cancel(acme_order_t *o)
{
    if (!o)
        return;
    order_detach(o);
    order_free(o);
}

char *acme_ari_cert_id(const char *cert_pem)
{
    X509 *x = pki_cert_from_pem(cert_pem);
    const ASN1_OCTET_STRING *aki = x ? X509_get0_authority_key_id(x) : NULL;
    const ASN1_INTEGER *serial = x ? X509_get0_serialNumber(x) : NULL;
    unsigned char *der = NULL;
    char *a = NULL, *s = NULL, *out = NULL;
    int n = serial ? i2d_ASN1_INTEGER(serial, &der) : -1;
    /* DER INTEGER: tag, one length byte (serials are at most 20 octets), value. */
    if (!aki || n < 3 || der[1] != n - 2)
        goto out;
    a = util_b64(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki), 1);
    s = util_b64(der + 2, (size_t)n - 2, 1);
    if (!a || !s)
        goto out;
    out = malloc(strlen(a) + strlen(s) + 2);
    if (out)
        sprintf(out, "%s.%s", a, s);
out:
    free(a);
    free(s);
    OPENSSL_free(der);
    X509_free(x);
    return out;
}

int acme_renewal_info(acme_client_t *c, const char *cert_pem, acme_ari_cb cb, void *arg)
{
    if (!c || !cb)
        return -1;
    char *id = acme_ari_cert_id(cert_pem);
    if (!id)
        return -1;
    acme_order_t *o = order_new(c, K_ARI, arg);
    if (!o) {
        free(id);
        return -1;
    }
    o->ari_id = id;
    o->ari_done = cb;
    return 0;
}

/* ---- parsing what the CA sends (control/acme_parse.h) -----------------
 * Kept in this file so that whatever links acme.c has them; the fuzz
 * target (test/fuzz/fuzz_acme.c) calls them directly. */

/* Everything here reads bytes a CA (or whoever sits in its place) chose:
 * no field is trusted to exist or to have its type, strings are copied
 * only when bounded, arrays only when short. */

static const char *const status_names[] = {
    "unknown", "pending", "ready", "processing", "valid", "invalid", "deactivated", "expired", "revoked",
};

const char *acme_obj_status_name(acme_obj_status_t s)
{
    return (unsigned)s < UTIL_ARRAY_LEN(status_names) ? status_names[s] : "?";
}

static json_t *load_object(const char *body, size_t len)
{
    if (!body || len == 0)
        return NULL;
    json_t *o = json_loadb(body, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A copy of o[key] when it is a string of at most ACME_PARSE_MAX_STR
 * bytes; NULL otherwise, or for no memory. */
static char *str_copy(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || json_string_length(v) > ACME_PARSE_MAX_STR)
        return NULL;
    return util_strndup(json_string_value(v), json_string_length(v));
}

static acme_obj_status_t status_of(json_t *o)
{
    const char *s = json_string_value(json_object_get(o, "status"));
    for (size_t i = 1; s && i < UTIL_ARRAY_LEN(status_names); i++)
        if (strcmp(s, status_names[i]) == 0)
            return (acme_obj_status_t)i;
    return ACME_OBJ_UNKNOWN;
}

static void problem_from(json_t *o, acme_problem_t *p)
{
    p->type = str_copy(o, "type");
    p->detail = str_copy(o, "detail");
}

void acme_problem_clear(acme_problem_t *p)
{
    if (!p)
        return;
    free(p->type);
    free(p->detail);
    memset(p, 0, sizeof(*p));
}

int acme_parse_problem(const char *body, size_t len, acme_problem_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *o = load_object(body, len);
    if (!o)
        return -1;
    problem_from(o, out);
    json_decref(o);
    return 0;
}

void acme_directory_clear(acme_directory_t *d)
{
    if (!d)
        return;
    free(d->new_nonce);
    free(d->new_account);
    free(d->new_order);
    free(d->renewal_info);
    memset(d, 0, sizeof(*d));
}

int acme_parse_directory(const char *body, size_t len, acme_directory_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *d = load_object(body, len);
    if (d) {
        out->new_nonce = str_copy(d, "newNonce");
        out->new_account = str_copy(d, "newAccount");
        out->new_order = str_copy(d, "newOrder");
        out->renewal_info = str_copy(d, "renewalInfo");
        out->eab_required =
            json_is_true(json_object_get(json_object_get(d, "meta"), "externalAccountRequired"));
    }
    json_decref(d);
    if (out->new_nonce && out->new_account && out->new_order)
        return 0;
    acme_directory_clear(out);
    return -1;
}

void acme_order_obj_clear(acme_order_obj_t *o)
{
    if (!o)
        return;
    free(o->finalize);
    free(o->certificate);
    for (size_t i = 0; i < o->nauthz; i++)
        free(o->authz[i]);
    free(o->authz);
    acme_problem_clear(&o->error);
    memset(o, 0, sizeof(*o));
}

static int authz_list(json_t *az, acme_order_obj_t *out)
{
    size_t n = json_array_size(az);
    if (!az)
        return 0;
    if (!json_is_array(az) || n > ACME_PARSE_MAX_AUTHZ || !(out->authz = calloc(n + 1, sizeof(char *))))
        return -1;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(az, i);
        if (!json_is_string(v) || json_string_length(v) > ACME_PARSE_MAX_STR ||
            !(out->authz[i] = util_strndup(json_string_value(v), json_string_length(v))))
            return -1;
        out->nauthz = i + 1;
    }
    return 0;
}

int acme_parse_order(const char *body, size_t len, acme_order_obj_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *o = load_object(body, len);
    if (!o)
        return -1;
    out->status = status_of(o);
    out->finalize = str_copy(o, "finalize");
    out->certificate = str_copy(o, "certificate");
    int rc = authz_list(json_object_get(o, "authorizations"), out);
    json_t *err = json_object_get(o, "error");
    if (json_is_object(err))
        problem_from(err, &out->error);
    json_decref(o);
    if (rc != 0)
        acme_order_obj_clear(out);
    return rc;
}

void acme_authz_obj_clear(acme_authz_obj_t *a)
{
    if (!a)
        return;
    free(a->chall_url);
    free(a->chall_token);
    acme_problem_clear(&a->error);
    memset(a, 0, sizeof(*a));
    a->chall = -1;
}

/* RFC 8555 8.3: the token is base64url; it also ends up in URL paths and
 * in the key authorization, so nothing else gets through. */
static int token_ok(const char *t)
{
    if (!*t)
        return 0;
    for (; *t; t++)
        if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') ||
              *t == '-' || *t == '_'))
            return 0;
    return 1;
}

/* Takes ch when it is a challenge of type with a url and a usable token. */
static int take_challenge(json_t *ch, const char *type, acme_authz_obj_t *out)
{
    const char *t = json_string_value(json_object_get(ch, "type"));
    if (!t || strcmp(t, type) != 0)
        return 0;
    char *url = str_copy(ch, "url"), *token = str_copy(ch, "token");
    if (!url || !token || !token_ok(token)) {
        free(url);
        free(token);
        return 0;
    }
    out->chall_url = url;
    out->chall_token = token;
    out->chall_status = status_of(ch);
    return 1;
}

int acme_parse_authz(const char *body, size_t len, const char *const *types, int ntypes,
                     acme_authz_obj_t *out)
{
    memset(out, 0, sizeof(*out));
    out->chall = -1;
    json_t *a = load_object(body, len);
    if (!a)
        return -1;
    out->status = status_of(a);
    json_t *chs = json_object_get(a, "challenges"), *ch;
    size_t k;
    /* On failure the useful error sits on the challenge that failed. */
    json_array_foreach(chs, k, ch)
    {
        if (json_is_object(json_object_get(ch, "error"))) {
            problem_from(json_object_get(ch, "error"), &out->error);
            break;
        }
    }
    for (int i = 0; i < ntypes && out->chall < 0; i++) {
        json_array_foreach(chs, k, ch)
        {
            if (take_challenge(ch, types[i], out)) {
                out->chall = i;
                break;
            }
        }
    }
    json_decref(a);
    return 0;
}

void acme_chall_obj_clear(acme_chall_obj_t *c)
{
    if (!c)
        return;
    acme_problem_clear(&c->error);
    memset(c, 0, sizeof(*c));
}

int acme_parse_challenge(const char *body, size_t len, acme_chall_obj_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *c = load_object(body, len);
    if (!c)
        return -1;
    out->status = status_of(c);
    if (json_is_object(json_object_get(c, "error")))
        problem_from(json_object_get(c, "error"), &out->error);
    json_decref(c);
    return 0;
}

void acme_ari_obj_clear(acme_ari_obj_t *a)
{
    if (!a)
        return;
    free(a->explanation_url);
    memset(a, 0, sizeof(*a));
}

int acme_parse_renewal_info(const char *body, size_t len, acme_ari_obj_t *out)
{
    memset(out, 0, sizeof(*out));
    json_t *a = load_object(body, len);
    json_t *win = json_object_get(a, "suggestedWindow");
    const char *s = json_string_value(json_object_get(win, "start"));
    const char *e = json_string_value(json_object_get(win, "end"));
    int ok = s && e && util_parse_iso8601(s, &out->start_ms) == 0 &&
             util_parse_iso8601(e, &out->end_ms) == 0 && out->end_ms >= out->start_ms;
    if (ok)
        out->explanation_url = str_copy(a, "explanationURL");
    json_decref(a);
    if (ok)
        return 0;
    acme_ari_obj_clear(out);
    return -1;
}

/* ---- header lines ---- */

static int ows(char c)
{
    return c == ' ' || c == '\t';
}

int acme_header_split(const char *line, size_t len, const char **name, size_t *name_len,
                      const char **value, size_t *value_len)
{
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0)
        return ACME_HDR_STATUS;
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return ACME_HDR_OTHER;
    const char *v = colon + 1;
    size_t vl = len - (size_t)(colon - line) - 1;
    while (vl && ows(*v))
        v++, vl--;
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || ows(v[vl - 1])))
        vl--;
    *name = line;
    *name_len = (size_t)(colon - line);
    *value = v;
    *value_len = vl;
    return ACME_HDR_FIELD;
}

int acme_parse_retry_after(const char *v, size_t len, int64_t now_s)
{
    char date[128];
    while (len && ows(*v))
        v++, len--;
    while (len && (ows(v[len - 1]) || v[len - 1] == '\r' || v[len - 1] == '\n'))
        len--;
    if (len == 0)
        return -1;
    if (*v >= '0' && *v <= '9') {
        int64_t s = 0;
        for (size_t i = 0; i < len; i++) {
            if (v[i] < '0' || v[i] > '9')
                return -1;
            if (s <= ACME_PARSE_MAX_DELAY) /* stops growing long before overflow */
                s = s * 10 + (v[i] - '0');
        }
        return s > ACME_PARSE_MAX_DELAY ? ACME_PARSE_MAX_DELAY : (int)s;
    }
    if (len >= sizeof(date) || memchr(v, '\0', len))
        return -1;
    memcpy(date, v, len);
    date[len] = '\0';
    time_t t = curl_getdate(date, NULL);
    if (t < 0)
        return -1;
    if ((int64_t)t <= now_s)
        return 0;
    uint64_t d = (uint64_t)t - (uint64_t)now_s; /* exact: t > now_s */
    return d > ACME_PARSE_MAX_DELAY ? ACME_PARSE_MAX_DELAY : (int)d;
}

/* Does a rel value (a space-separated list of relation types) name rel? */
static int rel_has(const char *v, size_t n, const char *rel)
{
    size_t rl = strlen(rel);
    for (size_t i = 0; i < n;) {
        while (i < n && ows(v[i]))
            i++;
        size_t j = i;
        while (j < n && !ows(v[j]))
            j++;
        if (j - i == rl && rl && util_ascii_ieq(v + i, rel, rl))
            return 1;
        i = j;
    }
    return 0;
}

/* One link-param value at *pp (token or quoted-string, unescaped into buf
 * when quoted); -1 for an unterminated quote. An over-long value reads as
 * empty, which names no relation. */
static int param_value(const char **pp, const char *end, char *buf, size_t cap, const char **val,
                       size_t *vl)
{
    const char *p = *pp;
    if (p < end && *p == '"') {
        size_t n = 0;
        int over = 0;
        for (p++; p < end && *p != '"'; p++) {
            if (*p == '\\' && p + 1 < end)
                p++;
            if (n < cap)
                buf[n++] = *p;
            else
                over = 1;
        }
        if (p == end)
            return -1;
        *pp = p + 1;
        *val = buf;
        *vl = over ? 0 : n;
        return 0;
    }
    *val = p;
    while (p < end && *p != ';' && *p != ',' && !ows(*p))
        p++;
    *vl = (size_t)(p - *val);
    *pp = p;
    return 0;
}

/* The parameters after one link's target, up to the next link; 1 when a
 * rel parameter names rel, 0 when none does, -1 when malformed. */
static int link_params(const char **pp, const char *end, const char *rel)
{
    const char *p = *pp;
    int match = 0;
    for (;;) {
        while (p < end && ows(*p))
            p++;
        if (p == end || *p == ',')
            break;
        if (*p != ';')
            return -1;
        for (p++; p < end && ows(*p); p++)
            ;
        const char *name = p;
        while (p < end && *p != '=' && *p != ';' && *p != ',' && !ows(*p))
            p++;
        size_t nl = (size_t)(p - name), vl = 0;
        const char *val = "";
        char buf[256];
        while (p < end && ows(*p))
            p++;
        if (p < end && *p == '=') {
            for (p++; p < end && ows(*p); p++)
                ;
            if (param_value(&p, end, buf, sizeof(buf), &val, &vl) != 0)
                return -1;
        }
        if (nl == 3 && util_ascii_ieq(name, "rel", 3) && rel_has(val, vl, rel))
            match = 1;
    }
    *pp = p;
    return match;
}

char *acme_parse_link(const char *v, size_t len, const char *rel)
{
    const char *p = v, *end = v + len;
    for (;;) {
        while (p < end && (ows(*p) || *p == ','))
            p++;
        if (p == end || *p != '<')
            return NULL;
        const char *gt = memchr(p, '>', (size_t)(end - p));
        if (!gt)
            return NULL;
        const char *uri = p + 1;
        size_t ul = (size_t)(gt - uri);
        p = gt + 1;
        int m = link_params(&p, end, rel);
        if (m < 0)
            return NULL;
        if (m && ul <= ACME_PARSE_MAX_STR)
            return util_strndup(uri, ul);
    }
}
