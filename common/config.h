/* config: the daemon's settings, read from one INI file (libinih) with
 * HEE_<SECTION>_<KEY> environment overrides.
 *
 * Every setting is one row of the table in config.c: section, key, type,
 * default, bounds, and whether SIGHUP may change it. config_load() fills a
 * config_t that the caller owns and frees with config_free(); threads get a
 * pointer to an immutable config_t and a reload swaps in a new one (the old
 * one is freed only after every thread has moved on — see ARCHITECTURE.md). */
#ifndef HEE_CONFIG_H
#define HEE_CONFIG_H

#include <stdint.h>

#define CONFIG_MAX_LISTEN 8

/* The challenge types tried, in order, when [acme] challenges is blank or
 * unset; also the ACME client's list when its caller passes none. */
#define CONFIG_DEFAULT_CHALLENGES "tls-alpn-01 http-01"

typedef struct config {
    /* [server] */
    int workers;                 /* 0 = one per core */
    char *data_dir;
    int grace_period_ms;
    int background_nice;         /* nice of the background thread (probes, webhooks) */
    int pin_workers;             /* worker i on the i-th usable CPU (edge.c) */
    /* [log] */
    char *log_level;
    char *access_log;            /* "off", "stderr" or a path */
    /* [edge] */
    char *tls_listen[CONFIG_MAX_LISTEN];
    int n_tls_listen;
    char *http_listen[CONFIG_MAX_LISTEN];
    int n_http_listen;
    char *edge_target;           /* CNAME target customers point at */
    char *edge_addresses;        /* apex A/AAAA addresses, space-separated */
    char *key_type;              /* ecdsa-p256 | rsa-2048 */
    int handshake_wait_ms;
    char *default_cert;          /* PEM path, or "" to refuse unknown names */
    char *default_key;
    char *trusted_proxies;       /* CIDRs whose X-Forwarded-* we keep */
    int max_conns_per_worker;
    int max_conns_per_ip;
    int header_timeout_ms;
    int idle_timeout_ms;
    int upstream_connect_timeout_ms;
    int upstream_fail_timeout_ms;
    int upstream_timeout_ms;
    int max_request_line;
    int max_header_bytes;
    int max_headers;
    int64_t max_body_bytes;      /* 0 = unlimited; projects may lower it */
    int cert_cache_size;
    int cert_cache_hot_size;     /* parsed entries kept; 0 = derived from cert_cache_size */
    int negative_cache_size;
    int negative_ttl_ms;
    int ticket_rotate_s;
    char *request_id_header;
    char *tenant_header;         /* carries the project slug upstream */
    char *metadata_header;       /* carries the domain metadata upstream */
    char *signature_header;      /* HMAC over tenant header + timestamp */
    int loader_threads;          /* store lookups off the workers' loops */
    int route_ttl_ms;            /* a route is trusted this long without news */
    int upstream_idle_conns;     /* pooled per upstream per worker; 0 = no reuse */
    int upstream_idle_timeout_ms;
    char *upstream_ca_bundle;    /* trust for https upstreams; "" = system */
    int close_linger_ms;         /* discard client input this long before close */
    int compact_idle_tls;        /* idle TLS 1.3 leaves OpenSSL (edge/tlsrec) */
    /* [api] */
    char *api_listen;
    int api_rate_limit;          /* requests per second per token */
    int api_rate_burst;
    int api_max_body;
    int api_max_conns;           /* open API connections at most; accepting pauses beyond */
    char *upgrade_url;
    /* [store] */
    char *store_path;            /* relative to data_dir unless absolute */
    char *key_encryption_key;    /* path to a 32-byte key file, or "" */
    /* [acme] */
    char *acme_directory;        /* space-separated URLs in fallback order; "" = internal CA */
    char *acme_ca_bundle;        /* trust for the directory's HTTPS; "" = system */
    char *acme_email;
    char *acme_eab_kid;
    char *acme_eab_hmac_key;
    char *acme_challenges;       /* order of http-01 / tls-alpn-01; never blank */
    char *acme_caa_identity;     /* issuer name CAA must allow, e.g. letsencrypt.org */
    int acme_max_concurrent;
    int acme_max_per_hour;
    int acme_weekly_limit;       /* per registered domain */
    int acme_backoff_base_s;
    int acme_backoff_max_s;
    int internal_validity_s;
    /* [verify] */
    char *resolvers;             /* "" = /etc/resolv.conf */
    int dns_timeout_ms;
    int dns_attempts;
    int pending_interval_s;
    int pending_window_s;
    int stalled_interval_s;
    int verified_interval_s;
    int first_request_probe_s;   /* min seconds between edge-triggered probes per host */
    int probe_concurrency;
    int probe_contended_rate; /* scheduled probes/s while the CPU is contended; 0 = no limit */
    /* [webhooks] */
    char *hook_retry_schedule;
    int hook_max_age_s;
    int hook_timeout_s;
    int hook_concurrency;
    int hook_per_endpoint;
    int hook_disable_after_s;
    char *hook_allow_private;    /* CIDRs exempt from SSRF refusal */
    int hook_allow_http;
    int hook_secret_overlap_s;
    int hook_retention_s;
} config_t;

/* Loads defaults, then path (may be NULL for defaults only), then the
 * environment. On error returns NULL and *err = "file:line: reason"
 * (malloc'd, caller frees). */
config_t *config_load(const char *path, char **err);
void config_free(config_t *c);
/* Absolute or data_dir-relative path of a file under data_dir (malloc'd). */
char *config_data_path(const config_t *c, const char *name);
/* Lists keys that differ between a and b but cannot change on reload
 * (malloc'd comma-separated, or NULL when none). */
char *config_unreloadable_changes(const config_t *a, const config_t *b);

#endif
