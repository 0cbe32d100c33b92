/* bridge: what passes between the control thread (API, ACME, renewal; the
 * edge's normal priority) and the background thread (DNS verification and
 * webhook delivery; [server] background_nice) of one daemon.
 *
 * Each thread has its own struct control (base, read-write store handle,
 * curl multi, inbox queue) and its own subsystems; they meet only through
 * their inboxes. A call that needs an answer (POST …/verify, …/diagnose, a
 * webhook test send) is a record the caller allocates and keeps on its
 * waiting list; the other thread runs it, copies the answer into the record
 * and sends it back; the caller hands the answer to its callback and frees
 * the record. A record left in an inbox at shutdown is freed by
 * bridge_msg_free (the queues' free function). A caller that stops first
 * answers its waiters itself (bridge_cancel_all: rc -1) and frees their
 * records when they come back.
 *
 * With no peer (unit tests build one struct control holding every
 * subsystem) each call runs on the caller's thread. */
#ifndef HEE_BRIDGE_H
#define HEE_BRIDGE_H

#include <stdint.h>

#include "common/msg.h"
#include "control/hooks.h"
#include "control/verify.h"

struct control;

/* rc 0 with rep; else STORE_NOTFOUND (the domain went away) or -1 (stopping,
 * out of memory, store failure) with rep NULL. rep is valid during the
 * callback only. */
typedef void (*bridge_verify_cb)(int rc, const verify_report_t *rep, void *arg);
/* rc 0 with t; else STORE_NOTFOUND (the endpoint went away) or -1 with t NULL. */
typedef void (*bridge_test_cb)(int rc, const hooks_test_result_t *t, void *arg);

/* Probes domain_id now (verify_request on the thread that verifies). 0: cb
 * will run on this thread's loop; else the request was not made (rc as for
 * verify_request) and cb will not run. */
int bridge_verify(struct control *c, int64_t domain_id, verify_kind_t kind, bridge_verify_cb cb, void *arg);
/* Sends one example event of type to the endpoint endpoint_id (of
 * project_id, 0 = any) now (hooks_test_send). 0 or -1, as above. */
int bridge_hook_test(struct control *c, const char *endpoint_id, int64_t project_id, const char *type,
                     bridge_test_cb cb, void *arg);

/* Fire-and-forget notices for the thread that delivers webhooks: hooks_kick
 * or hooks_changed, here or there. */
void bridge_hooks_kick(struct control *c);
void bridge_hooks_changed(struct control *c);

/* The inbox handler's part: runs MSG_CALL, delivers MSG_CALL_DONE, applies
 * MSG_HOOKS_*. Returns 1 when m was one of those (m is then consumed). */
int bridge_on_msg(struct control *c, msg_t *m);
/* Answers every call c is waiting for with rc -1, now (c is stopping). */
void bridge_cancel_all(struct control *c);
/* Free function for the inboxes: also frees a bridge record in m. */
void bridge_msg_free(void *m);

#endif
