/* Tests common/config.c, including its static table (h2o style: the .c is
 * included so every row can be checked against conf/hee.conf). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/config.c"

#include <unistd.h>

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/hee-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void expect_error(const char *text, const char *want)
{
    char *path = write_tmp(text);
    char *err = NULL;
    config_t *c = config_load(path, &err);
    assert_null(c);
    assert_non_null(err);
    if (!strstr(err, want))
        fail_msg("error '%s' lacks '%s'", err, want);
    assert_true(strncmp(err, path, strlen(path)) == 0);
    free(err);
    unlink(path);
    free(path);
}

static void test_defaults(void **state)
{
    char *err = NULL;
    config_t *c = config_load(NULL, &err);
    assert_non_null(c);
    assert_int_equal(c->handshake_wait_ms, 10000);
    assert_int_equal(c->pending_interval_s, 300);
    assert_int_equal(c->n_tls_listen, 1);
    assert_string_equal(c->tls_listen[0], "0.0.0.0:8443");
    assert_string_equal(c->edge_target, "edge.hee.la");
    config_free(c);
}

static void test_shipped_file_documents_every_row(void **state)
{
    char *err = NULL;
    config_t *c = config_load(HEE_SOURCE_DIR "/conf/hee.conf", &err);
    if (!c)
        fail_msg("conf/hee.conf: %s", err);
    config_free(c);
    FILE *f = fopen(HEE_SOURCE_DIR "/conf/hee.conf", "r");
    assert_non_null(f);
    static char text[65536];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        char needle[128];
        snprintf(needle, sizeof(needle), "\n%s =", rows[i].key);
        if (!strstr(text, needle))
            fail_msg("conf/hee.conf does not document [%s] %s", rows[i].section, rows[i].key);
    }
}

static void test_errors_name_file_line_reason(void **state)
{
    expect_error("[edge]\nbogus = 1\n", ":2: [edge] bogus: unknown setting");
    expect_error("[edge]\n\nhandshake_wait = soon\n", ":3: [edge] handshake_wait: expected a duration");
    expect_error("[server]\nworkers = -1\n", ":2: [server] workers: value out of range");
    expect_error("[server]\nworkers = 3x\n", ":2: [server] workers: expected an integer");
    expect_error("[webhooks]\nallow_http = maybe\n", "expected yes or no");
    expect_error("[verify]\npending_interval = 500ms\n", "whole seconds");
    expect_error("no section line\n", ":1:");
    expect_error("[nosuch]\nkey = 1\n", "[nosuch] key: unknown setting");
    expect_error("[server]\ncontrol_nice = 10\n", "[server] control_nice: renamed to background_nice");
    expect_error("[edge]\nkey_type = dsa\n", "key_type");
    expect_error("[log]\nlevel = loud\n", "[log] level");
}

static void test_missing_file(void **state)
{
    char *err = NULL;
    assert_null(config_load("/nonexistent/hee.conf", &err));
    assert_non_null(strstr(err, "/nonexistent/hee.conf"));
    free(err);
}

static void test_durations_and_lists(void **state)
{
    char *path = write_tmp("[edge]\ntls_listen = 127.0.0.1:1, [::1]:2\nhandshake_wait = 250ms\n"
                           "[verify]\npending_window = 2h\n[webhooks]\nallow_http = yes\n");
    char *err = NULL;
    config_t *c = config_load(path, &err);
    assert_non_null(c);
    assert_int_equal(c->n_tls_listen, 2);
    assert_string_equal(c->tls_listen[1], "[::1]:2");
    assert_int_equal(c->handshake_wait_ms, 250);
    assert_int_equal(c->pending_window_s, 7200);
    assert_int_equal(c->hook_allow_http, 1);
    config_free(c);
    unlink(path);
    free(path);
}

static void test_blank_challenges_mean_the_default(void **state)
{
    char *path = write_tmp("[acme]\nchallenges =\n");
    char *err = NULL;
    config_t *c = config_load(path, &err);
    assert_non_null(c);
    assert_string_equal(c->acme_challenges, find_row("acme", "challenges")->def);
    config_free(c);
    unlink(path);
    free(path);
}

static void test_environment_overrides(void **state)
{
    setenv("HEE_EDGE_TARGET", "cname.example.net", 1);
    setenv("HEE_SERVER_WORKERS", "3", 1);
    char *err = NULL;
    config_t *c = config_load(NULL, &err);
    assert_non_null(c);
    assert_string_equal(c->edge_target, "cname.example.net");
    assert_int_equal(c->workers, 3);
    config_free(c);
    setenv("HEE_SERVER_WORKERS", "many", 1);
    assert_null(config_load(NULL, &err));
    assert_non_null(strstr(err, "HEE_SERVER_WORKERS"));
    free(err);
    unsetenv("HEE_EDGE_TARGET");
    unsetenv("HEE_SERVER_WORKERS");
}

static void test_unreloadable(void **state)
{
    char *err = NULL;
    config_t *a = config_load(NULL, &err);
    setenv("HEE_EDGE_TLS_LISTEN", "127.0.0.1:9", 1);
    setenv("HEE_EDGE_HANDSHAKE_WAIT", "3s", 1);
    config_t *b = config_load(NULL, &err);
    unsetenv("HEE_EDGE_TLS_LISTEN");
    unsetenv("HEE_EDGE_HANDSHAKE_WAIT");
    char *diff = config_unreloadable_changes(a, b);
    assert_non_null(diff);
    assert_string_equal(diff, "[edge] tls_listen");
    free(diff);
    assert_null(config_unreloadable_changes(a, a));
    config_free(a);
    config_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_shipped_file_documents_every_row),
        cmocka_unit_test(test_errors_name_file_line_reason),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_durations_and_lists),
        cmocka_unit_test(test_blank_challenges_mean_the_default),
        cmocka_unit_test(test_environment_overrides),
        cmocka_unit_test(test_unreloadable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
