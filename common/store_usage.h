/* store_usage: per-project, per-month usage counters by UsageKind. Callers
 * on hot paths batch in memory and add in bulk; each call is one upsert and
 * needs no transaction (it joins the caller's if one is open). */
#ifndef HEE_STORE_USAGE_H
#define HEE_STORE_USAGE_H

#include <stdint.h>

#include "common/store.h"

enum store_usage_kind {
    USAGE_CONNECT,               /* client connections accepted by the edge */
    USAGE_ACTIVE_DOMAIN,         /* peak number of active domains in the month */
    USAGE_CERT,                  /* certificates issued */
    USAGE_API_CALL,              /* authenticated API requests */
    USAGE_KIND_COUNT
};

const char *store_usage_kind_name(enum store_usage_kind k);
/* "YYYY-MM" (UTC) of ms since the epoch into buf (>= 8 bytes). */
char *store_usage_period(int64_t ms, char *buf, unsigned len);

/* Adds n to the current month's counter. */
int store_usage_add(store_t *s, int64_t project_id, enum store_usage_kind kind, int64_t n);
int store_usage_add_at(store_t *s, int64_t project_id, enum store_usage_kind kind, const char *period,
                       int64_t n);
/* Raises the current month's counter to value if it is lower (peak gauges). */
int store_usage_max(store_t *s, int64_t project_id, enum store_usage_kind kind, int64_t value);
/* Every kind's count for period into out[USAGE_KIND_COUNT] (0 when absent). */
int store_usage_get(store_t *s, int64_t project_id, const char *period, int64_t out[USAGE_KIND_COUNT]);

#endif
