/* The event loop's only contact with select(2). The rest of the program
 * says, when it changes, what it wants of a descriptor (read, write, both,
 * nothing); the loop keeps that in master sets, as redis's ae_select.c does,
 * and copies them into select() each round. After select() the caller
 * visits only the descriptors that are ready, found a word of the returned
 * sets at a time: a wakeup that has nothing to do for a connection costs
 * that connection nothing in user space. (The kernel still polls every
 * descriptor handed to select(): that share is the price of the design.)
 * FD_SETSIZE is checked in one place, here. */
#ifndef RDD_LOOP_H
#define RDD_LOOP_H

#include <stdbool.h>
#include <sys/select.h>

enum loop_event {
	LOOP_READ = 1,
	LOOP_WRITE = 2,
};

struct loop {
	fd_set want_read, want_write;   /* master sets: what is wanted now */
	fd_set ready_read, ready_write; /* what the last loop_wait() returned */
	int max_fd;                     /* highest descriptor wanted, or -1 */
};

/* Nothing wanted, nothing ready. */
void loop_init(struct loop *loop);

/* Sets what is wanted of fd (LOOP_READ | LOOP_WRITE, or 0 for nothing).
 * Returns 0, or -EBADF for a descriptor select() cannot hold (negative or
 * >= FD_SETSIZE): FD_SET on one would write past the fd_set. */
int loop_set(struct loop *loop, int fd, int events);

/* Forgets fd (it is about to be closed): wanted and ready alike, so a
 * number reused later in the same round is not taken for ready. */
void loop_forget(struct loop *loop, int fd);

/* Waits up to timeout_ms (-1: no limit). Returns the number of ready
 * descriptors, 0 on timeout or signal, or -errno. */
int loop_wait(struct loop *loop, int timeout_ms);

bool loop_ready(const struct loop *loop, int fd, enum loop_event event);

/* The next ready descriptor above `after` (-1 to start), or -1 when there
 * is none: scans the returned sets a word at a time. */
int loop_next_ready(const struct loop *loop, int after);

#endif
