#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static int self_pipe[2] = { -1, -1 };

/* Counts, not bytes in the pipe, carry the signals: under a storm of
 * SIGUSR1 the pipe can fill, and a SIGTERM must still not be lost. */
static volatile sig_atomic_t stop_count, report_count, hangup_count;

static void on_signal(int signo)
{
	int saved_errno = errno;
	char byte = 0;

	if (signo == SIGTERM || signo == SIGINT)
		stop_count++;
	else if (signo == SIGUSR1)
		report_count++;
	else if (signo == SIGHUP)
		hangup_count++;
	/* Full pipe: a wake-up is already pending, nothing is lost. */
	(void)!write(self_pipe[1], &byte, 1);
	errno = saved_errno;
}

int signals_init(void)
{
	static const int handled[] = { SIGTERM, SIGINT, SIGUSR1, SIGHUP };
	struct sigaction action;

	if (pipe2(self_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;

	memset(&action, 0, sizeof(action));
	action.sa_handler = on_signal;
	action.sa_flags = SA_RESTART;
	/* Handlers never nest, so the counters need no atomic increments. */
	sigemptyset(&action.sa_mask);
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		sigaddset(&action.sa_mask, handled[i]);
	for (size_t i = 0; i < sizeof(handled) / sizeof(handled[0]); i++)
		if (sigaction(handled[i], &action, NULL) < 0)
			return -errno;

	/* A peer that goes away mid-write must cost one connection, not the
	 * process: writes also pass MSG_NOSIGNAL, this covers splice(2). */
	action.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &action, NULL) < 0)
		return -errno;
	return self_pipe[0];
}

struct signal_counts signals_take(void)
{
	struct signal_counts counts;
	sigset_t block, saved;
	char drain[64];

	while (read(self_pipe[0], drain, sizeof(drain)) > 0)
		;
	/* Read and reset with the signals held, so none lands in between. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &saved);
	counts.stop = (unsigned)stop_count;
	counts.report = (unsigned)report_count;
	counts.hangup = (unsigned)hangup_count;
	stop_count = report_count = hangup_count = 0;
	sigprocmask(SIG_SETMASK, &saved, NULL);
	return counts;
}
