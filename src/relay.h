/* One relayed connection: the peer's socket, the backend's socket, and the
 * two directions between them, each copying until its source reaches EOF
 * and then shutting its destination for writing (the half-close that
 * `docker exec -i`, `docker attach` and build uploads depend on). */
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
	DIRECTION_FLUSHING, /* source at EOF; what was read is still being written */
	DIRECTION_DONE,     /* all written and the destination shut for writing */
};

struct direction {
	int src, dst;
	enum direction_state state;
	enum copy_mode mode;
	/* COPY_RW: bytes read that the destination did not take yet. At most
	 * one read's worth; nothing more is read until it is written, so a
	 * slow reader throttles the writer and memory stays bounded. */
	char *pending;
	size_t pending_off, pending_len;
	/* COPY_SPLICE: the pipe, its capacity and how many bytes it holds. */
	int pipe_rd, pipe_wr;
	size_t pipe_size, in_pipe;
	/* --splice: switch to COPY_SPLICE once a read fills the buffer. */
	bool splice_wanted;
	uint64_t spliced; /* bytes carried by splice */
	uint64_t bytes; /* written to dst */
};

struct connection {
	int peer_fd, backend_fd;
	bool connecting; /* the backend dial has not completed yet */
	/* Accepted in this round: a client (the docker CLI's HTTP request,
	 * say) writes right after connect, so its first bytes have usually
	 * arrived by then; reading them at once saves a round of select(). */
	bool fresh;
	struct peer peer;
	struct direction upstream;   /* peer -> backend */
	struct direction downstream; /* backend -> peer */
	uint64_t started_ms;
	/* Why it ended: which side failed ("peer", "backend") and errno;
	 * side NULL means both directions finished. */
	const char *end_side;
	int end_errno;
	struct connection *prev, *next; /* the server's list */
};

enum relay_status {
	RELAY_RUNNING,
	RELAY_FINISHED,
};

/* Takes ownership of both descriptors, also on failure (NULL: out of
 * memory). With use_splice, a direction starts with read/write and moves to
 * splice when a read fills the buffer: a short request/reply costs no pipe
 * (creating one costs more system calls than the copy it saves), a bulk
 * transfer gets one, above FD_SETSIZE where the descriptor limit allows. */
struct connection *connection_new(int peer_fd, int backend_fd, const struct peer *peer,
				  bool connecting, bool use_splice, uint64_t now_ms);

/* Registers what the connection waits for in this round. */
void connection_want(const struct connection *conn, struct loop *loop);

/* Moves whatever bytes the ready descriptors allow. */
enum relay_status connection_service(struct connection *conn, const struct loop *loop);

/* Ends a connection that outlived the drain window in order: what is
 * buffered is offered once, both sockets are shut for writing so each side
 * reads EOF, and unread input is discarded so that close() is not turned
 * into a reset. Then connection_free. */
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
