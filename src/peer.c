#include "peer.h"

#include <stdio.h>
#include <sys/socket.h>

const char *peer_describe(const struct peer *peer, char *buf, size_t size)
{
	if (peer->family == AF_VSOCK)
		snprintf(buf, size, "cid=%u port=%u", peer->cid, peer->port);
	else if (peer->credentials)
		snprintf(buf, size, "uid=%u pid=%d", (unsigned)peer->uid, (int)peer->pid);
	else
		snprintf(buf, size, "on unix socket");
	return buf;
}
