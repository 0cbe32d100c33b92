#include "control/ssrf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

/* One allow-list entry; v4 entries use the first 4 bytes of addr. */
struct ssrf_net {
    int family;
    unsigned char addr[16];
    unsigned prefix;
};

struct ssrf_policy {
    size_t n;
    struct ssrf_net nets[];
};

/* Special-purpose ranges (IANA registries), most specific first. */
struct range4 {
    uint32_t net;
    unsigned prefix;
    ssrf_class_t cls;
};

static const struct range4 ranges4[] = {
    { 0x00000000, 32, SSRF_UNSPECIFIED },
    { 0x00000000, 8, SSRF_THIS_NETWORK },
    { 0x0a000000, 8, SSRF_PRIVATE },
    { 0x64400000, 10, SSRF_CGNAT },
    { 0x7f000000, 8, SSRF_LOOPBACK },
    { 0xa9fe0000, 16, SSRF_LINK_LOCAL },
    { 0xac100000, 12, SSRF_PRIVATE },
    { 0xc0000200, 24, SSRF_DOCUMENTATION },   /* 192.0.2.0/24 */
    { 0xc0000000, 24, SSRF_RESERVED },        /* 192.0.0.0/24 IETF protocol assignments */
    { 0xc0586300, 24, SSRF_RESERVED },        /* 192.88.99.0/24 old 6to4 relay anycast */
    { 0xc0a80000, 16, SSRF_PRIVATE },
    { 0xc6120000, 15, SSRF_BENCHMARKING },    /* 198.18.0.0/15 */
    { 0xc6336400, 24, SSRF_DOCUMENTATION },   /* 198.51.100.0/24 */
    { 0xcb007100, 24, SSRF_DOCUMENTATION },   /* 203.0.113.0/24 */
    { 0xe0000000, 4, SSRF_MULTICAST },
    { 0xffffffff, 32, SSRF_BROADCAST },
    { 0xf0000000, 4, SSRF_RESERVED },
};

struct range6 {
    unsigned char net[16];
    unsigned prefix;
    ssrf_class_t cls;
};

static const struct range6 ranges6[] = {
    { { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48, SSRF_PRIVATE },   /* local-use NAT64 */
    { { 0x20, 0x01, 0x00, 0x00 }, 32, SSRF_TEREDO },
    { { 0x20, 0x01, 0x00, 0x02, 0x00, 0x00 }, 48, SSRF_BENCHMARKING },
    { { 0x20, 0x01, 0x00, 0x00 }, 23, SSRF_RESERVED },              /* IETF protocol assignments */
    { { 0x20, 0x01, 0x0d, 0xb8 }, 32, SSRF_DOCUMENTATION },
    { { 0x3f, 0xff }, 20, SSRF_DOCUMENTATION },                     /* RFC 9637 */
    { { 0xfc }, 7, SSRF_PRIVATE },                                  /* ULA */
    { { 0xfe, 0x80 }, 10, SSRF_LINK_LOCAL },
    { { 0xfe, 0xc0 }, 10, SSRF_PRIVATE },                           /* old site-local */
    { { 0xff }, 8, SSRF_MULTICAST },
};

static const unsigned char nat64_prefix[12] = { 0x00, 0x64, 0xff, 0x9b };
static const unsigned char mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
static const unsigned char zero16[16];

static int prefix_match(const unsigned char *a, const unsigned char *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static ssrf_class_t classify4(uint32_t a)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(ranges4); i++) {
        const struct range4 *r = &ranges4[i];
        uint32_t mask = r->prefix ? 0xffffffffu << (32 - r->prefix) : 0;
        if ((a & mask) == r->net)
            return r->cls;
    }
    return SSRF_PUBLIC;
}

static uint32_t load4(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void classify6(const unsigned char a[16], ssrf_verdict_t *v)
{
    v->via = SSRF_VIA_NONE;
    if (memcmp(a, zero16, 16) == 0) {
        v->cls = SSRF_UNSPECIFIED;
        return;
    }
    if (memcmp(a, zero16, 15) == 0 && a[15] == 1) {
        v->cls = SSRF_LOOPBACK;
        return;
    }
    /* Forms that carry a v4 address take that address's class. */
    if (memcmp(a, mapped_prefix, 12) == 0 || memcmp(a, nat64_prefix, 12) == 0) {
        v->via = a[0] == 0 && a[10] == 0xff ? SSRF_VIA_MAPPED : SSRF_VIA_NAT64;
        v->cls = classify4(load4(a + 12));
        return;
    }
    if (memcmp(a, zero16, 12) == 0) {
        /* ::a.b.c.d is deprecated and routes nowhere useful: never public. */
        v->via = SSRF_VIA_COMPAT;
        v->cls = classify4(load4(a + 12));
        if (v->cls == SSRF_PUBLIC)
            v->cls = SSRF_RESERVED;
        return;
    }
    if (a[0] == 0x20 && a[1] == 0x02) {
        v->via = SSRF_VIA_6TO4;
        v->cls = classify4(load4(a + 2));
        return;
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(ranges6); i++) {
        if (prefix_match(a, ranges6[i].net, ranges6[i].prefix)) {
            v->cls = ranges6[i].cls;
            return;
        }
    }
    /* Only 2000::/3 is allocated global unicast; the rest is not for us. */
    v->cls = (a[0] & 0xe0) == 0x20 ? SSRF_PUBLIC : SSRF_RESERVED;
}

static int allowlisted(const ssrf_policy_t *p, int family, const unsigned char *a)
{
    for (size_t i = 0; p && i < p->n; i++)
        if (p->nets[i].family == family && prefix_match(a, p->nets[i].addr, p->nets[i].prefix))
            return 1;
    return 0;
}

void ssrf_check(const ssrf_policy_t *policy, const struct sockaddr *sa, socklen_t len,
                ssrf_verdict_t *v)
{
    memset(v, 0, sizeof(*v));
    v->cls = SSRF_BAD_FAMILY;
    if (!sa)
        return;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        const unsigned char *a = (const unsigned char *)&s4->sin_addr;
        v->cls = classify4(load4(a));
        v->allowlisted = v->cls != SSRF_PUBLIC && allowlisted(policy, AF_INET, a);
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        const unsigned char *a = s6->sin6_addr.s6_addr;
        classify6(a, v);
        v->allowlisted = v->cls != SSRF_PUBLIC &&
                         (allowlisted(policy, AF_INET6, a) ||
                          (v->via == SSRF_VIA_MAPPED && allowlisted(policy, AF_INET, a + 12)));
    } else {
        return;
    }
    v->allowed = v->cls == SSRF_PUBLIC || v->allowlisted;
}

const char *ssrf_class_name(ssrf_class_t c)
{
    static const char *const names[] = {
        [SSRF_PUBLIC] = "public",
        [SSRF_UNSPECIFIED] = "unspecified",
        [SSRF_THIS_NETWORK] = "this-network",
        [SSRF_LOOPBACK] = "loopback",
        [SSRF_PRIVATE] = "private",
        [SSRF_CGNAT] = "cgnat",
        [SSRF_LINK_LOCAL] = "link-local",
        [SSRF_DOCUMENTATION] = "documentation",
        [SSRF_BENCHMARKING] = "benchmarking",
        [SSRF_MULTICAST] = "multicast",
        [SSRF_BROADCAST] = "broadcast",
        [SSRF_RESERVED] = "reserved",
        [SSRF_TEREDO] = "teredo",
        [SSRF_BAD_FAMILY] = "bad-family",
    };
    if ((size_t)c >= UTIL_ARRAY_LEN(names) || !names[c])
        return "unknown";
    return names[c];
}

const char *ssrf_via_name(ssrf_via_t v)
{
    static const char *const names[] = {
        [SSRF_VIA_NONE] = "",
        [SSRF_VIA_MAPPED] = "ipv4-mapped",
        [SSRF_VIA_COMPAT] = "ipv4-compatible",
        [SSRF_VIA_NAT64] = "nat64",
        [SSRF_VIA_6TO4] = "6to4",
    };
    if ((size_t)v >= UTIL_ARRAY_LEN(names) || !names[v])
        return "unknown";
    return names[v];
}

const char *ssrf_describe(const ssrf_verdict_t *v, char *buf, size_t len)
{
    if (v->via == SSRF_VIA_NONE)
        snprintf(buf, len, "%s", ssrf_class_name(v->cls));
    else
        snprintf(buf, len, "%s via %s", ssrf_class_name(v->cls), ssrf_via_name(v->via));
    return buf;
}

/* "a.b.c.d[/n]" or "x::y[/n]" into net; 0 or -1. */
static int parse_net(const char *tok, struct ssrf_net *net)
{
    char addr[INET6_ADDRSTRLEN];
    const char *slash = strchr(tok, '/');
    size_t alen = slash ? (size_t)(slash - tok) : strlen(tok);
    if (alen == 0 || alen >= sizeof(addr))
        return -1;
    memcpy(addr, tok, alen);
    addr[alen] = '\0';
    memset(net, 0, sizeof(*net));
    if (inet_pton(AF_INET, addr, net->addr) == 1)
        net->family = AF_INET;
    else if (inet_pton(AF_INET6, addr, net->addr) == 1)
        net->family = AF_INET6;
    else
        return -1;
    unsigned max = net->family == AF_INET ? 32 : 128;
    net->prefix = max;
    if (slash) {
        const char *p = slash + 1;
        unsigned v = 0;
        if (!*p || strlen(p) > 3)
            return -1;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            v = v * 10 + (unsigned)(*p - '0');
        }
        if (v > max)
            return -1;
        net->prefix = v;
    }
    return 0;
}

#define ALLOW_SEPS ", \t\r\n"

ssrf_policy_t *ssrf_policy_new(const char *allow, char *err, size_t errlen)
{
    size_t count = 0;
    for (const char *p = allow ? allow : ""; *p;) {
        p += strspn(p, ALLOW_SEPS);
        size_t n = strcspn(p, ALLOW_SEPS);
        count += n > 0;
        p += n;
    }
    ssrf_policy_t *pol = calloc(1, sizeof(*pol) + count * sizeof(pol->nets[0]));
    if (!pol) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (const char *p = allow ? allow : ""; *p;) {
        p += strspn(p, ALLOW_SEPS);
        size_t n = strcspn(p, ALLOW_SEPS);
        if (n == 0)
            break;
        char tok[INET6_ADDRSTRLEN + 8];
        if (n >= sizeof(tok)) {
            snprintf(err, errlen, "allow-list entry too long: %.20s…", p);
            goto fail;
        }
        memcpy(tok, p, n);
        tok[n] = '\0';
        if (parse_net(tok, &pol->nets[pol->n]) != 0) {
            snprintf(err, errlen, "bad allow-list entry \"%s\" (want CIDR like 10.0.0.0/8 or fd00::/8)",
                     tok);
            goto fail;
        }
        pol->n++;
        p += n;
    }
    return pol;
fail:
    free(pol);
    return NULL;
}

void ssrf_policy_free(ssrf_policy_t *p)
{
    free(p);
}

/* Numeric address and port of sa for messages. */
static void addr_text(const struct sockaddr *sa, char *buf, size_t len, unsigned *port)
{
    const void *src = NULL;
    *port = 0;
    if (sa->sa_family == AF_INET) {
        src = &((const struct sockaddr_in *)sa)->sin_addr;
        *port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        src = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        *port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    }
    if (!src || !inet_ntop(sa->sa_family, src, buf, (socklen_t)len))
        snprintf(buf, len, "family-%d", (int)sa->sa_family);
}

curl_socket_t ssrf_curl_opensocket(void *clientp, curlsocktype purpose,
                                   struct curl_sockaddr *address)
{
    ssrf_curl_ctx_t *ctx = clientp;
    ssrf_verdict_t v;
    ssrf_check(ctx ? ctx->policy : NULL, &address->addr, (socklen_t)address->addrlen, &v);
    if (purpose == CURLSOCKTYPE_IPCXN && v.allowed) {
        curl_socket_t fd = socket(address->family, address->socktype | SOCK_CLOEXEC,
                                  address->protocol);
        return fd < 0 ? CURL_SOCKET_BAD : fd;
    }
    char host[INET6_ADDRSTRLEN + 16], why[64];
    unsigned port;
    addr_text(&address->addr, host, sizeof(host), &port);
    if (purpose != CURLSOCKTYPE_IPCXN)
        snprintf(why, sizeof(why), "not an outgoing connection");
    else
        ssrf_describe(&v, why, sizeof(why));
    if (ctx) {
        ctx->refused++;
        snprintf(ctx->reason, sizeof(ctx->reason), "refused %s port %u: %s", host, port, why);
    }
    char q[80];
    log_warn("ssrf.refused", "addr=%s port=%u reason=%s", host, port, log_quote(q, sizeof(q), why));
    return CURL_SOCKET_BAD;
}

int ssrf_curl_attach(CURL *easy, ssrf_curl_ctx_t *ctx)
{
    if (curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, ssrf_curl_opensocket) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, ctx) != CURLE_OK ||
        curl_easy_setopt(easy, CURLOPT_PROXY, "") != CURLE_OK)
        return -1;
    return 0;
}
