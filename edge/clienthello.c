#include "edge/clienthello.h"

#include <string.h>

/* DESIGN: ch_parse works in two passes over the caller's bytes.
 * 1. gather() walks the TLS records, checks each header, and notes where
 *    every handshake fragment lies (no copy). It stops with NEED_MORE until
 *    the whole ClientHello is present, so the second pass never sees a
 *    truncated message and "short" always means "wait", never "broken".
 * 2. A reader (rd_t) presents those fragments as one contiguous stream, so
 *    a hello split across records parses exactly like one that is not. */

enum {
    REC_HANDSHAKE = 22,
    HS_CLIENT_HELLO = 1,
    REC_MAX_PLAIN = 16384,
    EXT_SERVER_NAME = 0,
    EXT_ALPN = 16,
    EXT_SUPPORTED_VERSIONS = 43,
    MAX_EXTENSIONS = 64,
    SNI_HOST_NAME = 0,
};

typedef struct {
    size_t off, len; /* into the caller's buffer */
} ch_frag_t;

typedef struct {
    const uint8_t *buf;
    const ch_frag_t *frags;
    unsigned fi;     /* fragment holding pos */
    size_t fstart;   /* stream offset where frags[fi] begins */
    size_t pos, end; /* stream offsets; end bounds this (sub)reader */
} rd_t;

/* Copies n stream bytes into dst (or skips them when dst is NULL). */
static int rd_copy(rd_t *r, uint8_t *dst, size_t n)
{
    if (n > r->end - r->pos)
        return -1;
    while (n > 0) {
        while (r->pos >= r->fstart + r->frags[r->fi].len) {
            r->fstart += r->frags[r->fi].len;
            r->fi++;
        }
        size_t in = r->pos - r->fstart;
        size_t take = r->frags[r->fi].len - in;
        if (take > n)
            take = n;
        if (dst) {
            memcpy(dst, r->buf + r->frags[r->fi].off + in, take);
            dst += take;
        }
        r->pos += take;
        n -= take;
    }
    return 0;
}

static int rd_skip(rd_t *r, size_t n)
{
    return rd_copy(r, NULL, n);
}

static int rd_uint(rd_t *r, size_t width, uint32_t *v)
{
    uint8_t b[3];
    if (rd_copy(r, b, width) != 0)
        return -1;
    *v = 0;
    for (size_t i = 0; i < width; i++)
        *v = *v << 8 | b[i];
    return 0;
}

/* Splits off the next len bytes as *sub and moves r past them. */
static int rd_sub(rd_t *r, size_t len, rd_t *sub)
{
    if (len > r->end - r->pos)
        return -1;
    *sub = *r;
    sub->end = r->pos + len;
    return rd_skip(r, len);
}

/* A vector with a width-byte length prefix that must fill r exactly. */
static int rd_whole_vector(rd_t *r, size_t width, size_t min, rd_t *sub)
{
    uint32_t n;
    if (rd_uint(r, width, &n) != 0 || n < min || n != r->end - r->pos)
        return -1;
    return rd_sub(r, n, sub);
}

static ch_not_tls_t classify_not_tls(const uint8_t *buf, size_t len)
{
    /* SSLv2 record: 2-byte length with the top bit set, then CLIENT-HELLO (1). */
    if ((buf[0] & 0x80) && (len < 3 || buf[2] == 1))
        return CH_NOT_TLS_SSLV2;
    size_t i = 0;
    while (i < len && i < 16 && buf[i] >= 'A' && buf[i] <= 'Z')
        i++;
    if (i > 0 && (i == len || (buf[i] == ' ' && i >= 3)))
        return CH_NOT_TLS_HTTP;
    return CH_NOT_TLS_OTHER;
}

typedef struct {
    ch_frag_t frags[CH_MAX_RECORDS];
    unsigned nfrags;
    size_t got;      /* handshake bytes seen so far */
    size_t hs_total; /* 4 + body length; 0 until the header is seen */
    size_t wire;     /* bytes of complete records */
} gather_t;

static rd_t gather_reader(const uint8_t *buf, const gather_t *g, size_t end)
{
    return (rd_t){ .buf = buf, .frags = g->frags, .end = end };
}

/* Reads the 4-byte handshake header once enough fragments arrived. */
static ch_result_t check_hs_header(const uint8_t *buf, gather_t *g)
{
    if (g->hs_total || g->got < 4)
        return CH_OK;
    rd_t r = gather_reader(buf, g, 4);
    uint32_t type, len;
    if (rd_uint(&r, 1, &type) != 0 || rd_uint(&r, 3, &len) != 0)
        return CH_MALFORMED;
    if (type != HS_CLIENT_HELLO || len > CH_MAX_HELLO_LEN)
        return CH_MALFORMED;
    g->hs_total = 4 + len;
    return CH_OK;
}

/* Bytes still missing once the record ending at rec_end is in. */
static size_t need_after(const gather_t *g, size_t rec_end, size_t got_then)
{
    size_t want = g->hs_total ? g->hs_total : 4;
    return got_then < want ? rec_end + 5 + (want - got_then) : rec_end;
}

static ch_result_t gather(const uint8_t *buf, size_t len, gather_t *g, ch_info_t *out)
{
    size_t pos = 0;
    for (;;) {
        size_t have = len - pos;
        if (have > 0 && buf[pos] != REC_HANDSHAKE) {
            if (pos > 0)
                return CH_MALFORMED;
            out->not_tls = classify_not_tls(buf, len);
            return CH_NOT_TLS;
        }
        if (have > 1 && buf[pos + 1] != 3) {
            if (pos > 0)
                return CH_MALFORMED;
            out->not_tls = CH_NOT_TLS_OTHER;
            return CH_NOT_TLS;
        }
        if (have < 5) {
            out->need = pos == 0 ? 5 : need_after(g, pos, g->got);
            return CH_NEED_MORE;
        }
        size_t rlen = (size_t)buf[pos + 3] << 8 | buf[pos + 4];
        /* Zero-length handshake fragments are forbidden (RFC 8446 5.1). */
        if (rlen == 0 || rlen > REC_MAX_PLAIN || g->nfrags == CH_MAX_RECORDS)
            return CH_MALFORMED;
        size_t avail = have - 5 < rlen ? have - 5 : rlen;
        g->frags[g->nfrags++] = (ch_frag_t){ pos + 5, avail };
        g->got += avail;
        if (check_hs_header(buf, g) != CH_OK)
            return CH_MALFORMED;
        /* A record may not run past the end of the ClientHello. */
        if (g->hs_total && g->got - avail + rlen > g->hs_total)
            return CH_MALFORMED;
        /* The last allowed record must complete the hello. */
        size_t want = g->hs_total ? g->hs_total : 4;
        if (g->nfrags == CH_MAX_RECORDS && g->got - avail + rlen < want)
            return CH_MALFORMED;
        if (avail < rlen) {
            out->need = need_after(g, pos + 5 + rlen, g->got - avail + rlen);
            return CH_NEED_MORE;
        }
        pos += 5 + rlen;
        g->wire = pos;
        if (g->hs_total && g->got == g->hs_total)
            return CH_OK;
    }
}

static int is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int is_ldh(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || is_digit(c) || c == '-';
}

/* 1 when the name is dot-separated runs of digits (an IPv4 literal,
 * including the short forms inet_aton accepts) or has a ':' (IPv6). */
static int looks_like_ip(const char *s, size_t n)
{
    if (memchr(s, ':', n))
        return 1;
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.' && run > 0)
            run = 0;
        else if (is_digit((uint8_t)s[i]))
            run++;
        else
            return 0;
    }
    return run > 0;
}

static int ip_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (!is_digit(c) && !(c >= 'a' && c <= 'f') && c != ':' && c != '.')
            return 0;
    }
    return 1;
}

/* Strict LDH: labels 1–63 of [a-z0-9-], no hyphen at either end, and a
 * last label that is not all digits (that would be an address, not a name). */
static int ldh_ok(const char *s, size_t n)
{
    size_t start = 0;
    int all_digits = 1;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t llen = i - start;
            if (llen == 0 || llen > 63 || s[start] == '-' || s[i - 1] == '-')
                return 0;
            start = i + 1;
            if (i < n)
                all_digits = 1;
            continue;
        }
        if (!is_ldh((uint8_t)s[i]))
            return 0;
        if (!is_digit((uint8_t)s[i]))
            all_digits = 0;
    }
    return !all_digits;
}

static void classify_sni(rd_t *name, size_t n, ch_info_t *out)
{
    char tmp[CH_SNI_MAX + 1];
    if (n > CH_SNI_MAX + 1) {
        out->sni_status = CH_SNI_TOO_LONG;
        return;
    }
    if (rd_copy(name, (uint8_t *)tmp, n) != 0) {
        out->sni_status = CH_SNI_INVALID;
        return;
    }
    if (tmp[n - 1] == '.')
        n--;
    if (n > CH_SNI_MAX) {
        out->sni_status = CH_SNI_TOO_LONG;
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (tmp[i] >= 'A' && tmp[i] <= 'Z')
            tmp[i] = (char)(tmp[i] - 'A' + 'a');
    if (n > 0 && looks_like_ip(tmp, n)) {
        out->sni_status = CH_SNI_IP;
        if (!ip_chars_ok(tmp, n))
            return;
    } else if (n == 0 || !ldh_ok(tmp, n)) {
        out->sni_status = CH_SNI_INVALID;
        return;
    } else {
        out->sni_status = CH_SNI_OK;
    }
    memcpy(out->sni, tmp, n);
    out->sni[n] = '\0';
    out->sni_len = n;
}

/* RFC 6066 3: exactly one entry, of type host_name, 1..2^16-1 bytes.
 * OpenSSL refuses any other shape, so accepting more would only delay
 * the failure past a certificate lookup. */
static int parse_sni(rd_t *ext, ch_info_t *out)
{
    rd_t list, name;
    uint32_t type, n;
    if (rd_whole_vector(ext, 2, 1, &list) != 0)
        return -1;
    if (rd_uint(&list, 1, &type) != 0 || type != SNI_HOST_NAME)
        return -1;
    if (rd_uint(&list, 2, &n) != 0 || n == 0 || rd_sub(&list, n, &name) != 0)
        return -1;
    if (list.pos != list.end)
        return -1;
    classify_sni(&name, n, out);
    return 0;
}

static int parse_alpn(rd_t *ext, ch_info_t *out)
{
    static const struct {
        const char *name;
        size_t len;
    } known[] = { { "http/1.1", 8 }, { "h2", 2 }, { "acme-tls/1", 10 } };
    rd_t list;
    if (rd_whole_vector(ext, 2, 2, &list) != 0)
        return -1;
    out->has_alpn = 1;
    while (list.pos < list.end) {
        uint32_t n;
        uint8_t name[16];
        if (rd_uint(&list, 1, &n) != 0 || n == 0)
            return -1;
        if (n > sizeof(name)) {
            if (rd_skip(&list, n) != 0)
                return -1;
        } else if (rd_copy(&list, name, n) != 0) {
            return -1;
        }
        out->alpn_count++;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            if (n != known[i].len || memcmp(name, known[i].name, n) != 0)
                continue;
            if (i == 0)
                out->alpn_http11 = 1;
            else if (i == 1)
                out->alpn_h2 = 1;
            else
                out->alpn_acme = 1;
        }
    }
    return 0;
}

static int parse_versions(rd_t *ext, ch_info_t *out)
{
    rd_t list;
    if (rd_whole_vector(ext, 1, 2, &list) != 0 || (list.end - list.pos) % 2 != 0)
        return -1;
    while (list.pos < list.end) {
        uint32_t v;
        if (rd_uint(&list, 2, &v) != 0)
            return -1;
        if (v == 0x0304)
            out->tls13 = 1;
        else if (v == 0x0303)
            out->tls12 = 1;
    }
    return 0;
}

static int parse_extensions(rd_t *exts, ch_info_t *out, int *has_versions)
{
    uint16_t seen[MAX_EXTENSIONS];
    unsigned nseen = 0;
    while (exts->pos < exts->end) {
        uint32_t type, n;
        rd_t ext;
        if (rd_uint(exts, 2, &type) != 0 || rd_uint(exts, 2, &n) != 0 ||
            rd_sub(exts, n, &ext) != 0 || nseen == MAX_EXTENSIONS)
            return -1;
        for (unsigned i = 0; i < nseen; i++)
            if (seen[i] == type)
                return -1;
        seen[nseen++] = (uint16_t)type;
        int rc = 0;
        if (type == EXT_SERVER_NAME)
            rc = parse_sni(&ext, out);
        else if (type == EXT_ALPN)
            rc = parse_alpn(&ext, out);
        else if (type == EXT_SUPPORTED_VERSIONS) {
            rc = parse_versions(&ext, out);
            *has_versions = 1;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* RFC 8446 4.1.2 (and 5246 7.4.1.2 for the optional extensions block). */
static int parse_hello(rd_t *r, ch_info_t *out)
{
    uint32_t v, n;
    rd_t exts;
    int has_versions = 0;
    if (rd_skip(r, 4) != 0 || rd_uint(r, 2, &v) != 0 || rd_skip(r, 32) != 0)
        return -1;
    out->legacy_version = (uint16_t)v;
    if (rd_uint(r, 1, &n) != 0 || n > 32 || rd_skip(r, n) != 0)
        return -1;
    if (rd_uint(r, 2, &n) != 0 || n < 2 || n % 2 != 0 || rd_skip(r, n) != 0)
        return -1;
    if (rd_uint(r, 1, &n) != 0 || n < 1 || rd_skip(r, n) != 0)
        return -1;
    if (r->pos < r->end) {
        if (rd_whole_vector(r, 2, 0, &exts) != 0 ||
            parse_extensions(&exts, out, &has_versions) != 0)
            return -1;
    }
    if (!has_versions)
        out->tls12 = out->legacy_version >= 0x0303;
    return 0;
}

ch_result_t ch_parse(const uint8_t *buf, size_t len, ch_info_t *out)
{
    gather_t g = { 0 };
    memset(out, 0, sizeof(*out));
    if (len == 0) {
        out->need = 5;
        return CH_NEED_MORE;
    }
    ch_result_t rc = gather(buf, len, &g, out);
    if (rc != CH_OK)
        return rc;
    rd_t r = gather_reader(buf, &g, g.hs_total);
    if (parse_hello(&r, out) != 0) {
        memset(out, 0, sizeof(*out));
        return CH_MALFORMED;
    }
    out->hello_len = g.wire;
    out->nrecords = g.nfrags;
    return CH_OK;
}

const char *ch_result_name(ch_result_t r)
{
    static const char *const names[] = { "ok", "need_more", "not_tls", "malformed" };
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

const char *ch_sni_status_name(ch_sni_t s)
{
    static const char *const names[] = { "none", "ok", "ip", "invalid", "too_long" };
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

size_t ch_alert_bytes(uint8_t level, uint8_t desc, uint8_t out[CH_ALERT_LEN])
{
    /* type alert(21), legacy version 3.3, length 2, then level and description */
    out[0] = 21;
    out[1] = 3;
    out[2] = 3;
    out[3] = 0;
    out[4] = 2;
    out[5] = level;
    out[6] = desc;
    return CH_ALERT_LEN;
}
