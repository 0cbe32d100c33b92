/* log: one structured line per event, "ts=… level=… msg=… key=value …".
 *
 * The logger is a process-wide sink configured once by main() before any
 * thread starts (log_setup) and read-only afterwards, so every thread may call
 * log_* without locking: each line is formatted into a stack buffer and
 * written with a single write(2), which keeps lines whole across threads.
 * Never pass a secret (token, webhook secret, private key, metadata) as a
 * value: the log is not a safe place for them. */
#ifndef HEE_LOG_H
#define HEE_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* level: minimum level written; fd: where lines go (2 = stderr).
 * access_fd: where edge access lines go (-1 = off). */
void log_setup(enum log_level level, int fd, int access_fd);
int log_level_parse(const char *s, enum log_level *out);
int log_enabled(enum log_level level);

/* msg is a short constant event name (no spaces); fmt renders the rest as
 * key=value pairs, e.g. log_info("domain.created", "host=%s project=%s", h, p).
 * Values that may hold spaces or quotes must go through log_quote(). */
void log_write(enum log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vwrite(enum log_level level, const char *msg, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Writes one access line (already key=value) to the access sink, if enabled. */
void log_access(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int log_access_enabled(void);

/* Renders s as a double-quoted value with ", \ and control bytes escaped,
 * truncated to fit buf. Returns buf. */
const char *log_quote(char *buf, size_t len, const char *s);

#define log_debug(msg, ...) do { if (log_enabled(LOG_DEBUG)) log_write(LOG_DEBUG, msg, __VA_ARGS__); } while (0)
#define log_info(msg, ...)  log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)

#endif
