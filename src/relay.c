#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"

/* Every read goes into this one buffer (the loop has one thread), and only
 * what the destination does not take at once is copied out into the
 * direction's own `pending`. An idle or flowing connection so holds no
 * buffer of its own; only a throttled one does. 128 KiB is about what a
 * unix socket queues, so one read usually empties the source. */
#define SCRATCH_SIZE (128u * 1024u)
static char scratch[SCRATCH_SIZE];

/* Reads per direction per round: enough to move a few MiB between two
 * select() calls, few enough that one fast connection does not starve the
 * others or the listener. */
#define READS_PER_ROUND 8

static bool errno_is_retry(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

static int pipe_above_fd_setsize(int fds[2])
{
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	/* Pipes never go into select(), sockets must: keep the low numbers for
	 * sockets. EINVAL means RLIMIT_NOFILE is at most FD_SETSIZE, so every
	 * descriptor, socket or pipe, is below it anyway. */
	for (int i = 0; i < 2; i++) {
		int high = fcntl(fds[i], F_DUPFD_CLOEXEC, FD_SETSIZE);

		if (high >= 0) {
			close(fds[i]);
			fds[i] = high;
		} else if (errno != EINVAL) {
			int err = errno;

			close(fds[0]);
			close(fds[1]);
			return -err;
		}
	}
	return 0;
}

static void direction_init(struct direction *dir, int src, int dst, bool use_splice)
{
	memset(dir, 0, sizeof(*dir));
	dir->src = src;
	dir->dst = dst;
	dir->state = DIRECTION_OPEN;
	dir->mode = COPY_RW;
	dir->pipe_rd = dir->pipe_wr = -1;
	dir->splice_wanted = use_splice;
}

/* A pipe as large as a read from the scratch buffer and more: fewer
 * splice calls per GiB. Without CAP_SYS_RESOURCE the kernel refuses a larger
 * pipe once the user's pipes hold /proc/sys/fs/pipe-user-pages-soft pages
 * (64 MiB: about 128 bulk transfers at once), and from then on even a new
 * pipe gets only 2 pages. */
#define PIPE_WANTED_SIZE (256 * 1024)
/* Below the default 64 KiB, a splice in and out moves less than a read and
 * a send do through the scratch buffer: not worth a pipe. */
#define PIPE_MIN_SIZE (64 * 1024)

/* Called with nothing held: moves the direction to splice if a pipe worth
 * it can be had; otherwise it stays with read/write for good. */
static void switch_to_splice(struct direction *dir)
{
	int fds[2], size;

	dir->splice_wanted = false;
	if (pipe_above_fd_setsize(fds) < 0)
		return;
	(void)fcntl(fds[1], F_SETPIPE_SZ, PIPE_WANTED_SIZE);
	size = fcntl(fds[1], F_GETPIPE_SZ);
	if (size < PIPE_MIN_SIZE) {
		close(fds[0]);
		close(fds[1]);
		return;
	}
	dir->pipe_rd = fds[0];
	dir->pipe_wr = fds[1];
	dir->pipe_size = (size_t)size;
	dir->mode = COPY_SPLICE;
}

static void direction_release(struct direction *dir)
{
	free(dir->pending);
	dir->pending = NULL;
	dir->pending_len = 0;
	if (dir->pipe_rd >= 0)
		close(dir->pipe_rd);
	if (dir->pipe_wr >= 0)
		close(dir->pipe_wr);
	dir->pipe_rd = dir->pipe_wr = -1;
}

struct connection *connection_new(int peer_fd, int backend_fd, const struct peer *peer,
				  bool connecting, bool use_splice, uint64_t now_ms)
{
	struct connection *conn = calloc(1, sizeof(*conn));

	if (!conn) {
		close(peer_fd);
		close(backend_fd);
		return NULL;
	}
	conn->peer_fd = peer_fd;
	conn->backend_fd = backend_fd;
	conn->connecting = connecting;
	conn->fresh = true;
	conn->peer = *peer;
	conn->started_ms = now_ms;
	direction_init(&conn->upstream, peer_fd, backend_fd, use_splice);
	direction_init(&conn->downstream, backend_fd, peer_fd, use_splice);
	return conn;
}

static bool direction_holds_bytes(const struct direction *dir)
{
	return dir->pending_len > 0 || dir->in_pipe > 0;
}

static void direction_want(const struct direction *dir, struct loop *loop)
{
	if (dir->state == DIRECTION_DONE)
		return;
	/* Read only when nothing is held: the bound on memory, and for splice
	 * the guard against a pipe whose slots are full before its bytes are. */
	if (dir->state == DIRECTION_OPEN && !direction_holds_bytes(dir))
		loop_want(loop, dir->src, LOOP_READ);
	if (direction_holds_bytes(dir))
		loop_want(loop, dir->dst, LOOP_WRITE);
}

void connection_want(const struct connection *conn, struct loop *loop)
{
	if (conn->connecting) {
		loop_want(loop, conn->backend_fd, LOOP_WRITE);
		return;
	}
	direction_want(&conn->upstream, loop);
	direction_want(&conn->downstream, loop);
}

/* A failure on one descriptor: which one, and why. */
struct pump_error {
	int fd;
	int err;
};

static int fail(struct pump_error *error, int fd, int err)
{
	error->fd = fd;
	error->err = err;
	return -1;
}

/* Each system call of the copy, retried on EINTR: bytes moved, or -errno. */
static ssize_t read_once(int fd, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t send_once(int fd, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static ssize_t splice_once(int in, int out, size_t len)
{
	ssize_t n;

	do
		n = splice(in, NULL, out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* Sends what `pending` holds. 0: sent or would block; -1: failed. */
static int flush_pending(struct direction *dir, struct pump_error *error)
{
	while (dir->pending_len > 0) {
		ssize_t n = send_once(dir->dst, dir->pending + dir->pending_off, dir->pending_len);

		if (n < 0)
			return errno_is_retry((int)-n) ? 0 : fail(error, dir->dst, (int)-n);
		dir->pending_off += (size_t)n;
		dir->pending_len -= (size_t)n;
		dir->bytes += (uint64_t)n;
	}
	free(dir->pending);
	dir->pending = NULL;
	dir->pending_off = 0;
	return 0;
}

static int keep_pending(struct direction *dir, const char *data, size_t len,
			struct pump_error *error)
{
	dir->pending = malloc(len);
	if (!dir->pending)
		return fail(error, dir->dst, ENOMEM);
	memcpy(dir->pending, data, len);
	dir->pending_off = 0;
	dir->pending_len = len;
	return 0;
}

static int pump_rw(struct direction *dir, bool readable, bool writable, struct pump_error *error)
{
	if (dir->pending_len > 0 && writable) {
		if (flush_pending(dir, error) < 0)
			return -1;
		/* Drained: the source may well have more; reading now saves a
		 * round through select(). */
		readable = dir->pending_len == 0;
	}
	if (dir->state != DIRECTION_OPEN || dir->pending_len > 0 || !readable)
		return 0;
	for (int i = 0; i < READS_PER_ROUND; i++) {
		ssize_t got = read_once(dir->src, scratch, SCRATCH_SIZE);
		ssize_t sent;

		if (got < 0)
			return errno_is_retry((int)-got) ? 0 : fail(error, dir->src, (int)-got);
		if (got == 0) {
			dir->state = DIRECTION_FLUSHING;
			return 0;
		}
		sent = send_once(dir->dst, scratch, (size_t)got);
		if (sent < 0) {
			if (!errno_is_retry((int)-sent))
				return fail(error, dir->dst, (int)-sent);
			sent = 0;
		}
		dir->bytes += (uint64_t)sent;
		if (sent < got)
			return keep_pending(dir, scratch + sent, (size_t)(got - sent), error);
		if ((size_t)got < SCRATCH_SIZE)
			return 0; /* a short read: the source is empty for now */
		if (dir->splice_wanted) {
			switch_to_splice(dir); /* a bulk transfer: the rest by splice */
			return 0;
		}
	}
	return 0;
}

/* The source or destination cannot splice (AF_VSOCK has no splice_read on
 * some kernels): carry on with read/write, keeping what the pipe holds. */
static int fall_back_to_rw(struct direction *dir, struct pump_error *error)
{
	if (dir->in_pipe > 0) {
		size_t have = 0;

		dir->pending = malloc(dir->in_pipe);
		if (!dir->pending)
			return fail(error, dir->dst, ENOMEM);
		while (have < dir->in_pipe) {
			ssize_t n = read_once(dir->pipe_rd, dir->pending + have, dir->in_pipe - have);

			if (n <= 0)
				return fail(error, dir->dst, n < 0 ? (int)-n : EIO);
			have += (size_t)n;
		}
		dir->pending_off = 0;
		dir->pending_len = have;
		dir->in_pipe = 0;
	}
	close(dir->pipe_rd);
	close(dir->pipe_wr);
	dir->pipe_rd = dir->pipe_wr = -1;
	dir->mode = COPY_RW;
	return 0;
}

/* What a failed splice on `fd` means. 0: would block; 1: the socket cannot
 * splice, the direction fell back to read/write; -1: failed. */
static int splice_failed(struct direction *dir, int fd, ssize_t err, struct pump_error *error)
{
	if (errno_is_retry((int)-err))
		return 0;
	if (err == -EINVAL)
		return fall_back_to_rw(dir, error) < 0 ? -1 : 1;
	return fail(error, fd, (int)-err);
}

/* Moves what the pipe holds to dst; returns as splice_failed does. */
static int splice_out(struct direction *dir, struct pump_error *error)
{
	while (dir->in_pipe > 0) {
		ssize_t n = splice_once(dir->pipe_rd, dir->dst, dir->in_pipe);

		if (n < 0)
			return splice_failed(dir, dir->dst, n, error);
		dir->in_pipe -= (size_t)n;
		dir->bytes += (uint64_t)n;
		dir->spliced += (uint64_t)n;
	}
	return 0;
}

static int pump_splice(struct direction *dir, bool readable, bool writable,
		       struct pump_error *error)
{
	int r;

	if (dir->in_pipe > 0 && writable) {
		r = splice_out(dir, error);
		if (r != 0)
			return r;
		readable = dir->in_pipe == 0;
	}
	if (dir->state != DIRECTION_OPEN || dir->in_pipe > 0 || !readable)
		return 0;
	for (int i = 0; i < READS_PER_ROUND; i++) {
		ssize_t got = splice_once(dir->src, dir->pipe_wr, dir->pipe_size);

		if (got < 0)
			return splice_failed(dir, dir->src, got, error);
		if (got == 0) {
			dir->state = DIRECTION_FLUSHING;
			return 0;
		}
		dir->in_pipe += (size_t)got;
		r = splice_out(dir, error);
		if (r != 0 || dir->in_pipe > 0)
			return r;
		/* A short read: the source is empty for now; asking again would
		 * only return EAGAIN. */
		if ((size_t)got < dir->pipe_size)
			return 0;
	}
	return 0;
}

static int direction_pump(struct direction *dir, bool readable, bool writable,
			  bool other_done, struct pump_error *error)
{
	if (dir->state == DIRECTION_DONE)
		return 0;
	if (dir->mode == COPY_SPLICE) {
		int r = pump_splice(dir, readable, writable, error);

		if (r < 0)
			return r;
		/* r == 1: fell back to read/write; finish this round with it. */
	}
	if (dir->mode == COPY_RW && pump_rw(dir, readable, writable, error) < 0)
		return -1;
	/* The half-close happens here and only here: after EOF, and after
	 * every byte read before it was written. When the other direction is
	 * done too, the close that follows at once tells dst the same. */
	if (dir->state == DIRECTION_FLUSHING && !direction_holds_bytes(dir)) {
		if (!other_done && shutdown(dir->dst, SHUT_WR) < 0 && errno != ENOTCONN)
			return fail(error, dir->dst, errno);
		dir->state = DIRECTION_DONE;
	}
	return 0;
}

static int direction_service(struct direction *dir, const struct loop *loop, bool assume_readable,
			     const struct direction *other, struct pump_error *error)
{
	return direction_pump(dir, assume_readable || loop_ready(loop, dir->src, LOOP_READ),
			      loop_ready(loop, dir->dst, LOOP_WRITE),
			      other->state == DIRECTION_DONE, error);
}

static enum relay_status connection_failed(struct connection *conn, const struct pump_error *error)
{
	conn->end_side = error->fd == conn->peer_fd ? "peer" : "backend";
	conn->end_errno = error->err;
	return RELAY_FINISHED;
}

enum relay_status connection_service(struct connection *conn, const struct loop *loop)
{
	struct pump_error error = { -1, 0 };

	if (conn->connecting) {
		int r;

		if (!loop_ready(loop, conn->backend_fd, LOOP_WRITE))
			return RELAY_RUNNING;
		r = backend_connect_result(conn->backend_fd);
		if (r < 0) {
			error.fd = conn->backend_fd;
			error.err = -r;
			return connection_failed(conn, &error);
		}
		conn->connecting = false;
		return RELAY_RUNNING;
	}
	if (direction_service(&conn->upstream, loop, conn->fresh, &conn->downstream, &error) < 0 ||
	    direction_service(&conn->downstream, loop, false, &conn->upstream, &error) < 0)
		return connection_failed(conn, &error);
	conn->fresh = false;
	if (conn->upstream.state == DIRECTION_DONE && conn->downstream.state == DIRECTION_DONE)
		return RELAY_FINISHED;
	return RELAY_RUNNING;
}

/* Reads and drops what a socket still holds, a bounded amount: on AF_UNIX,
 * closing a socket with unread data makes the other side's next read fail
 * with ECONNRESET instead of returning EOF. */
static void discard_input(int fd)
{
	for (int i = 0; i < 64; i++) {
		ssize_t n = recv(fd, scratch, SCRATCH_SIZE, MSG_DONTWAIT);

		if (n <= 0)
			return;
	}
}

/* Both ways: the peer reads EOF after what was sent, and a peer still
 * writing gets EPIPE from now on, so nothing new lands in the receive
 * queue between the discard and the close. */
static void shut_and_discard(int fd)
{
	shutdown(fd, SHUT_RDWR);
	discard_input(fd);
}

void close_with_eof(int fd)
{
	shut_and_discard(fd);
	close(fd);
}

void connection_end(struct connection *conn)
{
	struct pump_error ignored;
	struct direction *dirs[2] = { &conn->upstream, &conn->downstream };

	for (int i = 0; i < 2 && !conn->connecting; i++) {
		if (dirs[i]->mode == COPY_SPLICE)
			(void)splice_out(dirs[i], &ignored);
		if (dirs[i]->mode == COPY_RW)
			(void)flush_pending(dirs[i], &ignored);
	}
	shut_and_discard(conn->peer_fd);
	shut_and_discard(conn->backend_fd);
	connection_free(conn);
}

void connection_free(struct connection *conn)
{
	direction_release(&conn->upstream);
	direction_release(&conn->downstream);
	close(conn->peer_fd);
	close(conn->backend_fd);
	free(conn);
}

const char *connection_end_reason(const struct connection *conn, char *buf, size_t size)
{
	if (!conn->end_side)
		snprintf(buf, size, "finished");
	else
		snprintf(buf, size, "%s: %s", conn->end_side, strerror(conn->end_errno));
	return buf;
}

const char *connection_copy_mode(const struct connection *conn)
{
	return conn->upstream.spliced + conn->downstream.spliced > 0 ? "splice" : "rw";
}
