#include "common/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static const struct {
    const char *name, *labels, *help, *type;
} counters[M_COUNTER_COUNT] = {
    [M_CONN_ACCEPTED] = { "hee_connections_total", "", "Client connections accepted", "counter" },
    [M_CONN_REFUSED_LIMIT] = { "hee_connections_refused_total", "", "Connections closed at accept by a limit", "counter" },
    [M_CONN_ACCEPT_PAUSED] = { "hee_edge_accept_paused_total", "",
                               "Times a worker stopped accepting at [edge] max_conns_per_worker", "counter" },
    [M_CONN_ACTIVE] = { "hee_connections_active", "", "Client connections open now", "gauge" },
    [M_TLS_HANDSHAKES] = { "hee_tls_handshakes_total", "{result=\"ok\"}", "TLS handshakes", "counter" },
    [M_TLS_HANDSHAKE_FAILED] = { "hee_tls_handshakes_total", "{result=\"failed\"}", NULL, NULL },
    [M_TLS_RESUMED] = { "hee_tls_resumed_total", "", "TLS sessions resumed", "counter" },
    [M_TLS_TAKEOVER] = { "hee_tls_record_takeovers_total", "", "Idle TLS 1.3 connections moved from OpenSSL to Hee's record layer", "counter" },
    [M_SNI_KNOWN] = { "hee_sni_total", "{outcome=\"known\"}", "ClientHello SNI outcomes", "counter" },
    [M_SNI_UNKNOWN] = { "hee_sni_total", "{outcome=\"unknown\"}", NULL, NULL },
    [M_SNI_UNVERIFIED] = { "hee_sni_total", "{outcome=\"unverified\"}", NULL, NULL },
    [M_SNI_NEGCACHE_HIT] = { "hee_sni_total", "{outcome=\"negative_cached\"}", NULL, NULL },
    [M_SNI_MISSING] = { "hee_sni_total", "{outcome=\"missing\"}", NULL, NULL },
    [M_SNI_IP] = { "hee_sni_total", "{outcome=\"ip_literal\"}", NULL, NULL },
    [M_STORE_LOOKUP_FOUND] = { "hee_edge_store_lookups_total", "{result=\"found\"}", "Hostname lookups in the store by the edge loader (SNI or Host not cached)", "counter" },
    [M_STORE_LOOKUP_NOTFOUND] = { "hee_edge_store_lookups_total", "{result=\"not_found\"}", NULL, NULL },
    [M_STORE_LOOKUP_ERROR] = { "hee_edge_store_lookups_total", "{result=\"error\"}", NULL, NULL },
    [M_HTTP_REQUESTS] = { "hee_http_requests_total", "", "Requests read from clients", "counter" },
    [M_HTTP_2XX] = { "hee_http_responses_total", "{class=\"2xx\"}", "Responses by status class", "counter" },
    [M_HTTP_3XX] = { "hee_http_responses_total", "{class=\"3xx\"}", NULL, NULL },
    [M_HTTP_4XX] = { "hee_http_responses_total", "{class=\"4xx\"}", NULL, NULL },
    [M_HTTP_5XX] = { "hee_http_responses_total", "{class=\"5xx\"}", NULL, NULL },
    [M_HTTP_BAD_REQUEST] = { "hee_http_rejected_total", "", "Requests refused by the HTTP parser", "counter" },
    [M_UPSTREAM_CONNECT] = { "hee_upstream_connections_total", "{kind=\"new\"}", "Upstream connections", "counter" },
    [M_UPSTREAM_REUSE] = { "hee_upstream_connections_total", "{kind=\"reused\"}", NULL, NULL },
    [M_UPSTREAM_FAIL] = { "hee_upstream_failures_total", "", "Upstream connect or response failures", "counter" },
    [M_UPSTREAM_FALLBACK] = { "hee_upstream_fallbacks_total", "", "Requests sent to the fallback upstream", "counter" },
    [M_UPSTREAM_MARKED_DOWN] = { "hee_upstream_marked_down_total", "",
                                 "Upstreams marked down (for every worker) after every address failed to connect",
                                 "counter" },
    [M_UPSTREAM_DOWN_SKIP] = { "hee_upstream_down_skips_total", "",
                               "Requests sent straight to the fallback while the primary was marked down",
                               "counter" },
    [M_ISSUE_STARTED] = { "hee_issuance_total", "{result=\"started\"}", "Certificate orders", "counter" },
    [M_ISSUE_OK] = { "hee_issuance_total", "{result=\"ok\"}", NULL, NULL },
    [M_ISSUE_FAILED] = { "hee_issuance_total", "{result=\"failed\"}", NULL, NULL },
    [M_ISSUE_RATE_LIMITED] = { "hee_issuance_total", "{result=\"rate_limited\"}", NULL, NULL },
    [M_ISSUE_PARKED] = { "hee_handshakes_parked_total", "", "Handshakes parked waiting for a certificate", "counter" },
    [M_RENEW_OK] = { "hee_renewals_total", "{result=\"ok\"}", "Certificate renewals", "counter" },
    [M_RENEW_FAILED] = { "hee_renewals_total", "{result=\"failed\"}", NULL, NULL },
    [M_PROBE_RUN] = { "hee_probes_total", "{result=\"run\"}", "DNS verification probes", "counter" },
    [M_PROBE_VERIFIED] = { "hee_probes_total", "{result=\"verified\"}", NULL, NULL },
    [M_PROBE_FAILED] = { "hee_probes_total", "{result=\"not_verified\"}", NULL, NULL },
    [M_PROBE_PACED] = { "hee_probe_sweep_paced", "", "1 while scheduled probes are held to [verify] contended_rate (the background thread waits for a CPU)", "gauge" },
    [M_DNS_QUERIES] = { "hee_dns_queries_total", "", "DNS queries asked by verification probes", "counter" },
    [M_DNS_UDP_SENT] = { "hee_dns_udp_datagrams_sent_total", "", "UDP query datagrams sent (one per attempt)", "counter" },
    [M_DNS_TIMEOUTS] = { "hee_dns_attempt_failures_total", "{reason=\"timeout\"}", "DNS attempts that ended without a usable answer", "counter" },
    [M_DNS_MALFORMED] = { "hee_dns_attempt_failures_total", "{reason=\"malformed\"}", NULL, NULL },
    [M_DNS_NET_ERRORS] = { "hee_dns_attempt_failures_total", "{reason=\"network\"}", NULL, NULL },
    [M_DNS_TCP_FALLBACKS] = { "hee_dns_tcp_fallbacks_total", "{result=\"started\"}", "Truncated DNS answers retried over TCP", "counter" },
    [M_DNS_TCP_REFUSED] = { "hee_dns_tcp_fallbacks_total", "{result=\"refused_at_cap\"}", NULL, NULL },
    [M_DNS_IGNORED] = { "hee_dns_datagrams_ignored_total", "", "DNS datagrams dropped: wrong source, ID or question (late answers or spoofing)", "counter" },
    [M_HOOK_DELIVERED] = { "hee_webhook_attempts_total", "{result=\"delivered\"}", "Webhook delivery attempts", "counter" },
    [M_HOOK_FAILED] = { "hee_webhook_attempts_total", "{result=\"failed\"}", NULL, NULL },
    [M_HOOK_DEAD] = { "hee_webhook_dead_letters_total", "", "Deliveries dead-lettered", "counter" },
    [M_API_REQUESTS] = { "hee_api_requests_total", "", "API requests", "counter" },
    [M_API_ERRORS] = { "hee_api_errors_total", "", "API requests answered with an error", "counter" },
};

static const struct {
    const char *name, *help;
} hists[M_HIST_COUNT] = {
    [H_TLS_HANDSHAKE] = { "hee_tls_handshake_seconds", "TLS handshake duration, ClientHello to Finished" },
    [H_HTTP_REQUEST] = { "hee_http_request_seconds", "Request head read to response end" },
    [H_UPSTREAM] = { "hee_upstream_response_seconds", "Request sent to upstream response head" },
    [H_ISSUE] = { "hee_issuance_seconds", "Certificate order duration" },
    [H_PROBE] = { "hee_probe_seconds", "DNS verification probe duration" },
    [H_HOOK] = { "hee_webhook_attempt_seconds", "Webhook delivery attempt duration" },
    [H_API] = { "hee_api_request_seconds", "API request handling time" },
};

/* Upper bounds in microseconds; a final +Inf bucket is implied. */
static const int64_t bounds_us[] = { 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
                                     100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000 };
#define NBOUNDS (sizeof(bounds_us) / sizeof(bounds_us[0]))

struct metrics {
    _Atomic int64_t c[M_COUNTER_COUNT];
    struct {
        _Atomic int64_t bucket[NBOUNDS + 1];
        _Atomic int64_t sum_us;
    } h[M_HIST_COUNT];
};

metrics_t *metrics_new(void)
{
    return calloc(1, sizeof(metrics_t));
}

void metrics_free(metrics_t *m)
{
    free(m);
}

void metrics_add(metrics_t *m, enum metric_counter c, int64_t n)
{
    if (m)
        atomic_fetch_add_explicit(&m->c[c], n, memory_order_relaxed);
}

int64_t metrics_get(const metrics_t *m, enum metric_counter c)
{
    return atomic_load_explicit(&((metrics_t *)m)->c[c], memory_order_relaxed);
}

void metrics_observe_us(metrics_t *m, enum metric_hist h, int64_t us)
{
    if (!m)
        return;
    size_t i = 0;
    while (i < NBOUNDS && us > bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&m->h[h].bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->h[h].sum_us, us, memory_order_relaxed);
}

struct out {
    char *buf;
    size_t len, cap;
    int oom;
};

static void emit(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(struct out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *b = realloc(o->buf, cap);
        if (!b) {
            o->oom = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
}

char *metrics_render(const metrics_t *mc, size_t *len)
{
    metrics_t *m = (metrics_t *)mc;
    struct out o = { .cap = 8192 };
    if (!(o.buf = malloc(o.cap)))
        return NULL;
    for (int i = 0; i < M_COUNTER_COUNT; i++) {
        if (counters[i].help)
            emit(&o, "# HELP %s %s\n# TYPE %s %s\n", counters[i].name, counters[i].help,
                 counters[i].name, counters[i].type);
        emit(&o, "%s%s %lld\n", counters[i].name, counters[i].labels,
             (long long)atomic_load_explicit(&m->c[i], memory_order_relaxed));
    }
    for (int i = 0; i < M_HIST_COUNT; i++) {
        emit(&o, "# HELP %s %s\n# TYPE %s histogram\n", hists[i].name, hists[i].help, hists[i].name);
        int64_t cum = 0;
        for (size_t b = 0; b <= NBOUNDS; b++) {
            cum += atomic_load_explicit(&m->h[i].bucket[b], memory_order_relaxed);
            if (b < NBOUNDS)
                emit(&o, "%s_bucket{le=\"%g\"} %lld\n", hists[i].name, bounds_us[b] / 1e6, (long long)cum);
            else
                emit(&o, "%s_bucket{le=\"+Inf\"} %lld\n", hists[i].name, (long long)cum);
        }
        emit(&o, "%s_sum %.6f\n%s_count %lld\n", hists[i].name,
             atomic_load_explicit(&m->h[i].sum_us, memory_order_relaxed) / 1e6, hists[i].name,
             (long long)cum);
    }
    if (o.oom) {
        free(o.buf);
        return NULL;
    }
    *len = o.len;
    return o.buf;
}
