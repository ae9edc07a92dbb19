/*
 * stressor: the load generator, the backend and the hostile peers of the
 * rdd-guest stress suite (tests/stress/stress.py drives it).
 *
 *   stressor backend PATH [--backlog N]
 *       Unix listener, one poll() loop. Serves whatever each connection's
 *       32-byte header asks for (below), checks every byte it receives
 *       against the expected content, and prints one line of counters on
 *       stdout at SIGUSR1 and at exit (SIGTERM/SIGINT). SIGUSR2 closes
 *       the STALL connections.
 *   stressor soak PATH [--conns N | --secs S] [--concurrency C] [--seed S]
 *       [--min-size BYTES] [--max-size BYTES] [--pace-every K --pace-ms MS] [--timeout S]
 *       [--abort-every K] [--stop-on-connect-fail]
 *       Request/reply exchanges with random sizes, random chunking and a
 *       random half-close order, C at a time; checks every reply byte and
 *       the EOF after it; prints one line of counters. With --abort-every
 *       K, every Kth connection closes abruptly at a random point (its
 *       header tells the backend, which then only checks the bytes it got).
 *   stressor echo-rate PATH
 *       One connection held open to an echo; each stdin line "BYTES" sends
 *       that many bytes through it (and reads them back, checked) and
 *       prints the rate; "q" or EOF half-closes and expects EOF back.
 *   stressor stuck PATH BYTES
 *       Asks the backend to stream BYTES, then reads nothing until a line
 *       arrives on stdin; then reads and checks all of it.
 *   stressor flood PATH --secs S [--concurrency C] [--rate N] [--uid U]
 *       A refused peer: connects over and over (after dropping to uid U),
 *       sends a header asking for a reply, and counts how each ends.
 *   stressor signals PID SECS RATE
 *       Sends SIGUSR1 and SIGHUP alternately, RATE signals a second.
 *
 * The header (little-endian, 32 bytes): magic "RDDS", mode, order, pace
 * (ms, u16), seed (u64), request length (u64), reply length (u64).
 * Modes: XCHG (request/reply, below), ECHO, SOURCE (send the reply length,
 * half-close, read to EOF), STALL (never read or write; close at hang-up).
 * XCHG orders: REQ_FIRST (the client sends and half-closes, then the
 * backend replies and half-closes), REPLY_FIRST (the backend replies and
 * half-closes at once; the client sends its request only after reading
 * the reply to EOF), CONCURRENT (both at once, each half-closing when done).
 *
 * Content: every stream is a slice of one pseudo-random block that every
 * process derives from the same fixed seed, starting at an offset derived
 * from the connection's seed and direction, so both ends know every byte
 * to expect and a misplaced, dropped, repeated or foreign byte is seen.
 *
 * Every wait is bounded: poll() timeouts, per-connection progress timeouts,
 * and an overall deadline.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define HDR_SIZE 32
#define MAGIC 0x53444452u /* "RDDS" */

enum mode { MODE_XCHG = 1, MODE_ECHO = 2, MODE_SOURCE = 3, MODE_STALL = 4 };
enum order { ORDER_REQ_FIRST = 0, ORDER_REPLY_FIRST = 1, ORDER_CONCURRENT = 2 };

struct header {
	uint8_t mode, order;
	bool aborts; /* the client will close abruptly mid-exchange */
	uint16_t pace_ms;
	uint64_t seed, req_len, rep_len;
};

/* ---------------------------------------------------------------- util */

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "stressor: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t splitmix(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t *rng, uint64_t n)
{
	return n == 0 ? 0 : splitmix(rng) % n;
}

static uint64_t parse_u64(const char *text, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || *end)
		die("bad %s: '%s'", what, text);
	return v;
}

static void set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		die("fcntl: %s", strerror(errno));
}

static void fill_addr(struct sockaddr_un *addr, const char *path)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(addr->sun_path))
		die("path too long: %s", path);
	strcpy(addr->sun_path, path);
}

/* ------------------------------------------------------------- content */

#define BLOCK_SIZE (4u << 20)
#define BLOCK_SLACK (1u << 20) /* the block's start, repeated after its end */
static unsigned char *block;

static void block_init(void)
{
	uint64_t state = 0x5eed0fb10cull;

	block = malloc(BLOCK_SIZE + BLOCK_SLACK);
	if (!block)
		die("out of memory");
	for (size_t i = 0; i < BLOCK_SIZE; i += 8) {
		uint64_t v = splitmix(&state);

		memcpy(block + i, &v, 8);
	}
	memcpy(block + BLOCK_SIZE, block, BLOCK_SLACK);
}

static size_t stream_start(uint64_t seed, int direction)
{
	uint64_t s = seed * 2u + (uint64_t)direction + 0x1234567ull;

	return (size_t)(splitmix(&s) % BLOCK_SIZE);
}

/* The bytes of a stream at `off`: a pointer and how many (at most `len`,
 * at most BLOCK_SLACK) are contiguous there. */
static const unsigned char *content(size_t start, uint64_t off, size_t *len)
{
	size_t p = (size_t)((start + off) % BLOCK_SIZE);

	if (*len > BLOCK_SLACK)
		*len = BLOCK_SLACK;
	return block + p;
}

/* How many of buf's n bytes differ from the stream's bytes at off. */
static uint64_t verify(size_t start, uint64_t off, const unsigned char *buf, size_t n)
{
	uint64_t bad = 0;

	while (n > 0) {
		size_t len = n;
		const unsigned char *want = content(start, off, &len);

		if (memcmp(want, buf, len) != 0)
			for (size_t i = 0; i < len; i++)
				bad += want[i] != buf[i];
		buf += len;
		off += len;
		n -= len;
	}
	return bad;
}

/* Chunk sizes: tiny, page-ish and large writes and reads, mixed. */
static size_t rand_chunk(uint64_t *rng)
{
	uint64_t r = rnd_below(rng, 100);

	if (r < 15)
		return 1 + (size_t)rnd_below(rng, 16);
	if (r < 40)
		return 1 + (size_t)rnd_below(rng, 4096);
	return 1 + (size_t)rnd_below(rng, 256 * 1024);
}

/* Sizes: 5% empty, 5% the maximum, the rest log-uniform up to it, so that
 * both connection churn and bulk transfer get their share. */
static uint64_t rand_size(uint64_t *rng, uint64_t max)
{
	uint64_t r = rnd_below(rng, 100), bits = 0, lo;

	if (max == 0 || r < 5)
		return 0;
	if (r < 10)
		return max;
	while ((1ull << (bits + 1)) <= max)
		bits++;
	bits = rnd_below(rng, bits + 1);
	lo = 1ull << bits;
	r = lo + rnd_below(rng, lo);
	return r > max ? max : r;
}

static void header_encode(const struct header *h, unsigned char *buf)
{
	uint32_t magic = MAGIC;

	memset(buf, 0, HDR_SIZE);
	memcpy(buf, &magic, 4);
	buf[4] = h->mode;
	buf[5] = (uint8_t)(h->order | (h->aborts ? 0x80 : 0));
	memcpy(buf + 6, &h->pace_ms, 2);
	memcpy(buf + 8, &h->seed, 8);
	memcpy(buf + 16, &h->req_len, 8);
	memcpy(buf + 24, &h->rep_len, 8);
}

static bool header_decode(const unsigned char *buf, struct header *h)
{
	uint32_t magic;

	memcpy(&magic, buf, 4);
	h->mode = buf[4];
	h->order = buf[5] & 0x7f;
	h->aborts = (buf[5] & 0x80) != 0;
	memcpy(&h->pace_ms, buf + 6, 2);
	memcpy(&h->seed, buf + 8, 8);
	memcpy(&h->req_len, buf + 16, 8);
	memcpy(&h->rep_len, buf + 24, 8);
	return magic == MAGIC && h->mode >= MODE_XCHG && h->mode <= MODE_STALL &&
	       h->order <= ORDER_CONCURRENT;
}

static unsigned char iobuf[256 * 1024];

/* -------------------------------------------------------------- backend */

static volatile sig_atomic_t got_report, got_stop, got_unstall;

static void on_signal(int signo)
{
	if (signo == SIGUSR1)
		got_report = 1;
	else if (signo == SIGUSR2)
		got_unstall = 1;
	else
		got_stop = 1;
}

static void install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

struct bconn {
	int fd;
	unsigned char hdr[HDR_SIZE];
	size_t hdr_got;
	bool have_hdr;
	struct header h;
	uint64_t rng;
	size_t req_start, rep_start;
	uint64_t got, corrupt;
	bool eof, overrun;
	uint64_t sent;
	bool sending, wr_shut;
	double next_send;
	/* ECHO: bytes read and not yet written back */
	unsigned char *echo;
	size_t echo_off, echo_len;
};

static struct {
	uint64_t accepted, ok, corrupt_conns, corrupt_bytes, short_conns, overrun, errors,
		bad_header, echo, source, stall, bytes_in, bytes_out, active, aborted;
} bstats;

static void backend_report(void)
{
	printf("backend accepted=%" PRIu64 " ok=%" PRIu64 " corrupt_conns=%" PRIu64
	       " corrupt_bytes=%" PRIu64 " short=%" PRIu64 " overrun=%" PRIu64 " errors=%" PRIu64
	       " bad_header=%" PRIu64 " echo=%" PRIu64 " source=%" PRIu64 " stall=%" PRIu64
	       " bytes_in=%" PRIu64 " bytes_out=%" PRIu64 " active=%" PRIu64 " aborted=%" PRIu64 "\n",
	       bstats.accepted, bstats.ok, bstats.corrupt_conns, bstats.corrupt_bytes,
	       bstats.short_conns, bstats.overrun, bstats.errors, bstats.bad_header, bstats.echo,
	       bstats.source, bstats.stall, bstats.bytes_in, bstats.bytes_out, bstats.active,
	       bstats.aborted);
	fflush(stdout);
}

/* Ends a connection and books how it went. */
static void bconn_close(struct bconn *c, bool error)
{
	if (c->have_hdr && c->h.mode == MODE_XCHG && c->h.aborts) {
		/* Whatever its end, only the bytes it got must be right. */
		bstats.aborted++;
		if (c->overrun)
			bstats.overrun++;
		if (c->corrupt)
			bstats.corrupt_conns++;
		bstats.corrupt_bytes += c->corrupt;
	} else if (c->have_hdr && c->h.mode == MODE_XCHG) {
		if (error)
			bstats.errors++;
		else if (c->overrun)
			bstats.overrun++;
		else if (c->corrupt)
			bstats.corrupt_conns++;
		else if (c->got < c->h.req_len || !c->eof)
			bstats.short_conns++;
		else
			bstats.ok++;
		bstats.corrupt_bytes += c->corrupt;
	} else if (c->have_hdr) {
		if (error)
			bstats.errors++;
		bstats.corrupt_bytes += c->corrupt;
	} else {
		bstats.bad_header++;
	}
	free(c->echo);
	close(c->fd);
	c->fd = -1;
	bstats.active--;
}

static bool errno_retry(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Reads what is there; false when the connection failed. */
static bool bconn_read(struct bconn *c)
{
	for (int round = 0; round < 4 && !c->eof; round++) {
		size_t want = rand_chunk(&c->rng);
		ssize_t n;

		if (!c->have_hdr)
			want = HDR_SIZE - c->hdr_got;
		else if (c->h.mode == MODE_ECHO) {
			if (c->echo_len > 0)
				return true;
			want = sizeof(iobuf);
		}
		if (want > sizeof(iobuf))
			want = sizeof(iobuf);
		n = recv(c->fd, c->have_hdr ? iobuf : c->hdr + c->hdr_got, want, MSG_DONTWAIT);
		if (n < 0)
			return errno_retry();
		if (n == 0) {
			c->eof = true;
			if (!c->have_hdr)
				return false; /* EOF inside the header: nothing to serve */
			break;
		}
		if (!c->have_hdr) {
			c->hdr_got += (size_t)n;
			if (c->hdr_got < HDR_SIZE)
				continue;
			if (!header_decode(c->hdr, &c->h))
				return false;
			c->have_hdr = true;
			c->rng = c->h.seed ^ 0xbacc0ull;
			c->req_start = stream_start(c->h.seed, 0);
			c->rep_start = stream_start(c->h.seed, 1);
			c->sending = c->h.mode == MODE_SOURCE ||
				     (c->h.mode == MODE_XCHG && c->h.order != ORDER_REQ_FIRST);
			if (c->h.mode == MODE_STALL) {
				bstats.stall++;
				return true; /* never read again */
			}
			if (c->h.mode == MODE_ECHO) {
				bstats.echo++;
				c->echo = malloc(sizeof(iobuf));
				if (!c->echo)
					die("out of memory");
			} else if (c->h.mode == MODE_SOURCE) {
				bstats.source++;
			}
			continue;
		}
		bstats.bytes_in += (uint64_t)n;
		switch (c->h.mode) {
		case MODE_XCHG: {
			uint64_t room = c->got < c->h.req_len ? c->h.req_len - c->got : 0;
			size_t check = (uint64_t)n < room ? (size_t)n : (size_t)room;

			c->corrupt += verify(c->req_start, c->got, iobuf, check);
			if ((size_t)n > check)
				c->overrun = true;
			c->got += (uint64_t)n;
			break;
		}
		case MODE_ECHO:
			memcpy(c->echo, iobuf, (size_t)n);
			c->echo_off = 0;
			c->echo_len = (size_t)n;
			c->got += (uint64_t)n;
			return true;
		default:
			c->got += (uint64_t)n; /* SOURCE: what the client sends is dropped */
			break;
		}
	}
	if (c->eof && c->have_hdr && c->h.mode == MODE_XCHG && c->h.order == ORDER_REQ_FIRST)
		c->sending = true;
	return true;
}

static bool bconn_write(struct bconn *c, double now)
{
	if (c->h.mode == MODE_ECHO) {
		while (c->echo_len > 0) {
			ssize_t n = send(c->fd, c->echo + c->echo_off, c->echo_len,
					 MSG_DONTWAIT | MSG_NOSIGNAL);

			if (n < 0)
				return errno_retry();
			c->echo_off += (size_t)n;
			c->echo_len -= (size_t)n;
			bstats.bytes_out += (uint64_t)n;
		}
		if (c->eof && !c->wr_shut) {
			if (shutdown(c->fd, SHUT_WR) < 0)
				return false;
			c->wr_shut = true;
		}
		return true;
	}
	if (!c->sending || c->wr_shut)
		return true;
	for (int round = 0; round < 4 && c->sent < c->h.rep_len; round++) {
		size_t len = rand_chunk(&c->rng);
		const unsigned char *p;
		ssize_t n;

		if (c->h.pace_ms) {
			if (now < c->next_send)
				return true;
			len = 4096;
			c->next_send = now + c->h.pace_ms / 1000.0;
		}
		if (len > c->h.rep_len - c->sent)
			len = (size_t)(c->h.rep_len - c->sent);
		p = content(c->rep_start, c->sent, &len);
		n = send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0)
			return errno_retry();
		c->sent += (uint64_t)n;
		bstats.bytes_out += (uint64_t)n;
		if ((size_t)n < len)
			break;
	}
	if (c->sent == c->h.rep_len) {
		if (shutdown(c->fd, SHUT_WR) < 0)
			return false;
		c->wr_shut = true;
	}
	return true;
}

static bool bconn_done(const struct bconn *c)
{
	if (!c->have_hdr)
		return false;
	if (c->h.mode == MODE_STALL)
		return false;
	return c->eof && c->wr_shut;
}

static int cmd_backend(int argc, char **argv)
{
	struct sockaddr_un addr;
	struct bconn *conns = NULL;
	struct pollfd *pfds = NULL;
	size_t n_conns = 0, cap = 0;
	int backlog = 4096, lfd;

	if (argc < 1)
		die("backend PATH [--backlog N]");
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--backlog") == 0 && i + 1 < argc)
			backlog = (int)parse_u64(argv[++i], "backlog");
		else
			die("backend: unknown argument %s", argv[i]);
	}
	install_signals();
	fill_addr(&addr, argv[0]);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(lfd, backlog) < 0)
		die("backend %s: %s", argv[0], strerror(errno));
	printf("backend listening pid=%d\n", (int)getpid());
	fflush(stdout);

	while (!got_stop) {
		double now = now_s();
		int timeout = 200;
		size_t np = 0;

		if (got_unstall) {
			/* SIGUSR2: the stalled connections are closed at last. */
			got_unstall = 0;
			for (size_t i = 0; i < n_conns; i++)
				if (conns[i].have_hdr && conns[i].h.mode == MODE_STALL)
					bconn_close(&conns[i], false);
			{
				size_t w = 0;

				for (size_t i = 0; i < n_conns; i++)
					if (conns[i].fd >= 0)
						conns[w++] = conns[i];
				n_conns = w;
			}
		}
		if (got_report) {
			got_report = 0;
			backend_report();
		}
		if (cap < n_conns + 2) {
			cap = (n_conns + 2) * 2;
			conns = realloc(conns, cap * sizeof(*conns));
			pfds = realloc(pfds, cap * sizeof(*pfds));
			if (!conns || !pfds)
				die("out of memory");
		}
		pfds[np++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (size_t i = 0; i < n_conns; i++) {
			struct bconn *c = &conns[i];
			short ev = 0;

			if (!c->have_hdr) {
				ev = POLLIN;
			} else if (c->h.mode == MODE_STALL) {
				ev = POLLRDHUP;
			} else if (c->h.mode == MODE_ECHO) {
				ev = c->echo_len ? POLLOUT : (c->eof ? 0 : POLLIN);
				if (c->eof && !c->echo_len && !c->wr_shut)
					ev = POLLOUT;
			} else {
				if (!c->eof)
					ev |= POLLIN;
				if (c->sending && !c->wr_shut) {
					if (c->h.pace_ms && now < c->next_send) {
						int wait = (int)((c->next_send - now) * 1000) + 1;

						if (wait < timeout)
							timeout = wait;
					} else {
						ev |= POLLOUT;
					}
				}
			}
			pfds[np++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		if (poll(pfds, np, timeout) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		now = now_s();
		for (size_t i = 0; i < n_conns; i++) {
			struct bconn *c = &conns[i];
			short re = pfds[i + 1].revents;
			bool ok = true;

			if (re & POLLNVAL)
				die("backend: POLLNVAL");
			if (c->have_hdr && c->h.mode == MODE_STALL) {
				if (re & (POLLRDHUP | POLLHUP | POLLERR))
					bconn_close(c, false);
				continue;
			}
			if (re & (POLLIN | POLLHUP | POLLERR))
				ok = bconn_read(c);
			if (ok && c->have_hdr && (re & (POLLOUT | POLLERR) || c->h.pace_ms ||
						  (c->eof && !c->wr_shut)))
				ok = bconn_write(c, now);
			if (!ok)
				bconn_close(c, true);
			else if (bconn_done(c) || (c->eof && !c->have_hdr))
				bconn_close(c, false);
		}
		/* compact */
		{
			size_t w = 0;

			for (size_t i = 0; i < n_conns; i++)
				if (conns[i].fd >= 0)
					conns[w++] = conns[i];
			n_conns = w;
		}
		if (pfds[0].revents & POLLIN) {
			for (int k = 0; k < 64; k++) {
				int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (fd < 0)
					break;
				if (n_conns + 1 >= cap) {
					cap = (n_conns + 2) * 2;
					conns = realloc(conns, cap * sizeof(*conns));
					pfds = realloc(pfds, cap * sizeof(*pfds));
					if (!conns || !pfds)
						die("out of memory");
				}
				memset(&conns[n_conns], 0, sizeof(conns[n_conns]));
				conns[n_conns].fd = fd;
				n_conns++;
				bstats.accepted++;
				bstats.active++;
			}
		}
	}
	backend_report();
	return 0;
}

/* --------------------------------------------------------------- client */

enum cstate { C_FREE, C_CONNECTING, C_RUNNING };

struct cconn {
	enum cstate state;
	int fd;
	uint64_t index;
	struct header h;
	unsigned char hdr[HDR_SIZE];
	uint64_t rng;
	size_t req_start, rep_start;
	uint64_t sent, send_total; /* header + request */
	bool wr_shut, may_send;
	uint64_t got, corrupt;
	bool eof;
	uint64_t abort_at; /* close abruptly once sent + got reach it */
	double started, progress, retry_at;
};

static struct {
	uint64_t started, ok, corrupt_conns, corrupt_bytes, short_conns, long_conns, reset,
		epipe, other_err, connect_fail, timeout, bytes_up, bytes_down, aborted;
	double max_fail_stall, max_ok_secs, sum_ok_secs;
	int first_connect_errno;
} cstats;

static int connect_unix(const char *path, bool nonblock)
{
	struct sockaddr_un addr;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);

	if (fd < 0)
		return -errno;
	fill_addr(&addr, path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

enum cend { END_ABORT, END_OK, END_SHORT, END_LONG, END_CORRUPT, END_RESET, END_EPIPE, END_OTHER, END_TIMEOUT };

static void cconn_finish(struct cconn *c, enum cend how, double now)
{
	if (how == END_OK && c->corrupt)
		how = END_CORRUPT;
	if (how == END_ABORT && c->corrupt)
		how = END_CORRUPT;
	switch (how) {
	case END_ABORT: cstats.aborted++; break;
	case END_OK:
		cstats.ok++;
		cstats.sum_ok_secs += now - c->started;
		if (now - c->started > cstats.max_ok_secs)
			cstats.max_ok_secs = now - c->started;
		break;
	case END_SHORT: cstats.short_conns++; break;
	case END_LONG: cstats.long_conns++; break;
	case END_CORRUPT: cstats.corrupt_conns++; break;
	case END_RESET: cstats.reset++; break;
	case END_EPIPE: cstats.epipe++; break;
	case END_OTHER: cstats.other_err++; break;
	case END_TIMEOUT: cstats.timeout++; break;
	}
	if (how == END_TIMEOUT && getenv("STRESSOR_DEBUG"))
		fprintf(stderr, "timeout #%" PRIu64 " order=%u pace=%u req=%" PRIu64 " rep=%" PRIu64
			" sent=%" PRIu64 " wr_shut=%d may_send=%d got=%" PRIu64 " eof=%d\n",
			c->index, c->h.order, c->h.pace_ms, c->h.req_len, c->h.rep_len, c->sent,
			c->wr_shut, c->may_send, c->got, c->eof);
	if (how != END_OK && how != END_ABORT && now - c->progress > cstats.max_fail_stall)
		cstats.max_fail_stall = now - c->progress;
	cstats.corrupt_bytes += c->corrupt;
	close(c->fd);
	c->fd = -1;
	c->state = C_FREE;
}

static void cconn_start(struct cconn *c, uint64_t index, uint64_t seed, uint64_t min_size,
			uint64_t max_size, uint64_t pace_every, unsigned pace_ms, uint64_t abort_every,
			double now)
{
	memset(c, 0, sizeof(*c));
	c->index = index;
	c->rng = seed * 1000003u + index;
	c->h.mode = MODE_XCHG;
	c->h.seed = splitmix(&c->rng);
	c->h.order = (uint8_t)rnd_below(&c->rng, 3);
	c->h.req_len = rand_size(&c->rng, max_size);
	c->h.rep_len = rand_size(&c->rng, max_size);
	if (c->h.req_len < min_size)
		c->h.req_len = min_size;
	if (c->h.rep_len < min_size)
		c->h.rep_len = min_size;
	if (pace_every && index % pace_every == pace_every - 1) {
		c->h.pace_ms = (uint16_t)pace_ms;
		c->h.order = ORDER_REQ_FIRST;
		c->h.rep_len = max_size / 4 + rnd_below(&c->rng, max_size - max_size / 4 + 1);
	}
	c->abort_at = UINT64_MAX;
	if (abort_every && index % abort_every == abort_every - 1) {
		c->h.aborts = true;
		c->abort_at = rnd_below(&c->rng, c->h.req_len + c->h.rep_len + 1);
	}
	header_encode(&c->h, c->hdr);
	c->req_start = stream_start(c->h.seed, 0);
	c->rep_start = stream_start(c->h.seed, 1);
	c->send_total = HDR_SIZE + c->h.req_len;
	c->may_send = c->h.order != ORDER_REPLY_FIRST;
	c->started = c->progress = now;
	c->state = C_CONNECTING;
	c->fd = -1;
	cstats.started++;
}

/* false: the connection ended (booked). */
static bool cconn_send(struct cconn *c, double now)
{
	for (int round = 0; round < 4 && c->sent < c->send_total; round++) {
		size_t len = rand_chunk(&c->rng);
		const unsigned char *p;
		ssize_t n;

		if (c->sent < HDR_SIZE) {
			p = c->hdr + c->sent;
			if (len > HDR_SIZE - c->sent)
				len = (size_t)(HDR_SIZE - c->sent);
			/* After the header only once the reply is in, for REPLY_FIRST. */
		} else {
			if (!c->may_send)
				return true;
			if (len > c->send_total - c->sent)
				len = (size_t)(c->send_total - c->sent);
			p = content(c->req_start, c->sent - HDR_SIZE, &len);
		}
		n = send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno_retry())
				return true;
			cconn_finish(c, errno == EPIPE || errno == ECONNRESET ? END_EPIPE : END_OTHER,
				     now);
			return false;
		}
		c->sent += (uint64_t)n;
		if (c->sent > HDR_SIZE)
			cstats.bytes_up += (uint64_t)n; /* approximately: header bytes excluded */
		c->progress = now;
		if ((size_t)n < len)
			return true;
	}
	if (c->sent == c->send_total && c->may_send && !c->wr_shut) {
		if (shutdown(c->fd, SHUT_WR) < 0) {
			cconn_finish(c, END_OTHER, now);
			return false;
		}
		c->wr_shut = true;
	}
	return true;
}

static bool cconn_recv(struct cconn *c, double now)
{
	for (int round = 0; round < 4 && !c->eof; round++) {
		size_t want = rand_chunk(&c->rng);
		ssize_t n = recv(c->fd, iobuf, want, MSG_DONTWAIT);

		if (n < 0) {
			if (errno_retry())
				return true;
			cconn_finish(c, errno == ECONNRESET ? END_RESET : END_OTHER, now);
			return false;
		}
		if (n == 0) {
			c->eof = true;
			c->progress = now;
			if (c->got < c->h.rep_len) {
				cconn_finish(c, END_SHORT, now);
				return false;
			}
			if (c->h.order == ORDER_REPLY_FIRST)
				c->may_send = true;
			break;
		}
		if (c->got + (uint64_t)n > c->h.rep_len) {
			cconn_finish(c, END_LONG, now);
			return false;
		}
		c->corrupt += verify(c->rep_start, c->got, iobuf, (size_t)n);
		c->got += (uint64_t)n;
		cstats.bytes_down += (uint64_t)n;
		c->progress = now;
	}
	return true;
}

static int cmd_soak(int argc, char **argv)
{
	uint64_t conns = 1000, concurrency = 64, seed = 1, max_size = 1u << 20, pace_every = 0;
	uint64_t min_size = 0, abort_every = 0;
	unsigned pace_ms = 10;
	double secs = 0, timeout = 30, deadline_secs = 600;
	bool stop_on_connect_fail = false, stopped = false;
	const char *path;
	struct cconn *cs;
	struct pollfd *pfds;
	uint64_t next = 0;
	double t0, deadline;
	size_t active = 0;

	if (argc < 1)
		die("soak PATH [options]");
	path = argv[0];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--stop-on-connect-fail") == 0) {
			stop_on_connect_fail = true;
			continue;
		}
		if (!v)
			die("soak: %s needs a value", a);
		i++;
		if (strcmp(a, "--conns") == 0) conns = parse_u64(v, a);
		else if (strcmp(a, "--secs") == 0) secs = atof(v);
		else if (strcmp(a, "--concurrency") == 0) concurrency = parse_u64(v, a);
		else if (strcmp(a, "--seed") == 0) seed = parse_u64(v, a);
		else if (strcmp(a, "--max-size") == 0) max_size = parse_u64(v, a);
		else if (strcmp(a, "--min-size") == 0) min_size = parse_u64(v, a);
		else if (strcmp(a, "--abort-every") == 0) abort_every = parse_u64(v, a);
		else if (strcmp(a, "--pace-every") == 0) pace_every = parse_u64(v, a);
		else if (strcmp(a, "--pace-ms") == 0) pace_ms = (unsigned)parse_u64(v, a);
		else if (strcmp(a, "--timeout") == 0) timeout = atof(v);
		else if (strcmp(a, "--deadline") == 0) deadline_secs = atof(v);
		else die("soak: unknown option %s", a);
	}
	if (secs > 0)
		conns = UINT64_MAX;
	if (concurrency == 0 || concurrency > 4096)
		die("soak: bad concurrency");
	signal(SIGPIPE, SIG_IGN);
	cs = calloc(concurrency, sizeof(*cs));
	pfds = calloc(concurrency, sizeof(*pfds));
	if (!cs || !pfds)
		die("out of memory");
	t0 = now_s();
	deadline = t0 + deadline_secs;

	for (;;) {
		double now = now_s();
		bool launching = !stopped && next < conns && (secs <= 0 || now - t0 < secs);
		int wait = 100;

		if (now > deadline)
			break;
		/* Launch and connect. */
		for (size_t i = 0; i < concurrency; i++) {
			struct cconn *c = &cs[i];

			if (c->state == C_FREE && launching) {
				cconn_start(c, next++, seed, min_size, max_size, pace_every, pace_ms,
					    abort_every, now);
				active++;
				launching = next < conns && !stopped;
			}
			if (c->state == C_CONNECTING && now >= c->retry_at) {
				int fd = connect_unix(path, true);

				if (fd == -EAGAIN) {
					/* The daemon's backlog is full: wait there, as a
					 * blocking connect would, within the timeout. */
					c->retry_at = now + 0.005;
					if (now - c->started > timeout) {
						c->fd = -1;
						cstats.timeout++;
						c->state = C_FREE;
						active--;
					}
					continue;
				}
				if (fd < 0) {
					cstats.connect_fail++;
					if (!cstats.first_connect_errno)
						cstats.first_connect_errno = -fd;
					c->state = C_FREE;
					active--;
					if (stop_on_connect_fail)
						stopped = true;
					continue;
				}
				c->fd = fd;
				c->state = C_RUNNING;
				c->progress = now;
			}
		}
		if (active == 0 && (stopped || next >= conns || (secs > 0 && now - t0 >= secs)))
			break;
		for (size_t i = 0; i < concurrency; i++) {
			struct cconn *c = &cs[i];
			short ev = 0;

			if (c->state == C_RUNNING) {
				if (!c->eof)
					ev |= POLLIN;
				if (!c->wr_shut && (c->sent < HDR_SIZE || c->may_send))
					ev |= POLLOUT;
			} else if (c->state == C_CONNECTING) {
				wait = 5;
			}
			pfds[i] = (struct pollfd){ .fd = c->state == C_RUNNING ? c->fd : -1, .events = ev };
		}
		if (poll(pfds, concurrency, wait) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		now = now_s();
		for (size_t i = 0; i < concurrency; i++) {
			struct cconn *c = &cs[i];
			short re = pfds[i].revents;

			if (c->state != C_RUNNING)
				continue;
			if ((re & (POLLIN | POLLHUP | POLLERR)) && !cconn_recv(c, now)) {
				active--;
				continue;
			}
			if ((re & (POLLOUT | POLLERR)) && !cconn_send(c, now)) {
				active--;
				continue;
			}
			if (c->h.aborts && c->sent > HDR_SIZE - 1 && c->sent - HDR_SIZE + c->got >= c->abort_at) {
				cconn_finish(c, END_ABORT, now); /* close() with bytes unread */
				active--;
				continue;
			}
			/* A REPLY_FIRST request may start the moment the reply ended. */
			if (c->eof && c->may_send && !c->wr_shut && !cconn_send(c, now)) {
				active--;
				continue;
			}
			if (c->eof && c->wr_shut) {
				cconn_finish(c, END_OK, now);
				active--;
				continue;
			}
			if (now - c->progress > timeout) {
				cconn_finish(c, END_TIMEOUT, now);
				active--;
			}
		}
	}
	for (size_t i = 0; i < concurrency; i++)
		if (cs[i].state == C_RUNNING)
			cconn_finish(&cs[i], END_TIMEOUT, now_s());
		else if (cs[i].state == C_CONNECTING)
			cstats.timeout++;
	{
		double el = now_s() - t0;
		uint64_t failed = cstats.started - cstats.ok - cstats.aborted;

		printf("soak conns=%" PRIu64 " ok=%" PRIu64 " failed=%" PRIu64 " corrupt_conns=%" PRIu64
		       " corrupt_bytes=%" PRIu64 " short=%" PRIu64 " long=%" PRIu64 " reset=%" PRIu64
		       " epipe=%" PRIu64 " other=%" PRIu64 " aborted=%" PRIu64 " connect_fail=%" PRIu64
		       " connect_errno=%d timeout=%" PRIu64 " bytes_up=%" PRIu64 " bytes_down=%" PRIu64
		       " secs=%.3f max_fail_stall_ms=%.0f max_ok_ms=%.0f mean_ok_ms=%.1f\n",
		       cstats.started, cstats.ok, failed, cstats.corrupt_conns, cstats.corrupt_bytes,
		       cstats.short_conns, cstats.long_conns, cstats.reset, cstats.epipe,
		       cstats.other_err, cstats.aborted, cstats.connect_fail, cstats.first_connect_errno,
		       cstats.timeout, cstats.bytes_up, cstats.bytes_down, el,
		       cstats.max_fail_stall * 1000, cstats.max_ok_secs * 1000,
		       cstats.ok ? cstats.sum_ok_secs * 1000 / (double)cstats.ok : 0.0);
	}
	return 0;
}

/* ------------------------------------------------------------ echo-rate */

static void set_timeouts(int fd, int secs)
{
	struct timeval tv = { .tv_sec = secs };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("send: %s", strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
}

static int cmd_echo_rate(int argc, char **argv)
{
	struct header h = { .mode = MODE_ECHO, .seed = 4242 };
	unsigned char hdr[HDR_SIZE];
	size_t start = stream_start(h.seed, 0);
	uint64_t sent_total = 0, got_total = 0;
	char line[64];
	int fd;

	if (argc != 1)
		die("echo-rate PATH");
	signal(SIGPIPE, SIG_IGN);
	fd = connect_unix(argv[0], false);
	if (fd < 0)
		die("connect %s: %s", argv[0], strerror(-fd));
	set_timeouts(fd, 30);
	header_encode(&h, hdr);
	send_all(fd, hdr, HDR_SIZE);
	set_nonblock(fd);
	printf("connected\n");
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		uint64_t bytes, sent = 0, got = 0, corrupt = 0;
		double t0, deadline;

		char *word = strtok(line, " \n");

		if (!word || word[0] == 'q')
			break;
		bytes = parse_u64(word, "byte count");
		t0 = now_s();
		deadline = t0 + 60;
		while (got < bytes) {
			struct pollfd p = { .fd = fd, .events = POLLIN | (sent < bytes ? POLLOUT : 0) };

			if (now_s() > deadline)
				die("echo-rate: timed out (%" PRIu64 " of %" PRIu64 " back)", got, bytes);
			if (poll(&p, 1, 1000) < 0 && errno != EINTR)
				die("poll: %s", strerror(errno));
			if ((p.revents & POLLOUT) && sent < bytes) {
				size_t len = sizeof(iobuf);
				const unsigned char *src;
				ssize_t n;

				if (len > bytes - sent)
					len = (size_t)(bytes - sent);
				src = content(start, sent_total + sent, &len);
				n = send(fd, src, len, MSG_DONTWAIT | MSG_NOSIGNAL);
				if (n < 0 && !errno_retry())
					die("echo-rate send: %s", strerror(errno));
				if (n > 0)
					sent += (uint64_t)n;
			}
			if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t n = recv(fd, iobuf, sizeof(iobuf), MSG_DONTWAIT);

				if (n == 0)
					die("echo-rate: EOF after %" PRIu64 " of %" PRIu64, got, bytes);
				if (n < 0 && !errno_retry())
					die("echo-rate recv: %s", strerror(errno));
				if (n > 0) {
					if (got + (uint64_t)n > bytes)
						die("echo-rate: more bytes than sent");
					corrupt += verify(start, got_total + got, iobuf, (size_t)n);
					got += (uint64_t)n;
				}
			}
		}
		sent_total += sent;
		got_total += got;
		{
			double el = now_s() - t0;

			printf("rate_mbps=%.1f secs=%.3f bytes=%" PRIu64 " corrupt=%" PRIu64 "\n",
			       (double)bytes / el / 1e6, el, bytes, corrupt);
			fflush(stdout);
		}
	}
	shutdown(fd, SHUT_WR);
	{
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0)
			die("echo-rate: no EOF after the half-close");
		n = recv(fd, iobuf, sizeof(iobuf), MSG_DONTWAIT);
		printf("closed %s\n", n == 0 ? "eof" : n < 0 ? strerror(errno) : "extra-bytes");
	}
	close(fd);
	return 0;
}

/* ---------------------------------------------------------------- stuck */

static int cmd_stuck(int argc, char **argv)
{
	struct header h = { .mode = MODE_SOURCE, .seed = 777 };
	unsigned char hdr[HDR_SIZE];
	size_t start;
	uint64_t got = 0, corrupt = 0;
	char line[16];
	double t0;
	int fd;

	if (argc != 2)
		die("stuck PATH BYTES");
	signal(SIGPIPE, SIG_IGN);
	h.rep_len = parse_u64(argv[1], "bytes");
	start = stream_start(h.seed, 1);
	fd = connect_unix(argv[0], false);
	if (fd < 0)
		die("connect %s: %s", argv[0], strerror(-fd));
	set_timeouts(fd, 60);
	header_encode(&h, hdr);
	send_all(fd, hdr, HDR_SIZE);
	shutdown(fd, SHUT_WR);
	printf("connected\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		die("stuck: stdin closed");
	t0 = now_s();
	for (;;) {
		ssize_t n = recv(fd, iobuf, sizeof(iobuf), 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			printf("stuck got=%" PRIu64 " corrupt=%" PRIu64 " end=%s\n", got, corrupt,
			       strerror(errno));
			return 0;
		}
		if (n == 0)
			break;
		corrupt += verify(start, got, iobuf, (size_t)n);
		got += (uint64_t)n;
	}
	printf("stuck got=%" PRIu64 " corrupt=%" PRIu64 " end=eof rate_mbps=%.1f\n", got, corrupt,
	       (double)got / (now_s() - t0) / 1e6);
	close(fd);
	return 0;
}

/* ---------------------------------------------------------------- flood */

static void drop_to(uid_t uid)
{
	gid_t gid = (gid_t)uid;

	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		die("cannot become uid %u: %s", (unsigned)uid, strerror(errno));
	if (getuid() != uid || geteuid() != uid)
		die("still uid %u", (unsigned)geteuid());
}

static int cmd_flood(int argc, char **argv)
{
	struct header h = { .mode = MODE_XCHG, .order = ORDER_CONCURRENT, .seed = 99, .rep_len = 100 };
	unsigned char hdr[HDR_SIZE];
	uint64_t attempts = 0, refused = 0, served = 0, eagain = 0, other = 0;
	uint64_t concurrency = 16;
	double secs = 3, rate = 0, t0;
	struct pollfd *p;
	int first_other = 0;

	if (argc < 1)
		die("flood PATH --secs S [--concurrency C] [--rate N] [--uid U]");
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--secs") == 0)
			secs = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--concurrency") == 0)
			concurrency = parse_u64(argv[i + 1], "concurrency");
		else if (strcmp(argv[i], "--rate") == 0)
			rate = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--uid") == 0)
			drop_to((uid_t)parse_u64(argv[i + 1], "uid"));
		else
			die("flood: unknown option %s", argv[i]);
	}
	install_signals(); /* SIGTERM ends the flood early, with its report */
	header_encode(&h, hdr);
	p = calloc(concurrency, sizeof(*p));
	if (!p)
		die("out of memory");
	for (size_t i = 0; i < concurrency; i++)
		p[i].fd = -1;
	t0 = now_s();
	while (!got_stop && now_s() - t0 < secs) {
		for (size_t i = 0; i < concurrency; i++) {
			int fd;

			if (p[i].fd >= 0)
				continue;
			if (rate > 0 && (double)attempts >= rate * (now_s() - t0))
				break; /* ahead of the requested rate */
			attempts++;
			fd = connect_unix(argv[0], true);
			if (fd < 0) {
				if (fd == -EAGAIN)
					eagain++;
				else {
					other++;
					if (!first_other)
						first_other = -fd;
				}
				continue;
			}
			(void)!send(fd, hdr, HDR_SIZE, MSG_DONTWAIT | MSG_NOSIGNAL);
			p[i] = (struct pollfd){ .fd = fd, .events = POLLIN };
		}
		if (poll(p, concurrency, 50) < 0 && errno != EINTR)
			die("poll: %s", strerror(errno));
		for (size_t i = 0; i < concurrency; i++) {
			ssize_t n;

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			n = recv(p[i].fd, iobuf, sizeof(iobuf), MSG_DONTWAIT);
			if (n < 0 && errno_retry())
				continue;
			if (n > 0)
				served++;
			else
				refused++; /* EOF, or a reset: the daemon closed without reading */
			close(p[i].fd);
			p[i].fd = -1;
		}
		if (eagain && !refused)
			usleep(1000);
	}
	for (size_t i = 0; i < concurrency; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	printf("flood uid=%u attempts=%" PRIu64 " refused=%" PRIu64 " served=%" PRIu64
	       " eagain=%" PRIu64 " other=%" PRIu64 " other_errno=%d secs=%.2f\n",
	       (unsigned)getuid(), attempts, refused, served, eagain, other, first_other,
	       now_s() - t0);
	return 0;
}

/* -------------------------------------------------------------- signals */

static int cmd_signals(int argc, char **argv)
{
	pid_t pid;
	double secs, rate, t0, next;
	uint64_t sent = 0, failed = 0;

	if (argc != 3)
		die("signals PID SECS RATE");
	pid = (pid_t)parse_u64(argv[0], "pid");
	secs = atof(argv[1]);
	rate = atof(argv[2]);
	if (rate <= 0)
		die("bad rate");
	t0 = next = now_s();
	while (now_s() - t0 < secs) {
		if (kill(pid, sent % 2 ? SIGHUP : SIGUSR1) < 0)
			failed++;
		sent++;
		next += 1.0 / rate;
		{
			double d = next - now_s();

			if (d > 0) {
				struct timespec ts = { .tv_sec = (time_t)d,
						       .tv_nsec = (long)((d - (double)(time_t)d) * 1e9) };

				nanosleep(&ts, NULL);
			}
		}
	}
	printf("signals sent=%" PRIu64 " failed=%" PRIu64 " secs=%.2f\n", sent, failed, now_s() - t0);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		die("usage: stressor backend|soak|echo-rate|stuck|flood|signals ...");
	block_init();
	if (strcmp(argv[1], "backend") == 0)
		return cmd_backend(argc - 2, argv + 2);
	if (strcmp(argv[1], "soak") == 0)
		return cmd_soak(argc - 2, argv + 2);
	if (strcmp(argv[1], "echo-rate") == 0)
		return cmd_echo_rate(argc - 2, argv + 2);
	if (strcmp(argv[1], "stuck") == 0)
		return cmd_stuck(argc - 2, argv + 2);
	if (strcmp(argv[1], "flood") == 0)
		return cmd_flood(argc - 2, argv + 2);
	if (strcmp(argv[1], "signals") == 0)
		return cmd_signals(argc - 2, argv + 2);
	die("unknown command %s", argv[1]);
	return 2;
}
