/* The relay's state machine, driven over real socket pairs: bytes arrive
 * intact and in order, each direction half-closes on its own, a slow
 * reader bounds what the relay holds, and a hard error ends both. Every
 * test runs once with read/write and once with splice. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "relay.h"
#include "unit.h"

static bool use_splice;

struct rig {
	int peer_app, backend_app; /* the test's ends */
	struct loop loop;
	struct connection *conn;
	enum relay_status status;
	/* What the connection held when it finished: the server frees a
	 * finished connection at once (its close is the last half-close), and
	 * so does step(); the checks read this copy. */
	struct connection ended;
};

static void nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void rig_open(struct rig *rig)
{
	int peer[2], backend[2];
	struct peer who = { .family = AF_UNIX };

	socketpair(AF_UNIX, SOCK_STREAM, 0, peer);
	socketpair(AF_UNIX, SOCK_STREAM, 0, backend);
	for (int i = 0; i < 2; i++) {
		nonblock(peer[i]);
		nonblock(backend[i]);
	}
	rig->peer_app = peer[0];
	rig->backend_app = backend[0];
	rig->conn = connection_new(peer[1], backend[1], &who, use_splice, clock_now_ms());
	rig->status = RELAY_RUNNING;
	loop_init(&rig->loop);
	connection_watch(rig->conn, &rig->loop);
}

static void rig_close(struct rig *rig)
{
	if (rig->conn && rig->status != RELAY_FINISHED)
		connection_free(rig->conn);
	if (rig->peer_app >= 0)
		close(rig->peer_app);
	if (rig->backend_app >= 0)
		close(rig->backend_app);
}

/* One round of the loop, as the server runs it. */
static void step(struct rig *rig)
{
	if (rig->status == RELAY_FINISHED)
		return;
	loop_wait(&rig->loop, 20);
	rig->status = connection_service(rig->conn, &rig->loop);
	if (rig->status == RELAY_FINISHED) {
		rig->ended = *rig->conn;
		connection_free(rig->conn);
		rig->conn = &rig->ended;
	}
}

/* Reads what fd has now into buf; returns bytes, 0 at EOF, -1 if none yet. */
static ssize_t take(int fd, char *buf, size_t size)
{
	ssize_t n = read(fd, buf, size);

	return n < 0 && errno == EAGAIN ? -1 : n;
}

/* Steps the relay until `fd` yields exactly `want` bytes then EOF (or until
 * the step budget runs out). Returns true when both were seen. */
static bool receive_all_then_eof(struct rig *rig, int fd, const char *want, size_t len)
{
	char buf[4096];
	size_t got = 0;

	for (int i = 0; i < 200; i++) {
		ssize_t n;

		step(rig);
		while ((n = take(fd, buf, sizeof(buf))) > 0) {
			if (got + (size_t)n > len || memcmp(buf, want + got, (size_t)n) != 0)
				return false;
			got += (size_t)n;
		}
		if (n == 0)
			return got == len;
	}
	return false;
}

static void test_peer_half_closes_first(void)
{
	struct rig rig;

	rig_open(&rig);
	CHECK(write(rig.peer_app, "request", 7) == 7);
	shutdown(rig.peer_app, SHUT_WR);
	CHECK(receive_all_then_eof(&rig, rig.backend_app, "request", 7));
	CHECK(rig.status == RELAY_RUNNING); /* the other direction still runs */
	CHECK(rig.conn->upstream.state == DIRECTION_DONE);
	CHECK(write(rig.backend_app, "reply", 5) == 5);
	shutdown(rig.backend_app, SHUT_WR);
	CHECK(receive_all_then_eof(&rig, rig.peer_app, "reply", 5));
	for (int i = 0; i < 10 && rig.status == RELAY_RUNNING; i++)
		step(&rig);
	CHECK(rig.status == RELAY_FINISHED);
	CHECK(rig.conn->end_side == NULL);
	CHECK(rig.conn->upstream.bytes == 7 && rig.conn->downstream.bytes == 5);
	/* A few bytes never cost a pipe, even with --splice. */
	CHECK(strcmp(connection_copy_mode(rig.conn), "rw") == 0);
	CHECK(rig.conn->upstream.pipe_rd < 0 && rig.conn->downstream.pipe_rd < 0);
	rig_close(&rig);
}

static void test_backend_half_closes_first(void)
{
	struct rig rig;

	rig_open(&rig);
	CHECK(write(rig.backend_app, "banner", 6) == 6);
	shutdown(rig.backend_app, SHUT_WR);
	CHECK(receive_all_then_eof(&rig, rig.peer_app, "banner", 6));
	CHECK(rig.status == RELAY_RUNNING);
	/* The peer's later data still reaches the backend. */
	CHECK(write(rig.peer_app, "late data", 9) == 9);
	shutdown(rig.peer_app, SHUT_WR);
	CHECK(receive_all_then_eof(&rig, rig.backend_app, "late data", 9));
	for (int i = 0; i < 10 && rig.status == RELAY_RUNNING; i++)
		step(&rig);
	CHECK(rig.status == RELAY_FINISHED);
	rig_close(&rig);
}

/* A reader that does not read: the relay holds at most one read's worth
 * (128 KiB) or one pipe's (256 KiB) beyond what the sockets queue, then the
 * writer is throttled; once the reader reads, every byte arrives in order.
 * With --splice the bulk moves to splice after the first full read. */
static void test_slow_reader_throttles_and_nothing_is_lost(void)
{
	enum { TOTAL = 8 * 1024 * 1024 };
	char *data = malloc(TOTAL), *got = malloc(TOTAL);
	size_t sent = 0, received = 0, most_held = 0;
	struct rig rig;
	unsigned seed = 12345;

	for (size_t i = 0; i < TOTAL; i++) {
		seed = seed * 1103515245u + 12345u;
		data[i] = (char)(seed >> 16);
	}
	rig_open(&rig);
	/* Phase 1: write as much as goes in while nobody reads. */
	for (int i = 0; i < 100; i++) {
		ssize_t n = write(rig.peer_app, data + sent, TOTAL - sent);

		if (n > 0)
			sent += (size_t)n;
		step(&rig);
		size_t held = rig.conn->upstream.held;
		if (held > most_held)
			most_held = held;
	}
	CHECK(sent < TOTAL); /* the writer was throttled */
	CHECK(most_held <= (use_splice ? 256 : 128) * 1024);
	/* Phase 2: read everything; the rest flows. */
	for (int i = 0; i < 20000 && received < TOTAL; i++) {
		ssize_t n;

		if (sent < TOTAL) {
			n = write(rig.peer_app, data + sent, TOTAL - sent);
			if (n > 0)
				sent += (size_t)n;
			if (sent == TOTAL)
				shutdown(rig.peer_app, SHUT_WR);
		}
		step(&rig);
		while ((n = take(rig.backend_app, got + received, TOTAL - received)) > 0)
			received += (size_t)n;
	}
	CHECK(received == TOTAL);
	CHECK(memcmp(data, got, TOTAL) == 0);
	CHECK(rig.conn->upstream.bytes == TOTAL);
	CHECK(strcmp(connection_copy_mode(rig.conn), use_splice ? "splice" : "rw") == 0);
	if (use_splice)
		CHECK(rig.conn->upstream.spliced > TOTAL / 2);
	rig_close(&rig);
	free(data);
	free(got);
}

static void test_backend_gone_ends_both(void)
{
	struct rig rig;
	char buf[16];

	rig_open(&rig);
	close(rig.backend_app);
	rig.backend_app = -1;
	CHECK(write(rig.peer_app, "into the void", 13) == 13);
	for (int i = 0; i < 10 && rig.status == RELAY_RUNNING; i++)
		step(&rig);
	CHECK(rig.status == RELAY_FINISHED);
	CHECK(rig.conn->end_side && strcmp(rig.conn->end_side, "backend") == 0);
	CHECK(rig.conn->end_errno == EPIPE || rig.conn->end_errno == ECONNRESET);
	/* The peer sees its side closed too. */
	CHECK(read(rig.peer_app, buf, sizeof(buf)) <= 0);
	rig_close(&rig);
}

/* The backend answers and closes with the request unread (a reset): the
 * answer still reaches the peer in full, and the peer's further writes are
 * refused (EPIPE) as they would be by the dead socket itself. */
static void test_backend_answers_then_resets(void)
{
	struct rig rig;
	char buf[64];
	ssize_t n;

	rig_open(&rig);
	CHECK(write(rig.peer_app, "request body", 12) == 12);
	step(&rig); /* forwarded, and left unread by the backend */
	CHECK(write(rig.backend_app, "answer", 6) == 6);
	close(rig.backend_app);
	rig.backend_app = -1;
	for (int i = 0; i < 10 && rig.status == RELAY_RUNNING; i++)
		step(&rig);
	CHECK(rig.status == RELAY_FINISHED);
	n = read(rig.peer_app, buf, sizeof(buf));
	CHECK(n == 6 && memcmp(buf, "answer", 6) == 0);
	CHECK(read(rig.peer_app, buf, sizeof(buf)) <= 0);
	CHECK(write(rig.peer_app, "more", 4) < 0 && errno == EPIPE);
	CHECK(rig.conn->downstream.bytes == 6);
	CHECK(rig.conn->end_side && strcmp(rig.conn->end_side, "backend") == 0);
	rig_close(&rig);
}

/* The peer stops reading and goes (writes to it fail): what it sent
 * before still reaches the backend, then EOF; the backend's own writes are
 * refused from then on. */
static void test_peer_gone_while_its_request_is_in_flight(void)
{
	enum { SIZE = 1024 * 1024 };
	char *data = malloc(SIZE), *got = malloc(SIZE);
	size_t sent = 0, received = 0;
	struct rig rig;
	ssize_t n;

	for (size_t i = 0; i < SIZE; i++)
		data[i] = (char)(i * 7);
	rig_open(&rig);
	while (sent < SIZE) {
		n = write(rig.peer_app, data + sent, SIZE - sent);
		if (n > 0)
			sent += (size_t)n;
		else
			break; /* the relay holds what it may; the rest stays queued */
		step(&rig);
	}
	CHECK(write(rig.backend_app, "reply", 5) == 5);
	step(&rig);
	/* The peer leaves with the reply unread, its request partly queued. */
	close(rig.peer_app);
	rig.peer_app = -1;
	for (int i = 0; i < 2000 && received < sent; i++) {
		step(&rig);
		while ((n = take(rig.backend_app, got + received, SIZE - received)) > 0)
			received += (size_t)n;
	}
	CHECK(received == sent && memcmp(data, got, sent) == 0);
	for (int i = 0; i < 10 && rig.status == RELAY_RUNNING; i++) {
		step(&rig);
		(void)take(rig.backend_app, got, SIZE);
	}
	CHECK(rig.status == RELAY_FINISHED);
	CHECK(rig.conn->upstream.bytes == sent);
	rig_close(&rig);
	free(data);
	free(got);
}

static void test_end_gives_eof_not_reset(void)
{
	struct rig rig;
	char buf[64];
	ssize_t n;

	rig_open(&rig);
	CHECK(write(rig.backend_app, "partial", 7) == 7);
	step(&rig);
	/* Input the relay never read: connection_end must not turn the close
	 * into ECONNRESET for the peer. */
	CHECK(write(rig.peer_app, "unread", 6) == 6);
	connection_end(rig.conn);
	rig.conn = NULL;
	n = read(rig.peer_app, buf, sizeof(buf));
	CHECK(n == 7 && memcmp(buf, "partial", 7) == 0);
	n = read(rig.peer_app, buf, sizeof(buf));
	CHECK(n == 0); /* EOF, not -1/ECONNRESET */
	n = read(rig.backend_app, buf, sizeof(buf));
	CHECK(n == 0);
	rig_close(&rig);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as the daemon does (signals.c) */
	for (int pass = 0; pass < 2; pass++) {
		use_splice = pass == 1;
		printf("-- copy mode: %s\n", use_splice ? "splice" : "rw");
		RUN(test_peer_half_closes_first);
		RUN(test_backend_half_closes_first);
		RUN(test_slow_reader_throttles_and_nothing_is_lost);
		RUN(test_backend_gone_ends_both);
		RUN(test_backend_answers_then_resets);
		RUN(test_peer_gone_while_its_request_is_in_flight);
		RUN(test_end_gives_eof_not_reset);
	}
	return unit_summary();
}
