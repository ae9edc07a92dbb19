/* What rdd-guest tells systemd (sd_notify): READY, STATUS, STOPPING,
 * WATCHDOG and EXTEND_TIMEOUT_USEC. Without NOTIFY_SOCKET all of it is a
 * no-op; a NOTIFY_SOCKET that points nowhere costs one warning. */
#ifndef RDD_NOTIFY_H
#define RDD_NOTIFY_H

#include <stdint.h>

struct counters {
	uint64_t active;   /* connections being relayed now */
	uint64_t served;   /* connections accepted and relayed, ever */
	uint64_t refused;  /* peers closed by the peer policy */
	uint64_t failed;   /* accepted, but the backend dial failed */
	uint64_t bytes_up, bytes_down; /* peer->backend, backend->peer */
	uint64_t accept_errors;
};

void notify_init(uint64_t now_ms);
void notify_ready(const char *listening_on);
void notify_stopping(void);

/* The counters changed: STATUS= follows, at most every STATUS_INTERVAL_MS. */
void notify_status_changed(void);

/* While draining: "give me this much longer" before systemd's stop timeout. */
void notify_extend_timeout(uint64_t usec);

/* Sends what is due (watchdog pings, a held-back STATUS). Returns the
 * milliseconds until the next thing is due, or -1 when nothing is. */
int notify_tick(const struct counters *counters, uint64_t now_ms);

#endif
