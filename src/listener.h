/* The listening socket: inherited from systemd (socket activation), or
 * bound to the vsock port or unix path from the command line; and accept,
 * which also tells who the peer is. */
#ifndef RDD_LISTENER_H
#define RDD_LISTENER_H

#include <stdbool.h>

#include "config.h"
#include "peer.h"

#include <sys/types.h>

struct listener {
	int fd;
	int family;
	char description[sizeof(((struct config *)0)->unix_path) + 16]; /* "vsock:6660" */
	/* Passed in (LISTEN_FDS: a .socket unit, a parent that keeps it, or
	 * systemd's descriptor store after a restart): the socket outlives
	 * this process, which must not shut it down or remove its file. */
	bool inherited;
	/* Handed to systemd's descriptor store (notify.h): it outlives this
	 * process too. */
	bool stored;
	/* The unix socket file this process created (device and inode), removed
	 * at exit only if the path still names that very socket. */
	bool remove_path;
	dev_t path_dev;
	ino_t path_ino;
	char path[sizeof(((struct config *)0)->unix_path)];
};

/* Returns 0, or -errno after logging why. */
int listener_open(struct listener *listener, const struct config *cfg);

/* Returns a non-blocking descriptor and fills *peer, or -errno. A unix
 * peer's uid and pid cost a system call: asked for only when wanted. */
int listener_accept(struct listener *listener, struct peer *peer, bool want_credentials);

/* True when the socket lives on after this process (inherited or stored). */
bool listener_outlives_us(const struct listener *listener);

/* Closes this process's descriptor. A socket that lives on keeps its
 * backlog for the next instance; one of our own is gone, and its file with
 * it, so pending connects in its backlog see a close. */
void listener_close(struct listener *listener);

#endif
