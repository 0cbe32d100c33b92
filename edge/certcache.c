#include "edge/certcache.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/crypto.h"
#include "common/util.h"

/* DESIGN
 * - Names map to cold records through a sharded hash table: the shard is
 *   picked from the high bits of a keyed SipHash, each shard has one mutex,
 *   its own buckets (sized once, never rehashed) and its own LRU list. The
 *   bound is global (an atomic count): an insert that goes over it evicts
 *   the least recent name of its own shard, so eviction is LRU per shard
 *   and close to LRU overall. Locks are held only to relink nodes: nodes
 *   are allocated before and released after the critical section.
 * - Two tiers. A record (cold, ~0.5 KB for P-256) is one malloc holding the
 *   leaf's DER, the private key packed so that it rebuilds without a DER
 *   decoder, and references to interned chain certificates. A parsed entry
 *   (hot, ~7 KB: OpenSSL's X509 with its decoded public key, the EVP_PKEY)
 *   is kept for at most max_hot records, replaced by CLOCK; a get of a cold
 *   name parses the record again (~0.1 ms) and promotes it. Parsed objects
 *   are never shared between records, so a hot get does no parsing at all.
 * - Refcounts (atomic): a record is held by each name storing it and by
 *   each entry parsed from it; an entry by the hot tier (while its record
 *   is hot) and by callers. Demotion drops only the tier's reference, so an
 *   entry handed to a connection lives on; the record (and the route it
 *   owns) lives until its last name and last entry are gone. A record with
 *   no name left leaves the hot tier at once (else entry -> record -> entry
 *   would keep both alive).
 * - Chain certificates are interned by the SHA-256 of their DER: 10,000
 *   leaves under one intermediate hold one parsed intermediate, not 10,000.
 *   The intern table is refcounted by the cache and by every record, so
 *   entries may outlive certcache_free.
 * - The negative cache keeps fixed slots (two keyed hashes, outcome, expiry,
 *   a CLOCK bit) per shard and reuses them; it never allocates after new. */

/* ---- keyed hashing ---- */

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                  \
    } while (0)

/* SipHash-2-4: names come from the network (SNI), so bucket choice must not
 * be predictable to whoever sends them. */
static uint64_t siphash24(const uint8_t key[16], const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    uint64_t b = (uint64_t)len << 56;
    const uint8_t *end = in + (len & ~(size_t)7);
    for (; in != end; in += 8) {
        uint64_t m = le64(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = len & 7; i > 0; i--)
        b |= (uint64_t)in[i - 1] << (8 * (i - 1));
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Lowercase copy of host into out; -1 when empty or too long. */
static int norm_host(const char *host, char out[CERTCACHE_HOST_MAX + 1], size_t *len)
{
    size_t n = host ? strnlen(host, CERTCACHE_HOST_MAX + 1) : 0;
    if (n == 0 || n > CERTCACHE_HOST_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    out[n] = '\0';
    *len = n;
    return 0;
}

static size_t pow2_floor(size_t n)
{
    size_t p = 1;
    while (p <= n / 2)
        p *= 2;
    return p;
}

static size_t pow2_ceil(size_t n)
{
    size_t p = 1;
    while (p < n)
        p *= 2;
    return p;
}

/* Shard count: enough to spread threads, few enough that each shard's LRU
 * still holds a useful share (>= 32 names) of the total. */
static unsigned shard_count(size_t capacity, unsigned most)
{
    size_t n = pow2_floor(capacity / 32 ? capacity / 32 : 1);
    return n > most ? most : (unsigned)n;
}

/* Shard i's share of total, spreading the remainder so the sum is exact. */
static size_t shard_share(size_t total, unsigned n, unsigned i)
{
    return total / n + (i < total % n);
}

/* ---- chain certificate intern table ---- */

#define INTERN_BUCKETS 256

typedef struct cc_inode cc_inode_t;
typedef struct cc_intern cc_intern_t;

struct cc_inode {
    cc_inode_t *next;
    X509 *x509;
    unsigned uses; /* records holding it; under the intern lock */
    size_t bytes;
    /* The DER of the first leaf seen with this certificate as its issuer,
     * which later leaves of the issuer are stored against (see tmpl_*);
     * set when the node is made, never changed. NULL if none. */
    unsigned char *tmpl;
    size_t tmpl_len;
    unsigned char sha[CRYPTO_SHA256_LEN];
};

struct cc_intern {
    pthread_mutex_t lock;
    atomic_uint refs; /* the cache + every live record */
    size_t count, bytes;
    cc_inode_t *buckets[INTERN_BUCKETS];
};

static cc_intern_t *intern_new(void)
{
    cc_intern_t *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    if (pthread_mutex_init(&in->lock, NULL) != 0) {
        free(in);
        return NULL;
    }
    atomic_init(&in->refs, 1);
    return in;
}

static void intern_unref(cc_intern_t *in)
{
    if (!in || atomic_fetch_sub_explicit(&in->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Every node is released by the record holding it, so none are left. */
    pthread_mutex_destroy(&in->lock);
    free(in);
}

static cc_inode_t *intern_find(cc_intern_t *in, const unsigned char sha[CRYPTO_SHA256_LEN])
{
    for (cc_inode_t *n = in->buckets[sha[0]]; n; n = n->next)
        if (memcmp(n->sha, sha, CRYPTO_SHA256_LEN) == 0)
            return n;
    return NULL;
}

/* Rough heap cost of a parsed certificate; measured on OpenSSL 3.0, where
 * the decoded public key dominates (EC keys carry their own group copy). */
static size_t x509_bytes(X509 *x, size_t der_len)
{
    EVP_PKEY *pub = X509_get0_pubkey(x);
    size_t pubcost = pub && EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC ? 2100 : 1000;
    return 1900 + 2 * der_len + pubcost;
}

static size_t pkey_bytes(EVP_PKEY *k)
{
    int bits = EVP_PKEY_get_bits(k);
    return EVP_PKEY_get_base_id(k) == EVP_PKEY_EC ? 2300 : 1500 + (size_t)(bits > 0 ? bits : 0);
}

/* The cert's full-chain checks (extension cache) run once, here, so the
 * object is never written to lazily by concurrent handshakes later. */
static int warm_x509(X509 *x)
{
    return X509_check_purpose(x, -1, 0) == 1 ? 0 : -1;
}

static void inode_free(cc_inode_t *n)
{
    if (n) {
        X509_free(n->x509);
        free(n->tmpl);
        free(n);
    }
}

/* Returns the shared node for the certificate with this DER (one more use),
 * parsing it only if it is new. have, if given, is the same certificate
 * already parsed; the node then takes its own reference to it. leaf, if
 * given, becomes a new node's template. */
static cc_inode_t *intern_acquire(cc_intern_t *in, const unsigned char *der, size_t der_len,
                                  X509 *have, const unsigned char *leaf, size_t leaf_len)
{
    unsigned char sha[CRYPTO_SHA256_LEN];
    if (crypto_sha256(der, der_len, sha) != 0)
        return NULL;
    pthread_mutex_lock(&in->lock);
    cc_inode_t *n = intern_find(in, sha);
    if (n)
        n->uses++;
    pthread_mutex_unlock(&in->lock);
    if (n)
        return n;

    cc_inode_t *fresh = calloc(1, sizeof(*fresh));
    if (!fresh)
        return NULL;
    if (have && X509_up_ref(have) == 1) {
        fresh->x509 = have;
    } else if (!have) {
        const unsigned char *p = der;
        fresh->x509 = d2i_X509(NULL, &p, (long)der_len);
        if (fresh->x509 && p != der + der_len) {
            X509_free(fresh->x509);
            fresh->x509 = NULL;
        }
    }
    if (leaf && (fresh->tmpl = malloc(leaf_len)))
        memcpy(fresh->tmpl, leaf, fresh->tmpl_len = leaf_len);
    if (!fresh->x509 || warm_x509(fresh->x509) != 0 || (leaf && !fresh->tmpl)) {
        inode_free(fresh);
        return NULL;
    }
    memcpy(fresh->sha, sha, sizeof(sha));
    fresh->uses = 1;
    fresh->bytes = sizeof(*fresh) + x509_bytes(fresh->x509, der_len) + fresh->tmpl_len;

    pthread_mutex_lock(&in->lock);
    n = intern_find(in, sha); /* another thread may have won the race */
    if (n) {
        n->uses++;
    } else {
        fresh->next = in->buckets[sha[0]];
        in->buckets[sha[0]] = fresh;
        in->count++;
        in->bytes += fresh->bytes;
        n = fresh;
        fresh = NULL;
    }
    pthread_mutex_unlock(&in->lock);
    inode_free(fresh);
    return n;
}

static void intern_release(cc_intern_t *in, cc_inode_t *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&in->lock);
    int last = --n->uses == 0;
    if (last) {
        cc_inode_t **pp = &in->buckets[n->sha[0]];
        while (*pp != n)
            pp = &(*pp)->next;
        *pp = n->next;
        in->count--;
        in->bytes -= n->bytes;
    }
    pthread_mutex_unlock(&in->lock);
    if (last)
        inode_free(n);
}

/* What an entry is built from; whatever is set here is released by
 * parts_clear unless entry_assemble took it. */
typedef struct {
    X509 *leaf;
    EVP_PKEY *key;
    unsigned char *leaf_der; /* OPENSSL_malloc'd */
    size_t leaf_der_len;
    cc_inode_t *nodes[CERTCACHE_CHAIN_MAX];
    unsigned n;
} parts_t;

static void parts_clear(cc_intern_t *in, parts_t *p)
{
    X509_free(p->leaf);
    EVP_PKEY_free(p->key);
    OPENSSL_free(p->leaf_der);
    for (unsigned i = 0; i < p->n; i++)
        intern_release(in, p->nodes[i]);
    memset(p, 0, sizeof(*p));
}

/* ---- leaf templates ----
 * Leaves from one issuer share most of their DER: issuer name, algorithm
 * identifiers, key usages, authority key id, AIA and CRL URLs, policies,
 * CT log ids. A record stores its leaf as literals and copies from the
 * template of its issuer's node (the first leaf seen under that issuer):
 * a Let's Encrypt-shaped P-256 leaf of ~900 B keeps ~450. Tokens: t < 0x80
 * is a run of t + 1 literal bytes; t >= 0x80 copies (t & 0x7f) + 4 bytes
 * from the 16-bit big-endian template offset that follows. */

#define TMPL_MIN 4
#define TMPL_MAX (0x7f + TMPL_MIN)
#define TMPL_DICT_MAX 0xffff /* offsets are 16-bit */
#define TMPL_HASH_BITS 10

static size_t tmpl_hash(const unsigned char *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return (v * 2654435761u) >> (32 - TMPL_HASH_BITS);
}

/* Worst case, all literals. */
static size_t tmpl_bound(size_t n)
{
    return n + n / 128 + 1;
}

static size_t tmpl_literals(unsigned char *out, size_t o, const unsigned char *lit, size_t n)
{
    while (n > 0) {
        size_t k = n > 128 ? 128 : n;
        out[o++] = (unsigned char)(k - 1);
        memcpy(out + o, lit, k);
        o += k;
        lit += k;
        n -= k;
    }
    return o;
}

/* The longest match for in[0..n) in dict, through the hash chains. */
static size_t tmpl_match(const unsigned char *dict, size_t dlen, const int32_t *head,
                         const int32_t *prev, const unsigned char *in, size_t n, size_t *off)
{
    size_t best = 0;
    int steps = 0;
    for (int32_t j = head[tmpl_hash(in)]; j >= 0 && steps < 64; j = prev[j], steps++) {
        size_t l = 0, max = n < dlen - (size_t)j ? n : dlen - (size_t)j;
        max = max < TMPL_MAX ? max : TMPL_MAX;
        while (l < max && in[l] == dict[j + l])
            l++;
        if (l > best) {
            best = l;
            *off = (size_t)j;
        }
    }
    return best;
}

/* Encodes in against dict into out (tmpl_bound(n) bytes); the length, or
 * 0 when out of memory. Greedy longest match: enough for DER fields. */
static size_t tmpl_encode(const unsigned char *dict, size_t dlen, const unsigned char *in, size_t n,
                          unsigned char *out)
{
    int32_t head[1 << TMPL_HASH_BITS];
    dlen = dlen > TMPL_DICT_MAX ? TMPL_DICT_MAX : dlen;
    int32_t *prev = malloc((dlen ? dlen : 1) * sizeof(*prev));
    if (!prev)
        return 0;
    for (size_t h = 0; h < sizeof(head) / sizeof(head[0]); h++)
        head[h] = -1;
    for (size_t j = 0; j + TMPL_MIN <= dlen; j++) {
        size_t h = tmpl_hash(dict + j);
        prev[j] = head[h];
        head[h] = (int32_t)j;
    }
    size_t i = 0, o = 0, lit = 0;
    while (i < n) {
        size_t off = 0, len = i + TMPL_MIN <= n ? tmpl_match(dict, dlen, head, prev, in + i, n - i, &off) : 0;
        if (len < TMPL_MIN) {
            i++;
            continue;
        }
        o = tmpl_literals(out, o, in + lit, i - lit);
        out[o++] = (unsigned char)(0x80 | (len - TMPL_MIN));
        out[o++] = (unsigned char)(off >> 8);
        out[o++] = (unsigned char)off;
        i += len;
        lit = i;
    }
    free(prev);
    return tmpl_literals(out, o, in + lit, n - lit);
}

/* Decodes exactly out_len bytes; -1 on anything malformed. */
static int tmpl_decode(const unsigned char *dict, size_t dlen, const unsigned char *in, size_t n,
                       unsigned char *out, size_t out_len)
{
    size_t i = 0, o = 0;
    while (i < n) {
        size_t t = in[i++], k;
        const unsigned char *from = in + i;
        if (t < 0x80) {
            k = t + 1;
            if (k > n - i)
                return -1;
            i += k;
        } else {
            k = (t & 0x7f) + TMPL_MIN;
            if (n - i < 2)
                return -1;
            size_t off = (size_t)in[i] << 8 | in[i + 1];
            i += 2;
            if (off > dlen || k > dlen - off)
                return -1;
            from = dict + off;
        }
        if (k > out_len - o)
            return -1;
        memcpy(out + o, from, k);
        o += k;
    }
    return o == out_len ? 0 : -1;
}

/* p's leaf against its issuer's template, when that is shorter and
 * decodes back exactly: *out is malloc'd. 0 keeps it raw. */
static size_t leaf_pack(const parts_t *p, unsigned char **out)
{
    const cc_inode_t *issuer = p->n ? p->nodes[0] : NULL;
    size_t n = p->leaf_der_len, len = 0;
    unsigned char *enc = NULL, *back = NULL;
    *out = NULL;
    if (!issuer || !issuer->tmpl || !(enc = malloc(tmpl_bound(n))) || !(back = malloc(n)))
        goto out;
    len = tmpl_encode(issuer->tmpl, issuer->tmpl_len, p->leaf_der, n, enc);
    if (len == 0 || len >= n ||
        tmpl_decode(issuer->tmpl, issuer->tmpl_len, enc, len, back, n) != 0 ||
        memcmp(back, p->leaf_der, n) != 0)
        len = 0;
out:
    free(back);
    if (len)
        *out = enc;
    else
        free(enc);
    return len;
}

/* ---- cold records ---- */

/* How a record keeps its private key: see key_pack. */
enum { KEY_EC = 1, KEY_RSA, KEY_DER };

#define EC_SCALAR_MAX 66 /* P-521 */

struct cc_rec {
    atomic_uint refs;     /* stored names + entries parsed from it + gets in flight */
    atomic_uint names;    /* stored names; at 0 the record leaves the hot tier */
    atomic_uchar hot_ref; /* CLOCK bit: got since the hand last passed */
    uint8_t key_form;     /* KEY_* */
    uint8_t nchain;
    uint8_t leaf_tmpl;    /* leaf stored against inodes[0]'s template */
    int32_t hot_slot;     /* index in the hot tier, -1 when cold; under the hot lock */
    int32_t key_id;       /* KEY_EC: curve NID; KEY_DER: EVP_PKEY type */
    uint32_t leaf_len, key_len; /* as stored */
    uint32_t der_len;     /* the leaf's DER */
    time_t not_after;
    void *route;
    void (*route_free)(void *);
    cc_intern_t *intern;
    certcache_entry_t *hot; /* its entry while in the hot tier; under its stripe lock */
    cc_inode_t *inodes[];   /* nchain of them, then the leaf, then the key */
};

static unsigned char *rec_leaf(cc_rec_t *r)
{
    return (unsigned char *)&r->inodes[r->nchain];
}

static unsigned char *rec_key(cc_rec_t *r)
{
    return rec_leaf(r) + r->leaf_len;
}

/* The record's heap block as glibc rounds it (8-byte header, 16-byte steps). */
static size_t rec_bytes(const cc_rec_t *r)
{
    size_t n = sizeof(*r) + r->nchain * sizeof(r->inodes[0]) + r->leaf_len + r->key_len;
    return (n + 8 + 15) & ~(size_t)15;
}

/* The leaf's DER: in the record, or decoded into scratch (cap bytes) or,
 * when longer, into *heap (the caller frees it). NULL for no memory. */
static const unsigned char *rec_der(cc_rec_t *r, unsigned char *scratch, size_t cap,
                                    unsigned char **heap)
{
    if (!r->leaf_tmpl)
        return rec_leaf(r);
    const cc_inode_t *issuer = r->inodes[0];
    unsigned char *out = r->der_len <= cap ? scratch : (*heap = malloc(r->der_len));
    if (!out || tmpl_decode(issuer->tmpl, issuer->tmpl_len, rec_leaf(r), r->leaf_len, out,
                            r->der_len) != 0)
        return NULL;
    return out;
}

static cc_rec_t *rec_ref(cc_rec_t *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

static void rec_unref(cc_rec_t *r)
{
    if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (r->route_free)
        r->route_free(r->route);
    for (unsigned i = 0; i < r->nchain; i++)
        intern_release(r->intern, r->inodes[i]);
    intern_unref(r->intern);
    OPENSSL_cleanse(rec_key(r), r->key_len);
    free(r);
}

/* ---- private keys, packed ----
 * A record keeps its key in the smallest form that rebuilds without a DER
 * decoder: OpenSSL 3.0 assembles a decoder chain on every d2i of a key,
 * ~100 us, most of what parsing one costs; the key manager's fromdata takes
 * ~15 us. EC: the big-endian scalar (the public point is the leaf's).
 * RSA: d, p, q, dP, dQ, qInv, each after a 2-byte length (n and e are the
 * leaf's). Anything else: its DER, for d2i_PrivateKey_ex. */

typedef struct {
    int form, id;
    unsigned char *buf; /* OPENSSL_malloc'd; cleansed by packed_clear */
    size_t len;
} packed_key_t;

static const char *const rsa_private[] = {
    OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,   OSSL_PKEY_PARAM_RSA_FACTOR2,
    OSSL_PKEY_PARAM_RSA_EXPONENT1, OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};
#define RSA_PRIVATE_N (sizeof(rsa_private) / sizeof(rsa_private[0]))

static void packed_clear(packed_key_t *k)
{
    OPENSSL_clear_free(k->buf, k->len);
    memset(k, 0, sizeof(*k));
}

static int pack_ec(EVP_PKEY *key, packed_key_t *k)
{
    char group[80];
    BIGNUM *priv = NULL;
    int bytes = (EVP_PKEY_get_bits(key) + 7) / 8, rc = -1;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) != 1 ||
        (k->id = OBJ_txt2nid(group)) == NID_undef || bytes <= 0 || bytes > EC_SCALAR_MAX ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &priv) != 1)
        goto out;
    k->buf = OPENSSL_malloc((size_t)bytes);
    if (k->buf && BN_bn2binpad(priv, k->buf, bytes) == bytes) {
        k->len = (size_t)bytes;
        k->form = KEY_EC;
        rc = 0;
    }
out:
    BN_clear_free(priv);
    return rc;
}

static int pack_rsa(EVP_PKEY *key, packed_key_t *k)
{
    BIGNUM *bn[RSA_PRIVATE_N] = { 0 }, *third = NULL;
    size_t len = 0, off = 0;
    int rc = -1;
    /* Multi-prime keys have more than these: they take the DER form. */
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_FACTOR3, &third) == 1)
        goto out;
    for (size_t i = 0; i < RSA_PRIVATE_N; i++) {
        if (EVP_PKEY_get_bn_param(key, rsa_private[i], &bn[i]) != 1 || BN_num_bytes(bn[i]) > 0xffff)
            goto out;
        len += 2 + (size_t)BN_num_bytes(bn[i]);
    }
    if (!(k->buf = OPENSSL_malloc(len)))
        goto out;
    for (size_t i = 0; i < RSA_PRIVATE_N; i++) {
        int n = BN_num_bytes(bn[i]);
        k->buf[off] = (unsigned char)(n >> 8);
        k->buf[off + 1] = (unsigned char)n;
        off += 2 + (size_t)BN_bn2bin(bn[i], k->buf + off + 2);
    }
    k->len = len;
    k->form = KEY_RSA;
    k->id = EVP_PKEY_RSA;
    rc = 0;
out:
    for (size_t i = 0; i < RSA_PRIVATE_N; i++)
        BN_clear_free(bn[i]);
    BN_clear_free(third);
    return rc;
}

static int pack_der(EVP_PKEY *key, packed_key_t *k)
{
    unsigned char *der = NULL;
    int len = i2d_PrivateKey(key, &der);
    if (len <= 0)
        return -1;
    k->buf = der;
    k->len = (size_t)len;
    k->form = KEY_DER;
    k->id = EVP_PKEY_get_base_id(key);
    return 0;
}

static EVP_PKEY *key_fromdata(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1) {
        EVP_PKEY_free(key);
        key = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    return key;
}

static EVP_PKEY *unpack_ec(int nid, const unsigned char *scalar, size_t len, X509 *leaf)
{
    unsigned char native[EC_SCALAR_MAX]; /* OSSL_PARAM integers are native-endian */
    const ASN1_BIT_STRING *pub = X509_get0_pubkey_bitstr(leaf);
    const char *group = OBJ_nid2sn(nid);
    if (!pub || !group || len > sizeof(native))
        return NULL;
    for (size_t i = 0; i < len; i++)
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        native[i] = scalar[len - 1 - i];
#else
        native[i] = scalar[i];
#endif
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0),
        OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, native, len),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
                                          (void *)ASN1_STRING_get0_data(pub),
                                          (size_t)ASN1_STRING_length(pub)),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *key = key_fromdata("EC", params);
    OPENSSL_cleanse(native, sizeof(native));
    return key;
}

/* Pushes the leaf's n and e, then the packed private values, onto bld. */
static int rsa_params(OSSL_PARAM_BLD *bld, const unsigned char *p, size_t len, X509 *leaf,
                      BIGNUM *bn[RSA_PRIVATE_N + 2])
{
    EVP_PKEY *pub = X509_get0_pubkey(leaf);
    if (!pub || EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &bn[0]) != 1 ||
        EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &bn[1]) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn[0]) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn[1]) != 1)
        return -1;
    for (size_t i = 0; i < RSA_PRIVATE_N; i++) {
        size_t n = len >= 2 ? (size_t)p[0] << 8 | p[1] : SIZE_MAX;
        if (n > len - 2 || !(bn[i + 2] = BN_secure_new()) ||
            !BN_bin2bn(p + 2, (int)n, bn[i + 2]) ||
            OSSL_PARAM_BLD_push_BN(bld, rsa_private[i], bn[i + 2]) != 1)
            return -1;
        p += 2 + n;
        len -= 2 + n;
    }
    return len == 0 ? 0 : -1;
}

static EVP_PKEY *unpack_rsa(const unsigned char *p, size_t len, X509 *leaf)
{
    BIGNUM *bn[RSA_PRIVATE_N + 2] = { 0 };
    OSSL_PARAM *params = NULL;
    EVP_PKEY *key = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld && rsa_params(bld, p, len, leaf, bn) == 0 && (params = OSSL_PARAM_BLD_to_param(bld)))
        key = key_fromdata("RSA", params);
    OSSL_PARAM_free(params); /* clears its secure part */
    OSSL_PARAM_BLD_free(bld);
    for (size_t i = 0; i < RSA_PRIVATE_N + 2; i++)
        BN_clear_free(bn[i]);
    return key;
}

static EVP_PKEY *key_unpack(int form, int id, const unsigned char *p, size_t len, X509 *leaf)
{
    switch (form) {
    case KEY_EC:
        return unpack_ec(id, p, len, leaf);
    case KEY_RSA:
        return unpack_rsa(p, len, leaf);
    default:
        return d2i_PrivateKey_ex(id, NULL, &p, (long)len, NULL, NULL);
    }
}

/* Packs key (which matches leaf) in the first form that rebuilds to it. */
static int key_pack(EVP_PKEY *key, X509 *leaf, packed_key_t *k)
{
    int type = EVP_PKEY_get_base_id(key);
    int (*const forms[])(EVP_PKEY *, packed_key_t *) = {
        type == EVP_PKEY_EC ? pack_ec : type == EVP_PKEY_RSA ? pack_rsa : pack_der, pack_der,
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        if (forms[i](key, k) != 0)
            continue;
        EVP_PKEY *back = key_unpack(k->form, k->id, k->buf, k->len, leaf);
        int same = back && EVP_PKEY_eq(back, key) == 1;
        EVP_PKEY_free(back);
        if (same)
            return 0;
        packed_clear(k);
    }
    return -1;
}

/* ---- parsed entries ---- */

struct cc_hot;

struct certcache {
    struct cc_shard *shards;
    unsigned nshards;
    size_t max_entries;
    atomic_size_t count;      /* names stored, all shards */
    atomic_size_t certs;      /* records with a stored name */
    atomic_size_t cold_bytes; /* their rec_bytes */
    atomic_uint_fast64_t cold_hits, parse_errors;
    uint8_t key[16];
    cc_intern_t *intern;
    struct cc_hot *hot;
};

/* Wraps leaf and key (taken on success) into an entry of rec. */
static certcache_entry_t *entry_wrap(cc_rec_t *rec, X509 *leaf, EVP_PKEY *key)
{
    certcache_entry_t *e = calloc(1, sizeof(*e));
    STACK_OF(X509) *chain = sk_X509_new_reserve(NULL, rec->nchain);
    if (!e || !chain)
        goto fail;
    for (unsigned i = 0; i < rec->nchain; i++) {
        if (X509_up_ref(rec->inodes[i]->x509) != 1)
            goto fail;
        sk_X509_push(chain, rec->inodes[i]->x509); /* reserved: cannot fail */
    }
    e->leaf = leaf;
    e->key = key;
    e->chain = chain;
    e->not_after = rec->not_after;
    e->route = rec->route;
    /* Chain certs are shared: only their pointer slots count here. */
    e->bytes = sizeof(*e) + rec->nchain * sizeof(void *) * 2 + 64 +
               x509_bytes(leaf, rec->der_len) + pkey_bytes(key);
    atomic_init(&e->_refs, 1);
    e->_rec = rec_ref(rec);
    return e;
fail:
    sk_X509_pop_free(chain, X509_free);
    free(e);
    return NULL;
}

certcache_entry_t *certcache_entry_ref(certcache_entry_t *e)
{
    atomic_fetch_add_explicit(&e->_refs, 1, memory_order_relaxed);
    return e;
}

void certcache_entry_unref(certcache_entry_t *e)
{
    if (!e || atomic_fetch_sub_explicit(&e->_refs, 1, memory_order_acq_rel) != 1)
        return;
    sk_X509_pop_free(e->chain, X509_free);
    X509_free(e->leaf);
    EVP_PKEY_free(e->key);
    rec_unref(e->_rec);
    free(e);
}

/* What a get of a cold name costs. The record rebuilt once when it was
 * made, so this fails only for memory. Leaves others' errors queued. */
static certcache_entry_t *entry_parse(cc_rec_t *rec)
{
    unsigned char scratch[4096], *heap = NULL;
    const unsigned char *p = rec_der(rec, scratch, sizeof(scratch), &heap);
    EVP_PKEY *key = NULL;
    X509 *leaf = NULL;
    certcache_entry_t *e = NULL;
    ERR_set_mark();
    if (p)
        leaf = d2i_X509(NULL, &p, (long)rec->der_len);
    free(heap);
    if (leaf && warm_x509(leaf) == 0)
        key = key_unpack(rec->key_form, rec->key_id, rec_key(rec), rec->key_len, leaf);
    if (key)
        e = entry_wrap(rec, leaf, key);
    if (!e) {
        X509_free(leaf);
        EVP_PKEY_free(key);
    }
    ERR_pop_to_mark();
    return e;
}

static int leaf_not_after(X509 *leaf, time_t *out)
{
    struct tm tm;
    if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) != 1)
        return -1;
    *out = timegm(&tm);
    return *out == (time_t)-1 ? -1 : 0;
}

/* A record (1 ref, no route yet) taking p's chain nodes. */
static cc_rec_t *rec_new(cc_intern_t *in, parts_t *p, const packed_key_t *k, time_t not_after)
{
    if (p->leaf_der_len > UINT32_MAX || k->len > UINT32_MAX)
        return NULL;
    unsigned char *packed = NULL;
    size_t plen = leaf_pack(p, &packed);
    size_t llen = plen ? plen : p->leaf_der_len;
    cc_rec_t *r = malloc(sizeof(*r) + p->n * sizeof(r->inodes[0]) + llen + k->len);
    if (!r) {
        free(packed);
        return NULL;
    }
    memset(r, 0, sizeof(*r));
    atomic_init(&r->refs, 1);
    atomic_init(&r->names, 0);
    atomic_init(&r->hot_ref, 0);
    r->key_form = (uint8_t)k->form;
    r->key_id = k->id;
    r->nchain = (uint8_t)p->n;
    r->hot_slot = -1;
    r->leaf_tmpl = plen != 0;
    r->leaf_len = (uint32_t)llen;
    r->der_len = (uint32_t)p->leaf_der_len;
    r->key_len = (uint32_t)k->len;
    r->not_after = not_after;
    r->intern = in;
    atomic_fetch_add_explicit(&in->refs, 1, memory_order_relaxed);
    memcpy(r->inodes, p->nodes, p->n * sizeof(p->nodes[0]));
    p->n = 0;
    memcpy(rec_leaf(r), plen ? packed : p->leaf_der, llen);
    memcpy(rec_key(r), k->buf, k->len);
    free(packed);
    return r;
}

static certcache_entry_t *entry_assemble(certcache_t *cc, parts_t *p, void *route,
                                         void (*route_free)(void *), const char **err)
{
    time_t not_after;
    packed_key_t k = { 0 };
    certcache_entry_t *e = NULL;
    if (X509_check_private_key(p->leaf, p->key) != 1) {
        *err = "private key does not match the certificate";
        return NULL;
    }
    if (leaf_not_after(p->leaf, &not_after) != 0 || warm_x509(p->leaf) != 0) {
        *err = "certificate is not usable (validity or extensions)";
        return NULL;
    }
    if (key_pack(p->key, p->leaf, &k) != 0) {
        *err = "private key cannot be packed";
        return NULL;
    }
    cc_rec_t *r = rec_new(cc->intern, p, &k, not_after);
    packed_clear(&k);
    if (r)
        e = entry_wrap(r, p->leaf, p->key);
    if (!e) {
        rec_unref(r); /* no route yet: the caller keeps it */
        *err = "out of memory";
        return NULL;
    }
    p->leaf = NULL;
    p->key = NULL;
    r->route = e->route = route;
    r->route_free = route_free;
    rec_unref(r); /* e holds it */
    return e;
}

/* The key type of a PEM private key block, or EVP_PKEY_NONE. */
static int key_type(const char *name, const unsigned char *der, long len)
{
    if (strcmp(name, "EC PRIVATE KEY") == 0)
        return EVP_PKEY_EC;
    if (strcmp(name, "RSA PRIVATE KEY") == 0)
        return EVP_PKEY_RSA;
    if (strcmp(name, "PRIVATE KEY") != 0)
        return EVP_PKEY_NONE;
    const ASN1_OBJECT *alg = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &der, len);
    int type = EVP_PKEY_NONE;
    if (p8 && PKCS8_pkey_get0(&alg, NULL, NULL, NULL, p8) == 1)
        type = OBJ_obj2nid(alg); /* key type ids are the algorithm NIDs */
    PKCS8_PRIV_KEY_INFO_free(p8);
    return type;
}

/* Decodes the first private key block of key_pem, skipping others (such
 * as the EC PARAMETERS block openssl ecparam writes). The generic PEM key
 * reader tries every decoder OpenSSL has and costs ~4x more per key, which
 * matters on a burst of cache misses; naming the type avoids that. */
static EVP_PKEY *read_key(BIO *bio, const char **err)
{
    EVP_PKEY *key = NULL;
    *err = "private key does not parse";
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long len = 0;
        if (PEM_read_bio(bio, &name, &header, &der, &len) != 1)
            return NULL;
        int done = strstr(name, "PRIVATE KEY") != NULL;
        if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0 || strstr(header, "ENCRYPTED")) {
            *err = "private key is encrypted";
        } else if (done) {
            const unsigned char *p = der;
            int type = key_type(name, der, len);
            if (type != EVP_PKEY_NONE)
                key = d2i_PrivateKey_ex(type, NULL, &p, len, NULL, NULL);
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_clear_free(der, (size_t)len);
        if (done)
            return key;
    }
}

/* Reads the certificates of chain_pem into p: the leaf parsed (its DER
 * kept), the rest interned. Blocks other than CERTIFICATE are skipped. */
static int read_chain(certcache_t *cc, BIO *bio, parts_t *p, const char **err)
{
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *der = NULL;
        long len = 0;
        if (PEM_read_bio(bio, &name, &header, &der, &len) != 1)
            break;
        int rc = 0;
        if (strcmp(name, "CERTIFICATE") != 0) {
            rc = 0;
        } else if (!p->leaf) {
            const unsigned char *q = der;
            p->leaf = d2i_X509(NULL, &q, len);
            p->leaf_der = der;
            p->leaf_der_len = (size_t)len;
            der = NULL;
            if (!p->leaf || q != p->leaf_der + len) {
                *err = "certificate does not parse";
                rc = -1;
            }
        } else if (p->n == CERTCACHE_CHAIN_MAX) {
            *err = "chain too long";
            rc = -1;
        } else if (!(p->nodes[p->n] = intern_acquire(cc->intern, der, (size_t)len, NULL,
                                                               p->n ? NULL : p->leaf_der,
                                                               p->leaf_der_len))) {
            *err = "chain certificate does not parse";
            rc = -1;
        } else {
            p->n++;
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(der);
        if (rc != 0)
            return -1;
    }
    /* PEM_read_bio fails at the end too; only "no more PEM" is a clean end. */
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
        *err = "bad PEM in certificate chain";
        return -1;
    }
    if (!p->leaf) {
        *err = "no certificate in PEM";
        return -1;
    }
    return 0;
}

certcache_entry_t *certcache_entry_from_pem(certcache_t *cc, const char *chain_pem,
                                            size_t chain_len, const char *key_pem,
                                            size_t key_len, void *route,
                                            void (*route_free)(void *), const char **err)
{
    const char *why = "out of memory";
    certcache_entry_t *e = NULL;
    parts_t p = { 0 };
    BIO *cbio = NULL, *kbio = NULL;
    ERR_clear_error(); /* read_chain reads the queue to tell end from error */
    if (!chain_pem || !key_pem || chain_len > INT_MAX || key_len > INT_MAX) {
        why = "bad arguments";
        goto out;
    }
    cbio = BIO_new_mem_buf(chain_pem, (int)chain_len);
    kbio = BIO_new_mem_buf(key_pem, (int)key_len);
    if (!cbio || !kbio)
        goto out;
    if (read_chain(cc, cbio, &p, &why) != 0)
        goto out;
    p.key = read_key(kbio, &why);
    if (!p.key)
        goto out;
    e = entry_assemble(cc, &p, route, route_free, &why);
out:
    parts_clear(cc->intern, &p);
    BIO_free(cbio);
    BIO_free(kbio);
    ERR_clear_error();
    if (!e && err)
        *err = why;
    return e;
}

certcache_entry_t *certcache_entry_new(certcache_t *cc, X509 *leaf, EVP_PKEY *key,
                                       STACK_OF(X509) *chain, void *route,
                                       void (*route_free)(void *), const char **err)
{
    const char *why = "out of memory";
    certcache_entry_t *e = NULL;
    parts_t p = { 0 };
    int nchain = chain ? sk_X509_num(chain) : 0;
    if (!leaf || !key || nchain > CERTCACHE_CHAIN_MAX) {
        why = !leaf || !key ? "bad arguments" : "chain too long";
        goto out;
    }
    if (X509_up_ref(leaf) != 1)
        goto out;
    p.leaf = leaf;
    if (EVP_PKEY_up_ref(key) != 1)
        goto out;
    p.key = key;
    int len = i2d_X509(leaf, &p.leaf_der);
    if (len <= 0) {
        why = "certificate does not encode";
        goto out;
    }
    p.leaf_der_len = (size_t)len;
    for (int i = 0; i < nchain; i++) {
        X509 *x = sk_X509_value(chain, i);
        unsigned char *der = NULL;
        len = i2d_X509(x, &der);
        if (len > 0)
            p.nodes[p.n] = intern_acquire(cc->intern, der, (size_t)len, x,
                                          p.n ? NULL : p.leaf_der, p.leaf_der_len);
        OPENSSL_free(der);
        if (len <= 0 || !p.nodes[p.n]) {
            why = "chain certificate does not encode";
            goto out;
        }
        p.n++;
    }
    e = entry_assemble(cc, &p, route, route_free, &why);
out:
    parts_clear(cc->intern, &p);
    ERR_clear_error();
    if (!e && err)
        *err = why;
    return e;
}

/* ---- the hot tier ----
 * A fixed array of records whose parsed entry is kept, replaced by CLOCK.
 * Lock order: a shard's lock, then a stripe's; or the hot lock, then a
 * stripe's. A stripe lock guards cc_rec.hot of the records hashed to it,
 * so a get reads the pointer without the hot lock; the hot lock guards the
 * array and cc_rec.hot_slot. */

#define HOT_STRIPES 64
#define HOT_MAX ((size_t)1 << 24)

typedef struct cc_hot {
    pthread_mutex_t lock;
    cc_rec_t **slots; /* NULL when free */
    uint32_t *free;   /* stack of the free slots' indexes */
    size_t cap, nfree, hand, bytes;
    uint64_t promotions, demotions;
    unsigned nstripes; /* initialised, for teardown */
    pthread_mutex_t stripes[HOT_STRIPES];
} cc_hot_t;

static pthread_mutex_t *stripe_of(cc_hot_t *h, const cc_rec_t *r)
{
    uintptr_t a = (uintptr_t)r;
    return &h->stripes[(a >> 4 ^ a >> 10) & (HOT_STRIPES - 1)];
}

static size_t hot_size(size_t max_entries, size_t max_hot)
{
    size_t n = max_hot;
    if (n == 0)
        n = max_entries / 16 < 1024 ? 1024 : max_entries / 16 > 16384 ? 16384 : max_entries / 16;
    n = n > max_entries ? max_entries : n;
    return n > HOT_MAX ? HOT_MAX : n;
}

static void hot_free(cc_hot_t *h)
{
    if (!h)
        return;
    for (unsigned i = 0; i < h->nstripes; i++)
        pthread_mutex_destroy(&h->stripes[i]);
    if (h->nstripes == HOT_STRIPES)
        pthread_mutex_destroy(&h->lock);
    free(h->slots);
    free(h->free);
    free(h);
}

static cc_hot_t *hot_new(size_t cap)
{
    cc_hot_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->cap = h->nfree = cap;
    h->slots = calloc(cap, sizeof(*h->slots));
    h->free = malloc(cap * sizeof(*h->free));
    if (!h->slots || !h->free)
        goto fail;
    for (size_t i = 0; i < cap; i++)
        h->free[i] = (uint32_t)(cap - 1 - i); /* slot 0 is taken first */
    for (; h->nstripes < HOT_STRIPES; h->nstripes++)
        if (pthread_mutex_init(&h->stripes[h->nstripes], NULL) != 0)
            goto fail;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        h->nstripes--; /* so hot_free skips the lock, not a stripe */
        pthread_mutex_destroy(&h->stripes[h->nstripes]);
        goto fail;
    }
    return h;
fail:
    hot_free(h);
    return NULL;
}

/* +1 ref on r's parsed entry, or NULL when r is cold. */
static certcache_entry_t *hot_get(cc_hot_t *h, cc_rec_t *r)
{
    pthread_mutex_t *m = stripe_of(h, r);
    pthread_mutex_lock(m);
    certcache_entry_t *e = r->hot ? certcache_entry_ref(r->hot) : NULL;
    pthread_mutex_unlock(m);
    return e;
}

/* Empties slot i; returns the tier's reference on the entry it held, for
 * the caller to drop after unlocking. Under the hot lock. */
static certcache_entry_t *hot_detach(cc_hot_t *h, size_t i)
{
    cc_rec_t *r = h->slots[i];
    pthread_mutex_t *m = stripe_of(h, r);
    h->slots[i] = NULL;
    r->hot_slot = -1;
    pthread_mutex_lock(m);
    certcache_entry_t *e = r->hot;
    r->hot = NULL;
    pthread_mutex_unlock(m);
    h->bytes -= e->bytes;
    h->demotions++;
    return e;
}

/* A slot for a new entry: a free one, else CLOCK: the first record not got
 * since the hand last passed, or the one the hand is on after two turns
 * (gets set the bits without the lock, so they could keep it turning).
 * Under the hot lock. */
static size_t hot_take(cc_hot_t *h, certcache_entry_t **dropped)
{
    if (h->nfree > 0)
        return h->free[--h->nfree];
    for (size_t steps = 0;; steps++) {
        size_t i = h->hand;
        h->hand = i + 1 == h->cap ? 0 : i + 1;
        if (steps < 2 * h->cap &&
            atomic_exchange_explicit(&h->slots[i]->hot_ref, 0, memory_order_relaxed))
            continue;
        *dropped = hot_detach(h, i);
        return i;
    }
}

/* Keeps e as its record's parsed entry, unless the record has one already
 * or lost its last name meanwhile (then it must not become hot again). */
static void hot_insert(cc_hot_t *h, certcache_entry_t *e)
{
    cc_rec_t *r = e->_rec;
    certcache_entry_t *dropped = NULL;
    pthread_mutex_lock(&h->lock);
    if (r->hot_slot < 0 && atomic_load_explicit(&r->names, memory_order_acquire) > 0) {
        size_t i = hot_take(h, &dropped);
        pthread_mutex_t *m = stripe_of(h, r);
        h->slots[i] = r;
        r->hot_slot = (int32_t)i;
        atomic_store_explicit(&r->hot_ref, 0, memory_order_relaxed);
        pthread_mutex_lock(m);
        r->hot = certcache_entry_ref(e);
        pthread_mutex_unlock(m);
        h->bytes += e->bytes;
        h->promotions++;
    }
    pthread_mutex_unlock(&h->lock);
    certcache_entry_unref(dropped);
}

/* r's last name went: its entry leaves the tier (holders keep theirs).
 * Rechecked under the lock, as a put may have given it a name again. */
static void hot_drop(cc_hot_t *h, cc_rec_t *r)
{
    certcache_entry_t *dropped = NULL;
    pthread_mutex_lock(&h->lock);
    if (r->hot_slot >= 0 && atomic_load_explicit(&r->names, memory_order_acquire) == 0) {
        size_t i = (size_t)r->hot_slot;
        dropped = hot_detach(h, i);
        h->free[h->nfree++] = (uint32_t)i;
    }
    pthread_mutex_unlock(&h->lock);
    certcache_entry_unref(dropped);
}

/* A name now stores r: the first one makes r a cached certificate. */
static void name_add(certcache_t *cc, cc_rec_t *r)
{
    if (atomic_fetch_add_explicit(&r->names, 1, memory_order_acq_rel) != 0)
        return;
    atomic_fetch_add_explicit(&cc->certs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cc->cold_bytes, rec_bytes(r), memory_order_relaxed);
}

static void name_drop(certcache_t *cc, cc_rec_t *r)
{
    if (atomic_fetch_sub_explicit(&r->names, 1, memory_order_acq_rel) != 1)
        return;
    atomic_fetch_sub_explicit(&cc->certs, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&cc->cold_bytes, rec_bytes(r), memory_order_relaxed);
    hot_drop(cc->hot, r);
}

/* ---- the name table ---- */

typedef struct cc_node cc_node_t;
struct cc_node {
    cc_node_t *hnext;      /* bucket chain */
    cc_node_t *prev, *next; /* LRU, head = most recent */
    cc_rec_t *rec;         /* one reference, and one of its names */
    uint64_t hash;
    size_t len;
    char host[];
};

typedef struct cc_shard {
    _Alignas(64) pthread_mutex_t lock;
    cc_node_t **buckets;
    size_t mask, count, bytes;
    cc_node_t *head, *tail;
    uint64_t hits, misses, inserts, replaced, evictions;
} cc_shard_t;

#define CC_MAX_SHARDS 64

certcache_t *certcache_new(size_t max_entries)
{
    return certcache_new2(max_entries, 0);
}

certcache_t *certcache_new2(size_t max_entries, size_t max_hot)
{
    if (max_entries == 0)
        return NULL;
    certcache_t *cc = calloc(1, sizeof(*cc));
    if (!cc)
        return NULL;
    cc->max_entries = max_entries;
    cc->nshards = shard_count(max_entries, CC_MAX_SHARDS);
    cc->intern = intern_new();
    cc->hot = hot_new(hot_size(max_entries, max_hot));
    cc->shards = aligned_alloc(64, cc->nshards * sizeof(cc_shard_t));
    if (cc->shards)
        memset(cc->shards, 0, cc->nshards * sizeof(cc_shard_t));
    if (!cc->intern || !cc->hot || !cc->shards || util_random(cc->key, sizeof(cc->key)) != 0)
        goto fail;
    for (unsigned i = 0; i < cc->nshards; i++) {
        cc_shard_t *s = &cc->shards[i];
        s->mask = pow2_ceil(shard_share(max_entries, cc->nshards, i)) - 1;
        s->buckets = calloc(s->mask + 1, sizeof(*s->buckets));
        if (!s->buckets || pthread_mutex_init(&s->lock, NULL) != 0) {
            free(s->buckets);
            s->buckets = NULL;
            goto fail;
        }
    }
    return cc;
fail:
    certcache_free(cc);
    return NULL;
}

static void lru_unlink(cc_shard_t *s, cc_node_t *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        s->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        s->tail = n->prev;
    n->prev = n->next = NULL;
}

static void lru_push_head(cc_shard_t *s, cc_node_t *n)
{
    n->prev = NULL;
    n->next = s->head;
    if (s->head)
        s->head->prev = n;
    s->head = n;
    if (!s->tail)
        s->tail = n;
}

static cc_node_t **bucket_slot(cc_shard_t *s, uint64_t h, const char *host, size_t len)
{
    cc_node_t **pp = &s->buckets[h & s->mask];
    while (*pp && !((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->host, host, len) == 0))
        pp = &(*pp)->hnext;
    return pp;
}

/* Unlinks n from both lists; the caller frees it after unlocking. */
static void node_detach(certcache_t *cc, cc_shard_t *s, cc_node_t *n)
{
    atomic_fetch_sub_explicit(&cc->count, 1, memory_order_relaxed);
    cc_node_t **pp = bucket_slot(s, n->hash, n->host, n->len);
    *pp = n->hnext;
    lru_unlink(s, n);
    s->count--;
    s->bytes -= sizeof(*n) + n->len + 1;
}

/* Outside the shard lock: dropping the name may demote the record. */
static void node_free(certcache_t *cc, cc_node_t *n)
{
    if (!n)
        return;
    if (n->rec) {
        name_drop(cc, n->rec);
        rec_unref(n->rec);
    }
    free(n);
}

void certcache_free(certcache_t *cc)
{
    if (!cc)
        return;
    /* The tier first, so the names' records are freed as they go. */
    for (size_t i = 0; cc->hot && i < cc->hot->cap; i++)
        if (cc->hot->slots[i])
            certcache_entry_unref(hot_detach(cc->hot, i));
    for (unsigned i = 0; cc->shards && i < cc->nshards; i++) {
        cc_shard_t *s = &cc->shards[i];
        if (!s->buckets)
            break;
        for (cc_node_t *n = s->head, *next; n; n = next) {
            next = n->next;
            node_free(cc, n);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(cc->shards);
    hot_free(cc->hot);
    intern_unref(cc->intern);
    free(cc);
}

static cc_shard_t *shard_for(certcache_t *cc, uint64_t h)
{
    return &cc->shards[(h >> 40) & (cc->nshards - 1)];
}

certcache_entry_t *certcache_get(certcache_t *cc, const char *host)
{
    char key[CERTCACHE_HOST_MAX + 1];
    size_t len;
    if (norm_host(host, key, &len) != 0)
        return NULL;
    uint64_t h = siphash24(cc->key, key, len);
    cc_shard_t *s = shard_for(cc, h);
    certcache_entry_t *e = NULL;
    cc_rec_t *cold = NULL;
    pthread_mutex_lock(&s->lock);
    cc_node_t *n = *bucket_slot(s, h, key, len);
    if (n) {
        lru_unlink(s, n);
        lru_push_head(s, n);
        s->hits++;
        if (!(e = hot_get(cc->hot, n->rec)))
            cold = rec_ref(n->rec); /* kept alive through the parse */
    } else {
        s->misses++;
    }
    pthread_mutex_unlock(&s->lock);
    if (e) {
        cc_rec_t *r = e->_rec;
        if (!atomic_load_explicit(&r->hot_ref, memory_order_relaxed))
            atomic_store_explicit(&r->hot_ref, 1, memory_order_relaxed);
        return e;
    }
    if (!cold)
        return NULL;
    atomic_fetch_add_explicit(&cc->cold_hits, 1, memory_order_relaxed);
    /* Two gets may parse the same record at once: both are served, the
     * tier keeps the first. */
    if ((e = entry_parse(cold)))
        hot_insert(cc->hot, e);
    else
        atomic_fetch_add_explicit(&cc->parse_errors, 1, memory_order_relaxed);
    rec_unref(cold);
    return e;
}

/* The inserting shard held nothing else to evict: take the least recent
 * name of the next non-empty shard (one lock at a time, never nested). */
static void evict_one(certcache_t *cc, unsigned start)
{
    for (unsigned i = 0; i < cc->nshards; i++) {
        cc_shard_t *s = &cc->shards[(start + i) & (cc->nshards - 1)];
        pthread_mutex_lock(&s->lock);
        cc_node_t *victim = NULL;
        int done = atomic_load_explicit(&cc->count, memory_order_relaxed) <= cc->max_entries;
        if (!done && s->tail) {
            victim = s->tail;
            node_detach(cc, s, victim);
            s->evictions++;
            done = 1;
        }
        pthread_mutex_unlock(&s->lock);
        node_free(cc, victim);
        if (done)
            return;
    }
}

int certcache_put(certcache_t *cc, const char *host, certcache_entry_t *e)
{
    char key[CERTCACHE_HOST_MAX + 1];
    size_t len;
    /* A record's hot-tier fields belong to the cache that built it. */
    if (!e || e->_rec->intern != cc->intern || norm_host(host, key, &len) != 0)
        return -1;
    cc_node_t *fresh = malloc(sizeof(*fresh) + len + 1);
    if (!fresh)
        return -1;
    memset(fresh, 0, sizeof(*fresh));
    memcpy(fresh->host, key, len + 1);
    fresh->len = len;
    fresh->hash = siphash24(cc->key, key, len);
    fresh->rec = rec_ref(e->_rec);
    name_add(cc, fresh->rec); /* before the name is visible, so before any drop */
    cc_rec_t *old = NULL;
    cc_node_t *victim = NULL;
    int evict_elsewhere = 0;
    cc_shard_t *s = shard_for(cc, fresh->hash);

    pthread_mutex_lock(&s->lock);
    cc_node_t **pp = bucket_slot(s, fresh->hash, key, len);
    if (*pp) {
        /* Replace in place: the fresh node carries the new reference over. */
        cc_node_t *n = *pp;
        old = n->rec;
        n->rec = fresh->rec;
        fresh->rec = NULL;
        lru_unlink(s, n);
        lru_push_head(s, n);
        s->replaced++;
        victim = fresh;
    } else {
        *pp = fresh;
        lru_push_head(s, fresh);
        s->count++;
        s->inserts++;
        s->bytes += sizeof(*fresh) + len + 1;
        size_t total = atomic_fetch_add_explicit(&cc->count, 1, memory_order_relaxed) + 1;
        if (total > cc->max_entries && s->tail != fresh) {
            victim = s->tail;
            node_detach(cc, s, victim);
            s->evictions++;
        } else if (total > cc->max_entries) {
            evict_elsewhere = 1;
        }
    }
    pthread_mutex_unlock(&s->lock);

    if (old) {
        name_drop(cc, old);
        rec_unref(old);
    }
    node_free(cc, victim);
    if (evict_elsewhere)
        evict_one(cc, (unsigned)(s - cc->shards) + 1);
    /* Whoever puts an entry is about to serve it (the loader hands it to
     * the waiting handshake): parsed already, so keep it. */
    hot_insert(cc->hot, e);
    return 0;
}

int certcache_remove(certcache_t *cc, const char *host)
{
    char key[CERTCACHE_HOST_MAX + 1];
    size_t len;
    if (norm_host(host, key, &len) != 0)
        return -1;
    uint64_t h = siphash24(cc->key, key, len);
    cc_shard_t *s = shard_for(cc, h);
    pthread_mutex_lock(&s->lock);
    cc_node_t *n = *bucket_slot(s, h, key, len);
    if (n)
        node_detach(cc, s, n);
    pthread_mutex_unlock(&s->lock);
    node_free(cc, n);
    return n ? 0 : -1;
}

void *certcache_get_route(certcache_t *cc, const char *host, void *(*ref)(void *))
{
    char key[CERTCACHE_HOST_MAX + 1];
    size_t len;
    if (norm_host(host, key, &len) != 0)
        return NULL;
    uint64_t h = siphash24(cc->key, key, len);
    cc_shard_t *s = shard_for(cc, h);
    void *route = NULL;
    pthread_mutex_lock(&s->lock);
    cc_node_t *n = *bucket_slot(s, h, key, len);
    if (n && n->rec->route) {
        lru_unlink(s, n);
        lru_push_head(s, n);
        route = ref ? ref(n->rec->route) : n->rec->route;
    }
    pthread_mutex_unlock(&s->lock);
    return route;
}

void certcache_stats(certcache_t *cc, certcache_stats_t *out)
{
    cc_hot_t *h = cc->hot;
    memset(out, 0, sizeof(*out));
    out->max_entries = cc->max_entries;
    out->bytes = sizeof(*cc) + cc->nshards * sizeof(cc_shard_t) + sizeof(*h) +
                 h->cap * (sizeof(*h->slots) + sizeof(*h->free));
    for (unsigned i = 0; i < cc->nshards; i++) {
        cc_shard_t *s = &cc->shards[i];
        pthread_mutex_lock(&s->lock);
        out->count += s->count;
        out->hits += s->hits;
        out->misses += s->misses;
        out->inserts += s->inserts;
        out->replaced += s->replaced;
        out->evictions += s->evictions;
        out->bytes += s->bytes + (s->mask + 1) * sizeof(*s->buckets);
        pthread_mutex_unlock(&s->lock);
    }
    out->certs = atomic_load_explicit(&cc->certs, memory_order_relaxed);
    out->cold_bytes = atomic_load_explicit(&cc->cold_bytes, memory_order_relaxed);
    out->cold_hits = atomic_load_explicit(&cc->cold_hits, memory_order_relaxed);
    out->parse_errors = atomic_load_explicit(&cc->parse_errors, memory_order_relaxed);
    pthread_mutex_lock(&h->lock);
    out->hot = h->cap - h->nfree;
    out->max_hot = h->cap;
    out->hot_bytes = h->bytes;
    out->promotions = h->promotions;
    out->demotions = h->demotions;
    pthread_mutex_unlock(&h->lock);
    pthread_mutex_lock(&cc->intern->lock);
    out->chain_certs = cc->intern->count;
    out->bytes += sizeof(*cc->intern) + cc->intern->bytes + out->cold_bytes + out->hot_bytes;
    pthread_mutex_unlock(&cc->intern->lock);
}

/* ---- negative cache ---- */

typedef struct {
    uint64_t h1, h2;  /* two independent keyed hashes of the name */
    int64_t expires;  /* caller's clock, ms */
    int32_t next;     /* bucket chain, or free list; -1 ends */
    uint8_t outcome;
    uint8_t ref;      /* CLOCK: touched since the hand last passed */
} nc_slot_t;

typedef struct {
    _Alignas(64) pthread_mutex_t lock;
    nc_slot_t *slots;
    int32_t *buckets;
    uint32_t cap, mask, count, hand;
    int32_t free_head;
    uint64_t hits[NEGCACHE_OUTCOMES], inserts[NEGCACHE_OUTCOMES];
    uint64_t evictions, expired;
} nc_shard_t;

struct negcache {
    nc_shard_t *shards;
    unsigned nshards;
    size_t capacity;
    uint8_t k1[16], k2[16];
};

#define NC_MAX_SHARDS 16

void negcache_free(negcache_t *nc)
{
    if (!nc)
        return;
    for (unsigned i = 0; nc->shards && i < nc->nshards; i++) {
        nc_shard_t *s = &nc->shards[i];
        if (!s->slots)
            break;
        free(s->slots);
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(nc->shards);
    free(nc);
}

static int nc_shard_init(nc_shard_t *s, size_t cap)
{
    s->cap = (uint32_t)cap;
    s->mask = (uint32_t)pow2_ceil(cap) - 1;
    s->slots = calloc(cap, sizeof(*s->slots));
    s->buckets = malloc(((size_t)s->mask + 1) * sizeof(*s->buckets));
    if (!s->slots || !s->buckets || pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s->slots);
        free(s->buckets);
        s->slots = NULL;
        return -1;
    }
    for (uint32_t i = 0; i <= s->mask; i++)
        s->buckets[i] = -1;
    for (uint32_t i = 0; i < cap; i++)
        s->slots[i].next = i + 1 < cap ? (int32_t)(i + 1) : -1;
    s->free_head = 0;
    return 0;
}

negcache_t *negcache_new(size_t capacity)
{
    if (capacity == 0 || capacity > INT32_MAX)
        return NULL;
    negcache_t *nc = calloc(1, sizeof(*nc));
    if (!nc)
        return NULL;
    nc->capacity = capacity;
    nc->nshards = shard_count(capacity, NC_MAX_SHARDS);
    nc->shards = aligned_alloc(64, nc->nshards * sizeof(nc_shard_t));
    if (nc->shards)
        memset(nc->shards, 0, nc->nshards * sizeof(nc_shard_t));
    if (!nc->shards || util_random(nc->k1, sizeof(nc->k1)) != 0 ||
        util_random(nc->k2, sizeof(nc->k2)) != 0)
        goto fail;
    for (unsigned i = 0; i < nc->nshards; i++)
        if (nc_shard_init(&nc->shards[i], shard_share(capacity, nc->nshards, i)) != 0)
            goto fail;
    return nc;
fail:
    negcache_free(nc);
    return NULL;
}

typedef struct {
    uint64_t h1, h2;
} nc_key_t;

static int nc_key(negcache_t *nc, const char *host, nc_key_t *k)
{
    char buf[CERTCACHE_HOST_MAX + 1];
    size_t len;
    if (norm_host(host, buf, &len) != 0)
        return -1;
    k->h1 = siphash24(nc->k1, buf, len);
    k->h2 = siphash24(nc->k2, buf, len);
    return 0;
}

static nc_shard_t *nc_shard_for(negcache_t *nc, const nc_key_t *k)
{
    return &nc->shards[(k->h1 >> 40) & (nc->nshards - 1)];
}

/* Index of the slot holding k, or -1; *prev gets its predecessor in the
 * bucket chain (-1 when first). */
static int32_t nc_find(nc_shard_t *s, const nc_key_t *k, int32_t *prev)
{
    *prev = -1;
    for (int32_t i = s->buckets[k->h1 & s->mask]; i >= 0; i = s->slots[i].next) {
        if (s->slots[i].h1 == k->h1 && s->slots[i].h2 == k->h2)
            return i;
        *prev = i;
    }
    return -1;
}

static void nc_unlink(nc_shard_t *s, int32_t i)
{
    nc_key_t k = { s->slots[i].h1, s->slots[i].h2 };
    int32_t prev;
    if (nc_find(s, &k, &prev) != i)
        return;
    if (prev < 0)
        s->buckets[k.h1 & s->mask] = s->slots[i].next;
    else
        s->slots[prev].next = s->slots[i].next;
}

static void nc_release(nc_shard_t *s, int32_t i)
{
    nc_unlink(s, i);
    s->slots[i].next = s->free_head;
    s->free_head = i;
    s->count--;
}

/* A slot for a new name: a free one, else CLOCK: an expired slot or the
 * first not touched since the hand last passed. Ends within two sweeps. */
static int32_t nc_take(nc_shard_t *s, int64_t now_ms)
{
    if (s->free_head >= 0) {
        int32_t i = s->free_head;
        s->free_head = s->slots[i].next;
        s->count++;
        return i;
    }
    for (;;) {
        int32_t i = (int32_t)s->hand;
        nc_slot_t *slot = &s->slots[i];
        s->hand = s->hand + 1 == s->cap ? 0 : s->hand + 1;
        if (slot->expires <= now_ms) {
            s->expired++;
        } else if (slot->ref) {
            slot->ref = 0;
            continue;
        } else {
            s->evictions++;
        }
        nc_unlink(s, i);
        return i;
    }
}

int negcache_put(negcache_t *nc, const char *host, int outcome, int64_t now_ms, int64_t ttl_ms)
{
    nc_key_t k;
    if (outcome <= NEGCACHE_MISS || outcome >= NEGCACHE_OUTCOMES || ttl_ms <= 0 ||
        nc_key(nc, host, &k) != 0)
        return -1;
    nc_shard_t *s = nc_shard_for(nc, &k);
    pthread_mutex_lock(&s->lock);
    int32_t prev, i = nc_find(s, &k, &prev);
    if (i < 0) {
        i = nc_take(s, now_ms);
        s->slots[i].h1 = k.h1;
        s->slots[i].h2 = k.h2;
        s->slots[i].next = s->buckets[k.h1 & s->mask];
        s->buckets[k.h1 & s->mask] = i;
        /* Only a lookup earns a second chance, so a flood of names that are
         * written once and never asked again is what CLOCK drops first. */
        s->slots[i].ref = 0;
    }
    s->slots[i].outcome = (uint8_t)outcome;
    s->slots[i].expires = ttl_ms > INT64_MAX - now_ms ? INT64_MAX : now_ms + ttl_ms;
    s->inserts[outcome]++;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int negcache_get(negcache_t *nc, const char *host, int64_t now_ms)
{
    nc_key_t k;
    if (nc_key(nc, host, &k) != 0)
        return NEGCACHE_MISS;
    nc_shard_t *s = nc_shard_for(nc, &k);
    int outcome = NEGCACHE_MISS;
    pthread_mutex_lock(&s->lock);
    int32_t prev, i = nc_find(s, &k, &prev);
    if (i >= 0 && s->slots[i].expires <= now_ms) {
        nc_release(s, i);
        s->expired++;
    } else if (i >= 0) {
        s->slots[i].ref = 1;
        outcome = s->slots[i].outcome;
    }
    s->hits[outcome]++;
    pthread_mutex_unlock(&s->lock);
    return outcome;
}

int negcache_remove(negcache_t *nc, const char *host)
{
    nc_key_t k;
    if (nc_key(nc, host, &k) != 0)
        return -1;
    nc_shard_t *s = nc_shard_for(nc, &k);
    pthread_mutex_lock(&s->lock);
    int32_t prev, i = nc_find(s, &k, &prev);
    if (i >= 0)
        nc_release(s, i);
    pthread_mutex_unlock(&s->lock);
    return i >= 0 ? 0 : -1;
}

void negcache_stats(negcache_t *nc, negcache_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->capacity = nc->capacity;
    for (unsigned i = 0; i < nc->nshards; i++) {
        nc_shard_t *s = &nc->shards[i];
        pthread_mutex_lock(&s->lock);
        out->count += s->count;
        for (int o = 0; o < NEGCACHE_OUTCOMES; o++) {
            out->hits[o] += s->hits[o];
            out->inserts[o] += s->inserts[o];
        }
        out->evictions += s->evictions;
        out->expired += s->expired;
        pthread_mutex_unlock(&s->lock);
    }
}

const char *negcache_outcome_name(int outcome)
{
    static const char *const names[NEGCACHE_OUTCOMES] = {
        "miss", "unknown", "not_verified", "issue_failed", "blocked", "store_error",
    };
    return outcome >= 0 && outcome < NEGCACHE_OUTCOMES ? names[outcome] : "invalid";
}
