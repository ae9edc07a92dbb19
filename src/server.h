/* The process: the listener, the connections, the counters, and the one
 * select() loop that drives them until shutdown. */
#ifndef RDD_SERVER_H
#define RDD_SERVER_H

#include "config.h"

/* Runs until SIGTERM/SIGINT and the drain that follows. Returns the exit
 * status: 0 after a clean shutdown, 1 when start-up or the loop failed. */
int server_run(const struct config *cfg);

#endif
