#include "acme_pebble.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef HEE_SOURCE_DIR
#error "acme_pebble.c needs HEE_SOURCE_DIR (set in test/unit/acme.cmake)"
#endif

int acme_pebble_available(void)
{
    return access("/usr/bin/pebble", X_OK) == 0 && access("/usr/bin/python3", X_OK) == 0;
}

static int field(const char *line, const char *key, char *out, size_t len)
{
    const char *p = strstr(line, key);
    if (!p)
        return -1;
    p += strlen(key);
    size_t n = strcspn(p, " \n");
    if (n >= len)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

int acme_pebble_start(acme_pebble_t *p, const char *const *args)
{
    int in[2], out[2];
    memset(p, 0, sizeof(*p));
    p->to_child = -1;
    if (pipe2(in, O_CLOEXEC) != 0)
        return -1;
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    const char *argv[32] = { "python3", "-u", HEE_SOURCE_DIR "/test/lib/pebble.py" };
    size_t n = 3;
    for (; args && *args && n < 31; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        goto fail;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    p->pid = pid;
    p->to_child = in[1];
    FILE *f = fdopen(out[0], "r");
    char line[2048] = { 0 };
    int ok = f && fgets(line, sizeof(line), f) && strncmp(line, "READY ", 6) == 0 &&
             field(line, "directory_url=", p->directory_url, sizeof(p->directory_url)) == 0 &&
             field(line, "ca_file=", p->ca_file, sizeof(p->ca_file)) == 0 &&
             field(line, "root_file=", p->root_file, sizeof(p->root_file)) == 0;
    if (f)
        fclose(f);
    else
        close(out[0]);
    if (!ok) {
        fprintf(stderr, "pebble helper failed: %s\n", line[0] ? line : "(no output)");
        acme_pebble_stop(p);
        return -1;
    }
    return 0;
fail:
    close(in[0]);
    close(in[1]);
    close(out[0]);
    close(out[1]);
    return -1;
}

void acme_pebble_stop(acme_pebble_t *p)
{
    if (p->to_child >= 0)
        close(p->to_child);
    p->to_child = -1;
    if (p->pid > 0) {
        int st;
        for (int i = 0; i < 100; i++) { /* the helper stops Pebble, then exits */
            pid_t r = waitpid(p->pid, &st, WNOHANG);
            if (r == p->pid || (r < 0 && errno != EINTR))
                break;
            if (i == 99) {
                kill(p->pid, SIGTERM);
                waitpid(p->pid, &st, 0);
            }
            usleep(100 * 1000);
        }
    }
    p->pid = 0;
}
