/* util: small helpers with no state: randomness, encodings, clocks, CPUs.
 * Functions that return char * hand the caller a malloc'd string to free();
 * functions that write into a caller's buffer never allocate. */
#ifndef HEE_UTIL_H
#define HEE_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Cryptographically strong random bytes (OpenSSL's DRBG). 0 or -1. */
int util_random(void *buf, size_t len);
/* Uniform random integer in [0, bound) (bound > 0); falls back to 0 on failure. */
uint64_t util_random_below(uint64_t bound);
/* prefix + nbytes of randomness in base62, e.g. util_random_id("evt_", 16).
 * Returns a malloc'd string or NULL. */
char *util_random_id(const char *prefix, size_t nbytes);

/* Lower-case hex of len bytes into out (2*len+1 bytes). */
void util_hex(char *out, const void *in, size_t len);
/* Base64 (standard alphabet with padding, or URL-safe without padding when
 * url != 0). util_b64 returns a malloc'd string; util_unb64 a malloc'd buffer
 * of *outlen bytes, accepting either alphabet with or without padding;
 * NULL on bad input. */
char *util_b64(const void *in, size_t len, int url);
unsigned char *util_unb64(const char *in, size_t inlen, size_t *outlen);

/* The pending error on socket fd (SO_ERROR, which clears it), or errno
 * when it cannot be read; 0 when there is none. */
int util_socket_error(int fd);
/* What one non-blocking MSG_PEEK sees on stream socket fd: 1 bytes are
 * waiting, 0 the peer closed, -1 an error, -2 nothing yet. */
int util_socket_peek(int fd);

/* The CPUs this process may run on (its affinity mask, which taskset and
 * cgroup cpusets narrow), in ascending order: writes up to cap of them to
 * cpus (NULL with cap 0 only counts) and returns how many there are, or -1
 * if the mask cannot be read. */
int util_usable_cpus(int *cpus, int cap);
/* Names the calling thread "<prefix><index>" (index < 0: no number), cut
 * to the kernel's 15 characters, for top -H, ps -L and /proc/.../comm. */
void util_name_thread(const char *prefix, int index);

/* Wall clock in milliseconds since the epoch / monotonic milliseconds. */
int64_t util_now_ms(void);
int64_t util_mono_ms(void);
int64_t util_mono_us(void);
/* Renders ms since the epoch as "2026-11-22T11:10:42.123Z" (buf >= 25 bytes). */
char *util_iso8601(int64_t ms, char *buf, size_t len);
/* Parses RFC 3339 ("…Z" or with an offset, optional fraction). 0 or -1. */
int util_parse_iso8601(const char *s, int64_t *ms);

/* 1..18 ASCII decimal digits and nothing else (no sign, no space), so the
 * value always fits: 0 or -1. */
int util_parse_digits(const char *s, int64_t *out);
/* Value of one hex digit (either case), or -1. */
int util_hexval(int c);

/* strdup that aborts on allocation failure is not offered on purpose:
 * callers check for NULL and fail their own way. */
char *util_strndup(const char *s, size_t n);
/* Case-insensitive ASCII compare of n bytes; 1 when equal. */
int util_ascii_ieq(const char *a, const char *b, size_t n);

#endif
