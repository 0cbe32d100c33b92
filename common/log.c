#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Written once by log_setup() before threads start; read-only afterwards. */
static struct {
    enum log_level level;
    int fd;
    int access_fd;
} sink = { LOG_INFO, 2, -1 };

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_setup(enum log_level level, int fd, int access_fd)
{
    sink.level = level;
    sink.fd = fd;
    sink.access_fd = access_fd;
}

int log_level_parse(const char *s, enum log_level *out)
{
    for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_enabled(enum log_level level)
{
    return level >= sink.level;
}

int log_access_enabled(void)
{
    return sink.access_fd >= 0;
}

static size_t stamp(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(buf + n, len - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    return n + (m > 0 ? (size_t)m : 0);
}

static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a logging failure */
        }
        buf += w;
        len -= (size_t)w;
    }
}

static size_t finish_line(char *buf, size_t n, size_t cap)
{
    if (n >= cap - 1)
        n = cap - 2; /* truncated: keep the newline so lines stay whole */
    buf[n++] = '\n';
    return n;
}

void log_vwrite(enum log_level level, const char *msg, const char *fmt, va_list ap)
{
    if (!log_enabled(level))
        return;
    char buf[4096];
    size_t n = stamp(buf, sizeof(buf));
    int m = snprintf(buf + n, sizeof(buf) - n, " level=%s msg=%s ", level_names[level], msg);
    if (m > 0)
        n += (size_t)m;
    if (n < sizeof(buf)) {
        m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
        if (m > 0)
            n += (size_t)m;
    }
    n = finish_line(buf, n, sizeof(buf));
    write_all(sink.fd, buf, n);
}

void log_write(enum log_level level, const char *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, msg, fmt, ap);
    va_end(ap);
}

void log_access(const char *fmt, ...)
{
    if (sink.access_fd < 0)
        return;
    char buf[2048];
    size_t n = stamp(buf, sizeof(buf));
    buf[n++] = ' ';
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);
    if (m > 0)
        n += (size_t)m;
    n = finish_line(buf, n, sizeof(buf));
    write_all(sink.access_fd, buf, n);
}

const char *log_quote(char *buf, size_t len, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (len < 3) {
        if (len)
            buf[0] = '\0';
        return buf;
    }
    buf[o++] = '"';
    for (; s && *s && o + 5 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[c >> 4];
            buf[o++] = hex[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
