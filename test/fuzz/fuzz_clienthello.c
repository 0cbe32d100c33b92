/* Fuzzes ch_parse over raw first bytes of a connection and checks the
 * invariants the edge relies on: results are in range, an OK hello fits in
 * the input and its SNI is a clean NUL-terminated name, NEED_MORE asks for
 * more than was given, and the verdict does not change when the same
 * handshake message is cut into records differently. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "edge/clienthello.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

static void check_sni(const ch_info_t *info)
{
    CHECK(info->sni_len <= CH_SNI_MAX);
    CHECK(info->sni[info->sni_len] == '\0');
    CHECK(strlen(info->sni) == info->sni_len);
    if (info->sni_status == CH_SNI_OK) {
        CHECK(info->sni_len > 0);
        for (size_t i = 0; i < info->sni_len; i++) {
            char c = info->sni[i];
            CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.');
        }
    } else if (info->sni_status != CH_SNI_IP) {
        CHECK(info->sni_len == 0);
    }
}

static int same_info(const ch_info_t *a, const ch_info_t *b)
{
    return a->sni_status == b->sni_status && strcmp(a->sni, b->sni) == 0 &&
           a->tls12 == b->tls12 && a->tls13 == b->tls13 && a->alpn_count == b->alpn_count &&
           a->alpn_h2 == b->alpn_h2 && a->alpn_http11 == b->alpn_http11 &&
           a->alpn_acme == b->alpn_acme && a->legacy_version == b->legacy_version;
}

/* Re-cuts a single-record hello into two records at a point chosen by the
 * input's last byte; the result must be the same hello. */
static void check_refragment(const uint8_t *data, const ch_info_t *info, uint8_t seed)
{
    size_t hs = info->hello_len - 5;
    if (info->nrecords != 1 || hs < 2)
        return;
    size_t cut = 1 + seed % (hs - 1);
    uint8_t *b = malloc(info->hello_len + 5);
    CHECK(b != NULL);
    memcpy(b, data, 3);
    b[3] = (uint8_t)(cut >> 8);
    b[4] = (uint8_t)cut;
    memcpy(b + 5, data + 5, cut);
    memcpy(b + 5 + cut, data, 3);
    b[5 + cut + 3] = (uint8_t)((hs - cut) >> 8);
    b[5 + cut + 4] = (uint8_t)(hs - cut);
    memcpy(b + 10 + cut, data + 5 + cut, hs - cut);
    ch_info_t again;
    CHECK(ch_parse(b, info->hello_len + 5, &again) == CH_OK);
    CHECK(same_info(info, &again));
    CHECK(again.nrecords == 2);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ch_info_t info;
    ch_result_t r = ch_parse(data, size, &info);
    switch (r) {
    case CH_OK:
        CHECK(info.hello_len >= 5 + 4 + 41 && info.hello_len <= size);
        CHECK(info.hello_len <= CH_MAX_WIRE_LEN);
        CHECK(info.nrecords >= 1 && info.nrecords <= CH_MAX_RECORDS);
        check_sni(&info);
        {
            ch_info_t prefix;
            CHECK(ch_parse(data, info.hello_len, &prefix) == CH_OK);
            CHECK(same_info(&info, &prefix));
        }
        check_refragment(data, &info, size ? data[size - 1] : 0);
        break;
    case CH_NEED_MORE:
        CHECK(info.need > size);
        CHECK(info.need <= CH_MAX_WIRE_LEN);
        break;
    case CH_NOT_TLS:
        CHECK(size > 0);
        break;
    case CH_MALFORMED:
        break;
    default:
        abort();
    }
    return 0;
}
