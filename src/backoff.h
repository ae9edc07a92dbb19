/* How long to stop watching the listener after accept() failed for lack of
 * a resource (EMFILE, ENFILE, ENOBUFS, ENOMEM). Retrying at once would spin:
 * the condition lasts until some connection closes. Waiting in the kernel
 * backlog costs a client nothing, and established connections keep running
 * because the loop never sleeps, it only leaves the listener out of select. */
#ifndef RDD_BACKOFF_H
#define RDD_BACKOFF_H

#define BACKOFF_FIRST_MS 10u
#define BACKOFF_MAX_MS 1000u

struct backoff {
	unsigned delay_ms; /* 0: not backing off */
};

/* The next delay: 10, 20, 40, ... 640, 1000, 1000, ... */
unsigned backoff_next(struct backoff *backoff);

/* After a successful accept the next failure starts again at 10 ms. */
void backoff_reset(struct backoff *backoff);

#endif
