/* acme_pebble: runs test/lib/pebble.py from a C test and reads its READY line.
 *
 * The helper stays up until its stdin closes, so a test that dies takes its
 * Pebble with it. acme_pebble_stop() closes the pipe and reaps the helper.
 * Strings in acme_pebble_t belong to it. */
#ifndef HEE_TEST_ACME_PEBBLE_H
#define HEE_TEST_ACME_PEBBLE_H

#include <sys/types.h>

typedef struct {
    pid_t pid;
    int to_child; /* helper's stdin */
    char directory_url[256];
    char ca_file[512];
    char root_file[512];
} acme_pebble_t;

/* 1 when the pebble binary and python3 are installed. */
int acme_pebble_available(void);
/* args: extra pebble.py flags, NULL-terminated. 0 or -1 (message on stderr). */
int acme_pebble_start(acme_pebble_t *p, const char *const *args);
void acme_pebble_stop(acme_pebble_t *p);

#endif
