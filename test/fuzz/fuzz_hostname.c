/* Fuzzes common/hostname.c with arbitrary bytes: no crash, and every
 * accepted name is canonical (re-normalising gives the same bytes), short
 * enough, and made of lowercase LDH labels. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hostname.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char in[1100], out[HOSTNAME_MAX], again[HOSTNAME_MAX], reg[HOSTNAME_MAX];
    const char *why = NULL;
    if (size >= sizeof(in))
        size = sizeof(in) - 1;
    memcpy(in, data, size);
    in[size] = '\0';
    if (hostname_check_registrable(in, "edge.hee.la", out, sizeof(out), &why) != 0) {
        if (!why)
            abort();
        return 0;
    }
    size_t n = strlen(out);
    if (n == 0 || n > 253 || out[n - 1] == '.')
        abort();
    for (size_t i = 0; i < n; i++) {
        char ch = out[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.'))
            abort();
    }
    if (hostname_normalize(out, again, sizeof(again), &why) != 0 || strcmp(out, again) != 0)
        abort();
    (void)hostname_registered_domain(out, reg, sizeof(reg));
    return 0;
}
