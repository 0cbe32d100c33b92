/* Probe tests: every hint from synthetic facts (no network), probe_absorb on
 * hand-built packets, CAA and Cloudflare tables, the JSON shape, and the async
 * path against a tiny in-process authoritative server that answers one hop
 * at a time and plays a DNSSEC validator for "bogus." names. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/util.h"
#include "control/probe.h"

/* ---- synthetic facts ---------------------------------------------------- */

static void facts(probe_facts_t *f, const char *start, dns_status_t st, const char *chain,
                  const char *values)
{
    assert_int_equal(probe_facts_init(f, start), 0);
    f->queried = true;
    f->status = st;
    char buf[512];
    if (chain) {
        snprintf(buf, sizeof(buf), "%s", chain);
        char *save = NULL;
        for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
            f->chain[f->nchain++] = strdup(t);
            if (strcmp(t, "edge.hee.la") == 0)
                f->reached_target = true;
        }
    }
    if (values) {
        snprintf(buf, sizeof(buf), "%s", values);
        char *save = NULL;
        for (char *t = strtok_r(buf, "|", &save); t; t = strtok_r(NULL, "|", &save))
            assert_int_equal(probe_facts_add_value(f, t), 0);
    }
}

typedef struct {
    probe_answers_t ans;
    probe_result_t res;
    probe_request_t req;
} fx_t;

static const char *const edge_addrs[] = {"192.0.2.10", "2001:db8::10"};

static void fx_init(fx_t *x, unsigned methods)
{
    memset(x, 0, sizeof(*x));
    x->req.hostname = "www.cust.test";
    x->req.cname_target = "edge.hee.la";
    x->req.edge_addrs = edge_addrs;
    x->req.n_edge_addrs = 2;
    x->req.methods = methods;
}

/* A CNAME-method probe that checks CAA for letsencrypt.org, whose A and
 * AAAA lookups followed chain (NULL: found nothing). Challenges as
 * [acme] challenges reads by default. */
static void fx_caa(fx_t *x, const char *chain)
{
    fx_init(x, PROBE_M_CNAME);
    x->req.ca_identifier = "letsencrypt.org";
    x->req.acme_challenges = "tls-alpn-01 http-01";
    facts(&x->ans.a, "www.cust.test", DNS_OK, chain, NULL);
    facts(&x->ans.aaaa, "www.cust.test", DNS_OK, chain, NULL);
}

static void fx_decide(fx_t *x)
{
    assert_int_equal(probe_decide(&x->req, &x->ans, &x->res), 0);
    assert_non_null(x->res.outcome);
    assert_non_null(x->res.summary);
    assert_true(strlen(x->res.summary) <= 255);
}

static void fx_free(fx_t *x)
{
    probe_result_clear(&x->res);
    probe_facts_clear(&x->ans.a);
    probe_facts_clear(&x->ans.aaaa);
    probe_facts_clear(&x->ans.txt);
    probe_facts_clear(&x->ans.caa);
}

static const probe_record_t *rec(const fx_t *x, const char *type)
{
    for (size_t i = 0; i < x->res.nrecords; i++)
        if (strcmp(x->res.records[i].type, type) == 0)
            return &x->res.records[i];
    fail_msg("no %s record", type);
    return NULL;
}

#define ALL_METHODS (PROBE_M_CNAME | PROBE_M_A | PROBE_M_TXT)

static void test_verified_cname(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_CNAME);
    facts(&x.ans.a, "www.cust.test", DNS_OK, "edge.hee.la", NULL);
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, "edge.hee.la", NULL);
    fx_decide(&x);
    assert_true(x.res.verified);
    assert_int_equal(x.res.method, PROBE_M_CNAME);
    assert_string_equal(x.res.verdict, "verified");
    assert_int_equal(x.res.hint, PROBE_HINT_OK);
    assert_int_equal(rec(&x, "CNAME")->hint, PROBE_HINT_OK);
    assert_string_equal(rec(&x, "CNAME")->expected, "edge.hee.la");
    assert_string_equal(rec(&x, "CNAME")->found[0], "edge.hee.la");
    assert_int_equal(rec(&x, "AAAA")->hint, PROBE_HINT_OK);
    assert_string_equal(x.res.summary, "cname=edge.hee.la a=- aaaa=- hint=ok");
    fx_free(&x);
}

static void test_verified_a(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_CNAME | PROBE_M_A);
    facts(&x.ans.a, "www.cust.test", DNS_OK, NULL, "192.0.2.10");
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, "2001:db8:0::10");
    fx_decide(&x);
    assert_true(x.res.verified);
    assert_int_equal(x.res.method, PROBE_M_A);
    assert_int_equal(rec(&x, "CNAME")->hint, PROBE_HINT_OK); /* A is an accepted way */
    assert_string_equal(rec(&x, "A")->expected, "192.0.2.10");
    assert_string_equal(rec(&x, "AAAA")->expected, "2001:db8::10");
    fx_free(&x);
}

static void test_verified_txt(void **state)
{
    fx_t x;
    fx_init(&x, ALL_METHODS);
    x.req.txt_value = "tok-123";
    facts(&x.ans.a, "www.cust.test", DNS_OK, "old.host.example", "198.51.100.1");
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, "old.host.example", NULL);
    facts(&x.ans.txt, "_customdomain-challenge.www.cust.test", DNS_OK, NULL, "other|tok-123");
    fx_decide(&x);
    assert_true(x.res.verified);
    assert_int_equal(x.res.method, PROBE_M_TXT);
    assert_int_equal(x.res.hint, PROBE_HINT_OK);
    /* The CNAME still points elsewhere and the report says so. */
    assert_int_equal(rec(&x, "CNAME")->hint, PROBE_HINT_WRONG_TARGET);
    assert_int_equal(rec(&x, "TXT")->hint, PROBE_HINT_OK);
    assert_string_equal(rec(&x, "TXT")->name, "_customdomain-challenge.www.cust.test");
    fx_free(&x);
}

static void test_missing(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_CNAME);
    facts(&x.ans.a, "www.cust.test", DNS_OK, NULL, NULL);
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, NULL);
    fx_decide(&x);
    assert_false(x.res.verified);
    assert_string_equal(x.res.verdict, "unverified");
    assert_int_equal(x.res.hint, PROBE_HINT_MISSING);
    assert_string_equal(x.res.outcome, "www.cust.test has no CNAME record (expected edge.hee.la)");
    assert_int_equal(rec(&x, "A")->hint, PROBE_HINT_OK); /* A not accepted: no hint */
    fx_free(&x);
}

static void test_nxdomain(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_CNAME | PROBE_M_A);
    facts(&x.ans.a, "www.cust.test", DNS_ERR_NXDOMAIN, NULL, NULL);
    facts(&x.ans.aaaa, "www.cust.test", DNS_ERR_NXDOMAIN, NULL, NULL);
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_NXDOMAIN);
    assert_int_equal(rec(&x, "A")->hint, PROBE_HINT_NXDOMAIN);
    assert_string_equal(x.res.outcome, "www.cust.test does not exist (NXDOMAIN)");
    fx_free(&x);
}

static void test_wrong_target(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_CNAME);
    facts(&x.ans.a, "www.cust.test", DNS_OK, "shop.other.example", "198.51.100.7");
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, "shop.other.example", NULL);
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_WRONG_TARGET);
    assert_string_equal(x.res.outcome, "www.cust.test points to shop.other.example instead of edge.hee.la");
    fx_free(&x);
    /* A dangling CNAME (target does not exist) is a wrong target too. */
    fx_init(&x, PROBE_M_CNAME);
    facts(&x.ans.a, "www.cust.test", DNS_ERR_NXDOMAIN, "typo.hee.la", NULL);
    facts(&x.ans.aaaa, "www.cust.test", DNS_ERR_NXDOMAIN, "typo.hee.la", NULL);
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_WRONG_TARGET);
    fx_free(&x);
}

static void test_wrong_type(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_CNAME);
    facts(&x.ans.a, "www.cust.test", DNS_OK, NULL, "198.51.100.7");
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, NULL);
    fx_decide(&x);
    assert_int_equal(rec(&x, "CNAME")->hint, PROBE_HINT_WRONG_TYPE);
    assert_int_equal(x.res.hint, PROBE_HINT_WRONG_TYPE);
    fx_free(&x);
}

static void test_cloudflare_proxy(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_CNAME | PROBE_M_A);
    facts(&x.ans.a, "www.cust.test", DNS_OK, NULL, "104.16.132.229|172.67.1.2");
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, "2606:4700::6810:84e5");
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_CLOUDFLARE_PROXY);
    assert_int_equal(rec(&x, "A")->hint, PROBE_HINT_CLOUDFLARE_PROXY);
    assert_int_equal(rec(&x, "AAAA")->hint, PROBE_HINT_CLOUDFLARE_PROXY);
    fx_free(&x);
}

static void test_partial(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_A);
    facts(&x.ans.a, "www.cust.test", DNS_OK, NULL, "192.0.2.10|198.51.100.7");
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, NULL);
    fx_decide(&x);
    assert_false(x.res.verified);
    assert_int_equal(rec(&x, "A")->hint, PROBE_HINT_PARTIAL);
    assert_int_equal(x.res.hint, PROBE_HINT_PARTIAL);
    fx_free(&x);
    /* A method, all addresses elsewhere: the sentence names the address. */
    fx_init(&x, PROBE_M_A);
    facts(&x.ans.a, "www.cust.test", DNS_OK, NULL, "198.51.100.7");
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, NULL);
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_WRONG_TARGET);
    assert_string_equal(x.res.outcome, "www.cust.test points to 198.51.100.7, not to the edge addresses");
    fx_free(&x);
    /* A method, nothing there. */
    fx_init(&x, PROBE_M_A);
    facts(&x.ans.a, "www.cust.test", DNS_OK, NULL, NULL);
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, NULL);
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_MISSING);
    assert_string_equal(x.res.outcome, "www.cust.test has no A records");
    fx_free(&x);
}

static void test_caa_blocks_issuer(void **state)
{
    fx_t x;
    fx_caa(&x, "edge.hee.la");
    facts(&x.ans.caa, "www.cust.test", DNS_OK, NULL, "0 issue digicert.com|0 iodef mailto:x@y");
    free(x.ans.caa.owner);
    x.ans.caa.owner = strdup("cust.test");
    fx_decide(&x);
    assert_false(x.res.verified);
    assert_int_equal(x.res.hint, PROBE_HINT_CAA_BLOCKS_ISSUER);
    assert_string_equal(rec(&x, "CAA")->name, "cust.test");
    assert_string_equal(rec(&x, "CAA")->expected, "letsencrypt.org");
    assert_string_equal(x.res.outcome, "CAA records at cust.test do not allow letsencrypt.org to issue");
    fx_free(&x);
    /* Allowed issuer: verified, CAA row ok. */
    fx_caa(&x, "edge.hee.la");
    facts(&x.ans.caa, "www.cust.test", DNS_OK, NULL, "0 issue LetsEncrypt.org; validationmethods=tls-alpn-01");
    fx_decide(&x);
    assert_true(x.res.verified);
    assert_int_equal(rec(&x, "CAA")->hint, PROBE_HINT_OK);
    fx_free(&x);
    /* Our CA, but only by a method Hee does not use (RFC 8657 4): blocks,
     * and the outcome says which parameter. */
    fx_caa(&x, "edge.hee.la");
    facts(&x.ans.caa, "www.cust.test", DNS_OK, NULL, "0 issue LetsEncrypt.org; validationmethods=dns-01");
    fx_decide(&x);
    assert_false(x.res.verified);
    assert_int_equal(x.res.hint, PROBE_HINT_CAA_BLOCKS_ISSUER);
    assert_string_equal(x.res.outcome, "CAA records at www.cust.test allow letsencrypt.org to issue only with "
                                       "validation methods other than tls-alpn-01");
    fx_free(&x);
    /* accounturi: ours verifies; another, or none known yet, blocks. */
    static const struct {
        const char *account, *outcome;
    } acct[] = {
        {"https://acme-v02.api.letsencrypt.org/acme/acct/42", NULL},
        {"https://acme-v02.api.letsencrypt.org/acme/acct/7",
         "CAA records at www.cust.test allow letsencrypt.org to issue only for another ACME account (accounturi)"},
        {NULL, "CAA records at www.cust.test allow letsencrypt.org to issue only for a given ACME account "
               "(accounturi), and this Hee has no account there yet"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(acct); i++) {
        fx_init(&x, PROBE_M_CNAME);
        x.req.ca_identifier = "letsencrypt.org";
        x.req.acme_account = acct[i].account;
        x.req.acme_challenges = "http-01 tls-alpn-01";
        facts(&x.ans.a, "www.cust.test", DNS_OK, "edge.hee.la", NULL);
        facts(&x.ans.aaaa, "www.cust.test", DNS_OK, "edge.hee.la", NULL);
        facts(&x.ans.caa, "www.cust.test", DNS_OK, NULL,
              "0 issue letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/42");
        fx_decide(&x);
        assert_int_equal(x.res.verified, acct[i].outcome == NULL);
        if (acct[i].outcome)
            assert_string_equal(x.res.outcome, acct[i].outcome);
        fx_free(&x);
    }
}

/* A CAA set found at the end of the hostname's CNAME chain is the
 * hostname's own (RFC 8659 3): the row names where it was found. */
static void test_caa_at_cname_target(void **state)
{
    fx_t x;
    fx_caa(&x, "edge.hee.la");
    facts(&x.ans.caa, "www.cust.test", DNS_OK, "edge.hee.la", "0 issue digicert.com");
    x.ans.caa.owner = strdup("edge.hee.la");
    fx_decide(&x);
    assert_false(x.res.verified);
    assert_int_equal(x.res.hint, PROBE_HINT_CAA_BLOCKS_ISSUER);
    assert_string_equal(rec(&x, "CAA")->name, "edge.hee.la");
    assert_string_equal(x.res.outcome, "CAA records at edge.hee.la do not allow letsencrypt.org to issue");
    fx_free(&x);
}

/* A CAA lookup that failed anywhere in the climb is not "no CAA": a CA
 * refuses to issue then. With a method matched the probe is inconclusive
 * (a DNS failure proves nothing either way), never verified, never
 * caa_blocks_issuer. */
static void test_caa_lookup_failed(void **state)
{
    static const struct {
        dns_status_t st;
        probe_hint_t hint;
        const char *outcome;
    } cases[] = {
        {DNS_ERR_SERVFAIL, PROBE_HINT_SERVFAIL,
         "DNS servers failed to answer the CAA lookup for cust.test; the CA would refuse to issue"},
        {DNS_ERR_REFUSED, PROBE_HINT_SERVFAIL, NULL},
        {DNS_ERR_MALFORMED, PROBE_HINT_SERVFAIL, NULL},
        {DNS_ERR_TIMEOUT, PROBE_HINT_TIMEOUT, "the CAA lookup for cust.test timed out; the CA would refuse to issue"},
        {DNS_ERR_NETWORK, PROBE_HINT_TIMEOUT, NULL},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        fx_t x;
        fx_caa(&x, "edge.hee.la");
        /* The hostname had no CAA; its parent's lookup failed (no owner). */
        facts(&x.ans.caa, "cust.test", cases[i].st, NULL, NULL);
        fx_decide(&x);
        assert_false(x.res.verified);
        assert_int_equal(x.res.method, PROBE_M_NONE);
        assert_string_equal(x.res.verdict, "inconclusive");
        assert_int_equal(x.res.hint, cases[i].hint);
        assert_int_equal(rec(&x, "CAA")->hint, cases[i].hint);
        assert_string_equal(rec(&x, "CAA")->name, "cust.test");
        if (cases[i].outcome)
            assert_string_equal(x.res.outcome, cases[i].outcome);
        assert_non_null(strstr(x.res.summary, " caa="));
        assert_null(strstr(x.res.summary, "caa=ok"));
        fx_free(&x);
    }
    /* Nothing matched anyway: the CNAME is the thing to fix, not the CAA. */
    fx_t x;
    fx_caa(&x, NULL);
    facts(&x.ans.caa, "cust.test", DNS_ERR_TIMEOUT, NULL, NULL);
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_MISSING);
    assert_string_equal(x.res.verdict, "unverified");
    assert_int_equal(rec(&x, "CAA")->hint, PROBE_HINT_TIMEOUT);
    fx_free(&x);
    /* A validator rejects the CAA answers (they came only with CD). */
    fx_caa(&x, "edge.hee.la");
    facts(&x.ans.caa, "cust.test", DNS_ERR_SERVFAIL, NULL, "0 issue letsencrypt.org");
    x.ans.caa.cd_answered = true;
    fx_decide(&x);
    assert_false(x.res.verified);
    assert_int_equal(x.res.hint, PROBE_HINT_DNSSEC_BOGUS);
    assert_string_equal(x.res.verdict, "unverified");
    assert_string_equal(x.res.outcome, "DNSSEC validation fails for the CAA records of cust.test");
    fx_free(&x);
}

/* A CAA lookup whose CNAME chain loops or runs past PROBE_MAX_HOPS is an
 * error (a resolver answers SERVFAIL, and the CA refuses): cname_loop. */
static void test_caa_chain_loops(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_A);
    x.req.ca_identifier = "letsencrypt.org";
    facts(&x.ans.a, "www.cust.test", DNS_OK, NULL, "192.0.2.10");
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, NULL);
    facts(&x.ans.caa, "cust.test", DNS_OK, "lp2.cust.test cust.test", NULL);
    x.ans.caa.loop = true;
    fx_decide(&x);
    assert_false(x.res.verified);
    assert_string_equal(x.res.verdict, "unverified");
    assert_int_equal(x.res.hint, PROBE_HINT_CNAME_LOOP);
    assert_int_equal(rec(&x, "CAA")->hint, PROBE_HINT_CNAME_LOOP);
    assert_string_equal(rec(&x, "CAA")->name, "cust.test");
    assert_string_equal(x.res.outcome,
                        "the CNAME chain of cust.test loops or is longer than 8 hops (CAA lookup)");
    fx_free(&x);
}

static void test_stray_aaaa(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_A);
    facts(&x.ans.a, "www.cust.test", DNS_OK, NULL, "192.0.2.10");
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, "2001:db8::99");
    fx_decide(&x);
    assert_false(x.res.verified);
    assert_int_equal(rec(&x, "A")->hint, PROBE_HINT_OK);
    assert_int_equal(rec(&x, "AAAA")->hint, PROBE_HINT_STRAY_AAAA);
    assert_int_equal(x.res.hint, PROBE_HINT_STRAY_AAAA);
    fx_free(&x);
    /* An edge without IPv6: any AAAA next to a right CNAME-less A is stray. */
    fx_init(&x, PROBE_M_A);
    x.req.n_edge_addrs = 1;
    facts(&x.ans.a, "www.cust.test", DNS_OK, NULL, "192.0.2.10");
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, "2001:db8::10");
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_STRAY_AAAA);
    fx_free(&x);
}

static void test_dnssec_bogus(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_CNAME);
    facts(&x.ans.a, "www.cust.test", DNS_ERR_SERVFAIL, "edge.hee.la", NULL);
    x.ans.a.cd_answered = true;
    facts(&x.ans.aaaa, "www.cust.test", DNS_ERR_SERVFAIL, NULL, NULL);
    fx_decide(&x);
    assert_false(x.res.verified);
    assert_int_equal(x.res.hint, PROBE_HINT_DNSSEC_BOGUS);
    assert_string_equal(x.res.verdict, "unverified");
    fx_free(&x);
}

static void test_cname_loop(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_CNAME);
    facts(&x.ans.a, "www.cust.test", DNS_OK, "b.cust.test www.cust.test", NULL);
    x.ans.a.loop = true;
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, "b.cust.test www.cust.test", NULL);
    x.ans.aaaa.loop = true;
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_CNAME_LOOP);
    assert_string_equal(x.res.summary, "cname=b.cust.test>www.cust.test a=- aaaa=- hint=cname_loop");
    fx_free(&x);
}

static void test_servfail_and_timeout(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_CNAME);
    facts(&x.ans.a, "www.cust.test", DNS_ERR_REFUSED, NULL, NULL);
    facts(&x.ans.aaaa, "www.cust.test", DNS_ERR_SERVFAIL, NULL, NULL);
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_SERVFAIL);
    assert_string_equal(x.res.verdict, "inconclusive");
    fx_free(&x);
    fx_init(&x, PROBE_M_CNAME);
    facts(&x.ans.a, "www.cust.test", DNS_ERR_TIMEOUT, NULL, NULL);
    facts(&x.ans.aaaa, "www.cust.test", DNS_ERR_NETWORK, NULL, NULL);
    fx_decide(&x);
    assert_int_equal(x.res.hint, PROBE_HINT_TIMEOUT);
    assert_string_equal(x.res.verdict, "inconclusive");
    fx_free(&x);
}

static void test_txt_wrong_value_and_priority(void **state)
{
    fx_t x;
    fx_init(&x, PROBE_M_TXT);
    x.req.txt_value = "tok-123";
    facts(&x.ans.a, "www.cust.test", DNS_ERR_TIMEOUT, NULL, NULL); /* irrelevant to TXT */
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, NULL, NULL);
    facts(&x.ans.txt, "_customdomain-challenge.www.cust.test", DNS_OK, NULL, "tok-999");
    fx_decide(&x);
    assert_int_equal(rec(&x, "TXT")->hint, PROBE_HINT_WRONG_TARGET);
    assert_int_equal(x.res.hint, PROBE_HINT_WRONG_TARGET);
    assert_string_equal(x.res.outcome,
                        "the ownership TXT record at _customdomain-challenge.www.cust.test holds another value");
    assert_int_equal(rec(&x, "A")->hint, PROBE_HINT_TIMEOUT); /* shown, not decisive */
    assert_string_equal(x.res.verdict, "unverified");
    fx_free(&x);
    /* CNAME wrong and TXT missing: the wrong CNAME is the better hint. */
    fx_init(&x, PROBE_M_CNAME | PROBE_M_TXT);
    x.req.txt_value = "tok-123";
    facts(&x.ans.a, "www.cust.test", DNS_OK, "elsewhere.example", NULL);
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, "elsewhere.example", NULL);
    facts(&x.ans.txt, "_customdomain-challenge.www.cust.test", DNS_ERR_NXDOMAIN, NULL, NULL);
    fx_decide(&x);
    assert_int_equal(rec(&x, "TXT")->hint, PROBE_HINT_MISSING);
    assert_int_equal(x.res.hint, PROBE_HINT_WRONG_TARGET);
    fx_free(&x);
}

static void test_json(void **state)
{
    fx_t x;
    fx_init(&x, ALL_METHODS);
    x.req.txt_value = "tok";
    x.req.ca_identifier = "letsencrypt.org";
    facts(&x.ans.a, "www.cust.test", DNS_OK, "a.example edge.hee.la", NULL);
    facts(&x.ans.aaaa, "www.cust.test", DNS_OK, "a.example edge.hee.la", NULL);
    facts(&x.ans.txt, "_customdomain-challenge.www.cust.test", DNS_ERR_NXDOMAIN, NULL, NULL);
    facts(&x.ans.caa, "www.cust.test", DNS_OK, NULL, NULL);
    fx_decide(&x);
    json_t *j = probe_result_to_json(&x.res);
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_string_equal(s,
        "{\"verdict\":\"verified\",\"hint\":\"ok\",\"verified\":true,\"method\":\"cname\","
        "\"outcome\":\"www.cust.test is a CNAME to edge.hee.la\",\"records\":["
        "{\"type\":\"CNAME\",\"name\":\"www.cust.test\",\"found\":[\"a.example\",\"edge.hee.la\"],"
        "\"expected\":\"edge.hee.la\",\"hint\":\"ok\",\"status\":\"OK\"},"
        "{\"type\":\"A\",\"name\":\"www.cust.test\",\"found\":[],\"expected\":\"192.0.2.10\","
        "\"hint\":\"ok\",\"status\":\"OK\"},"
        "{\"type\":\"AAAA\",\"name\":\"www.cust.test\",\"found\":[],\"expected\":\"2001:db8::10\","
        "\"hint\":\"ok\",\"status\":\"OK\"},"
        "{\"type\":\"TXT\",\"name\":\"_customdomain-challenge.www.cust.test\",\"found\":[],"
        "\"expected\":\"tok\",\"hint\":\"missing\",\"status\":\"NXDOMAIN\"},"
        "{\"type\":\"CAA\",\"name\":\"www.cust.test\",\"found\":[],\"expected\":\"letsencrypt.org\","
        "\"hint\":\"ok\",\"status\":\"OK\"}]}");
    free(s);
    json_decref(j);
    fx_free(&x);
}

static void test_caa_allows(void **state)
{
    char *none[] = {NULL};
    assert_true(probe_caa_allows(none, 0, "letsencrypt.org", NULL, NULL));
    char *le[] = {"0 issue letsencrypt.org"};
    assert_true(probe_caa_allows(le, 1, "letsencrypt.org", NULL, NULL));
    char *other[] = {"0 issue digicert.com", "0 issue  pki.goog ; x=y"};
    assert_false(probe_caa_allows(other, 2, "letsencrypt.org", NULL, NULL));
    assert_true(probe_caa_allows(other, 2, "pki.goog", NULL, NULL));
    char *deny[] = {"0 issue ;"};
    assert_false(probe_caa_allows(deny, 1, "letsencrypt.org", NULL, NULL));
    char *wild_only[] = {"0 issuewild digicert.com", "0 iodef mailto:a@b"};
    assert_true(probe_caa_allows(wild_only, 2, "letsencrypt.org", NULL, NULL));
    char *critical[] = {"128 tbs unknown"};
    assert_false(probe_caa_allows(critical, 1, "letsencrypt.org", NULL, NULL));
    char *noncritical[] = {"0 tbs unknown"};
    assert_true(probe_caa_allows(noncritical, 1, "letsencrypt.org", NULL, NULL));
    char *prefix[] = {"0 issue letsencrypt.org.evil"};
    assert_false(probe_caa_allows(prefix, 1, "letsencrypt.org", NULL, NULL));
    char *shorter[] = {"0 issue letsencrypt"};
    assert_false(probe_caa_allows(shorter, 1, "letsencrypt.org", NULL, NULL));
    /* Tags and issuer names compare case-insensitively. */
    char *upper[] = {"0 ISSUE LetsEncrypt.ORG"};
    assert_true(probe_caa_allows(upper, 1, "letsencrypt.org", NULL, NULL));
    /* Authorisations add up: an empty issuer next to ours still allows. */
    char *additive[] = {"0 issue ;", "0 issue letsencrypt.org"};
    assert_true(probe_caa_allows(additive, 2, "letsencrypt.org", NULL, NULL));
    /* WSP is space or tab (tab arrives as \009), around the name and the
     * parameters (RFC 8657 ones: test_caa_rfc8657). */
    char *tabs[] = {"0 issue \\009letsencrypt.org\\009 ;\\009accounturi = https://acme/acct/1 ; "
                    "validationmethods=http-01 "};
    assert_true(probe_caa_allows(tabs, 1, "letsencrypt.org", "https://acme/acct/1", "http-01"));
    assert_false(probe_caa_allows(tabs, 1, "letsencrypt.org", "https://acme/acct/1", NULL));
    char *bare_semi[] = {"0 issue letsencrypt.org;"};
    assert_true(probe_caa_allows(bare_semi, 1, "letsencrypt.org", NULL, NULL));
    char *bslash[] = {"0 issue letsencrypt.org; a-b=x\\092y"};
    assert_true(probe_caa_allows(bslash, 1, "letsencrypt.org", NULL, NULL));
    /* A malformed issue value counts as an empty issuer (RFC 8659 4.2). */
    static const char *const malformed[] = {
        "0 issue letsencrypt.org; garbage",        /* no "=" */
        "0 issue letsencrypt.org; a=b;",           /* ";" with no parameter after it */
        "0 issue letsencrypt.org;; a=b",
        "0 issue letsencrypt.org; -a=b",           /* tag must start alphanumeric */
        "0 issue letsencrypt.org; a-=b",           /* ... and end so */
        "0 issue letsencrypt.org; a=b c",          /* space inside a value */
        "0 issue letsencrypt.org; a=\\200",        /* not ASCII */
        "0 issue letsencrypt.org x",               /* two names */
        "0 issue letsencrypt.org\\000",            /* a NUL byte in the name */
        "0 issue %%%%%",
        "0 issue",
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(malformed); i++) {
        char *one[] = {(char *)malformed[i]};
        if (probe_caa_allows(one, 1, "letsencrypt.org", NULL, NULL))
            fail_msg("allowed: %s", malformed[i]);
    }
    /* ... and a well-formed record next to it still allows. */
    char *mixed[] = {"0 issue letsencrypt.org; garbage", "0 issue letsencrypt.org; x=1"};
    assert_true(probe_caa_allows(mixed, 2, "letsencrypt.org", NULL, NULL));
    /* Critical: bit 128, and bit 1 as Let's Encrypt reads it; only unknown
     * tags block. issuemail (RFC 9495) is known. */
    char *crit1[] = {"0 issue letsencrypt.org", "1 tbs unknown"};
    assert_false(probe_caa_allows(crit1, 2, "letsencrypt.org", NULL, NULL));
    char *crit_other_bits[] = {"0 issue letsencrypt.org", "6 tbs unknown"};
    assert_true(probe_caa_allows(crit_other_bits, 2, "letsencrypt.org", NULL, NULL));
    char *crit_known[] = {"128 issuewild ;", "129 iodef mailto:a@b", "128 issuemail ;",
                          "0 issue letsencrypt.org"};
    assert_true(probe_caa_allows(crit_known, 4, "letsencrypt.org", NULL, NULL));
    char *crit_mixed_case[] = {"128 IssueMail ;"};
    assert_true(probe_caa_allows(crit_mixed_case, 1, "letsencrypt.org", NULL, NULL));
    /* Not a value probe_absorb writes: skipped. */
    char *junk[] = {"issue letsencrypt.org", "300 tbs x", "-1 tbs x"};
    assert_true(probe_caa_allows(junk, 3, "letsencrypt.org", NULL, NULL));
}

/* RFC 8657 parameters of an issue record naming our CA, read as Let's
 * Encrypt (Boulder va/caa.go) reads them. */
static void test_caa_rfc8657(void **state)
{
    const char *me = "https://acme-v02.api.letsencrypt.org/acme/acct/42";
    const char *le = "letsencrypt.org", *ours = "tls-alpn-01 http-01";
#define ALLOWS(v, acct, ch) probe_caa_allows((char *[]){(char *)(v)}, 1, le, acct, ch)
#define WHY(v, acct, ch) probe_caa_verdict((char *[]){(char *)(v)}, 1, le, acct, ch)
    /* No parameters: unchanged, whatever our account and challenges. */
    assert_true(ALLOWS("0 issue letsencrypt.org", NULL, ours));
    assert_true(ALLOWS("0 issue letsencrypt.org; foo=bar", NULL, "http-01"));
    /* accounturi: exact match of our kid only. */
    assert_true(ALLOWS("0 issue letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/42",
                       me, ours));
    assert_int_equal(WHY("0 issue letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/420",
                         me, ours), PROBE_CAA_OTHER_ACCOUNT);
    assert_int_equal(WHY("0 issue letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/4",
                         me, ours), PROBE_CAA_OTHER_ACCOUNT);
    assert_int_equal(WHY("0 issue letsencrypt.org; accounturi=HTTPS://acme-v02.api.letsencrypt.org/acme/acct/42",
                         me, ours), PROBE_CAA_OTHER_ACCOUNT);
    assert_int_equal(WHY("0 issue letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/42",
                         NULL, ours), PROBE_CAA_NO_ACCOUNT);
    assert_int_equal(WHY("0 issue letsencrypt.org; accounturi=", me, ours), PROBE_CAA_OTHER_ACCOUNT);
    /* validationmethods: the type the client answers is the first
     * configured one (the CA offers them all). */
    assert_true(ALLOWS("0 issue letsencrypt.org; validationmethods=tls-alpn-01", NULL, ours));
    assert_true(ALLOWS("0 issue letsencrypt.org; validationmethods=dns-01,tls-alpn-01", NULL, ours));
    assert_true(ALLOWS("0 issue letsencrypt.org; validationmethods=http-01", NULL, "http-01,tls-alpn-01"));
    assert_true(ALLOWS("0 issue letsencrypt.org; validationmethods=http-01", NULL, " http-01"));
    /* only another configured type: the client never answers with it */
    assert_int_equal(WHY("0 issue letsencrypt.org; validationmethods=http-01", NULL, ours), PROBE_CAA_OTHER_METHOD);
    /* none of ours; no challenge type known (NULL or blank): no method is
     * ours, so any validationmethods blocks, and a record without one does not */
    assert_int_equal(WHY("0 issue letsencrypt.org; validationmethods=dns-01", NULL, ours), PROBE_CAA_OTHER_METHOD);
    assert_int_equal(WHY("0 issue letsencrypt.org; validationmethods=http-01", NULL, NULL), PROBE_CAA_OTHER_METHOD);
    assert_int_equal(WHY("0 issue letsencrypt.org; validationmethods=tls-alpn-01", NULL, NULL),
                     PROBE_CAA_OTHER_METHOD);
    assert_int_equal(WHY("0 issue letsencrypt.org; validationmethods=tls-alpn-01", NULL, " , "),
                     PROBE_CAA_OTHER_METHOD);
    assert_true(ALLOWS("0 issue letsencrypt.org", NULL, NULL));
    /* method names compare exactly; not a prefix or a part */
    assert_false(ALLOWS("0 issue letsencrypt.org; validationmethods=TLS-ALPN-01", NULL, ours));
    assert_false(ALLOWS("0 issue letsencrypt.org; validationmethods=tls-alpn-0", NULL, ours));
    assert_false(ALLOWS("0 issue letsencrypt.org; validationmethods=tls-alpn-012", NULL, ours));
    assert_false(ALLOWS("0 issue letsencrypt.org; validationmethods=", NULL, ours));
    /* a label not 1*(ALPHA / DIGIT / "-") spoils the list unless ours came first */
    assert_false(ALLOWS("0 issue letsencrypt.org; validationmethods=dns-01,,tls-alpn-01", NULL, ours));
    assert_false(ALLOWS("0 issue letsencrypt.org; validationmethods=dns_01,tls-alpn-01", NULL, ours));
    assert_true(ALLOWS("0 issue letsencrypt.org; validationmethods=tls-alpn-01,", NULL, ours));
    assert_true(ALLOWS("0 issue letsencrypt.org; validationmethods=tls-alpn-01,x_y", NULL, ours));
    /* Both: each must admit us. */
    const char *both = "0 issue letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/42;"
                       " validationmethods=http-01,tls-alpn-01";
    assert_true(ALLOWS(both, me, ours));
    assert_int_equal(WHY(both, "https://other/acct/1", ours), PROBE_CAA_OTHER_ACCOUNT);
    assert_int_equal(WHY(both, me, "dns-01 http-01"), PROBE_CAA_OTHER_METHOD);
    /* WSP (space, tab as \009) around "=" and ";" per RFC 8659 4.2; none
     * inside a value (malformed: names no one). */
    assert_true(ALLOWS("0 issue  letsencrypt.org\\009;\\009accounturi\\009=\\009"
                       "https://acme-v02.api.letsencrypt.org/acme/acct/42 ;validationmethods = tls-alpn-01 ",
                       me, ours));
    assert_int_equal(WHY("0 issue letsencrypt.org; validationmethods=dns-01, tls-alpn-01", NULL, ours),
                     PROBE_CAA_NOT_NAMED);
    /* Parameter tags compare exactly, as Boulder's map does: an upper-case
     * tag is another parameter, ignored. The issuer name and the property
     * tag stay case-insensitive. */
    assert_true(ALLOWS("0 ISSUE LetsEncrypt.org; AccountURI=https://x/1; ValidationMethods=dns-01", NULL, ours));
    /* A repeated parameter: the last counts. */
    assert_true(ALLOWS("0 issue letsencrypt.org; validationmethods=dns-01; validationmethods=tls-alpn-01", NULL,
                       ours));
    assert_false(ALLOWS("0 issue letsencrypt.org; validationmethods=tls-alpn-01; validationmethods=dns-01", NULL,
                        ours));
    /* Records add up: one that admits us is enough; the reason reported is
     * that of a record naming our CA over one that does not. */
    char *two[] = {"0 issue letsencrypt.org; validationmethods=dns-01", "0 issue letsencrypt.org"};
    assert_true(probe_caa_allows(two, 2, le, NULL, ours));
    char *why2[] = {"0 issue digicert.com", "0 issue letsencrypt.org; accounturi=https://x/1"};
    assert_int_equal(probe_caa_verdict(why2, 2, le, me, ours), PROBE_CAA_OTHER_ACCOUNT);
    char *why3[] = {"0 issue letsencrypt.org; accounturi=https://x/1", "0 issue digicert.com"};
    assert_int_equal(probe_caa_verdict(why3, 2, le, me, ours), PROBE_CAA_OTHER_ACCOUNT);
    /* Parameters of another CA's record do not matter to us. */
    char *other[] = {"0 issue digicert.com; validationmethods=dns-01"};
    assert_int_equal(probe_caa_verdict(other, 1, le, me, ours), PROBE_CAA_NOT_NAMED);
    /* A backslash in a value arrives as \092: a byte of the value. */
    assert_true(ALLOWS("0 issue letsencrypt.org; accounturi=https://x/a\\092b", "https://x/a\\b", ours));
#undef ALLOWS
#undef WHY
}

static void test_cloudflare_table(void **state)
{
    assert_true(probe_is_cloudflare("104.16.0.1"));
    assert_true(probe_is_cloudflare("104.23.255.255"));
    assert_false(probe_is_cloudflare("104.32.0.0"));
    assert_true(probe_is_cloudflare("162.159.1.1"));
    assert_false(probe_is_cloudflare("162.160.0.0"));
    assert_true(probe_is_cloudflare("2a06:98c7::1"));
    assert_false(probe_is_cloudflare("2a06:98c8::1"));
    assert_true(probe_is_cloudflare("2606:4700:3031::ac43:b1e3"));
    assert_false(probe_is_cloudflare("192.0.2.10"));
    assert_false(probe_is_cloudflare("not-an-ip"));
}

/* ---- probe_absorb on packets -------------------------------------------- */

static ldns_pkt *answer_pkt(ldns_pkt_rcode rc, const char *const *rrs, size_t n)
{
    ldns_pkt *p = ldns_pkt_new();
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_rcode(p, (uint8_t)rc);
    for (size_t i = 0; i < n; i++) {
        ldns_rr *rr = NULL;
        assert_int_equal(ldns_rr_new_frm_str(&rr, rrs[i], 300, NULL, NULL), LDNS_STATUS_OK);
        ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr);
    }
    return p;
}

static void test_absorb_full_chain(void **state)
{
    const char *rrs[] = {
        "edge.hee.la. A 192.0.2.10",
        "WWW.Cust.Test. CNAME a.example.",
        "a.example. CNAME Edge.Hee.La.",
        "stray.example. A 6.6.6.6",
    };
    ldns_pkt *p = answer_pkt(LDNS_RCODE_NOERROR, rrs, 4);
    probe_facts_t f;
    const char *next = "x";
    probe_facts_init(&f, "www.cust.test");
    assert_int_equal(probe_absorb(&f, "www.cust.test", LDNS_RR_TYPE_A, "edge.hee.la", p, &next), 0);
    assert_null(next);
    assert_int_equal(f.nchain, 2);
    assert_string_equal(f.chain[1], "edge.hee.la");
    assert_true(f.reached_target);
    assert_int_equal(f.nvalues, 1);
    assert_string_equal(f.values[0], "192.0.2.10");
    assert_string_equal(f.owner, "edge.hee.la");
    probe_facts_clear(&f);
    ldns_pkt_free(p);
}

static void test_absorb_step_by_step(void **state)
{
    const char *r1[] = {"www.cust.test. CNAME c2.cust.test.", "c2.cust.test. CNAME c3.other.test."};
    const char *r2[] = {"c3.other.test. CNAME edge.hee.la."};
    ldns_pkt *p1 = answer_pkt(LDNS_RCODE_NOERROR, r1, 2), *p2 = answer_pkt(LDNS_RCODE_NOERROR, r2, 1);
    probe_facts_t f;
    const char *next = NULL;
    probe_facts_init(&f, "www.cust.test");
    assert_int_equal(probe_absorb(&f, "www.cust.test", LDNS_RR_TYPE_A, "edge.hee.la", p1, &next), 0);
    assert_non_null(next);
    assert_string_equal(next, "c3.other.test");
    assert_int_equal(probe_absorb(&f, next, LDNS_RR_TYPE_A, "edge.hee.la", p2, &next), 0);
    assert_null(next); /* reached the edge: no query for its A */
    assert_true(f.reached_target);
    assert_int_equal(f.nchain, 3);
    probe_facts_clear(&f);
    ldns_pkt_free(p1);
    ldns_pkt_free(p2);
}

static void test_absorb_loop_and_length(void **state)
{
    const char *r1[] = {"a.test. CNAME b.test.", "b.test. CNAME A.test."};
    ldns_pkt *p = answer_pkt(LDNS_RCODE_NOERROR, r1, 2);
    probe_facts_t f;
    const char *next = NULL;
    probe_facts_init(&f, "a.test");
    assert_int_equal(probe_absorb(&f, "a.test", LDNS_RR_TYPE_A, "edge.hee.la", p, &next), 0);
    assert_null(next);
    assert_true(f.loop);
    probe_facts_clear(&f);
    ldns_pkt_free(p);

    /* Nine hops, all distinct: one too many. */
    char bufs[9][64];
    const char *rrs[9];
    for (int i = 0; i < 9; i++) {
        snprintf(bufs[i], sizeof(bufs[i]), "h%d.test. CNAME h%d.test.", i, i + 1);
        rrs[i] = bufs[i];
    }
    p = answer_pkt(LDNS_RCODE_NOERROR, rrs, 9);
    probe_facts_init(&f, "h0.test");
    assert_int_equal(probe_absorb(&f, "h0.test", LDNS_RR_TYPE_A, "edge.hee.la", p, &next), 0);
    assert_true(f.loop);
    assert_int_equal(f.nchain, PROBE_MAX_HOPS + 1);
    probe_facts_clear(&f);
    ldns_pkt_free(p);

    /* Exactly eight hops is fine. */
    p = answer_pkt(LDNS_RCODE_NOERROR, rrs, 8);
    probe_facts_init(&f, "h0.test");
    assert_int_equal(probe_absorb(&f, "h0.test", LDNS_RR_TYPE_A, "edge.hee.la", p, &next), 0);
    assert_false(f.loop);
    assert_string_equal(next, "h8.test");
    probe_facts_clear(&f);
    ldns_pkt_free(p);
}

static void test_absorb_values(void **state)
{
    const char *rrs[] = {
        "t.test. TXT \"part1\" \"part2\"",
        "t.test. TXT \"bin\\000\\255\"",
        "t.test. CAA 0 issue \"letsencrypt.org\"",
        "t.test. AAAA 2001:db8::1",
    };
    ldns_pkt *p = answer_pkt(LDNS_RCODE_NOERROR, rrs, 4);
    probe_facts_t f;
    const char *next = NULL;
    probe_facts_init(&f, "t.test");
    assert_int_equal(probe_absorb(&f, "t.test", LDNS_RR_TYPE_TXT, NULL, p, &next), 0);
    assert_int_equal(f.nvalues, 2);
    assert_string_equal(f.values[0], "part1part2");
    assert_string_equal(f.values[1], "bin\\000\\255");
    probe_facts_clear(&f);
    probe_facts_init(&f, "t.test");
    assert_int_equal(probe_absorb(&f, "t.test", LDNS_RR_TYPE_CAA, NULL, p, &next), 0);
    assert_int_equal(f.nvalues, 1);
    assert_string_equal(f.values[0], "0 issue letsencrypt.org");
    probe_facts_clear(&f);
    ldns_pkt_free(p);

    /* CAA values keep spaces; a tab and a backslash come out as \DDD, which
     * probe_caa_allows reads back (a tab is WSP, a backslash a value byte). */
    const char *caa[] = {"t.test. CAA 0 issue \"\\009letsencrypt.org ;\\009a=x\\\\y\""};
    p = answer_pkt(LDNS_RCODE_NOERROR, caa, 1);
    probe_facts_init(&f, "t.test");
    assert_int_equal(probe_absorb(&f, "t.test", LDNS_RR_TYPE_CAA, NULL, p, &next), 0);
    assert_int_equal(f.nvalues, 1);
    assert_string_equal(f.values[0], "0 issue \\009letsencrypt.org ;\\009a=x\\092y");
    assert_true(probe_caa_allows(f.values, f.nvalues, "letsencrypt.org", NULL, NULL));
    probe_facts_clear(&f);
    ldns_pkt_free(p);
    p = answer_pkt(LDNS_RCODE_NOERROR, rrs, 4);
    probe_facts_init(&f, "t.test");
    assert_int_equal(probe_absorb(&f, "t.test", LDNS_RR_TYPE_AAAA, NULL, p, &next), 0);
    assert_string_equal(f.values[0], "2001:db8::1");
    probe_facts_clear(&f);
    ldns_pkt_free(p);
}

/* Records of another class than IN in an answer are not the name's: not
 * followed as CNAMEs, not taken as values (a CNAME of class CH used to
 * send the walk elsewhere). */
static void test_absorb_other_class(void **state)
{
    const char *rrs[] = {
        "www.cust.test. 300 CH CNAME evil.test.",
        "www.cust.test. 300 HS A 6.6.6.6",
        "www.cust.test. 300 CLASS42 CAA 0 issue \"evil.test\"",
        "www.cust.test. 300 IN A 192.0.2.10",
    };
    ldns_pkt *p = answer_pkt(LDNS_RCODE_NOERROR, rrs, 4);
    probe_facts_t f;
    const char *next = "x";
    probe_facts_init(&f, "www.cust.test");
    assert_int_equal(probe_absorb(&f, "www.cust.test", LDNS_RR_TYPE_A, "edge.hee.la", p, &next), 0);
    assert_null(next);
    assert_int_equal(f.nchain, 0);
    assert_int_equal(f.nvalues, 1);
    assert_string_equal(f.values[0], "192.0.2.10");
    probe_facts_clear(&f);
    probe_facts_init(&f, "www.cust.test");
    assert_int_equal(probe_absorb(&f, "www.cust.test", LDNS_RR_TYPE_CAA, NULL, p, &next), 0);
    assert_int_equal(f.nchain, 0);
    assert_int_equal(f.nvalues, 0);
    probe_facts_clear(&f);
    ldns_pkt_free(p);
}

/* Odd bytes in untrusted values: a TXT of many strings holding every byte
 * value, and a CAA value of every byte, render as the \DDD rule says
 * (checked against a printf-made reference), and the CAA verdict reads it. */
static void test_absorb_odd_bytes(void **state)
{
    static char txt[256 * 8 + 64], caa[256 * 4 + 64], want_txt[256 * 4 + 1], want_caa[256 * 4 + 32];
    size_t o = (size_t)snprintf(txt, sizeof(txt), "t.test. TXT");
    for (int i = 0; i < 256; i++) /* 256 strings of one byte each */
        o += (size_t)snprintf(txt + o, sizeof(txt) - o, " \"\\%03d\"", i);
    o = (size_t)snprintf(caa, sizeof(caa), "t.test. CAA 0 issue \"");
    for (int i = 0; i < 256; i++)
        o += (size_t)snprintf(caa + o, sizeof(caa) - o, "\\%03d", i);
    snprintf(caa + o, sizeof(caa) - o, "\"");
    size_t wt = 0, wc = (size_t)snprintf(want_caa, sizeof(want_caa), "0 issue ");
    for (int i = 0; i < 256; i++) {
        bool plain = i >= 0x20 && i < 0x7f;
        wt += (size_t)(plain ? snprintf(want_txt + wt, sizeof(want_txt) - wt, "%c", i)
                             : snprintf(want_txt + wt, sizeof(want_txt) - wt, "\\%03u", (unsigned)i));
        wc += (size_t)(plain && i != '\\' ? snprintf(want_caa + wc, sizeof(want_caa) - wc, "%c", i)
                                          : snprintf(want_caa + wc, sizeof(want_caa) - wc, "\\%03u", (unsigned)i));
    }
    const char *rrs[] = {txt, caa};
    ldns_pkt *p = answer_pkt(LDNS_RCODE_NOERROR, rrs, 2);
    probe_facts_t f;
    const char *next = NULL;
    probe_facts_init(&f, "t.test");
    assert_int_equal(probe_absorb(&f, "t.test", LDNS_RR_TYPE_TXT, NULL, p, &next), 0);
    assert_int_equal(f.nvalues, 1);
    assert_string_equal(f.values[0], want_txt);
    probe_facts_clear(&f);
    probe_facts_init(&f, "t.test");
    assert_int_equal(probe_absorb(&f, "t.test", LDNS_RR_TYPE_CAA, NULL, p, &next), 0);
    assert_int_equal(f.nvalues, 1);
    assert_string_equal(f.values[0], want_caa);
    assert_int_equal(probe_caa_verdict(f.values, f.nvalues, "letsencrypt.org", NULL, NULL), PROBE_CAA_NOT_NAMED);
    probe_facts_clear(&f);
    ldns_pkt_free(p);
}

static void test_normalize(void **state)
{
    char *s = probe_normalize_name("WWW.Example.COM.");
    assert_string_equal(s, "www.example.com");
    free(s);
    assert_null(probe_normalize_name(""));
    assert_null(probe_normalize_name("a..b"));
}

/* probe.c writes names itself: it must agree with ldns_rdf2str (then lower
 * case, no final dot) on every escape. */
static void test_normalize_matches_ldns(void **state)
{
    (void)state;
    static const char *const names[] = {
        "WWW.Example.COM.", ".", "a\\.b.Test", "x\\;y.test", "p\\(q\\).test", "back\\\\slash.test",
        "sp\\032ace.test", "nul\\000.test", "hi\\200\\255.test", "del\\127.test", "Tilde~_-.Test",
        "xn--bcher-kva.example", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ldns_rdf *d = ldns_dname_new_frm_str(names[i]);
        assert_non_null(d);
        char *want = ldns_rdf2str(d);
        assert_non_null(want);
        size_t n = strlen(want);
        if (n > 1 && want[n - 1] == '.')
            want[n - 1] = '\0';
        for (char *c = want; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c | 0x20);
        char *got = probe_normalize_name(names[i]);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
        free(want);
        ldns_rdf_deep_free(d);
    }
}

/* ---- async path against a fake authoritative server --------------------- */

static const char *const fake_zone[] = {
    "www.cust.test. CNAME edge.hee.la.",
    "edge.hee.la. A 192.0.2.10",
    "c1.cust.test. CNAME c2.cust.test.",
    "c2.cust.test. CNAME c3.other.test.",
    "c3.other.test. CNAME edge.hee.la.",
    "apex.cust.test. A 192.0.2.10",
    "cust.test. CAA 0 issue \"letsencrypt.org\"",
    "blocked.test. CAA 0 issue \"digicert.com\"",
    "www.blocked.test. CNAME edge.hee.la.",
    "own.blocked.test. A 192.0.2.10",
    "own.blocked.test. CAA 0 issue \"letsencrypt.org\"",
    "d.e.f.cust.test. CNAME edge.hee.la.",
    "bogus.cust.test. CNAME edge.hee.la.",
    "_customdomain-challenge.txt.cust.test. TXT \"tok-1\"",
    /* CAA through aliases (RFC 8659 3): the set at a CNAME target is the
     * hostname's; none there and the climb goes on at the hostname's parent. */
    "alias.cust.test. CNAME caa.other.test.",
    "caa.other.test. A 192.0.2.10",
    "caa.other.test. CAA 0 issue \"digicert.com\"",
    "okalias.blocked.test. CNAME leok.other.test.",
    "leok.other.test. A 192.0.2.10",
    "leok.other.test. CAA 0 issue \"letsencrypt.org\"",
    "noca.cust.test. CNAME plain.blocked.test.",
    "plain.blocked.test. A 192.0.2.10",
    "h.a.b.cust.test. A 192.0.2.10", /* b.cust.test, the level that climbs, is an alias */
    "b.cust.test. CNAME plain.blocked.test.",
    /* CAA chains that loop: at a level asked at once, at the climbing one. */
    "w.lp.cust.test. A 192.0.2.10",
    "lp.cust.test. CNAME lp2.cust.test.",
    "lp2.cust.test. CNAME lp.cust.test.",
    "www.loopy.test. A 192.0.2.10",
    "loopy.test. CNAME loopy2.test.",
    "loopy2.test. CNAME loopy.test.",
    /* CAA lookups that fail at a parent ("sf." SERVFAILs, "silent." never
     * answers, "bogus." is rejected by the validator). */
    "www.sf.cust.test. A 192.0.2.10",
    "q.r.s.sf.cust.test. A 192.0.2.10",
    "www.silent.cust.test. A 192.0.2.10",
    "www.bogus.cust.test. A 192.0.2.10",
    /* A label holding a dot: the parent of x\.y.esc.test is esc.test. */
    "x\\.y.esc.test. A 192.0.2.10",
    "y.esc.test. CAA 0 issue \"digicert.com\"",
    /* RFC 8657 parameters */
    "www.acct.test. A 192.0.2.10",
    "acct.test. CAA 0 issue \"letsencrypt.org; accounturi=https://ca.test/acct/1; validationmethods=http-01\"",
};

typedef struct {
    int fd;
    struct event *ev;
    ldns_rr_list *zone;
    int seen;
} zone_srv_t;

/* One hop per answer: a CNAME is never chased, like a server authoritative
 * only for the name asked. "bogus." names SERVFAIL unless CD is set, like a
 * validator; "sf." names always SERVFAIL; "silent." names get no answer. */
static void on_zone_query(evutil_socket_t fd, short what, void *arg)
{
    zone_srv_t *z = arg;
    uint8_t buf[4096];
    struct sockaddr_storage from;
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
    ldns_pkt *q = NULL;
    if (n <= 0 || ldns_wire2pkt(&q, buf, (size_t)n) != LDNS_STATUS_OK)
        return;
    z->seen++;
    ldns_rr *qrr = ldns_rr_list_rr(ldns_pkt_question(q), 0);
    ldns_rdf *qname = ldns_rr_owner(qrr);
    char *name = ldns_rdf2str(qname);
    ldns_pkt *r = ldns_pkt_new();
    ldns_pkt_set_id(r, ldns_pkt_id(q));
    ldns_pkt_set_qr(r, true);
    ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, ldns_rr_clone(qrr));
    if (strncasecmp(name, "silent.", 7) == 0)
        goto out;
    if ((strncasecmp(name, "bogus.", 6) == 0 && !ldns_pkt_cd(q)) || strncasecmp(name, "sf.", 3) == 0) {
        ldns_pkt_set_rcode(r, LDNS_RCODE_SERVFAIL);
    } else {
        bool exists = false, typed = false;
        const ldns_rr *cname = NULL;
        for (size_t i = 0; i < ldns_rr_list_rr_count(z->zone); i++) {
            ldns_rr *rr = ldns_rr_list_rr(z->zone, i);
            if (ldns_dname_compare(ldns_rr_owner(rr), qname) != 0)
                continue;
            exists = true;
            if (ldns_rr_get_type(rr) == ldns_rr_get_type(qrr)) {
                ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, ldns_rr_clone(rr));
                typed = true;
            } else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME) {
                cname = rr;
            }
        }
        if (!typed && cname)
            ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, ldns_rr_clone(cname));
        ldns_pkt_set_rcode(r, exists ? LDNS_RCODE_NOERROR : LDNS_RCODE_NXDOMAIN);
    }
    uint8_t *wire = NULL;
    size_t len = 0;
    if (ldns_pkt2wire(&wire, r, &len) == LDNS_STATUS_OK)
        (void)sendto(fd, wire, len, 0, (struct sockaddr *)&from, flen);
    free(wire);
out:
    free(name);
    ldns_pkt_free(r);
    ldns_pkt_free(q);
}

static zone_srv_t *zone_srv_new(struct event_base *base, uint16_t *port)
{
    zone_srv_t *z = calloc(1, sizeof(*z));
    z->zone = ldns_rr_list_new();
    for (size_t i = 0; i < UTIL_ARRAY_LEN(fake_zone); i++) {
        ldns_rr *rr = NULL;
        assert_int_equal(ldns_rr_new_frm_str(&rr, fake_zone[i], 300, NULL, NULL), LDNS_STATUS_OK);
        ldns_rr_list_push_rr(z->zone, rr);
    }
    z->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(z->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(z->fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    z->ev = event_new(base, z->fd, EV_READ | EV_PERSIST, on_zone_query, z);
    event_add(z->ev, NULL);
    return z;
}

static void zone_srv_free(zone_srv_t *z)
{
    event_free(z->ev);
    close(z->fd);
    ldns_rr_list_deep_free(z->zone);
    free(z);
}

typedef struct {
    int done;
    bool verified;
    probe_hint_t hint;
    probe_method_t method;
    char json[4096];
} outcome_t;

static void on_probe(const probe_result_t *res, void *arg)
{
    outcome_t *o = arg;
    o->done++;
    o->verified = res->verified;
    o->hint = res->hint;
    o->method = res->method;
    json_t *j = probe_result_to_json(res);
    char *s = json_dumps(j, JSON_COMPACT);
    snprintf(o->json, sizeof(o->json), "%s", s ? s : "");
    free(s);
    json_decref(j);
}

typedef struct {
    struct event_base *base;
    zone_srv_t *z;
    dns_resolver_t *r;
    probe_ctx_t *ctx;
} env_t;

static void env_init(env_t *e, size_t max_active, int deadline_ms)
{
    uint16_t port;
    e->base = event_base_new();
    e->z = zone_srv_new(e->base, &port);
    char srv[64];
    snprintf(srv, sizeof(srv), "127.0.0.1:%u", port);
    const char *servers[] = {srv};
    e->r = dns_resolver_new(e->base, servers, 1, 1000, 2);
    e->ctx = probe_ctx_new(e->base, e->r, max_active, deadline_ms);
    assert_non_null(e->ctx);
}

static void env_free(env_t *e)
{
    probe_ctx_free(e->ctx);
    dns_resolver_free(e->r);
    zone_srv_free(e->z);
    event_base_free(e->base);
}

static void env_wait(env_t *e, outcome_t *o, size_t n)
{
    int64_t end = util_mono_ms() + 5000;
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += (size_t)o[i].done;
        if (done >= n || util_mono_ms() > end)
            break;
        event_base_loop(e->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(100);
    }
}

static outcome_t run_one(const char *host, unsigned methods, const char *txt, const char *ca,
                         int deadline_ms)
{
    env_t e;
    env_init(&e, 0, deadline_ms);
    probe_request_t req = {.hostname = host, .edge_addrs = edge_addrs, .n_edge_addrs = 2,
                           .methods = methods, .txt_value = txt, .ca_identifier = ca};
    outcome_t o = {0};
    assert_non_null(probe_run(e.ctx, &req, on_probe, &o));
    assert_int_equal(o.done, 0);
    env_wait(&e, &o, 1);
    assert_int_equal(o.done, 1);
    env_free(&e);
    return o;
}

static void test_async_paths(void **state)
{
    outcome_t o = run_one("WWW.cust.test.", PROBE_M_CNAME, NULL, "letsencrypt.org", 0);
    assert_true(o.verified);
    assert_int_equal(o.method, PROBE_M_CNAME);
    /* CAA found by climbing from www.cust.test to cust.test. */
    assert_non_null(strstr(o.json, "{\"type\":\"CAA\",\"name\":\"cust.test\",\"found\":[\"0 issue letsencrypt.org\"]"));

    o = run_one("c1.cust.test", PROBE_M_CNAME, NULL, NULL, 0);
    assert_true(o.verified);
    assert_non_null(strstr(o.json, "\"found\":[\"c2.cust.test\",\"c3.other.test\",\"edge.hee.la\"]"));

    o = run_one("apex.cust.test", PROBE_M_CNAME | PROBE_M_A, NULL, NULL, 0);
    assert_true(o.verified);
    assert_int_equal(o.method, PROBE_M_A);

    o = run_one("txt.cust.test", PROBE_M_CNAME | PROBE_M_TXT, "tok-1", NULL, 0);
    assert_true(o.verified);
    assert_int_equal(o.method, PROBE_M_TXT);

    o = run_one("nothere.cust.test", PROBE_M_CNAME, NULL, NULL, 0);
    assert_int_equal(o.hint, PROBE_HINT_NXDOMAIN);

    o = run_one("www.blocked.test", PROBE_M_CNAME, NULL, "letsencrypt.org", 0);
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_CAA_BLOCKS_ISSUER);

    /* CAA levels are asked at once; the lowest with records decides, as a
     * climb would: the hostname's own CAA allows, its parent's would not. */
    o = run_one("own.blocked.test", PROBE_M_A, NULL, "letsencrypt.org", 0);
    assert_true(o.verified);
    assert_non_null(strstr(o.json, "{\"type\":\"CAA\",\"name\":\"own.blocked.test\",\"found\":[\"0 issue "
                                   "letsencrypt.org\"]"));

    /* Deeper than the levels asked at once: the highest climbs on alone. */
    o = run_one("d.e.f.cust.test", PROBE_M_CNAME, NULL, "letsencrypt.org", 0);
    assert_true(o.verified);
    assert_non_null(strstr(o.json, "{\"type\":\"CAA\",\"name\":\"cust.test\",\"found\":[\"0 issue letsencrypt.org\"]"));

    o = run_one("bogus.cust.test", PROBE_M_CNAME, NULL, NULL, 0);
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_DNSSEC_BOGUS);
    assert_non_null(strstr(o.json, "\"found\":[\"edge.hee.la\"]")); /* what CD revealed */
}

static bool has(const outcome_t *o, const char *part)
{
    if (strstr(o->json, part))
        return true;
    print_error("not in %s\n    %s\n", o->json, part);
    return false;
}

/* CAA through CNAMEs, over one-hop answers: the hostname's chain, and a
 * parent's (including the level that climbs on alone). */
static void test_async_caa_aliases(void **state)
{
    /* (a) The target's CAA is the hostname's, though its parent allows. */
    outcome_t o = run_one("alias.cust.test", PROBE_M_A, NULL, "letsencrypt.org", 0);
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_CAA_BLOCKS_ISSUER);
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"caa.other.test\",\"found\":[\"0 issue digicert.com\"]"));
    /* ... and the other way round: the target allows, the parent would not. */
    o = run_one("okalias.blocked.test", PROBE_M_A, NULL, "letsencrypt.org", 0);
    assert_true(o.verified);
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"leok.other.test\",\"found\":[\"0 issue letsencrypt.org\"]"));
    /* (b) No CAA at the target: the climb goes on at the hostname's parent
     * (cust.test allows), not at the target's (blocked.test would not). */
    o = run_one("noca.cust.test", PROBE_M_A, NULL, "letsencrypt.org", 0);
    assert_true(o.verified);
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"cust.test\",\"found\":[\"0 issue letsencrypt.org\"]"));
    o = run_one("h.a.b.cust.test", PROBE_M_A, NULL, "letsencrypt.org", 0);
    assert_true(o.verified);
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"cust.test\",\"found\":[\"0 issue letsencrypt.org\"]"));
    /* The climb steps over whole labels: "x\.y" is one, so y.esc.test
     * (which forbids) is no parent of the hostname. */
    o = run_one("x\\.y.esc.test", PROBE_M_A, NULL, "letsencrypt.org", 0);
    assert_true(o.verified);
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"esc.test\",\"found\":[]"));
    /* ... and a CNAME to the edge under a parent that forbids: blocked. */
    o = run_one("www.blocked.test", PROBE_M_CNAME, NULL, "letsencrypt.org", 0);
    assert_int_equal(o.hint, PROBE_HINT_CAA_BLOCKS_ISSUER);
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"blocked.test\""));
}

/* The account URI and challenge list are the probe's own copies: the
 * caller's strings may go once probe_run returns (ASan would see a use). */
static void test_async_caa_params(void **state)
{
    static const struct {
        const char *account, *challenges;
        bool verified;
    } cases[] = {
        {"https://ca.test/acct/1", "http-01 tls-alpn-01", true},
        {"https://ca.test/acct/2", "http-01 tls-alpn-01", false},
        {NULL, "http-01", false},
        {"https://ca.test/acct/1", NULL, false}, /* no type known: validationmethods admits none */
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        env_t e;
        env_init(&e, 0, 0);
        char *account = cases[i].account ? strdup(cases[i].account) : NULL;
        char *challenges = cases[i].challenges ? strdup(cases[i].challenges) : NULL;
        probe_request_t req = {.hostname = "www.acct.test", .edge_addrs = edge_addrs, .n_edge_addrs = 2,
                               .methods = PROBE_M_A, .ca_identifier = "letsencrypt.org",
                               .acme_account = account, .acme_challenges = challenges};
        outcome_t o = {0};
        assert_non_null(probe_run(e.ctx, &req, on_probe, &o));
        free(account);
        free(challenges);
        env_wait(&e, &o, 1);
        assert_int_equal(o.done, 1);
        env_free(&e);
        if (o.verified != cases[i].verified)
            fail_msg("case %zu: verified %d", i, o.verified);
        if (!cases[i].verified)
            assert_int_equal(o.hint, PROBE_HINT_CAA_BLOCKS_ISSUER);
        if (!cases[i].challenges)
            assert_true(has(&o, "allow letsencrypt.org to issue only with given validation methods, and this "
                                "Hee has no challenge type configured"));
    }
}

/* (c, d) A climb that meets a looping chain, a failure, a timeout or a bogus
 * answer stops there with an error: never "no CAA, allowed". */
static void test_async_caa_errors(void **state)
{
    outcome_t o = run_one("w.lp.cust.test", PROBE_M_A, NULL, "letsencrypt.org", 0);
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_CNAME_LOOP);
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"lp.cust.test\",\"found\":[],\"expected\":"
                        "\"letsencrypt.org\",\"hint\":\"cname_loop\""));
    o = run_one("www.loopy.test", PROBE_M_A, NULL, "letsencrypt.org", 0);
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_CNAME_LOOP);
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"loopy.test\""));

    o = run_one("www.sf.cust.test", PROBE_M_A, NULL, "letsencrypt.org", 0);
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_SERVFAIL);
    assert_true(has(&o, "\"verdict\":\"inconclusive\""));
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"sf.cust.test\",\"found\":[],\"expected\":"
                        "\"letsencrypt.org\",\"hint\":\"servfail\",\"status\":\"SERVFAIL\"}"));
    o = run_one("q.r.s.sf.cust.test", PROBE_M_A, NULL, "letsencrypt.org", 0); /* climbing level */
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_SERVFAIL);
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"sf.cust.test\""));

    o = run_one("www.silent.cust.test", PROBE_M_A, NULL, "letsencrypt.org", 300);
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_TIMEOUT);
    assert_true(has(&o, "\"verdict\":\"inconclusive\""));
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"silent.cust.test\""));

    o = run_one("www.bogus.cust.test", PROBE_M_A, NULL, "letsencrypt.org", 0);
    assert_false(o.verified);
    assert_int_equal(o.hint, PROBE_HINT_DNSSEC_BOGUS);
    assert_true(has(&o, "{\"type\":\"CAA\",\"name\":\"bogus.cust.test\""));

    /* Without a CA identifier there is no CAA lookup to fail. */
    o = run_one("www.sf.cust.test", PROBE_M_A, NULL, NULL, 0);
    assert_true(o.verified);
}

static void test_async_deadline(void **state)
{
    int64_t t0 = util_mono_ms();
    /* The resolver would give up after 2 x 1000 ms; the probe deadline
     * (80 ms) ends it first. Loose upper bound: the machine may be busy. */
    outcome_t o = run_one("silent.cust.test", PROBE_M_CNAME, NULL, NULL, 80);
    assert_int_equal(o.hint, PROBE_HINT_TIMEOUT);
    assert_false(o.verified);
    int64_t took = util_mono_ms() - t0;
    assert_true(took >= 75 && took < 900);
}

static void test_async_queue_and_cancel(void **state)
{
    env_t e;
    env_init(&e, 2, 0);
    probe_request_t req = {.hostname = "www.cust.test", .methods = PROBE_M_CNAME};
    outcome_t o[10];
    probe_t *p[10];
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 10; i++)
        assert_non_null(p[i] = probe_run(e.ctx, &req, on_probe, &o[i]));
    assert_int_equal(probe_ctx_pending(e.ctx), 10);
    probe_cancel(p[0]); /* running */
    probe_cancel(p[9]); /* queued */
    assert_int_equal(probe_ctx_pending(e.ctx), 8);
    env_wait(&e, o + 1, 8);
    for (int i = 1; i < 9; i++) {
        assert_int_equal(o[i].done, 1);
        assert_true(o[i].verified);
    }
    assert_int_equal(o[0].done, 0);
    assert_int_equal(o[9].done, 0);
    assert_int_equal(probe_ctx_pending(e.ctx), 0);
    /* Bad input is refused up front, without a callback. */
    probe_request_t bad = {.hostname = "single-label", .methods = PROBE_M_CNAME};
    assert_null(probe_run(e.ctx, &bad, on_probe, &o[0]));
    const char *bad_addr[] = {"not-an-ip"};
    probe_request_t bad2 = {.hostname = "a.test", .edge_addrs = bad_addr, .n_edge_addrs = 1};
    assert_null(probe_run(e.ctx, &bad2, on_probe, &o[0]));
    /* Freeing with probes in flight: no callbacks, no leaks. */
    assert_non_null(probe_run(e.ctx, &req, on_probe, &o[0]));
    env_free(&e);
    assert_int_equal(o[0].done, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verified_cname),
        cmocka_unit_test(test_verified_a),
        cmocka_unit_test(test_verified_txt),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_nxdomain),
        cmocka_unit_test(test_wrong_target),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_cloudflare_proxy),
        cmocka_unit_test(test_partial),
        cmocka_unit_test(test_caa_blocks_issuer),
        cmocka_unit_test(test_caa_at_cname_target),
        cmocka_unit_test(test_caa_lookup_failed),
        cmocka_unit_test(test_caa_chain_loops),
        cmocka_unit_test(test_stray_aaaa),
        cmocka_unit_test(test_dnssec_bogus),
        cmocka_unit_test(test_cname_loop),
        cmocka_unit_test(test_servfail_and_timeout),
        cmocka_unit_test(test_txt_wrong_value_and_priority),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_caa_allows),
        cmocka_unit_test(test_caa_rfc8657),
        cmocka_unit_test(test_cloudflare_table),
        cmocka_unit_test(test_absorb_full_chain),
        cmocka_unit_test(test_absorb_step_by_step),
        cmocka_unit_test(test_absorb_loop_and_length),
        cmocka_unit_test(test_absorb_values),
        cmocka_unit_test(test_absorb_other_class),
        cmocka_unit_test(test_absorb_odd_bytes),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_normalize_matches_ldns),
        cmocka_unit_test(test_async_paths),
        cmocka_unit_test(test_async_caa_aliases),
        cmocka_unit_test(test_async_caa_errors),
        cmocka_unit_test(test_async_caa_params),
        cmocka_unit_test(test_async_deadline),
        cmocka_unit_test(test_async_queue_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
