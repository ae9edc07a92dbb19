#include "relay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Every read of COPY_RW goes into this one buffer (the loop has one
 * thread) unless the direction holds a buffer of its own: an idle or
 * flowing connection so holds none; only a throttled one does. 128 KiB is
 * about what a unix socket queues, so one read usually empties the source. */
#define SCRATCH_SIZE (128u * 1024u)
static char scratch[SCRATCH_SIZE];

/* Reads per direction per round: enough to move a few MiB between two
 * select() calls, few enough that one fast connection does not starve the
 * others or the listener. */
#define READS_PER_ROUND 8

/* A pipe as large as a read from the scratch buffer and more: fewer splice
 * calls per GiB. Without CAP_SYS_RESOURCE the kernel refuses a larger pipe
 * once the user's pipes hold /proc/sys/fs/pipe-user-pages-soft pages (64 MiB:
 * about 128 bulk transfers at once), and from then on even a new pipe gets
 * only 2 pages. */
#define PIPE_WANTED_SIZE (256 * 1024)
/* Below the default 64 KiB, a splice in and out moves less than a read and
 * a send do through the scratch buffer: not worth a pipe. */
#define PIPE_MIN_SIZE (64 * 1024)

static bool errno_is_retry(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* ---- the system calls of the copy, each retried on EINTR: bytes moved, or -errno */

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

/* ---- where a direction holds what it read: scratch, its own buffer, or a pipe */

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

static void drop_buffer(struct direction *dir)
{
	free(dir->buf);
	dir->buf = NULL;
	dir->buf_off = 0;
}

static void drop_pipe(struct direction *dir)
{
	if (dir->pipe_rd >= 0)
		close(dir->pipe_rd);
	if (dir->pipe_wr >= 0)
		close(dir->pipe_wr);
	dir->pipe_rd = dir->pipe_wr = -1;
}

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
	drop_buffer(dir);
	dir->pipe_rd = fds[0];
	dir->pipe_wr = fds[1];
	dir->pipe_size = (size_t)size;
	dir->mode = COPY_SPLICE;
}

/* The source or destination cannot splice (AF_VSOCK has no splice_read on
 * some kernels): carry on with read/write, moving what the pipe holds into
 * the direction's own buffer. 0 or -errno. */
static int fall_back_to_rw(struct direction *dir)
{
	size_t have = 0;

	if (dir->held > 0) {
		dir->buf = malloc(SCRATCH_SIZE > dir->held ? SCRATCH_SIZE : dir->held);
		if (!dir->buf)
			return -ENOMEM;
		while (have < dir->held) {
			ssize_t n = read_once(dir->pipe_rd, dir->buf + have, dir->held - have);

			if (n <= 0)
				return n < 0 ? (int)n : -EIO;
			have += (size_t)n;
		}
		dir->buf_off = 0;
	}
	drop_pipe(dir);
	dir->mode = COPY_RW;
	return 0;
}

/* Reads from the source into the holding place: bytes read, 0 at EOF, or
 * -errno. Only called with nothing held. */
static ssize_t take(struct direction *dir, size_t *asked)
{
	if (dir->mode == COPY_SPLICE) {
		*asked = dir->pipe_size;
		return splice_once(dir->src, dir->pipe_wr, dir->pipe_size);
	}
	*asked = SCRATCH_SIZE;
	dir->buf_off = 0;
	return read_once(dir->src, dir->buf ? dir->buf : scratch, SCRATCH_SIZE);
}

/* Writes what is held to the destination: bytes written or -errno. */
static ssize_t put(struct direction *dir)
{
	ssize_t n;

	if (dir->mode == COPY_SPLICE) {
		n = splice_once(dir->pipe_rd, dir->dst, dir->held);
		if (n > 0)
			dir->spliced += (uint64_t)n;
	} else {
		n = send_once(dir->dst, (dir->buf ? dir->buf : scratch) + dir->buf_off, dir->held);
		if (n > 0)
			dir->buf_off += (size_t)n;
	}
	if (n > 0) {
		dir->held -= (size_t)n;
		dir->bytes += (uint64_t)n;
	}
	return n;
}

/* What the scratch buffer holds after a send that did not take it all goes
 * into the direction's own buffer, once; the reads that follow go straight
 * into it until one is sent whole. 0 or -ENOMEM. */
static int keep_held(struct direction *dir)
{
	if (dir->mode != COPY_RW || dir->buf || dir->held == 0)
		return 0;
	dir->buf = malloc(SCRATCH_SIZE);
	if (!dir->buf)
		return -ENOMEM;
	memcpy(dir->buf, scratch + dir->buf_off, dir->held);
	dir->buf_off = 0;
	return 0;
}

/* ---- how a direction ends */

static void record_failure(struct connection *conn, int fd, int err)
{
	if (conn->end_side)
		return;
	conn->end_side = fd == conn->peer_fd ? "peer" : "backend";
	conn->end_errno = err;
}

static void direction_done(struct direction *dir)
{
	dir->state = DIRECTION_DONE;
	dir->held = 0;
	drop_buffer(dir);
	drop_pipe(dir);
}

/* Writing to dst failed: nothing more can reach it. Its source is shut for
 * reading, so a sender still writing gets EPIPE, as from the dead socket
 * itself, instead of waiting on a relay that no longer reads. What it sent
 * and nobody read stays unread: the close that follows shows the sender a
 * reset, as a direct connection would. */
static void direction_cannot_write(struct connection *conn, struct direction *dir, int err,
				   const struct direction *other)
{
	if (dir->state == DIRECTION_DONE)
		return;
	record_failure(conn, dir->dst, err);
	dir->err = err;
	if (other->state != DIRECTION_DONE)
		shutdown(dir->src, SHUT_RD);
	direction_done(dir);
}

/* The source ended (EOF, or an error) and every byte read before it is
 * written: the destination hears EOF. When the other direction is done
 * too, the close that follows at once tells it the same. */
static void direction_finish(struct direction *dir, const struct direction *other)
{
	if (other->state != DIRECTION_DONE)
		shutdown(dir->dst, SHUT_WR);
	direction_done(dir);
}

/* ---- the move: one step per direction, the same for both copy modes */

/* Writes what is held; false when the direction cannot go on this round
 * (throttled, or ended by a failed write). */
static bool direction_put(struct connection *conn, struct direction *dir, struct direction *other,
			  bool just_read)
{
	ssize_t n = put(dir);

	if (n == -EINVAL && dir->mode == COPY_SPLICE) {
		n = fall_back_to_rw(dir);
		if (n == 0)
			n = put(dir);
	}
	if (n < 0 && !errno_is_retry((int)-n)) {
		direction_cannot_write(conn, dir, (int)-n, other);
		return false;
	}
	if (dir->held > 0) {
		/* Throttled: wait until dst takes more. */
		if (keep_held(dir) < 0) {
			direction_cannot_write(conn, dir, ENOMEM, other);
			return false;
		}
		return false;
	}
	/* A read sent whole: no longer throttled, the buffer can go. */
	if (just_read && dir->buf)
		drop_buffer(dir);
	return true;
}

static void direction_move(struct connection *conn, struct direction *dir, struct direction *other,
			   bool readable, bool writable)
{
	for (int reads = 0;;) {
		size_t asked;
		ssize_t n;

		if (dir->held > 0) {
			if (!writable || !direction_put(conn, dir, other, false))
				break;
			/* Emptied: the source may well have more; reading now
			 * saves a round through select(). */
			readable = true;
		}
		if (dir->state != DIRECTION_OPEN || !readable || reads++ == READS_PER_ROUND)
			break;
		/* The last read filled the buffer: a bulk transfer, the rest
		 * goes by splice. */
		if (dir->bulk && dir->splice_wanted && dir->mode == COPY_RW)
			switch_to_splice(dir);
		n = take(dir, &asked);
		if (n == -EINVAL && dir->mode == COPY_SPLICE) {
			n = fall_back_to_rw(dir);
			if (n == 0)
				continue;
		}
		if (n < 0 && errno_is_retry((int)-n))
			break;
		if (n <= 0) {
			/* EOF or an error: what was read before it still goes out. */
			dir->state = DIRECTION_FLUSHING;
			if (n < 0) {
				record_failure(conn, dir->src, (int)-n);
				dir->err = (int)-n;
				/* The other direction writes to this dead socket:
				 * it ends now, and its source hears EPIPE. */
				direction_cannot_write(conn, other, (int)-n, dir);
			}
			break;
		}
		dir->held = (size_t)n;
		dir->bulk = (size_t)n == asked;
		readable = dir->bulk; /* a short read: the source is empty for now */
		if (!direction_put(conn, dir, other, true))
			break;
	}
	if (dir->state == DIRECTION_FLUSHING && dir->held == 0)
		direction_finish(dir, other);
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

struct connection *connection_new(int peer_fd, int backend_fd, const struct peer *peer,
				  bool use_splice, uint64_t now_ms)
{
	struct connection *conn = calloc(1, sizeof(*conn));

	if (!conn) {
		close(peer_fd);
		close(backend_fd);
		return NULL;
	}
	conn->peer_fd = peer_fd;
	conn->backend_fd = backend_fd;
	conn->fresh = true;
	conn->peer = *peer;
	conn->started_ms = now_ms;
	direction_init(&conn->upstream, peer_fd, backend_fd, use_splice);
	direction_init(&conn->downstream, backend_fd, peer_fd, use_splice);
	return conn;
}

/* Read only when nothing is held: the bound on memory, and for splice the
 * guard against a pipe whose slots are full before its bytes are. */
static bool wants_read(const struct direction *dir)
{
	return dir->state == DIRECTION_OPEN && dir->held == 0;
}

static bool wants_write(const struct direction *dir)
{
	return dir->state != DIRECTION_DONE && dir->held > 0;
}

int connection_watch(const struct connection *conn, struct loop *loop)
{
	const struct direction *up = &conn->upstream, *down = &conn->downstream;
	int r = loop_set(loop, conn->peer_fd,
			 (wants_read(up) ? LOOP_READ : 0) | (wants_write(down) ? LOOP_WRITE : 0));

	if (r == 0)
		r = loop_set(loop, conn->backend_fd, (wants_read(down) ? LOOP_READ : 0) |
							     (wants_write(up) ? LOOP_WRITE : 0));
	return r;
}

enum relay_status connection_service(struct connection *conn, struct loop *loop)
{
	struct direction *up = &conn->upstream, *down = &conn->downstream;

	direction_move(conn, up, down, conn->fresh || loop_ready(loop, conn->peer_fd, LOOP_READ),
		       loop_ready(loop, conn->backend_fd, LOOP_WRITE));
	direction_move(conn, down, up, loop_ready(loop, conn->backend_fd, LOOP_READ),
		       loop_ready(loop, conn->peer_fd, LOOP_WRITE));
	conn->fresh = false;
	if (up->state == DIRECTION_DONE && down->state == DIRECTION_DONE)
		return RELAY_FINISHED;
	if (connection_watch(conn, loop) < 0) {
		/* Cannot happen: the server admits only sockets below
		 * FD_SETSIZE. Should it, a connection nobody watches would hang
		 * both sides; end it instead. */
		record_failure(conn, conn->peer_fd, EBADF);
		return RELAY_FINISHED;
	}
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
	struct direction *dirs[2] = { &conn->upstream, &conn->downstream };

	for (int i = 0; i < 2; i++)
		if (dirs[i]->state != DIRECTION_DONE && dirs[i]->held > 0)
			(void)put(dirs[i]);
	shut_and_discard(conn->peer_fd);
	shut_and_discard(conn->backend_fd);
	connection_free(conn);
}

void connection_free(struct connection *conn)
{
	direction_done(&conn->upstream);
	direction_done(&conn->downstream);
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
