#include "common/hostname.h"

#include <idn2.h>
#include <libpsl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HOST_MAXLEN 253
#define LABEL_MAXLEN 63

static int is_ldh(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
}

/* Checks a lowercase ASCII name label by label. */
static int check_labels(const char *h, const char **reason)
{
    size_t n = strlen(h);
    if (n == 0)
        return *reason = "hostname is empty", -1;
    if (n > HOST_MAXLEN)
        return *reason = "hostname is longer than 253 bytes", -1;
    int labels = 0, numeric_last = 0;
    const char *p = h;
    for (;;) {
        size_t len = strcspn(p, ".");
        if (len == 0)
            return *reason = "hostname has an empty label", -1;
        if (len > LABEL_MAXLEN)
            return *reason = "a label is longer than 63 bytes", -1;
        if (p[0] == '-' || p[len - 1] == '-')
            return *reason = "a label starts or ends with a hyphen", -1;
        numeric_last = 1;
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)p[i];
            if (ch == '*')
                return *reason = "wildcards are not accepted", -1;
            if (ch == '_')
                return *reason = "underscores are not accepted in hostnames", -1;
            if (!is_ldh(ch))
                return *reason = "hostname contains a character other than letters, digits, '-' and '.'", -1;
            if (ch < '0' || ch > '9')
                numeric_last = 0;
        }
        labels++;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    if (numeric_last)
        return *reason = "IP addresses are not accepted; use a hostname", -1;
    if (labels < 2)
        return *reason = "single-label names are not accepted; use a fully qualified name", -1;
    return 0;
}

static int needs_idn(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p >= 0x80)
            return 1;
    /* A-labels must be valid punycode: let libidn2 check them too. */
    for (const char *p = s; (p = strstr(p, "xn--")) != NULL; p += 4)
        if (p == s || p[-1] == '.')
            return 1;
    return 0;
}

int hostname_normalize(const char *in, char *out, size_t outlen, const char **reason)
{
    char buf[1024];
    size_t n = in ? strlen(in) : 0;
    if (n == 0)
        return *reason = "hostname is empty", -1;
    if (n >= sizeof(buf))
        return *reason = "hostname is longer than 253 bytes", -1;
    if (strchr(in, ':') || in[0] == '[')
        return *reason = "IP addresses are not accepted; use a hostname", -1;
    memcpy(buf, in, n + 1);
    if (buf[n - 1] == '.')
        buf[--n] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch >= 'A' && ch <= 'Z')
            buf[i] = (char)(ch - 'A' + 'a');
        else if (ch == '*')
            return *reason = "wildcards are not accepted", -1;
        else if (ch < 0x21 || ch == 0x7f)
            return *reason = "hostname contains whitespace or control characters", -1;
    }
    const char *name = buf;
    char *ascii = NULL;
    if (needs_idn(buf)) {
        int rc = idn2_to_ascii_8z(buf, &ascii, IDN2_NONTRANSITIONAL);
        if (rc != IDN2_OK)
            return *reason = "hostname is not a valid internationalised domain name", -1;
        name = ascii;
    }
    int rc = check_labels(name, reason);
    if (rc == 0 && strlen(name) >= outlen) {
        *reason = "hostname does not fit";
        rc = -1;
    }
    if (rc == 0)
        memcpy(out, name, strlen(name) + 1);
    idn2_free(ascii);
    return rc;
}

static const psl_ctx_t *psl(void)
{
    /* The list compiled into libpsl; owned by libpsl, never freed. */
    return psl_builtin();
}

/* 1 when host (length hl) is name or a subdomain of it (ASCII, any case). */
static int under_name(const char *host, size_t hl, const char *name, size_t nl)
{
    if (hl < nl || strncasecmp(host + hl - nl, name, nl) != 0)
        return 0;
    return hl == nl || host[hl - nl - 1] == '.';
}

static int is_edge_name(const char *host, const char *edge_names)
{
    size_t hl = strlen(host);
    for (const char *p = edge_names; p && *p;) {
        p += strspn(p, " \t,");
        size_t len = strcspn(p, " \t,");
        if (len == 0)
            break;
        size_t nl = len;
        if (p[nl - 1] == '.')
            nl--;
        /* The name itself or anything under it belongs to the edge. */
        if (nl > 0 && under_name(host, hl, p, nl))
            return 1;
        p += len;
    }
    return 0;
}

int hostname_check_registrable(const char *in, const char *edge_names, char *out, size_t outlen,
                               const char **reason)
{
    if (hostname_normalize(in, out, outlen, reason) != 0)
        return -1;
    const psl_ctx_t *p = psl();
    if (p && psl_is_public_suffix2(p, out, PSL_TYPE_ANY | PSL_TYPE_NO_STAR_RULE))
        return *reason = "hostname is a public suffix", -1;
    if (is_edge_name(out, edge_names))
        return *reason = "hostname belongs to the edge itself", -1;
    return 0;
}

int hostname_registered_domain(const char *host, char *out, size_t outlen)
{
    const psl_ctx_t *p = psl();
    if (!p)
        return -1;
    const char *rd = psl_registrable_domain(p, host);
    if (!rd || strlen(rd) >= outlen)
        return -1;
    memcpy(out, rd, strlen(rd) + 1);
    return 0;
}
