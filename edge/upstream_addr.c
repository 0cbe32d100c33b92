/* Address half of upstream.h (upstream_addr_parse / _resolve): kept apart
 * from the pools so tools and unit tests can use it without a worker. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/clock.h"
#include "edge/upstream.h"

int upstream_addr_parse(const char *url, upstream_addr_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *p;
    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        p = url + 8;
        out->tls = 1;
    } else {
        *why = "upstream must be http:// or https://";
        return -1;
    }
    size_t auth = strcspn(p, "/?#");
    if (auth == 0 || auth >= sizeof(out->host)) {
        *why = "upstream has no host";
        return -1;
    }
    const char *end = p + auth, *hs = p, *he, *colon = NULL;
    if (*p == '[') {
        he = memchr(p, ']', auth);
        if (!he) {
            *why = "bad IPv6 literal";
            return -1;
        }
        hs = p + 1;
        colon = he + 1 < end && he[1] == ':' ? he + 1 : NULL;
    } else {
        colon = memchr(p, ':', auth);
        he = colon ? colon : end;
    }
    if (he == hs || memchr(p, '@', auth)) {
        *why = "bad upstream host";
        return -1;
    }
    long port = out->tls ? 443 : 80;
    if (colon) {
        char *e = NULL;
        port = strtol(colon + 1, &e, 10);
        if (e != end || port <= 0 || port > 65535) {
            *why = "bad upstream port";
            return -1;
        }
    }
    memcpy(out->host, hs, (size_t)(he - hs));
    out->host[he - hs] = '\0';
    out->port = (uint16_t)port;
    snprintf(out->key, sizeof(out->key), "%s://%s%s%s:%ld", out->tls ? "https" : "http",
             *p == '[' ? "[" : "", out->host, *p == '[' ? "]" : "", port);
    out->key_len = strlen(out->key);
    return 0;
}

socklen_t upstream_addr_len(const upstream_addr_t *a, unsigned i)
{
    return a->addrs[i].sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

int upstream_addr_add(upstream_addr_t *a, const struct sockaddr *sa, socklen_t len)
{
    socklen_t want = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                     : sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : 0;
    if (want == 0 || len < want || a->n_addrs >= UPSTREAM_ADDRS_MAX)
        return 0;
    upstream_sa_t slot;
    memset(&slot, 0, sizeof(slot));
    memcpy(&slot, sa, want);
    for (unsigned i = 0; i < a->n_addrs; i++) {
        if (memcmp(&a->addrs[i], &slot, sizeof(slot)) == 0)
            return 0;
    }
    a->addrs[a->n_addrs++] = slot;
    return 1;
}

int upstream_addr_resolve(upstream_addr_t *a)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", a->port);
    hints.ai_flags |= AI_NUMERICHOST;
    int rc = getaddrinfo(a->host, port, &hints, &res);
    if (rc != 0) {
        hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
        rc = getaddrinfo(a->host, port, &hints, &res);
    }
    if (rc != 0 || !res)
        return -1;
    a->n_addrs = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        upstream_addr_add(a, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    if (a->n_addrs == 0)
        return -1;
    a->resolved = 1;
    a->resolved_ms = clock_coarse_ms();
    return 0;
}
