/* Who is on the other end of an accepted connection: a vsock CID and port,
 * or, on a unix listener, the uid and pid the kernel recorded at connect. */
#ifndef RDD_PEER_H
#define RDD_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct peer {
	int family; /* AF_VSOCK or AF_UNIX */
	uint32_t cid, port;
	uid_t uid;
	pid_t pid;
	bool credentials; /* uid and pid were asked for (unix peers) */
};

/* "cid=2 port=1234", "uid=0 pid=42", or "on unix socket" when the
 * credentials were not asked for: the words every log line uses. */
const char *peer_describe(const struct peer *peer, char *buf, size_t size);

#define PEER_DESCRIBE_SIZE 48

#endif
