/* The daemon's configuration: what the command line decided. Filled by
 * options.c, read everywhere else, never changed after start-up. */
#ifndef RDD_CONFIG_H
#define RDD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/types.h>
#include <sys/un.h>

#include "policy.h"

/* The port the Windows host dials. Its counterpart is VsockForwardPort in
 * rancher-desktop-daemon's pkg/socketbridge/host_windows.go: the two must
 * change together, or the host's connects are silently refused. */
#define RDD_VSOCK_PORT 6660u

#define RDD_BACKEND_PATH "/var/run/docker.sock"
#define RDD_DRAIN_TIMEOUT_S 10u
#define RDD_MAX_CONNECTIONS 256u

/* Descriptors below FD_SETSIZE that are not connection sockets: stdio, the
 * listener, the signal self-pipe, the spare backend socket, the sd_notify
 * socket libsystemd opens, and headroom for what a sanitizer or valgrind
 * opens. Each connection then needs two sockets below FD_SETSIZE (its splice
 * pipes are moved above it), so the connection limit can be at most: */
#define RDD_RESERVED_FDS 32u
#define RDD_MAX_CONNECTIONS_LIMIT ((FD_SETSIZE - RDD_RESERVED_FDS) / 2u)

enum listen_kind {
	LISTEN_VSOCK,
	LISTEN_UNIX,
};

struct config {
	enum listen_kind listen_kind;
	uint32_t vsock_port;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char backend_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct peer_policy policy;
	unsigned max_connections;
	unsigned drain_timeout_s;
	int log_level;
	bool use_splice;
};

#endif
