#include "control/cli.h"

#include <string.h>

void cli_usage(FILE *f)
{
    fprintf(f, "       hee project create SLUG --upstream URL [--config FILE]\n"
               "       hee token create --project SLUG --scopes SCOPES [--config FILE]\n"
               "       hee domain add|list|show|rm … [--config FILE]\n"
               "       hee ca export [--config FILE]\n");
}

int cli_main(int argc, char **argv)
{
    fprintf(stderr, "hee: unknown command '%s'\n", argc > 1 ? argv[1] : "");
    return 2;
}
