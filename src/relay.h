/* One relayed connection: the peer's socket, the backend's socket, and the
 * two directions between them. Each direction ends on its own, as it would
 * on a direct connection:
 *
 *   - its source says EOF: what it holds is written, then the destination
 *     is shut for writing (the half-close that `docker exec -i`, `docker
 *     attach` and build uploads depend on);
 *   - its source fails (a reset): what it holds is still written first; the
 *     other direction, which writes to that dead socket, ends at once;
 *   - writing to its destination fails: what it holds cannot be delivered
 *     and is dropped, and its source is shut for reading, so the sender
 *     gets EPIPE as it would from the dead socket itself. The other
 *     direction, reading from that destination, goes on to EOF or error:
 *     an engine that answers a request early and closes is heard in full.
 *
 * The connection is finished when both directions are done. */
#ifndef RDD_RELAY_H
#define RDD_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "peer.h"

enum copy_mode {
	COPY_RW,     /* read(2) into a buffer, send(2) out */
	COPY_SPLICE, /* splice(2) into a pipe and out again, no user-space copy */
};

enum direction_state {
	DIRECTION_OPEN,     /* reading the source */
	DIRECTION_FLUSHING, /* the source ended; what was read is still being written */
	DIRECTION_DONE,     /* nothing more to move */
};

struct direction {
	int src, dst;
	enum direction_state state;
	enum copy_mode mode;
	/* Bytes read and not yet written: nothing more is read until they are,
	 * so a slow reader throttles the writer and memory stays bounded. In
	 * COPY_SPLICE they are in the pipe. In COPY_RW they are in the shared
	 * scratch buffer while the destination takes whole reads (then `held`
	 * is 0 again before the next read), and in `buf`, the direction's own,
	 * from the first read it did not take whole until one it does. */
	size_t held;
	char *buf;
	size_t buf_off;
	int pipe_rd, pipe_wr;
	size_t pipe_size;
	/* --splice: move to COPY_SPLICE once a read fills the buffer. */
	bool splice_wanted;
	bool bulk; /* the last read filled what it was offered */
	int err; /* what ended it: 0 for EOF, else the errno */
	uint64_t spliced; /* bytes carried by splice */
	uint64_t bytes;   /* written to dst */
};

struct connection {
	int peer_fd, backend_fd;
	/* Accepted in this round: a client (the docker CLI's HTTP request,
	 * say) writes right after connect, so its first bytes have usually
	 * arrived by then; reading them at once saves a round of select(). */
	bool fresh;
	struct peer peer;
	struct direction upstream;   /* peer -> backend */
	struct direction downstream; /* backend -> peer */
	uint64_t started_ms;
	/* The first failure, for the log: which side ("peer", "backend") and
	 * errno; NULL when both directions ended with EOF. */
	const char *end_side;
	int end_errno;
};

enum relay_status {
	RELAY_RUNNING,
	RELAY_FINISHED,
};

/* Takes ownership of both descriptors, also on failure (NULL: out of
 * memory); the backend socket is connected. With use_splice, a direction
 * starts with read/write and moves to splice when a read fills the buffer:
 * a short request/reply costs no pipe (creating one costs more system calls
 * than the copy it saves), a bulk transfer gets one, above FD_SETSIZE where
 * the descriptor limit allows. */
struct connection *connection_new(int peer_fd, int backend_fd, const struct peer *peer,
				  bool use_splice, uint64_t now_ms);

/* Tells the loop what the connection waits for now. 0, or -EBADF for a
 * descriptor select() cannot watch. connection_service calls it itself. */
int connection_watch(const struct connection *conn, struct loop *loop);

/* Moves whatever bytes the ready descriptors allow, then updates what the
 * loop watches for it. */
enum relay_status connection_service(struct connection *conn, struct loop *loop);

/* Ends a connection that outlived the drain window in order: what is held
 * is offered once, both sockets are shut for writing so each side reads
 * EOF, and unread input is discarded so that close() is not turned into a
 * reset. Then connection_free. */
void connection_end(struct connection *conn);

void connection_free(struct connection *conn);

/* Closes a socket so that its peer reads EOF, not a reset: shut for
 * writing, drop unread input, close. For a peer whose backend dial failed:
 * the docker CLI then reports a clean end instead of a reset. */
void close_with_eof(int fd);

/* "finished", "peer: Connection reset by peer", ... */
const char *connection_end_reason(const struct connection *conn, char *buf, size_t size);

/* How the bytes of a connection were carried: "splice" when any were
 * spliced, else "rw". */
const char *connection_copy_mode(const struct connection *conn);

#endif
