/* Leveled logging to stderr with sd-daemon priority prefixes ("<3>", ...),
 * so journald keeps each line's level, and a per-kind rate limiter so that a
 * flood of identical events (refused peers, EMFILE) costs one line a second. */
#ifndef RDD_LOG_H
#define RDD_LOG_H

#include <stdbool.h>
#include <stdint.h>

/* syslog(3) priorities, the numbers sd-daemon(3) prefixes carry. */
enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* Lines above this level are dropped. Set once from --log-level. */
extern int log_max_level;

void log_at(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Replaces control characters (a newline above all) with '?', so that text
 * from outside (an argument, a path) can never start a forged line of its
 * own in the journal. */
void text_make_printable(char *text);

static inline bool log_enabled(int level)
{
	return level <= log_max_level;
}

/* One rate limiter per kind of event: at most one line per interval; the
 * next line that is let through carries the count of the ones dropped. */
struct ratelimit {
	uint64_t last_ms;     /* when the last line was let through */
	uint64_t suppressed;  /* lines dropped since then */
	bool used;
};

#define RATELIMIT_INTERVAL_MS 1000u

/* Returns true when a line may be printed now; *suppressed then receives the
 * number dropped since the previous one. Pure: takes the time as argument. */
bool ratelimit_allow(struct ratelimit *rl, uint64_t now_ms, uint64_t *suppressed);

void log_limited(struct ratelimit *rl, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
