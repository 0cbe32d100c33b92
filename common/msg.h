/* msg: the messages edge workers, the control thread and the background
 * thread exchange through their queues (common/queue.h). A msg_t is malloc'd
 * by the sender and freed by the receiver (msg_free); MSG_CALL and
 * MSG_CALL_DONE carry a control/bridge record in ptr, which the receiver
 * handles (or bridge_msg_free drops). Names for log lines: msg_type_name. */
#ifndef HEE_MSG_H
#define HEE_MSG_H

#include <stdlib.h>

enum msg_type {
    MSG_CERT_WANTED,    /* edge → control: a verified host has no certificate */
    MSG_PROBE_WANTED,   /* edge → background: a registered, unverified host was asked for */
    MSG_CERT_READY,     /* control → edges: a certificate for host was stored */
    MSG_CERT_FAILED,    /* control → edges: issuance for host failed (code = reason) */
    MSG_DOMAIN_CHANGED, /* control → edges: host's routing changed; drop cached state */
    MSG_PROJECT_CHANGED,/* control → edges: a project's upstream/settings changed */
    MSG_CONFIG,         /* main → all: a new configuration is in force (ptr) */
    MSG_DRAIN,          /* main → edges: stop accepting, finish in-flight requests */
    MSG_HOOKS_KICK,     /* control → background: events were committed; deliver them */
    MSG_HOOKS_CHANGED,  /* control → background: endpoints parked or released deliveries */
    MSG_CALL,           /* control → background: run a bridge call (ptr) */
    MSG_CALL_DONE,      /* background → control: its answer (ptr) */
    MSG_TYPE_COUNT
};

#define MSG_HOST_MAX 254

typedef struct msg {
    enum msg_type type;
    int worker;              /* sender worker index, or -1 */
    int code;
    long long id;            /* project id for MSG_PROJECT_CHANGED */
    void *ptr;               /* MSG_CONFIG: the new config_t (not owned) */
    char host[MSG_HOST_MAX];
} msg_t;

static inline const char *msg_type_name(enum msg_type t)
{
    static const char *const names[MSG_TYPE_COUNT] = {
        "CERT_WANTED", "PROBE_WANTED", "CERT_READY", "CERT_FAILED",
        "DOMAIN_CHANGED", "PROJECT_CHANGED", "CONFIG", "DRAIN",
        "HOOKS_KICK", "HOOKS_CHANGED", "CALL", "CALL_DONE",
    };
    return (unsigned)t < MSG_TYPE_COUNT ? names[t] : "?";
}

static inline void msg_free(void *m)
{
    free(m);
}

#endif
