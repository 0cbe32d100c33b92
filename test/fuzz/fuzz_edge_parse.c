/* Fuzzes the edge's small parsers of operator- and store-supplied text:
 * upstream URLs (upstream_addr_parse), trusted-proxy CIDR lists
 * (cidr_list_parse + cidr_match) and TLS record headers
 * (tlsrec_record_len), plus strmap with input-derived keys. Input: the
 * bytes up to the first NUL are a URL, the rest a CIDR list / keys. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/cidr.h"
#include "edge/strmap.h"
#include "edge/tlsrec.h"
#include "edge/upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t ulen = strlen(s);
    const char *rest = ulen < size ? s + ulen + 1 : "";

    upstream_addr_t a;
    const char *why = NULL;
    if (upstream_addr_parse(s, &a, &why) == 0) {
        if (strlen(a.key) >= sizeof(a.key) || a.port == 0 || !a.host[0])
            abort();
    } else if (!why) {
        abort();
    }

    edge_cidr_t *l = NULL;
    int n = 0, bad = 0;
    if (cidr_list_parse(rest, &l, &n, &bad) == 0) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        ss.ss_family = AF_INET6;
        memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, data, size < 16 ? size : 16);
        (void)cidr_match(l, n, &ss);
        ss.ss_family = AF_INET;
        (void)cidr_match(l, n, &ss);
        free(l);
    }

    long rl = tlsrec_record_len(data, size);
    if (rl > 0 && (rl < TLSREC_HEADER + 17 || rl > TLSREC_MAX_RECORD))
        abort();

    strmap_t *m = strmap_new();
    if (m) {
        int err = 0;
        for (size_t i = 0; i + 1 < size; i += 2) {
            size_t k = data[i] % 16;
            if (i + 1 + k > size)
                break;
            if (data[i + 1] & 1)
                strmap_del(m, (const char *)data + i + 1, k);
            else
                strmap_put(m, (const char *)data + i + 1, k, (void *)(uintptr_t)(i + 1), &err);
        }
        strmap_free(m, NULL);
    }
    free(s);
    return 0;
}
