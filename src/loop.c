#include "loop.h"

#include <errno.h>
#include <stddef.h>

void loop_begin(struct loop *loop)
{
	FD_ZERO(&loop->want_read);
	FD_ZERO(&loop->want_write);
	FD_ZERO(&loop->ready_read);
	FD_ZERO(&loop->ready_write);
	loop->max_fd = -1;
}

int loop_want(struct loop *loop, int fd, enum loop_event events)
{
	if (fd < 0 || fd >= FD_SETSIZE)
		return -EBADF;
	if (events & LOOP_READ)
		FD_SET(fd, &loop->want_read);
	if (events & LOOP_WRITE)
		FD_SET(fd, &loop->want_write);
	if (fd > loop->max_fd)
		loop->max_fd = fd;
	return 0;
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
	loop->ready_read = loop->want_read;
	loop->ready_write = loop->want_write;
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
