/* acme_parse: pure parsers for what an ACME server sends (RFC 8555, RFC
 * 9773): directory, order, authorization, challenge, renewalInfo and
 * problem documents, response header lines (Retry-After, Link). No I/O,
 * clock or state: test/fuzz/fuzz_acme.c feeds them raw CA bytes. Parsed
 * structs own malloc'd strings; the matching *_clear frees them and zeroes
 * the struct (NULL-safe). Implemented at the end of control/acme.c. */
#ifndef HEE_ACME_PARSE_H
#define HEE_ACME_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define ACME_PARSE_MAX_AUTHZ 64          /* authorizations in one order */
#define ACME_PARSE_MAX_STR 4096          /* longest string kept; longer is absent */
#define ACME_PARSE_MAX_DELAY (86400 * 7) /* Retry-After is clamped to a week */

typedef enum {
    ACME_OBJ_UNKNOWN = 0, /* missing, or not a status of RFC 8555 7.1.6 */
    ACME_OBJ_PENDING,
    ACME_OBJ_READY,
    ACME_OBJ_PROCESSING,
    ACME_OBJ_VALID,
    ACME_OBJ_INVALID,
    ACME_OBJ_DEACTIVATED,
    ACME_OBJ_EXPIRED,
    ACME_OBJ_REVOKED,
} acme_obj_status_t;

const char *acme_obj_status_name(acme_obj_status_t s);

/* An RFC 7807 problem document, or an order's or challenge's "error". */
typedef struct {
    char *type, *detail; /* either may be NULL */
} acme_problem_t;

typedef struct {
    char *new_nonce, *new_account, *new_order; /* all set on success */
    char *renewal_info;                        /* NULL: no ARI */
    int eab_required;                          /* meta.externalAccountRequired */
} acme_directory_t;

typedef struct {
    acme_obj_status_t status;
    char *finalize, *certificate; /* may be NULL */
    char **authz;                 /* nauthz URLs; NULL when the field is absent */
    size_t nauthz;
    acme_problem_t error;
} acme_order_obj_t;

typedef struct {
    acme_obj_status_t status;
    int chall;                     /* index in types[] of the challenge picked; -1: none */
    acme_obj_status_t chall_status;
    char *chall_url, *chall_token; /* set when chall >= 0; the token is base64url */
    acme_problem_t error;          /* the first challenge's error, if any */
} acme_authz_obj_t;

typedef struct {
    acme_obj_status_t status;
    acme_problem_t error;
} acme_chall_obj_t;

typedef struct {
    int64_t start_ms, end_ms; /* start_ms <= end_ms */
    char *explanation_url;    /* may be NULL */
} acme_ari_obj_t;

/* Each takes body as len bytes (no NUL needed) and returns 0 when it is a
 * JSON object of the right shape, else -1 with *out cleared. */
int acme_parse_problem(const char *body, size_t len, acme_problem_t *out);
/* -1 also without string newNonce, newAccount and newOrder. */
int acme_parse_directory(const char *body, size_t len, acme_directory_t *out);
/* -1 also when authorizations is not an array of strings, or is longer
 * than ACME_PARSE_MAX_AUTHZ. */
int acme_parse_order(const char *body, size_t len, acme_order_obj_t *out);
/* Picks the first of types[] (most preferred first) offered with a url
 * and a base64url token. */
int acme_parse_authz(const char *body, size_t len, const char *const *types, int ntypes,
                     acme_authz_obj_t *out);
int acme_parse_challenge(const char *body, size_t len, acme_chall_obj_t *out);
/* -1 also without a suggestedWindow of two RFC 3339 times, start <= end. */
int acme_parse_renewal_info(const char *body, size_t len, acme_ari_obj_t *out);

void acme_problem_clear(acme_problem_t *p);
void acme_directory_clear(acme_directory_t *d);
void acme_order_obj_clear(acme_order_obj_t *o);
void acme_authz_obj_clear(acme_authz_obj_t *a);
void acme_chall_obj_clear(acme_chall_obj_t *c);
void acme_ari_obj_clear(acme_ari_obj_t *a);

/* ---- header lines, as libcurl hands them (CRLF included) ---- */

enum { ACME_HDR_OTHER = 0, ACME_HDR_STATUS, ACME_HDR_FIELD };

/* ACME_HDR_STATUS for a status line (a new response begins, after a 1xx:
 * forget its headers); ACME_HDR_FIELD for "Name: value", pointing into
 * line with the value trimmed; ACME_HDR_OTHER for anything else. */
int acme_header_split(const char *line, size_t len, const char **name, size_t *name_len,
                      const char **value, size_t *value_len);
/* A Retry-After value (delay-seconds or an HTTP-date) as seconds after
 * now_s, clamped to [0, ACME_PARSE_MAX_DELAY]; -1 when it is neither. */
int acme_parse_retry_after(const char *v, size_t len, int64_t now_s);
/* The target of the first link of a Link value whose rel (RFC 8288)
 * includes rel, e.g. "alternate" or "up": malloc'd, or NULL. */
char *acme_parse_link(const char *v, size_t len, const char *rel);

#endif
