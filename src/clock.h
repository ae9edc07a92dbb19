/* Monotonic milliseconds: every timer in rdd-guest (backoff, drain, rate
 * limits, watchdog) is measured on this clock so wall-clock jumps in the VM
 * (WSL resyncs its clock after the host sleeps) never shorten or stretch one. */
#ifndef RDD_CLOCK_H
#define RDD_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds from now until due, 0 once it has passed: a select() timeout. */
static inline int ms_until(uint64_t due_ms, uint64_t now_ms)
{
	return due_ms <= now_ms ? 0 : (int)(due_ms - now_ms);
}

#endif
