#include "loop.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

/* glibc's fd_set is an array of longs (__fds_bits); scanning it a word at
 * a time skips 64 idle descriptors per comparison. */
#define WORD_BITS (8 * (int)sizeof(__fd_mask))
#define WORDS (FD_SETSIZE / WORD_BITS)

void loop_init(struct loop *loop)
{
	FD_ZERO(&loop->want_read);
	FD_ZERO(&loop->want_write);
	FD_ZERO(&loop->ready_read);
	FD_ZERO(&loop->ready_write);
	loop->max_fd = -1;
}

static bool wanted(const struct loop *loop, int fd)
{
	return FD_ISSET(fd, &loop->want_read) || FD_ISSET(fd, &loop->want_write);
}

int loop_set(struct loop *loop, int fd, int events)
{
	if (fd < 0 || fd >= FD_SETSIZE)
		return -EBADF;
	if (events & LOOP_READ)
		FD_SET(fd, &loop->want_read);
	else
		FD_CLR(fd, &loop->want_read);
	if (events & LOOP_WRITE)
		FD_SET(fd, &loop->want_write);
	else
		FD_CLR(fd, &loop->want_write);
	if (events && fd > loop->max_fd)
		loop->max_fd = fd;
	/* The highest one dropped out: walk down to the next one wanted. It
	 * moves only when that one descriptor goes idle, so the walk is paid
	 * rarely and is short on average. */
	while (loop->max_fd >= 0 && !wanted(loop, loop->max_fd))
		loop->max_fd--;
	return 0;
}

void loop_forget(struct loop *loop, int fd)
{
	if (loop_set(loop, fd, 0) < 0)
		return;
	FD_CLR(fd, &loop->ready_read);
	FD_CLR(fd, &loop->ready_write);
}

int loop_wait(struct loop *loop, int timeout_ms)
{
	struct timeval tv, *timeout = NULL;
	int n;

	if (timeout_ms >= 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
		timeout = &tv;
	}
	/* Only the words up to max_fd matter to select(); copy just those. */
	FD_ZERO(&loop->ready_read);
	FD_ZERO(&loop->ready_write);
	if (loop->max_fd >= 0) {
		size_t bytes = (size_t)(loop->max_fd / WORD_BITS + 1) * sizeof(__fd_mask);

		memcpy(&loop->ready_read, &loop->want_read, bytes);
		memcpy(&loop->ready_write, &loop->want_write, bytes);
	}
	n = select(loop->max_fd + 1, &loop->ready_read, &loop->ready_write, NULL, timeout);
	if (n < 0) {
		FD_ZERO(&loop->ready_read);
		FD_ZERO(&loop->ready_write);
		return errno == EINTR ? 0 : -errno;
	}
	return n;
}

bool loop_ready(const struct loop *loop, int fd, enum loop_event event)
{
	if (fd < 0 || fd >= FD_SETSIZE)
		return false;
	return FD_ISSET(fd, event == LOOP_READ ? &loop->ready_read : &loop->ready_write);
}

int loop_next_ready(const struct loop *loop, int after)
{
	int fd = after + 1;

	while (fd < FD_SETSIZE) {
		int word = fd / WORD_BITS;
		unsigned long bits = ((unsigned long)__FDS_BITS(&loop->ready_read)[word] |
				      (unsigned long)__FDS_BITS(&loop->ready_write)[word]) >>
				     (fd % WORD_BITS);

		if (bits != 0)
			return fd + __builtin_ctzl(bits);
		fd = (word + 1) * WORD_BITS;
	}
	return -1;
}
