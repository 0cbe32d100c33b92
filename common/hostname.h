/* hostname: the one place that decides what a customer hostname is.
 * Normalises user input (lowercase, no trailing dot, IDN → A-labels with
 * libidn2 non-transitional) and refuses what may never be registered: IP
 * literals, single labels, wildcards, public suffixes (libpsl's builtin list)
 * and the edge's own names. Pure functions: they write into caller buffers and
 * allocate nothing that outlives the call. */
#ifndef HEE_HOSTNAME_H
#define HEE_HOSTNAME_H

#include <stddef.h>

/* Fits every valid hostname (253) plus a trailing NUL. */
#define HOSTNAME_MAX 254

/* Canonical form of in (any case, optional trailing dot, UTF-8 U-labels or
 * A-labels) into out (>= HOSTNAME_MAX bytes). Checks syntax only: LDH labels
 * of 1–63 bytes, total <= 253, at least two labels, no IP literal, no '*'.
 * Returns 0, or -1 with *reason set to a constant English sentence. */
int hostname_normalize(const char *in, char *out, size_t outlen, const char **reason);

/* hostname_normalize plus the registration rules: not a public suffix
 * itself, and not one of the edge's own names (edge_names: space-separated
 * hostnames such as the CNAME target; may be NULL). */
int hostname_check_registrable(const char *in, const char *edge_names, char *out, size_t outlen,
                               const char **reason);

/* The registrable domain ("eTLD+1") of a normalised host, e.g.
 * "a.b.example.co.uk" → "example.co.uk", into out. 0, or -1 when host is a
 * public suffix or does not fit. */
int hostname_registered_domain(const char *host, char *out, size_t outlen);

#endif
