/* Tests edge/http1.c. One test per smuggling or strictness vector, with the
 * exact bytes on the wire. Every head and body goes through the parser twice:
 * in one call, and one byte at a time into a buffer that is reallocated to
 * the exact length before each call (so ASan sees any read past the end and
 * the parser must cope with a moving buffer); both must agree exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edge/http1.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- helpers ----------------------------------------------------------- */

static long off(const char *base, struct http1_span sp)
{
    return sp.p ? (long)(sp.p - base) : -1;
}

static void same_span(const char *ba, struct http1_span a, const char *bb, struct http1_span b)
{
    assert_int_equal(off(ba, a), off(bb, b));
    assert_int_equal(a.len, b.len);
}

static void same_headers(const char *ba, const struct http1_header *a, const char *bb,
                         const struct http1_header *b, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        same_span(ba, a[i].name, bb, b[i].name);
        same_span(ba, a[i].value, bb, b[i].value);
        assert_int_equal(a[i].id, b[i].id);
        assert_int_equal(a[i].hop, b[i].hop);
    }
}

static void same_request(const char *ba, const struct http1_request *a, const char *bb,
                         const struct http1_request *b)
{
    assert_int_equal(a->head_len, b->head_len);
    assert_int_equal(a->method, b->method);
    same_span(ba, a->method_name, bb, b->method_name);
    same_span(ba, a->target, bb, b->target);
    same_span(ba, a->path, bb, b->path);
    same_span(ba, a->host, bb, b->host);
    assert_int_equal(a->absolute_form, b->absolute_form);
    assert_int_equal(a->minor, b->minor);
    assert_int_equal(a->body, b->body);
    assert_int_equal(a->content_length, b->content_length);
    assert_int_equal(a->chunked, b->chunked);
    assert_int_equal(a->keep_alive, b->keep_alive);
    assert_int_equal(a->upgrade, b->upgrade);
    assert_int_equal(a->expect_continue, b->expect_continue);
    assert_int_equal(a->n_headers, b->n_headers);
    assert_int_equal(a->n_hop, b->n_hop);
    same_headers(ba, a->headers, bb, b->headers, a->n_headers);
}

static void same_response(const char *ba, const struct http1_response *a, const char *bb,
                          const struct http1_response *b)
{
    assert_int_equal(a->head_len, b->head_len);
    assert_int_equal(a->minor, b->minor);
    assert_int_equal(a->status, b->status);
    same_span(ba, a->reason, bb, b->reason);
    assert_int_equal(a->body, b->body);
    assert_int_equal(a->content_length, b->content_length);
    assert_int_equal(a->chunked, b->chunked);
    assert_int_equal(a->keep_alive, b->keep_alive);
    assert_int_equal(a->switching, b->switching);
    assert_int_equal(a->n_headers, b->n_headers);
    assert_int_equal(a->n_hop, b->n_hop);
    same_headers(ba, a->headers, bb, b->headers, a->n_headers);
}

/* Heads bigger than this are fed byte by byte in place rather than copied. */
#define COPY_MAX 9000

/* Parses s[0, n) at once into *out, then byte by byte, and checks both runs
 * agree. */
static enum http1_result parse_req(const char *s, size_t n, const struct http1_limits *lim,
                                   struct http1_request *out)
{
    http1_request_init(out);
    enum http1_result r = http1_parse_request(s, n, lim, out);

    struct http1_request *inc = malloc(sizeof(*inc));
    assert_non_null(inc);
    http1_request_init(inc);
    enum http1_result r2 = HTTP1_INCOMPLETE;
    char *copy = NULL;
    const char *cur = s;
    for (size_t k = 0; k <= n && r2 == HTTP1_INCOMPLETE; k++) {
        if (n <= COPY_MAX) {
            free(copy);
            copy = malloc(k ? k : 1);
            assert_non_null(copy);
            memcpy(copy, s, k);
            cur = copy;
        }
        r2 = http1_parse_request(cur, k, lim, inc);
    }
    assert_int_equal(r, r2);
    if (r == HTTP1_OK)
        same_request(s, out, cur, inc);
    if (r == HTTP1_ERROR) {
        assert_int_equal(out->error_status, inc->error_status);
        assert_string_equal(out->error, inc->error);
    }
    free(copy);
    free(inc);
    return r;
}

static enum http1_result parse_resp(const char *s, size_t n, enum http1_method m,
                                    struct http1_response *out)
{
    http1_response_init(out);
    enum http1_result r = http1_parse_response(s, n, NULL, m, out);

    struct http1_response *inc = malloc(sizeof(*inc));
    assert_non_null(inc);
    http1_response_init(inc);
    enum http1_result r2 = HTTP1_INCOMPLETE;
    char *copy = NULL;
    for (size_t k = 0; k <= n && r2 == HTTP1_INCOMPLETE; k++) {
        free(copy);
        copy = malloc(k ? k : 1);
        assert_non_null(copy);
        memcpy(copy, s, k);
        r2 = http1_parse_response(copy, k, NULL, m, inc);
    }
    assert_int_equal(r, r2);
    if (r == HTTP1_OK)
        same_response(s, out, copy, inc);
    if (r == HTTP1_ERROR) {
        assert_int_equal(out->error_status, inc->error_status);
        assert_string_equal(out->error, inc->error);
    }
    free(copy);
    free(inc);
    return r;
}

static struct http1_request *req_ok(const char *s, size_t n)
{
    struct http1_request *req = malloc(sizeof(*req));
    assert_non_null(req);
    assert_int_equal(parse_req(s, n, NULL, req), HTTP1_OK);
    assert_int_equal(req->head_len, n);
    return req;
}

static void req_err(const char *s, size_t n, int status)
{
    struct http1_request *req = malloc(sizeof(*req));
    assert_non_null(req);
    enum http1_result r = parse_req(s, n, NULL, req);
    if (r != HTTP1_ERROR)
        fail_msg("expected %d, got result %d for %.*s", status, r, (int)n, s);
    if (req->error_status != status)
        fail_msg("expected %d, got %d (%s) for %.*s", status, req->error_status, req->error,
                 (int)n, s);
    free(req);
}

static struct http1_response *resp_ok(const char *s, size_t n, enum http1_method m)
{
    struct http1_response *resp = malloc(sizeof(*resp));
    assert_non_null(resp);
    assert_int_equal(parse_resp(s, n, m, resp), HTTP1_OK);
    assert_int_equal(resp->head_len, n);
    return resp;
}

static void resp_err(const char *s, size_t n, enum http1_method m)
{
    struct http1_response *resp = malloc(sizeof(*resp));
    assert_non_null(resp);
    if (parse_resp(s, n, m, resp) != HTTP1_ERROR)
        fail_msg("expected 502 for %.*s", (int)n, s);
    assert_int_equal(resp->error_status, 502);
    free(resp);
}

static bool span_is(struct http1_span sp, const char *lit)
{
    return sp.p && sp.len == strlen(lit) && memcmp(sp.p, lit, sp.len) == 0;
}

#define assert_span(sp, lit) do { \
        if (!span_is((sp), (lit))) \
            fail_msg("span \"%.*s\" != \"%s\"", (int)(sp).len, (sp).p ? (sp).p : "", (lit)); \
    } while (0)

/* Result of a chunked body fed in one call or byte by byte. */
struct ck_out {
    enum http1_result r;
    size_t consumed;
    uint64_t payload;
    unsigned trailers;
    const char *error;
};

static struct ck_out ck_run(const char *s, size_t n, const struct http1_chunked_limits *lim,
                            bool bytewise)
{
    struct http1_chunked st;
    struct ck_out o = { HTTP1_INCOMPLETE, 0, 0, 0, NULL };
    http1_chunked_init(&st, lim);
    size_t step = bytewise ? 1 : (n ? n : 1);
    for (size_t i = 0; i < n && o.r == HTTP1_INCOMPLETE; i += step) {
        size_t len = n - i < step ? n - i : step, c;
        char *copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, s + i, len);
        o.r = http1_chunked_feed(&st, copy, len, &c, NULL);
        free(copy);
        assert_true(c <= len);
        if (o.r == HTTP1_INCOMPLETE)
            assert_int_equal(c, len);
        o.consumed += c;
    }
    o.payload = st.payload;
    o.trailers = st.n_trailers;
    o.error = st.error;
    return o;
}

static struct ck_out ck(const char *s, size_t n, const struct http1_chunked_limits *lim)
{
    struct ck_out a = ck_run(s, n, lim, false), b = ck_run(s, n, lim, true);
    assert_int_equal(a.r, b.r);
    assert_int_equal(a.consumed, b.consumed);
    assert_int_equal(a.payload, b.payload);
    assert_int_equal(a.trailers, b.trailers);
    if (a.error || b.error)
        assert_string_equal(a.error, b.error);
    return a;
}

/* tail: bytes after the body that must be left alone. */
static void ck_ok(const char *s, size_t n, size_t tail, uint64_t payload)
{
    struct ck_out o = ck(s, n, NULL);
    if (o.r != HTTP1_OK)
        fail_msg("chunked: result %d (%s) for %.*s", o.r, o.error ? o.error : "", (int)n, s);
    assert_int_equal(o.consumed, n - tail);
    assert_int_equal(o.payload, payload);
}

static void ck_err(const char *s, size_t n)
{
    struct ck_out o = ck(s, n, NULL);
    if (o.r != HTTP1_ERROR)
        fail_msg("chunked: expected error, got %d for %.*s", o.r, (int)n, s);
    assert_non_null(o.error);
}

#define GET_HOST "GET / HTTP/1.1\r\nHost: a.example\r\n"

/* ---- requests: the good path ------------------------------------------- */

static void test_req_basic(void **state)
{
    struct http1_request *r = req_ok(S("GET /index.html?q=1 HTTP/1.1\r\n"
                                       "Host: www.example.com\r\n"
                                       "User-Agent: t\r\n"
                                       "Accept: */*\r\n\r\n"));
    assert_int_equal(r->method, HTTP1_M_GET);
    assert_span(r->method_name, "GET");
    assert_span(r->target, "/index.html?q=1");
    assert_span(r->path, "/index.html?q=1");
    assert_span(r->host, "www.example.com");
    assert_int_equal(r->minor, 1);
    assert_int_equal(r->n_headers, 3);
    assert_span(r->headers[1].name, "User-Agent");
    assert_span(r->headers[1].value, "t");
    assert_int_equal(r->headers[0].id, HTTP1_H_HOST);
    assert_int_equal(r->content_length, -1);
    assert_int_equal(r->body, HTTP1_BODY_NONE);
    assert_true(r->keep_alive);
    assert_false(r->chunked);
    assert_false(r->upgrade);
    assert_false(r->expect_continue);
    assert_false(r->absolute_form);
    assert_int_equal(r->n_hop, 0);
    free(r);
}

static void test_req_methods(void **state)
{
    static const struct {
        const char *req;
        enum http1_method m;
    } cases[] = {
        { "GET / HTTP/1.0\r\n\r\n", HTTP1_M_GET },
        { "HEAD / HTTP/1.0\r\n\r\n", HTTP1_M_HEAD },
        { "POST / HTTP/1.0\r\n\r\n", HTTP1_M_POST },
        { "PUT / HTTP/1.0\r\n\r\n", HTTP1_M_PUT },
        { "DELETE / HTTP/1.0\r\n\r\n", HTTP1_M_DELETE },
        { "PATCH / HTTP/1.0\r\n\r\n", HTTP1_M_PATCH },
        { "OPTIONS / HTTP/1.0\r\n\r\n", HTTP1_M_OPTIONS },
        { "TRACE / HTTP/1.0\r\n\r\n", HTTP1_M_TRACE },
        { "PROPFIND / HTTP/1.0\r\n\r\n", HTTP1_M_OTHER },
        { "get / HTTP/1.0\r\n\r\n", HTTP1_M_OTHER }, /* methods are case-sensitive */
        { "GETS / HTTP/1.0\r\n\r\n", HTTP1_M_OTHER },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http1_request *r = req_ok(cases[i].req, strlen(cases[i].req));
        assert_int_equal(r->method, cases[i].m);
        assert_int_equal(r->minor, 0);
        assert_null(r->host.p);
        assert_false(r->keep_alive);
        free(r);
    }
}

static void test_req_ows_trimmed(void **state)
{
    struct http1_request *r = req_ok(S(GET_HOST "X-A: \t value with  spaces \t \r\n"
                                                "X-B:\r\n"
                                                "X-C:    \r\n"
                                                "X-D:v\r\n"
                                                "X-E: a\tb\r\n"
                                                "X-F: caf\xc3\xa9\r\n\r\n"));
    assert_span(r->headers[1].value, "value with  spaces");
    assert_int_equal(r->headers[2].value.len, 0);
    assert_int_equal(r->headers[3].value.len, 0);
    assert_span(r->headers[4].value, "v");
    assert_span(r->headers[5].value, "a\tb");     /* HTAB allowed inside values */
    assert_span(r->headers[6].value, "caf\xc3\xa9"); /* obs-text allowed */
    free(r);
}

static void test_req_leading_crlf(void **state)
{
    struct http1_request *r = req_ok(S("\r\n" GET_HOST "\r\n"));
    assert_span(r->method_name, "GET");
    free(r);
    req_err(S("\r\n\r\n" GET_HOST "\r\n"), 400); /* only one empty line is skipped */
    req_err(S("\n" GET_HOST "\r\n"), 400);
    req_err(S("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

static void test_req_incomplete(void **state)
{
    struct http1_request req;
    static const char *parts[] = { "", "G", "GET / HTTP/1.1", "GET / HTTP/1.1\r",
                                   "GET / HTTP/1.1\r\n", GET_HOST, GET_HOST "\r", "\r",
                                   "\r\n" };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        http1_request_init(&req);
        assert_int_equal(http1_parse_request(parts[i], strlen(parts[i]), NULL, &req),
                         HTTP1_INCOMPLETE);
    }
}

static void test_req_pipelined(void **state)
{
    static const char buf[] = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                              "GET /b HTTP/1.1\r\nHost: b\r\n\r\n"
                              "GET /c HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n";
    size_t n = sizeof(buf) - 1, at = 0;
    struct http1_request req;
    const char *targets[] = { "/a", "/b", "/c" };
    for (int i = 0; i < 3; i++) {
        assert_int_equal(parse_req(buf + at, n - at, NULL, &req), HTTP1_OK);
        assert_span(req.target, targets[i]);
        at += req.head_len + (req.content_length > 0 ? (size_t)req.content_length : 0);
    }
    assert_int_equal(at, n);
    assert_false(req.keep_alive);
}

/* The buffer may move between calls (evbuffer_pullup); spans follow it. */
static void test_req_moving_buffer(void **state)
{
    static const char msg[] = GET_HOST "X-Long: 0123456789\r\n\r\n";
    struct http1_request req;
    char a[64], b[128];
    http1_request_init(&req);
    memcpy(a, msg, 20);
    assert_int_equal(http1_parse_request(a, 20, NULL, &req), HTTP1_INCOMPLETE);
    memset(a, 'x', sizeof(a));
    memcpy(b + 50, msg, sizeof(msg) - 1);
    assert_int_equal(http1_parse_request(b + 50, sizeof(msg) - 1, NULL, &req), HTTP1_OK);
    assert_ptr_equal(req.target.p, b + 54);
    assert_span(req.headers[1].value, "0123456789");
}

/* ---- requests: request line -------------------------------------------- */

static void test_req_line_spacing(void **state)
{
    req_err(S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET /\r\nHost: a\r\n\r\n"), 400);   /* HTTP/0.9 style */
    req_err(S("GET\r\nHost: a\r\n\r\n"), 400);
    req_err(S("\r\n\r\n"), 400);
}

static void test_req_method_token(void **state)
{
    req_err(S("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("G\x01T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GE\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

static void test_req_target_space(void **state)
{
    req_err(S("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

static void test_req_target_ctl(void **state)
{
    req_err(S("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET /a\x00 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
}

static void test_req_target_forms(void **state)
{
    struct http1_request *r = req_ok(S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"));
    assert_span(r->path, "*");
    free(r);
    req_err(S("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET *x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET a.example:80 HTTP/1.1\r\nHost: a.example\r\n\r\n"), 400);
    req_err(S("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"), 501);
}

static void test_req_absolute_form(void **state)
{
    struct http1_request *r = req_ok(S("GET http://a.example/x?y HTTP/1.1\r\n"
                                       "Host: A.Example\r\n\r\n"));
    assert_true(r->absolute_form);
    assert_span(r->host, "a.example");
    assert_span(r->path, "/x?y");
    assert_span(r->target, "http://a.example/x?y");
    free(r);
    r = req_ok(S("GET HTTPS://a.example:8443 HTTP/1.0\r\n\r\n"));
    assert_span(r->host, "a.example:8443");
    assert_int_equal(r->path.len, 0);
    free(r);
    req_err(S("GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n"), 400);
    req_err(S("GET http://a.example/ HTTP/1.1\r\n\r\n"), 400);
    req_err(S("GET http://user@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"), 400);
    req_err(S("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET ftp://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n"), 400);
    req_err(S("GET http://a.example?x HTTP/1.1\r\nHost: a.example\r\n\r\n"), 400);
    req_err(S("GET http://a,b/ HTTP/1.1\r\nHost: a,b\r\n\r\n"), 400);
}

static void test_req_version(void **state)
{
    struct http1_request *r = req_ok(S("GET / HTTP/1.0\r\n\r\n"));
    assert_int_equal(r->minor, 0);
    free(r);
    req_err(S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
    req_err(S("GET / HTTP/3.0\r\nHost: a\r\n\r\n"), 505);
    req_err(S("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 505);
    req_err(S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
    req_err(S("GET / http/1.1\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET / HTTP/11\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET / HTTP/2\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), 400);
    req_err(S("GET / FOO/1.1\r\nHost: a\r\n\r\n"), 400);
}

/* Junk (here a TLS ClientHello) is refused at its first byte. */
static void test_req_tls_junk(void **state)
{
    struct http1_request req;
    static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    http1_request_init(&req);
    assert_int_equal(http1_parse_request(hello, 1, NULL, &req), HTTP1_ERROR);
    assert_int_equal(req.error_status, 400);
    req_err(S(hello), 400);
}

/* A broken request line is refused before the header section completes. */
static void test_req_line_early_error(void **state)
{
    struct http1_request req;
    static const char s[] = "GET /a b HTTP/1.1\r\nHost: a\r\n";
    http1_request_init(&req);
    assert_int_equal(http1_parse_request(s, sizeof(s) - 1, NULL, &req), HTTP1_ERROR);
    assert_int_equal(req.error_status, 400);
    http1_request_init(&req);
    assert_int_equal(http1_parse_request(S("GET / HTTP/2.0\r\n"), NULL, &req), HTTP1_ERROR);
    assert_int_equal(req.error_status, 505);
}

/* ---- requests: line endings and field syntax ---------------------------- */

static void test_req_bare_lf_request_line(void **state)
{
    req_err(S("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
}

static void test_req_bare_lf_header(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), 400);
}

static void test_req_bare_lf_end(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\n\n"), 400);
    req_err(S("GET / HTTP/1.1\nHost: a\n\n"), 400);
}

static void test_req_bare_cr(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX\r: a\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\n\rX: a\r\n\r\n"), 400);
}

static void test_req_obs_fold(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n"), 400);
}

static void test_req_te_obs_fold(void **state)
{
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"), 400);
}

static void test_req_whitespace_before_first_field(void **state)
{
    req_err(S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n"), 400);
}

static void test_req_space_before_colon(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), 400);
}

static void test_req_te_space_before_colon(void **state)
{
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"), 400);
}

static void test_req_empty_header_name(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\n:\r\n\r\n"), 400);
}

static void test_req_header_without_colon(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n"), 400);
}

static void test_req_header_name_chars(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX(a): b\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX/Y: b\r\n\r\n"), 400);
    struct http1_request *r = req_ok(S(GET_HOST "X!#$%&'*+-.^_`|~09az: ok\r\n\r\n"));
    free(r);
}

/* Upstream stacks that fold '_' into '-' would see a second framing header. */
static void test_req_underscore_lookalike(void **state)
{
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n"
              "Transfer_Encoding: chunked\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\ntransfer_ENCODING: chunked\r\n\r\n"), 400);
    resp_err(S("HTTP/1.1 200 OK\r\nContent_Length: 5\r\n\r\n"), HTTP1_M_GET);
    struct http1_request *r = req_ok(S(GET_HOST "X_Forwarded_For: 1\r\nHost_Name: x\r\n\r\n"));
    free(r);
}

static void test_req_nul_in_value(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n"), 400);
}

static void test_req_ctl_in_value(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x1f\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nX-A: \x0b" "b\r\n\r\n"), 400);
}

/* ---- requests: Host ----------------------------------------------------- */

static void test_req_host_missing(void **state)
{
    req_err(S("GET / HTTP/1.1\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n"), 400);
}

static void test_req_host_duplicate(void **state)
{
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.0\r\nHost: a\r\nHOST: a\r\n\r\n"), 400);
}

static void test_req_host_values(void **state)
{
    static const char *good[] = { "a.example", "A-b_c~d.example:8080", "[::1]", "[2001:db8::1]:443",
                                  "127.0.0.1", "a.example:", "a.example:65535" };
    static const char *bad[] = { "a b", "a,b", "a@b", "a/b", "[::1", "[]", "[::1]x",
                                 "a:80:80", "a:123456", "a:65536", "a:99999", "a:8a", ":80", "a%41" };
    char buf[128];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
        struct http1_request *r = req_ok(buf, (size_t)n);
        assert_span(r->host, good[i]);
        free(r);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int n = snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad[i]);
        req_err(buf, (size_t)n, 400);
    }
    /* An empty Host is for URIs without an authority (RFC 9112 3.2); an
     * http(s) URI's host is never empty (RFC 9110 4.2.2), and the edge
     * serves nothing else. */
    req_err(S("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 400);
    req_err(S("GET / HTTP/1.0\r\nHost: \r\n\r\n"), 400);
}

/* ---- requests: Content-Length ------------------------------------------- */

static void test_req_content_length(void **state)
{
    struct http1_request *r = req_ok(S(GET_HOST "Content-Length: 42\r\n\r\n"));
    assert_int_equal(r->content_length, 42);
    assert_int_equal(r->body, HTTP1_BODY_LENGTH);
    free(r);
    r = req_ok(S(GET_HOST "Content-Length: 0\r\n\r\n"));
    assert_int_equal(r->content_length, 0);
    free(r);
    r = req_ok(S(GET_HOST "Content-Length: 007\r\n\r\n"));
    assert_int_equal(r->content_length, 7);
    free(r);
    r = req_ok(S(GET_HOST "Content-Length: 9223372036854775807\r\n\r\n"));
    assert_int_equal(r->content_length, INT64_MAX);
    free(r);
}

static void test_req_cl_not_digits(void **state)
{
    req_err(S(GET_HOST "Content-Length: abc\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: 5a\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: 0x5\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: 5.0\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length:\r\n\r\n"), 400);
}

static void test_req_cl_sign(void **state)
{
    req_err(S(GET_HOST "Content-Length: +5\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: -1\r\n\r\n"), 400);
}

static void test_req_cl_inner_space(void **state)
{
    req_err(S(GET_HOST "Content-Length: 1 2\r\n\r\n"), 400);
}

static void test_req_cl_overflow(void **state)
{
    req_err(S(GET_HOST "Content-Length: 9223372036854775808\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: 18446744073709551621\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: 99999999999999999999999999\r\n\r\n"), 400);
}

static void test_req_cl_duplicate_same(void **state)
{
    struct http1_request *r = req_ok(S(GET_HOST "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"));
    assert_int_equal(r->content_length, 5);
    free(r);
    r = req_ok(S(GET_HOST "Content-Length: 5\r\ncontent-length: 05\r\n\r\n"));
    assert_int_equal(r->content_length, 5);
    free(r);
}

static void test_req_cl_duplicate_differs(void **state)
{
    req_err(S(GET_HOST "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: 0\r\nContent-Length: 10\r\n\r\n"), 400);
}

static void test_req_cl_list_same(void **state)
{
    struct http1_request *r = req_ok(S(GET_HOST "Content-Length: 5, 5\r\n\r\n"));
    assert_int_equal(r->content_length, 5);
    free(r);
    r = req_ok(S(GET_HOST "Content-Length: 5,5 ,\t5\r\n\r\n"));
    assert_int_equal(r->content_length, 5);
    free(r);
}

static void test_req_cl_list_differs(void **state)
{
    req_err(S(GET_HOST "Content-Length: 5, 6\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: 5,,5\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: 5,\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: ,5\r\n\r\n"), 400);
}

/* ---- requests: Transfer-Encoding ---------------------------------------- */

static void test_req_te_chunked(void **state)
{
    struct http1_request *r = req_ok(S("POST / HTTP/1.1\r\nHost: a\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n"));
    assert_true(r->chunked);
    assert_int_equal(r->body, HTTP1_BODY_CHUNKED);
    assert_int_equal(r->content_length, -1);
    assert_true(r->headers[1].hop);
    free(r);
    r = req_ok(S("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: \tChunKed \r\n\r\n"));
    assert_true(r->chunked);
    free(r);
}

static void test_req_cl_te(void **state)
{
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
              "Transfer-Encoding: chunked\r\n\r\n"), 400);
}

static void test_req_te_cl(void **state)
{
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
              "Content-Length: 5\r\n\r\n"), 400);
}

static void test_req_te_chunked_twice(void **state)
{
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
              "Transfer-Encoding: chunked\r\n\r\n"), 400);
}

static void test_req_te_gzip_chunked(void **state)
{
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), 501);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
              "Transfer-Encoding: chunked\r\n\r\n"), 501);
}

static void test_req_te_not_final(void **state)
{
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
              "Transfer-Encoding: gzip\r\n\r\n"), 400);
}

static void test_req_te_unknown(void **state)
{
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunk\r\n\r\n"), 400);
}

static void test_req_te_malformed(void **state)
{
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;a=b\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chu nked\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n"), 400);
    req_err(S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0c" "chunked\r\n\r\n"), 400);
}

static void test_req_te_http10(void **state)
{
    req_err(S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}

/* ---- requests: Connection, hop-by-hop, Upgrade, Expect ------------------ */

static void test_req_keep_alive(void **state)
{
    static const struct {
        const char *req;
        bool ka;
    } cases[] = {
        { GET_HOST "\r\n", true },
        { GET_HOST "Connection: close\r\n\r\n", false },
        { GET_HOST "Connection: Keep-Alive, CLOSE\r\n\r\n", false },
        { GET_HOST "Connection: ,, keep-alive ,\r\n\r\n", true },
        { "GET / HTTP/1.0\r\n\r\n", false },
        { "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true },
        { "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http1_request *r = req_ok(cases[i].req, strlen(cases[i].req));
        assert_int_equal(r->keep_alive, cases[i].ka);
        free(r);
    }
}

static void test_req_hop_by_hop(void **state)
{
    struct http1_request *r = req_ok(S("POST / HTTP/1.1\r\n"
                                       "Host: a\r\n"                      /* 0 */
                                       "Connection: X-Foo, keep-alive\r\n" /* 1 */
                                       "Keep-Alive: timeout=5\r\n"         /* 2 */
                                       "Proxy-Connection: keep-alive\r\n"  /* 3 */
                                       "TE: trailers\r\n"                  /* 4 */
                                       "Trailer: X-T\r\n"                  /* 5 */
                                       "Transfer-Encoding: chunked\r\n"    /* 6 */
                                       "Upgrade: h2c\r\n"                  /* 7 */
                                       "x-foo: 1\r\n"                      /* 8 */
                                       "X-Bar: 2\r\n"                      /* 9 */
                                       "Accept: */*\r\n\r\n"));           /* 10 */
    static const bool hop[] = { 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0 };
    static const uint8_t ids[] = { HTTP1_H_HOST, HTTP1_H_CONNECTION, HTTP1_H_KEEP_ALIVE,
                                   HTTP1_H_PROXY_CONNECTION, HTTP1_H_TE, HTTP1_H_TRAILER,
                                   HTTP1_H_TRANSFER_ENCODING, HTTP1_H_UPGRADE, HTTP1_H_OTHER,
                                   HTTP1_H_OTHER, HTTP1_H_OTHER };
    assert_int_equal(r->n_headers, 11);
    for (unsigned i = 0; i < r->n_headers; i++) {
        assert_int_equal(r->headers[i].hop, hop[i]);
        assert_int_equal(r->headers[i].id, ids[i]);
    }
    assert_int_equal(r->n_hop, 8);
    assert_false(r->upgrade); /* Upgrade present but not named in Connection */
    free(r);
}

static void test_req_connection_names_end_to_end(void **state)
{
    req_err(S(GET_HOST "Connection: close, Host\r\n\r\n"), 400);
    req_err(S(GET_HOST "Content-Length: 5\r\nConnection: content-length\r\n\r\n"), 400);
}

static void test_req_connection_invalid(void **state)
{
    req_err(S(GET_HOST "Connection: a b\r\n\r\n"), 400);
    req_err(S(GET_HOST "Connection: close;x\r\n\r\n"), 400);
}

static void test_req_upgrade(void **state)
{
    struct http1_request *r = req_ok(S(GET_HOST "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"));
    assert_true(r->upgrade);
    free(r);
    r = req_ok(S(GET_HOST "Connection: upgrade\r\n\r\n"));
    assert_false(r->upgrade);
    free(r);
    r = req_ok(S("GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"));
    assert_false(r->upgrade);
    free(r);
}

static void test_req_expect(void **state)
{
    struct http1_request *r = req_ok(S(GET_HOST "Expect: 100-Continue\r\n\r\n"));
    assert_true(r->expect_continue);
    assert_int_equal(r->headers[1].id, HTTP1_H_EXPECT);
    free(r);
    r = req_ok(S(GET_HOST "Expect: 200-ok\r\n\r\n"));
    assert_false(r->expect_continue);
    free(r);
    /* A list: 100-continue among others still asks for the 100. */
    r = req_ok(S(GET_HOST "Expect: foo, 100-continue\r\n\r\n"));
    assert_true(r->expect_continue);
    free(r);
    r = req_ok(S("GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"));
    assert_false(r->expect_continue);
    free(r);
}

/* ---- requests: limits --------------------------------------------------- */

static char *make_req_line(size_t target_len, size_t *len)
{
    /* "GET /xxx HTTP/1.1" is target_len + 13 bytes. */
    static const char tail[] = " HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t line = target_len + 13, n = line + 13;
    char *b = malloc(n);
    assert_non_null(b);
    memcpy(b, "GET /", 5);
    memset(b + 5, 'x', target_len - 1);
    memcpy(b + 4 + target_len, tail, sizeof(tail) - 1);
    *len = n;
    return b;
}

static void test_req_line_limit(void **state)
{
    struct http1_limits lim;
    struct http1_request req;
    size_t n;
    http1_limits_default(&lim);
    char *b = make_req_line(8192 - 13, &n);
    assert_int_equal(parse_req(b, n, &lim, &req), HTTP1_OK);
    free(b);
    b = make_req_line(8192 - 12, &n);
    assert_int_equal(parse_req(b, n, &lim, &req), HTTP1_ERROR);
    assert_int_equal(req.error_status, 414);
    /* Reported before the line ends: 8194 bytes cannot be line + CR. */
    http1_request_init(&req);
    assert_int_equal(http1_parse_request(b, 8193, &lim, &req), HTTP1_INCOMPLETE);
    assert_int_equal(http1_parse_request(b, 8194, &lim, &req), HTTP1_ERROR);
    assert_int_equal(req.error_status, 414);
    free(b);
    lim.max_request_line = 20;
    assert_int_equal(parse_req(S("GET /012345 HTTP/1.1\r\nHost: a\r\n\r\n"), &lim, &req), HTTP1_OK);
    assert_int_equal(parse_req(S("GET /0123456 HTTP/1.1\r\nHost: a\r\n\r\n"), &lim, &req),
                     HTTP1_ERROR);
    assert_int_equal(req.error_status, 414);
}

static void test_req_header_bytes_limit(void **state)
{
    struct http1_limits lim;
    struct http1_request req;
    http1_limits_default(&lim);
    /* "Host: a\r\n" + "\r\n" = 11 header bytes. */
    lim.max_header_bytes = 11;
    assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &lim, &req), HTTP1_OK);
    lim.max_header_bytes = 10;
    assert_int_equal(parse_req(S("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), &lim, &req), HTTP1_ERROR);
    assert_int_equal(req.error_status, 431);

    /* Default limit, exceeded by one never-ending field: 431 with no CRLF. */
    http1_limits_default(&lim);
    size_t n = 16 + 32769;
    char *b = malloc(n);
    assert_non_null(b);
    memcpy(b, "GET / HTTP/1.1\r\n", 16);
    memcpy(b + 16, "X-A: ", 5);
    memset(b + 21, 'a', n - 21);
    http1_request_init(&req);
    assert_int_equal(http1_parse_request(b, n - 1, &lim, &req), HTTP1_INCOMPLETE);
    assert_int_equal(http1_parse_request(b, n, &lim, &req), HTTP1_ERROR);
    assert_int_equal(req.error_status, 431);
    assert_int_equal(parse_req(b, n, &lim, &req), HTTP1_ERROR);
    free(b);
}

static void test_req_header_count_limit(void **state)
{
    struct http1_limits lim;
    struct http1_request req;
    char buf[8192];
    http1_limits_default(&lim);
    for (unsigned count = 99; count <= 101; count++) {
        size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
        for (unsigned i = 1; i < count; i++)
            n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%u: v\r\n", i);
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
        enum http1_result r = parse_req(buf, n, &lim, &req);
        if (count <= 100) {
            assert_int_equal(r, HTTP1_OK);
            assert_int_equal(req.n_headers, count);
        } else {
            assert_int_equal(r, HTTP1_ERROR);
            assert_int_equal(req.error_status, 431);
        }
    }
    /* Clamped to the array size. */
    lim.max_headers = 100000;
    size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
    for (unsigned i = 1; i <= HTTP1_MAX_HEADERS; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-%u: v\r\n", i);
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
    assert_int_equal(parse_req(buf, n, &lim, &req), HTTP1_ERROR);
    assert_int_equal(req.error_status, 431);
}

/* ---- responses ---------------------------------------------------------- */

static void test_resp_basic(void **state)
{
    struct http1_response *r = resp_ok(S("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n"
                                         "Content-Type: text/plain\r\n\r\n"), HTTP1_M_GET);
    assert_int_equal(r->status, 200);
    assert_int_equal(r->minor, 1);
    assert_span(r->reason, "OK");
    assert_int_equal(r->body, HTTP1_BODY_LENGTH);
    assert_int_equal(r->content_length, 12);
    assert_true(r->keep_alive);
    assert_false(r->switching);
    assert_int_equal(r->n_headers, 2);
    free(r);
}

static void test_resp_framing(void **state)
{
    static const struct {
        const char *resp;
        enum http1_method m;
        enum http1_body body;
        bool ka;
    } cases[] = {
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_M_GET, HTTP1_BODY_CHUNKED, true },
        { "HTTP/1.1 200 OK\r\n\r\n", HTTP1_M_GET, HTTP1_BODY_CLOSE, false },
        { "HTTP/1.0 200 OK\r\n\r\n", HTTP1_M_GET, HTTP1_BODY_CLOSE, false },
        { "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", HTTP1_M_GET, HTTP1_BODY_LENGTH, true },
        { "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", HTTP1_M_GET, HTTP1_BODY_LENGTH, false },
        { "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", HTTP1_M_HEAD, HTTP1_BODY_NONE, true },
        { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_M_HEAD, HTTP1_BODY_NONE, true },
        { "HTTP/1.1 204 No Content\r\n\r\n", HTTP1_M_GET, HTTP1_BODY_NONE, true },
        { "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", HTTP1_M_GET, HTTP1_BODY_NONE, true },
        { "HTTP/1.1 100 Continue\r\n\r\n", HTTP1_M_POST, HTTP1_BODY_NONE, true },
        { "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", HTTP1_M_GET, HTTP1_BODY_NONE, true },
        { "HTTP/1.1 200 OK\r\n\r\n", HTTP1_M_CONNECT, HTTP1_BODY_TUNNEL, false },
        { "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", HTTP1_M_GET, HTTP1_BODY_LENGTH, false },
        { "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", HTTP1_M_GET, HTTP1_BODY_LENGTH, true },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http1_response *r = resp_ok(cases[i].resp, strlen(cases[i].resp), cases[i].m);
        if (r->body != cases[i].body || r->keep_alive != cases[i].ka)
            fail_msg("case %zu: body %d ka %d", i, r->body, r->keep_alive);
        free(r);
    }
}

static void test_resp_101(void **state)
{
    struct http1_response *r = resp_ok(S("HTTP/1.1 101 Switching Protocols\r\n"
                                         "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
                                       HTTP1_M_GET);
    assert_true(r->switching);
    assert_int_equal(r->body, HTTP1_BODY_TUNNEL);
    assert_int_equal(r->n_hop, 2);
    free(r);
    resp_err(S("HTTP/1.0 101 Switching Protocols\r\n\r\n"), HTTP1_M_GET);
}

static void test_resp_interim_then_final(void **state)
{
    static const char buf[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    struct http1_response r;
    http1_response_init(&r);
    assert_int_equal(http1_parse_response(S(buf), NULL, HTTP1_M_POST, &r), HTTP1_OK);
    assert_int_equal(r.status, 100);
    size_t at = r.head_len;
    http1_response_init(&r);
    assert_int_equal(http1_parse_response(buf + at, sizeof(buf) - 1 - at, NULL, HTTP1_M_POST, &r),
                     HTTP1_OK);
    assert_int_equal(r.status, 201);
    assert_int_equal(at + r.head_len + 2, sizeof(buf) - 1);
}

static void test_resp_reason(void **state)
{
    struct http1_response *r = resp_ok(S("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), HTTP1_M_GET);
    assert_int_equal(r->reason.len, 0);
    free(r);
    r = resp_ok(S("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), HTTP1_M_GET);
    assert_int_equal(r->reason.len, 0);
    free(r);
    r = resp_ok(S("HTTP/1.1 599 Very\tOdd \xc3\xa9\r\nContent-Length: 0\r\n\r\n"), HTTP1_M_GET);
    assert_span(r->reason, "Very\tOdd \xc3\xa9");
    free(r);
    resp_err(S("HTTP/1.1 200 O\x01K\r\n\r\n"), HTTP1_M_GET);
}

static void test_resp_status_line(void **state)
{
    resp_err(S("HTTP/1.1 99 Low\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 099 Low\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 600 High\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 2000 OK\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1  200 OK\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 2x0 OK\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/2.0 200 OK\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.2 200 OK\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("http/1.1 200 OK\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("ICY 200 OK\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\n\r\n"), HTTP1_M_GET);
    resp_err(S("\r\nHTTP/1.1 200 OK\r\n\r\n"), HTTP1_M_GET);
}

static void test_resp_cl_te(void **state)
{
    resp_err(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
             HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
             HTTP1_M_GET);
    /* Even where the framing would ignore both. */
    resp_err(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
             HTTP1_M_HEAD);
}

static void test_resp_te_codings(void **state)
{
    resp_err(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP1_M_GET);
}

static void test_resp_cl_conflict(void **state)
{
    resp_err(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), HTTP1_M_GET);
    struct http1_response *r = resp_ok(S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                                         "Content-Length: 5\r\n\r\n"), HTTP1_M_GET);
    assert_int_equal(r->content_length, 5);
    free(r);
}

static void test_resp_syntax(void **state)
{
    resp_err(S("HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\r\nX-A: b\nX-B: c\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\r\nX-A: b\x00\r\n\r\n"), HTTP1_M_GET);
    resp_err(S("HTTP/1.1 200 OK\r\nConnection: content-length\r\n\r\n"), HTTP1_M_GET);
    /* Responses need no Host and may repeat it. */
    struct http1_response *r = resp_ok(S("HTTP/1.1 200 OK\r\nHost: a\r\nHost: b\r\n"
                                         "Content-Length: 0\r\n\r\n"), HTTP1_M_GET);
    free(r);
}

static void test_resp_hop_by_hop(void **state)
{
    struct http1_response *r = resp_ok(S("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Up\r\n"
                                         "Keep-Alive: timeout=5\r\nX-Up: 1\r\nSet-Cookie: a=b\r\n"
                                         "Transfer-Encoding: chunked\r\n\r\n"), HTTP1_M_GET);
    assert_true(r->headers[0].hop);
    assert_true(r->headers[1].hop);
    assert_true(r->headers[2].hop);
    assert_false(r->headers[3].hop);
    assert_true(r->headers[4].hop);
    assert_int_equal(r->n_hop, 4);
    free(r);
}

static void test_resp_limits(void **state)
{
    struct http1_response r;
    struct http1_limits lim;
    http1_limits_default(&lim);
    lim.max_request_line = 10;
    http1_response_init(&r);
    assert_int_equal(http1_parse_response(S("HTTP/1.1 200 OK\r\n\r\n"), &lim, HTTP1_M_GET, &r),
                     HTTP1_ERROR);
    assert_int_equal(r.error_status, 502);
    lim.max_request_line = 100;
    lim.max_headers = 1;
    http1_response_init(&r);
    assert_int_equal(http1_parse_response(S("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n"), &lim,
                                          HTTP1_M_GET, &r),
                     HTTP1_ERROR);
    assert_int_equal(r.error_status, 502);
}

/* ---- chunked bodies ----------------------------------------------------- */

static void test_chunked_basic(void **state)
{
    ck_ok(S("5\r\nhello\r\n0\r\n\r\n"), 0, 5);
    ck_ok(S("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), 0, 11);
    ck_ok(S("0\r\n\r\n"), 0, 0);
    ck_ok(S("A\r\n0123456789\r\n0\r\n\r\n"), 0, 10);
    ck_ok(S("a\r\n0123456789\r\n0\r\n\r\n"), 0, 10);
    ck_ok(S("000000000000000000000005\r\nhello\r\n000\r\n\r\n"), 0, 5);
}

/* The decoder stops exactly at the end of the body: what follows is the next
 * pipelined request and must not be swallowed. */
static void test_chunked_then_next_request(void **state)
{
    ck_ok(S("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 16, 3);
    ck_ok(S("0\r\n\r\n0\r\n\r\n"), 5, 0);
}

static void test_chunked_extensions(void **state)
{
    ck_ok(S("5;a=b\r\nhello\r\n0\r\n\r\n"), 0, 5);
    ck_ok(S("5;a\r\nhello\r\n0;last\r\n\r\n"), 0, 5);
    ck_ok(S("5 ; a = b ;c\r\nhello\r\n0\r\n\r\n"), 0, 5);
    ck_ok(S("5;a=\"q \\\"x\\\" ;,\"\r\nhello\r\n0\r\n\r\n"), 0, 5);
    ck_ok(S("5;a=\"\";b=\"x\" ;c\r\nhello\r\n0\r\n\r\n"), 0, 5);
}

static void test_chunked_bad_extension(void **state)
{
    ck_err(S("5;\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a=\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a b\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a=b c\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a=\"x\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a=\"x\"y\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a\x01\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a=(\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a \r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a=b \r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5;a\nhello\r\n0\r\n\r\n"));
}

static void test_chunked_bad_size(void **state)
{
    ck_err(S("g\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("-1\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("+5\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("0x5\r\nhello\r\n0\r\n\r\n"));
    ck_err(S(" 5\r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5 \r\nhello\r\n0\r\n\r\n"));
    ck_err(S("5\x00\r\nhello\r\n0\r\n\r\n"));
    ck_err(S(";a\r\nhello\r\n0\r\n\r\n"));
}

static void test_chunked_size_overflow(void **state)
{
    ck_err(S("8000000000000000\r\n"));
    ck_err(S("ffffffffffffffffff\r\n"));
    ck_err(S("10000000000000005\r\nhello\r\n0\r\n\r\n")); /* wraps to 5 in 64 bits */
    struct ck_out o = ck(S("7fffffffffffffff\r\nabc"), NULL);
    assert_int_equal(o.r, HTTP1_INCOMPLETE);
    assert_int_equal(o.payload, 3);
}

static void test_chunked_missing_crlf_after_data(void **state)
{
    ck_err(S("5\r\nhelloX\r\n0\r\n\r\n"));
    ck_err(S("5\r\nhello0\r\n\r\n"));
    ck_err(S("5\r\nhello\rX0\r\n\r\n"));
    ck_err(S("3\r\nhello\r\n0\r\n\r\n")); /* size smaller than the data */
}

static void test_chunked_bare_lf(void **state)
{
    ck_err(S("5\nhello\r\n0\r\n\r\n"));
    ck_err(S("5\r\nhello\n0\r\n\r\n"));
    ck_err(S("5\r\nhello\r\n0\n\r\n"));
    ck_err(S("5\r\nhello\r\n0\r\n\n"));
    ck_err(S("0\r\nX: a\n\r\n"));
}

static void test_chunked_bare_cr(void **state)
{
    ck_err(S("5\rhello\r\n0\r\n\r\n"));
    ck_err(S("0\r\n\rX"));
}

static void test_chunked_trailers(void **state)
{
    struct ck_out o = ck(S("5\r\nhello\r\n0\r\nX-Sum: abc\r\nX-B:\r\n\r\nnext"), NULL);
    assert_int_equal(o.r, HTTP1_OK);
    assert_int_equal(o.consumed, 33);
    assert_int_equal(o.trailers, 2);
    ck_err(S("0\r\nX-Sum : abc\r\n\r\n"));
    ck_err(S("0\r\nX-Sum abc\r\n\r\n"));
    ck_err(S("0\r\n: abc\r\n\r\n"));
    ck_err(S("0\r\nX-A: a\r\n b\r\n\r\n"));   /* obs-fold */
    ck_err(S("0\r\nX-A: a\x01\r\n\r\n"));
    ck_err(S("0\r\nX-A: a\rb\r\n\r\n"));
    ck_err(S("0\r\nX(A): a\r\n\r\n"));
}

static void test_chunked_forbidden_trailers(void **state)
{
    ck_err(S("0\r\nContent-Length: 5\r\n\r\n"));
    ck_err(S("0\r\ntransfer-encoding: chunked\r\n\r\n"));
    ck_err(S("0\r\nHOST: evil\r\n\r\n"));
    ck_ok(S("0\r\nContent-Lengthx: 5\r\nHostx: 1\r\nX-Transfer-Encoding-Long-Name: 1\r\n\r\n"),
          0, 0);
}

static void test_chunked_limits(void **state)
{
    struct http1_chunked_limits lim = { 16, 24 };
    struct ck_out o = ck(S("5;abcdefghijklm\r\nhello\r\n0\r\n\r\n"), &lim); /* 15 bytes */
    assert_int_equal(o.r, HTTP1_OK);
    o = ck(S("5;abcdefghijklmn\r\nhello\r\n0\r\n\r\n"), &lim); /* 16 */
    assert_int_equal(o.r, HTTP1_OK);
    o = ck(S("5;abcdefghijklmno\r\nhello\r\n0\r\n\r\n"), &lim); /* 17 */
    assert_int_equal(o.r, HTTP1_ERROR);
    o = ck(S("00000000000000005\r\nhello\r\n0\r\n\r\n"), &lim);
    assert_int_equal(o.r, HTTP1_ERROR);
    /* Trailer section: "X-A: 0123456789abcde\r\n\r\n" is 24 bytes. */
    o = ck(S("0\r\nX-A: 0123456789abcde\r\n\r\n"), &lim);
    assert_int_equal(o.r, HTTP1_OK);
    o = ck(S("0\r\nX-A: 0123456789abcdef\r\n\r\n"), &lim);
    assert_int_equal(o.r, HTTP1_ERROR);
    /* Defaults: a 5000-byte extension is refused. */
    size_t n = 5000;
    char *b = malloc(n);
    assert_non_null(b);
    memcpy(b, "5;", 2);
    memset(b + 2, 'a', n - 2);
    o = ck(b, n, NULL);
    assert_int_equal(o.r, HTTP1_ERROR);
    free(b);
}

static void test_chunked_data_spans(void **state)
{
    static const char body[] = "5\r\nhello\r\n1;x=y\r\n \r\n5\r\nworld\r\n0\r\nT: 1\r\n\r\nGET";
    struct http1_chunked st;
    char out[64];
    size_t outlen = 0, at = 0, n = sizeof(body) - 1, c;
    struct http1_span d;
    enum http1_result r;
    http1_chunked_init(&st, NULL);
    do {
        r = http1_chunked_feed(&st, body + at, n - at, &c, &d);
        assert_int_not_equal(r, HTTP1_ERROR);
        if (d.len) {
            assert_true(d.p >= body + at && d.p + d.len <= body + at + c);
            memcpy(out + outlen, d.p, d.len);
            outlen += d.len;
        }
        at += c;
    } while (r == HTTP1_INCOMPLETE && at < n);
    assert_int_equal(r, HTTP1_OK);
    assert_int_equal(at, n - 3);
    assert_int_equal(outlen, 11);
    assert_memory_equal(out, "hello world", 11);
    assert_int_equal(st.payload, 11);
    /* Done stays done, error stays error. */
    assert_int_equal(http1_chunked_feed(&st, "x", 1, &c, NULL), HTTP1_OK);
    assert_int_equal(c, 0);
    http1_chunked_init(&st, NULL);
    assert_int_equal(http1_chunked_feed(&st, "z", 1, &c, NULL), HTTP1_ERROR);
    assert_int_equal(http1_chunked_feed(&st, "5", 1, &c, NULL), HTTP1_ERROR);
}

/* A large chunk crossing many feeds keeps its count. */
static void test_chunked_large_chunk(void **state)
{
    struct http1_chunked st;
    size_t c;
    char data[1000];
    memset(data, 'x', sizeof(data));
    http1_chunked_init(&st, NULL);
    assert_int_equal(http1_chunked_feed(&st, S("2710\r\n"), &c, NULL), HTTP1_INCOMPLETE);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(http1_chunked_feed(&st, data, sizeof(data), &c, NULL), HTTP1_INCOMPLETE);
        assert_int_equal(c, sizeof(data));
    }
    assert_int_equal(http1_chunked_feed(&st, S("\r\n0\r\n\r\n"), &c, NULL), HTTP1_OK);
    assert_int_equal(c, 7);
    assert_int_equal(st.payload, 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_req_basic),
        cmocka_unit_test(test_req_methods),
        cmocka_unit_test(test_req_ows_trimmed),
        cmocka_unit_test(test_req_leading_crlf),
        cmocka_unit_test(test_req_incomplete),
        cmocka_unit_test(test_req_pipelined),
        cmocka_unit_test(test_req_moving_buffer),
        cmocka_unit_test(test_req_line_spacing),
        cmocka_unit_test(test_req_method_token),
        cmocka_unit_test(test_req_target_space),
        cmocka_unit_test(test_req_target_ctl),
        cmocka_unit_test(test_req_target_forms),
        cmocka_unit_test(test_req_absolute_form),
        cmocka_unit_test(test_req_version),
        cmocka_unit_test(test_req_tls_junk),
        cmocka_unit_test(test_req_line_early_error),
        cmocka_unit_test(test_req_bare_lf_request_line),
        cmocka_unit_test(test_req_bare_lf_header),
        cmocka_unit_test(test_req_bare_lf_end),
        cmocka_unit_test(test_req_bare_cr),
        cmocka_unit_test(test_req_obs_fold),
        cmocka_unit_test(test_req_te_obs_fold),
        cmocka_unit_test(test_req_whitespace_before_first_field),
        cmocka_unit_test(test_req_space_before_colon),
        cmocka_unit_test(test_req_te_space_before_colon),
        cmocka_unit_test(test_req_empty_header_name),
        cmocka_unit_test(test_req_header_without_colon),
        cmocka_unit_test(test_req_header_name_chars),
        cmocka_unit_test(test_req_underscore_lookalike),
        cmocka_unit_test(test_req_nul_in_value),
        cmocka_unit_test(test_req_ctl_in_value),
        cmocka_unit_test(test_req_host_missing),
        cmocka_unit_test(test_req_host_duplicate),
        cmocka_unit_test(test_req_host_values),
        cmocka_unit_test(test_req_content_length),
        cmocka_unit_test(test_req_cl_not_digits),
        cmocka_unit_test(test_req_cl_sign),
        cmocka_unit_test(test_req_cl_inner_space),
        cmocka_unit_test(test_req_cl_overflow),
        cmocka_unit_test(test_req_cl_duplicate_same),
        cmocka_unit_test(test_req_cl_duplicate_differs),
        cmocka_unit_test(test_req_cl_list_same),
        cmocka_unit_test(test_req_cl_list_differs),
        cmocka_unit_test(test_req_te_chunked),
        cmocka_unit_test(test_req_cl_te),
        cmocka_unit_test(test_req_te_cl),
        cmocka_unit_test(test_req_te_chunked_twice),
        cmocka_unit_test(test_req_te_gzip_chunked),
        cmocka_unit_test(test_req_te_not_final),
        cmocka_unit_test(test_req_te_unknown),
        cmocka_unit_test(test_req_te_malformed),
        cmocka_unit_test(test_req_te_http10),
        cmocka_unit_test(test_req_keep_alive),
        cmocka_unit_test(test_req_hop_by_hop),
        cmocka_unit_test(test_req_connection_names_end_to_end),
        cmocka_unit_test(test_req_connection_invalid),
        cmocka_unit_test(test_req_upgrade),
        cmocka_unit_test(test_req_expect),
        cmocka_unit_test(test_req_line_limit),
        cmocka_unit_test(test_req_header_bytes_limit),
        cmocka_unit_test(test_req_header_count_limit),
        cmocka_unit_test(test_resp_basic),
        cmocka_unit_test(test_resp_framing),
        cmocka_unit_test(test_resp_101),
        cmocka_unit_test(test_resp_interim_then_final),
        cmocka_unit_test(test_resp_reason),
        cmocka_unit_test(test_resp_status_line),
        cmocka_unit_test(test_resp_cl_te),
        cmocka_unit_test(test_resp_te_codings),
        cmocka_unit_test(test_resp_cl_conflict),
        cmocka_unit_test(test_resp_syntax),
        cmocka_unit_test(test_resp_hop_by_hop),
        cmocka_unit_test(test_resp_limits),
        cmocka_unit_test(test_chunked_basic),
        cmocka_unit_test(test_chunked_then_next_request),
        cmocka_unit_test(test_chunked_extensions),
        cmocka_unit_test(test_chunked_bad_extension),
        cmocka_unit_test(test_chunked_bad_size),
        cmocka_unit_test(test_chunked_size_overflow),
        cmocka_unit_test(test_chunked_missing_crlf_after_data),
        cmocka_unit_test(test_chunked_bare_lf),
        cmocka_unit_test(test_chunked_bare_cr),
        cmocka_unit_test(test_chunked_trailers),
        cmocka_unit_test(test_chunked_forbidden_trailers),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_data_spans),
        cmocka_unit_test(test_chunked_large_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
