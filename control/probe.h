/* probe: decides whether a customer hostname points at the edge, and why not.
 * probe_run copies its request, looks up A/AAAA (following CNAME chains hop by
 * hop), the ownership TXT and CAA through a borrowed dns_resolver_t (it must
 * outlive the probe_ctx_t), and hands the callback a probe_result_t that stays
 * the probe's: valid only during the callback. probe_result_to_json returns a
 * new reference (json_decref). Deciding is pure (probe_absorb, probe_decide). */
#ifndef HEE_PROBE_H
#define HEE_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <ldns/ldns.h>

#include "control/dns.h"

#define PROBE_MAX_HOPS 8
#define PROBE_DEFAULT_TARGET "edge.hee.la"
#define PROBE_TXT_PREFIX "_customdomain-challenge."

/* Accepted verification methods (bit set); also the method that succeeded. */
typedef enum {
    PROBE_M_NONE = 0,
    PROBE_M_CNAME = 1, /* chain from the hostname reaches cname_target */
    PROBE_M_A = 2,     /* A records all edge addresses (AAAA none or all edge) */
    PROBE_M_TXT = 4,   /* _customdomain-challenge.<hostname> TXT == txt_value */
} probe_method_t;

typedef enum {
    PROBE_HINT_OK = 0,
    PROBE_HINT_MISSING,
    PROBE_HINT_NXDOMAIN,
    PROBE_HINT_WRONG_TARGET, /* points elsewhere; for TXT: another value */
    PROBE_HINT_WRONG_TYPE,   /* address records where a CNAME is expected */
    PROBE_HINT_CLOUDFLARE_PROXY,
    PROBE_HINT_PARTIAL,
    PROBE_HINT_CAA_BLOCKS_ISSUER,
    PROBE_HINT_STRAY_AAAA,
    PROBE_HINT_DNSSEC_BOGUS,
    PROBE_HINT_CNAME_LOOP,
    PROBE_HINT_SERVFAIL, /* also REFUSED and malformed answers */
    PROBE_HINT_TIMEOUT,  /* also network errors */
    PROBE_HINT_COUNT
} probe_hint_t;

typedef struct {
    const char *hostname;          /* A-label (punycode) form; case and final dot ignored */
    const char *cname_target;      /* NULL: PROBE_DEFAULT_TARGET */
    const char *const *edge_addrs; /* IPv4/IPv6 literals of the edge apex */
    size_t n_edge_addrs;
    const char *txt_value;     /* expected ownership TXT; NULL disables PROBE_M_TXT */
    unsigned methods;          /* PROBE_M_* accepted */
    const char *ca_identifier; /* e.g. "letsencrypt.org"; NULL: no CAA lookup. A CAA
                                * lookup that fails makes a matching probe
                                * inconclusive, one that loops unverified. */
    /* What RFC 8657 parameters of a CAA issue record are checked against:
     * our ACME account URI (the kid) at that CA, NULL when there is none
     * yet (then no accounturi record authorises us); [acme] challenges as
     * configured, types in preference order ("tls-alpn-01 http-01"; the
     * default lives in common/config.c only), NULL or blank when no type
     * is known (then no validationmethods record authorises us). Copied by
     * probe_run. */
    const char *acme_account;
    const char *acme_challenges;
} probe_request_t;

/* What one lookup found: the input of the pure decision. Names are lower
 * case without the final dot; values are presentation text (addresses, TXT
 * strings joined, CAA as "flags tag value"), non-printable bytes as \DDD. */
typedef struct {
    bool queried;
    dns_status_t status;  /* of the last query made */
    bool cd_answered;     /* SERVFAIL, yet answered with CD set: DNSSEC bogus */
    char *start;          /* the name first asked */
    char *chain[PROBE_MAX_HOPS + 1]; /* CNAME targets in order */
    size_t nchain;
    bool loop;            /* revisits a name or exceeds PROBE_MAX_HOPS */
    bool reached_target;
    char **values;
    size_t nvalues, capvalues;
    char *owner; /* name the values were found at */
} probe_facts_t;

typedef struct {
    probe_facts_t a, aaaa, txt, caa;
} probe_answers_t;

enum { PROBE_REC_MAX = 5 };

typedef struct {
    const char *type; /* "CNAME", "A", "AAAA", "TXT", "CAA" */
    char *name;
    char **found;
    size_t nfound;
    char *expected; /* NULL: nothing expected of this record */
    probe_hint_t hint;
    dns_status_t status;
} probe_record_t;

typedef struct {
    bool verified;
    probe_method_t method;  /* PROBE_M_NONE unless verified */
    const char *verdict;    /* "verified", "unverified" or "inconclusive" (DNS failed) */
    probe_hint_t hint;      /* the one thing to fix; OK when verified */
    char *outcome;          /* one sentence for people (NULL only when out of memory) */
    char *summary;          /* compact answers for storage, <= 255 bytes (same) */
    probe_record_t records[PROBE_REC_MAX];
    size_t nrecords;
} probe_result_t;

typedef struct probe_ctx probe_ctx_t;
typedef struct probe probe_t;
typedef void (*probe_cb)(const probe_result_t *res, void *arg);

/* max_active: probes running at once (the rest queue; 0 = 256).
 * deadline_ms: bound on one probe's total time (<= 0: 15000). */
probe_ctx_t *probe_ctx_new(struct event_base *base, dns_resolver_t *r, size_t max_active,
                           int deadline_ms);
/* Drops running and queued probes without callbacks. */
void probe_ctx_free(probe_ctx_t *ctx);
size_t probe_ctx_pending(const probe_ctx_t *ctx); /* running + queued */

/* NULL (no callback) on an invalid hostname/target or no memory. The callback
 * never runs inside probe_run. Sweepers should keep probe_ctx_pending bounded. */
probe_t *probe_run(probe_ctx_t *ctx, const probe_request_t *req, probe_cb cb, void *arg);
void probe_cancel(probe_t *p); /* callback will not run */

json_t *probe_result_to_json(const probe_result_t *res);
const char *probe_hint_str(probe_hint_t h);
const char *probe_method_str(probe_method_t m); /* "cname", "a", "txt", NULL */

/* --- pure decision path (tests, fuzzing) ------------------------------- */

int probe_facts_init(probe_facts_t *f, const char *start);
void probe_facts_clear(probe_facts_t *f);
int probe_facts_add_value(probe_facts_t *f, const char *v);
/* Folds an answer to (qname, type) into f: walks CNAMEs from qname (stopping
 * the walk for more queries once target is reached; target may be NULL),
 * collects type records at the chain's end. *next is the name still to ask
 * (points into f), or NULL when the lookup is complete. 0 or -1 (memory). */
int probe_absorb(probe_facts_t *f, const char *qname, ldns_rr_type type, const char *target,
                 const ldns_pkt *pkt, const char **next);
/* Fills out (cleared first); 0 or -1 (memory; out is then cleared). */
int probe_decide(const probe_request_t *req, const probe_answers_t *ans, probe_result_t *out);
void probe_result_clear(probe_result_t *res);
bool probe_is_cloudflare(const char *addr);
typedef enum {
    PROBE_CAA_OK = 0,
    PROBE_CAA_NOT_NAMED,     /* issue records, none naming ca (or malformed) */
    PROBE_CAA_CRITICAL,      /* an unknown property flagged critical */
    PROBE_CAA_NO_ACCOUNT,    /* names ca with an accounturi; we have no account */
    PROBE_CAA_OTHER_ACCOUNT, /* names ca with another accounturi */
    PROBE_CAA_OTHER_METHOD,  /* names ca, validationmethods without our challenge */
} probe_caa_why_t;

/* CAA values as "flags tag value" (the value with \DDD escapes, '\' itself
 * escaped, as probe_absorb writes it); OK when ca may issue for a plain
 * (non-wildcard) name: no "issue" property, or one that is well-formed (RFC
 * 8659 4.2) and names ca, compared case-insensitively, whose RFC 8657
 * parameters, if any, admit us (accounturi equal to account; validationmethods
 * listing the first of challenges, the type the ACME client answers, see
 * probe_request_t; none when challenges is NULL), as Let's Encrypt reads
 * them; and no unknown property flagged critical (flag bit 128, or 1 as
 * Let's Encrypt also reads it).
 * Otherwise why not: a record naming ca says more than one that does not. */
probe_caa_why_t probe_caa_verdict(char *const *values, size_t n, const char *ca, const char *account,
                                  const char *challenges);
bool probe_caa_allows(char *const *values, size_t n, const char *ca, const char *account, const char *challenges);
/* Lower-cases and strips the final dot; NULL when not a valid DNS name. */
char *probe_normalize_name(const char *name);

#endif
