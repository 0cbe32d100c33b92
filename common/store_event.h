/* store_event: the webhook outbox. An event row is written in the same
 * transaction as the state change it reports, with one delivery row per
 * matching webhook endpoint of the project, so a committed change is always
 * announced and a rolled-back one never is.
 *
 * The payload is the exact body delivered to endpoints:
 *   {"id":"evt_…","type":"domain.created","createdAt":"<RFC 3339>",
 *    "sequence":<per-domain counter>,"data":<data_json verbatim>}
 * where data is {"domain":<Domain object>, …} for domain events. */
#ifndef HEE_STORE_EVENT_H
#define HEE_STORE_EVENT_H

#include <stdint.h>

#include "common/store.h"

/* Must run inside the caller's transaction. domain_id 0 = not about a domain
 * (sequence 0); otherwise domains.sequence is incremented and used.
 * data_json: a JSON object text spliced into the payload unchanged.
 * *public_id (optional) receives the malloc'd "evt_…" id. */
int store_event_emit(store_t *s, int64_t project_id, int64_t domain_id, const char *type,
                     const char *data_json, char **public_id);

#endif
