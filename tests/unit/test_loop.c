/* The select() wrapper: master sets kept as interest changes, the highest
 * descriptor tracked both ways, and the ready scan visiting exactly the
 * descriptors select() returned, in order, a word at a time. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"
#include "unit.h"

static void test_max_fd_follows_interest(void)
{
	struct loop loop;

	loop_init(&loop);
	CHECK(loop.max_fd == -1);
	CHECK(loop_set(&loop, 5, LOOP_READ) == 0);
	CHECK(loop_set(&loop, 700, LOOP_WRITE) == 0);
	CHECK(loop.max_fd == 700);
	CHECK(loop_set(&loop, 700, 0) == 0);
	CHECK(loop.max_fd == 5);
	CHECK(loop_set(&loop, 5, LOOP_READ | LOOP_WRITE) == 0);
	CHECK(loop_set(&loop, 5, LOOP_WRITE) == 0);
	CHECK(loop.max_fd == 5 && !FD_ISSET(5, &loop.want_read) && FD_ISSET(5, &loop.want_write));
	loop_forget(&loop, 5);
	CHECK(loop.max_fd == -1);
}

static void test_descriptors_select_cannot_hold_are_refused(void)
{
	struct loop loop;

	loop_init(&loop);
	CHECK(loop_set(&loop, -1, LOOP_READ) == -EBADF);
	CHECK(loop_set(&loop, FD_SETSIZE, LOOP_READ) == -EBADF);
	CHECK(loop.max_fd == -1);
	CHECK(!loop_ready(&loop, FD_SETSIZE, LOOP_READ));
}

static void test_ready_scan_visits_exactly_the_ready_ones(void)
{
	struct loop loop;
	int a[2], b[2], c[2], seen[4], n = 0;

	socketpair(AF_UNIX, SOCK_STREAM, 0, a);
	socketpair(AF_UNIX, SOCK_STREAM, 0, b);
	socketpair(AF_UNIX, SOCK_STREAM, 0, c);
	loop_init(&loop);
	loop_set(&loop, a[0], LOOP_READ);      /* readable below */
	loop_set(&loop, b[0], LOOP_READ);      /* stays idle */
	loop_set(&loop, c[0], LOOP_WRITE);     /* writable at once */
	CHECK(write(a[1], "x", 1) == 1);
	CHECK(loop_wait(&loop, 1000) == 2);
	for (int fd = loop_next_ready(&loop, -1); fd >= 0 && n < 4; fd = loop_next_ready(&loop, fd))
		seen[n++] = fd;
	CHECK(n == 2);
	CHECK(seen[0] == (a[0] < c[0] ? a[0] : c[0]) && seen[1] == (a[0] < c[0] ? c[0] : a[0]));
	CHECK(loop_ready(&loop, a[0], LOOP_READ) && !loop_ready(&loop, a[0], LOOP_WRITE));
	CHECK(!loop_ready(&loop, b[0], LOOP_READ));
	/* Forgotten in the same round (closed by then): no longer ready. */
	loop_forget(&loop, a[0]);
	CHECK(!loop_ready(&loop, a[0], LOOP_READ));
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
		close(c[i]);
	}
}

static void test_ready_scan_across_words(void)
{
	struct loop loop;

	loop_init(&loop);
	/* As select() would leave them: bits in the first, a middle and the
	 * last word. */
	FD_SET(0, &loop.ready_read);
	FD_SET(63, &loop.ready_write);
	FD_SET(64, &loop.ready_read);
	FD_SET(FD_SETSIZE - 1, &loop.ready_write);
	CHECK(loop_next_ready(&loop, -1) == 0);
	CHECK(loop_next_ready(&loop, 0) == 63);
	CHECK(loop_next_ready(&loop, 63) == 64);
	CHECK(loop_next_ready(&loop, 64) == FD_SETSIZE - 1);
	CHECK(loop_next_ready(&loop, FD_SETSIZE - 1) == -1);
}

int main(void)
{
	RUN(test_max_fd_follows_interest);
	RUN(test_descriptors_select_cannot_hold_are_refused);
	RUN(test_ready_scan_visits_exactly_the_ready_ones);
	RUN(test_ready_scan_across_words);
	return unit_summary();
}
