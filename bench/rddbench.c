/*
 * rddbench: the load generator and the backend of the rdd-guest benchmark.
 *
 *   rddbench backend PATH                 Unix listener, one epoll thread
 *   rddbench upload PATH BYTES            client -> backend, prints MB/s
 *   rddbench download PATH BYTES          backend -> client, prints MB/s
 *   rddbench throttled PATH BYTES MBPS CHUNK
 *                                         download by a slow reader: at most
 *                                         CHUNK bytes a read, paced to MBPS
 *   rddbench latency PATH COUNT SIZE [SECS]
 *                                         round trips on one connection, p50/p99
 *                                         (COUNT of them, or fewer if SECS pass)
 *   rddbench connrate PATH THREADS SECS   connect, 100-byte request/reply, close
 *   rddbench hold PATH N SECS             keep N relayed connections open
 *   rddbench ping PATH                    one request/reply (readiness probe)
 *   rddbench pipes PID...                 pipes those processes hold
 *
 * The first byte a client sends picks what the backend does with the
 * connection, so one backend serves every scenario and every contender:
 *   'S' + 8-byte count: sink that many bytes, then reply with the count
 *   'R' + 8-byte count: source that many bytes, half-close, wait for EOF
 *   'E' echo everything until EOF
 *   'Q' + 99 bytes: reply with 100 bytes, then close
 *
 * Neither bulk exchange depends on half-close: systemd-socket-proxyd tears
 * the whole connection down at the first EOF, and it must still be measured.
 * (Half-close is for the daemon's integration tests to prove.)
 *
 * Results are one line of key=value pairs on stdout; errors go to stderr and
 * make the exit status non-zero. Every blocking call is bounded by socket
 * timeouts, so a stuck proxy fails a run instead of hanging it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Large buffers so that the generator moves data in few system calls and
 * the proxy under test, not rddbench, is what limits throughput. */
#define BUF_SIZE (256 * 1024)
#define REQ_SIZE 100
#define IO_TIMEOUT_SECONDS 10

static unsigned char pattern[BUF_SIZE];

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("rddbench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fill_pattern(void)
{
	for (size_t i = 0; i < sizeof pattern; i++)
		pattern[i] = (unsigned char)(i * 7 + 13);
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end)
		die("bad %s: %s", what, s);
	return (uint64_t)v;
}

static int set_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sa->sun_path)
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/* Returns a connected blocking socket with I/O timeouts, or -errno. */
static int connect_unix(const char *path)
{
	struct sockaddr_un sa;
	int r = set_addr(&sa, path);
	if (r < 0)
		return r;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct timeval tv = { .tv_sec = IO_TIMEOUT_SECONDS };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes; -EPIPE on a premature EOF. */
static int read_exact(int fd, void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---------------------------------------------------------------- backend */

enum state { ST_HEADER, ST_SINK, ST_SOURCE, ST_DRAIN, ST_ECHO, ST_REQUEST, ST_REPLY };

struct conn {
	int fd;
	enum state state;
	uint32_t events;          /* the epoll interest currently registered */
	unsigned char header[9];
	size_t header_len;
	uint64_t remaining;       /* source/reply: bytes to send; request: to read */
	uint64_t count;           /* sink: bytes received */
	unsigned char *pending;   /* echo: bytes read but not yet written back */
	size_t pending_len, pending_off;
};

static unsigned char scratch[BUF_SIZE];

static void conn_free(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->pending);
	free(c);
}

/* The sink's 8-byte answer goes into an empty send buffer, so it never
 * blocks in practice; the poll only bounds the pathological case. */
static int send_small(int fd, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint64_t deadline = now_ns() + (uint64_t)IO_TIMEOUT_SECONDS * 1000000000u;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		poll(&pfd, 1, 100);
	}
	return 0;
}

/* Moves as many bytes as the socket allows; returns 1 to keep the
 * connection, 0 to close it. */
static int conn_step(struct conn *c)
{
	for (;;) {
		ssize_t n;
		switch (c->state) {
		case ST_HEADER: {
			size_t need = 1;
			if (c->header_len >= 1 && (c->header[0] == 'R' || c->header[0] == 'S'))
				need = 9;
			n = read(c->fd, c->header + c->header_len, need - c->header_len);
			if (n == 0)
				return 0;
			if (n < 0)
				break;
			c->header_len += (size_t)n;
			if (c->header_len < need)
				continue;
			switch (c->header[0]) {
			case 'S':
				if (need == 1)
					continue;
				memcpy(&c->remaining, c->header + 1, 8);
				c->state = ST_SINK;
				break;
			case 'E':
				c->state = ST_ECHO;
				break;
			case 'Q':
				c->state = ST_REQUEST;
				c->remaining = REQ_SIZE - 1;
				break;
			case 'R':
				if (need == 1)
					continue;
				memcpy(&c->remaining, c->header + 1, 8);
				c->state = ST_SOURCE;
				break;
			default:
				return 0;
			}
			continue;
		}
		case ST_SINK:
			if (c->count == c->remaining) {
				if (send_small(c->fd, &c->count, sizeof c->count) < 0)
					return 0;
				c->state = ST_DRAIN;
				continue;
			}
			n = read(c->fd, scratch,
			         c->remaining - c->count < sizeof scratch ? (size_t)(c->remaining - c->count)
			                                                 : sizeof scratch);
			if (n == 0)
				return 0;
			if (n > 0) {
				c->count += (uint64_t)n;
				continue;
			}
			break;
		case ST_SOURCE:
			if (c->remaining == 0) {
				shutdown(c->fd, SHUT_WR);
				c->state = ST_DRAIN;
				continue;
			}
			n = write(c->fd, pattern,
			          c->remaining < sizeof pattern ? (size_t)c->remaining : sizeof pattern);
			if (n > 0)
				c->remaining -= (uint64_t)n;
			if (n >= 0)
				continue;
			break;
		case ST_DRAIN:
			n = read(c->fd, scratch, sizeof scratch);
			if (n == 0)
				return 0;
			if (n > 0)
				continue;
			break;
		case ST_ECHO:
			if (c->pending_len > c->pending_off) {
				n = write(c->fd, c->pending + c->pending_off,
				          c->pending_len - c->pending_off);
				if (n > 0)
					c->pending_off += (size_t)n;
				if (n >= 0)
					continue;
				break;
			}
			n = read(c->fd, scratch, sizeof scratch);
			if (n == 0)
				return 0;
			if (n > 0) {
				ssize_t w = write(c->fd, scratch, (size_t)n);
				if (w < 0 && errno != EAGAIN)
					return 0;
				if (w < 0)
					w = 0;
				if (w < n) {
					free(c->pending);
					c->pending_len = (size_t)(n - w);
					c->pending_off = 0;
					c->pending = malloc(c->pending_len);
					if (!c->pending)
						return 0;
					memcpy(c->pending, scratch + w, c->pending_len);
				}
				continue;
			}
			break;
		case ST_REQUEST:
			n = read(c->fd, scratch, (size_t)c->remaining);
			if (n == 0)
				return 0;
			if (n > 0) {
				c->remaining -= (uint64_t)n;
				if (c->remaining == 0) {
					c->state = ST_REPLY;
					c->remaining = REQ_SIZE;
				}
				continue;
			}
			break;
		case ST_REPLY:
			n = write(c->fd, pattern + (REQ_SIZE - c->remaining), (size_t)c->remaining);
			if (n > 0) {
				c->remaining -= (uint64_t)n;
				if (c->remaining == 0)
					return 0;
				continue;
			}
			if (n == 0)
				continue;
			break;
		}
		/* n < 0: wait for readiness on EAGAIN, give up on anything else */
		if (errno == EINTR)
			continue;
		return errno == EAGAIN;
	}
}

static uint32_t conn_wants(const struct conn *c)
{
	switch (c->state) {
	case ST_SOURCE:
	case ST_REPLY:
		return EPOLLOUT;
	case ST_ECHO:
		return c->pending_len > c->pending_off ? EPOLLOUT : EPOLLIN;
	default:
		return EPOLLIN;
	}
}

/* One step of a connection's work; then it is freed when done, or its
 * epoll interest follows what it now waits for. */
static void conn_advance(int ep, struct conn *c)
{
	if (!conn_step(c)) {
		conn_free(ep, c);
		return;
	}
	uint32_t want = conn_wants(c);
	if (want != c->events) {
		c->events = want;
		struct epoll_event cev = { .events = want, .data.ptr = c };
		epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &cev);
	}
}

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int run_backend(const char *path)
{
	struct sockaddr_un sa;
	if (set_addr(&sa, path) < 0)
		die("socket path too long: %s", path);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket: %s", strerror(errno));
	unlink(path);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("bind %s: %s", path, strerror(errno));
	if (listen(lfd, SOMAXCONN) < 0)
		die("listen: %s", strerror(errno));
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		die("epoll_create1: %s", strerror(errno));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0)
		die("epoll_ctl: %s", strerror(errno));

	struct sigaction sa_stop = { .sa_handler = on_stop };
	sigaction(SIGTERM, &sa_stop, NULL);
	sigaction(SIGINT, &sa_stop, NULL);
	printf("listening path=%s\n", path);
	fflush(stdout);

	struct epoll_event events[256];
	while (!stop_requested) {
		int n = epoll_wait(ep, events, 256, 1000);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;
			if (!c) {
				for (;;) {
					int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
					if (fd < 0)
						break;
					c = calloc(1, sizeof *c);
					if (!c) {
						close(fd);
						continue;
					}
					c->fd = fd;
					c->state = ST_HEADER;
					c->events = EPOLLIN;
					struct epoll_event cev = { .events = EPOLLIN, .data.ptr = c };
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev) < 0) {
						close(fd);
						free(c);
						continue;
					}
					conn_advance(ep, c);
				}
				continue;
			}
			conn_advance(ep, c);
		}
	}
	unlink(path);
	return 0;
}

/* ---------------------------------------------------------------- clients */

static int run_upload(const char *path, uint64_t bytes)
{
	uint64_t t0 = now_ns();
	int fd = connect_unix(path);
	if (fd < 0)
		die("connect %s: %s", path, strerror(-fd));
	unsigned char header[9] = { 'S' };
	memcpy(header + 1, &bytes, 8);
	int r = write_all(fd, header, sizeof header);
	for (uint64_t left = bytes; r == 0 && left > 0;) {
		size_t chunk = left < sizeof pattern ? (size_t)left : sizeof pattern;
		r = write_all(fd, pattern, chunk);
		left -= chunk;
	}
	if (r < 0)
		die("upload write: %s", strerror(-r));
	uint64_t got = 0;
	r = read_exact(fd, &got, sizeof got);
	if (r < 0)
		die("upload: no byte count from the backend: %s", strerror(-r));
	uint64_t t1 = now_ns();
	close(fd);
	if (got != bytes)
		die("upload: backend received %" PRIu64 " bytes, sent %" PRIu64, got, bytes);
	double s = (double)(t1 - t0) / 1e9;
	printf("mbps=%.1f bytes=%" PRIu64 " seconds=%.4f\n", (double)bytes / 1e6 / s, bytes, s);
	return 0;
}

/* Connects and asks the backend for `bytes` ('R' and their count). */
static int start_download(const char *path, uint64_t bytes, const char *what)
{
	int fd = connect_unix(path);
	if (fd < 0)
		die("connect %s: %s", path, strerror(-fd));
	unsigned char header[9] = { 'R' };
	memcpy(header + 1, &bytes, 8);
	int r = write_all(fd, header, sizeof header);
	if (r < 0)
		die("%s header: %s", what, strerror(-r));
	return fd;
}

static int run_download(const char *path, uint64_t bytes)
{
	static unsigned char buf[BUF_SIZE];
	uint64_t t0 = now_ns();
	int fd = start_download(path, bytes, "download");
	uint64_t got = 0;
	while (got < bytes) {
		uint64_t left = bytes - got;
		ssize_t n = read(fd, buf, left < sizeof buf ? (size_t)left : sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("download read after %" PRIu64 " bytes: %s", got, strerror(errno));
		if (n == 0)
			break;
		got += (uint64_t)n;
	}
	uint64_t t1 = now_ns();
	close(fd);
	if (got != bytes)
		die("download: received %" PRIu64 " bytes, expected %" PRIu64, got, bytes);
	double s = (double)(t1 - t0) / 1e9;
	printf("mbps=%.1f bytes=%" PRIu64 " seconds=%.4f\n", (double)bytes / 1e6 / s, bytes, s);
	return 0;
}

/* A download whose reader is slower than the relay: reads of at most chunk
 * bytes, and a sleep whenever it is ahead of rate_mbps (10^6 bytes/s). The
 * relay's writes towards it then stop short, which is the throttled path of
 * a download to a slow hv_sock peer. */
static int run_throttled(const char *path, uint64_t bytes, double rate_mbps, uint64_t chunk)
{
	static unsigned char buf[BUF_SIZE];
	if (chunk == 0 || chunk > sizeof buf || rate_mbps <= 0)
		die("throttled: chunk must be in 1..%zu and the rate > 0", sizeof buf);
	uint64_t t0 = now_ns();
	int fd = start_download(path, bytes, "throttled");
	uint64_t got = 0, sleeps = 0;
	while (got < bytes) {
		uint64_t left = bytes - got;
		ssize_t n = read(fd, buf, left < chunk ? (size_t)left : (size_t)chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("throttled read after %" PRIu64 " bytes: %s", got, strerror(errno));
		if (n == 0)
			break;
		got += (uint64_t)n;
		uint64_t due = t0 + (uint64_t)((double)got * 1000.0 / rate_mbps);
		uint64_t now = now_ns();
		if (due > now) {
			struct timespec ts = { .tv_sec = (time_t)((due - now) / 1000000000u),
			                       .tv_nsec = (long)((due - now) % 1000000000u) };
			nanosleep(&ts, NULL);
			sleeps++;
		}
	}
	uint64_t t1 = now_ns();
	close(fd);
	if (got != bytes)
		die("throttled: received %" PRIu64 " bytes, expected %" PRIu64, got, bytes);
	double s = (double)(t1 - t0) / 1e9;
	printf("mbps=%.1f bytes=%" PRIu64 " seconds=%.4f sleeps=%" PRIu64 "\n",
	       (double)bytes / 1e6 / s, bytes, s, sleeps);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static double percentile_us(const uint64_t *sorted, size_t n, double p)
{
	/* nearest-rank: the smallest sample with at least p of them at or below */
	size_t rank = (size_t)((p * (double)n) + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1000.0;
}

static int run_latency(const char *path, uint64_t count, uint64_t size, double max_seconds)
{
	if (count == 0 || size == 0 || size > 65536)
		die("latency: count must be > 0 and size in 1..65536");
	uint64_t *rtt = calloc((size_t)count, sizeof *rtt);
	unsigned char *in = malloc((size_t)size);
	if (!rtt || !in)
		die("out of memory");
	int fd = connect_unix(path);
	if (fd < 0)
		die("connect %s: %s", path, strerror(-fd));
	int r = write_all(fd, "E", 1);
	if (r < 0)
		die("latency header: %s", strerror(-r));
	uint64_t deadline = max_seconds > 0 ? now_ns() + (uint64_t)(max_seconds * 1e9) : UINT64_MAX;
	uint64_t done = 0;
	for (uint64_t i = 0; i < count; i++) {
		const unsigned char *out = pattern + (i % 251);
		uint64_t t0 = now_ns();
		r = write_all(fd, out, (size_t)size);
		if (r == 0)
			r = read_exact(fd, in, (size_t)size);
		uint64_t t1 = now_ns();
		if (r < 0)
			die("latency round trip %" PRIu64 ": %s", i, strerror(-r));
		if (memcmp(in, out, (size_t)size) != 0)
			die("latency round trip %" PRIu64 ": echo differs from what was sent", i);
		rtt[i] = t1 - t0;
		done = i + 1;
		if (t1 > deadline)
			break;
	}
	count = done;
	close(fd);
	double sum = 0;
	for (uint64_t i = 0; i < count; i++)
		sum += (double)rtt[i];
	qsort(rtt, (size_t)count, sizeof *rtt, cmp_u64);
	printf("p50_us=%.1f p99_us=%.1f mean_us=%.1f max_us=%.1f count=%" PRIu64 "\n",
	       percentile_us(rtt, (size_t)count, 0.50), percentile_us(rtt, (size_t)count, 0.99),
	       sum / (double)count / 1000.0, (double)rtt[count - 1] / 1000.0, count);
	free(rtt);
	free(in);
	return 0;
}

/* One request/reply exchange on a fresh connection; 0 or -errno. */
static int request_once(const char *path)
{
	unsigned char req[REQ_SIZE], rep[REQ_SIZE];
	memcpy(req, pattern, sizeof req);
	req[0] = 'Q';
	int fd = connect_unix(path);
	if (fd < 0)
		return fd;
	int r = write_all(fd, req, sizeof req);
	if (r == 0)
		r = read_exact(fd, rep, sizeof rep);
	if (r == 0 && memcmp(rep, pattern, sizeof rep) != 0)
		r = -EBADMSG;
	close(fd);
	return r;
}

struct rate_worker {
	pthread_t thread;
	const char *path;
	uint64_t deadline;
	uint64_t ok, failed;
	int first_error;
};

static void *rate_worker_main(void *arg)
{
	struct rate_worker *w = arg;
	while (now_ns() < w->deadline) {
		int r = request_once(w->path);
		if (r == 0) {
			w->ok++;
			continue;
		}
		w->failed++;
		if (!w->first_error)
			w->first_error = -r;
		/* a refusing proxy must not turn this loop into a busy spin */
		struct timespec ts = { .tv_nsec = 1000000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static int run_connrate(const char *path, uint64_t threads, double seconds)
{
	if (threads == 0 || threads > 1024)
		die("connrate: threads must be in 1..1024");
	struct rate_worker *w = calloc((size_t)threads, sizeof *w);
	if (!w)
		die("out of memory");
	uint64_t t0 = now_ns();
	uint64_t deadline = t0 + (uint64_t)(seconds * 1e9);
	for (uint64_t i = 0; i < threads; i++) {
		w[i].path = path;
		w[i].deadline = deadline;
		int r = pthread_create(&w[i].thread, NULL, rate_worker_main, &w[i]);
		if (r)
			die("pthread_create: %s", strerror(r));
	}
	uint64_t ok = 0, failed = 0;
	int first_error = 0;
	for (uint64_t i = 0; i < threads; i++) {
		pthread_join(w[i].thread, NULL);
		ok += w[i].ok;
		failed += w[i].failed;
		if (!first_error)
			first_error = w[i].first_error;
	}
	double s = (double)(now_ns() - t0) / 1e9;
	printf("cps=%.0f ok=%" PRIu64 " failed=%" PRIu64 " seconds=%.3f first_error=%s\n",
	       (double)ok / s, ok, failed, s, first_error ? strerror(first_error) : "none");
	free(w);
	return 0;
}

static int run_hold(const char *path, uint64_t n, uint64_t seconds)
{
	int *fds = calloc((size_t)n, sizeof *fds);
	if (!fds)
		die("out of memory");
	/* one echo round trip per connection proves that the proxy has dialled
	 * the backend for it, so its per-connection state is all in place */
	for (uint64_t i = 0; i < n; i++) {
		unsigned char msg[65], back[64];
		msg[0] = 'E';
		memcpy(msg + 1, pattern, 64);
		fds[i] = connect_unix(path);
		if (fds[i] < 0)
			die("hold: connection %" PRIu64 ": %s", i, strerror(-fds[i]));
		int r = write_all(fds[i], msg, sizeof msg);
		if (r == 0)
			r = read_exact(fds[i], back, sizeof back);
		if (r == 0 && memcmp(back, pattern, sizeof back) != 0)
			r = -EBADMSG;
		if (r < 0)
			die("hold: connection %" PRIu64 ": %s", i, strerror(-r));
	}
	struct sigaction sa_stop = { .sa_handler = on_stop };
	sigaction(SIGTERM, &sa_stop, NULL);
	sigaction(SIGINT, &sa_stop, NULL);
	printf("ready conns=%" PRIu64 "\n", n);
	fflush(stdout);
	uint64_t deadline = now_ns() + seconds * 1000000000u;
	while (!stop_requested && now_ns() < deadline) {
		struct timespec ts = { .tv_nsec = 20000000 };
		nanosleep(&ts, NULL);
	}
	for (uint64_t i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return 0;
}

/* pipe_inode PATH: the inode of the pipe a /proc/PID/fd/N link names, or 0 */
static unsigned long pipe_inode(const char *link)
{
	char target[128];
	ssize_t len = readlink(link, target, sizeof target - 1);
	unsigned long ino;
	if (len <= 0)
		return 0;
	target[len] = 0;
	return sscanf(target, "pipe:[%lu]", &ino) == 1 ? ino : 0;
}

/* Adds to busy[] the pipes that a thread of process pid is blocked in
 * splice(2) on (from /proc/PID/task/TID/syscall: number, then the
 * arguments in hex). A blocking splice holds its pipe's mutex while it waits
 * for the socket, and opening that pipe would wait for the mutex, in an
 * uninterruptible sleep, until data comes: bench/floor.c's threads do that
 * on every idle connection. */
#define SYS_SPLICE_X86_64 275
static void blocked_in_splice(const char *pid, unsigned long *busy, size_t *n_busy, size_t max)
{
	char dir[64];
	snprintf(dir, sizeof dir, "/proc/%s/task", pid);
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[PATH_MAX], line[512];
		snprintf(path, sizeof path, "%s/%s/syscall", dir, de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		long nr;
		unsigned long long in, off, out;
		if (fgets(line, sizeof line, f) &&
		    sscanf(line, "%ld %llx %llx %llx", &nr, &in, &off, &out) == 4 &&
		    nr == SYS_SPLICE_X86_64) {
			unsigned long long fds[2] = { in, out };
			for (int i = 0; i < 2; i++) {
				char link[64];
				snprintf(link, sizeof link, "/proc/%s/fd/%llu", pid, fds[i]);
				unsigned long ino = pipe_inode(link);
				if (ino && *n_busy < max)
					busy[(*n_busy)++] = ino;
			}
		}
		fclose(f);
	}
	closedir(d);
}

/* Counts the distinct pipes the processes hold, their capacity and the bytes
 * queued in them. A pipe is reopened through /proc/PID/fd (which opens the
 * same pipe), so F_GETPIPE_SZ and FIONREAD work from outside the process;
 * a pipe that a thread is blocked in splice(2) on is counted, not opened
 * ("locked"; its capacity is not known, and it is empty in bench/floor.c's
 * design: each thread drains its pipe before it reads again). */
static int run_pipes(int argc, char **argv)
{
	static unsigned long inodes[8192], busy[8192];
	size_t n_inodes = 0, n_busy = 0, locked = 0;
	uint64_t capacity = 0, queued = 0;
	for (int a = 0; a < argc; a++) {
		char dir[64];
		blocked_in_splice(argv[a], busy, &n_busy, sizeof busy / sizeof busy[0]);
		snprintf(dir, sizeof dir, "/proc/%s/fd", argv[a]);
		DIR *d = opendir(dir);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char link[PATH_MAX];
			snprintf(link, sizeof link, "%s/%s", dir, de->d_name);
			unsigned long ino = pipe_inode(link);
			if (!ino)
				continue;
			size_t i;
			for (i = 0; i < n_inodes && inodes[i] != ino; i++)
				;
			if (i < n_inodes || n_inodes == sizeof inodes / sizeof inodes[0])
				continue;
			inodes[n_inodes++] = ino;
			for (i = 0; i < n_busy && busy[i] != ino; i++)
				;
			if (i < n_busy) {
				locked++;
				continue;
			}
			int fd = open(link, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0)
				continue;
			int sz = fcntl(fd, F_GETPIPE_SZ);
			int q = 0;
			if (sz > 0)
				capacity += (uint64_t)sz;
			if (ioctl(fd, FIONREAD, &q) == 0 && q > 0)
				queued += (uint64_t)q;
			close(fd);
		}
		closedir(d);
	}
	printf("pipes=%zu capacity=%" PRIu64 " queued=%" PRIu64 " locked=%zu\n", n_inodes, capacity,
	       queued, locked);
	return 0;
}

static void usage(void)
{
	fputs("usage: rddbench backend PATH\n"
	      "       rddbench upload|download PATH BYTES\n"
	      "       rddbench throttled PATH BYTES MBPS CHUNK\n"
	      "       rddbench latency PATH COUNT SIZE [SECONDS]\n"
	      "       rddbench connrate PATH THREADS SECONDS\n"
	      "       rddbench hold PATH N SECONDS\n"
	      "       rddbench ping PATH\n"
	      "       rddbench pipes PID...\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	fill_pattern();
	const char *mode = argv[1], *path = argv[2];
	if (!strcmp(mode, "backend") && argc == 3)
		return run_backend(path);
	if (!strcmp(mode, "upload") && argc == 4)
		return run_upload(path, parse_u64(argv[3], "byte count"));
	if (!strcmp(mode, "download") && argc == 4)
		return run_download(path, parse_u64(argv[3], "byte count"));
	if (!strcmp(mode, "throttled") && argc == 6) {
		char *end;
		double rate = strtod(argv[4], &end);
		if (*end || rate <= 0)
			die("bad rate: %s", argv[4]);
		return run_throttled(path, parse_u64(argv[3], "byte count"), rate,
		                     parse_u64(argv[5], "chunk"));
	}
	if (!strcmp(mode, "latency") && (argc == 5 || argc == 6)) {
		double secs = 0;
		if (argc == 6) {
			char *end;
			secs = strtod(argv[5], &end);
			if (*end || secs <= 0)
				die("bad seconds: %s", argv[5]);
		}
		return run_latency(path, parse_u64(argv[3], "count"), parse_u64(argv[4], "size"), secs);
	}
	if (!strcmp(mode, "connrate") && argc == 5) {
		char *end;
		double s = strtod(argv[4], &end);
		if (*end || s <= 0 || s > 600)
			die("bad seconds: %s", argv[4]);
		return run_connrate(path, parse_u64(argv[3], "threads"), s);
	}
	if (!strcmp(mode, "hold") && argc == 5)
		return run_hold(path, parse_u64(argv[3], "count"), parse_u64(argv[4], "seconds"));
	if (!strcmp(mode, "ping") && argc == 3) {
		int r = request_once(path);
		if (r < 0) {
			fprintf(stderr, "rddbench: ping %s: %s\n", path, strerror(-r));
			return 1;
		}
		return 0;
	}
	if (!strcmp(mode, "pipes"))
		return run_pipes(argc - 2, argv + 2);
	usage();
	return 2;
}
