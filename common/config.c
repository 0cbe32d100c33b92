#include "common/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"

enum ctype { T_INT, T_INT64, T_BOOL, T_STR, T_MS, T_SEC, T_LIST };

/* The whole configuration surface: one row per setting. conf/hee.conf
 * documents each row; a unit test checks that every row appears there. */
struct crow {
    const char *section, *key;
    enum ctype type;
    size_t off, count_off;       /* count_off: T_LIST element counter */
    const char *def;
    int64_t min, max;
    int reload;                  /* 1: SIGHUP may change it */
};

#define F(f) offsetof(config_t, f)
#define LIST(f) F(f), F(n_##f)
static const struct crow rows[] = {
    { "server", "workers", T_INT, F(workers), 0, "0", 0, 256, 0 },
    { "server", "data_dir", T_STR, F(data_dir), 0, "/var/lib/hee", 0, 0, 0 },
    { "server", "grace_period", T_MS, F(grace_period_ms), 0, "10s", 0, 3600000, 1 },
    { "server", "background_nice", T_INT, F(background_nice), 0, "10", 0, 19, 0 },
    { "server", "pin_workers", T_BOOL, F(pin_workers), 0, "no", 0, 1, 0 },
    { "log", "level", T_STR, F(log_level), 0, "info", 0, 0, 1 },
    { "log", "access_log", T_STR, F(access_log), 0, "off", 0, 0, 0 },
    { "edge", "tls_listen", T_LIST, LIST(tls_listen), "0.0.0.0:8443", 0, 0, 0 },
    { "edge", "http_listen", T_LIST, LIST(http_listen), "0.0.0.0:8080", 0, 0, 0 },
    { "edge", "target", T_STR, F(edge_target), 0, "edge.hee.la", 0, 0, 1 },
    { "edge", "addresses", T_STR, F(edge_addresses), 0, "", 0, 0, 1 },
    { "edge", "key_type", T_STR, F(key_type), 0, "ecdsa-p256", 0, 0, 1 },
    { "edge", "handshake_wait", T_MS, F(handshake_wait_ms), 0, "10s", 100, 120000, 1 },
    { "edge", "default_cert", T_STR, F(default_cert), 0, "", 0, 0, 0 },
    { "edge", "default_key", T_STR, F(default_key), 0, "", 0, 0, 0 },
    { "edge", "trusted_proxies", T_STR, F(trusted_proxies), 0, "", 0, 0, 1 },
    { "edge", "max_conns_per_worker", T_INT, F(max_conns_per_worker), 0, "20000", 1, 10000000, 1 },
    { "edge", "max_conns_per_ip", T_INT, F(max_conns_per_ip), 0, "0", 0, 10000000, 1 },
    { "edge", "header_timeout", T_MS, F(header_timeout_ms), 0, "10s", 100, 3600000, 1 },
    { "edge", "idle_timeout", T_MS, F(idle_timeout_ms), 0, "60s", 100, 86400000, 1 },
    { "edge", "upstream_connect_timeout", T_MS, F(upstream_connect_timeout_ms), 0, "5s", 10, 600000, 1 },
    { "edge", "upstream_fail_timeout", T_MS, F(upstream_fail_timeout_ms), 0, "10s", 0, 3600000, 1 },
    { "edge", "upstream_timeout", T_MS, F(upstream_timeout_ms), 0, "60s", 10, 86400000, 1 },
    { "edge", "max_request_line", T_INT, F(max_request_line), 0, "8192", 256, 1048576, 1 },
    { "edge", "max_header_bytes", T_INT, F(max_header_bytes), 0, "32768", 1024, 1048576, 1 },
    { "edge", "max_headers", T_INT, F(max_headers), 0, "100", 8, 1000, 1 },
    { "edge", "max_body_bytes", T_INT64, F(max_body_bytes), 0, "0", 0, INT64_MAX, 1 },
    { "edge", "cert_cache_size", T_INT, F(cert_cache_size), 0, "20000", 16, 100000000, 0 },
    { "edge", "cert_cache_hot_size", T_INT, F(cert_cache_hot_size), 0, "0", 0, 100000000, 0 },
    { "edge", "negative_cache_size", T_INT, F(negative_cache_size), 0, "10000", 16, 100000000, 0 },
    { "edge", "negative_ttl", T_MS, F(negative_ttl_ms), 0, "60s", 0, 86400000, 1 },
    { "edge", "ticket_rotate", T_SEC, F(ticket_rotate_s), 0, "1h", 60, 604800, 1 },
    { "edge", "request_id_header", T_STR, F(request_id_header), 0, "X-Request-Id", 0, 0, 1 },
    { "edge", "tenant_header", T_STR, F(tenant_header), 0, "X-Hee-Project", 0, 0, 1 },
    { "edge", "metadata_header", T_STR, F(metadata_header), 0, "X-Hee-Metadata", 0, 0, 1 },
    { "edge", "signature_header", T_STR, F(signature_header), 0, "X-Hee-Tenant-Signature", 0, 0, 1 },
    { "edge", "loader_threads", T_INT, F(loader_threads), 0, "2", 1, 16, 0 },
    { "edge", "route_ttl", T_MS, F(route_ttl_ms), 0, "5m", 1000, 86400000, 1 },
    { "edge", "upstream_idle_conns", T_INT, F(upstream_idle_conns), 0, "128", 0, 1000000, 1 },
    { "edge", "upstream_idle_timeout", T_MS, F(upstream_idle_timeout_ms), 0, "30s", 1000, 3600000, 1 },
    { "edge", "upstream_ca_bundle", T_STR, F(upstream_ca_bundle), 0, "", 0, 0, 0 },
    { "edge", "close_linger", T_MS, F(close_linger_ms), 0, "2s", 0, 60000, 1 },
    { "edge", "compact_idle_tls", T_BOOL, F(compact_idle_tls), 0, "yes", 0, 1, 1 },
    { "api", "listen", T_STR, F(api_listen), 0, "127.0.0.1:9080", 0, 0, 0 },
    { "api", "rate_limit", T_INT, F(api_rate_limit), 0, "100", 0, 10000000, 1 },
    { "api", "rate_burst", T_INT, F(api_rate_burst), 0, "200", 1, 10000000, 1 },
    { "api", "max_body", T_INT, F(api_max_body), 0, "65536", 1024, 16777216, 1 },
    { "api", "max_connections", T_INT, F(api_max_conns), 0, "1024", 1, 1000000, 0 },
    { "api", "upgrade_url", T_STR, F(upgrade_url), 0, "https://hee.la/pricing", 0, 0, 1 },
    { "store", "path", T_STR, F(store_path), 0, "hee.db", 0, 0, 0 },
    { "store", "key_encryption_key", T_STR, F(key_encryption_key), 0, "", 0, 0, 0 },
    { "acme", "directory", T_STR, F(acme_directory), 0, "", 0, 0, 1 },
    { "acme", "ca_bundle", T_STR, F(acme_ca_bundle), 0, "", 0, 0, 1 },
    { "acme", "email", T_STR, F(acme_email), 0, "", 0, 0, 1 },
    { "acme", "eab_kid", T_STR, F(acme_eab_kid), 0, "", 0, 0, 1 },
    { "acme", "eab_hmac_key", T_STR, F(acme_eab_hmac_key), 0, "", 0, 0, 1 },
    { "acme", "challenges", T_STR, F(acme_challenges), 0, CONFIG_DEFAULT_CHALLENGES, 0, 0, 1 },
    { "acme", "caa_identity", T_STR, F(acme_caa_identity), 0, "letsencrypt.org", 0, 0, 1 },
    { "acme", "max_concurrent_orders", T_INT, F(acme_max_concurrent), 0, "50", 1, 10000, 1 },
    { "acme", "max_orders_per_hour", T_INT, F(acme_max_per_hour), 0, "300", 1, 1000000, 1 },
    { "acme", "weekly_limit_per_domain", T_INT, F(acme_weekly_limit), 0, "45", 1, 1000000, 1 },
    { "acme", "backoff_base", T_SEC, F(acme_backoff_base_s), 0, "1m", 1, 86400, 1 },
    { "acme", "backoff_max", T_SEC, F(acme_backoff_max_s), 0, "1d", 1, 2592000, 1 },
    { "acme", "internal_validity", T_SEC, F(internal_validity_s), 0, "90d", 3600, 315360000, 1 },
    { "verify", "resolvers", T_STR, F(resolvers), 0, "", 0, 0, 1 },
    { "verify", "dns_timeout", T_MS, F(dns_timeout_ms), 0, "2s", 50, 60000, 1 },
    { "verify", "dns_attempts", T_INT, F(dns_attempts), 0, "3", 1, 10, 1 },
    { "verify", "pending_interval", T_SEC, F(pending_interval_s), 0, "5m", 1, 86400, 1 },
    { "verify", "pending_window", T_SEC, F(pending_window_s), 0, "7d", 1, 31536000, 1 },
    { "verify", "stalled_interval", T_SEC, F(stalled_interval_s), 0, "1h", 1, 604800, 1 },
    { "verify", "verified_interval", T_SEC, F(verified_interval_s), 0, "24h", 1, 2592000, 1 },
    { "verify", "first_request_probe", T_SEC, F(first_request_probe_s), 0, "10s", 0, 86400, 1 },
    { "verify", "concurrency", T_INT, F(probe_concurrency), 0, "256", 1, 65536, 1 },
    { "verify", "contended_rate", T_INT, F(probe_contended_rate), 0, "1000", 0, 1000000, 1 },
    { "webhooks", "retry_schedule", T_STR, F(hook_retry_schedule), 0, "30s,1m,5m,30m,2h,6h,1d", 0, 0, 1 },
    { "webhooks", "max_age", T_SEC, F(hook_max_age_s), 0, "7d", 1, 31536000, 1 },
    { "webhooks", "timeout", T_SEC, F(hook_timeout_s), 0, "15s", 1, 300, 1 },
    { "webhooks", "concurrency", T_INT, F(hook_concurrency), 0, "64", 1, 10000, 1 },
    { "webhooks", "per_endpoint", T_INT, F(hook_per_endpoint), 0, "4", 1, 1000, 1 },
    { "webhooks", "disable_after", T_SEC, F(hook_disable_after_s), 0, "5d", 1, 31536000, 1 },
    { "webhooks", "allow_private", T_STR, F(hook_allow_private), 0, "", 0, 0, 1 },
    { "webhooks", "allow_http", T_BOOL, F(hook_allow_http), 0, "no", 0, 1, 1 },
    { "webhooks", "secret_overlap", T_SEC, F(hook_secret_overlap_s), 0, "24h", 0, 31536000, 1 },
    { "webhooks", "retention", T_SEC, F(hook_retention_s), 0, "30d", 3600, 315360000, 1 },
};
#undef F
#undef LIST

static const struct crow *find_row(const char *section, const char *key)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++)
        if (strcasecmp(rows[i].section, section) == 0 && strcasecmp(rows[i].key, key) == 0)
            return &rows[i];
    return NULL;
}

/* "90", "250ms", "10s", "5m", "2h", "7d" → value in unit_ms milliseconds. */
static int parse_duration(const char *v, int64_t unit_ms, int64_t *out)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || n < 0)
        return -1;
    int64_t mult;
    if (*end == '\0')
        mult = unit_ms; /* bare number: the setting's own unit */
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else
        return -1;
    if (n > INT64_MAX / mult)
        return -1;
    int64_t ms = n * mult;
    if (ms % unit_ms)
        return -1; /* e.g. "500ms" for a setting counted in seconds */
    *out = ms / unit_ms;
    return 0;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = { "1", "yes", "true", "on" };
    static const char *const no[] = { "0", "no", "false", "off" };
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

static void free_list(config_t *c, const struct crow *r)
{
    char **arr = (char **)((char *)c + r->off);
    int *n = (int *)((char *)c + r->count_off);
    for (int i = 0; i < *n; i++) {
        free(arr[i]);
        arr[i] = NULL;
    }
    *n = 0;
}

static int set_list(config_t *c, const struct crow *r, const char *v, const char **why)
{
    free_list(c, r);
    char **arr = (char **)((char *)c + r->off);
    int *n = (int *)((char *)c + r->count_off);
    const char *p = v;
    while (*p) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        size_t len = strcspn(p, ", \t");
        if (len == 0)
            break;
        if (*n >= CONFIG_MAX_LISTEN)
            return *why = "too many addresses", -1;
        if (!(arr[*n] = util_strndup(p, len)))
            return *why = "out of memory", -1;
        (*n)++;
        p += len;
    }
    return 0;
}

static int set_value(config_t *c, const struct crow *r, const char *v, const char **why)
{
    void *field = (char *)c + r->off;
    int64_t n = 0;
    int b;
    switch (r->type) {
    case T_STR: {
        char *dup = strdup(v);
        if (!dup)
            return *why = "out of memory", -1;
        free(*(char **)field);
        *(char **)field = dup;
        return 0;
    }
    case T_LIST:
        return set_list(c, r, v, why);
    case T_BOOL:
        if (parse_bool(v, &b) != 0)
            return *why = "expected yes or no", -1;
        *(int *)field = b;
        return 0;
    case T_INT:
    case T_INT64: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end)
            return *why = "expected an integer", -1;
        n = x;
        break;
    }
    case T_MS:
        if (parse_duration(v, 1, &n) != 0)
            return *why = "expected a duration such as 500ms, 10s, 5m, 2h or 7d", -1;
        break;
    case T_SEC:
        if (parse_duration(v, 1000, &n) != 0)
            return *why = "expected a duration in whole seconds such as 30s, 5m, 2h or 7d", -1;
        break;
    }
    if (n < r->min || n > r->max)
        return *why = "value out of range", -1;
    if (r->type == T_INT64)
        *(int64_t *)field = n;
    else
        *(int *)field = (int)n;
    return 0;
}

struct load_ctx {
    config_t *c;
    const char *why;
    char key[128];
};

/* Settings that were renamed: the error names the new one. */
static const struct {
    const char *section, *old, *why;
} renamed[] = {
    { "server", "control_nice", "renamed to background_nice (it applies to probes and webhooks only)" },
};

static const char *unknown_why(const char *section, const char *key)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(renamed); i++)
        if (strcmp(section, renamed[i].section) == 0 && strcmp(key, renamed[i].old) == 0)
            return renamed[i].why;
    return "unknown setting";
}

static int on_ini(void *user, const char *section, const char *key, const char *value)
{
    struct load_ctx *lc = user;
    const struct crow *r = find_row(section, key);
    snprintf(lc->key, sizeof(lc->key), "[%s] %s", section, key);
    if (!r) {
        lc->why = unknown_why(section, key);
        return 0;
    }
    return set_value(lc->c, r, value, &lc->why) == 0;
}

static char *errorf(const char *where, int line, const char *key, const char *why)
{
    char buf[512];
    if (line > 0)
        snprintf(buf, sizeof(buf), "%s:%d: %s: %s", where, line, key, why);
    else
        snprintf(buf, sizeof(buf), "%s: %s: %s", where, key, why);
    return strdup(buf);
}

/* HEE_EDGE_TLS_LISTEN=… overrides [edge] tls_listen. */
static int apply_env(config_t *c, char **err)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        char name[96];
        int n = snprintf(name, sizeof(name), "HEE_%s_%s", rows[i].section, rows[i].key);
        for (int j = 0; j < n; j++)
            name[j] = (char)toupper((unsigned char)name[j]);
        const char *v = getenv(name);
        if (!v)
            continue;
        const char *why = NULL;
        if (set_value(c, &rows[i], v, &why) != 0) {
            *err = errorf("environment", 0, name, why);
            return -1;
        }
    }
    return 0;
}

/* A blank [acme] challenges would read as "no challenge type" to one reader
 * and as the default list to another (the ACME client, the CAA check): it
 * becomes the default list here, once, for all of them. */
static int blank_to_default(config_t *c, const char **why)
{
    const struct crow *r = find_row("acme", "challenges");
    return c->acme_challenges[0] ? 0 : set_value(c, r, r->def, why);
}

static int check_consistency(const config_t *c, const char **why, const char **key)
{
    if (strcmp(c->key_type, "ecdsa-p256") != 0 && strcmp(c->key_type, "rsa-2048") != 0)
        return *key = "[edge] key_type", *why = "expected ecdsa-p256 or rsa-2048", -1;
    if ((c->default_cert[0] == '\0') != (c->default_key[0] == '\0'))
        return *key = "[edge] default_cert", *why = "default_cert and default_key go together", -1;
    enum log_level lvl;
    if (log_level_parse(c->log_level, &lvl) != 0)
        return *key = "[log] level", *why = "expected debug, info, warn or error", -1;
    if (c->n_tls_listen == 0 && c->n_http_listen == 0)
        return *key = "[edge] tls_listen", *why = "no edge listener configured", -1;
    return 0;
}

config_t *config_load(const char *path, char **err)
{
    *err = NULL;
    config_t *c = calloc(1, sizeof(*c));
    if (!c) {
        *err = strdup("out of memory");
        return NULL;
    }
    const char *why = NULL;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        if (set_value(c, &rows[i], rows[i].def, &why) != 0) {
            *err = errorf("defaults", 0, rows[i].key, why);
            goto fail;
        }
    }
    if (path) {
        struct load_ctx lc = { .c = c };
        int line = ini_parse(path, on_ini, &lc);
        if (line < 0) {
            *err = errorf(path, 0, "file", strerror(errno ? errno : ENOENT));
            goto fail;
        }
        if (line > 0) {
            *err = errorf(path, line, lc.why ? lc.key : "syntax", lc.why ? lc.why : "expected 'key = value' or '[section]'");
            goto fail;
        }
    }
    if (apply_env(c, err) != 0)
        goto fail;
    if (blank_to_default(c, &why) != 0) {
        *err = errorf("config", 0, "challenges", why);
        goto fail;
    }
    const char *key = NULL;
    if (check_consistency(c, &why, &key) != 0) {
        *err = errorf(path ? path : "config", 0, key, why);
        goto fail;
    }
    return c;
fail:
    config_free(c);
    return NULL;
}

void config_free(config_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        if (rows[i].type == T_STR)
            free(*(char **)((char *)c + rows[i].off));
        else if (rows[i].type == T_LIST)
            free_list(c, &rows[i]);
    }
    free(c);
}

char *config_data_path(const config_t *c, const char *name)
{
    if (name[0] == '/')
        return strdup(name);
    size_t n = strlen(c->data_dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", c->data_dir, name);
    return p;
}

static int field_equal(const config_t *a, const config_t *b, const struct crow *r)
{
    const char *fa = (const char *)a + r->off, *fb = (const char *)b + r->off;
    switch (r->type) {
    case T_STR:
        return strcmp(*(char *const *)fa, *(char *const *)fb) == 0;
    case T_LIST: {
        int na = *(const int *)((const char *)a + r->count_off);
        int nb = *(const int *)((const char *)b + r->count_off);
        if (na != nb)
            return 0;
        for (int i = 0; i < na; i++)
            if (strcmp(((char *const *)fa)[i], ((char *const *)fb)[i]) != 0)
                return 0;
        return 1;
    }
    case T_INT64:
        return *(const int64_t *)fa == *(const int64_t *)fb;
    default:
        return *(const int *)fa == *(const int *)fb;
    }
}

char *config_unreloadable_changes(const config_t *a, const config_t *b)
{
    char buf[1024] = "";
    size_t n = 0;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        if (rows[i].reload || field_equal(a, b, &rows[i]))
            continue;
        int m = snprintf(buf + n, sizeof(buf) - n, "%s[%s] %s", n ? ", " : "", rows[i].section, rows[i].key);
        if (m > 0 && (size_t)m < sizeof(buf) - n)
            n += (size_t)m;
    }
    return n ? strdup(buf) : NULL;
}
