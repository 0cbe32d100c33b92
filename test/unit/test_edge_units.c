/* Tests the edge's small building blocks: iobuf (pool, reserve, growth,
 * release), strmap (put/get/del/grow/evict), cidr (parse, match, mapped
 * IPv4), upstream_addr_parse / _resolve (URL forms and refusals) and the
 * shared passive-health board (one mark per origin, counted once). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge/cidr.h"
#include "edge/health.h"
#include "edge/iobuf.h"
#include "edge/strmap.h"
#include "edge/upstream.h"

/* ---- iobuf ---- */

static void iobuf_pool_reuses_blocks(void **st)
{
    iobuf_pool_t p;
    assert_int_equal(iobuf_pool_init(&p, 2), 0);
    iobuf_t b = { 0 };
    assert_true(iobuf_reserve(&b, &p, 10, IOBUF_BLOCK) >= 10);
    char *blk = b.data;
    assert_int_equal(iobuf_append(&b, &p, "hello", 5, IOBUF_BLOCK), 0);
    iobuf_release(&b, &p); /* live bytes: kept */
    assert_non_null(b.data);
    iobuf_consume(&b, 5);
    iobuf_release(&b, &p);
    assert_null(b.data);
    assert_int_equal(p.n, 1);
    assert_true(iobuf_reserve(&b, &p, 1, IOBUF_BLOCK) > 0);
    assert_ptr_equal(b.data, blk); /* same block back from the pool */
    iobuf_drop(&b, &p);
    iobuf_pool_fini(&p);
}

static void iobuf_compacts_then_grows_to_cap(void **st)
{
    iobuf_pool_t p;
    assert_int_equal(iobuf_pool_init(&p, 4), 0);
    iobuf_t b = { 0 };
    char junk[IOBUF_BLOCK];
    memset(junk, 'x', sizeof(junk));
    assert_int_equal(iobuf_append(&b, &p, junk, IOBUF_BLOCK - 10, IOBUF_BLOCK), 0);
    iobuf_consume(&b, IOBUF_BLOCK - 20); /* 10 live bytes at the far end */
    assert_true(iobuf_reserve(&b, &p, 1000, IOBUF_BLOCK) >= 1000);
    assert_int_equal(b.off, 0); /* moved to the front, no growth */
    assert_int_equal(b.cap, IOBUF_BLOCK);
    /* full block, cap allows 3 blocks: grows */
    assert_int_equal(iobuf_append(&b, &p, junk, IOBUF_BLOCK - 10, 3 * IOBUF_BLOCK), 0);
    assert_int_equal(iobuf_append(&b, &p, "more", 4, 3 * IOBUF_BLOCK), 0);
    assert_true(b.cap > IOBUF_BLOCK && b.cap <= 3 * IOBUF_BLOCK);
    assert_int_equal(b.len, IOBUF_BLOCK + 4);
    /* at the cap: no room reported, no growth past it */
    assert_int_equal(iobuf_append(&b, &p, junk, sizeof(junk), b.cap), -1);
    iobuf_drop(&b, &p); /* a grown block is freed, not pooled */
    assert_int_equal(p.n, 1);
    iobuf_pool_fini(&p);
}

/* ---- strmap ---- */

static void strmap_basics_and_growth(void **st)
{
    strmap_t *m = strmap_new();
    assert_non_null(m);
    int err = 0;
    char key[32];
    for (intptr_t i = 1; i <= 1000; i++) {
        int n = snprintf(key, sizeof(key), "host%ld.test", (long)i);
        assert_null(strmap_put(m, key, (size_t)n, (void *)i, &err));
        assert_int_equal(err, 0);
    }
    assert_int_equal(strmap_count(m), 1000);
    for (intptr_t i = 1; i <= 1000; i++) {
        int n = snprintf(key, sizeof(key), "host%ld.test", (long)i);
        assert_int_equal((intptr_t)strmap_get(m, key, (size_t)n), i);
    }
    assert_int_equal((intptr_t)strmap_put(m, "host7.test", 10, (void *)77, &err), 7);
    assert_int_equal((intptr_t)strmap_get(m, "host7.test", 10), 77);
    assert_null(strmap_get(m, "host7.tes", 9)); /* prefix is not a match */
    assert_int_equal((intptr_t)strmap_del(m, "host7.test", 10), 77);
    assert_null(strmap_get(m, "host7.test", 10));
    assert_int_equal(strmap_count(m), 999);
    assert_non_null(strmap_evict_one(m, 12345));
    assert_int_equal(strmap_count(m), 998);
    strmap_free(m, NULL);
}

/* ---- cidr ---- */

static struct sockaddr_storage sa(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    return ss;
}

static void cidr_parses_and_matches(void **st)
{
    edge_cidr_t *l = NULL;
    int n = 0, bad = 0;
    assert_int_equal(cidr_list_parse("10.0.0.0/8, 192.168.1.7 ::1 fd00::/8 bogus 1.2.3.4/33 ,", &l, &n, &bad), 0);
    assert_int_equal(n, 4);
    assert_int_equal(bad, 2);
    struct sockaddr_storage a;
    a = sa("10.200.3.4");
    assert_true(cidr_match(l, n, &a));
    a = sa("11.0.0.1");
    assert_false(cidr_match(l, n, &a));
    a = sa("192.168.1.7");
    assert_true(cidr_match(l, n, &a));
    a = sa("192.168.1.8");
    assert_false(cidr_match(l, n, &a));
    a = sa("::1");
    assert_true(cidr_match(l, n, &a));
    a = sa("fdab::1");
    assert_true(cidr_match(l, n, &a));
    a = sa("fe80::1");
    assert_false(cidr_match(l, n, &a));
    a = sa("::ffff:10.1.1.1"); /* v4-mapped peer on a dual-stack socket */
    assert_true(cidr_match(l, n, &a));
    free(l);
    edge_cidr_t one;
    assert_int_equal(cidr_parse("172.16.0.0/12", 13, &one), 0);
    a = sa("172.31.255.255");
    assert_true(cidr_match(&one, 1, &a));
    a = sa("172.32.0.0");
    assert_false(cidr_match(&one, 1, &a));
    assert_int_equal(cidr_parse("1.2.3.4/", 8, &one), -1);
    assert_int_equal(cidr_list_parse("", &l, &n, &bad), 0);
    assert_int_equal(n, 0);
    free(l);
}

/* ---- upstream addresses ---- */

static void upstream_urls(void **st)
{
    upstream_addr_t a;
    const char *why = NULL;
    assert_int_equal(upstream_addr_parse("http://127.0.0.1:8080", &a, &why), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 8080);
    assert_false(a.tls);
    assert_string_equal(a.key, "http://127.0.0.1:8080");
    assert_int_equal(a.key_len, strlen(a.key)); /* the worker's pool table key */
    assert_int_equal(upstream_addr_parse("https://app.internal/base/path?x=1", &a, &why), 0);
    assert_true(a.tls);
    assert_int_equal(a.port, 443);
    assert_string_equal(a.key, "https://app.internal:443");
    assert_int_equal(a.key_len, strlen(a.key));
    assert_int_equal(upstream_addr_parse("http://[::1]:9000/", &a, &why), 0);
    assert_string_equal(a.host, "::1");
    assert_string_equal(a.key, "http://[::1]:9000");
    assert_int_equal(upstream_addr_parse("http://example.test", &a, &why), 0);
    assert_int_equal(a.port, 80);
    static const char *const bad[] = {
        "ftp://x", "http://", "http://:80", "http://h:0", "http://h:65536", "http://h:12x",
        "http://user@h:80", "http://[::1", "127.0.0.1:80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why = NULL;
        assert_int_equal(upstream_addr_parse(bad[i], &a, &why), -1);
        assert_non_null(why);
    }
    assert_int_equal(upstream_addr_parse("http://127.0.0.1:81", &a, &why), 0);
    assert_int_equal(a.resolved_ms, 0);
    assert_int_equal(upstream_addr_resolve(&a), 0);
    assert_true(a.resolved);
    assert_true(a.resolved_ms > 0); /* newer answers move a worker's target (upstream_get) */
    assert_int_equal(a.n_addrs, 1);
    assert_int_equal(a.addrs[0].sa.sa_family, AF_INET);
    assert_int_equal(upstream_addr_len(&a, 0), sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(a.addrs[0].in4.sin_port), 81);
    assert_int_equal(upstream_addr_parse("http://[::1]:82", &a, &why), 0);
    assert_int_equal(upstream_addr_resolve(&a), 0);
    assert_int_equal(a.n_addrs, 1);
    assert_int_equal(a.addrs[0].sa.sa_family, AF_INET6);
    assert_int_equal(upstream_addr_len(&a, 0), sizeof(struct sockaddr_in6));
}

static struct sockaddr_storage sa_port(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss = sa(ip);
    if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    return ss;
}

/* The list resolve builds: getaddrinfo's order, duplicates dropped, at
 * most UPSTREAM_ADDRS_MAX, only IPv4 / IPv6. */
static void upstream_address_list(void **state)
{
    (void)state;
    upstream_addr_t a;
    const char *why = NULL;
    assert_int_equal(upstream_addr_parse("http://both.test:8080", &a, &why), 0);
    assert_int_equal(a.n_addrs, 0);
    struct sockaddr_storage v6 = sa_port("::1", 8080), v4 = sa_port("127.0.0.1", 8080);
    struct sockaddr_storage v4b = sa_port("127.0.0.1", 8081);
    assert_int_equal(upstream_addr_add(&a, (struct sockaddr *)&v6, sizeof(struct sockaddr_in6)), 1);
    assert_int_equal(upstream_addr_add(&a, (struct sockaddr *)&v4, sizeof(struct sockaddr_in)), 1);
    assert_int_equal(upstream_addr_add(&a, (struct sockaddr *)&v6, sizeof(struct sockaddr_in6)), 0);
    assert_int_equal(upstream_addr_add(&a, (struct sockaddr *)&v4, sizeof(v4)), 0); /* any len >= the family's */
    assert_int_equal(upstream_addr_add(&a, (struct sockaddr *)&v4b, sizeof(struct sockaddr_in)), 1);
    assert_int_equal(upstream_addr_add(&a, (struct sockaddr *)&v4, 4), 0);  /* too short */
    struct sockaddr_storage un;
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    assert_int_equal(upstream_addr_add(&a, (struct sockaddr *)&un, sizeof(un)), 0);
    assert_int_equal(a.n_addrs, 3);
    assert_int_equal(a.addrs[0].sa.sa_family, AF_INET6);
    assert_int_equal(a.addrs[1].sa.sa_family, AF_INET);
    assert_int_equal(ntohs(a.addrs[1].in4.sin_port), 8080);
    assert_int_equal(ntohs(a.addrs[2].in4.sin_port), 8081);
    for (uint16_t p = 9000; a.n_addrs < UPSTREAM_ADDRS_MAX; p++) {
        struct sockaddr_storage x = sa_port("10.0.0.1", p);
        assert_int_equal(upstream_addr_add(&a, (struct sockaddr *)&x, sizeof(struct sockaddr_in)), 1);
    }
    struct sockaddr_storage over = sa_port("10.0.0.2", 1);
    assert_int_equal(upstream_addr_add(&a, (struct sockaddr *)&over, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(a.n_addrs, UPSTREAM_ADDRS_MAX);
    /* Slots are sockaddr_in6-sized, not sockaddr_storage-sized. */
    assert_true(sizeof(a.addrs[0]) == sizeof(struct sockaddr_in6));
}

/* ---- health ---- */

static void health_marks_are_shared_and_counted_once(void **st)
{
    (void)st;
    health_board_t *b = health_board_new();
    assert_non_null(b);
    /* Two workers' targets for one origin share its entry; another origin
     * has its own. */
    health_entry_t *w0 = health_get(b, "http://a:80", 11), *w1 = health_get(b, "http://a:80", 11);
    health_entry_t *other = health_get(b, "http://b:80", 11);
    assert_ptr_equal(w0, w1);
    assert_ptr_not_equal(w0, other);
    assert_false(health_marked(w0));
    assert_int_equal(health_mark(w0, 1000, 0), 0); /* fail_timeout 0: never marked */
    assert_false(health_down(w1, 1000));
    /* The first mark is the transition; the other worker's, while it
     * holds, is not (one log line, one count). */
    assert_int_equal(health_mark(w0, 1000, 500), 1);
    assert_true(health_down(w1, 1499));
    assert_int_equal(health_mark(w1, 1200, 500), 0);
    assert_true(health_down(w0, 1699)); /* extended by the second */
    assert_false(health_down(w0, 1700));
    assert_false(health_down(other, 1200));
    /* Expired: marking again is a new transition. */
    assert_int_equal(health_mark(w1, 1800, 500), 1);
    /* A success on either worker clears it for both. */
    health_clear(w0);
    assert_false(health_marked(w1));
    assert_false(health_down(w1, 1900));
    /* The entry outlives one put; after the last, a get starts afresh. */
    assert_int_equal(health_mark(w0, 2000, 500), 1);
    health_put(w0);
    assert_true(health_down(w1, 2100));
    health_put(w1);
    health_entry_t *again = health_get(b, "http://a:80", 11);
    assert_non_null(again);
    assert_false(health_marked(again));
    health_put(again);
    health_put(other);
    health_board_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(iobuf_pool_reuses_blocks),
        cmocka_unit_test(iobuf_compacts_then_grows_to_cap),
        cmocka_unit_test(strmap_basics_and_growth),
        cmocka_unit_test(cidr_parses_and_matches),
        cmocka_unit_test(upstream_urls),
        cmocka_unit_test(upstream_address_list),
        cmocka_unit_test(health_marks_are_shared_and_counted_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
