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

/* Peers served per round: drains a burst quickly without letting it crowd
 * out the relaying of connections already served. Refused peers have a
 * budget of their own, so that a flood of them never slows the accepting
 * of allowed ones; it is no larger, so that a round spent refusing stays as
 * short for the connections being relayed (the stress suite's
 * refused-peer-flood measures their rate). */
#define ACCEPTS_PER_ROUND 16
#define REFUSALS_PER_ROUND 16

/* A backend that answers EAGAIN to connect() has a full listen backlog
 * (dockerd under a burst). A direct client would wait in connect(); the
 * relay waits too, retrying on a timer, for at most this long. */
#define DIAL_PATIENCE_MS 1000u
#define DIAL_RETRY_FIRST_MS 5u
#define DIAL_RETRY_MAX_MS 100u

/* Kinds of accept failure, each with its own rate-limited log line. */
enum accept_error_kind {
	ACCEPT_EMFILE,
	ACCEPT_ENFILE,
	ACCEPT_ENOBUFS,
	ACCEPT_ENOMEM,
	ACCEPT_OTHER,
	ACCEPT_ERROR_KINDS,
};

struct counters {
	uint64_t active;   /* connections being relayed or dialled now */
	uint64_t served;   /* connections accepted and relayed, ever */
	uint64_t refused;  /* peers closed by the peer policy */
	uint64_t failed;   /* accepted, but the backend dial failed */
	uint64_t bytes_up, bytes_down; /* peer->backend, backend->peer */
	uint64_t accept_errors;
};

/* A peer accepted while the backend's backlog was full. */
struct dial {
	int peer_fd, backend_fd;
	struct peer peer;
	uint64_t accepted_ms, next_ms;
	unsigned delay_ms;
};

struct server {
	const struct config *cfg;
	struct listener listener;
	struct loop loop;
	int signal_fd;
	/* A backend socket made before accept(): a peer is taken from the
	 * backlog only when there is a descriptor to dial the backend with. */
	int spare_backend_fd;
	/* Each connection under both its sockets' numbers: select() says
	 * which descriptors are ready, this says whose they are. */
	struct connection *by_fd[FD_SETSIZE];
	struct dial dials[RDD_MAX_CONNECTIONS_LIMIT];
	unsigned n_dials;
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

static void format_status(const void *ctx, char *buf, size_t size)
{
	const struct counters *c = ctx;

	snprintf(buf, size, "active %" PRIu64 ", served %" PRIu64 ", refused %" PRIu64
		 ", failed %" PRIu64, c->active, c->served, c->refused, c->failed);
}

/* Stop watching the listener for a while: see backoff.h. Every accept
 * failure but "that peer is gone" lands here: retrying at once after EPERM
 * or EINVAL would spin as surely as after EMFILE. `why` is strerror(err)
 * unless the caller knows better. */
static void accept_back_off(struct server *s, int err, const char *why, uint64_t now)
{
	unsigned delay = backoff_next(&s->backoff);

	s->counters.accept_errors++;
	s->accept_resume_ms = now + delay;
	log_limited(&s->accept_log[accept_error_kind(err)],
		    accept_error_kind(err) == ACCEPT_OTHER ? LOG_LEVEL_ERR : LOG_LEVEL_WARNING,
		    "accept paused for %u ms: %s", delay, why ? why : strerror(err));
}

#define BEYOND_SELECT "a socket got a number select() cannot watch (FD_SETSIZE)"

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

/* ---- the connections: which are there, and their end */

static void connection_retire(struct server *s, struct connection *conn, uint64_t now, bool ended)
{
	loop_forget(&s->loop, conn->peer_fd);
	loop_forget(&s->loop, conn->backend_fd);
	s->by_fd[conn->peer_fd] = s->by_fd[conn->backend_fd] = NULL;
	s->counters.active--;
	s->counters.bytes_up += conn->upstream.bytes;
	s->counters.bytes_down += conn->downstream.bytes;
	notify_status_changed();
	log_closed(conn, now);
	if (ended)
		connection_end(conn);
	else
		connection_free(conn);
}

static void connection_run(struct server *s, struct connection *conn, uint64_t now)
{
	if (connection_service(conn, &s->loop) == RELAY_FINISHED)
		connection_retire(s, conn, now, false);
}

static void dial_failed(struct server *s, int peer_fd, int backend_fd, const struct peer *peer,
			int err)
{
	char who[PEER_DESCRIBE_SIZE];

	s->counters.failed++;
	notify_status_changed();
	log_limited(&s->dial_log, LOG_LEVEL_WARNING, "cannot reach the backend %s for peer %s: %s%s",
		    s->cfg->backend_path, peer_describe(peer, who, sizeof(who)), strerror(err),
		    err == EAGAIN ? " (its listen backlog stayed full)" : "");
	close(backend_fd);
	close_with_eof(peer_fd);
}

/* The backend is connected: relay, starting at once with the peer's first
 * bytes, which have usually arrived by now. */
static void relay_start(struct server *s, int peer_fd, int backend_fd, const struct peer *peer,
			uint64_t now)
{
	char who[PEER_DESCRIBE_SIZE];
	struct connection *conn = connection_new(peer_fd, backend_fd, peer, s->cfg->use_splice, now);

	if (!conn) {
		s->counters.failed++;
		notify_status_changed();
		log_limited(&s->dial_log, LOG_LEVEL_WARNING, "out of memory for peer %s",
			    peer_describe(peer, who, sizeof(who)));
		return;
	}
	s->counters.active++;
	s->counters.served++;
	s->by_fd[peer_fd] = s->by_fd[backend_fd] = conn;
	notify_status_changed();
	connection_run(s, conn, now);
}

static void dial_forget(struct server *s, unsigned i)
{
	s->dials[i] = s->dials[--s->n_dials];
	s->counters.active--;
}

/* Peers waiting for a backend whose backlog was full: try again when due. */
static void dials_retry(struct server *s, uint64_t now)
{
	for (unsigned i = 0; i < s->n_dials;) {
		struct dial d = s->dials[i];
		int r;

		if (now < d.next_ms) {
			i++;
			continue;
		}
		r = backend_connect(d.backend_fd, s->cfg->backend_path);
		if (r == -EAGAIN && now - d.accepted_ms < DIAL_PATIENCE_MS) {
			s->dials[i].delay_ms = d.delay_ms * 2 > DIAL_RETRY_MAX_MS ? DIAL_RETRY_MAX_MS
										  : d.delay_ms * 2;
			s->dials[i].next_ms = now + s->dials[i].delay_ms;
			i++;
			continue;
		}
		dial_forget(s, i);
		if (r < 0)
			dial_failed(s, d.peer_fd, d.backend_fd, &d.peer, -r);
		else
			relay_start(s, d.peer_fd, d.backend_fd, &d.peer, now);
	}
}

static int dials_timeout(const struct server *s, uint64_t now)
{
	int timeout = -1;

	for (unsigned i = 0; i < s->n_dials; i++) {
		int t = ms_until(s->dials[i].next_ms, now);

		if (timeout < 0 || t < timeout)
			timeout = t;
	}
	return timeout;
}

static bool peer_allowed(const struct server *s, const struct peer *peer)
{
	if (peer->family == AF_VSOCK)
		return policy_allows_cid(&s->cfg->policy, peer->cid);
	if (peer->family == AF_UNIX)
		return policy_allows_uid(&s->cfg->policy, peer->uid);
	return false; /* an inherited socket of another family: no policy, no entry */
}

/* One accepted peer: judge it, dial the backend, start relaying. Returns
 * false when the policy refused it. */
static bool serve_peer(struct server *s, int peer_fd, const struct peer *peer, uint64_t now)
{
	char who[PEER_DESCRIBE_SIZE];
	int backend_fd, r;

	if (!peer_allowed(s, peer)) {
		s->counters.refused++;
		notify_status_changed();
		log_limited(&s->refused_log, LOG_LEVEL_WARNING, "refused peer %s: not in allow-list",
			    peer_describe(peer, who, sizeof(who)));
		close(peer_fd);
		return false;
	}
	backend_fd = s->spare_backend_fd;
	s->spare_backend_fd = -1;
	r = backend_connect(backend_fd, s->cfg->backend_path);
	if (r == -EAGAIN) {
		struct dial *d = &s->dials[s->n_dials++];

		*d = (struct dial){ .peer_fd = peer_fd, .backend_fd = backend_fd, .peer = *peer,
				    .accepted_ms = now, .delay_ms = DIAL_RETRY_FIRST_MS,
				    .next_ms = now + DIAL_RETRY_FIRST_MS };
		s->counters.active++;
		return true;
	}
	if (r < 0)
		dial_failed(s, peer_fd, backend_fd, peer, -r);
	else
		relay_start(s, peer_fd, backend_fd, peer, now);
	return true;
}

/* Takes peers from the backlog while the limit allows: `limit` is
 * --max-connections, or at shutdown what select() can hold at all. Returns
 * how many it took. */
static int accept_peers(struct server *s, uint64_t now, uint64_t limit)
{
	/* The uid decides only with --allow-uid; debug lines name it too. */
	bool want_credentials = s->cfg->policy.n_uids > 0 || log_enabled(LOG_LEVEL_DEBUG);
	int served = 0, refused = 0, vanished = 0;

	/* Vanished peers (ECONNABORTED, EINTR) count too: an accept that fails
	 * so every time must not hold the loop away from select(). */
	while (served + vanished < ACCEPTS_PER_ROUND && refused < REFUSALS_PER_ROUND &&
	       s->counters.active < limit) {
		struct peer peer;
		int fd;

		if (s->spare_backend_fd < 0) {
			fd = backend_socket();
			/* The descriptor budget in config.h keeps sockets below
			 * FD_SETSIZE; should one still land above (inherited
			 * descriptors), select() could not watch it. */
			if (fd >= FD_SETSIZE) {
				close(fd);
				accept_back_off(s, EMFILE, BEYOND_SELECT, now);
				break;
			}
			if (fd < 0) {
				accept_back_off(s, -fd, NULL, now);
				break;
			}
			s->spare_backend_fd = fd;
		}
		fd = listener_accept(&s->listener, &peer, want_credentials);
		if (fd < 0) {
			if (fd == -EAGAIN || fd == -EWOULDBLOCK)
				break;
			if (fd == -ECONNABORTED || fd == -EINTR) {
				vanished++;
				continue; /* that peer is gone; the next may be fine */
			}
			accept_back_off(s, -fd, NULL, now);
			break;
		}
		backoff_reset(&s->backoff);
		if (fd >= FD_SETSIZE) {
			/* That peer cannot be watched: it sees the connection
			 * closed, and the listener rests until descriptors free up. */
			close_with_eof(fd);
			accept_back_off(s, EMFILE, BEYOND_SELECT, now);
			break;
		}
		if (serve_peer(s, fd, &peer, now))
			served++;
		else
			refused++;
	}
	return served + refused;
}

/* ---- shutdown */

/* A listener of our own that nothing keeps after us: connects arriving from
 * now on cannot be served. Refuse new ones (a unix listener shut for
 * reading answers ECONNREFUSED, and still hands out the waiting ones, so
 * none can slip in between the last accept and the close; AF_VSOCK ignores
 * it, and there the window is a few microseconds), then take every peer the
 * backlog holds and relay it under the drain deadline: its connect()
 * completed, and it has usually sent its request. */
static void accept_last_peers(struct server *s, uint64_t now)
{
	unsigned taken = 0;
	int n, rounds = 0;

	shutdown(s->listener.fd, SHUT_RD);
	/* Bounded: on AF_VSOCK a flood of refused peers never runs dry. */
	do {
		n = accept_peers(s, now, RDD_MAX_CONNECTIONS_LIMIT);
		taken += (unsigned)n;
	} while (n > 0 && ++rounds < 64);
	if (taken > 0)
		log_at(LOG_LEVEL_INFO, "stopping: %u connection(s) waiting to be accepted taken", taken);
}

static void start_drain(struct server *s, uint64_t now)
{
	if (s->listener.fd >= 0) {
		loop_forget(&s->loop, s->listener.fd);
		/* A socket that outlives us (systemd's, a parent's, or in the
		 * descriptor store) is not ours to shut down or empty: the
		 * next instance accepts what waits in it. */
		if (!listener_outlives_us(&s->listener))
			accept_last_peers(s, now);
		else
			log_at(LOG_LEVEL_INFO,
			       "stopping: the listener stays open for the next instance");
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
	for (int fd = 0; fd < FD_SETSIZE; fd++) {
		struct connection *conn = s->by_fd[fd];

		if (conn && conn->peer_fd == fd)
			connection_retire(s, conn, now, true);
	}
	while (s->n_dials > 0) {
		struct dial d = s->dials[0];

		dial_forget(s, 0);
		dial_failed(s, d.peer_fd, d.backend_fd, &d.peer, ETIMEDOUT);
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

/* ---- the loop */

static int min_timeout(int a, int b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

/* The connections whose sockets select() found ready, each once. */
static void service_ready(struct server *s, uint64_t now)
{
	for (int fd = loop_next_ready(&s->loop, -1); fd >= 0; fd = loop_next_ready(&s->loop, fd)) {
		struct connection *conn = s->by_fd[fd];
		int other;

		if (!conn)
			continue; /* the listener, the self-pipe, or ended this round */
		/* Both sockets ready: served at the lower number already. */
		other = fd == conn->peer_fd ? conn->backend_fd : conn->peer_fd;
		if (other < fd && (loop_ready(&s->loop, other, LOOP_READ) ||
				   loop_ready(&s->loop, other, LOOP_WRITE)))
			continue;
		connection_run(s, conn, now);
	}
}

static int server_loop(struct server *s)
{
	loop_set(&s->loop, s->signal_fd, LOOP_READ);
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
		timeout = notify_tick(now, format_status, &s->counters);
		if (s->report_pending)
			timeout = min_timeout(timeout, ms_until(s->report_log.last_ms +
								  RATELIMIT_INTERVAL_MS, now));
		listening = s->listener.fd >= 0 && !s->draining &&
			    s->counters.active < s->cfg->max_connections;
		if (listening && now < s->accept_resume_ms) {
			listening = false;
			timeout = min_timeout(timeout, ms_until(s->accept_resume_ms, now));
		}
		if (s->listener.fd >= 0)
			loop_set(&s->loop, s->listener.fd, listening ? LOOP_READ : 0);
		if (s->n_dials > 0)
			timeout = min_timeout(timeout, dials_timeout(s, now));
		if (s->draining) {
			timeout = min_timeout(timeout, ms_until(s->drain_deadline_ms, now));
			timeout = min_timeout(timeout, ms_until(s->extend_next_ms, now));
		}

		n = loop_wait(&s->loop, timeout);
		if (n < 0) {
			log_at(LOG_LEVEL_ERR, "select failed: %s", strerror(-n));
			return 1;
		}
		now = clock_now_ms();
		if (loop_ready(&s->loop, s->signal_fd, LOOP_READ))
			handle_signals(s, now);
		if (listening && s->listener.fd >= 0 && loop_ready(&s->loop, s->listener.fd, LOOP_READ))
			accept_peers(s, now, s->cfg->max_connections);
		if (s->n_dials > 0)
			dials_retry(s, now);
		service_ready(s, now);
	}
}

int server_run(const struct config *cfg)
{
	static struct server s; /* large (a table per descriptor); one per process */
	int status;

	memset(&s, 0, sizeof(s));
	s.cfg = cfg;
	s.spare_backend_fd = -1;
	loop_init(&s.loop);
	s.signal_fd = signals_init();
	if (s.signal_fd < 0) {
		log_at(LOG_LEVEL_ERR, "cannot set up signal handling: %s", strerror(-s.signal_fd));
		return 1;
	}
	if (listener_open(&s.listener, cfg) < 0)
		return 1;
	notify_init(clock_now_ms());
	/* Our own socket goes into systemd's descriptor store, so that a
	 * restart (an RPM upgrade's try-restart) keeps the port bound. */
	if (!s.listener.inherited)
		s.listener.stored = notify_store_listener(s.listener.fd);
	log_at(LOG_LEVEL_INFO, "listening on %s%s, relaying to %s (max %u connections, copy=%s)",
	       s.listener.description,
	       s.listener.inherited ? (s.listener.stored ? " (passed in, named \"listener\": ours, kept across a restart)"
							 : " (passed in)")
				    : (s.listener.stored ? " (kept in systemd's descriptor store)" : ""),
	       cfg->backend_path, cfg->max_connections, cfg->use_splice ? "splice" : "rw");
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
