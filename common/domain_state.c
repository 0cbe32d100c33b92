#include "common/domain_state.h"

#include <string.h>

#include "common/util.h"

static const char *const state_names[DS_COUNT] = {
    "created", "pending_ownership", "verifying", "verified", "dns_writing", "propagating",
    "stalled", "issuing_cert", "live", "drifted", "failed", "archived",
};

static const char *const trigger_names[DT_COUNT] = {
    "register", "trust", "dns_ok", "dns_ok_cert", "dns_progress", "dns_miss", "dns_error",
    "window_expired", "issue_start", "issue_ok", "issue_fail", "remove",
};

#define EV_VERIFIED "domain.verified"
#define EV_DRIFT "domain.drift"
#define EV_MONITOR "domain.monitor_updated"
#define EV_FAILED "domain.failed"
#define EV_CREATED "domain.created"
#define EV_DELETED "domain.deleted"
#define EV_ISSUED "ssl.issued"

/* Every allowed move. A (state, trigger) pair that is not listed is refused.
 * Order: by trigger, so the table reads like docs/verification.md. */
static const domain_transition_t table[] = {
    { DS_CREATED, DT_REGISTER, DS_PENDING_OWNERSHIP, EV_CREATED },

    /* The project trusts registration: the first probe verifies without DNS. */
    { DS_CREATED, DT_TRUST, DS_VERIFIED, EV_VERIFIED },
    { DS_PENDING_OWNERSHIP, DT_TRUST, DS_VERIFIED, EV_VERIFIED },
    { DS_VERIFYING, DT_TRUST, DS_VERIFIED, EV_VERIFIED },
    { DS_STALLED, DT_TRUST, DS_VERIFIED, EV_VERIFIED },
    { DS_DRIFTED, DT_TRUST, DS_VERIFIED, EV_MONITOR },
    { DS_VERIFIED, DT_TRUST, DS_VERIFIED, NULL },
    { DS_ISSUING_CERT, DT_TRUST, DS_ISSUING_CERT, NULL },
    { DS_LIVE, DT_TRUST, DS_LIVE, NULL },
    { DS_FAILED, DT_TRUST, DS_FAILED, NULL },

    /* DNS points at the edge. */
    { DS_CREATED, DT_DNS_OK, DS_VERIFIED, EV_VERIFIED },
    { DS_PENDING_OWNERSHIP, DT_DNS_OK, DS_VERIFIED, EV_VERIFIED },
    { DS_VERIFYING, DT_DNS_OK, DS_VERIFIED, EV_VERIFIED },
    { DS_STALLED, DT_DNS_OK, DS_VERIFIED, EV_VERIFIED },
    { DS_DRIFTED, DT_DNS_OK, DS_VERIFIED, EV_MONITOR },
    { DS_VERIFIED, DT_DNS_OK, DS_VERIFIED, NULL },
    { DS_ISSUING_CERT, DT_DNS_OK, DS_ISSUING_CERT, NULL },
    { DS_LIVE, DT_DNS_OK, DS_LIVE, NULL },
    { DS_FAILED, DT_DNS_OK, DS_FAILED, NULL },

    /* Same, and a certificate for the hostname still serves (kept from an
     * earlier registration, or issued before a drift): straight to live. */
    { DS_CREATED, DT_DNS_OK_CERT, DS_LIVE, EV_VERIFIED },
    { DS_PENDING_OWNERSHIP, DT_DNS_OK_CERT, DS_LIVE, EV_VERIFIED },
    { DS_VERIFYING, DT_DNS_OK_CERT, DS_LIVE, EV_VERIFIED },
    { DS_STALLED, DT_DNS_OK_CERT, DS_LIVE, EV_VERIFIED },
    { DS_DRIFTED, DT_DNS_OK_CERT, DS_LIVE, EV_MONITOR },
    { DS_VERIFIED, DT_DNS_OK_CERT, DS_VERIFIED, NULL },
    { DS_ISSUING_CERT, DT_DNS_OK_CERT, DS_ISSUING_CERT, NULL },
    { DS_LIVE, DT_DNS_OK_CERT, DS_LIVE, NULL },
    { DS_FAILED, DT_DNS_OK_CERT, DS_FAILED, NULL },

    /* Records seen pointing (partly) at the edge, but something blocks. */
    { DS_CREATED, DT_DNS_PROGRESS, DS_VERIFYING, NULL },
    { DS_PENDING_OWNERSHIP, DT_DNS_PROGRESS, DS_VERIFYING, NULL },
    { DS_VERIFYING, DT_DNS_PROGRESS, DS_VERIFYING, NULL },
    { DS_STALLED, DT_DNS_PROGRESS, DS_STALLED, NULL },
    { DS_VERIFIED, DT_DNS_PROGRESS, DS_DRIFTED, EV_DRIFT },
    { DS_ISSUING_CERT, DT_DNS_PROGRESS, DS_DRIFTED, EV_DRIFT },
    { DS_LIVE, DT_DNS_PROGRESS, DS_DRIFTED, EV_DRIFT },
    { DS_FAILED, DT_DNS_PROGRESS, DS_DRIFTED, EV_DRIFT },
    { DS_DRIFTED, DT_DNS_PROGRESS, DS_DRIFTED, NULL },

    /* Nothing points at the edge. Verification is one-way: a verified
     * domain drifts, it never returns to pending. */
    { DS_CREATED, DT_DNS_MISS, DS_PENDING_OWNERSHIP, NULL },
    { DS_PENDING_OWNERSHIP, DT_DNS_MISS, DS_PENDING_OWNERSHIP, NULL },
    { DS_VERIFYING, DT_DNS_MISS, DS_PENDING_OWNERSHIP, NULL },
    { DS_STALLED, DT_DNS_MISS, DS_STALLED, NULL },
    { DS_VERIFIED, DT_DNS_MISS, DS_DRIFTED, EV_DRIFT },
    { DS_ISSUING_CERT, DT_DNS_MISS, DS_DRIFTED, EV_DRIFT },
    { DS_LIVE, DT_DNS_MISS, DS_DRIFTED, EV_DRIFT },
    { DS_FAILED, DT_DNS_MISS, DS_DRIFTED, EV_DRIFT },
    { DS_DRIFTED, DT_DNS_MISS, DS_DRIFTED, NULL },

    /* A transient DNS failure proves nothing either way. */
    { DS_CREATED, DT_DNS_ERROR, DS_CREATED, NULL },
    { DS_PENDING_OWNERSHIP, DT_DNS_ERROR, DS_PENDING_OWNERSHIP, NULL },
    { DS_VERIFYING, DT_DNS_ERROR, DS_VERIFYING, NULL },
    { DS_STALLED, DT_DNS_ERROR, DS_STALLED, NULL },
    { DS_VERIFIED, DT_DNS_ERROR, DS_VERIFIED, NULL },
    { DS_ISSUING_CERT, DT_DNS_ERROR, DS_ISSUING_CERT, NULL },
    { DS_LIVE, DT_DNS_ERROR, DS_LIVE, NULL },
    { DS_FAILED, DT_DNS_ERROR, DS_FAILED, NULL },
    { DS_DRIFTED, DT_DNS_ERROR, DS_DRIFTED, NULL },

    /* Applied after a probe that left the domain unverified. */
    { DS_CREATED, DT_WINDOW_EXPIRED, DS_STALLED, EV_FAILED },
    { DS_PENDING_OWNERSHIP, DT_WINDOW_EXPIRED, DS_STALLED, EV_FAILED },
    { DS_VERIFYING, DT_WINDOW_EXPIRED, DS_STALLED, EV_FAILED },
    { DS_STALLED, DT_WINDOW_EXPIRED, DS_STALLED, NULL },

    /* Certificates (the issuer). */
    { DS_VERIFIED, DT_ISSUE_START, DS_ISSUING_CERT, NULL },
    { DS_FAILED, DT_ISSUE_START, DS_ISSUING_CERT, NULL },
    { DS_ISSUING_CERT, DT_ISSUE_START, DS_ISSUING_CERT, NULL },
    { DS_LIVE, DT_ISSUE_START, DS_LIVE, NULL },
    { DS_DRIFTED, DT_ISSUE_START, DS_DRIFTED, NULL },
    { DS_ISSUING_CERT, DT_ISSUE_OK, DS_LIVE, EV_ISSUED },
    { DS_VERIFIED, DT_ISSUE_OK, DS_LIVE, EV_ISSUED },
    { DS_FAILED, DT_ISSUE_OK, DS_LIVE, EV_ISSUED },
    { DS_LIVE, DT_ISSUE_OK, DS_LIVE, EV_MONITOR },
    { DS_DRIFTED, DT_ISSUE_OK, DS_DRIFTED, EV_ISSUED },
    { DS_ISSUING_CERT, DT_ISSUE_FAIL, DS_FAILED, EV_FAILED },
    { DS_VERIFIED, DT_ISSUE_FAIL, DS_FAILED, EV_FAILED },
    { DS_FAILED, DT_ISSUE_FAIL, DS_FAILED, NULL },
    { DS_LIVE, DT_ISSUE_FAIL, DS_LIVE, EV_MONITOR },
    { DS_DRIFTED, DT_ISSUE_FAIL, DS_DRIFTED, NULL },

    /* Soft delete, from anywhere but archived. */
    { DS_CREATED, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
    { DS_PENDING_OWNERSHIP, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
    { DS_VERIFYING, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
    { DS_VERIFIED, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
    { DS_DNS_WRITING, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
    { DS_PROPAGATING, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
    { DS_STALLED, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
    { DS_ISSUING_CERT, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
    { DS_LIVE, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
    { DS_DRIFTED, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
    { DS_FAILED, DT_REMOVE, DS_ARCHIVED, EV_DELETED },
};

int domain_state_next(domain_state_t from, domain_trigger_t t, domain_state_t *to, const char **event)
{
    *to = from;
    *event = NULL;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(table); i++) {
        if (table[i].from == from && table[i].trigger == t) {
            *to = table[i].to;
            *event = table[i].event;
            return 0;
        }
    }
    return -1;
}

const char *domain_state_name(domain_state_t s)
{
    return (unsigned)s < DS_COUNT ? state_names[s] : "?";
}

const char *domain_trigger_name(domain_trigger_t t)
{
    return (unsigned)t < DT_COUNT ? trigger_names[t] : "?";
}

int domain_state_parse(const char *name, domain_state_t *out)
{
    for (int i = 0; name && i < DS_COUNT; i++) {
        if (strcmp(state_names[i], name) == 0) {
            *out = (domain_state_t)i;
            return 0;
        }
    }
    return -1;
}

bool domain_state_is_verified(domain_state_t s)
{
    return s == DS_VERIFIED || s == DS_ISSUING_CERT || s == DS_LIVE || s == DS_DRIFTED || s == DS_FAILED;
}

bool domain_state_is_pending(domain_state_t s)
{
    return s == DS_CREATED || s == DS_PENDING_OWNERSHIP || s == DS_VERIFYING || s == DS_STALLED;
}

const domain_transition_t *domain_state_table(size_t *n)
{
    *n = UTIL_ARRAY_LEN(table);
    return table;
}
