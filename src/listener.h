/* The listening socket: inherited from systemd (socket activation), or
 * bound to the vsock port or unix path from the command line; and accept,
 * which also tells who the peer is. */
#ifndef RDD_LISTENER_H
#define RDD_LISTENER_H

#include <stdbool.h>

#include "config.h"
#include "peer.h"

struct listener {
	int fd;
	int family;
	char description[sizeof(((struct config *)0)->unix_path) + 16]; /* "vsock:6660" */
	bool remove_path; /* we created the unix socket file: remove it at exit */
	char path[sizeof(((struct config *)0)->unix_path)];
};

/* Returns 0, or -errno after logging why. */
int listener_open(struct listener *listener, const struct config *cfg);

/* Returns a non-blocking descriptor and fills *peer, or -errno. A unix
 * peer's uid and pid cost a system call: asked for only when wanted. */
int listener_accept(struct listener *listener, struct peer *peer, bool want_credentials);

/* Stops listening; pending connections in the backlog see a close. */
void listener_close(struct listener *listener);

#endif
