/* cli: the admin commands of the hee binary (project, token, domain, ca).
 * They open the daemon's store file directly through the store module —
 * safe while the daemon runs, since SQLite serialises writers — and print
 * results to stdout, errors to stderr. */
#ifndef HEE_CLI_H
#define HEE_CLI_H

#include <stdio.h>

void cli_usage(FILE *f);
/* argv[1] is the command ("project", "token", …). Returns the exit code. */
int cli_main(int argc, char **argv);

#endif
