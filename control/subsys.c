#include "control/subsys.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "control/api.h"
#include "control/ctl.h"
#include "control/hooks.h"
#include "control/issuer.h"
#include "control/verify.h"

/* The control thread gets the API (with every route, the verification and
 * webhook ones included) and the issuer; the background thread the
 * webhook sender and the verifier. A context with no peer (unit tests) may
 * be given any of them directly. */
int subsys_start(struct control *c, char **err)
{
    if (c->background) {
        if (!(c->hooks = hooks_new(c, err)))
            return -1;
        if (!(c->verify = verify_new(c, err)))
            return -1;
        return 0;
    }
    if (!(c->api = api_new(c, err)))
        return -1;
    if (hooks_api_init(c->api) != 0 || api_verify_init(c->api) != 0)
        return *err = strdup("cannot register the webhook and verification API routes"), -1;
    if (!(c->issuer = issuer_new(c, err)))
        return -1;
    return 0;
}

void subsys_reload(struct control *c)
{
    if (c->api)
        api_reload(c->api);
    if (c->hooks)
        hooks_reload(c->hooks);
    if (c->issuer)
        issuer_reload(c->issuer);
    if (c->verify)
        verify_reload(c->verify);
}

void subsys_stop(struct control *c)
{
    if (c->verify)
        verify_stop(c->verify); /* first: recording its last results may emit events */
    if (c->issuer)
        issuer_stop(c->issuer);
    if (c->hooks)
        hooks_stop(c->hooks);
}

void subsys_free(struct control *c)
{
    verify_free(c->verify);
    c->verify = NULL;
    issuer_free(c->issuer);
    c->issuer = NULL;
    hooks_free(c->hooks);
    c->hooks = NULL;
    api_free(c->api);
    c->api = NULL;
}
