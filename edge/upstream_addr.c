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
    memcpy(&a->addr, res->ai_addr, res->ai_addrlen);
    a->addrlen = res->ai_addrlen;
    a->resolved = 1;
    a->resolved_ms = clock_coarse_ms();
    freeaddrinfo(res);
    return 0;
}
