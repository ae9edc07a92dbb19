#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "clock.h"

int log_max_level = LOG_LEVEL_INFO;

void text_make_printable(char *text)
{
	for (; *text; text++)
		if ((unsigned char)*text < 0x20 || *text == 0x7f)
			*text = '?';
}

/* Format the whole line first and write it with one call, so that a line is
 * never interleaved with another process's output on a shared stderr. */
static void log_emit(int level, uint64_t suppressed, const char *fmt, va_list ap)
{
	char line[1024];
	int saved_errno = errno;
	int len = snprintf(line, sizeof(line), "<%d>", level);
	int body = vsnprintf(line + len, sizeof(line) - (size_t)len, fmt, ap);

	if (body < 0)
		body = 0;
	len += body;
	if ((size_t)len >= sizeof(line) - 64)
		len = (int)sizeof(line) - 64;
	line[len] = '\0';
	text_make_printable(line);
	if (suppressed > 0)
		len += snprintf(line + len, sizeof(line) - (size_t)len,
				" (%llu similar messages suppressed)",
				(unsigned long long)suppressed);
	line[len++] = '\n';
	fwrite(line, 1, (size_t)len, stderr);
	errno = saved_errno;
}

void log_at(int level, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_emit(level, 0, fmt, ap);
	va_end(ap);
}

bool ratelimit_allow(struct ratelimit *rl, uint64_t now_ms, uint64_t *suppressed)
{
	if (rl->used && now_ms - rl->last_ms < RATELIMIT_INTERVAL_MS) {
		rl->suppressed++;
		return false;
	}
	*suppressed = rl->suppressed;
	rl->suppressed = 0;
	rl->last_ms = now_ms;
	rl->used = true;
	return true;
}

void log_limited(struct ratelimit *rl, int level, const char *fmt, ...)
{
	uint64_t suppressed;
	va_list ap;

	if (!log_enabled(level) || !ratelimit_allow(rl, clock_now_ms(), &suppressed))
		return;
	va_start(ap, fmt);
	log_emit(level, suppressed, fmt, ap);
	va_end(ap);
}
