#include "notify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "clock.h"
#include "log.h"

/* STATUS= is for `systemctl status`: a few updates a second are plenty,
 * and a connection storm must not become a notify storm. */
#define STATUS_INTERVAL_MS 250u

static bool enabled;
static bool warned;
static uint64_t watchdog_interval_ms; /* 0: no watchdog */
static uint64_t watchdog_next_ms;
static uint64_t status_sent_ms;
static bool status_dirty;

static void send_notify(const char *message)
{
	int r;

	if (!enabled)
		return;
	r = sd_notify(0, message);
	if (r < 0 && !warned) {
		warned = true;
		log_at(LOG_LEVEL_WARNING, "cannot notify systemd (NOTIFY_SOCKET=%s): %s",
		       getenv("NOTIFY_SOCKET"), strerror(-r));
	}
}

void notify_init(uint64_t now_ms)
{
	uint64_t usec = 0;

	enabled = getenv("NOTIFY_SOCKET") != NULL;
	/* Ping at half the period systemd allows, as sd_watchdog_enabled(3)
	 * recommends, so one slow round does not get us killed. */
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		watchdog_interval_ms = usec / 2000u;
		if (watchdog_interval_ms == 0)
			watchdog_interval_ms = 1;
		watchdog_next_ms = now_ms;
	}
	status_dirty = true;
}

void notify_ready(const char *listening_on)
{
	char message[256];

	snprintf(message, sizeof(message), "READY=1\nSTATUS=listening on %s", listening_on);
	send_notify(message);
}

bool notify_store_listener(int fd)
{
	int r;

	const char *store_max = getenv("FDSTORE");

	if (!enabled)
		return false;
	/* systemd 254 and later say how many descriptors the unit may store;
	 * with none, the socket would be dropped, and the daemon must drain it
	 * as its own. Older systemd says nothing: the shipped unit sets
	 * FileDescriptorStoreMax=1. */
	if (store_max && strtoul(store_max, NULL, 10) == 0)
		return false;
	r = sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=listener", &fd, 1);
	if (r < 0)
		log_at(LOG_LEVEL_WARNING,
		       "cannot hand the listener to systemd's descriptor store: %s; "
		       "a restart will refuse connects until the next instance listens",
		       strerror(-r));
	return r > 0;
}

void notify_stopping(void)
{
	send_notify("STOPPING=1");
}

void notify_status_changed(void)
{
	status_dirty = true;
}

void notify_extend_timeout(uint64_t usec)
{
	char message[64];

	snprintf(message, sizeof(message), "EXTEND_TIMEOUT_USEC=%" PRIu64, usec);
	send_notify(message);
}

int notify_tick(uint64_t now_ms, void (*status)(const void *ctx, char *buf, size_t size),
		const void *ctx)
{
	int next = -1;

	if (!enabled)
		return -1;
	if (watchdog_interval_ms > 0) {
		if (now_ms >= watchdog_next_ms) {
			send_notify("WATCHDOG=1");
			watchdog_next_ms = now_ms + watchdog_interval_ms;
		}
		next = ms_until(watchdog_next_ms, now_ms);
	}
	if (status_dirty) {
		if (now_ms - status_sent_ms >= STATUS_INTERVAL_MS || status_sent_ms == 0) {
			char message[160] = "STATUS=";

			status(ctx, message + 7, sizeof(message) - 7);
			send_notify(message);
			status_sent_ms = now_ms;
			status_dirty = false;
		} else {
			int wait = ms_until(status_sent_ms + STATUS_INTERVAL_MS, now_ms);

			if (next < 0 || wait < next)
				next = wait;
		}
	}
	return next;
}
