/* ssrf: decides whether the control plane may connect to an address, so a
 * webhook URL cannot reach the operator's own network.
 *
 * ssrf_policy_new() parses the operator's allow-list and returns a policy the
 * caller frees with ssrf_policy_free(); it is read-only afterwards and may be
 * shared between threads. Verdicts and curl contexts are caller-owned values.
 * Checking happens at connect time (ssrf_curl_opensocket), on the address curl
 * actually dials, so DNS names resolving to private space and DNS rebinding
 * are both caught; checking a URL's host string up front is not enough. */
#ifndef HEE_SSRF_H
#define HEE_SSRF_H

#include <curl/curl.h>
#include <stddef.h>
#include <sys/socket.h>

/* Why an address is refused. SSRF_PUBLIC is the only class allowed without an
 * allow-list entry. */
typedef enum ssrf_class {
    SSRF_PUBLIC = 0,
    SSRF_UNSPECIFIED,     /* 0.0.0.0, :: */
    SSRF_THIS_NETWORK,    /* 0.0.0.0/8 */
    SSRF_LOOPBACK,        /* 127.0.0.0/8, ::1 */
    SSRF_PRIVATE,         /* RFC 1918, fc00::/7 ULA, fec0::/10, 64:ff9b:1::/48 */
    SSRF_CGNAT,           /* 100.64.0.0/10 */
    SSRF_LINK_LOCAL,      /* 169.254.0.0/16, fe80::/10 */
    SSRF_DOCUMENTATION,   /* 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20 */
    SSRF_BENCHMARKING,    /* 198.18.0.0/15, 2001:2::/48 */
    SSRF_MULTICAST,       /* 224.0.0.0/4, ff00::/8 */
    SSRF_BROADCAST,       /* 255.255.255.255 */
    SSRF_RESERVED,        /* 240/4, 192.0.0/24, 192.88.99/24, non-2000::/3 v6, … */
    SSRF_TEREDO,          /* 2001::/32: tunnels to an arbitrary v4 host */
    SSRF_BAD_FAMILY,      /* neither AF_INET nor AF_INET6, or short sockaddr */
} ssrf_class_t;

/* How a v4 address was reached through a v6 one, if it was. */
typedef enum ssrf_via {
    SSRF_VIA_NONE = 0,
    SSRF_VIA_MAPPED,      /* ::ffff:a.b.c.d */
    SSRF_VIA_COMPAT,      /* ::a.b.c.d (deprecated, always refused) */
    SSRF_VIA_NAT64,       /* 64:ff9b::a.b.c.d */
    SSRF_VIA_6TO4,        /* 2002:aabb:ccdd::/48 */
} ssrf_via_t;

typedef struct ssrf_verdict {
    int allowed;          /* 1: may connect */
    int allowlisted;      /* 1: allowed only because of the allow-list */
    ssrf_class_t cls;     /* class of the address (embedded v4 when via != NONE) */
    ssrf_via_t via;
} ssrf_verdict_t;

typedef struct ssrf_policy ssrf_policy_t;

/* allow: comma- and/or space-separated CIDRs or bare addresses, v4 or v6
 * ("127.0.0.0/8, 10.1.0.0/16 fd00::/8"); NULL or "" means no allow-list.
 * Host bits beyond the prefix are ignored. On error returns NULL and writes a
 * message naming the bad entry into err (errlen bytes). */
ssrf_policy_t *ssrf_policy_new(const char *allow, char *err, size_t errlen);
void ssrf_policy_free(ssrf_policy_t *p);

/* Classifies sa (len bytes). policy may be NULL (no allow-list). v4 allow-list
 * entries also match the v4 address inside ::ffff:a.b.c.d, since connecting
 * there is connecting to a.b.c.d; NAT64/6to4 embeddings only match v6 entries. */
void ssrf_check(const ssrf_policy_t *policy, const struct sockaddr *sa, socklen_t len,
                ssrf_verdict_t *v);

const char *ssrf_class_name(ssrf_class_t c);   /* "loopback", "public", … */
const char *ssrf_via_name(ssrf_via_t v);       /* "ipv4-mapped", "" for NONE */

/* "loopback", or "loopback via ipv4-mapped"; returns buf. */
const char *ssrf_describe(const ssrf_verdict_t *v, char *buf, size_t len);

/* Context for ssrf_curl_opensocket (CURLOPT_OPENSOCKETDATA). Caller-owned,
 * one per transfer; policy is borrowed and must outlive the transfer.
 * After the transfer: refused counts refused addresses; reason describes the
 * last one ("refused 127.0.0.1 port 8080: loopback"). A transfer can still
 * succeed after a refusal when curl had another, allowed address to try, so
 * show reason when the transfer failed with CURLE_COULDNT_CONNECT. */
typedef struct ssrf_curl_ctx {
    const ssrf_policy_t *policy;
    unsigned refused;
    char reason[160];
} ssrf_curl_ctx_t;

/* CURLOPT_OPENSOCKETFUNCTION: opens the socket only when the address is allowed;
 * otherwise returns CURL_SOCKET_BAD (curl fails with CURLE_COULDNT_CONNECT, or
 * tries its next address). Non-IP families and accept sockets are refused. */
curl_socket_t ssrf_curl_opensocket(void *clientp, curlsocktype purpose,
                                   struct curl_sockaddr *address);

/* Installs the callback with ctx on easy, and turns proxies off (CURLOPT_PROXY
 * ""): a proxy would dial the target itself, out of our sight, and libcurl
 * otherwise honours http_proxy from the environment. 0 or -1. */
int ssrf_curl_attach(CURL *easy, ssrf_curl_ctx_t *ctx);

#endif
