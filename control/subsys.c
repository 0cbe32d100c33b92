#include "control/subsys.h"

#include "common/log.h"
#include "control/ctl.h"

int subsys_start(struct control *c, char **err)
{
    (void)c;
    (void)err;
    return 0;
}

void subsys_reload(struct control *c)
{
    (void)c;
}

void subsys_stop(struct control *c)
{
    (void)c;
}

void subsys_free(struct control *c)
{
    (void)c;
}
