/* domainobj: the public Domain object — the seed's Domain interface
 * (hostname, projectSlug, verified, verifiedAt, createdAt, metadata) plus
 * state, ownershipChallenge, cnameTarget, certificate and removedAt — built
 * the same way for API responses, webhook payloads and the CLI.
 *
 * metadata is returned byte-for-byte as stored, so it never passes through
 * jansson: domainobj_json() puts a placeholder in its place and
 * domainobj_dumps() splices the stored text back while serialising. Callers
 * may nest the json_t in any envelope (one domain object per dump). The
 * json_t returned is the caller's (json_decref); strings returned are
 * malloc'd (free). */
#ifndef HEE_DOMAINOBJ_H
#define HEE_DOMAINOBJ_H

#include <jansson.h>

#include "common/store_domain.h"

/* cname_target: config [edge] target. NULL on allocation failure. */
json_t *domainobj_json(const store_domain_t *d, const char *cname_target);
/* Compact serialisation of root (keys in insertion order) with the domain
 * object's metadata placeholder replaced by metadata. NULL on failure. */
char *domainobj_dumps(const json_t *root, const char *metadata);
/* domainobj_dumps(domainobj_json(d, cname_target), d->metadata). */
char *domainobj_text(const store_domain_t *d, const char *cname_target);

/* The name customers publish the ownership TXT record at, into buf. */
char *domainobj_challenge_name(const char *hostname, char *buf, size_t len);

#endif
