/* Fuzzes the parsers of what an ACME server sends (control/acme_parse.h,
 * implemented in control/acme.c), which the client runs on every response
 * body and header line. The first byte picks the parser, the rest is the
 * body, header line or header value. Beyond memory safety (ASan), the
 * documented guarantees are checked: bounded strings, base64url tokens,
 * ordered windows, clamped delays, values inside their line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/acme_parse.h"

#define CHECK(x)         \
    do {                 \
        if (!(x))        \
            abort();     \
    } while (0)

/* 2023-11-14T22:13:20Z: Retry-After dates are measured from here. */
#define NOW_S 1700000000

static void check_str(const char *s)
{
    CHECK(!s || strlen(s) <= ACME_PARSE_MAX_STR);
}

static void check_problem(const acme_problem_t *p)
{
    check_str(p->type);
    check_str(p->detail);
}

static void fuzz_problem(const char *p, size_t n)
{
    acme_problem_t pr;
    if (acme_parse_problem(p, n, &pr) != 0)
        CHECK(!pr.type && !pr.detail);
    check_problem(&pr);
    acme_problem_clear(&pr);
    acme_problem_clear(&pr); /* idempotent */
}

static void fuzz_directory(const char *p, size_t n)
{
    acme_directory_t d;
    if (acme_parse_directory(p, n, &d) == 0)
        CHECK(d.new_nonce && d.new_account && d.new_order);
    else
        CHECK(!d.new_nonce && !d.new_account && !d.new_order && !d.renewal_info);
    check_str(d.new_nonce);
    check_str(d.renewal_info);
    acme_directory_clear(&d);
}

static void fuzz_order(const char *p, size_t n)
{
    acme_order_obj_t o;
    int rc = acme_parse_order(p, n, &o);
    CHECK(rc == 0 || (!o.authz && !o.finalize));
    CHECK(o.nauthz <= ACME_PARSE_MAX_AUTHZ && (o.authz || o.nauthz == 0));
    for (size_t i = 0; i < o.nauthz; i++) {
        CHECK(o.authz[i]);
        check_str(o.authz[i]);
    }
    check_str(o.finalize);
    check_str(o.certificate);
    check_problem(&o.error);
    CHECK(*acme_obj_status_name(o.status) != '?');
    acme_order_obj_clear(&o);
}

static void fuzz_authz(const char *p, size_t n, unsigned pick)
{
    static const char *const types[] = { "tls-alpn-01", "http-01", "dns-01" };
    acme_authz_obj_t a;
    int ntypes = (int)(pick % 4); /* none to all three */
    acme_parse_authz(p, n, types, ntypes, &a);
    CHECK(a.chall >= -1 && a.chall < ntypes);
    if (a.chall >= 0) {
        CHECK(a.chall_url && a.chall_token && *a.chall_token);
        check_str(a.chall_url);
        CHECK(strspn(a.chall_token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
              strlen(a.chall_token));
    } else {
        CHECK(!a.chall_url && !a.chall_token);
    }
    check_problem(&a.error);
    acme_authz_obj_clear(&a);
}

static void fuzz_challenge(const char *p, size_t n)
{
    acme_chall_obj_t c;
    acme_parse_challenge(p, n, &c);
    check_problem(&c.error);
    acme_chall_obj_clear(&c);
}

static void fuzz_ari(const char *p, size_t n)
{
    acme_ari_obj_t a;
    if (acme_parse_renewal_info(p, n, &a) == 0)
        CHECK(a.start_ms <= a.end_ms);
    else
        CHECK(!a.explanation_url && a.start_ms == 0 && a.end_ms == 0);
    check_str(a.explanation_url);
    acme_ari_obj_clear(&a);
}

static void fuzz_retry_after(const char *p, size_t n)
{
    int s = acme_parse_retry_after(p, n, NOW_S);
    CHECK(s >= -1 && s <= ACME_PARSE_MAX_DELAY);
}

static void fuzz_link(const char *p, size_t n, unsigned pick)
{
    static const char *const rels[] = { "alternate", "up", "index", "" };
    char *url = acme_parse_link(p, n, rels[pick % 4]);
    if (url) {
        CHECK(strlen(url) <= ACME_PARSE_MAX_STR && strlen(url) < n);
        CHECK(*rels[pick % 4]); /* an empty rel names nothing */
    }
    free(url);
}

/* A header line as on_header sees it, then its value through the header
 * parsers, as the client does for Retry-After. */
static void fuzz_header(const char *p, size_t n, unsigned pick)
{
    const char *name = NULL, *v = NULL;
    size_t nl = 0, vl = 0;
    int kind = acme_header_split(p, n, &name, &nl, &v, &vl);
    CHECK(kind == ACME_HDR_OTHER || kind == ACME_HDR_STATUS || kind == ACME_HDR_FIELD);
    if (kind != ACME_HDR_FIELD)
        return;
    CHECK(name == p && nl > 0 && nl < n && memchr(name, ':', nl) == NULL);
    CHECK(v >= p + nl + 1 && v + vl <= p + n);
    fuzz_retry_after(v, vl);
    fuzz_link(v, vl, pick);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    switch (sel % 9) {
    case 0:
        fuzz_problem(p, n);
        break;
    case 1:
        fuzz_directory(p, n);
        break;
    case 2:
        fuzz_order(p, n);
        break;
    case 3:
        fuzz_authz(p, n, sel / 9);
        break;
    case 4:
        fuzz_challenge(p, n);
        break;
    case 5:
        fuzz_ari(p, n);
        break;
    case 6:
        fuzz_header(p, n, sel / 9);
        break;
    case 7:
        fuzz_retry_after(p, n);
        break;
    default:
        fuzz_link(p, n, sel / 9);
        break;
    }
    return 0;
}
