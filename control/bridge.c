#include "control/bridge.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/store_hook.h"
#include "control/ctl.h"
#include "control/subsys.h"

enum call_kind { CALL_VERIFY, CALL_HOOK_TEST };

/* One call. The caller's thread owns prev/next/cancelled; the runner writes
 * only rc and the answer, before it sends the record back (the queue's
 * mutex orders those writes before the caller's reads). */
struct bridge_call {
    enum call_kind kind;
    struct control *from;        /* where the answer goes */
    int remote;                  /* run by the peer (else on from's thread) */
    struct bridge_call *prev, *next;
    int cancelled;
    void *cb;
    void *arg;

    /* request */
    int64_t id;                  /* domain id, or the endpoint's project (0 = any) */
    verify_kind_t vkind;
    char endpoint_id[64];
    char type[64];

    /* answer */
    int rc;
    verify_report_t rep;         /* probe, hint and outcome owned here */
    hooks_test_result_t test;    /* strings owned here */
};

static void call_free(struct bridge_call *bc)
{
    if (!bc)
        return;
    json_decref(bc->rep.probe);
    free((char *)bc->rep.hint);
    free((char *)bc->rep.outcome);
    free((char *)bc->test.event_id);
    free((char *)bc->test.payload);
    free((char *)bc->test.error);
    free((char *)bc->test.response);
    free(bc);
}

void bridge_msg_free(void *p)
{
    msg_t *m = p;
    if (m && (m->type == MSG_CALL || m->type == MSG_CALL_DONE))
        call_free(m->ptr);
    msg_free(m);
}


/* ---- the caller's side ---------------------------------------------------- */

static void unlink_call(struct control *c, struct bridge_call *bc)
{
    if (bc->prev)
        bc->prev->next = bc->next;
    else
        c->waiting = bc->next;
    if (bc->next)
        bc->next->prev = bc->prev;
    bc->prev = bc->next = NULL;
}

static void answer(struct bridge_call *bc, int rc)
{
    int ok = rc == 0;
    if (bc->kind == CALL_VERIFY)
        ((bridge_verify_cb)bc->cb)(rc, ok ? &bc->rep : NULL, bc->arg);
    else
        ((bridge_test_cb)bc->cb)(rc, ok ? &bc->test : NULL, bc->arg);
}

/* On from's thread: the answer is in; bc is freed. */
static void deliver(struct bridge_call *bc)
{
    if (!bc->cancelled) {
        if (bc->remote)
            unlink_call(bc->from, bc);
        answer(bc, bc->rc);
    }
    call_free(bc);
}

void bridge_cancel_all(struct control *c)
{
    while (c->waiting) {
        struct bridge_call *bc = c->waiting;
        unlink_call(c, bc);
        bc->cancelled = 1; /* the record is freed when it comes back */
        answer(bc, -1);
    }
}

/* ---- the runner's side ---------------------------------------------------- */

/* On the runner's thread: the answer is in bc; send it home. */
static void finish(struct bridge_call *bc, int rc)
{
    bc->rc = rc;
    if (!bc->remote) {
        deliver(bc);
        return;
    }
    if (hub_send(bc->from->inbox, MSG_CALL_DONE, NULL, bc) != 0) {
        /* out of memory: the caller answers it when it stops */
        log_error("bridge.reply_lost", "kind=%d", (int)bc->kind);
    }
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void on_verified(const verify_report_t *rep, void *arg)
{
    struct bridge_call *bc = arg;
    if (!rep) {
        finish(bc, -1);
        return;
    }
    bc->rep.probe = rep->probe ? json_deep_copy(rep->probe) : json_object();
    bc->rep.verified = rep->verified;
    bc->rep.hint = dup_or_null(rep->hint ? rep->hint : "");
    bc->rep.outcome = dup_or_null(rep->outcome ? rep->outcome : "");
    bc->rep.at = rep->at;
    finish(bc, bc->rep.probe && bc->rep.hint && bc->rep.outcome ? 0 : -1);
}

static void on_tested(const hooks_test_result_t *t, void *arg)
{
    struct bridge_call *bc = arg;
    hooks_test_result_t *o = &bc->test;
    o->event_id = dup_or_null(t->event_id ? t->event_id : "");
    o->payload = dup_or_null(t->payload ? t->payload : "");
    o->delivered = t->delivered;
    o->status_code = t->status_code;
    o->latency_ms = t->latency_ms;
    o->error = dup_or_null(t->error);
    o->response = dup_or_null(t->response ? t->response : "");
    int ok = o->event_id && o->payload && o->response && (!t->error || o->error);
    finish(bc, ok ? 0 : -1);
}

/* Starts bc on the thread of on (which holds the subsystem). 0 when its
 * callback will finish it; else the rc it failed with (bc untouched). */
static int start(struct control *on, struct bridge_call *bc)
{
    if (bc->kind == CALL_VERIFY)
        return on->verify ? verify_request(on->verify, bc->id, bc->vkind, on_verified, bc) : -1;
    if (!on->hooks)
        return -1;
    store_hook_endpoint_t e;
    int rc = store_hook_endpoint_get(on->store, bc->endpoint_id, bc->id, &e);
    if (rc != STORE_OK)
        return rc == STORE_NOTFOUND ? STORE_NOTFOUND : -1;
    rc = hooks_test_send(on->hooks, &e, bc->type, on_tested, bc);
    store_hook_endpoint_clear(&e);
    return rc;
}

/* On the caller's thread: here when c holds the subsystem, else posted to
 * the peer. 0 when the callback will run; else rc and bc freed. */
static int dispatch(struct control *c, struct bridge_call *bc)
{
    int local = bc->kind == CALL_VERIFY ? c->verify != NULL : c->hooks != NULL;
    bc->from = c;
    if (c->stopping) { /* bridge_cancel_all has run: nobody would answer it */
        call_free(bc);
        return -1;
    }
    if (local || !c->peer) {
        int rc = start(c, bc);
        if (rc != 0)
            call_free(bc);
        return rc;
    }
    bc->remote = 1;
    if (hub_send(c->peer->inbox, MSG_CALL, NULL, bc) != 0) {
        call_free(bc);
        return -1;
    }
    bc->next = c->waiting;
    if (c->waiting)
        c->waiting->prev = bc;
    c->waiting = bc;
    return 0;
}

int bridge_verify(struct control *c, int64_t domain_id, verify_kind_t kind, bridge_verify_cb cb, void *arg)
{
    struct bridge_call *bc = calloc(1, sizeof(*bc));
    if (!bc)
        return -1;
    bc->kind = CALL_VERIFY;
    bc->id = domain_id;
    bc->vkind = kind;
    bc->cb = (void *)cb;
    bc->arg = arg;
    return dispatch(c, bc);
}

int bridge_hook_test(struct control *c, const char *endpoint_id, int64_t project_id, const char *type,
                     bridge_test_cb cb, void *arg)
{
    struct bridge_call *bc = calloc(1, sizeof(*bc));
    if (!bc)
        return -1;
    if (strlen(endpoint_id) >= sizeof(bc->endpoint_id) || strlen(type) >= sizeof(bc->type)) {
        free(bc);
        return -1;
    }
    bc->kind = CALL_HOOK_TEST;
    bc->id = project_id;
    snprintf(bc->endpoint_id, sizeof(bc->endpoint_id), "%s", endpoint_id);
    snprintf(bc->type, sizeof(bc->type), "%s", type);
    bc->cb = (void *)cb;
    bc->arg = arg;
    return dispatch(c, bc);
}

/* ---- notices and the inbox -------------------------------------------------- */

static void notice(struct control *c, enum msg_type type)
{
    if (c->hooks) {
        if (type == MSG_HOOKS_KICK)
            hooks_kick(c->hooks);
        else
            hooks_changed(c->hooks);
        return;
    }
    if (!c->peer)
        return;
    /* A burst of commits needs one kick in flight, not one each: the
     * background thread clears the flag before it walks. */
    if (type == MSG_HOOKS_KICK && atomic_exchange(&c->peer->kick_pending, 1))
        return;
    /* Lost only when out of memory; the background thread's own due walk
     * finds the deliveries on its next tick anyway. */
    if (hub_send(c->peer->inbox, type, NULL, NULL) != 0) {
        if (type == MSG_HOOKS_KICK)
            atomic_store(&c->peer->kick_pending, 0);
        log_warn("bridge.notice_lost", "type=%s", msg_type_name(type));
    }
}

void bridge_hooks_kick(struct control *c)
{
    notice(c, MSG_HOOKS_KICK);
}

void bridge_hooks_changed(struct control *c)
{
    notice(c, MSG_HOOKS_CHANGED);
}

int bridge_on_msg(struct control *c, msg_t *m)
{
    struct bridge_call *bc = m->ptr;
    int rc;
    switch (m->type) {
    case MSG_HOOKS_KICK:
    case MSG_HOOKS_CHANGED:
        if (m->type == MSG_HOOKS_KICK)
            atomic_store(&c->kick_pending, 0);
        if (c->hooks) /* never passed on: the hooks live here or nowhere */
            notice(c, m->type);
        break;
    case MSG_CALL:
        rc = c->stopping ? -1 : start(c, bc);
        if (rc != 0)
            finish(bc, rc);
        break;
    case MSG_CALL_DONE:
        deliver(bc);
        break;
    default:
        return 0;
    }
    msg_free(m);
    return 1;
}
