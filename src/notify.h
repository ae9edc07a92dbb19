/* What rdd-guest tells systemd (sd_notify): READY, STATUS, STOPPING,
 * WATCHDOG, EXTEND_TIMEOUT_USEC, and FDSTORE for the listener. Without NOTIFY_SOCKET all of it is a
 * no-op; a NOTIFY_SOCKET that points nowhere costs one warning. */
#ifndef RDD_NOTIFY_H
#define RDD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void notify_init(uint64_t now_ms);
void notify_ready(const char *listening_on);
void notify_stopping(void);

/* Hands the listening socket to systemd's file descriptor store (the unit's
 * FileDescriptorStoreMax=), named "listener": across a restart systemd
 * holds it, so the port stays bound and connects wait in its backlog for
 * the next instance, which gets it back as LISTEN_FDS. Returns true when
 * the message was sent (under systemd), false otherwise. */
bool notify_store_listener(int fd);

/* The counters changed: STATUS= follows, at most every STATUS_INTERVAL_MS. */
void notify_status_changed(void);

/* While draining: "give me this much longer" before systemd's stop timeout. */
void notify_extend_timeout(uint64_t usec);

/* Sends what is due (watchdog pings, a held-back STATUS, whose text
 * status() writes into buf only when it is sent). Returns the milliseconds
 * until the next thing is due, or -1 when nothing is. */
int notify_tick(uint64_t now_ms, void (*status)(const void *ctx, char *buf, size_t size),
		const void *ctx);

#endif
