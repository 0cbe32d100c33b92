/* certcache: the certificate cache shared by every edge worker thread
 * (certcache_*) and a bounded negative cache (negcache_*). Every stored name
 * keeps a compact cold record (leaf DER, private key bytes, shared chain);
 * a bounded hot tier keeps parsed entries. certcache_get returns a
 * refcounted entry (drop it with certcache_entry_unref) that stays valid
 * after demotion or eviction; the record owns route and frees it last. */
#ifndef HEE_EDGE_CERTCACHE_H
#define HEE_EDGE_CERTCACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Longest key: a DNS name without its trailing dot. */
#define CERTCACHE_HOST_MAX 253
/* Most chain certificates one entry may carry. */
#define CERTCACHE_CHAIN_MAX 8

typedef struct certcache certcache_t;
typedef struct cc_rec cc_rec_t;

/* Ready for SSL_use_cert_and_key(ssl, e->leaf, e->key, e->chain, 1), which
 * takes its own references: the entry may be unref'd right after the call.
 * Fields without '_' are public and never change after construction. */
typedef struct certcache_entry {
    X509 *leaf;
    EVP_PKEY *key;
    STACK_OF(X509) *chain; /* intermediates, leaf's issuer first; never NULL */
    time_t not_after;      /* the leaf's notAfter */
    void *route;           /* the edge's routing data for this certificate */
    size_t bytes;          /* approximate heap bytes of the parsed objects */
    atomic_uint _refs;
    cc_rec_t *_rec;        /* the cold record it was parsed from (1 ref) */
} certcache_entry_t;

typedef struct {
    size_t count, max_entries;
    uint64_t hits, misses, inserts, replaced, evictions;
    size_t bytes;          /* approximate: cold + hot + chain + the cache's own */
    size_t chain_certs;    /* distinct interned chain certificates */
    size_t certs;          /* distinct certificates stored (cold records) */
    size_t cold_bytes;     /* their records, names not included */
    size_t hot, max_hot;   /* parsed entries held by the hot tier */
    size_t hot_bytes;
    uint64_t cold_hits;    /* gets that had to parse a cold record */
    uint64_t promotions;   /* entries taken into the hot tier (gets and puts) */
    uint64_t demotions;    /* entries pushed out of the hot tier */
    uint64_t parse_errors; /* cold records that failed to parse (get -> NULL) */
} certcache_stats_t;

/* max_entries > 0 bounds the stored names; beyond it the least recently
 * used name is dropped. The table is sharded, so the order is exact per
 * shard and approximate across shards. NULL on allocation failure.
 * Same as certcache_new2(max_entries, 0). */
certcache_t *certcache_new(size_t max_entries);
/* max_hot bounds the parsed entries kept (CLOCK, an LRU approximation);
 * 0 picks the default, max_entries/16 within [1024, 16384], and it is never
 * more than max_entries. A hot entry costs ~7 KB, a cold record ~0.5 KB
 * for a P-256 leaf; a get of a cold name parses it (~0.1 ms) and
 * promotes it. */
certcache_t *certcache_new2(size_t max_entries, size_t max_hot);
/* Drops the cache's references; entries callers still hold stay valid. */
void certcache_free(certcache_t *cc);

/* Builds an entry from PEM: chain_pem holds the leaf first, then its chain;
 * key_pem the unencrypted private key, which must match the leaf. On
 * success the entry (1 reference) owns route. On failure: NULL, *err (if
 * err) is a static reason without secret material, route stays the
 * caller's, and the thread's OpenSSL error queue is left empty. */
certcache_entry_t *certcache_entry_from_pem(certcache_t *cc, const char *chain_pem,
                                            size_t chain_len, const char *key_pem,
                                            size_t key_len, void *route,
                                            void (*route_free)(void *), const char **err);
/* Same from parsed objects (e.g. a tls-alpn-01 challenge certificate). It
 * takes its own references: the caller still owns and frees leaf, key and
 * chain (which may be NULL). Ownership of route as above. */
certcache_entry_t *certcache_entry_new(certcache_t *cc, X509 *leaf, EVP_PKEY *key,
                                       STACK_OF(X509) *chain, void *route,
                                       void (*route_free)(void *), const char **err);
certcache_entry_t *certcache_entry_ref(certcache_entry_t *e);
void certcache_entry_unref(certcache_entry_t *e); /* NULL-safe */

/* host is matched case-insensitively (keys are stored lowercase), at most
 * CERTCACHE_HOST_MAX bytes, no trailing dot. get returns +1 ref on host's
 * entry, parsing it if its record is cold (a different entry from the one
 * put then, same route); NULL when host is not stored, or when its record
 * fails to parse (counted in parse_errors). */
certcache_entry_t *certcache_get(certcache_t *cc, const char *host);
/* Stores (or replaces) host -> e's record, and keeps e in the hot tier;
 * the caller keeps its reference. One entry may be stored under many
 * names. 0, or -1 for a bad host, an entry built by another cache, or
 * allocation failure. */
int certcache_put(certcache_t *cc, const char *host, certcache_entry_t *e);
/* 0 when host was stored, -1 when it was not. */
int certcache_remove(certcache_t *cc, const char *host);
/* host's route, without parsing a cold record or touching the hot tier (a
 * request that needs only routing data). ref (e.g. a route_ref wrapper),
 * when given, runs under the cache's lock and its result is returned: it
 * must be quick and must not call the cache. NULL when host is not stored
 * or has no route. Counts in neither hits nor misses. */
void *certcache_get_route(certcache_t *cc, const char *host, void *(*ref)(void *));
void certcache_stats(certcache_t *cc, certcache_stats_t *out);

/* ---- negative cache ----
 * host -> why it has no certificate, until an expiry. Fixed capacity
 * allocated up front: a flood of distinct names evicts older ones (CLOCK)
 * and never grows memory. Names are kept as two independent keyed 64-bit
 * hashes, not as text, so a slot is 32 bytes whatever the name length. */
typedef struct negcache negcache_t;

enum negcache_outcome {
    NEGCACHE_MISS = 0,      /* not cached (or expired): go and look it up */
    NEGCACHE_UNKNOWN,       /* no such hostname registered */
    NEGCACHE_NOT_VERIFIED,  /* registered, DNS not (yet) pointing at us */
    NEGCACHE_ISSUE_FAILED,  /* on-demand issuance failed recently */
    NEGCACHE_BLOCKED,       /* refused by policy */
    NEGCACHE_STORE_ERROR,   /* lookup failed; short TTL advised */
    NEGCACHE_OUTCOMES
};

typedef struct {
    size_t count, capacity;
    uint64_t hits[NEGCACHE_OUTCOMES]; /* hits[NEGCACHE_MISS] = misses */
    uint64_t inserts[NEGCACHE_OUTCOMES];
    uint64_t evictions;               /* live entries pushed out by new ones */
    uint64_t expired;                 /* entries found or reused past expiry */
} negcache_stats_t;

negcache_t *negcache_new(size_t capacity);
void negcache_free(negcache_t *nc);
/* Records host -> outcome (1 .. NEGCACHE_OUTCOMES-1) until now_ms + ttl_ms.
 * Times are the caller's clock (util_mono_ms), so tests can fake it.
 * 0, or -1 for a bad outcome, ttl or host. */
int negcache_put(negcache_t *nc, const char *host, int outcome, int64_t now_ms, int64_t ttl_ms);
/* The unexpired outcome for host, or NEGCACHE_MISS. */
int negcache_get(negcache_t *nc, const char *host, int64_t now_ms);
/* Forgets host (e.g. it was just registered). 0 when it was cached. */
int negcache_remove(negcache_t *nc, const char *host);
void negcache_stats(negcache_t *nc, negcache_stats_t *out);
const char *negcache_outcome_name(int outcome);

#endif
