/* The command line: parse and validate into a struct config, nothing else.
 * Every error is one line on `err` and a usage-error result, before any
 * socket is opened. */
#ifndef RDD_OPTIONS_H
#define RDD_OPTIONS_H

#include <stdio.h>

#include "config.h"

enum options_result {
	OPTIONS_RUN,         /* cfg is complete: start the daemon */
	OPTIONS_EXIT_OK,     /* --help or --version was printed on `out` */
	OPTIONS_USAGE_ERROR, /* one line was printed on `err`: exit 2 */
};

void options_defaults(struct config *cfg);

enum options_result options_parse(struct config *cfg, int argc, char **argv,
				  FILE *out, FILE *err);

#endif
