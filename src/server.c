#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backend.h"
#include "backoff.h"
#include "clock.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "relay.h"
#include "signals.h"

/* Accepts per round: drains a burst quickly without letting a flood of
 * connects (refused peers, say) crowd out the relaying of served ones. */
#define ACCEPTS_PER_ROUND 16

/* Kinds of accept failure, each with its own rate-limited log line. */
enum accept_error_kind {
	ACCEPT_EMFILE,
	ACCEPT_ENFILE,
	ACCEPT_ENOBUFS,
	ACCEPT_ENOMEM,
	ACCEPT_OTHER,
	ACCEPT_ERROR_KINDS,
};

struct server {
	const struct config *cfg;
	struct listener listener;
	int signal_fd;
	/* A backend socket made before accept(): a peer is taken from the
	 * backlog only when there is a descriptor to dial the backend with. */
	int spare_backend_fd;
	struct connection *connections;
	struct counters counters;
	struct backoff backoff;
	uint64_t accept_resume_ms; /* listener left out of select until then */
	bool draining;
	uint64_t drain_deadline_ms;
	uint64_t extend_next_ms;
	struct ratelimit refused_log, dial_log, accept_log[ACCEPT_ERROR_KINDS];
	/* SIGUSR1: a storm of them is one line a second, and the last request
	 * of a storm is still answered, when its second is up. */
	struct ratelimit report_log;
	bool report_pending;
};

static enum accept_error_kind accept_error_kind(int err)
{
	switch (err) {
	case EMFILE: return ACCEPT_EMFILE;
	case ENFILE: return ACCEPT_ENFILE;
	case ENOBUFS: return ACCEPT_ENOBUFS;
	case ENOMEM: return ACCEPT_ENOMEM;
	default: return ACCEPT_OTHER;
	}
}

static bool is_resource_shortage(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

static void log_counters(const struct server *s)
{
	const struct counters *c = &s->counters;

	log_at(LOG_LEVEL_INFO,
	       "counters: active=%" PRIu64 " served=%" PRIu64 " refused=%" PRIu64
	       " failed=%" PRIu64 " bytes_in=%" PRIu64 " bytes_out=%" PRIu64
	       " accept_errors=%" PRIu64,
	       c->active, c->served, c->refused, c->failed, c->bytes_up, c->bytes_down,
	       c->accept_errors);
}

/* Stop watching the listener for a while: see backoff.h. */
static void accept_back_off(struct server *s, int err, uint64_t now)
{
	unsigned delay = backoff_next(&s->backoff);

	s->counters.accept_errors++;
	s->accept_resume_ms = now + delay;
	log_limited(&s->accept_log[accept_error_kind(err)], LOG_LEVEL_WARNING,
		    "accept paused for %u ms: %s", delay, strerror(err));
}

static void connection_add(struct server *s, struct connection *conn)
{
	conn->next = s->connections;
	if (s->connections)
		s->connections->prev = conn;
	s->connections = conn;
	s->counters.active++;
	s->counters.served++;
	notify_status_changed();
}

static void connection_remove(struct server *s, struct connection *conn)
{
	if (conn->prev)
		conn->prev->next = conn->next;
	else
		s->connections = conn->next;
	if (conn->next)
		conn->next->prev = conn->prev;
	s->counters.active--;
	s->counters.bytes_up += conn->upstream.bytes;
	s->counters.bytes_down += conn->downstream.bytes;
	notify_status_changed();
}

static void log_closed(const struct connection *conn, uint64_t now)
{
	char who[PEER_DESCRIBE_SIZE], why[128];
	uint64_t ms = now - conn->started_ms;

	if (!log_enabled(LOG_LEVEL_DEBUG))
		return;
	log_at(LOG_LEVEL_DEBUG,
	       "closed peer %s: in=%" PRIu64 " out=%" PRIu64 " time=%" PRIu64 ".%03us copy=%s end=%s",
	       peer_describe(&conn->peer, who, sizeof(who)), conn->upstream.bytes,
	       conn->downstream.bytes, ms / 1000, (unsigned)(ms % 1000),
	       connection_copy_mode(conn), connection_end_reason(conn, why, sizeof(why)));
}

static bool peer_allowed(const struct server *s, const struct peer *peer)
{
	if (peer->family == AF_VSOCK)
		return policy_allows_cid(&s->cfg->policy, peer->cid);
	if (peer->family == AF_UNIX)
		return policy_allows_uid(&s->cfg->policy, peer->uid);
	return false; /* an inherited socket of another family: no policy, no entry */
}

/* One accepted peer: judge it, dial the backend, start relaying. */
static void serve_peer(struct server *s, int peer_fd, const struct peer *peer, uint64_t now)
{
	char who[PEER_DESCRIBE_SIZE];
	struct connection *conn;
	int backend_fd, r;

	if (!peer_allowed(s, peer)) {
		s->counters.refused++;
		notify_status_changed();
		log_limited(&s->refused_log, LOG_LEVEL_WARNING, "refused peer %s: not in allow-list",
			    peer_describe(peer, who, sizeof(who)));
		close(peer_fd);
		return;
	}
	backend_fd = s->spare_backend_fd;
	s->spare_backend_fd = -1;
	r = backend_connect(backend_fd, s->cfg->backend_path);
	if (r < 0 && r != -EINPROGRESS) {
		s->counters.failed++;
		notify_status_changed();
		log_limited(&s->dial_log, LOG_LEVEL_WARNING,
			    "cannot reach the backend %s for peer %s: %s", s->cfg->backend_path,
			    peer_describe(peer, who, sizeof(who)), strerror(-r));
		close(backend_fd);
		close_with_eof(peer_fd);
		return;
	}
	conn = connection_new(peer_fd, backend_fd, peer, r == -EINPROGRESS, s->cfg->use_splice, now);
	if (!conn) {
		s->counters.failed++;
		notify_status_changed();
		log_limited(&s->dial_log, LOG_LEVEL_WARNING, "out of memory for peer %s",
			    peer_describe(peer, who, sizeof(who)));
		return;
	}
	connection_add(s, conn);
}

static void accept_peers(struct server *s, uint64_t now)
{
	/* The uid decides only with --allow-uid; debug lines name it too. */
	bool want_credentials = s->cfg->policy.n_uids > 0 || log_enabled(LOG_LEVEL_DEBUG);

	for (int i = 0; i < ACCEPTS_PER_ROUND && s->counters.active < s->cfg->max_connections; i++) {
		struct peer peer;
		int fd;

		if (s->spare_backend_fd < 0) {
			fd = backend_socket();
			if (fd < 0) {
				accept_back_off(s, -fd, now);
				return;
			}
			s->spare_backend_fd = fd;
		}
		fd = listener_accept(&s->listener, &peer, want_credentials);
		if (fd < 0) {
			int err = -fd;

			if (err == EAGAIN || err == EWOULDBLOCK)
				return;
			if (err == ECONNABORTED || err == EINTR || err == EPROTO)
				continue; /* that peer is gone; the next may be fine */
			if (is_resource_shortage(err)) {
				accept_back_off(s, err, now);
				return;
			}
			s->counters.accept_errors++;
			log_limited(&s->accept_log[ACCEPT_OTHER], LOG_LEVEL_ERR, "accept failed: %s",
				    strerror(err));
			return;
		}
		backoff_reset(&s->backoff);
		/* The budget in config.h keeps sockets below FD_SETSIZE; should a
		 * descriptor still land above (inherited ones), serving it would
		 * corrupt select()'s sets. */
		if (fd >= FD_SETSIZE || s->spare_backend_fd >= FD_SETSIZE) {
			close(fd);
			accept_back_off(s, EMFILE, now);
			return;
		}
		serve_peer(s, fd, &peer, now);
	}
}

/* Peers still waiting in the backlog would be reset when the listener
 * closes; take each and close it with EOF instead. */
static void turn_away_backlog(struct server *s)
{
	unsigned turned_away = 0;

	for (unsigned i = 0; i < 4096; i++) {
		struct peer peer;
		int fd = listener_accept(&s->listener, &peer, false);

		if (fd == -EINTR || fd == -ECONNABORTED)
			continue;
		if (fd < 0)
			break;
		close_with_eof(fd);
		turned_away++;
	}
	if (turned_away > 0)
		log_at(LOG_LEVEL_INFO, "stopping: %u connection(s) still waiting to be accepted closed",
		       turned_away);
}

static void start_drain(struct server *s, uint64_t now)
{
	if (s->listener.fd >= 0) {
		/* A unix listener shut for reading refuses new connects
		 * (ECONNREFUSED) but still hands out the waiting ones, so none
		 * can slip in between the last accept and the close. (AF_VSOCK
		 * ignores this; there the window is a few microseconds.) */
		shutdown(s->listener.fd, SHUT_RD);
		turn_away_backlog(s);
	}
	listener_close(&s->listener);
	if (s->spare_backend_fd >= 0)
		close(s->spare_backend_fd);
	s->spare_backend_fd = -1;
	s->draining = true;
	s->drain_deadline_ms = now + (uint64_t)s->cfg->drain_timeout_s * 1000u;
	s->extend_next_ms = now;
	notify_stopping();
	log_at(LOG_LEVEL_INFO, "stopping: %" PRIu64 " connection(s) get up to %u s to finish",
	       s->counters.active, s->cfg->drain_timeout_s);
}

static void end_all_connections(struct server *s, uint64_t now)
{
	while (s->connections) {
		struct connection *conn = s->connections;

		connection_remove(s, conn);
		log_closed(conn, now);
		connection_end(conn);
	}
}

static void handle_signals(struct server *s, uint64_t now)
{
	struct signal_counts sig = signals_take();

	if (sig.report)
		s->report_pending = true;
	if (sig.hangup)
		log_at(LOG_LEVEL_DEBUG, "SIGHUP ignored: there is no configuration to reload");
	if (sig.stop == 0)
		return;
	if (!s->draining && sig.stop == 1) {
		start_drain(s, now);
		return;
	}
	if (!s->draining)
		start_drain(s, now);
	log_at(LOG_LEVEL_INFO, "second stop signal: ending %" PRIu64 " connection(s) now",
	       s->counters.active);
	s->drain_deadline_ms = now; /* the loop ends them below */
}

static int min_timeout(int a, int b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

static int ms_until(uint64_t due, uint64_t now)
{
	return due <= now ? 0 : (int)(due - now);
}

static int server_loop(struct server *s)
{
	struct loop loop;

	for (;;) {
		uint64_t now = clock_now_ms();
		bool listening;
		int timeout, n;

		if (s->draining) {
			if (s->counters.active > 0 && now >= s->drain_deadline_ms) {
				log_at(LOG_LEVEL_INFO, "drain timeout: ending %" PRIu64 " connection(s)",
				       s->counters.active);
				end_all_connections(s, now);
			}
			if (s->counters.active == 0)
				return 0;
			if (now >= s->extend_next_ms) {
				/* Ask systemd for the rest of the window plus a second. */
				notify_extend_timeout((s->drain_deadline_ms - now + 1000u) * 1000u);
				s->extend_next_ms = now + 1000u;
			}
		}

		if (s->report_pending) {
			uint64_t suppressed;

			if (ratelimit_allow(&s->report_log, now, &suppressed)) {
				log_counters(s);
				s->report_pending = false;
			}
		}
		timeout = notify_tick(&s->counters, now);
		if (s->report_pending)
			timeout = min_timeout(timeout, ms_until(s->report_log.last_ms +
								  RATELIMIT_INTERVAL_MS, now));
		loop_begin(&loop);
		loop_want(&loop, s->signal_fd, LOOP_READ);
		listening = s->listener.fd >= 0 && !s->draining &&
			    s->counters.active < s->cfg->max_connections;
		if (listening && now < s->accept_resume_ms) {
			listening = false;
			timeout = min_timeout(timeout, ms_until(s->accept_resume_ms, now));
		}
		if (listening)
			loop_want(&loop, s->listener.fd, LOOP_READ);
		for (struct connection *c = s->connections; c; c = c->next)
			connection_want(c, &loop);
		if (s->draining) {
			timeout = min_timeout(timeout, ms_until(s->drain_deadline_ms, now));
			timeout = min_timeout(timeout, ms_until(s->extend_next_ms, now));
		}

		n = loop_wait(&loop, timeout);
		if (n < 0) {
			log_at(LOG_LEVEL_ERR, "select failed: %s", strerror(-n));
			return 1;
		}
		now = clock_now_ms();
		if (loop_ready(&loop, s->signal_fd, LOOP_READ))
			handle_signals(s, now);
		if (listening && s->listener.fd >= 0 && loop_ready(&loop, s->listener.fd, LOOP_READ))
			accept_peers(s, now);
		for (struct connection *c = s->connections, *next; c; c = next) {
			next = c->next;
			if (connection_service(c, &loop) == RELAY_FINISHED) {
				connection_remove(s, c);
				log_closed(c, now);
				connection_free(c);
			}
		}
	}
}

int server_run(const struct config *cfg)
{
	struct server s;
	int status;

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	s.spare_backend_fd = -1;
	s.signal_fd = signals_init();
	if (s.signal_fd < 0) {
		log_at(LOG_LEVEL_ERR, "cannot set up signal handling: %s", strerror(-s.signal_fd));
		return 1;
	}
	if (listener_open(&s.listener, cfg) < 0)
		return 1;
	notify_init(clock_now_ms());
	log_at(LOG_LEVEL_INFO, "listening on %s, relaying to %s (max %u connections, copy=%s)",
	       s.listener.description, cfg->backend_path, cfg->max_connections,
	       cfg->use_splice ? "splice" : "rw");
	notify_ready(s.listener.description);

	status = server_loop(&s);

	if (status != 0)
		end_all_connections(&s, clock_now_ms());
	listener_close(&s.listener);
	if (s.spare_backend_fd >= 0)
		close(s.spare_backend_fd);
	log_counters(&s);
	log_at(LOG_LEVEL_INFO, "exiting");
	return status;
}
