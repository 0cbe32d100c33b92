#include "edge/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int cidr_parse(const char *s, size_t n, edge_cidr_t *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        return -1;
    }
    if (slash) {
        char *e = NULL;
        long b = strtol(slash + 1, &e, 10);
        if (e == slash + 1 || *e || b < 0 || b > out->bits)
            return -1;
        out->bits = (int)b;
    }
    return 0;
}

int cidr_list_parse(const char *list, edge_cidr_t **out, int *n, int *bad)
{
    edge_cidr_t *arr = NULL;
    size_t cap = 0;
    *out = NULL;
    *n = *bad = 0;
    for (const char *p = list; p && *p;) {
        p += strspn(p, " ,\t");
        size_t len = strcspn(p, " ,\t");
        if (len == 0)
            break;
        if ((size_t)*n == cap) {
            cap = cap ? cap * 2 : 4;
            edge_cidr_t *t = realloc(arr, cap * sizeof(*t));
            if (!t) {
                free(arr);
                return -1;
            }
            arr = t;
        }
        if (cidr_parse(p, len, &arr[*n]) == 0)
            (*n)++;
        else
            (*bad)++;
        p += len;
    }
    *out = arr;
    return 0;
}

int cidr_match(const edge_cidr_t *list, int n, const struct sockaddr_storage *ss)
{
    static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    const uint8_t *a;
    int fam = ss->ss_family;
    if (fam == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
    } else if (fam == AF_INET6) {
        a = (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (memcmp(a, v4mapped, 12) == 0) {
            a += 12;
            fam = AF_INET;
        }
    } else {
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const edge_cidr_t *t = &list[i];
        if (t->family != fam)
            continue;
        int full = t->bits / 8, rem = t->bits % 8;
        if (memcmp(a, t->addr, (size_t)full) != 0)
            continue;
        if (rem && ((a[full] ^ t->addr[full]) & (0xff << (8 - rem)) & 0xff))
            continue;
        return 1;
    }
    return 0;
}
