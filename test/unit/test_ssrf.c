/* Tests control/ssrf.c: address classification, the allow-list, and the curl
 * open-socket guard against a real listener on 127.0.0.1 (the only address
 * this test ever connects to). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/ssrf.h"

/* Classifies a textual address; the verdict goes to *v. */
static void check_text(const ssrf_policy_t *pol, const char *text, ssrf_verdict_t *v)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (strchr(text, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(443);
        assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(443);
        assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
        len = sizeof(*s4);
    }
    ssrf_check(pol, (struct sockaddr *)&ss, len, v);
}

struct expect {
    const char *addr;
    ssrf_class_t cls;
    ssrf_via_t via;
};

static void expect_all(const ssrf_policy_t *pol, const struct expect *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ssrf_verdict_t v;
        check_text(pol, e[i].addr, &v);
        if (v.cls != e[i].cls || v.via != e[i].via)
            fail_msg("%s: got %s/%s, want %s/%s", e[i].addr, ssrf_class_name(v.cls),
                     ssrf_via_name(v.via), ssrf_class_name(e[i].cls), ssrf_via_name(e[i].via));
        assert_int_equal(v.allowed, e[i].cls == SSRF_PUBLIC);
        assert_int_equal(v.allowlisted, 0);
    }
}

/* The list Svix publishes as must-refuse. */
static void test_svix_list(void **state)
{
    static const struct expect e[] = {
        { "10.254.0.0", SSRF_PRIVATE, SSRF_VIA_NONE },
        { "192.168.10.65", SSRF_PRIVATE, SSRF_VIA_NONE },
        { "172.16.10.65", SSRF_PRIVATE, SSRF_VIA_NONE },
        { "0.0.0.0", SSRF_UNSPECIFIED, SSRF_VIA_NONE },
        { "127.0.0.1", SSRF_LOOPBACK, SSRF_VIA_NONE },
        { "169.254.45.1", SSRF_LINK_LOCAL, SSRF_VIA_NONE },
        { "100.100.0.0", SSRF_CGNAT, SSRF_VIA_NONE },
        { "198.18.0.0", SSRF_BENCHMARKING, SSRF_VIA_NONE },
        { "::1", SSRF_LOOPBACK, SSRF_VIA_NONE },
        { "::ffff:127.0.0.1", SSRF_LOOPBACK, SSRF_VIA_MAPPED },
    };
    expect_all(NULL, e, sizeof(e) / sizeof(e[0]));
}

static void test_v4_ranges(void **state)
{
    static const struct expect e[] = {
        { "8.8.8.8", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "1.1.1.1", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "0.1.2.3", SSRF_THIS_NETWORK, SSRF_VIA_NONE },
        { "9.255.255.255", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "10.0.0.1", SSRF_PRIVATE, SSRF_VIA_NONE },
        { "11.0.0.0", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "100.63.255.255", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "100.64.0.0", SSRF_CGNAT, SSRF_VIA_NONE },
        { "100.127.255.255", SSRF_CGNAT, SSRF_VIA_NONE },
        { "100.128.0.0", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "127.255.255.254", SSRF_LOOPBACK, SSRF_VIA_NONE },
        { "169.254.169.254", SSRF_LINK_LOCAL, SSRF_VIA_NONE },   /* cloud metadata */
        { "172.15.255.255", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "172.31.255.255", SSRF_PRIVATE, SSRF_VIA_NONE },
        { "172.32.0.0", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "192.0.0.8", SSRF_RESERVED, SSRF_VIA_NONE },
        { "192.0.2.1", SSRF_DOCUMENTATION, SSRF_VIA_NONE },
        { "192.0.3.1", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "192.88.99.1", SSRF_RESERVED, SSRF_VIA_NONE },
        { "192.167.255.255", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "192.168.0.1", SSRF_PRIVATE, SSRF_VIA_NONE },
        { "198.17.255.255", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "198.19.255.255", SSRF_BENCHMARKING, SSRF_VIA_NONE },
        { "198.20.0.0", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "198.51.100.7", SSRF_DOCUMENTATION, SSRF_VIA_NONE },
        { "203.0.113.9", SSRF_DOCUMENTATION, SSRF_VIA_NONE },
        { "223.255.255.255", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "224.0.0.1", SSRF_MULTICAST, SSRF_VIA_NONE },
        { "239.255.255.250", SSRF_MULTICAST, SSRF_VIA_NONE },
        { "240.0.0.1", SSRF_RESERVED, SSRF_VIA_NONE },
        { "255.255.255.254", SSRF_RESERVED, SSRF_VIA_NONE },
        { "255.255.255.255", SSRF_BROADCAST, SSRF_VIA_NONE },
    };
    expect_all(NULL, e, sizeof(e) / sizeof(e[0]));
}

static void test_v6_ranges(void **state)
{
    static const struct expect e[] = {
        { "2606:4700::1111", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "2a00:1450:4001:80b::200e", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "::", SSRF_UNSPECIFIED, SSRF_VIA_NONE },
        { "::ffff:10.0.0.1", SSRF_PRIVATE, SSRF_VIA_MAPPED },
        { "::ffff:169.254.169.254", SSRF_LINK_LOCAL, SSRF_VIA_MAPPED },
        { "::ffff:0.0.0.0", SSRF_UNSPECIFIED, SSRF_VIA_MAPPED },
        { "::ffff:8.8.8.8", SSRF_PUBLIC, SSRF_VIA_MAPPED },
        { "::127.0.0.1", SSRF_LOOPBACK, SSRF_VIA_COMPAT },
        { "::8.8.8.8", SSRF_RESERVED, SSRF_VIA_COMPAT },
        { "64:ff9b::7f00:1", SSRF_LOOPBACK, SSRF_VIA_NAT64 },
        { "64:ff9b::192.168.1.1", SSRF_PRIVATE, SSRF_VIA_NAT64 },
        { "64:ff9b::8.8.8.8", SSRF_PUBLIC, SSRF_VIA_NAT64 },
        { "64:ff9b:1::1", SSRF_PRIVATE, SSRF_VIA_NONE },
        { "2002:c0a8:0101::1", SSRF_PRIVATE, SSRF_VIA_6TO4 },
        { "2002:7f00:1::", SSRF_LOOPBACK, SSRF_VIA_6TO4 },
        { "2002:0808:0808::1", SSRF_PUBLIC, SSRF_VIA_6TO4 },
        { "2001:0:4136:e378:8000:63bf:3fff:fdd2", SSRF_TEREDO, SSRF_VIA_NONE },
        { "2001:2::1", SSRF_BENCHMARKING, SSRF_VIA_NONE },
        { "2001:10::1", SSRF_RESERVED, SSRF_VIA_NONE },
        { "2001:db8::1", SSRF_DOCUMENTATION, SSRF_VIA_NONE },
        { "2001:db9::1", SSRF_PUBLIC, SSRF_VIA_NONE },
        { "3fff:fff::1", SSRF_DOCUMENTATION, SSRF_VIA_NONE },
        { "fc00::1", SSRF_PRIVATE, SSRF_VIA_NONE },
        { "fd12:3456::1", SSRF_PRIVATE, SSRF_VIA_NONE },
        { "fe80::1", SSRF_LINK_LOCAL, SSRF_VIA_NONE },
        { "febf::1", SSRF_LINK_LOCAL, SSRF_VIA_NONE },
        { "fec0::1", SSRF_PRIVATE, SSRF_VIA_NONE },
        { "ff02::1", SSRF_MULTICAST, SSRF_VIA_NONE },
        { "100::1", SSRF_RESERVED, SSRF_VIA_NONE },
        { "4000::1", SSRF_RESERVED, SSRF_VIA_NONE },
    };
    expect_all(NULL, e, sizeof(e) / sizeof(e[0]));
}

static void test_allow_list(void **state)
{
    char err[160] = "";
    ssrf_policy_t *pol = ssrf_policy_new(" 127.0.0.0/8,10.1.0.0/16  fd00::/8,,192.168.1.7", err,
                                         sizeof(err));
    assert_non_null(pol);
    static const struct {
        const char *addr;
        int allowed, listed;
    } cases[] = {
        { "127.0.0.1", 1, 1 },   { "127.9.9.9", 1, 1 },     { "::ffff:127.0.0.1", 1, 1 },
        { "10.1.200.3", 1, 1 },  { "10.2.0.1", 0, 0 },      { "fd00::5", 1, 1 },
        { "fc00::1", 0, 0 },     { "::1", 0, 0 },           { "192.168.1.7", 1, 1 },
        { "192.168.1.8", 0, 0 }, { "64:ff9b::7f00:1", 0, 0 }, { "8.8.8.8", 1, 0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ssrf_verdict_t v;
        check_text(pol, cases[i].addr, &v);
        if (v.allowed != cases[i].allowed || v.allowlisted != cases[i].listed)
            fail_msg("%s: allowed=%d listed=%d", cases[i].addr, v.allowed, v.allowlisted);
    }
    ssrf_policy_free(pol);

    /* Host bits are ignored; an empty list is no list. */
    pol = ssrf_policy_new("10.9.8.7/8", err, sizeof(err));
    assert_non_null(pol);
    ssrf_verdict_t v;
    check_text(pol, "10.0.0.1", &v);
    assert_true(v.allowed);
    ssrf_policy_free(pol);
    pol = ssrf_policy_new(NULL, err, sizeof(err));
    assert_non_null(pol);
    ssrf_policy_free(pol);
    pol = ssrf_policy_new(" , ", err, sizeof(err));
    assert_non_null(pol);
    check_text(pol, "127.0.0.1", &v);
    assert_false(v.allowed);
    ssrf_policy_free(pol);
    ssrf_policy_free(NULL);
}

static void test_allow_list_errors(void **state)
{
    static const char *const bad[] = {
        "10.0.0.0/33", "foo", "::1/129", "1.2.3.4/", "/8", "10.0.0.0/8x", "10.0.0.0/-1",
        "127.0.0.1, 300.1.1.1", "1.2.3.4/0008",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[160] = "";
        ssrf_policy_t *pol = ssrf_policy_new(bad[i], err, sizeof(err));
        if (pol)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(strstr(err, "allow-list"));
    }
    char err[160];
    assert_null(ssrf_policy_new("127.0.0.1 nonsense", err, sizeof(err)));
    assert_non_null(strstr(err, "\"nonsense\""));
}

static void test_bad_family(void **state)
{
    struct sockaddr_un un;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    ssrf_verdict_t v;
    ssrf_check(NULL, (struct sockaddr *)&un, sizeof(un), &v);
    assert_false(v.allowed);
    assert_int_equal(v.cls, SSRF_BAD_FAMILY);
    struct sockaddr_in s4;
    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    s4.sin_addr.s_addr = htonl(0x08080808);
    ssrf_check(NULL, (struct sockaddr *)&s4, 4, &v);   /* truncated */
    assert_false(v.allowed);
    ssrf_check(NULL, NULL, 0, &v);
    assert_false(v.allowed);
    char buf[64];
    v.cls = SSRF_LOOPBACK;
    v.via = SSRF_VIA_MAPPED;
    assert_string_equal(ssrf_describe(&v, buf, sizeof(buf)), "loopback via ipv4-mapped");
}

/* A tiny HTTP server on 127.0.0.1 that answers 200 to each connection. */
struct listener {
    int fd;
    unsigned short port;
    atomic_int stop;
    atomic_int served;
    pthread_t thread;
};

static void *listener_main(void *arg)
{
    struct listener *l = arg;
    while (!atomic_load(&l->stop)) {
        struct pollfd pfd = { .fd = l->fd, .events = POLLIN };
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int c = accept(l->fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[2048];
        size_t got = 0;
        while (got < sizeof(buf) - 1) {
            ssize_t n = read(c, buf + got, sizeof(buf) - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            buf[got] = '\0';
            if (strstr(buf, "\r\n\r\n"))
                break;
        }
        static const char resp[] =
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
        /* Counted before the answer leaves: a client holding its response
         * must already see it in l->served. */
        atomic_fetch_add(&l->served, 1);
        if (write(c, resp, sizeof(resp) - 1) <= 0)
            atomic_fetch_sub(&l->served, 1);
        close(c);
    }
    return NULL;
}

static int listener_start(struct listener *l)
{
    memset(l, 0, sizeof(*l));
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (l->fd < 0)
        return -1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l->fd, 8) != 0 ||
        getsockname(l->fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    l->port = ntohs(sa.sin_port);
    return pthread_create(&l->thread, NULL, listener_main, l) == 0 ? 0 : -1;
}

static void listener_stop(struct listener *l)
{
    atomic_store(&l->stop, 1);
    pthread_join(l->thread, NULL);
    close(l->fd);
}

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

/* One GET through the guard; returns curl's result, fills ctx and *status. */
static CURLcode fetch(const char *url, const ssrf_policy_t *pol, ssrf_curl_ctx_t *ctx, long *status)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->policy = pol;
    *status = 0;
    CURL *e = curl_easy_init();
    assert_non_null(e);
    assert_int_equal(ssrf_curl_attach(e, ctx), 0);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(e);
    return rc;
}

static void test_curl_guard(void **state)
{
    struct listener l;
    assert_int_equal(listener_start(&l), 0);
    char url_ip[64], url_name[64], want[96];
    snprintf(url_ip, sizeof(url_ip), "http://127.0.0.1:%u", l.port);
    snprintf(url_name, sizeof(url_name), "http://localhost:%u/", l.port);
    ssrf_curl_ctx_t ctx;
    long status;

    /* No allow-list: refused before any packet leaves, with the reason kept. */
    assert_int_equal(fetch(url_ip, NULL, &ctx, &status), CURLE_COULDNT_CONNECT);
    assert_int_equal(ctx.refused, 1);
    snprintf(want, sizeof(want), "refused 127.0.0.1 port %u: loopback", l.port);
    assert_string_equal(ctx.reason, want);

    /* A name resolving to loopback (every address it has) is refused too. */
    assert_int_equal(fetch(url_name, NULL, &ctx, &status), CURLE_COULDNT_CONNECT);
    assert_true(ctx.refused >= 1);
    assert_non_null(strstr(ctx.reason, ": loopback"));
    assert_int_equal(atomic_load(&l.served), 0);

    /* Allow-listed: both reach the listener. */
    char err[128];
    ssrf_policy_t *pol = ssrf_policy_new("127.0.0.0/8", err, sizeof(err));
    assert_non_null(pol);
    assert_int_equal(fetch(url_ip, pol, &ctx, &status), CURLE_OK);
    assert_int_equal(status, 200);
    assert_int_equal(ctx.refused, 0);
    assert_int_equal(fetch(url_name, pol, &ctx, &status), CURLE_OK);
    assert_int_equal(status, 200);
    assert_int_equal(atomic_load(&l.served), 2);
    ssrf_policy_free(pol);
    listener_stop(&l);
}

static int setup(void **state)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

static int teardown(void **state)
{
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svix_list),
        cmocka_unit_test(test_v4_ranges),
        cmocka_unit_test(test_v6_ranges),
        cmocka_unit_test(test_allow_list),
        cmocka_unit_test(test_allow_list_errors),
        cmocka_unit_test(test_bad_family),
        cmocka_unit_test(test_curl_guard),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
