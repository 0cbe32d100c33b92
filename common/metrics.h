/* metrics: process-wide counters and latency histograms, rendered in
 * Prometheus text format on the API's /metrics.
 *
 * One metrics_t is created by main() and shared by every thread; updates are
 * relaxed atomic adds, so the hot path pays one uncontended add per event.
 * Each metric is one row of the table in metrics.c (name, help, labels). */
#ifndef HEE_METRICS_H
#define HEE_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metric_counter {
    M_CONN_ACCEPTED, M_CONN_REFUSED_LIMIT, M_CONN_ACCEPT_PAUSED, M_CONN_ACTIVE, /* ACTIVE is a gauge */
    M_TLS_HANDSHAKES, M_TLS_HANDSHAKE_FAILED, M_TLS_RESUMED, M_TLS_TAKEOVER,
    M_SNI_KNOWN, M_SNI_UNKNOWN, M_SNI_UNVERIFIED, M_SNI_NEGCACHE_HIT, M_SNI_MISSING, M_SNI_IP,
    M_STORE_LOOKUP_FOUND, M_STORE_LOOKUP_NOTFOUND, M_STORE_LOOKUP_ERROR,
    M_HTTP_REQUESTS, M_HTTP_2XX, M_HTTP_3XX, M_HTTP_4XX, M_HTTP_5XX, M_HTTP_BAD_REQUEST,
    M_UPSTREAM_CONNECT, M_UPSTREAM_REUSE, M_UPSTREAM_FAIL, M_UPSTREAM_FALLBACK, M_UPSTREAM_MARKED_DOWN,
    M_UPSTREAM_DOWN_SKIP,
    M_ISSUE_STARTED, M_ISSUE_OK, M_ISSUE_FAILED, M_ISSUE_RATE_LIMITED, M_ISSUE_PARKED,
    M_RENEW_OK, M_RENEW_FAILED,
    M_PROBE_RUN, M_PROBE_VERIFIED, M_PROBE_FAILED, M_PROBE_PACED, /* PACED is a gauge */
    M_DNS_QUERIES, M_DNS_UDP_SENT, M_DNS_TIMEOUTS, M_DNS_MALFORMED, M_DNS_NET_ERRORS,
    M_DNS_TCP_FALLBACKS, M_DNS_TCP_REFUSED, M_DNS_IGNORED,
    M_HOOK_DELIVERED, M_HOOK_FAILED, M_HOOK_DEAD,
    M_API_REQUESTS, M_API_ERRORS,
    M_COUNTER_COUNT
};

enum metric_hist {
    H_TLS_HANDSHAKE, H_HTTP_REQUEST, H_UPSTREAM, H_ISSUE, H_PROBE, H_HOOK, H_API,
    M_HIST_COUNT
};

typedef struct metrics metrics_t;

metrics_t *metrics_new(void);
void metrics_free(metrics_t *m);
void metrics_add(metrics_t *m, enum metric_counter c, int64_t n);
static inline void metrics_inc(metrics_t *m, enum metric_counter c) { metrics_add(m, c, 1); }
void metrics_observe_us(metrics_t *m, enum metric_hist h, int64_t us);
int64_t metrics_get(const metrics_t *m, enum metric_counter c);
/* Renders everything as Prometheus text; malloc'd, *len set; caller frees. */
char *metrics_render(const metrics_t *m, size_t *len);

#endif
