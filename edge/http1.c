/* http1: strict HTTP/1.1 head parsers and chunked decoder.
 *
 * DESIGN. A head is handled in two steps. A resumable scanner looks for line
 * ends with memchr, insists on CRLF, enforces the byte and line limits and
 * stops once at the end of the start line (so junk is refused before the
 * whole head arrives); it keeps only offsets, so the caller may grow or move
 * its buffer between calls. Once the empty line is found, one pass over the
 * field lines validates them with a character-class table, fills the header
 * array with spans and derives the framing facts. Every decision depends only
 * on bytes already seen, in the same order whatever the feeding pattern, so
 * byte-by-byte feeding ends exactly like a single call. */
#include "edge/http1.h"

#include <string.h>

enum {
    C_TCHAR = 0x01,  /* token (RFC 9110 5.6.2) */
    C_VALUE = 0x02,  /* field-value byte: HTAB, SP, VCHAR, obs-text */
    C_TARGET = 0x04, /* request-target byte: VCHAR but '#' */
    C_HOST = 0x08,   /* reg-name subset we route on: ALPHA DIGIT - . _ ~ */
    C_HEX = 0x10,
    C_QDTEXT = 0x20, /* quoted-string text */
    C_IPV6 = 0x40,   /* inside [ ]: HEXDIG : . */
};

static const uint8_t cls[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 00 */
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 10 */
    0x22, 0x27, 0x06, 0x23, 0x27, 0x27, 0x27, 0x27, 0x26, 0x26, 0x27, 0x27, 0x26, 0x2f, 0x6f, 0x26, /* 20 */
    0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x66, 0x26, 0x26, 0x26, 0x26, 0x26, /* 30 */
    0x26, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, /* 40 */
    0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x26, 0x06, 0x26, 0x27, 0x2f, /* 50 */
    0x27, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, /* 60 */
    0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x26, 0x27, 0x26, 0x2f, 0x00, /* 70 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 80 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 90 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* a0 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* b0 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* c0 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* d0 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* e0 */
    0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* f0 */
};

#define IS(c, k) ((cls[(uint8_t)(c)] & (k)) != 0)
#define LIT(s) s, sizeof(s) - 1

struct err {
    int status;
    const char *reason;
};

static int fail(struct err *e, int status, const char *reason)
{
    e->status = status;
    e->reason = reason;
    return -1;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static uint8_t lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* Case-insensitive ASCII equality of two byte strings. */
static bool ieq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (lower((uint8_t)a[i]) != lower((uint8_t)b[i]))
            return false;
    return true;
}

void http1_limits_default(struct http1_limits *lim)
{
    lim->max_request_line = 8192;
    lim->max_header_bytes = 32768;
    lim->max_headers = 100;
}

static void limits_get(const struct http1_limits *in, struct http1_limits *out)
{
    if (in)
        *out = *in;
    else
        http1_limits_default(out);
    if (out->max_headers > HTTP1_MAX_HEADERS)
        out->max_headers = HTTP1_MAX_HEADERS;
    /* Keeps "limit + 1" and "offset + limit" free of overflow. */
    if (out->max_request_line > SIZE_MAX / 4)
        out->max_request_line = SIZE_MAX / 4;
    if (out->max_header_bytes > SIZE_MAX / 4)
        out->max_header_bytes = SIZE_MAX / 4;
}

/* ---- head scanner ------------------------------------------------------ */

enum { SCAN_ERROR = -1, SCAN_MORE, SCAN_START_LINE, SCAN_HEAD };

struct scan_cfg {
    bool request;
    int line_status;   /* start line over its limit */
    int header_status; /* header section over its limits */
    int syntax_status; /* anything else */
};

static const struct scan_cfg scan_req = { true, 414, 431, 400 };
static const struct scan_cfg scan_resp = { false, 502, 502, 502 };

/* Returns SCAN_MORE when the bytes so far are within limits but the head is
 * not complete. */
static int scan_partial(const struct http1__scan *s, size_t len, const struct http1_limits *lim,
                        const struct scan_cfg *cfg, struct err *e)
{
    if (s->start_end == 0) {
        /* max_request_line + 1: the last byte may be the CR of a CRLF. */
        if (len - s->line > lim->max_request_line + 1)
            return fail(e, cfg->line_status, cfg->request ? "request line too long"
                                                           : "status line too long");
    } else if (len - s->start_end > lim->max_header_bytes) {
        return fail(e, cfg->header_status, "header section too large");
    }
    return SCAN_MORE;
}

/* Skips the one empty line a request may start with (RFC 9112 2.2). */
static int scan_lead(struct http1__scan *s, const char *buf, size_t len,
                     const struct scan_cfg *cfg, struct err *e)
{
    if (!cfg->request || len == 0)
        return 0;
    if (buf[0] == '\n')
        return fail(e, 400, "bare LF");
    if (buf[0] != '\r')
        return 0;
    if (len < 2)
        return 1;
    if (buf[1] != '\n')
        return fail(e, 400, "bare CR");
    s->line = s->pos = 2;
    return 0;
}

static int scan_head(struct http1__scan *s, const char *buf, size_t len,
                     const struct http1_limits *lim, const struct scan_cfg *cfg, struct err *e)
{
    if (s->pos > len) /* the caller shrank the buffer: start over */
        memset(s, 0, sizeof(*s));
    if (s->head_len)
        return SCAN_HEAD;
    if (s->start_end == 0) {
        if (s->pos == 0) {
            int rc = scan_lead(s, buf, len, cfg, e);
            if (rc != 0)
                return rc < 0 ? SCAN_ERROR : SCAN_MORE;
        }
        /* Refuse TLS records and other binary junk at their first byte. */
        if (s->line < len && (cfg->request ? !IS(buf[s->line], C_TCHAR) : buf[s->line] != 'H'))
            return fail(e, cfg->syntax_status,
                        cfg->request ? "invalid method" : "invalid status line");
    }
    for (;;) {
        const char *lf = s->pos < len ? memchr(buf + s->pos, '\n', len - s->pos) : NULL;
        if (!lf) {
            s->pos = len;
            return scan_partial(s, len, lim, cfg, e);
        }
        size_t i = (size_t)(lf - buf);
        s->pos = i + 1;
        if (s->start_end == 0) {
            if (i - s->line > lim->max_request_line + 1)
                return scan_partial(s, i, lim, cfg, e);
            if (i == s->line || buf[i - 1] != '\r')
                return fail(e, cfg->syntax_status, "bare LF");
            s->start_end = s->line = i + 1;
            return SCAN_START_LINE;
        }
        if (i + 1 - s->start_end > lim->max_header_bytes)
            return fail(e, cfg->header_status, "header section too large");
        if (i == s->line || buf[i - 1] != '\r')
            return fail(e, cfg->syntax_status, "bare LF");
        if (i - 1 == s->line) {
            s->head_len = i + 1;
            return SCAN_HEAD;
        }
        if (++s->lines > lim->max_headers)
            return fail(e, cfg->header_status, "too many header fields");
        s->line = i + 1;
    }
}

/* ---- field lines ------------------------------------------------------- */

/* What the field lines say about framing, routing and the connection. */
struct facts {
    int64_t content_length;
    struct http1_span host;
    unsigned hosts;
    bool te;              /* a Transfer-Encoding field was seen */
    bool te_chunked;      /* chunked was among the codings */
    bool te_last_chunked; /* ... and is the last one so far */
    bool te_other;        /* some coding other than chunked */
    bool conn_close, conn_keep_alive, conn_upgrade, conn_other;
    bool upgrade, expect_continue;
};

static uint8_t header_id(const char *p, size_t n)
{
    static const struct {
        const char *name;
        size_t len;
        uint8_t id;
    } known[] = {
        { LIT("host"), HTTP1_H_HOST },
        { LIT("content-length"), HTTP1_H_CONTENT_LENGTH },
        { LIT("transfer-encoding"), HTTP1_H_TRANSFER_ENCODING },
        { LIT("connection"), HTTP1_H_CONNECTION },
        { LIT("keep-alive"), HTTP1_H_KEEP_ALIVE },
        { LIT("proxy-connection"), HTTP1_H_PROXY_CONNECTION },
        { LIT("te"), HTTP1_H_TE },
        { LIT("trailer"), HTTP1_H_TRAILER },
        { LIT("upgrade"), HTTP1_H_UPGRADE },
        { LIT("expect"), HTTP1_H_EXPECT },
    };
    /* Most names are none of these; the length test rejects them cheaply. */
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (known[i].len == n && ieq(p, n, known[i].name, n))
            return known[i].id;
    return HTTP1_H_OTHER;
}

/* "Content_Length", "Transfer_Encoding": some upstream stacks (CGI, WSGI,
 * Rack) fold '_' into '-', so such a name could reach them as a second,
 * unchecked framing header. */
static bool lookalike_name(const char *p, size_t n)
{
    static const struct {
        const char *name;
        size_t len;
    } framing[] = { { LIT("content-length") }, { LIT("transfer-encoding") } };
    for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++) {
        if (framing[i].len != n || !memchr(p, '_', n))
            continue;
        size_t k = 0;
        while (k < n && (p[k] == '_' ? '-' : lower((uint8_t)p[k])) == framing[i].name[k])
            k++;
        if (k == n)
            return true;
    }
    return false;
}

static bool id_is_hop(uint8_t id)
{
    switch (id) {
    case HTTP1_H_CONNECTION:
    case HTTP1_H_KEEP_ALIVE:
    case HTTP1_H_PROXY_CONNECTION:
    case HTTP1_H_TE:
    case HTTP1_H_TRAILER:
    case HTTP1_H_TRANSFER_ENCODING:
    case HTTP1_H_UPGRADE:
        return true;
    default:
        return false;
    }
}

/* Next member of a comma-separated list starting at *i, OWS trimmed; empty
 * members come back with len 0. Returns false at the end of the value. */
static bool list_next(const struct http1_span *v, size_t *i, struct http1_span *m)
{
    if (*i > v->len)
        return false;
    const char *p = v->p;
    size_t a = *i, b;
    const char *comma = a < v->len ? memchr(p + a, ',', v->len - a) : NULL;
    b = comma ? (size_t)(comma - p) : v->len;
    *i = b + 1;
    while (a < b && is_ows(p[a]))
        a++;
    while (b > a && is_ows(p[b - 1]))
        b--;
    m->p = p + a;
    m->len = b - a;
    return true;
}

static bool all_tchar(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!IS(p[i], C_TCHAR))
            return false;
    return n > 0;
}

static int on_content_length(const struct http1_span *v, struct facts *f, struct err *e)
{
    struct http1_span m;
    size_t i = 0;
    while (list_next(v, &i, &m)) {
        int64_t n = 0;
        if (m.len == 0)
            return fail(e, 400, "invalid Content-Length");
        for (size_t k = 0; k < m.len; k++) {
            if (!is_digit(m.p[k]))
                return fail(e, 400, "invalid Content-Length");
            int d = m.p[k] - '0';
            if (n > (INT64_MAX - d) / 10)
                return fail(e, 400, "Content-Length overflow");
            n = n * 10 + d;
        }
        if (f->content_length >= 0 && f->content_length != n)
            return fail(e, 400, "conflicting Content-Length");
        f->content_length = n;
    }
    return 0;
}

static int on_transfer_encoding(const struct http1_span *v, struct facts *f, struct err *e)
{
    struct http1_span m;
    size_t i = 0;
    /* Quoted parameters could hide commas; no coding we accept has any. */
    if (memchr(v->p, '"', v->len))
        return fail(e, 400, "invalid Transfer-Encoding");
    f->te = true;
    while (list_next(v, &i, &m)) {
        size_t t = 0;
        while (t < m.len && IS(m.p[t], C_TCHAR))
            t++;
        size_t k = t;
        while (k < m.len && is_ows(m.p[k]))
            k++;
        if (t == 0 || (k < m.len && m.p[k] != ';'))
            return fail(e, 400, "invalid Transfer-Encoding");
        if (ieq(m.p, t, LIT("chunked"))) {
            if (k < m.len)
                return fail(e, 400, "chunked with parameters");
            if (f->te_chunked)
                return fail(e, 400, "chunked applied twice");
            f->te_chunked = f->te_last_chunked = true;
        } else {
            if (f->te_chunked)
                return fail(e, 400, "chunked is not the final coding");
            f->te_other = true;
            f->te_last_chunked = false;
        }
    }
    return 0;
}

static int on_connection(const struct http1_span *v, struct facts *f, struct err *e)
{
    struct http1_span m;
    size_t i = 0;
    while (list_next(v, &i, &m)) {
        if (m.len == 0)
            continue;
        if (!all_tchar(m.p, m.len))
            return fail(e, 400, "invalid Connection");
        if (ieq(m.p, m.len, LIT("close")))
            f->conn_close = true;
        else if (ieq(m.p, m.len, LIT("keep-alive")))
            f->conn_keep_alive = true;
        else if (ieq(m.p, m.len, LIT("upgrade")))
            f->conn_upgrade = true;
        else if (ieq(m.p, m.len, LIT("host")) || ieq(m.p, m.len, LIT("content-length")))
            /* Dropping these as hop-by-hop would change routing or framing. */
            return fail(e, 400, "Connection names an end-to-end field");
        else
            f->conn_other = true;
    }
    return 0;
}

/* uri-host [":" port], with reg-name narrowed to DNS-ish characters and
 * IP-literals to IPv6 addresses: the proxy routes on this value. */
static bool host_valid(const char *p, size_t n)
{
    size_t i = 0;
    if (n == 0)
        return false; /* RFC 9110 4.2.2: an http(s) URI's host is never empty */
    if (p[0] == '[') {
        for (i = 1; i < n && IS(p[i], C_IPV6); i++)
            ;
        if (i == 1 || i == n || p[i] != ']')
            return false;
        i++;
    } else {
        while (i < n && IS(p[i], C_HOST))
            i++;
        if (i == 0)
            return false;
    }
    if (i == n)
        return true;
    if (p[i] != ':')
        return false;
    unsigned port = 0;
    size_t d = ++i;
    while (i < n && is_digit(p[i]) && i - d < 5)
        port = port * 10 + (unsigned)(p[i++] - '0');
    return i == n && port <= 65535; /* an empty port is the default (RFC 3986 3.2.3) */
}

static int on_field(struct http1_header *h, bool request, struct facts *f, struct err *e)
{
    switch (h->id) {
    case HTTP1_H_HOST:
        if (!request)
            return 0;
        if (++f->hosts > 1)
            return fail(e, 400, "duplicate Host");
        if (!host_valid(h->value.p, h->value.len))
            return fail(e, 400, "invalid Host");
        f->host = h->value;
        return 0;
    case HTTP1_H_CONTENT_LENGTH:
        return on_content_length(&h->value, f, e);
    case HTTP1_H_TRANSFER_ENCODING:
        return on_transfer_encoding(&h->value, f, e);
    case HTTP1_H_CONNECTION:
        return on_connection(&h->value, f, e);
    case HTTP1_H_UPGRADE:
        f->upgrade = true;
        return 0;
    case HTTP1_H_EXPECT: {
        /* A list (RFC 9110 10.1.1): other expectations are ignored. */
        struct http1_span m;
        for (size_t i = 0; list_next(&h->value, &i, &m);)
            if (ieq(m.p, m.len, LIT("100-continue")))
                f->expect_continue = true;
        return 0;
    }
    default:
        return 0;
    }
}

/* Marks the fields a Connection header names as hop-by-hop. */
static void mark_connection_options(struct http1_header *hdrs, unsigned n)
{
    for (unsigned c = 0; c < n; c++) {
        if (hdrs[c].id != HTTP1_H_CONNECTION)
            continue;
        struct http1_span m;
        size_t i = 0;
        while (list_next(&hdrs[c].value, &i, &m)) {
            if (m.len == 0)
                continue;
            for (unsigned k = 0; k < n; k++)
                if (!hdrs[k].hop && ieq(hdrs[k].name.p, hdrs[k].name.len, m.p, m.len))
                    hdrs[k].hop = true;
        }
    }
}

/* Parses the field lines in buf[from, end), end being the offset of the
 * closing empty line. The scanner guaranteed every line there ends in CRLF,
 * so the loops below always stop at a CR before end. */
static int parse_fields(const char *buf, size_t from, size_t end, bool request,
                        struct http1_header *hdrs, unsigned *n_out, struct facts *f,
                        struct err *e)
{
    unsigned n = 0;
    size_t i = from;
    while (i < end) {
        size_t k = i;
        while (IS(buf[k], C_TCHAR))
            k++;
        if (buf[k] != ':') {
            if (k > i)
                return fail(e, 400, is_ows(buf[k]) ? "whitespace before colon"
                                                   : "invalid header name");
            if (is_ows(buf[k]))
                return fail(e, 400, n ? "obsolete line folding" : "whitespace before first field");
            return fail(e, 400, "invalid header name");
        }
        if (k == i)
            return fail(e, 400, "empty header name");
        if (n == HTTP1_MAX_HEADERS)
            return fail(e, 431, "too many header fields");
        struct http1_header *h = &hdrs[n++];
        h->name.p = buf + i;
        h->name.len = k - i;
        k++;
        while (is_ows(buf[k]))
            k++;
        size_t v = k;
        while (IS(buf[k], C_VALUE))
            k++;
        if (buf[k] != '\r' || buf[k + 1] != '\n')
            return fail(e, 400, "invalid header value");
        size_t ve = k;
        while (ve > v && is_ows(buf[ve - 1]))
            ve--;
        h->value.p = buf + v;
        h->value.len = ve - v;
        h->id = header_id(h->name.p, h->name.len);
        if (h->id == HTTP1_H_OTHER && lookalike_name(h->name.p, h->name.len))
            return fail(e, 400, "underscore in a framing header name");
        h->hop = id_is_hop(h->id);
        if (on_field(h, request, f, e) != 0)
            return -1;
        i = k + 2;
    }
    if (f->conn_other)
        mark_connection_options(hdrs, n);
    *n_out = n;
    return 0;
}

static unsigned count_hop(const struct http1_header *hdrs, unsigned n)
{
    unsigned c = 0;
    for (unsigned i = 0; i < n; i++)
        c += hdrs[i].hop;
    return c;
}

/* Framing faults shared by requests and responses (RFC 9112 6.1, 6.3). */
static int check_framing(const struct facts *f, int minor, struct err *e)
{
    if (!f->te)
        return 0;
    if (minor == 0)
        return fail(e, 400, "Transfer-Encoding in HTTP/1.0");
    if (f->content_length >= 0)
        return fail(e, 400, "both Content-Length and Transfer-Encoding");
    if (!f->te_last_chunked)
        return fail(e, 400, "chunked is not the final coding");
    if (f->te_other)
        return fail(e, 501, "unsupported transfer coding");
    return 0;
}

static void facts_init(struct facts *f)
{
    memset(f, 0, sizeof(*f));
    f->content_length = -1;
}

/* "HTTP/d.d" at p; 1 when it is 1.0 or 1.1 (minor set), 0 for another
 * HTTP/d.d, -1 for anything else. */
static int parse_version(const char *p, size_t n, int *minor)
{
    if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || !is_digit(p[5]) || p[6] != '.' || !is_digit(p[7]))
        return -1;
    if (p[5] != '1' || p[7] > '1')
        return 0;
    *minor = p[7] - '0';
    return 1;
}

/* ---- requests ---------------------------------------------------------- */

static enum http1_method method_id(const char *p, size_t n)
{
    static const struct {
        const char *name;
        size_t len;
        enum http1_method m;
    } known[] = {
        { LIT("GET"), HTTP1_M_GET },       { LIT("HEAD"), HTTP1_M_HEAD },
        { LIT("POST"), HTTP1_M_POST },     { LIT("PUT"), HTTP1_M_PUT },
        { LIT("DELETE"), HTTP1_M_DELETE }, { LIT("PATCH"), HTTP1_M_PATCH },
        { LIT("OPTIONS"), HTTP1_M_OPTIONS }, { LIT("CONNECT"), HTTP1_M_CONNECT },
        { LIT("TRACE"), HTTP1_M_TRACE },
    };
    /* Methods are case-sensitive (RFC 9110 9.1). */
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (known[i].len == n && memcmp(known[i].name, p, n) == 0)
            return known[i].m;
    return HTTP1_M_OTHER;
}

/* absolute-form: "http(s)://" authority [ "/" ... ]. The authority becomes
 * the host (RFC 9112 3.2.2); userinfo is refused outright. */
static int parse_absolute(struct http1_request *req, const char *p, size_t n, struct err *e)
{
    size_t s;
    if (n >= 7 && ieq(p, 7, LIT("http://")))
        s = 7;
    else if (n >= 8 && ieq(p, 8, LIT("https://")))
        s = 8;
    else
        return fail(e, 400, "invalid request target");
    size_t a = s;
    while (a < n && p[a] != '/' && p[a] != '?')
        a++;
    if (a == s || (a < n && p[a] != '/') || !host_valid(p + s, a - s))
        return fail(e, 400, "invalid request target");
    req->absolute_form = true;
    req->host.p = p + s;
    req->host.len = a - s;
    req->path.p = p + a;
    req->path.len = n - a;
    return 0;
}

static int parse_target(struct http1_request *req, struct err *e)
{
    const char *p = req->target.p;
    size_t n = req->target.len;
    req->absolute_form = false;
    req->host.p = NULL;
    req->host.len = 0;
    req->path = req->target;
    if (p[0] == '/')
        return 0;
    if (n == 1 && p[0] == '*')
        return req->method == HTTP1_M_OPTIONS ? 0 : fail(e, 400, "asterisk-form without OPTIONS");
    return parse_absolute(req, p, n, e);
}

/* method SP request-target SP HTTP-version, CRLF excluded from n. */
static int parse_request_line(struct http1_request *req, const char *p, size_t n, struct err *e)
{
    size_t i = 0;
    while (i < n && IS(p[i], C_TCHAR))
        i++;
    if (i == 0 || i == n || p[i] != ' ')
        return fail(e, 400, "invalid method");
    req->method_name.p = p;
    req->method_name.len = i;
    req->method = method_id(p, i);
    size_t t = ++i;
    while (i < n && IS(p[i], C_TARGET))
        i++;
    if (i == t || i == n || p[i] != ' ')
        return fail(e, 400, "invalid request target");
    req->target.p = p + t;
    req->target.len = i - t;
    i++;
    int v = parse_version(p + i, n - i, &req->minor);
    if (v < 0)
        return fail(e, 400, "invalid HTTP version");
    if (v == 0)
        return fail(e, 505, "HTTP version not supported");
    if (req->method == HTTP1_M_CONNECT)
        return fail(e, 501, "CONNECT not supported");
    return parse_target(req, e);
}

static int request_facts(struct http1_request *req, const struct facts *f, struct err *e)
{
    if (check_framing(f, req->minor, e) != 0)
        return -1;
    if (req->minor == 1 && f->hosts == 0)
        return fail(e, 400, "missing Host");
    if (req->absolute_form) {
        if (f->hosts && !ieq(f->host.p, f->host.len, req->host.p, req->host.len))
            return fail(e, 400, "Host does not match target");
    } else if (f->hosts) {
        req->host = f->host;
    }
    req->content_length = f->content_length;
    req->chunked = f->te;
    req->body = f->te ? HTTP1_BODY_CHUNKED
              : f->content_length >= 0 ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
    req->keep_alive = req->minor == 1 ? !f->conn_close : f->conn_keep_alive && !f->conn_close;
    /* RFC 9110 7.8 and 10.1.1: both are ignored in HTTP/1.0 requests. */
    req->upgrade = req->minor == 1 && f->conn_upgrade && f->upgrade;
    req->expect_continue = req->minor == 1 && f->expect_continue;
    return 0;
}

void http1_request_init(struct http1_request *req)
{
    memset(&req->_scan, 0, sizeof(req->_scan));
    req->error_status = 0;
    req->error = NULL;
}

static enum http1_result request_fail(struct http1_request *req, const struct err *e)
{
    req->error_status = e->status;
    req->error = e->reason;
    return HTTP1_ERROR;
}

enum http1_result http1_parse_request(const char *buf, size_t len, const struct http1_limits *lim,
                                      struct http1_request *req)
{
    struct http1_limits l;
    struct err e;
    struct facts f;
    struct http1__scan *s = &req->_scan;
    bool line_done = false;
    int rc;

    limits_get(lim, &l);
    while ((rc = scan_head(s, buf, len, &l, &scan_req, &e)) == SCAN_START_LINE) {
        size_t lead = buf[0] == '\r' ? 2 : 0;
        if (parse_request_line(req, buf + lead, s->start_end - 2 - lead, &e) != 0)
            return request_fail(req, &e);
        line_done = true;
    }
    if (rc == SCAN_ERROR)
        return request_fail(req, &e);
    if (rc == SCAN_MORE)
        return HTTP1_INCOMPLETE;
    if (!line_done) {
        size_t lead = buf[0] == '\r' ? 2 : 0;
        if (parse_request_line(req, buf + lead, s->start_end - 2 - lead, &e) != 0)
            return request_fail(req, &e);
    }
    facts_init(&f);
    if (parse_fields(buf, s->start_end, s->head_len - 2, true, req->headers, &req->n_headers,
                     &f, &e) != 0 ||
        request_facts(req, &f, &e) != 0)
        return request_fail(req, &e);
    req->n_hop = count_hop(req->headers, req->n_headers);
    req->head_len = s->head_len;
    return HTTP1_OK;
}

/* ---- responses --------------------------------------------------------- */

/* HTTP-version SP 3DIGIT [SP reason-phrase]; a missing reason is tolerated
 * since clients ignore it anyway (RFC 9112 4). */
static int parse_status_line(struct http1_response *resp, const char *p, size_t n, struct err *e)
{
    if (n < 12 || p[8] != ' ' || parse_version(p, 8, &resp->minor) <= 0)
        return fail(e, 502, "invalid status line");
    if (!is_digit(p[9]) || !is_digit(p[10]) || !is_digit(p[11]))
        return fail(e, 502, "invalid status code");
    resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (resp->status < 100 || resp->status > 599)
        return fail(e, 502, "invalid status code");
    if (resp->status == 101 && resp->minor == 0)
        return fail(e, 502, "101 in HTTP/1.0");
    resp->reason.p = p + n;
    resp->reason.len = 0;
    if (n == 12)
        return 0;
    if (p[12] != ' ')
        return fail(e, 502, "invalid status line");
    for (size_t i = 13; i < n; i++)
        if (!IS(p[i], C_VALUE))
            return fail(e, 502, "invalid reason phrase");
    resp->reason.p = p + 13;
    resp->reason.len = n - 13;
    return 0;
}

static enum http1_body response_body(const struct http1_response *resp, enum http1_method m,
                                     const struct facts *f)
{
    int st = resp->status;
    if (st == 101 || (m == HTTP1_M_CONNECT && st >= 200 && st < 300))
        return HTTP1_BODY_TUNNEL;
    if (m == HTTP1_M_HEAD || st < 200 || st == 204 || st == 304)
        return HTTP1_BODY_NONE;
    if (f->te)
        return HTTP1_BODY_CHUNKED;
    if (f->content_length >= 0)
        return HTTP1_BODY_LENGTH;
    return HTTP1_BODY_CLOSE;
}

static int response_facts(struct http1_response *resp, enum http1_method m, const struct facts *f,
                          struct err *e)
{
    /* check_framing refuses codings other than chunked, which a proxy
     * relaying raw chunks could not carry anyway. */
    if (check_framing(f, resp->minor, e) != 0)
        return -1;
    resp->content_length = f->content_length;
    resp->chunked = f->te;
    resp->body = response_body(resp, m, f);
    resp->switching = resp->status == 101;
    resp->keep_alive = resp->minor == 1 ? !f->conn_close : f->conn_keep_alive && !f->conn_close;
    if (resp->body == HTTP1_BODY_CLOSE || resp->body == HTTP1_BODY_TUNNEL)
        resp->keep_alive = false;
    return 0;
}

void http1_response_init(struct http1_response *resp)
{
    memset(&resp->_scan, 0, sizeof(resp->_scan));
    resp->error_status = 0;
    resp->error = NULL;
}

static enum http1_result response_fail(struct http1_response *resp, const struct err *e)
{
    resp->error_status = 502;
    resp->error = e->reason;
    return HTTP1_ERROR;
}

enum http1_result http1_parse_response(const char *buf, size_t len, const struct http1_limits *lim,
                                       enum http1_method req_method, struct http1_response *resp)
{
    struct http1_limits l;
    struct err e;
    struct facts f;
    struct http1__scan *s = &resp->_scan;
    bool line_done = false;
    int rc;

    limits_get(lim, &l);
    while ((rc = scan_head(s, buf, len, &l, &scan_resp, &e)) == SCAN_START_LINE) {
        if (parse_status_line(resp, buf, s->start_end - 2, &e) != 0)
            return response_fail(resp, &e);
        line_done = true;
    }
    if (rc == SCAN_ERROR)
        return response_fail(resp, &e);
    if (rc == SCAN_MORE)
        return HTTP1_INCOMPLETE;
    if (!line_done && parse_status_line(resp, buf, s->start_end - 2, &e) != 0)
        return response_fail(resp, &e);
    facts_init(&f);
    if (parse_fields(buf, s->start_end, s->head_len - 2, false, resp->headers, &resp->n_headers,
                     &f, &e) != 0 ||
        response_facts(resp, req_method, &f, &e) != 0)
        return response_fail(resp, &e);
    resp->n_hop = count_hop(resp->headers, resp->n_headers);
    resp->head_len = s->head_len;
    return HTTP1_OK;
}

/* ---- chunked bodies ---------------------------------------------------- */

enum {
    CK_SIZE0,          /* first hex digit of a chunk size */
    CK_SIZE,           /* more hex digits */
    CK_SIZE_BWS,       /* BWS after the size: only ";" may follow */
    CK_EXT_PRE_NAME,   /* after ";" */
    CK_EXT_NAME,
    CK_EXT_POST_NAME,  /* BWS after a name */
    CK_EXT_PRE_VAL,    /* after "=" */
    CK_EXT_VAL,        /* token value */
    CK_EXT_QVAL,       /* inside a quoted value */
    CK_EXT_QPAIR,      /* after a backslash */
    CK_EXT_AFTER_Q,    /* after the closing quote */
    CK_EXT_POST_VAL,   /* BWS after a value: only ";" may follow */
    CK_SIZE_LF,
    CK_DATA,
    CK_DATA_CR,
    CK_DATA_LF,
    CK_TR_START,       /* start of a trailer line, or the closing CRLF */
    CK_TR_NAME,
    CK_TR_VALUE,
    CK_TR_LF,
    CK_END_LF,
    CK_DONE,
    CK_ERROR,
};

void http1_chunked_init(struct http1_chunked *st, const struct http1_chunked_limits *lim)
{
    memset(st, 0, sizeof(*st));
    if (lim) {
        st->lim = *lim;
    } else {
        st->lim.max_chunk_line = 4096;
        st->lim.max_trailer_bytes = 8192;
    }
    st->_state = CK_SIZE0;
}

static int hexval(uint8_t c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Trailer fields a recipient could merge into the header section and thereby
 * change framing or routing after the fact. */
static bool trailer_forbidden(const struct http1_chunked *st)
{
    const char *n = st->_name;
    size_t l = st->_name_len;
    return (l == 4 && memcmp(n, "host", 4) == 0) ||
           (l == 14 && memcmp(n, "content-length", 14) == 0) ||
           (l == 17 && memcmp(n, "transfer-encoding", 17) == 0);
}

/* One byte of a chunk-size line: size, extensions, CR. Returns the next
 * state, or CK_ERROR with st->error set. */
static int ck_size_line(struct http1_chunked *st, uint8_t c)
{
    int s = st->_state;
    if (c != '\r' && ++st->_line > st->lim.max_chunk_line) {
        st->error = "chunk size line too long";
        return CK_ERROR;
    }
    switch (s) {
    case CK_SIZE0:
    case CK_SIZE:
        if (IS(c, C_HEX)) {
            if (st->_remaining > (INT64_MAX >> 4)) {
                st->error = "chunk size too large";
                return CK_ERROR;
            }
            st->_remaining = (st->_remaining << 4) | hexval(c);
            return CK_SIZE;
        }
        if (s == CK_SIZE0)
            break;
        if (c == '\r')
            return CK_SIZE_LF;
        if (c == ';')
            return CK_EXT_PRE_NAME;
        if (is_ows((char)c))
            return CK_SIZE_BWS;
        break;
    case CK_SIZE_BWS:
    case CK_EXT_POST_VAL:
        if (is_ows((char)c))
            return s;
        if (c == ';')
            return CK_EXT_PRE_NAME;
        break;
    case CK_EXT_PRE_NAME:
        if (is_ows((char)c))
            return s;
        if (IS(c, C_TCHAR))
            return CK_EXT_NAME;
        break;
    case CK_EXT_NAME:
        if (IS(c, C_TCHAR))
            return s;
        if (c == '\r')
            return CK_SIZE_LF;
        /* fallthrough */
    case CK_EXT_POST_NAME:
        if (is_ows((char)c))
            return CK_EXT_POST_NAME;
        if (c == '=')
            return CK_EXT_PRE_VAL;
        if (c == ';')
            return CK_EXT_PRE_NAME;
        break;
    case CK_EXT_PRE_VAL:
        if (is_ows((char)c))
            return s;
        if (c == '"')
            return CK_EXT_QVAL;
        if (IS(c, C_TCHAR))
            return CK_EXT_VAL;
        break;
    case CK_EXT_VAL:
        if (IS(c, C_TCHAR))
            return s;
        /* fallthrough */
    case CK_EXT_AFTER_Q:
        if (c == '\r')
            return CK_SIZE_LF;
        if (c == ';')
            return CK_EXT_PRE_NAME;
        if (is_ows((char)c))
            return CK_EXT_POST_VAL;
        break;
    case CK_EXT_QVAL:
        if (c == '"')
            return CK_EXT_AFTER_Q;
        if (c == '\\')
            return CK_EXT_QPAIR;
        if (IS(c, C_QDTEXT))
            return s;
        break;
    case CK_EXT_QPAIR:
        if (IS(c, C_VALUE))
            return CK_EXT_QVAL;
        break;
    }
    st->error = s == CK_SIZE0 || s == CK_SIZE ? "invalid chunk size" : "invalid chunk extension";
    return CK_ERROR;
}

/* One byte of the trailer section (RFC 9112 7.1.2). */
static int ck_trailer(struct http1_chunked *st, uint8_t c)
{
    if (++st->_line > st->lim.max_trailer_bytes) {
        st->error = "trailer section too large";
        return CK_ERROR;
    }
    switch (st->_state) {
    case CK_TR_START:
        if (c == '\r')
            return CK_END_LF;
        if (!IS(c, C_TCHAR))
            break;
        st->_name_len = 0;
        /* fallthrough */
    case CK_TR_NAME:
        if (c == ':') {
            if (trailer_forbidden(st)) {
                st->error = "forbidden trailer field";
                return CK_ERROR;
            }
            return CK_TR_VALUE;
        }
        if (!IS(c, C_TCHAR))
            break;
        if (st->_name_len < sizeof(st->_name))
            st->_name[st->_name_len] = (char)lower(c);
        if (st->_name_len <= sizeof(st->_name))
            st->_name_len++;
        return CK_TR_NAME;
    case CK_TR_VALUE:
        if (IS(c, C_VALUE))
            return CK_TR_VALUE;
        if (c == '\r')
            return CK_TR_LF;
        break;
    case CK_TR_LF:
    case CK_END_LF:
        if (c != '\n')
            break;
        if (st->_state == CK_END_LF)
            return CK_DONE;
        st->n_trailers++;
        return CK_TR_START;
    }
    st->error = "invalid trailer section";
    return CK_ERROR;
}

static int ck_step(struct http1_chunked *st, uint8_t c)
{
    switch (st->_state) {
    case CK_SIZE_LF:
        if (c != '\n') {
            st->error = "bare CR in chunk size line";
            return CK_ERROR;
        }
        st->_line = 0;
        return st->_remaining ? CK_DATA : CK_TR_START;
    case CK_DATA_CR:
        if (c != '\r') {
            st->error = "missing CRLF after chunk data";
            return CK_ERROR;
        }
        return CK_DATA_LF;
    case CK_DATA_LF:
        if (c != '\n') {
            st->error = "missing CRLF after chunk data";
            return CK_ERROR;
        }
        return CK_SIZE0;
    case CK_TR_START:
    case CK_TR_NAME:
    case CK_TR_VALUE:
    case CK_TR_LF:
    case CK_END_LF:
        return ck_trailer(st, c);
    default:
        return ck_size_line(st, c);
    }
}

enum http1_result http1_chunked_feed(struct http1_chunked *st, const char *buf, size_t len,
                                     size_t *consumed, struct http1_span *data)
{
    size_t i = 0;
    if (data) {
        data->p = buf;
        data->len = 0;
    }
    *consumed = 0;
    if (st->_state == CK_DONE)
        return HTTP1_OK;
    if (st->_state == CK_ERROR)
        return HTTP1_ERROR;
    while (i < len) {
        if (st->_state == CK_DATA) {
            size_t take = len - i;
            if ((uint64_t)st->_remaining < take)
                take = (size_t)st->_remaining;
            if (data) {
                data->p = buf + i;
                data->len = take;
            }
            i += take;
            st->_remaining -= (int64_t)take;
            st->payload += take;
            if (st->_remaining == 0)
                st->_state = CK_DATA_CR;
            if (data)
                break;
            continue;
        }
        int next = ck_step(st, (uint8_t)buf[i++]);
        if (next == CK_ERROR) {
            st->_state = CK_ERROR;
            *consumed = i;
            return HTTP1_ERROR;
        }
        if (next == CK_SIZE0)
            st->_line = 0;
        st->_state = next;
        if (next == CK_DONE) {
            *consumed = i;
            return HTTP1_OK;
        }
    }
    *consumed = i;
    return HTTP1_INCOMPLETE;
}

const char *http1_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}
