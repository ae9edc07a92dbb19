/* The relay's fallbacks from splice to read/write, which no kernel or
 * user here needs (unix and vsock sockets all splice, and root is not held
 * to the per-user pipe budget), forced by interposing splice(2) and
 * fcntl(2): this test binary's definitions win over libc's. Bytes must
 * arrive intact and in order whether the failure comes on the way into the
 * pipe or out of it, with bytes already in the pipe; a pipe the kernel
 * will not grow past 2 pages is not used at all. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "relay.h"
#include "unit.h"

enum refuse { REFUSE_NONE, REFUSE_INTO_PIPE, REFUSE_OUT_OF_PIPE, REFUSE_PIPE_SIZE };
static enum refuse refuse;
static unsigned refused;

static bool is_pipe(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len,
	       unsigned int flags)
{
	bool into_pipe = is_pipe(fd_out);

	if ((refuse == REFUSE_INTO_PIPE && into_pipe) ||
	    (refuse == REFUSE_OUT_OF_PIPE && !into_pipe)) {
		refused++;
		errno = EINVAL; /* what splice says when a file cannot splice */
		return -1;
	}
	return syscall(SYS_splice, fd_in, off_in, fd_out, off_out, len, flags);
}

/* REFUSE_PIPE_SIZE: what a user past /proc/sys/fs/pipe-user-pages-soft
 * gets, a pipe of 2 pages that F_SETPIPE_SZ will not grow. Every other
 * command goes to the kernel; the ones this binary uses take no argument
 * or an int. */
int fcntl(int fd, int cmd, ...)
{
	int arg = 0;

	if (refuse == REFUSE_PIPE_SIZE && cmd == F_SETPIPE_SZ) {
		refused++;
		errno = EPERM;
		return -1;
	}
	if (refuse == REFUSE_PIPE_SIZE && cmd == F_GETPIPE_SZ)
		return 2 * 4096;
	if (cmd != F_GETFL && cmd != F_GETFD && cmd != F_GETPIPE_SZ) {
		va_list ap;

		va_start(ap, cmd);
		arg = va_arg(ap, int);
		va_end(ap);
	}
	return (int)syscall(SYS_fcntl, fd, cmd, arg);
}

static void transfer_with(enum refuse how)
{
	enum { TOTAL = 4 * 1024 * 1024 };
	char *data = malloc(TOTAL), *got = malloc(TOTAL);
	int peer[2], backend[2];
	struct peer who = { .family = AF_UNIX };
	struct connection *conn;
	size_t sent = 0, received = 0;

	for (size_t i = 0; i < TOTAL; i++)
		data[i] = (char)(i * 2654435761u >> 13);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, peer);
	socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, backend);
	struct loop loop;

	conn = connection_new(peer[1], backend[1], &who, true, clock_now_ms());
	loop_init(&loop);
	connection_watch(conn, &loop);
	refuse = how;
	refused = 0;
	for (int i = 0; i < 20000; i++) {
		ssize_t n;

		if (sent < TOTAL) {
			n = write(peer[0], data + sent, TOTAL - sent);
			if (n > 0)
				sent += (size_t)n;
			if (sent == TOTAL)
				shutdown(peer[0], SHUT_WR);
		}
		loop_wait(&loop, 10);
		connection_service(conn, &loop);
		while ((n = read(backend[0], got + received, TOTAL - received)) > 0)
			received += (size_t)n;
		if (received == TOTAL && conn->upstream.state == DIRECTION_DONE)
			break;
	}
	CHECK(refused == 1); /* one refusal, then read/write for good */
	CHECK(conn->upstream.mode == COPY_RW);
	if (how == REFUSE_PIPE_SIZE) /* and no pipe kept, nothing spliced */
		CHECK(conn->upstream.pipe_rd < 0 && conn->upstream.spliced == 0);
	CHECK(received == TOTAL);
	CHECK(memcmp(data, got, TOTAL) == 0);
	CHECK(conn->upstream.state == DIRECTION_DONE);
	refuse = REFUSE_NONE;
	connection_free(conn);
	close(peer[0]);
	close(backend[0]);
	free(data);
	free(got);
}

static void test_source_cannot_splice(void)
{
	transfer_with(REFUSE_INTO_PIPE);
}

static void test_destination_cannot_splice_with_bytes_in_the_pipe(void)
{
	transfer_with(REFUSE_OUT_OF_PIPE);
}

static void test_pipe_budget_spent(void)
{
	transfer_with(REFUSE_PIPE_SIZE);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	RUN(test_source_cannot_splice);
	RUN(test_destination_cannot_splice_with_bytes_in_the_pipe);
	RUN(test_pipe_budget_spent);
	return unit_summary();
}
