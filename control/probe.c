/* DESIGN
 * A probe runs up to four lookups at once: A and AAAA of the hostname, the
 * ownership TXT and CAA. Each lookup is a small loop over dns_query: follow
 * the CNAME chain one hop per query when the server did not return it whole
 * (an authoritative server answers only for its own zones), retry a SERVFAIL
 * with CD set to tell a DNSSEC failure from a broken server, and for CAA climb
 * to the parent names (RFC 8659 3). Each CAA(X) of the climb is an ordinary
 * lookup, CNAMEs followed: a set found at the chain's end is X's; none there
 * and the climb goes on at X's parent, not the target's (RFC 6844's climb
 * from the target is gone: erratum 5065, then 8659). A failed lookup or a
 * looping chain ends the climb as an error, never as "no CAA" (a CA refuses
 * to issue then). The climb stops at two labels: RFC 8659 and Let's Encrypt
 * ask the TLD too, which would cost every probe one more query for the rare
 * TLD that has CAA records. The climb's first PROBE_CAA_LEVELS names are
 * asked at once, each by its own lookup, and the highest of them climbs on
 * alone: most names have no CAA anywhere, so a climb asks every level anyway
 * and asking them together saves round trips, which is what bounds a sweep's
 * probes per second at a given concurrency. caa_settle then keeps the level a
 * climb one name at a time would have stopped at. Lookups write plain facts
 * (probe_facts_t); when the last one ends probe_decide turns the facts into
 * the result, so everything that matters is testable without a network.
 *
 * Callbacks never run inside probe_run/probe_cancel: a probe that ends while
 * starting is finished from its own timer event, which also enforces the
 * probe's deadline. Probes beyond max_active queue (FIFO) so a sweep's follow-up
 * queries are not stuck behind a million first queries in the resolver. */
#include "control/probe.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "common/log.h"
#include "common/util.h"

#define PROBE_MAX_VALUES 64 /* per lookup: bounds memory and report size */
#define PROBE_SUMMARY_MAX 255
#define PROBE_DEFAULT_ACTIVE 256
#define PROBE_DEFAULT_DEADLINE_MS 15000
#define PROBE_CAA_LEVELS 3 /* CAA names asked at once: the hostname and two parents */

static const char *const hint_names[PROBE_HINT_COUNT] = {
    "ok", "missing", "nxdomain", "wrong_target", "wrong_type", "cloudflare_proxy",
    "partial", "caa_blocks_issuer", "stray_aaaa", "dnssec_bogus", "cname_loop",
    "servfail", "timeout",
};

const char *probe_hint_str(probe_hint_t h)
{
    return (unsigned)h < PROBE_HINT_COUNT ? hint_names[h] : "unknown";
}

const char *probe_method_str(probe_method_t m)
{
    switch (m) {
    case PROBE_M_CNAME:
        return "cname";
    case PROBE_M_A:
        return "a";
    case PROBE_M_TXT:
        return "txt";
    default:
        return NULL;
    }
}

/* ---- small string builder ------------------------------------------------ */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} sb_t;

static void sb_putn(sb_t *b, const char *p, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_puts(sb_t *b, const char *s) { sb_putn(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void sb_printf(sb_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    sb_putn(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* Non-printable bytes as \DDD so every value is ASCII (JSON needs UTF-8);
 * also the bytes in extra (NULL: none), so that a reader can tell them apart
 * (CAA escapes '\' itself, then every backslash in a value starts a \DDD). */
static void sb_escape(sb_t *b, const uint8_t *p, size_t n, const char *extra)
{
    /* Runs of plain bytes go in whole and escapes are written by hand: a
     * TXT or CAA value is untrusted and up to 64 KiB, so no printf per byte. */
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 0x20 && c < 0x7f && !(extra && strchr(extra, c)))
            continue;
        if (i > run)
            sb_putn(b, (const char *)p + run, i - run);
        char e[4] = {'\\', (char)('0' + c / 100), (char)('0' + c / 10 % 10), (char)('0' + c % 10)};
        sb_putn(b, e, sizeof(e));
        run = i + 1;
    }
    if (n > run)
        sb_putn(b, (const char *)p + run, n - run);
}

static char *sb_take(sb_t *b)
{
    if (b->oom) {
        free(b->s);
        return NULL;
    }
    if (!b->s)
        return strdup("");
    return b->s;
}

/* ---- names ----------------------------------------------------------------- */

/* One byte of a label in presentation form, as ldns_rdf2str writes it
 * (RFC 1035 5.1 escapes: "\c" for . ; ( ) \, "\DDD" outside printable
 * ASCII), letters in lower case. Returns the bytes written (<= 4). */
static size_t label_byte(uint8_t c, char *out)
{
    if (c == '.' || c == ';' || c == '(' || c == ')' || c == '\\') {
        out[0] = '\\';
        out[1] = (char)c;
        return 2;
    }
    if (c <= ' ' || c >= 0x7f)
        return (size_t)snprintf(out, 5, "\\%03u", c);
    out[0] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    return 1;
}

/* A wire-format name as lower-case text without the final dot ("." for
 * the root), written here rather than with ldns_rdf2str and tolower: that
 * formats every byte through printf, and it ran for every owner name of
 * every answer a sweep reads. NULL for a malformed or over-long name. */
static char *dname_str(const ldns_rdf *d)
{
    if (!d || ldns_rdf_get_type(d) != LDNS_RDF_TYPE_DNAME)
        return NULL;
    const uint8_t *w = ldns_rdf_data(d);
    size_t size = ldns_rdf_size(d), pos = 0, o = 0;
    char buf[LDNS_MAX_DOMAINLEN * 4 + 2];
    if (size == 0 || size > LDNS_MAX_DOMAINLEN)
        return NULL;
    if (size == 1)
        return strdup(".");
    while (pos < size && w[pos] > 0) {
        size_t len = w[pos++];
        if (len > 63 || pos + len >= size)
            return NULL;
        if (o)
            buf[o++] = '.';
        for (size_t i = 0; i < len; i++)
            o += label_byte(w[pos + i], buf + o);
        pos += len;
    }
    buf[o] = '\0';
    return strdup(buf);
}

char *probe_normalize_name(const char *name)
{
    if (!name || !*name)
        return NULL;
    ldns_rdf *d = ldns_dname_new_frm_str(name);
    if (!d)
        return NULL;
    char *s = dname_str(d);
    ldns_rdf_deep_free(d);
    return s;
}

/* ---- facts ------------------------------------------------------------------ */

int probe_facts_init(probe_facts_t *f, const char *start)
{
    memset(f, 0, sizeof(*f));
    if (start && !(f->start = strdup(start)))
        return -1;
    return 0;
}

void probe_facts_clear(probe_facts_t *f)
{
    free(f->start);
    for (size_t i = 0; i < f->nchain; i++)
        free(f->chain[i]);
    for (size_t i = 0; i < f->nvalues; i++)
        free(f->values[i]);
    free(f->values);
    free(f->owner);
    memset(f, 0, sizeof(*f));
}

int probe_facts_add_value(probe_facts_t *f, const char *v)
{
    if (f->nvalues >= PROBE_MAX_VALUES)
        return 0;
    for (size_t i = 0; i < f->nvalues; i++)
        if (strcmp(f->values[i], v) == 0)
            return 0;
    if (f->nvalues == f->capvalues) {
        size_t cap = f->capvalues ? f->capvalues * 2 : 4;
        char **nv = realloc(f->values, cap * sizeof(*nv));
        if (!nv)
            return -1;
        f->values = nv;
        f->capvalues = cap;
    }
    if (!(f->values[f->nvalues] = strdup(v)))
        return -1;
    f->nvalues++;
    return 0;
}

/* Appends tgt (taken) to the chain; false when the walk must stop: the name
 * was seen before or the chain grew past PROBE_MAX_HOPS. */
static bool chain_push(probe_facts_t *f, char *tgt)
{
    if (f->nchain > PROBE_MAX_HOPS) { /* already stopped by an earlier answer */
        free(tgt);
        f->loop = true;
        return false;
    }
    bool seen = f->start && strcmp(f->start, tgt) == 0;
    for (size_t i = 0; i < f->nchain && !seen; i++)
        seen = strcmp(f->chain[i], tgt) == 0;
    f->chain[f->nchain++] = tgt;
    if (seen || f->nchain > PROBE_MAX_HOPS) {
        f->loop = true;
        return false;
    }
    return true;
}

/* Renders rr's rdata as a value of the asked type; NULL when it has another
 * shape (a broken or unexpected record is skipped, not fatal). */
static char *render_value(const ldns_rr *rr, ldns_rr_type type)
{
    char buf[INET6_ADDRSTRLEN];
    const ldns_rdf *d0 = ldns_rr_rd_count(rr) > 0 ? ldns_rr_rdf(rr, 0) : NULL;
    sb_t b = {0};

    switch (type) {
    case LDNS_RR_TYPE_A:
        if (!d0 || ldns_rdf_size(d0) != 4 || !inet_ntop(AF_INET, ldns_rdf_data(d0), buf, sizeof(buf)))
            return NULL;
        return strdup(buf);
    case LDNS_RR_TYPE_AAAA:
        if (!d0 || ldns_rdf_size(d0) != 16 ||
            !inet_ntop(AF_INET6, ldns_rdf_data(d0), buf, sizeof(buf)))
            return NULL;
        return strdup(buf);
    case LDNS_RR_TYPE_TXT:
        for (size_t i = 0; i < ldns_rr_rd_count(rr); i++) {
            const ldns_rdf *d = ldns_rr_rdf(rr, i);
            size_t sz = ldns_rdf_size(d);
            if (sz == 0)
                continue;
            const uint8_t *p = ldns_rdf_data(d);
            size_t n = p[0] < sz - 1 ? p[0] : sz - 1;
            sb_escape(&b, p + 1, n, NULL);
        }
        return sb_take(&b);
    case LDNS_RR_TYPE_CAA: {
        if (ldns_rr_rd_count(rr) != 3)
            return NULL;
        const ldns_rdf *fl = ldns_rr_rdf(rr, 0), *tag = ldns_rr_rdf(rr, 1), *val = ldns_rr_rdf(rr, 2);
        if (ldns_rdf_size(fl) != 1 || ldns_rdf_size(tag) < 1)
            return NULL;
        const uint8_t *t = ldns_rdf_data(tag);
        size_t tn = t[0] < ldns_rdf_size(tag) - 1 ? t[0] : ldns_rdf_size(tag) - 1;
        sb_printf(&b, "%u ", ldns_rdf_data(fl)[0]);
        /* The tag ends at the first space; the value keeps its spaces (they
         * are WSP in an issue value) and tabs become \009. */
        sb_escape(&b, t + 1, tn, " \\");
        sb_puts(&b, " ");
        sb_escape(&b, ldns_rdf_data(val), ldns_rdf_size(val), "\\");
        return sb_take(&b);
    }
    default:
        return NULL;
    }
}

int probe_absorb(probe_facts_t *f, const char *qname, ldns_rr_type type, const char *target,
                 const ldns_pkt *pkt, const char **next)
{
    *next = NULL;
    const ldns_rr_list *ans = ldns_pkt_answer(pkt);
    size_t n = ans ? ldns_rr_list_rr_count(ans) : 0;
    char **owners = n ? calloc(n, sizeof(*owners)) : NULL;
    if (n && !owners)
        return -1;
    /* Only class IN records describe the name: one of another class (CH,
     * HS, any number) in the answer is nobody's, whatever its type; a NULL
     * owner keeps it out of the walk and the values below. */
    for (size_t i = 0; i < n; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(ans, i);
        owners[i] = ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN ? dname_str(ldns_rr_owner(rr)) : NULL;
    }

    int rc = -1;
    const char *cur = qname;
    bool stepped = false;
    for (;;) {
        const ldns_rr *cn = NULL;
        for (size_t i = 0; i < n && type != LDNS_RR_TYPE_CNAME; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(ans, i);
            if (owners[i] && ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME &&
                ldns_rr_rd_count(rr) >= 1 && strcmp(owners[i], cur) == 0) {
                cn = rr;
                break;
            }
        }
        char *tgt = cn ? dname_str(ldns_rr_rdf(cn, 0)) : NULL;
        if (!tgt)
            break;
        stepped = true;
        if (!chain_push(f, tgt)) {
            rc = 0;
            goto out;
        }
        cur = tgt;
        if (target && strcmp(cur, target) == 0)
            f->reached_target = true;
    }

    for (size_t i = 0; i < n; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(ans, i);
        if (!owners[i] || ldns_rr_get_type(rr) != type || strcmp(owners[i], cur) != 0)
            continue;
        char *v = render_value(rr, type);
        int vr = v ? probe_facts_add_value(f, v) : 0;
        free(v);
        if (vr != 0)
            goto out;
    }
    char *owner = strdup(cur);
    if (!owner)
        goto out;
    free(f->owner);
    f->owner = owner;
    /* The server gave the chain but not its end: ask the last name. Once the
     * chain reaches the edge target the rest is ours and not worth a query. */
    if (stepped && f->nvalues == 0 && !f->reached_target &&
        ldns_pkt_get_rcode(pkt) == LDNS_RCODE_NOERROR)
        *next = f->chain[f->nchain - 1];
    rc = 0;
out:
    for (size_t i = 0; i < n; i++)
        free(owners[i]);
    free(owners);
    return rc;
}

/* ---- addresses ------------------------------------------------------------- */

typedef struct {
    int af;
    unsigned char b[16];
} addr_t;

static bool addr_parse(const char *s, addr_t *a)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, s, a->b) == 1) {
        a->af = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, a->b) == 1) {
        a->af = AF_INET6;
        return true;
    }
    return false;
}

/* Cloudflare's published ranges (https://www.cloudflare.com/ips/): a hostname
 * answering with these is behind the orange-cloud proxy, which hides the CNAME
 * and terminates TLS itself. */
static const struct {
    const char *net;
    unsigned bits;
} cloudflare_ranges[] = {
    {"173.245.48.0", 20}, {"103.21.244.0", 22}, {"103.22.200.0", 22}, {"103.31.4.0", 22},
    {"141.101.64.0", 18}, {"108.162.192.0", 18}, {"190.93.240.0", 20}, {"188.114.96.0", 20},
    {"197.234.240.0", 22}, {"198.41.128.0", 17}, {"162.158.0.0", 15}, {"104.16.0.0", 13},
    {"104.24.0.0", 14}, {"172.64.0.0", 13}, {"131.0.72.0", 22},
    {"2400:cb00::", 32}, {"2606:4700::", 32}, {"2803:f800::", 32}, {"2405:b500::", 32},
    {"2405:8100::", 32}, {"2a06:98c0::", 29}, {"2c0f:f248::", 32},
};

static bool prefix_match(const unsigned char *a, const unsigned char *net, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

bool probe_is_cloudflare(const char *addr)
{
    addr_t a, n;
    if (!addr || !addr_parse(addr, &a))
        return false;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cloudflare_ranges); i++)
        if (addr_parse(cloudflare_ranges[i].net, &n) && n.af == a.af &&
            prefix_match(a.b, n.b, cloudflare_ranges[i].bits))
            return true;
    return false;
}

static bool is_edge(const probe_request_t *req, const char *v)
{
    addr_t a, e;
    if (!addr_parse(v, &a))
        return false;
    size_t len = a.af == AF_INET ? 4 : 16;
    for (size_t i = 0; i < req->n_edge_addrs; i++)
        if (req->edge_addrs[i] && addr_parse(req->edge_addrs[i], &e) && e.af == a.af &&
            memcmp(a.b, e.b, len) == 0)
            return true;
    return false;
}

enum match { MATCH_EMPTY, MATCH_ALL, MATCH_SOME, MATCH_NONE };

static enum match classify(const probe_request_t *req, const probe_facts_t *f)
{
    size_t hit = 0;
    for (size_t i = 0; i < f->nvalues; i++)
        hit += is_edge(req, f->values[i]);
    if (f->nvalues == 0)
        return MATCH_EMPTY;
    return hit == f->nvalues ? MATCH_ALL : hit ? MATCH_SOME : MATCH_NONE;
}

static bool any_cloudflare(const probe_facts_t *f)
{
    for (size_t i = 0; i < f->nvalues; i++)
        if (probe_is_cloudflare(f->values[i]))
            return true;
    return false;
}

/* ---- CAA ---------------------------------------------------------------------- */

/* A CAA value as render_value wrote it, read one byte at a time: \DDD is
 * one byte (render_value escapes '\' itself, so in its output a backslash
 * always starts one; a lone backslash from another writer stands for itself).
 * Bytes are ints: \DDD above 255 stays out of every class below. */
typedef struct {
    const char *s;
    size_t i;
} caa_rd_t;

static int caa_next(const caa_rd_t *r, size_t *adv)
{
    const char *p = r->s + r->i;
    *adv = 0;
    if (!*p)
        return -1;
    if (p[0] == '\\' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9' && p[3] >= '0' &&
        p[3] <= '9') {
        *adv = 4;
        return (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
    }
    *adv = 1;
    return (unsigned char)p[0];
}

static int caa_peek(const caa_rd_t *r)
{
    size_t adv;
    return caa_next(r, &adv);
}

static int caa_get(caa_rd_t *r)
{
    size_t adv;
    int c = caa_next(r, &adv);
    r->i += adv;
    return c;
}

static bool caa_wsp(int c) { return c == ' ' || c == '\t'; }

static bool caa_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int caa_lower(int c) { return c >= 'A' && c <= 'Z' ? c | 0x20 : c; }

static void caa_skip_wsp(caa_rd_t *r)
{
    while (caa_wsp(caa_peek(r)))
        (void)caa_get(r);
}

/* The RFC 8657 parameters Let's Encrypt evaluates, as spans of the raw
 * value text (byte offsets; \DDD escapes still in). Tags compare exactly as
 * Boulder's parameter map does ("AccountURI" is another, unknown parameter);
 * a repeated one counts once, the last. */
typedef struct {
    size_t at, end;
    bool set;
} caa_span_t;

typedef struct {
    caa_span_t account, methods;
} caa_params_t;

/* True when the bytes of s[sp) are exactly want. */
static bool caa_span_is(const char *s, caa_span_t sp, const char *want)
{
    caa_rd_t r = {.s = s, .i = sp.at};
    size_t k = 0;
    while (r.i < sp.end) {
        int c = caa_get(&r);
        if (!want[k] || c != (unsigned char)want[k])
            return false;
        k++;
    }
    return want[k] == '\0';
}

/* What follows "issuer-domain-name *WSP ;" *WSP (RFC 8659 4.2):
 *   [parameters *WSP], parameters = (parameter *WSP ";" *WSP parameters) / parameter
 *   parameter = tag *WSP "=" *WSP value
 *   tag = (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT)), value = *(%x21-3A / %x3C-7E)
 * A malformed record authorises no one (as Let's Encrypt parses it); the
 * spans of accounturi and validationmethods go to p. */
static bool caa_params_read(caa_rd_t *r, caa_params_t *p)
{
    if (caa_peek(r) < 0)
        return true;
    for (;;) {
        caa_span_t tag = {.at = r->i, .set = true};
        int c = caa_get(r), last = c;
        if (!caa_alnum(c))
            return false;
        while (caa_alnum(c = caa_peek(r)) || c == '-')
            last = caa_get(r);
        if (!caa_alnum(last))
            return false;
        tag.end = r->i;
        caa_skip_wsp(r);
        if (caa_get(r) != '=')
            return false;
        caa_skip_wsp(r);
        caa_span_t val = {.at = r->i, .set = true};
        while ((c = caa_peek(r)) >= 0x21 && c <= 0x7e && c != ';')
            (void)caa_get(r);
        val.end = r->i;
        if (caa_span_is(r->s, tag, "accounturi"))
            p->account = val;
        else if (caa_span_is(r->s, tag, "validationmethods"))
            p->methods = val;
        caa_skip_wsp(r);
        c = caa_get(r);
        if (c < 0)
            return true;
        if (c != ';')
            return false;
        caa_skip_wsp(r);
    }
}

/* issue-value = *WSP [issuer-domain-name *WSP] [";" *WSP [parameters *WSP]]
 * (RFC 8659 4.2). True when the value is well-formed and names ca, compared
 * ASCII case-insensitively as DNS names are; p gets its parameters. An
 * empty issuer-domain-name (";") names no one; so does a malformed value
 * (4.2: treated as empty). */
static bool caa_issue_names(const char *value, const char *ca, caa_params_t *p)
{
    caa_rd_t r = {.s = value, .i = 0};
    size_t k = 0, len = 0;
    bool same = true;
    int c;
    caa_skip_wsp(&r);
    while ((c = caa_peek(&r)) >= 0 && !caa_wsp(c) && c != ';') {
        (void)caa_get(&r);
        int want = (unsigned char)ca[k];
        if (same && want && caa_lower(c) == caa_lower(want))
            k++;
        else
            same = false;
        len++;
    }
    same = same && len > 0 && ca[k] == '\0';
    caa_skip_wsp(&r);
    c = caa_get(&r);
    if (c < 0)
        return same;
    if (c != ';')
        return false;
    caa_skip_wsp(&r);
    return caa_params_read(&r, p) && same;
}

/* validationmethods = label *("," label), label = 1*(ALPHA / DIGIT / "-")
 * (RFC 8657 4). Read left to right as Boulder does: a label that is not of
 * that form spoils the record, unless our method came before it; unknown
 * methods are skipped; names compare exactly (ACME types are lower case). */
static bool caa_methods_have(const char *s, caa_span_t sp, const char *m, size_t mlen)
{
    caa_rd_t r = {.s = s, .i = sp.at};
    for (;;) {
        size_t k = 0, len = 0;
        bool same = true;
        int c;
        while (r.i < sp.end && (c = caa_get(&r)) != ',') {
            if (!caa_alnum(c) && c != '-')
                return false;
            same = same && k < mlen && c == (unsigned char)m[k];
            k++;
            len++;
        }
        if (len == 0)
            return false;
        if (same && k == mlen)
            return true;
        if (r.i >= sp.end)
            return false;
    }
}

/* The challenge type the ACME client answers: the first configured type
 * the CA offers (acme_parse_authz takes types in preference order, one per
 * authorisation, no second try), and Let's Encrypt offers every type Hee
 * knows for a plain name, so the first configured one. *len is 0 when the
 * list names none (NULL or blank): then no validationmethods admits us. */
static const char *caa_first_challenge(const char *list, size_t *len)
{
    const char *sep = ", \t";
    if (!list) {
        *len = 0;
        return "";
    }
    list += strspn(list, sep);
    *len = strcspn(list, sep);
    return list;
}

/* Why an issue record naming ca does not authorise this Hee, or PROBE_CAA_OK. */
static probe_caa_why_t caa_params_allow(const char *val, const caa_params_t *p, const char *account,
                                        const char *challenges)
{
    if (p->account.set && !account)
        return PROBE_CAA_NO_ACCOUNT;
    if (p->account.set && !caa_span_is(val, p->account, account))
        return PROBE_CAA_OTHER_ACCOUNT;
    size_t mlen;
    const char *m = caa_first_challenge(challenges, &mlen);
    if (p->methods.set && (mlen == 0 || !caa_methods_have(val, p->methods, m, mlen)))
        return PROBE_CAA_OTHER_METHOD;
    return PROBE_CAA_OK;
}

static bool caa_tag_is(const char *tag, size_t len, const char *name)
{
    return len == strlen(name) && util_ascii_ieq(tag, name, len);
}

probe_caa_why_t probe_caa_verdict(char *const *values, size_t n, const char *ca, const char *account,
                                  const char *challenges)
{
    bool has_issue = false;
    probe_caa_why_t why = PROBE_CAA_NOT_NAMED;
    for (size_t i = 0; i < n; i++) {
        const char *v = values[i];
        char *end = NULL;
        if (v[0] < '0' || v[0] > '9')
            continue;
        unsigned long flags = strtoul(v, &end, 10);
        if (!end || *end != ' ' || flags > 255)
            continue;
        const char *tag = end + 1;
        size_t tlen = strcspn(tag, " ");
        const char *val = tag[tlen] ? tag + tlen + 1 : "";
        if (caa_tag_is(tag, tlen, "issue")) {
            has_issue = true;
            caa_params_t p = {0};
            if (!ca || !caa_issue_names(val, ca, &p))
                continue;
            probe_caa_why_t w = caa_params_allow(val, &p, account, challenges);
            if (w == PROBE_CAA_OK)
                why = PROBE_CAA_OK;
            else if (why != PROBE_CAA_OK)
                why = w; /* names ca: a closer reason than "not named" */
        } else if (caa_tag_is(tag, tlen, "issuewild") || caa_tag_is(tag, tlen, "iodef") ||
                   caa_tag_is(tag, tlen, "issuemail")) {
            continue; /* known; issuewild is for wildcard names, which Hee never asks for */
        } else if (flags & (128 | 1)) {
            /* An unknown critical property: no CA may issue (RFC 8659 4.1).
             * The critical flag is the bit valued 128; Let's Encrypt also
             * takes the one valued 1 for it (many zones set that one), and
             * the probe foretells what the CA will do. */
            return PROBE_CAA_CRITICAL;
        }
    }
    return has_issue ? why : PROBE_CAA_OK;
}

bool probe_caa_allows(char *const *values, size_t n, const char *ca, const char *account, const char *challenges)
{
    return probe_caa_verdict(values, n, ca, account, challenges) == PROBE_CAA_OK;
}

/* ---- decision ---------------------------------------------------------------- */

typedef struct {
    const char *target;
    enum match a4, a6;
    bool cname_ok, a_ok, txt_ok, stray, caa_block, bogus;
    bool caa_fail; /* the CAA lookup gave no answer to go by (failed, looped, bogus) */
    probe_caa_why_t caa_why; /* why the records block (caa_block), for the sentence */
} eval_t;

static probe_hint_t err_hint(const probe_facts_t *f)
{
    if (f->cd_answered)
        return PROBE_HINT_DNSSEC_BOGUS;
    switch (f->status) {
    case DNS_ERR_TIMEOUT:
    case DNS_ERR_NETWORK:
        return PROBE_HINT_TIMEOUT;
    case DNS_ERR_SERVFAIL:
    case DNS_ERR_REFUSED:
    case DNS_ERR_MALFORMED:
        return PROBE_HINT_SERVFAIL;
    default:
        return PROBE_HINT_OK;
    }
}

static probe_hint_t hint_cname(const probe_request_t *req, const probe_answers_t *ans, const eval_t *ev)
{
    const probe_facts_t *a = &ans->a;
    probe_hint_t e = err_hint(a);
    if (e != PROBE_HINT_OK)
        return e;
    if (a->loop)
        return PROBE_HINT_CNAME_LOOP;
    if (a->reached_target)
        return PROBE_HINT_OK;
    if (a->nchain == 0 && a->status == DNS_ERR_NXDOMAIN)
        return PROBE_HINT_NXDOMAIN;
    if (!(req->methods & PROBE_M_CNAME) || ev->a_ok)
        return PROBE_HINT_OK; /* no CNAME expected: nothing wrong with this row */
    if (a->nchain > 0)
        return PROBE_HINT_WRONG_TARGET;
    if (a->nvalues == 0 && ans->aaaa.nvalues == 0)
        return PROBE_HINT_MISSING;
    if (any_cloudflare(a) || any_cloudflare(&ans->aaaa))
        return PROBE_HINT_CLOUDFLARE_PROXY;
    return PROBE_HINT_WRONG_TYPE;
}

/* A and AAAA rows. primary_ok: A/CNAME already point at the edge, so any
 * other AAAA is stray rather than wrong. want: the A method is accepted, so
 * an empty A RRset is worth a hint. */
static probe_hint_t hint_addr(const probe_facts_t *f, enum match m, bool is_aaaa, bool primary_ok,
                              bool want)
{
    probe_hint_t e = err_hint(f);
    if (e != PROBE_HINT_OK)
        return e;
    if (f->loop)
        return PROBE_HINT_CNAME_LOOP;
    if (f->reached_target)
        return PROBE_HINT_OK;
    if (f->nchain == 0 && f->status == DNS_ERR_NXDOMAIN)
        return PROBE_HINT_NXDOMAIN;
    if (f->nvalues == 0) {
        if (f->status == DNS_ERR_NXDOMAIN)
            return PROBE_HINT_WRONG_TARGET; /* dangling CNAME */
        return is_aaaa || !want ? PROBE_HINT_OK : PROBE_HINT_MISSING;
    }
    if (m == MATCH_ALL)
        return PROBE_HINT_OK;
    if (is_aaaa && primary_ok)
        return PROBE_HINT_STRAY_AAAA;
    if (m == MATCH_SOME)
        return PROBE_HINT_PARTIAL;
    if (any_cloudflare(f))
        return PROBE_HINT_CLOUDFLARE_PROXY;
    return PROBE_HINT_WRONG_TARGET;
}

static probe_hint_t hint_txt(const probe_request_t *req, const probe_facts_t *f)
{
    probe_hint_t e = err_hint(f);
    if (e != PROBE_HINT_OK)
        return e;
    if (f->loop)
        return PROBE_HINT_CNAME_LOOP;
    for (size_t i = 0; i < f->nvalues; i++)
        if (req->txt_value && strcmp(f->values[i], req->txt_value) == 0)
            return PROBE_HINT_OK;
    return f->nvalues ? PROBE_HINT_WRONG_TARGET : PROBE_HINT_MISSING;
}

/* The CAA row: the facts are those of the relevant level (caa_settle). A
 * lookup that failed, or whose CNAME chain looped or grew too long, says
 * nothing about the records: never "allowed" (a CA refuses to issue then).
 * *why: the records' verdict, PROBE_CAA_OK unless they were read and block. */
static probe_hint_t hint_caa(const probe_request_t *req, const probe_facts_t *f, probe_caa_why_t *why)
{
    *why = PROBE_CAA_OK;
    probe_hint_t e = err_hint(f);
    if (e != PROBE_HINT_OK)
        return e;
    if (f->loop)
        return PROBE_HINT_CNAME_LOOP;
    *why = probe_caa_verdict(f->values, f->nvalues, req->ca_identifier, req->acme_account, req->acme_challenges);
    return *why == PROBE_CAA_OK ? PROBE_HINT_OK : PROBE_HINT_CAA_BLOCKS_ISSUER;
}

/* Edge addresses of one family joined, or NULL when there are none. */
static char *edge_expected(const probe_request_t *req, int af)
{
    sb_t b = {0};
    addr_t a;
    for (size_t i = 0; i < req->n_edge_addrs; i++) {
        if (!req->edge_addrs[i] || !addr_parse(req->edge_addrs[i], &a) || a.af != af)
            continue;
        if (b.len)
            sb_puts(&b, ", ");
        sb_puts(&b, req->edge_addrs[i]);
    }
    if (!b.len && !b.oom)
        return NULL;
    return sb_take(&b);
}

static int rec_set(probe_record_t *r, const char *type, const char *name, char *const *found,
                   size_t nfound, const char *expected, probe_hint_t hint, dns_status_t st)
{
    r->type = type;
    r->hint = hint;
    r->status = st;
    if (!(r->name = strdup(name ? name : "")))
        return -1;
    if (expected && !(r->expected = strdup(expected)))
        return -1;
    if (nfound && !(r->found = calloc(nfound, sizeof(char *))))
        return -1;
    for (size_t i = 0; i < nfound; i++) {
        if (!(r->found[i] = strdup(found[i])))
            return -1;
        r->nfound++;
    }
    return 0;
}

static void evaluate(const probe_request_t *req, const probe_answers_t *ans, eval_t *ev)
{
    const probe_facts_t *a = &ans->a, *aaaa = &ans->aaaa;
    ev->target = req->cname_target ? req->cname_target : PROBE_DEFAULT_TARGET;
    ev->a4 = classify(req, a);
    ev->a6 = classify(req, aaaa);
    bool a_clean = err_hint(a) == PROBE_HINT_OK && !a->loop;
    ev->cname_ok = a_clean && a->reached_target;
    ev->a_ok = a_clean && !a->reached_target && ev->a4 == MATCH_ALL;
    ev->bogus = a->cd_answered || aaaa->cd_answered;
}

/* Most specific problem first: it is the one worth telling a customer. */
static const probe_hint_t hint_priority[] = {
    PROBE_HINT_DNSSEC_BOGUS, PROBE_HINT_CNAME_LOOP, PROBE_HINT_CAA_BLOCKS_ISSUER,
    PROBE_HINT_STRAY_AAAA, PROBE_HINT_CLOUDFLARE_PROXY, PROBE_HINT_PARTIAL,
    PROBE_HINT_WRONG_TYPE, PROBE_HINT_WRONG_TARGET, PROBE_HINT_NXDOMAIN,
    PROBE_HINT_SERVFAIL, PROBE_HINT_TIMEOUT, PROBE_HINT_MISSING,
};

static bool blocking_hint(probe_hint_t h)
{
    return h == PROBE_HINT_STRAY_AAAA || h == PROBE_HINT_CAA_BLOCKS_ISSUER ||
           h == PROBE_HINT_DNSSEC_BOGUS;
}

/* The hint to show, and in *src the record it comes from (NULL if none).
 * matched: a method matched, so a CAA lookup that failed is what stands
 * between the hostname and verification (and the hint says so). */
static probe_hint_t overall_hint(const probe_request_t *req, const probe_result_t *res, bool matched,
                                 const probe_record_t **src)
{
    const probe_record_t *seen[PROBE_HINT_COUNT] = {0};
    for (size_t i = 0; i < res->nrecords; i++) {
        const probe_record_t *r = &res->records[i];
        bool relevant = blocking_hint(r->hint);
        if (strcmp(r->type, "CAA") == 0)
            relevant |= matched;
        else if (strcmp(r->type, "CNAME") == 0)
            relevant |= (req->methods & PROBE_M_CNAME) != 0;
        else if (strcmp(r->type, "A") == 0 || strcmp(r->type, "AAAA") == 0)
            relevant |= (req->methods & PROBE_M_A) != 0;
        else if (strcmp(r->type, "TXT") == 0)
            relevant = true;
        if (relevant && !seen[r->hint])
            seen[r->hint] = r;
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(hint_priority); i++)
        if (seen[hint_priority[i]]) {
            *src = seen[hint_priority[i]];
            return hint_priority[i];
        }
    *src = NULL;
    return PROBE_HINT_MISSING;
}

/* Where the hostname points, for sentences: the chain's end or an address
 * that is not the edge's. */
static const char *points_to(const probe_request_t *req, const probe_answers_t *ans,
                             const probe_record_t *src)
{
    const probe_facts_t *a = &ans->a;
    if (src && strcmp(src->type, "CNAME") == 0 && a->nchain)
        return a->chain[a->nchain - 1];
    for (size_t i = 0; src && i < src->nfound; i++)
        if (!is_edge(req, src->found[i]))
            return src->found[i];
    return a->nchain ? a->chain[a->nchain - 1] : "nothing";
}

/* Sentences for a missing or wrong record depend on which record it is. */
static int outcome_record(char **s, const probe_request_t *req, const probe_answers_t *ans,
                          const probe_record_t *src, const eval_t *ev, probe_hint_t hint)
{
    const char *h = req->hostname;
    bool txt = src && strcmp(src->type, "TXT") == 0;
    bool addr = src && (strcmp(src->type, "A") == 0 || strcmp(src->type, "AAAA") == 0);
    if (hint == PROBE_HINT_MISSING) {
        if (txt)
            return asprintf(s, "no ownership TXT record at %s", src->name);
        if (addr)
            return asprintf(s, "%s has no %s records", h, src->type);
        if (src)
            return asprintf(s, "%s has no CNAME record (expected %s)", h, ev->target);
        return asprintf(s, "no verification record found for %s", h);
    }
    if (txt)
        return asprintf(s, "the ownership TXT record at %s holds another value", src->name);
    if (addr)
        return asprintf(s, "%s points to %s, not to the edge addresses", h, points_to(req, ans, src));
    return asprintf(s, "%s points to %s instead of %s", h, points_to(req, ans, src), ev->target);
}

/* Names the RFC 8657 parameter that stands in the way when a record names
 * the CA: otherwise the customer sees their CA listed and nothing to fix.
 * why: the verdict hint_caa found. */
static int outcome_caa(char **s, const probe_request_t *req, probe_caa_why_t why, const char *at)
{
    const char *ca = req->ca_identifier ? req->ca_identifier : "the CA";
    size_t mlen;
    const char *m = caa_first_challenge(req->acme_challenges, &mlen);
    switch (why) {
    case PROBE_CAA_NO_ACCOUNT:
        return asprintf(s, "CAA records at %s allow %s to issue only for a given ACME account (accounturi), "
                           "and this Hee has no account there yet", at, ca);
    case PROBE_CAA_OTHER_ACCOUNT:
        return asprintf(s, "CAA records at %s allow %s to issue only for another ACME account (accounturi)", at, ca);
    case PROBE_CAA_OTHER_METHOD:
        if (mlen == 0)
            return asprintf(s, "CAA records at %s allow %s to issue only with given validation methods, and "
                               "this Hee has no challenge type configured", at, ca);
        return asprintf(s, "CAA records at %s allow %s to issue only with validation methods other than %.*s", at,
                        ca, (int)mlen, m);
    default:
        return asprintf(s, "CAA records at %s do not allow %s to issue", at, ca);
    }
}

static char *outcome_text(const probe_request_t *req, const probe_answers_t *ans,
                          const probe_result_t *res, const eval_t *ev, const probe_record_t *src)
{
    const char *h = req->hostname;
    /* A CAA problem may sit at a parent or a CNAME target: name where. */
    bool caa = src && strcmp(src->type, "CAA") == 0;
    const char *at = caa ? src->name : h;
    char *s = NULL;
    int n = -1;
    if (res->verified) {
        if (res->method == PROBE_M_CNAME)
            n = asprintf(&s, "%s is a CNAME to %s", h, ev->target);
        else if (res->method == PROBE_M_A)
            n = asprintf(&s, "%s has address records pointing at the edge", h);
        else
            n = asprintf(&s, "ownership TXT record at %s%s matches", PROBE_TXT_PREFIX, h);
        return n < 0 ? NULL : s;
    }
    switch (res->hint) {
    case PROBE_HINT_MISSING:
    case PROBE_HINT_WRONG_TARGET:
        n = outcome_record(&s, req, ans, src, ev, res->hint);
        break;
    case PROBE_HINT_NXDOMAIN:
        n = asprintf(&s, "%s does not exist (NXDOMAIN)", h);
        break;
    case PROBE_HINT_WRONG_TYPE:
        n = asprintf(&s, "%s has address records where a CNAME to %s is expected", h, ev->target);
        break;
    case PROBE_HINT_CLOUDFLARE_PROXY:
        n = asprintf(&s, "%s resolves to Cloudflare proxy addresses; set the record to DNS only", h);
        break;
    case PROBE_HINT_PARTIAL:
        n = asprintf(&s, "only some of the records of %s point at the edge", h);
        break;
    case PROBE_HINT_CAA_BLOCKS_ISSUER:
        n = outcome_caa(&s, req, ev->caa_why, at);
        break;
    case PROBE_HINT_STRAY_AAAA:
        n = asprintf(&s, "%s has AAAA records that do not point at the edge", h);
        break;
    case PROBE_HINT_DNSSEC_BOGUS:
        n = asprintf(&s, "DNSSEC validation fails for %s%s", caa ? "the CAA records of " : "", at);
        break;
    case PROBE_HINT_CNAME_LOOP:
        n = asprintf(&s, "the CNAME chain of %s loops or is longer than %d hops%s", at, PROBE_MAX_HOPS,
                     caa ? " (CAA lookup)" : "");
        break;
    case PROBE_HINT_SERVFAIL:
        n = caa ? asprintf(&s, "DNS servers failed to answer the CAA lookup for %s; the CA would refuse to "
                               "issue", at)
                : asprintf(&s, "DNS servers failed to answer for %s", h);
        break;
    default:
        n = caa ? asprintf(&s, "the CAA lookup for %s timed out; the CA would refuse to issue", at)
                : asprintf(&s, "DNS lookups for %s timed out", h);
        break;
    }
    return n < 0 ? NULL : s;
}

static void summary_list(sb_t *b, const char *key, char *const *v, size_t n, const char *sep)
{
    sb_printf(b, "%s%s=", b->len ? " " : "", key);
    if (!n)
        sb_puts(b, "-");
    for (size_t i = 0; i < n; i++) {
        if (i)
            sb_puts(b, sep);
        sb_puts(b, v[i]);
    }
}

static char *summary_text(const probe_answers_t *ans, const probe_result_t *res)
{
    sb_t b = {0};
    summary_list(&b, "cname", ans->a.chain, ans->a.nchain, ">");
    summary_list(&b, "a", ans->a.values, ans->a.nvalues, ",");
    summary_list(&b, "aaaa", ans->aaaa.values, ans->aaaa.nvalues, ",");
    for (size_t i = 0; i < res->nrecords; i++) {
        const probe_record_t *r = &res->records[i];
        if (strcmp(r->type, "TXT") == 0 || strcmp(r->type, "CAA") == 0)
            sb_printf(&b, " %s=%s", strcmp(r->type, "TXT") == 0 ? "txt" : "caa", probe_hint_str(r->hint));
    }
    sb_printf(&b, " hint=%s", probe_hint_str(res->hint));
    char *s = sb_take(&b);
    if (s && strlen(s) > PROBE_SUMMARY_MAX)
        s[PROBE_SUMMARY_MAX] = '\0';
    return s;
}

static int build_records(const probe_request_t *req, const probe_answers_t *ans, eval_t *ev,
                         probe_result_t *out)
{
    const probe_facts_t *a = &ans->a, *aaaa = &ans->aaaa;
    char *e4 = edge_expected(req, AF_INET), *e6 = edge_expected(req, AF_INET6);
    bool want_a = (req->methods & PROBE_M_A) != 0;
    int rc = -1;
    probe_record_t *r = out->records;

    if (rec_set(&r[0], "CNAME", req->hostname, a->chain, a->nchain,
                (req->methods & PROBE_M_CNAME) ? ev->target : NULL, hint_cname(req, ans, ev),
                a->status) != 0)
        goto out;
    out->nrecords = 1;
    probe_hint_t ha = hint_addr(a, ev->a4, false, false, want_a);
    if (rec_set(&r[1], "A", req->hostname, a->values, a->nvalues, want_a ? e4 : NULL, ha,
                a->status) != 0)
        goto out;
    out->nrecords = 2;
    probe_hint_t h6 = hint_addr(aaaa, ev->a6, true, ev->cname_ok || ev->a_ok, want_a);
    ev->stray = h6 == PROBE_HINT_STRAY_AAAA;
    if (rec_set(&r[2], "AAAA", req->hostname, aaaa->values, aaaa->nvalues, want_a ? e6 : NULL, h6,
                aaaa->status) != 0)
        goto out;
    out->nrecords = 3;
    if (ans->txt.queried) {
        probe_hint_t ht = hint_txt(req, &ans->txt);
        ev->txt_ok = ht == PROBE_HINT_OK && (req->methods & PROBE_M_TXT);
        if (rec_set(&r[out->nrecords], "TXT", ans->txt.start, ans->txt.values, ans->txt.nvalues,
                    req->txt_value, ht, ans->txt.status) != 0)
            goto out;
        out->nrecords++;
    }
    if (ans->caa.queried) {
        const probe_facts_t *c = &ans->caa;
        probe_hint_t hc = hint_caa(req, c, &ev->caa_why);
        ev->caa_block = hc == PROBE_HINT_CAA_BLOCKS_ISSUER;
        ev->caa_fail = hc != PROBE_HINT_OK && !ev->caa_block;
        /* The name the set was found at (a CNAME target's, perhaps) or whose
         * lookup failed, else the level asked (a parent, perhaps): where the
         * chain looped or a validator refused it, that level's name. */
        bool whole = c->loop || c->cd_answered;
        const char *at = c->owner && !whole ? c->owner : c->start ? c->start : req->hostname;
        if (rec_set(&r[out->nrecords], "CAA", at, c->values, c->nvalues, req->ca_identifier, hc,
                    c->status) != 0)
            goto out;
        out->nrecords++;
    }
    rc = 0;
out:
    free(e4);
    free(e6);
    return rc;
}

void probe_result_clear(probe_result_t *res)
{
    for (size_t i = 0; i < res->nrecords; i++) {
        probe_record_t *r = &res->records[i];
        free(r->name);
        free(r->expected);
        for (size_t j = 0; j < r->nfound; j++)
            free(r->found[j]);
        free(r->found);
    }
    /* A record that failed half-way is not counted in nrecords. */
    if (res->nrecords < PROBE_REC_MAX) {
        probe_record_t *r = &res->records[res->nrecords];
        free(r->name);
        free(r->expected);
        for (size_t j = 0; j < r->nfound; j++)
            free(r->found[j]);
        free(r->found);
    }
    free(res->outcome);
    free(res->summary);
    memset(res, 0, sizeof(*res));
    res->verdict = "inconclusive";
    res->hint = PROBE_HINT_TIMEOUT;
}

int probe_decide(const probe_request_t *req, const probe_answers_t *ans, probe_result_t *out)
{
    eval_t ev = {0};
    const probe_record_t *src = NULL;
    memset(out, 0, sizeof(*out));
    evaluate(req, ans, &ev);
    if (build_records(req, ans, &ev, out) != 0)
        goto fail;

    if ((req->methods & PROBE_M_CNAME) && ev.cname_ok)
        out->method = PROBE_M_CNAME;
    else if ((req->methods & PROBE_M_A) && ev.a_ok)
        out->method = PROBE_M_A;
    else if (ev.txt_ok)
        out->method = PROBE_M_TXT;
    bool matched = out->method != PROBE_M_NONE;
    out->verified = matched && !ev.stray && !ev.caa_block && !ev.caa_fail && !ev.bogus;
    if (!out->verified)
        out->method = PROBE_M_NONE;
    out->hint = out->verified ? PROBE_HINT_OK : overall_hint(req, out, matched, &src);
    if (out->verified)
        out->verdict = "verified";
    else if (out->hint == PROBE_HINT_SERVFAIL || out->hint == PROBE_HINT_TIMEOUT)
        out->verdict = "inconclusive";
    else
        out->verdict = "unverified";
    if (!(out->outcome = outcome_text(req, ans, out, &ev, src)) || !(out->summary = summary_text(ans, out)))
        goto fail;
    return 0;
fail:
    probe_result_clear(out);
    return -1;
}

/* ---- JSON ------------------------------------------------------------------ */

static json_t *jstr(const char *s)
{
    json_t *j = s ? json_string(s) : json_null();
    return j ? j : json_string("?"); /* not UTF-8: cannot happen for escaped values */
}

static json_t *record_json(const probe_record_t *r)
{
    json_t *rec = json_object(), *found = json_array();
    if (!rec || !found)
        goto fail;
    for (size_t j = 0; j < r->nfound; j++)
        if (json_array_append_new(found, jstr(r->found[j])))
            goto fail;
    /* json_object_set_new takes the value even when it fails. */
    json_t *f = found;
    found = NULL;
    if (json_object_set_new(rec, "type", jstr(r->type)) ||
        json_object_set_new(rec, "name", jstr(r->name)) ||
        json_object_set_new(rec, "found", f) ||
        json_object_set_new(rec, "expected", jstr(r->expected)) ||
        json_object_set_new(rec, "hint", jstr(probe_hint_str(r->hint))) ||
        json_object_set_new(rec, "status", jstr(dns_status_str(r->status))))
        goto fail;
    return rec;
fail:
    json_decref(found);
    json_decref(rec);
    return NULL;
}

json_t *probe_result_to_json(const probe_result_t *res)
{
    json_t *o = json_object(), *recs = json_array();
    if (!o || !recs)
        goto fail;
    for (size_t i = 0; i < res->nrecords; i++)
        if (json_array_append_new(recs, record_json(&res->records[i])))
            goto fail;
    const char *m = probe_method_str(res->method);
    json_t *r = recs;
    recs = NULL;
    if (json_object_set_new(o, "verdict", jstr(res->verdict)) ||
        json_object_set_new(o, "hint", jstr(probe_hint_str(res->hint))) ||
        json_object_set_new(o, "verified", json_boolean(res->verified)) ||
        json_object_set_new(o, "method", m ? jstr(m) : json_null()) ||
        json_object_set_new(o, "outcome", jstr(res->outcome)) ||
        json_object_set_new(o, "records", r))
        goto fail;
    return o;
fail:
    json_decref(recs);
    json_decref(o);
    return NULL;
}

/* ---- async probes ------------------------------------------------------------ */

enum { LK_A, LK_AAAA, LK_TXT, LK_CAA, LK_COUNT = LK_CAA + PROBE_CAA_LEVELS };

struct probe_lookup {
    probe_t *p;
    probe_facts_t *f;
    ldns_rr_type type;
    const char *target; /* stop chasing here; NULL for TXT/CAA */
    char *qname;        /* name being asked */
    char *caa_base;     /* CAA: the name whose parents are climbed */
    dns_query_t *q;
    bool cd;
    bool active;
    bool climbs; /* CAA: the highest level asked, which climbs on alone */
};

struct probe {
    TAILQ_ENTRY(probe) link;
    probe_ctx_t *ctx;
    bool running, starting;
    char *hostname, *target, *txt_value, *ca, *account, *challenges;
    char **edge;
    size_t nedge;
    probe_request_t req; /* points at the copies above */
    probe_answers_t ans;
    probe_facts_t caa_up[PROBE_CAA_LEVELS - 1]; /* CAA of the parents asked at once */
    size_t ncaa_up;
    struct probe_lookup lk[LK_COUNT];
    int pending;
    struct event *ev; /* deadline, and finishing outside probe_run */
    probe_cb cb;
    void *arg;
};

TAILQ_HEAD(probe_list, probe);

struct probe_ctx {
    struct event_base *base;
    dns_resolver_t *r;
    size_t max_active, nactive, nqueued;
    int deadline_ms;
    struct probe_list active, queue;
};

probe_ctx_t *probe_ctx_new(struct event_base *base, dns_resolver_t *r, size_t max_active,
                           int deadline_ms)
{
    if (!base || !r)
        return NULL;
    probe_ctx_t *ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return NULL;
    ctx->base = base;
    ctx->r = r;
    ctx->max_active = max_active ? max_active : PROBE_DEFAULT_ACTIVE;
    ctx->deadline_ms = deadline_ms > 0 ? deadline_ms : PROBE_DEFAULT_DEADLINE_MS;
    TAILQ_INIT(&ctx->active);
    TAILQ_INIT(&ctx->queue);
    return ctx;
}

size_t probe_ctx_pending(const probe_ctx_t *ctx) { return ctx->nactive + ctx->nqueued; }

static void probe_free(probe_t *p)
{
    for (int i = 0; i < LK_COUNT; i++) {
        dns_cancel(p->lk[i].q);
        free(p->lk[i].qname);
        free(p->lk[i].caa_base);
    }
    probe_facts_clear(&p->ans.a);
    probe_facts_clear(&p->ans.aaaa);
    probe_facts_clear(&p->ans.txt);
    probe_facts_clear(&p->ans.caa);
    for (size_t i = 0; i < PROBE_CAA_LEVELS - 1; i++)
        probe_facts_clear(&p->caa_up[i]);
    if (p->ev)
        event_free(p->ev);
    for (size_t i = 0; i < p->nedge; i++)
        free(p->edge[i]);
    free(p->edge);
    free(p->hostname);
    free(p->target);
    free(p->txt_value);
    free(p->ca);
    free(p->account);
    free(p->challenges);
    free(p);
}

void probe_ctx_free(probe_ctx_t *ctx)
{
    if (!ctx)
        return;
    probe_t *p;
    while ((p = TAILQ_FIRST(&ctx->active))) {
        TAILQ_REMOVE(&ctx->active, p, link);
        probe_free(p);
    }
    while ((p = TAILQ_FIRST(&ctx->queue))) {
        TAILQ_REMOVE(&ctx->queue, p, link);
        probe_free(p);
    }
    free(ctx);
}

static void probe_start(probe_t *p);

static void pump(probe_ctx_t *ctx)
{
    probe_t *p;
    while (ctx->nactive < ctx->max_active && (p = TAILQ_FIRST(&ctx->queue))) {
        TAILQ_REMOVE(&ctx->queue, p, link);
        ctx->nqueued--;
        probe_start(p);
    }
}

/* A climb goes on past a name only when it was answered and holds no CAA:
 * after a CNAME chain that ended at a name without CAA (RFC 8659 3: each
 * CAA(X) is an ordinary lookup that follows aliases, and the climb goes on
 * at X's parent, never at the target's), or NXDOMAIN. A failed lookup or a
 * chain that looped stops it: records there may be hidden, and a CA stops
 * there too, refusing to issue. */
static bool caa_climbs_past(const probe_facts_t *f)
{
    return (f->status == DNS_OK || f->status == DNS_ERR_NXDOMAIN) && f->nvalues == 0 && !f->loop;
}

/* Puts into ans.caa the level a climb one name at a time would have
 * stopped at: the lowest with CAA records or a failed lookup, else the
 * highest asked (its own climb included). */
static void caa_settle(probe_t *p)
{
    probe_facts_t *pick = &p->ans.caa;
    for (size_t i = 0; i < p->ncaa_up && caa_climbs_past(pick); i++)
        pick = &p->caa_up[i];
    if (pick == &p->ans.caa)
        return;
    probe_facts_t tmp = p->ans.caa;
    p->ans.caa = *pick;
    *pick = tmp;
}

/* Decides, frees the probe and calls back last: the callback may free ctx. */
static void probe_finish(probe_t *p)
{
    probe_ctx_t *ctx = p->ctx;
    probe_result_t res;
    caa_settle(p);
    if (probe_decide(&p->req, &p->ans, &res) != 0)
        log_warn("probe.decide_failed", "host=%s reason=memory", p->hostname);
    else
        log_debug("probe.done", "host=%s verdict=%s hint=%s method=%s", p->hostname, res.verdict,
                  probe_hint_str(res.hint), res.verified ? probe_method_str(res.method) : "none");
    probe_cb cb = p->cb;
    void *arg = p->arg;
    TAILQ_REMOVE(&ctx->active, p, link);
    ctx->nactive--;
    probe_free(p);
    pump(ctx);
    cb(&res, arg);
    probe_result_clear(&res);
}

static void arm(probe_t *p, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (event_add(p->ev, &tv) != 0)
        log_error("probe.event_add_failed", "host=%s", p->hostname);
}

static void lk_done(struct probe_lookup *lk)
{
    probe_t *p = lk->p;
    lk->active = false;
    lk->q = NULL;
    if (--p->pending > 0)
        return;
    if (p->starting)
        arm(p, 0);
    else
        probe_finish(p);
}

static void on_lookup(dns_status_t st, ldns_pkt *pkt, void *arg);

static void lk_ask(struct probe_lookup *lk, const char *name, unsigned flags)
{
    if (name != lk->qname) {
        char *d = strdup(name);
        if (!d) {
            lk->f->status = DNS_ERR_NETWORK;
            lk_done(lk);
            return;
        }
        free(lk->qname);
        lk->qname = d;
    }
    lk->cd = (flags & DNS_CD) != 0;
    lk->q = dns_query(lk->p->ctx->r, lk->qname, lk->type, flags, on_lookup, lk);
    if (!lk->q) {
        lk->f->status = DNS_ERR_NETWORK;
        lk_done(lk);
    }
}

/* End of the first label of a name in presentation form: its first dot
 * that is not escaped ("a\.b" is one label), or the final NUL. */
static const char *label_end(const char *s)
{
    while (*s && *s != '.')
        s += s[0] == '\\' && s[1] ? 2 : 1;
    return s;
}

/* The one step of every CAA climb (caa_launch, caa_climb): the parent of a
 * name in presentation form (pointing into it), or NULL at two labels or
 * fewer, since the climb stops short of a TLD (see DESIGN). */
static const char *caa_parent(const char *name)
{
    const char *dot = label_end(name);
    if (!*dot || !*label_end(dot + 1))
        return NULL;
    return dot + 1;
}

/* CAA found nothing at this name: ask the parent of the name asked (not of
 * a CNAME target the answer led to). False when there is no parent to ask,
 * or memory ran out (the facts then say so: a climb cut short must not read
 * as "no CAA"). */
static bool caa_climb(struct probe_lookup *lk)
{
    const char *up = caa_parent(lk->caa_base);
    if (!up)
        return false;
    char *parent = strdup(up);
    if (!parent) {
        lk->f->status = DNS_ERR_NETWORK;
        return false;
    }
    free(lk->caa_base);
    lk->caa_base = parent;
    probe_facts_clear(lk->f);
    if (probe_facts_init(lk->f, parent) != 0) {
        lk->f->queried = true;
        lk->f->status = DNS_ERR_NETWORK;
        return false;
    }
    lk->f->queried = true;
    lk->f->status = DNS_ERR_TIMEOUT;
    lk_ask(lk, parent, 0);
    return true;
}

static void on_lookup(dns_status_t st, ldns_pkt *pkt, void *arg)
{
    struct probe_lookup *lk = arg;
    probe_facts_t *f = lk->f;
    const char *next = NULL;
    lk->q = NULL;

    if (st == DNS_ERR_SERVFAIL && !lk->cd) {
        if (pkt)
            ldns_pkt_free(pkt);
        f->status = st;
        lk_ask(lk, lk->qname, DNS_CD);
        return;
    }
    if (lk->cd) {
        /* Only a validator fails without CD and answers with it. */
        f->status = DNS_ERR_SERVFAIL;
        if (pkt && (st == DNS_OK || st == DNS_ERR_NXDOMAIN)) {
            f->cd_answered = true;
            (void)probe_absorb(f, lk->qname, lk->type, lk->target, pkt, &next);
        }
        if (pkt)
            ldns_pkt_free(pkt);
        lk_done(lk);
        return;
    }
    f->status = st;
    if (!pkt || (st != DNS_OK && st != DNS_ERR_NXDOMAIN)) {
        if (pkt)
            ldns_pkt_free(pkt);
        lk_done(lk);
        return;
    }
    int rc = probe_absorb(f, lk->qname, lk->type, lk->target, pkt, &next);
    ldns_pkt_free(pkt);
    if (rc != 0) {
        f->status = DNS_ERR_NETWORK;
        lk_done(lk);
        return;
    }
    if (next) {
        lk_ask(lk, next, 0);
        return;
    }
    if (lk->type == LDNS_RR_TYPE_CAA && lk->climbs && caa_climbs_past(f) && caa_climb(lk))
        return;
    lk_done(lk);
}

static void on_probe_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    probe_t *p = arg;
    for (int i = 0; i < LK_COUNT; i++) {
        struct probe_lookup *lk = &p->lk[i];
        if (!lk->active)
            continue;
        dns_cancel(lk->q);
        lk->q = NULL;
        lk->active = false;
        lk->f->status = DNS_ERR_TIMEOUT;
    }
    p->pending = 0;
    probe_finish(p);
}

static void lk_launch(probe_t *p, int i, probe_facts_t *f, ldns_rr_type type, const char *name,
                      const char *target)
{
    struct probe_lookup *lk = &p->lk[i];
    lk->p = p;
    lk->f = f;
    lk->type = type;
    lk->target = target;
    if (probe_facts_init(f, name) != 0 ||
        (type == LDNS_RR_TYPE_CAA && !(lk->caa_base = strdup(name)))) {
        f->queried = true;
        f->status = DNS_ERR_NETWORK;
        return;
    }
    f->queried = true;
    f->status = DNS_ERR_TIMEOUT; /* until an answer says otherwise */
    lk->active = true;
    p->pending++;
    lk_ask(lk, name, 0);
}

/* CAA of the hostname and of its parents up to PROBE_CAA_LEVELS names, the
 * same names caa_climb would ask (never a TLD). */
static void caa_launch(probe_t *p)
{
    const char *name = p->hostname;
    int top = LK_CAA;
    lk_launch(p, LK_CAA, &p->ans.caa, LDNS_RR_TYPE_CAA, name, NULL);
    for (size_t i = 0; i < PROBE_CAA_LEVELS - 1 && (name = caa_parent(name)); i++) {
        top = LK_CAA + 1 + (int)i;
        p->ncaa_up = i + 1;
        lk_launch(p, top, &p->caa_up[i], LDNS_RR_TYPE_CAA, name, NULL);
    }
    p->lk[top].climbs = true;
}

static void probe_start(probe_t *p)
{
    probe_ctx_t *ctx = p->ctx;
    TAILQ_INSERT_TAIL(&ctx->active, p, link);
    ctx->nactive++;
    p->running = true;
    p->starting = true;
    arm(p, ctx->deadline_ms);
    lk_launch(p, LK_A, &p->ans.a, LDNS_RR_TYPE_A, p->hostname, p->target);
    lk_launch(p, LK_AAAA, &p->ans.aaaa, LDNS_RR_TYPE_AAAA, p->hostname, p->target);
    if ((p->req.methods & PROBE_M_TXT) && p->txt_value) {
        char *name = NULL;
        if (asprintf(&name, "%s%s", PROBE_TXT_PREFIX, p->hostname) >= 0) {
            lk_launch(p, LK_TXT, &p->ans.txt, LDNS_RR_TYPE_TXT, name, NULL);
            free(name);
        }
    }
    if (p->ca)
        caa_launch(p);
    p->starting = false;
    if (p->pending == 0)
        arm(p, 0);
}

static int probe_copy(probe_t *p, const probe_request_t *req)
{
    p->hostname = probe_normalize_name(req->hostname);
    p->target = probe_normalize_name(req->cname_target ? req->cname_target : PROBE_DEFAULT_TARGET);
    if (!p->hostname || !p->target || !strchr(p->hostname, '.'))
        return -1;
    /* The TXT name must itself be a valid name (length). */
    char *txtname = NULL;
    if (asprintf(&txtname, "%s%s", PROBE_TXT_PREFIX, p->hostname) < 0)
        return -1;
    char *norm = probe_normalize_name(txtname);
    free(txtname);
    if (!norm)
        return -1;
    free(norm);
    if ((req->txt_value && !(p->txt_value = strdup(req->txt_value))) ||
        (req->ca_identifier && !(p->ca = strdup(req->ca_identifier))) ||
        (req->ca_identifier && req->acme_account && !(p->account = strdup(req->acme_account))) ||
        (req->ca_identifier && req->acme_challenges && !(p->challenges = strdup(req->acme_challenges))))
        return -1;
    if (req->n_edge_addrs) {
        if (!req->edge_addrs || !(p->edge = calloc(req->n_edge_addrs, sizeof(char *))))
            return -1;
        for (size_t i = 0; i < req->n_edge_addrs; i++) {
            addr_t a;
            if (!req->edge_addrs[i] || !addr_parse(req->edge_addrs[i], &a) ||
                !(p->edge[i] = strdup(req->edge_addrs[i])))
                return -1;
            p->nedge++;
        }
    }
    p->req.hostname = p->hostname;
    p->req.cname_target = p->target;
    p->req.edge_addrs = (const char *const *)p->edge;
    p->req.n_edge_addrs = p->nedge;
    p->req.txt_value = p->txt_value;
    p->req.methods = req->methods;
    p->req.ca_identifier = p->ca;
    p->req.acme_account = p->account;
    p->req.acme_challenges = p->challenges;
    return 0;
}

probe_t *probe_run(probe_ctx_t *ctx, const probe_request_t *req, probe_cb cb, void *arg)
{
    if (!ctx || !req || !cb)
        return NULL;
    probe_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->ctx = ctx;
    p->cb = cb;
    p->arg = arg;
    if (probe_copy(p, req) != 0 || !(p->ev = evtimer_new(ctx->base, on_probe_timer, p))) {
        probe_free(p);
        return NULL;
    }
    if (ctx->nactive < ctx->max_active) {
        probe_start(p);
    } else {
        TAILQ_INSERT_TAIL(&ctx->queue, p, link);
        ctx->nqueued++;
    }
    return p;
}

void probe_cancel(probe_t *p)
{
    if (!p)
        return;
    probe_ctx_t *ctx = p->ctx;
    if (!p->running) {
        TAILQ_REMOVE(&ctx->queue, p, link);
        ctx->nqueued--;
        probe_free(p);
        return;
    }
    TAILQ_REMOVE(&ctx->active, p, link);
    ctx->nactive--;
    probe_free(p);
    pump(ctx);
}
