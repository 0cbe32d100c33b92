/* domain_state: the ConnectionState machine of a customer hostname — the
 * seed's twelve states, the triggers that move a domain between them, and
 * the webhook event each move announces. Pure and table-driven: no I/O, no
 * allocation, every string returned is a constant. The verifier (verify.c)
 * and the issuer apply transitions; docs/verification.md renders the table.
 * Callers write the new state and emit the event in one store transaction. */
#ifndef HEE_DOMAIN_STATE_H
#define HEE_DOMAIN_STATE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    DS_CREATED,
    DS_PENDING_OWNERSHIP, /* registered; DNS not seen pointing at the edge yet */
    DS_VERIFYING,         /* DNS changes seen (partly right) but not acceptable yet */
    DS_VERIFIED,
    DS_DNS_WRITING,       /* Domain Connect states: named by the seed, unused by Hee */
    DS_PROPAGATING,
    DS_STALLED,           /* pending past the verification window; probed rarely */
    DS_ISSUING_CERT,
    DS_LIVE,
    DS_DRIFTED,           /* verified, but DNS no longer points at the edge */
    DS_FAILED,            /* verified, certificate issuance failed */
    DS_ARCHIVED,          /* soft-deleted */
    DS_COUNT
} domain_state_t;

typedef enum {
    DT_REGISTER,          /* API registration */
    DT_TRUST,             /* first probe of a domain whose project trusts registration */
    DT_DNS_OK,            /* probe verified; the domain holds no current certificate */
    DT_DNS_OK_CERT,       /* probe verified; a current certificate exists */
    DT_DNS_PROGRESS,      /* probe not verified, but records (partly) point at the edge */
    DT_DNS_MISS,          /* probe not verified: nothing points at the edge */
    DT_DNS_ERROR,         /* probe inconclusive (SERVFAIL, timeout): never moves a domain */
    DT_WINDOW_EXPIRED,    /* still unverified after [verify] pending_window */
    DT_ISSUE_START,       /* issuer starts an order */
    DT_ISSUE_OK,          /* issuer stored a certificate */
    DT_ISSUE_FAIL,        /* issuer gave up on an order */
    DT_REMOVE,            /* API soft delete */
    DT_COUNT
} domain_trigger_t;

/* One row of the table; event NULL = the move announces nothing. */
typedef struct {
    domain_state_t from;
    domain_trigger_t trigger;
    domain_state_t to;
    const char *event;
} domain_transition_t;

/* Where trigger t takes a domain in state from, and the event to emit (NULL:
 * none). A row with to == from is an allowed no-op (possibly with an event,
 * e.g. a renewal of a live domain). 0, or -1 when the trigger is not allowed
 * in that state (*to = from, *event = NULL): the caller keeps the state. */
int domain_state_next(domain_state_t from, domain_trigger_t t, domain_state_t *to, const char **event);

const char *domain_state_name(domain_state_t s);       /* "pending_ownership"; "?" if invalid */
const char *domain_trigger_name(domain_trigger_t t);   /* "dns_ok"; "?" if invalid */
/* Parses a stored state name. 0, or -1 when unknown. */
int domain_state_parse(const char *name, domain_state_t *out);
/* States that only a verified domain (domains.verified = 1) can be in. */
bool domain_state_is_verified(domain_state_t s);
/* States the verification scheduler still probes to get a domain verified. */
bool domain_state_is_pending(domain_state_t s);

/* The whole table, for documentation and tests. */
const domain_transition_t *domain_state_table(size_t *n);

#endif
