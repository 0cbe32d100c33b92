/* Fuzzes edge/http1.c. Input: byte 0 picks the options (limits, the method a
 * response answers, payload mode), byte 1 a split point, the rest is the
 * message. Each parser runs on exact-sized heap copies (so ASan flags any
 * read past the end) once whole and once in two feeds into a moved buffer,
 * plus byte by byte for small inputs; every run must agree, and the outputs
 * must satisfy the invariants below, or the target aborts. A request or
 * response that parses is followed into its chunked body and into the next
 * pipelined head. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/http1.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p);
    memcpy(p, s, n);
    return p;
}

static long off(const char *base, struct http1_span sp)
{
    return sp.p ? (long)(sp.p - base) : -1;
}

static void check_span(const char *base, size_t len, struct http1_span sp)
{
    if (sp.p)
        CHECK(sp.p >= base && sp.len <= len && (size_t)(sp.p - base) <= len - sp.len);
}

static void same_span(const char *ba, struct http1_span a, const char *bb, struct http1_span b)
{
    CHECK(off(ba, a) == off(bb, b) && a.len == b.len);
}

static void check_headers(const char *buf, size_t head_len, const struct http1_header *h,
                          unsigned n, unsigned n_hop)
{
    unsigned hop = 0;
    CHECK(n <= HTTP1_MAX_HEADERS);
    for (unsigned i = 0; i < n; i++) {
        check_span(buf, head_len, h[i].name);
        check_span(buf, head_len, h[i].value);
        CHECK(h[i].name.len > 0);
        hop += h[i].hop;
    }
    CHECK(hop == n_hop);
}

static void same_headers(const char *ba, const struct http1_header *a, const char *bb,
                         const struct http1_header *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        same_span(ba, a[i].name, bb, b[i].name);
        same_span(ba, a[i].value, bb, b[i].value);
        CHECK(a[i].id == b[i].id && a[i].hop == b[i].hop);
    }
}

/* ---- chunked ------------------------------------------------------------ */

struct ck_run {
    enum http1_result r;
    size_t consumed;
    uint64_t payload;
    unsigned trailers;
};

/* Feeds s[0, n) in two pieces split at split; with spans, one payload run
 * per call, checking each run lies inside what the call consumed. */
static struct ck_run ck_feed(const char *s, size_t n, size_t split, bool spans,
                             const struct http1_chunked_limits *lim)
{
    struct http1_chunked st;
    struct ck_run o = { HTTP1_INCOMPLETE, 0, 0, 0 };
    size_t cuts[2] = { split, n }, at = 0;
    http1_chunked_init(&st, lim);
    for (int k = 0; k < 2 && o.r == HTTP1_INCOMPLETE; k++) {
        size_t end = cuts[k];
        while (at < end && o.r == HTTP1_INCOMPLETE) {
            char *piece = dup_n(s + at, end - at);
            struct http1_span d;
            size_t c;
            o.r = http1_chunked_feed(&st, piece, end - at, &c, spans ? &d : NULL);
            CHECK(c <= end - at);
            if (spans && d.len)
                CHECK(d.p >= piece && d.p + d.len <= piece + c);
            if (o.r == HTTP1_INCOMPLETE && !spans)
                CHECK(c == end - at);
            if (o.r == HTTP1_INCOMPLETE && spans)
                CHECK(c > 0);
            if (o.r == HTTP1_ERROR)
                CHECK(st.error);
            free(piece);
            at += c;
        }
    }
    o.consumed = at;
    o.payload = st.payload;
    o.trailers = st.n_trailers;
    return o;
}

static size_t fuzz_chunked(const char *s, size_t n, size_t split, uint8_t opt)
{
    struct http1_chunked_limits small = { 32, 64 }, *lim = (opt & 1) ? &small : NULL;
    struct ck_run a = ck_feed(s, n, n, false, lim);
    struct ck_run b = ck_feed(s, n, split, false, lim);
    struct ck_run c = ck_feed(s, n, split, true, lim);
    CHECK(a.r == b.r && a.consumed == b.consumed && a.payload == b.payload &&
          a.trailers == b.trailers);
    CHECK(a.r == c.r && a.consumed == c.consumed && a.payload == c.payload);
    CHECK(a.payload <= a.consumed);
    return a.r == HTTP1_OK ? a.consumed : 0;
}

/* ---- requests ----------------------------------------------------------- */

static void check_request(const char *buf, size_t n, const struct http1_request *r)
{
    CHECK(r->head_len > 0 && r->head_len <= n);
    check_span(buf, r->head_len, r->method_name);
    check_span(buf, r->head_len, r->target);
    check_span(buf, r->head_len, r->path);
    check_span(buf, r->head_len, r->host);
    CHECK(r->minor == 0 || r->minor == 1);
    CHECK(r->minor == 0 || r->host.p);
    CHECK(r->content_length >= -1);
    CHECK(!r->chunked || (r->content_length == -1 && r->body == HTTP1_BODY_CHUNKED));
    CHECK(r->body == HTTP1_BODY_NONE || r->body == HTTP1_BODY_LENGTH || r->body == HTTP1_BODY_CHUNKED);
    CHECK(r->method != HTTP1_M_CONNECT);
    check_headers(buf, r->head_len, r->headers, r->n_headers, r->n_hop);
}

static void same_request(const char *ba, const struct http1_request *a, const char *bb,
                         const struct http1_request *b)
{
    CHECK(a->head_len == b->head_len && a->method == b->method && a->minor == b->minor);
    same_span(ba, a->method_name, bb, b->method_name);
    same_span(ba, a->target, bb, b->target);
    same_span(ba, a->path, bb, b->path);
    same_span(ba, a->host, bb, b->host);
    CHECK(a->absolute_form == b->absolute_form && a->body == b->body &&
          a->content_length == b->content_length && a->chunked == b->chunked &&
          a->keep_alive == b->keep_alive && a->upgrade == b->upgrade &&
          a->expect_continue == b->expect_continue && a->n_headers == b->n_headers &&
          a->n_hop == b->n_hop);
    same_headers(ba, a->headers, bb, b->headers, a->n_headers);
}

static void same_error(enum http1_result r, int sa, const char *ea, int sb, const char *eb)
{
    if (r != HTTP1_ERROR)
        return;
    CHECK(sa == sb && ea && eb && strcmp(ea, eb) == 0);
}

static enum http1_result fuzz_request(const char *s, size_t n, size_t split,
                                      const struct http1_limits *lim, struct http1_request *a,
                                      struct http1_request *b)
{
    char *whole = dup_n(s, n);
    http1_request_init(a);
    enum http1_result ra = http1_parse_request(whole, n, lim, a);
    if (ra == HTTP1_OK)
        check_request(whole, n, a);
    if (ra == HTTP1_ERROR)
        CHECK(a->error && (a->error_status == 400 || a->error_status == 414 ||
                           a->error_status == 431 || a->error_status == 501 ||
                           a->error_status == 505));

    /* Two feeds, the second into a different buffer. */
    char *part = dup_n(s, split);
    http1_request_init(b);
    enum http1_result rb = http1_parse_request(part, split, lim, b);
    if (rb == HTTP1_INCOMPLETE) {
        free(part);
        part = dup_n(s, n);
        rb = http1_parse_request(part, n, lim, b);
    }
    CHECK(ra == rb);
    if (ra == HTTP1_OK)
        same_request(whole, a, part, b);
    same_error(ra, a->error_status, a->error, b->error_status, b->error);
    free(part);

    if (n <= 1024) {
        enum http1_result rc = HTTP1_INCOMPLETE;
        http1_request_init(b);
        for (size_t k = 0; k <= n && rc == HTTP1_INCOMPLETE; k++)
            rc = http1_parse_request(whole, k, lim, b);
        CHECK(ra == rc);
        if (ra == HTTP1_OK)
            same_request(whole, a, whole, b);
        same_error(ra, a->error_status, a->error, b->error_status, b->error);
    }
    free(whole);
    return ra;
}

/* ---- responses ---------------------------------------------------------- */

static void check_response(const char *buf, size_t n, enum http1_method m,
                           const struct http1_response *r)
{
    CHECK(r->head_len > 0 && r->head_len <= n);
    CHECK(r->status >= 100 && r->status <= 599);
    check_span(buf, r->head_len, r->reason);
    CHECK(r->content_length >= -1);
    CHECK(!r->chunked || r->content_length == -1);
    CHECK(r->switching == (r->status == 101));
    CHECK(r->body != HTTP1_BODY_CLOSE || !r->keep_alive);
    if (m == HTTP1_M_HEAD && r->status != 101)
        CHECK(r->body == HTTP1_BODY_NONE);
    check_headers(buf, r->head_len, r->headers, r->n_headers, r->n_hop);
}

static void same_response(const char *ba, const struct http1_response *a, const char *bb,
                          const struct http1_response *b)
{
    CHECK(a->head_len == b->head_len && a->minor == b->minor && a->status == b->status &&
          a->body == b->body && a->content_length == b->content_length &&
          a->chunked == b->chunked && a->keep_alive == b->keep_alive &&
          a->switching == b->switching && a->n_headers == b->n_headers && a->n_hop == b->n_hop);
    same_span(ba, a->reason, bb, b->reason);
    same_headers(ba, a->headers, bb, b->headers, a->n_headers);
}

static enum http1_result fuzz_response(const char *s, size_t n, size_t split,
                                       const struct http1_limits *lim, enum http1_method m,
                                       struct http1_response *a, struct http1_response *b)
{
    char *whole = dup_n(s, n);
    http1_response_init(a);
    enum http1_result ra = http1_parse_response(whole, n, lim, m, a);
    if (ra == HTTP1_OK)
        check_response(whole, n, m, a);
    if (ra == HTTP1_ERROR)
        CHECK(a->error && a->error_status == 502);

    char *part = dup_n(s, split);
    http1_response_init(b);
    enum http1_result rb = http1_parse_response(part, split, lim, m, b);
    if (rb == HTTP1_INCOMPLETE) {
        free(part);
        part = dup_n(s, n);
        rb = http1_parse_response(part, n, lim, m, b);
    }
    CHECK(ra == rb);
    if (ra == HTTP1_OK)
        same_response(whole, a, part, b);
    same_error(ra, a->error_status, a->error, b->error_status, b->error);
    free(part);
    free(whole);
    return ra;
}

/* ---- driver ------------------------------------------------------------- */

static void follow_requests(const char *s, size_t n, size_t split, const struct http1_limits *lim,
                            uint8_t opt, struct http1_request *a, struct http1_request *b)
{
    /* A few pipelined messages are enough to reach every path. */
    for (int i = 0; i < 4 && n > 0; i++) {
        if (fuzz_request(s, n, split < n ? split : n / 2, lim, a, b) != HTTP1_OK)
            return;
        size_t at = a->head_len;
        if (a->body == HTTP1_BODY_LENGTH) {
            if ((uint64_t)a->content_length > n - at)
                return;
            at += (size_t)a->content_length;
        } else if (a->body == HTTP1_BODY_CHUNKED) {
            size_t used = fuzz_chunked(s + at, n - at, (n - at) / 2, opt);
            if (used == 0)
                return;
            at += used;
        }
        s += at;
        n -= at;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum http1_method methods[] = { HTTP1_M_GET, HTTP1_M_HEAD, HTTP1_M_POST,
                                                 HTTP1_M_CONNECT };
    if (size < 2)
        return 0;
    uint8_t opt = data[0];
    const char *s = (const char *)data + 2;
    size_t n = size - 2;
    size_t split = n * data[1] / 255;
    struct http1_limits lim;
    http1_limits_default(&lim);
    if (opt & 0x01) {
        lim.max_request_line = 40;
        lim.max_header_bytes = 120;
        lim.max_headers = 4;
    }
    struct http1_request *ra = malloc(sizeof(*ra)), *rb = malloc(sizeof(*rb));
    struct http1_response *pa = malloc(sizeof(*pa)), *pb = malloc(sizeof(*pb));
    CHECK(ra && rb && pa && pb);

    follow_requests(s, n, split, &lim, opt, ra, rb);
    enum http1_method m = methods[(opt >> 1) & 3];
    if (fuzz_response(s, n, split, &lim, m, pa, pb) == HTTP1_OK &&
        pa->body == HTTP1_BODY_CHUNKED)
        (void)fuzz_chunked(s + pa->head_len, n - pa->head_len, (n - pa->head_len) / 2, opt);
    (void)fuzz_chunked(s, n, split, opt >> 3);

    free(ra);
    free(rb);
    free(pa);
    free(pb);
    return 0;
}
