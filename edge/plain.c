#include "edge/plain.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "edge/conn.h"
#include "edge/http1.h"
#include "edge/proxy.h"
#include "edge/route.h"
#include "edge/worker.h"

#define CHALLENGE_PREFIX "/.well-known/acme-challenge/"
#define KEYAUTH_MAX 512
#define LOCATION_MAX 8400

static void not_found(conn_t *c)
{
    static const char body[] = "404 Not Found: this host is not served here\n";
    proxy_local_reply(c, 404, NULL, body, sizeof(body) - 1, 0);
}

static void challenge(conn_t *c, const struct http1_request *hr)
{
    size_t plen = sizeof(CHALLENGE_PREFIX) - 1;
    char token[256], keyauth[KEYAUTH_MAX];
    size_t tl = 0;
    while (plen + tl < hr->path.len && hr->path.p[plen + tl] != '?' && tl < sizeof(token) - 1) {
        token[tl] = hr->path.p[plen + tl];
        tl++;
    }
    token[tl] = '\0';
    if (tl == 0 || challenge_http_get(c->w->hub->challenges, token, keyauth, sizeof(keyauth)) != 0) {
        static const char body[] = "404 Not Found: no such challenge\n";
        proxy_local_reply(c, 404, NULL, body, sizeof(body) - 1, 0);
        return;
    }
    proxy_local_reply(c, 200, NULL, keyauth, strlen(keyauth), 0);
}

static void redirect(conn_t *c, const struct http1_request *hr, const char *host, size_t host_len)
{
    /* The target as sent (path and query), or "/" for OPTIONS * and
     * absolute-form requests without a path. */
    const struct http1_span *t = hr->absolute_form ? &hr->path : &hr->target;
    const char *tp = t->len && t->p[0] == '/' ? t->p : "/";
    size_t tl = t->len && t->p[0] == '/' ? t->len : 1;
    char *hdr = malloc(LOCATION_MAX + host_len + tl);
    if (!hdr) {
        proxy_local_reply(c, 500, NULL, "500 out of memory\n", 18, 1);
        return;
    }
    snprintf(hdr, LOCATION_MAX + host_len + tl, "Location: https://%.*s%s%.*s\r\n", (int)host_len, host,
             proxy_https_port(c), (int)tl, tp);
    static const char body[] = "308 Permanent Redirect: use https\n";
    proxy_local_reply(c, 308, hdr, body, sizeof(body) - 1, 0);
    free(hdr);
}

void plain_on_route(conn_t *c, const struct http1_request *hr, const char *host, size_t host_len,
                    route_t *r)
{
    if (!r) {
        not_found(c);
        return;
    }
    redirect(c, hr, host, host_len);
}

void plain_request(conn_t *c, const struct http1_request *hr, const char *host, size_t host_len)
{
    edge_worker_t *w = c->w;
    size_t plen = sizeof(CHALLENGE_PREFIX) - 1;
    if (hr->path.len > plen && memcmp(hr->path.p, CHALLENGE_PREFIX, plen) == 0) {
        challenge(c, hr);
        return;
    }
    if (host_len == 0 || host[0] == '[' || host_len > CH_SNI_MAX) {
        not_found(c);
        return;
    }
    if (negcache_get(w->sh->neg, host, util_mono_ms()) == NEGCACHE_UNKNOWN) {
        metrics_inc(w->hub->metrics, M_SNI_NEGCACHE_HIT);
        not_found(c);
        return;
    }
    route_t *r = route_cache_get(w, host, host_len);
    if (!r) {
        /* The TLS side may have loaded it: only its route matters here. */
        route_t *cr = certcache_get_route(w->sh->certs, host, route_ref_cb);
        int known = cr && route_fresh(w, cr);
        route_unref(cr);
        if (!known) {
            proxy_wait_route(c, host, host_len);
            return;
        }
    }
    redirect(c, hr, host, host_len);
}
