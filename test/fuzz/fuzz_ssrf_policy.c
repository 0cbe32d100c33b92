/* fuzz_ssrf_policy: ssrf_policy_new() on arbitrary allow-list text, then
 * ssrf_check() of addresses taken from the input against that policy.
 *
 * Input: allow-list text, a NUL byte, then 16-byte address records (the
 * first byte's low bit picks v4 / v6). Invariants checked: a verdict is
 * allowed exactly when public or allow-listed; public addresses are never
 * marked allow-listed; a NULL policy allow-lists nothing. */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "control/ssrf.h"

static void check(const ssrf_policy_t *p, const uint8_t *rec)
{
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    if (rec[0] & 1) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, rec, 16);
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, rec + 1, 4);
        len = sizeof(*s4);
    }
    ssrf_verdict_t v, none;
    char buf[64];
    ssrf_check(p, (struct sockaddr *)&ss, len, &v);
    ssrf_check(NULL, (struct sockaddr *)&ss, len, &none);
    if (v.allowed != (v.cls == SSRF_PUBLIC || v.allowlisted))
        abort();
    if (v.cls == SSRF_PUBLIC && v.allowlisted)
        abort();
    if (none.allowlisted || none.cls != v.cls || none.via != v.via)
        abort();
    ssrf_describe(&v, buf, sizeof(buf));
    if (!memchr(buf, '\0', sizeof(buf)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *text = malloc(tlen + 1);
    char err[256];
    if (!text)
        return 0;
    memcpy(text, data, tlen);
    text[tlen] = '\0';
    ssrf_policy_t *p = ssrf_policy_new(text, err, sizeof(err));
    if (!p && !memchr(err, '\0', sizeof(err)))
        abort();
    if (p && nul) {
        const uint8_t *rec = nul + 1, *end = data + size;
        for (int i = 0; i < 64 && end - rec >= 16; i++, rec += 16)
            check(p, rec);
    }
    ssrf_policy_free(p);
    free(text);
    return 0;
}
