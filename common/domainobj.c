#include "common/domainobj.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* No other string in a Domain object can hold a control character, so the
 * quoted placeholder appears exactly once in a dump. */
#define PLACEHOLDER "\x01hee-metadata\x01"
#define PLACEHOLDER_QUOTED "\"\\u0001hee-metadata\\u0001\""

char *domainobj_challenge_name(const char *hostname, char *buf, size_t len)
{
    snprintf(buf, len, "_customdomain-challenge.%s", hostname);
    return buf;
}

static json_t *iso_or_null(int64_t ms)
{
    char ts[32];
    return ms ? json_string(util_iso8601(ms, ts, sizeof(ts))) : json_null();
}

static const char *cert_status(const store_domain_t *d)
{
    /* A certificate kept from an earlier registration still serves. */
    if (strcmp(d->cert_status, "none") == 0 && d->cert_not_after > util_now_ms())
        return "issued";
    return d->cert_status;
}

json_t *domainobj_json(const store_domain_t *d, const char *cname_target)
{
    char name[300];
    json_t *o = json_object();
    json_t *ch = json_object();
    json_t *cert = json_object();
    if (!o || !ch || !cert)
        goto fail;
    int bad = 0;
    bad |= json_object_set_new(o, "hostname", json_string(d->hostname));
    bad |= json_object_set_new(o, "projectSlug", json_string(d->project_slug));
    bad |= json_object_set_new(o, "verified", json_boolean(d->verified));
    bad |= json_object_set_new(o, "verifiedAt", iso_or_null(d->verified_at));
    bad |= json_object_set_new(o, "createdAt", iso_or_null(d->created_at));
    bad |= json_object_set_new(o, "metadata", json_string(PLACEHOLDER));
    bad |= json_object_set_new(o, "state", json_string(d->state));
    bad |= json_object_set_new(ch, "name", json_string(domainobj_challenge_name(d->hostname, name, sizeof(name))));
    bad |= json_object_set_new(ch, "type", json_string("TXT"));
    bad |= json_object_set_new(ch, "value", json_string(d->challenge));
    bad |= json_object_set_new(o, "ownershipChallenge", ch);
    ch = NULL;
    bad |= json_object_set_new(o, "cnameTarget", json_string(cname_target ? cname_target : ""));
    bad |= json_object_set_new(cert, "status", json_string(cert_status(d)));
    bad |= json_object_set_new(cert, "notAfter", iso_or_null(d->cert_not_after));
    bad |= json_object_set_new(cert, "issuer", d->cert_issuer ? json_string(d->cert_issuer) : json_null());
    bad |= json_object_set_new(o, "certificate", cert);
    cert = NULL;
    bad |= json_object_set_new(o, "removedAt", iso_or_null(d->removed_at));
    if (bad)
        goto fail;
    return o;
fail:
    json_decref(o);
    json_decref(ch);
    json_decref(cert);
    return NULL;
}

char *domainobj_dumps(const json_t *root, const char *metadata)
{
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!text)
        return NULL;
    char *at = strstr(text, PLACEHOLDER_QUOTED);
    if (!at)
        return text; /* no domain object inside: nothing to splice */
    size_t pre = (size_t)(at - text), plen = strlen(PLACEHOLDER_QUOTED);
    size_t mlen = strlen(metadata), rest = strlen(at + plen);
    char *out = malloc(pre + mlen + rest + 1);
    if (out) {
        memcpy(out, text, pre);
        memcpy(out + pre, metadata, mlen);
        memcpy(out + pre + mlen, at + plen, rest + 1);
    }
    free(text);
    return out;
}

char *domainobj_text(const store_domain_t *d, const char *cname_target)
{
    json_t *o = domainobj_json(d, cname_target);
    if (!o)
        return NULL;
    char *text = domainobj_dumps(o, d->metadata);
    json_decref(o);
    return text;
}
