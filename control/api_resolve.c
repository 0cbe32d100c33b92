/* api_resolve: GET /v1/edge/resolve, the hot path the SaaS calls on every
 * upstream request.
 *
 * DESIGN
 * A lookup is one cached statement inside a read transaction that is
 * already open: a read-lock pin (store.h) — a read-only connection
 * holding a read transaction — is taken by the first lookup, and lookups
 * run on that connection, so each one takes no lock, checks no file and
 * starts no transaction of its own (mmap'd reads on the pin's handle). The
 * pin is dropped by every commit on the control thread's read-write handle
 * (SQLite's wal hook, before the automatic checkpoint it would hold back)
 * and goes stale with every commit on the background thread's (a shared
 * commit count, store_count_commits), so the next lookup pins again and
 * sees this process's writes at once; it is renewed once it
 * is PIN_MS old, so another process's commits (the admin CLI) show within
 * PIN_MS; and it is released by a timer when lookups stop and by
 * api_resolve_quiesce before shutdown's checkpoint. If the pin cannot be
 * set up or taken, lookups run on the read-write handle and pay for their
 * transactions.
 * No reply cache: a lookup costs a few microseconds, a cache would help only
 * hot hostnames, and it would need invalidating on every write. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hostname.h"
#include "common/log.h"
#include "common/util.h"
#include "control/api.h"
#include "control/api_http.h"
#include "control/ctl.h"

#define PIN_MS 10
#define MMAP_BYTES (1LL << 30)

struct api_resolve {
    struct control *c;
    store_pin_t *pin;            /* NULL: lookups pay for their locks */
    struct event *expire_ev;
    int64_t pinned_us;           /* when the pin was taken (request clock) */
};

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
    struct api_resolve *rv = arg;
    store_pin_release(rv->pin);
}

static void pin(struct api_resolve *rv, int64_t now_us)
{
    if (!rv->pin)
        return;
    if (store_pin_held(rv->pin) && now_us - rv->pinned_us < PIN_MS * 1000)
        return;
    store_pin_release(rv->pin);
    store_pin_hold(rv->pin);
    rv->pinned_us = now_us;
    struct timeval tv = { 0, PIN_MS * 1000 };
    event_add(rv->expire_ev, &tv);
}

/* ---- the request ---- */

/* Percent-decodes [s, s+n) into out; -1 on bad escapes, NUL or overflow. */
static int pct_decode(const char *s, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            int hi = i + 2 < n ? util_hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? util_hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (ch == '\0' || o + 1 >= outlen)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

/* Finds ?hostname= without building a key/value list (hot path). */
static int resolve_param(api_req_t *r, char *out, size_t outlen)
{
    const char *q = r->hreq->query;
    int found = 0;
    for (const char *p = q; p && *p;) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        size_t klen = eq ? (size_t)(eq - p) : len;
        if (klen == 8 && memcmp(p, "hostname", 8) == 0) {
            if (found)
                return api_error(r, 400, "invalid", "%s", "hostname is given twice"), -1;
            if (!eq || pct_decode(eq + 1, len - klen - 1, out, outlen) != 0)
                return api_error(r, 400, "invalid", "%s", "hostname is malformed"), -1;
            found = 1;
        } else if (len) {
            return api_error(r, 400, "invalid", "unknown query parameter '%.*s'", (int)(klen > 64 ? 64 : klen), p),
                   -1;
        }
        p += len;
        if (*p == '&')
            p++;
    }
    if (!found || !*out)
        return api_error(r, 400, "invalid", "%s", "query parameter 'hostname' is required"), -1;
    return 0;
}

struct resolve_ctx {
    api_req_t *r;
    const char *host;
    int visible, failed;
    size_t len;
    char buf[API_METADATA_MAX + 1024]; /* metadata plus the fixed fields */
};

/* Appends n bytes to the response being built; 0 or -1 when it would not fit. */
static int put(struct resolve_ctx *rc, const char *s, size_t n)
{
    if (rc->len + n > sizeof(rc->buf))
        return -1;
    memcpy(rc->buf + rc->len, s, n);
    rc->len += n;
    return 0;
}

#define PUT_LIT(rc, lit) put(rc, lit, sizeof(lit) - 1)

static void on_row(const store_resolve_t *row, void *arg)
{
    struct resolve_ctx *rc = arg;
    api_req_t *r = rc->r;
    /* Only the owning project's tokens see a binding — operators included,
     * everyone else gets the answer a miss gets. */
    if (row->project_id != r->auth.project_id)
        return;
    rc->visible = 1;
    char ts[40];
    /* hostname (LDH), slug ([a-z0-9-]) and state (an enum) need no escaping;
     * metadata is spliced byte-for-byte as stored. One buffer, one copy into
     * the reply: no allocation and no evbuffer lock per piece. */
    /* || keeps the pieces in order and stops at the first that does not fit. */
    int bad = PUT_LIT(rc, "{\"hostname\":\"") || put(rc, rc->host, strlen(rc->host)) ||
              PUT_LIT(rc, "\",\"projectSlug\":\"") || put(rc, row->project_slug, row->project_slug_len) ||
              (row->verified ? PUT_LIT(rc, "\",\"verified\":true,\"verifiedAt\":")
                             : PUT_LIT(rc, "\",\"verified\":false,\"verifiedAt\":"));
    if (!bad && row->verified_at) {
        util_iso8601(row->verified_at, ts, sizeof(ts));
        bad = PUT_LIT(rc, "\"") || put(rc, ts, strlen(ts)) || PUT_LIT(rc, "\"");
    } else if (!bad) {
        bad = PUT_LIT(rc, "null");
    }
    bad = bad || PUT_LIT(rc, ",\"state\":\"") || put(rc, row->state, row->state_len) ||
          PUT_LIT(rc, "\",\"metadata\":") || put(rc, row->metadata, row->metadata_len) || PUT_LIT(rc, "}");
    rc->failed = bad != 0;
}

static void on_resolve(api_req_t *r)
{
    char raw[1024], host[HOSTNAME_MAX];
    const char *why;
    raw[0] = '\0';
    if (resolve_param(r, raw, sizeof(raw)) != 0)
        return;
    if (hostname_normalize(raw, host, sizeof(host), &why) != 0) {
        api_error(r, 400, "invalid", "hostname is invalid: %s", why);
        return;
    }
    struct resolve_ctx rc;
    rc.r = r;
    rc.host = host;
    rc.visible = rc.failed = 0;
    rc.len = 0;
    struct api_resolve *rv = r->arg;
    pin(rv, r->_start_us);
    /* Inside the pin's read transaction when it is held: the lookup then
     * starts no transaction of its own (no lock, no fstat of the file). */
    store_t *st = store_pin_held(rv->pin) ? store_pin_store(rv->pin) : r->c->store;
    int src = store_domain_resolve(st, host, on_row, &rc);
    if ((src != STORE_OK && src != STORE_NOTFOUND) || rc.failed) {
        api_error_internal(r, "resolve lookup failed");
        return;
    }
    if (!rc.visible) {
        api_error(r, 404, "not_found", "%s", "no such hostname");
        return;
    }
    api_reply_json_text(r, 200, rc.buf, rc.len);
}

struct api_resolve *api_resolve_init(api_t *a)
{
    struct control *c = api_control(a);
    struct api_resolve *rv = calloc(1, sizeof(*rv));
    if (!rv)
        return NULL;
    rv->c = c;
    /* Through mmap, a lookup over a million rows reads no file (best
     * effort). Only on the handle resolve reads through: the read-write
     * handle's own reads are few, and mapping it would count every page the
     * issuer and the API touch in the daemon's resident memory. */
    char *err = NULL;
    if (!c->hub || !c->hub->store_path || !(rv->pin = store_pin_new(c->store, c->hub->store_path, &err))) {
        log_warn("api.resolve_no_pin", "reason=\"%s\"", err ? err : "no store path");
        free(err);
        store_tune_reads(c->store, MMAP_BYTES);
    } else {
        store_tune_reads(store_pin_store(rv->pin), MMAP_BYTES);
    }
    if (!(rv->expire_ev = evtimer_new(c->base, on_expire, rv)) ||
        api_route(a, API_GET, "/v1/edge/resolve", API_SCOPE_CONNECTIONS_READ, API_NO_RATELIMIT, on_resolve, rv) != 0) {
        api_resolve_free(rv);
        return NULL;
    }
    return rv;
}

void api_resolve_quiesce(struct api_resolve *rv)
{
    if (!rv)
        return;
    store_pin_release(rv->pin);
    if (rv->expire_ev)
        event_del(rv->expire_ev);
}

void api_resolve_free(struct api_resolve *rv)
{
    if (!rv)
        return;
    api_resolve_quiesce(rv);
    if (rv->expire_ev)
        event_free(rv->expire_ev);
    store_pin_free(rv->pin);
    free(rv);
}
