/* The event loop's only contact with select(2). The rest of the program
 * says which descriptors it wants to read or write and asks which are
 * ready; it never touches an fd_set, so FD_SETSIZE is checked in one place. */
#ifndef RDD_LOOP_H
#define RDD_LOOP_H

#include <stdbool.h>
#include <sys/select.h>

enum loop_event {
	LOOP_READ = 1,
	LOOP_WRITE = 2,
};

struct loop {
	fd_set want_read, want_write;
	fd_set ready_read, ready_write;
	int max_fd;
};

/* Start a new round: nothing wanted, nothing ready. */
void loop_begin(struct loop *loop);

/* Returns 0, or -EBADF for a descriptor select() cannot hold (negative or
 * >= FD_SETSIZE): FD_SET on one would write past the fd_set. */
int loop_want(struct loop *loop, int fd, enum loop_event events);

/* Wait up to timeout_ms (-1: no limit). Returns the number of ready
 * descriptors, 0 on timeout or signal, or -errno. */
int loop_wait(struct loop *loop, int timeout_ms);

bool loop_ready(const struct loop *loop, int fd, enum loop_event event);

#endif
