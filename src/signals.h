/* Signals become ordinary events: handlers only count and poke a
 * self-pipe, and the loop reads the counts when the pipe is readable. */
#ifndef RDD_SIGNALS_H
#define RDD_SIGNALS_H

struct signal_counts {
	unsigned stop;   /* SIGTERM and SIGINT */
	unsigned report; /* SIGUSR1: log the counters */
	unsigned hangup; /* SIGHUP: nothing to reload; must not kill us */
};

/* Installs the handlers, ignores SIGPIPE. Returns the descriptor to watch
 * for reading, or -errno. */
int signals_init(void);

/* Empties the self-pipe and returns (and resets) what arrived since. */
struct signal_counts signals_take(void);

#endif
