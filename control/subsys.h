/* subsys: starts, reloads, stops and frees the subsystems of one of the
 * control-side threads (control: api, issuer; background: verify, hooks) in
 * dependency order. The only file that knows the full list. */
#ifndef HEE_SUBSYS_H
#define HEE_SUBSYS_H

struct control;
struct issuer;
struct verify;
struct hooks;

int subsys_start(struct control *c, char **err);
void subsys_reload(struct control *c);
void subsys_stop(struct control *c);   /* on the control thread, before the loop exits */
void subsys_free(struct control *c);

void issuer_want(struct issuer *iss, const char *host);
void verify_hint(struct verify *v, const char *host);
void hooks_kick(struct hooks *h);

#endif
