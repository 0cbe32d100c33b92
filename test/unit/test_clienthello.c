/* Tests edge/clienthello.c against ClientHellos captured from real clients
 * (openssl s_client, Python ssl, curl; see data/clienthello/capture.sh) and
 * against hand-built hellos for each edge case: fragmentation over records,
 * truncation at every offset, bad SNI shapes, bad ALPN lists, limits and
 * non-TLS first bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "edge/clienthello.h"

#ifndef TLSPARSE_DATA_DIR
#error "TLSPARSE_DATA_DIR must point at test/unit/data"
#endif

typedef struct {
    uint8_t b[20000];
    size_t n;
} bytes_t;

static void load(const char *name, bytes_t *out)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/clienthello/%s", TLSPARSE_DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    out->n = fread(out->b, 1, sizeof(out->b), f);
    fclose(f);
    assert_true(out->n > 5);
}

static void put(bytes_t *o, const void *p, size_t n)
{
    assert_true(o->n + n <= sizeof(o->b));
    if (n > 0)
        memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put_u8(bytes_t *o, unsigned v)
{
    uint8_t b = (uint8_t)v;
    put(o, &b, 1);
}

static void put_u16(bytes_t *o, unsigned v)
{
    put_u8(o, v >> 8);
    put_u8(o, v);
}

static void put_u24(bytes_t *o, unsigned v)
{
    put_u8(o, v >> 16);
    put_u16(o, v & 0xffff);
}

/* An extension with raw body bytes. */
static void ext_raw(bytes_t *e, unsigned type, const void *body, size_t n)
{
    put_u16(e, type);
    put_u16(e, (unsigned)n);
    put(e, body, n);
}

static void ext_sni(bytes_t *e, const char *name, size_t n)
{
    bytes_t *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    put_u16(b, (unsigned)n + 3);
    put_u8(b, 0);
    put_u16(b, (unsigned)n);
    put(b, name, n);
    ext_raw(e, 0, b->b, b->n);
    free(b);
}

static void ext_alpn(bytes_t *e, const char *const *names, size_t count)
{
    bytes_t b = { .n = 2 };
    for (size_t i = 0; i < count; i++) {
        put_u8(&b, (unsigned)strlen(names[i]));
        put(&b, names[i], strlen(names[i]));
    }
    b.b[0] = (uint8_t)((b.n - 2) >> 8);
    b.b[1] = (uint8_t)(b.n - 2);
    ext_raw(e, 16, b.b, b.n);
}

/* The handshake message (type + length + body) of a minimal ClientHello
 * carrying the given extensions block; no extensions block when exts is NULL. */
static void build_handshake(bytes_t *hs, const bytes_t *exts)
{
    bytes_t body = { .n = 0 };
    uint8_t random[32];
    memset(random, 0xab, sizeof(random));
    put_u16(&body, 0x0303);
    put(&body, random, sizeof(random));
    put_u8(&body, 0);
    put_u16(&body, 2);
    put_u16(&body, 0x1301);
    put_u8(&body, 1);
    put_u8(&body, 0);
    if (exts) {
        put_u16(&body, (unsigned)exts->n);
        put(&body, exts->b, exts->n);
    }
    hs->n = 0;
    put_u8(hs, 1);
    put_u24(hs, (unsigned)body.n);
    put(hs, body.b, body.n);
}

/* Wraps handshake bytes into records cut at the given handshake offsets. */
static void wrap(bytes_t *out, const uint8_t *hs, size_t n, const size_t *cuts, size_t ncuts)
{
    size_t start = 0;
    out->n = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : n;
        put_u8(out, 22);
        put_u16(out, 0x0301);
        put_u16(out, (unsigned)(end - start));
        put(out, hs + start, end - start);
        start = end;
    }
}

static void build(bytes_t *out, const bytes_t *exts)
{
    bytes_t hs;
    build_handshake(&hs, exts);
    wrap(out, hs.b, hs.n, NULL, 0);
}

static ch_result_t parse_exts(const bytes_t *exts, ch_info_t *info)
{
    bytes_t rec;
    build(&rec, exts);
    return ch_parse(rec.b, rec.n, info);
}

static ch_result_t parse_sni(const char *name, size_t n, ch_info_t *info)
{
    bytes_t e = { .n = 0 };
    ext_sni(&e, name, n);
    return parse_exts(&e, info);
}

/* ---- real hellos ---- */

typedef struct {
    const char *file;
    const char *sni;
    int tls12, tls13, http11, h2, acme, alpn_count;
} real_case_t;

static const real_case_t real_cases[] = {
    { "tls13_alpn_http11.bin", "x.example.com", 1, 1, 1, 0, 0, 1 },
    { "tls12_alpn_http11.bin", "x.example.com", 1, 0, 1, 0, 0, 1 },
    { "acme.bin", "x.example.com", 1, 1, 0, 0, 1, 1 },
    { "nosni.bin", NULL, 1, 1, 1, 0, 0, 1 },
    { "h2_both.bin", "x.example.com", 1, 1, 1, 1, 0, 2 },
    { "noalpn.bin", "x.example.com", 1, 1, 0, 0, 0, 0 },
    { "tls13only.bin", "x.example.com", 0, 1, 0, 1, 0, 1 },
    { "python_ssl.bin", "py.example.org", 1, 1, 1, 1, 0, 2 },
    { "curl.bin", "curl.example.net", 1, 1, 1, 1, 0, 2 },
};

static void check_real(const real_case_t *c, const ch_info_t *info)
{
    if (c->sni) {
        assert_int_equal(info->sni_status, CH_SNI_OK);
        assert_string_equal(info->sni, c->sni);
        assert_int_equal(info->sni_len, strlen(c->sni));
    } else {
        assert_int_equal(info->sni_status, CH_SNI_NONE);
        assert_string_equal(info->sni, "");
    }
    assert_int_equal(info->tls12, c->tls12);
    assert_int_equal(info->tls13, c->tls13);
    assert_int_equal(info->alpn_http11, c->http11);
    assert_int_equal(info->alpn_h2, c->h2);
    assert_int_equal(info->alpn_acme, c->acme);
    assert_int_equal(info->alpn_count, c->alpn_count);
    assert_int_equal(info->has_alpn, c->alpn_count > 0);
    assert_int_equal(info->legacy_version, 0x0303);
}

static void test_real_hellos(void **state)
{
    static bytes_t buf;
    for (size_t i = 0; i < sizeof(real_cases) / sizeof(real_cases[0]); i++) {
        ch_info_t info;
        load(real_cases[i].file, &buf);
        assert_int_equal(ch_parse(buf.b, buf.n, &info), CH_OK);
        assert_int_equal(info.hello_len, buf.n);
        assert_int_equal(info.nrecords, 1);
        check_real(&real_cases[i], &info);
    }
}

/* Every strict prefix of a valid hello is "wait", with a need that grows
 * past what we have but never past the real length. */
static void expect_prefixes_need_more(const bytes_t *b)
{
    for (size_t n = 0; n < b->n; n++) {
        ch_info_t info;
        ch_result_t r = ch_parse(b->b, n, &info);
        if (r != CH_NEED_MORE)
            fail_msg("prefix %zu of %zu: %s", n, b->n, ch_result_name(r));
        assert_true(info.need > n);
        assert_true(info.need <= b->n);
    }
}

static void test_truncated_every_offset(void **state)
{
    static bytes_t buf;
    for (size_t i = 0; i < sizeof(real_cases) / sizeof(real_cases[0]); i++) {
        load(real_cases[i].file, &buf);
        expect_prefixes_need_more(&buf);
    }
}

/* Re-cuts a real hello into 2 and 3 records at many offsets, including
 * inside the 4-byte handshake header. */
static void test_fragmented(void **state)
{
    static bytes_t buf, frag;
    const real_case_t *c = &real_cases[7];
    load(c->file, &buf);
    const uint8_t *hs = buf.b + 5;
    size_t hslen = buf.n - 5;
    for (size_t cut = 1; cut < hslen; cut++) {
        ch_info_t info;
        wrap(&frag, hs, hslen, &cut, 1);
        assert_int_equal(ch_parse(frag.b, frag.n, &info), CH_OK);
        assert_int_equal(info.nrecords, 2);
        assert_int_equal(info.hello_len, buf.n + 5);
        check_real(c, &info);
    }
    for (size_t a = 1; a < hslen; a += 37) {
        for (size_t b = a + 1; b < hslen; b += 53) {
            size_t cuts[2] = { a, b };
            ch_info_t info;
            wrap(&frag, hs, hslen, cuts, 2);
            assert_int_equal(ch_parse(frag.b, frag.n, &info), CH_OK);
            assert_int_equal(info.nrecords, 3);
            check_real(c, &info);
        }
    }
    size_t cuts[2] = { 2, 100 };
    wrap(&frag, hs, hslen, cuts, 2);
    expect_prefixes_need_more(&frag);
}

static void test_record_limits(void **state)
{
    static bytes_t buf, frag;
    ch_info_t info;
    load("tls13_alpn_http11.bin", &buf);
    const uint8_t *hs = buf.b + 5;
    size_t hslen = buf.n - 5;

    /* 32 records is the limit; 33 is refused. */
    size_t cuts[32];
    for (size_t i = 0; i < 32; i++)
        cuts[i] = i + 1;
    wrap(&frag, hs, hslen, cuts, 31);
    assert_int_equal(ch_parse(frag.b, frag.n, &info), CH_OK);
    assert_int_equal(info.nrecords, 32);
    wrap(&frag, hs, hslen, cuts, 32);
    assert_int_equal(ch_parse(frag.b, frag.n, &info), CH_MALFORMED);

    /* A record larger than 2^14. */
    uint8_t big[] = { 22, 3, 1, 0x40, 0x01, 1 };
    assert_int_equal(ch_parse(big, sizeof(big), &info), CH_MALFORMED);
    /* A zero-length handshake record. */
    uint8_t empty[] = { 22, 3, 1, 0, 0 };
    assert_int_equal(ch_parse(empty, sizeof(empty), &info), CH_MALFORMED);
    /* A handshake message over 16 KiB is refused from its header alone. */
    uint8_t huge[] = { 22, 3, 1, 0x40, 0x00, 1, 0, 0x40, 0x01 };
    assert_int_equal(ch_parse(huge, sizeof(huge), &info), CH_MALFORMED);
    uint8_t max[] = { 22, 3, 1, 0x40, 0x00, 1, 0, 0x40, 0x00 };
    assert_int_equal(ch_parse(max, sizeof(max), &info), CH_NEED_MORE);
    assert_int_equal(info.need, 5 + 0x4000 + 5 + 4);
    /* Not a ClientHello (ServerHello = 2). */
    uint8_t sh[] = { 22, 3, 3, 0, 4, 2, 0, 0, 0 };
    assert_int_equal(ch_parse(sh, sizeof(sh), &info), CH_MALFORMED);
    /* A record running past the end of the hello. */
    memcpy(frag.b, buf.b, buf.n);
    frag.b[4]++;
    frag.b[buf.n] = 0;
    assert_int_equal(ch_parse(frag.b, buf.n + 1, &info), CH_MALFORMED);
    /* A non-handshake record in the middle of a fragmented hello. */
    size_t cut = 50;
    wrap(&frag, hs, hslen, &cut, 1);
    frag.b[5 + cut] = 21;
    assert_int_equal(ch_parse(frag.b, frag.n, &info), CH_MALFORMED);
    /* Bytes after the hello's last record belong to the caller. */
    memcpy(frag.b, buf.b, buf.n);
    memcpy(frag.b + buf.n, "\x14\x03\x03\x00\x01\x01", 6);
    assert_int_equal(ch_parse(frag.b, buf.n + 6, &info), CH_OK);
    assert_int_equal(info.hello_len, buf.n);
}

static void test_not_tls(void **state)
{
    ch_info_t info;
    const char *get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(ch_parse((const uint8_t *)get, strlen(get), &info), CH_NOT_TLS);
    assert_int_equal(info.not_tls, CH_NOT_TLS_HTTP);
    assert_int_equal(ch_parse((const uint8_t *)"G", 1, &info), CH_NOT_TLS);
    assert_int_equal(info.not_tls, CH_NOT_TLS_HTTP);
    const char *pri = "PRI * HTTP/2.0\r\n";
    assert_int_equal(ch_parse((const uint8_t *)pri, strlen(pri), &info), CH_NOT_TLS);
    assert_int_equal(info.not_tls, CH_NOT_TLS_HTTP);
    /* SSLv2-compatible CLIENT-HELLO offering TLS 1.0 (RFC 5246 E.2). */
    static const uint8_t v2[] = { 0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00,
                                  0x00, 0x10, 0x00, 0x00, 0x39, 0x00, 0x00, 0x38 };
    assert_int_equal(ch_parse(v2, sizeof(v2), &info), CH_NOT_TLS);
    assert_int_equal(info.not_tls, CH_NOT_TLS_SSLV2);
    static const uint8_t ssh[] = "SSH-2.0-OpenSSH_9.2\r\n";
    assert_int_equal(ch_parse(ssh, sizeof(ssh) - 1, &info), CH_NOT_TLS);
    assert_int_equal(info.not_tls, CH_NOT_TLS_OTHER);
    static const uint8_t notv3[] = { 22, 2, 0 };
    assert_int_equal(ch_parse(notv3, sizeof(notv3), &info), CH_NOT_TLS);
    static const uint8_t alert[] = { 21, 3, 3, 0, 2, 2, 40 };
    assert_int_equal(ch_parse(alert, sizeof(alert), &info), CH_NOT_TLS);
    assert_int_equal(ch_parse(alert, 0, &info), CH_NEED_MORE);
    assert_int_equal(info.need, 5);
}

static void test_sni_names(void **state)
{
    static const struct {
        const char *in;
        ch_sni_t status;
        const char *out;
    } cases[] = {
        { "Www.Example.COM", CH_SNI_OK, "www.example.com" },
        { "example.com.", CH_SNI_OK, "example.com" },
        { "a", CH_SNI_OK, "a" },
        { "xn--bcher-kva.example", CH_SNI_OK, "xn--bcher-kva.example" },
        { "123.example", CH_SNI_OK, "123.example" },
        { "1.2.3.4", CH_SNI_IP, "1.2.3.4" },
        { "127.1", CH_SNI_IP, "127.1" },
        { "::1", CH_SNI_IP, "::1" },
        { "2001:DB8::1", CH_SNI_IP, "2001:db8::1" },
        { "fe80::1%eth0", CH_SNI_IP, "" },
        { "example.123", CH_SNI_INVALID, "" },
        { "under_score.example", CH_SNI_INVALID, "" },
        { "-lead.example", CH_SNI_INVALID, "" },
        { "trail-.example", CH_SNI_INVALID, "" },
        { "a..b", CH_SNI_INVALID, "" },
        { ".", CH_SNI_INVALID, "" },
        { "..", CH_SNI_INVALID, "" },
        { ".example.com", CH_SNI_INVALID, "" },
        { "example.com..", CH_SNI_INVALID, "" },
        { "*.example.com", CH_SNI_INVALID, "" },
        { "ex ample.com", CH_SNI_INVALID, "" },
        { "b\xc3\xbc" "cher.example", CH_SNI_INVALID, "" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ch_info_t info;
        assert_int_equal(parse_sni(cases[i].in, strlen(cases[i].in), &info), CH_OK);
        if (info.sni_status != cases[i].status)
            fail_msg("%s: got %s", cases[i].in, ch_sni_status_name(info.sni_status));
        assert_string_equal(info.sni, cases[i].out);
    }
    ch_info_t info;
    assert_int_equal(parse_sni("a\0b.example", 11, &info), CH_OK);
    assert_int_equal(info.sni_status, CH_SNI_INVALID);
    assert_int_equal(parse_sni("1.2.3.4\0", 8, &info), CH_OK);
    assert_int_equal(info.sni_status, CH_SNI_INVALID);
}

static void test_sni_lengths(void **state)
{
    char name[400];
    ch_info_t info;
    /* 63-character labels are fine, 64 is not. */
    memset(name, 'a', 64);
    memcpy(name + 63, ".com", 4);
    assert_int_equal(parse_sni(name, 67, &info), CH_OK);
    assert_int_equal(info.sni_status, CH_SNI_OK);
    memset(name, 'a', 64);
    memcpy(name + 64, ".com", 4);
    assert_int_equal(parse_sni(name, 68, &info), CH_OK);
    assert_int_equal(info.sni_status, CH_SNI_INVALID);
    /* 253 bytes: 4 x 63 labels with dots = 255; use 3 x 63 + 62. */
    memset(name, 'b', sizeof(name));
    name[63] = name[127] = name[191] = '.';
    assert_int_equal(parse_sni(name, 253, &info), CH_OK);
    assert_int_equal(info.sni_status, CH_SNI_OK);
    assert_int_equal(info.sni_len, 253);
    name[253] = '.';
    assert_int_equal(parse_sni(name, 254, &info), CH_OK);
    assert_int_equal(info.sni_status, CH_SNI_OK);
    assert_int_equal(info.sni_len, 253);
    name[253] = 'b';
    assert_int_equal(parse_sni(name, 254, &info), CH_OK);
    assert_int_equal(info.sni_status, CH_SNI_TOO_LONG);
    assert_string_equal(info.sni, "");
    assert_int_equal(parse_sni(name, 300, &info), CH_OK);
    assert_int_equal(info.sni_status, CH_SNI_TOO_LONG);
    /* A zero-length host_name violates HostName<1..2^16-1>. */
    assert_int_equal(parse_sni("", 0, &info), CH_MALFORMED);
}

static void test_sni_shapes(void **state)
{
    ch_info_t info;
    bytes_t e = { .n = 0 };
    ext_sni(&e, "a.example", 9);
    ext_sni(&e, "b.example", 9);
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);

    /* Two host_name entries in one list. */
    static const uint8_t two[] = { 0, 10, 0, 0, 3, 'a', '.', 'b', 0, 0, 1, 'c' };
    e.n = 0;
    ext_raw(&e, 0, two, sizeof(two));
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);
    /* An empty extension (the server's form) and an empty list. */
    e.n = 0;
    ext_raw(&e, 0, NULL, 0);
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);
    static const uint8_t empty_list[] = { 0, 0 };
    e.n = 0;
    ext_raw(&e, 0, empty_list, 2);
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);
    /* A name type other than host_name. */
    static const uint8_t other[] = { 0, 4, 1, 0, 1, 'a' };
    e.n = 0;
    ext_raw(&e, 0, other, sizeof(other));
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);
    /* List length disagreeing with the extension length. */
    static const uint8_t lie[] = { 0, 9, 0, 0, 3, 'a', '.', 'b' };
    e.n = 0;
    ext_raw(&e, 0, lie, sizeof(lie));
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);
    /* Name length past the list. */
    static const uint8_t over[] = { 0, 6, 0, 0, 9, 'a', '.', 'b' };
    e.n = 0;
    ext_raw(&e, 0, over, sizeof(over));
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);
}

static void test_alpn(void **state)
{
    ch_info_t info;
    bytes_t e = { .n = 0 };
    const char *acme[] = { "acme-tls/1" };
    ext_sni(&e, "a.example", 9);
    ext_alpn(&e, acme, 1);
    assert_int_equal(parse_exts(&e, &info), CH_OK);
    assert_true(info.alpn_acme && !info.alpn_h2 && !info.alpn_http11);
    assert_int_equal(info.alpn_count, 1);

    const char *many[] = { "spdy/3", "h2", "a-very-long-protocol-name-beyond-16", "http/1.1",
                           "acme-tls/2" };
    e.n = 0;
    ext_alpn(&e, many, 5);
    assert_int_equal(parse_exts(&e, &info), CH_OK);
    assert_true(!info.alpn_acme && info.alpn_h2 && info.alpn_http11);
    assert_int_equal(info.alpn_count, 5);
    assert_int_equal(info.sni_status, CH_SNI_NONE);

    static const uint8_t empty_list[] = { 0, 0 };
    static const uint8_t empty_name[] = { 0, 3, 2, 'h', '2', 0 };
    static const uint8_t short_list[] = { 0, 4, 2, 'h', '2' };
    static const uint8_t overrun[] = { 0, 3, 3, 'h', '2' };
    static const uint8_t one_byte[] = { 0 };
    const struct {
        const uint8_t *b;
        size_t n;
    } bad[] = { { empty_list, 2 }, { empty_name, 6 }, { short_list, 5 }, { overrun, 5 },
                { one_byte, 1 }, { NULL, 0 } };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e.n = 0;
        ext_raw(&e, 16, bad[i].b, bad[i].n);
        assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);
    }
}

static void test_versions_and_shape(void **state)
{
    ch_info_t info;
    bytes_t e = { .n = 0 };
    static const uint8_t v13[] = { 4, 0x0a, 0x0a, 0x03, 0x04 };
    ext_raw(&e, 43, v13, sizeof(v13));
    assert_int_equal(parse_exts(&e, &info), CH_OK);
    assert_true(info.tls13 && !info.tls12);
    static const uint8_t odd[] = { 3, 3, 4, 3 };
    e.n = 0;
    ext_raw(&e, 43, odd, sizeof(odd));
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);

    /* No extensions block at all: a TLS 1.2 hello without SNI. */
    assert_int_equal(parse_exts(NULL, &info), CH_OK);
    assert_true(info.tls12 && !info.tls13);
    assert_int_equal(info.sni_status, CH_SNI_NONE);

    /* Any duplicated extension type, and an extension overrunning its block. */
    e.n = 0;
    ext_raw(&e, 0xff01, "\0", 1);
    ext_raw(&e, 0xff01, "\0", 1);
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);
    e.n = 0;
    put_u16(&e, 23);
    put_u16(&e, 5);
    put_u8(&e, 0);
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);
    /* 64 distinct extensions fit, 65 do not. */
    e.n = 0;
    for (unsigned i = 0; i < 64; i++)
        ext_raw(&e, 0x1000 + i, NULL, 0);
    assert_int_equal(parse_exts(&e, &info), CH_OK);
    ext_raw(&e, 0x2000, NULL, 0);
    assert_int_equal(parse_exts(&e, &info), CH_MALFORMED);

    /* Trailing garbage inside the handshake message. */
    bytes_t hs, rec;
    build_handshake(&hs, NULL);
    hs.b[3]++;
    put_u8(&hs, 0);
    wrap(&rec, hs.b, hs.n, NULL, 0);
    assert_int_equal(ch_parse(rec.b, rec.n, &info), CH_MALFORMED);
    /* Session id longer than 32. */
    build_handshake(&hs, NULL);
    hs.b[4 + 34] = 33;
    wrap(&rec, hs.b, hs.n, NULL, 0);
    assert_int_equal(ch_parse(rec.b, rec.n, &info), CH_MALFORMED);
}

static void test_alert_bytes(void **state)
{
    uint8_t out[CH_ALERT_LEN];
    static const uint8_t want[] = { 21, 3, 3, 0, 2, 2, 112 };
    assert_int_equal(ch_alert_bytes(CH_ALERT_FATAL, CH_ALERT_UNRECOGNIZED_NAME, out), 7);
    assert_memory_equal(out, want, sizeof(want));
    ch_alert_bytes(CH_ALERT_FATAL, CH_ALERT_DECODE_ERROR, out);
    assert_int_equal(out[6], 50);
    assert_string_equal(ch_result_name(CH_NOT_TLS), "not_tls");
    assert_string_equal(ch_sni_status_name(CH_SNI_TOO_LONG), "too_long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_hellos),
        cmocka_unit_test(test_truncated_every_offset),
        cmocka_unit_test(test_fragmented),
        cmocka_unit_test(test_record_limits),
        cmocka_unit_test(test_not_tls),
        cmocka_unit_test(test_sni_names),
        cmocka_unit_test(test_sni_lengths),
        cmocka_unit_test(test_sni_shapes),
        cmocka_unit_test(test_alpn),
        cmocka_unit_test(test_versions_and_shape),
        cmocka_unit_test(test_alert_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
