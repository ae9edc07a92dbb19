/*
 * vmtool: the peer and the backend used by the VM test (tests/vm/run.sh).
 *
 * It runs inside the test guest, built static so the initramfs needs no
 * libraries for it. Both roles move a deterministic pseudo-random byte
 * stream (xorshift64* keyed by --seed) and checksum what they send and what
 * they receive, so the host can compare the two ends of a relay without
 * shipping the bytes anywhere.
 *
 *   vmtool client  --connect vsock:CID:PORT|unix:PATH [options]
 *   vmtool backend --listen  vsock:PORT|unix:PATH     [options]
 *   vmtool keep    --listen  vsock:PORT|unix:PATH     [options] -- COMMAND [ARG...]
 *
 * Options (both roles):
 *   --name NAME       label of the RESULT lines
 *   --send N          bytes to send (suffix K or M allowed)
 *   --seed S          stream key (default 1)
 *   --order now|after-eof
 *                     now: send at once, shut write when done, read meanwhile;
 *                     after-eof: read until the other side's EOF, then send
 *   --pace-ms MS      sleep MS after every --chunk bytes sent (default 0)
 *   --chunk N         send size (default 64K)
 *   --timeout S       give up after S seconds (default 60)
 *   --started-file P  create P once the first byte has been received
 * Client only:
 *   --connected-file P  create P once connect() has completed
 *   --shut-file P     create P once every byte is sent and the write side shut
 * Backend only:
 *   --count N         connections to serve before exiting (default 1)
 *   --ready-file P    create P once listening
 *
 * Every connection prints one line
 *   RESULT NAME role=client|backend ... key=value ...
 * and the backend prints "RESULT NAME role=backend-summary accepted=N" when
 * it exits (after --count connections, on SIGTERM, or on timeout).
 *
 * keep: what systemd's descriptor store or a socket unit does for a
 * restart, and nothing more. It binds and listens (never accepts), then
 * runs COMMAND with that socket as fd 3 and LISTEN_FDS=1,
 * LISTEN_PID=<the child's pid> (an exec keeps it, so COMMAND may be a shell
 * that execs the daemon), KEEP_CHILD=N (1 for the first child); with
 * --fdname NAME also LISTEN_FDNAMES=NAME, else that is unset. SIGUSR1 starts
 * the next child with the same socket (whether or not the previous one is
 * still running). SIGTERM is passed to every live child; the keeper exits
 * once they all have, printing
 *   RESULT NAME role=keeper children=N child1_exit=E child2_exit=E ... stopped_by=signal|timeout
 * (E an exit status, sigN, or running). On --timeout the children get
 * SIGKILL. Options: --name, --timeout, --ready-file (created once
 * listening), --pid-file PREFIX (child N writes its pid to PREFIX.N before
 * it execs), --fdname NAME, --max-children N (default 8).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal, next_child;

static void on_signal(int sig) { stop_signal = sig; }
static void on_next(int sig) { (void)sig; next_child++; }
static void on_child(int sig) { (void)sig; }

struct stream {
	uint64_t state;
};

static uint64_t stream_next(struct stream *s)
{
	s->state ^= s->state >> 12;
	s->state ^= s->state << 25;
	s->state ^= s->state >> 27;
	return s->state * 0x2545F4914F6CDD1DULL;
}

/* Fills buf with the next len bytes (len a multiple of 8). */
static void stream_fill(struct stream *s, unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t w = stream_next(s);
		memcpy(buf + i, &w, 8);
	}
}

/* FNV-style hash over 64-bit words; independent of how the bytes were chunked. */
struct checksum {
	uint64_t h;
	uint64_t total;
	unsigned char carry[8];
	size_t ncarry;
};

static void checksum_init(struct checksum *c)
{
	memset(c, 0, sizeof(*c));
	c->h = 0xcbf29ce484222325ULL;
}

static void checksum_word(struct checksum *c, const unsigned char *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
	c->h = (c->h ^ w) * 0x100000001b3ULL;
}

static void checksum_add(struct checksum *c, const unsigned char *p, size_t n)
{
	c->total += n;
	while (n > 0 && c->ncarry > 0) {
		c->carry[c->ncarry++] = *p++;
		n--;
		if (c->ncarry == 8) {
			checksum_word(c, c->carry);
			c->ncarry = 0;
		}
	}
	while (n >= 8) {
		checksum_word(c, p);
		p += 8;
		n -= 8;
	}
	while (n > 0) {
		c->carry[c->ncarry++] = *p++;
		n--;
	}
}

static uint64_t checksum_final(const struct checksum *c)
{
	struct checksum t = *c;
	if (t.ncarry > 0) {
		memset(t.carry + t.ncarry, 0, 8 - t.ncarry);
		checksum_word(&t, t.carry);
	}
	return (t.h ^ t.total) * 0x100000001b3ULL;
}

struct options {
	const char *role;
	const char *addr;
	const char *name;
	uint64_t send;
	uint64_t seed;
	int after_eof;
	long pace_ms;
	size_t chunk;
	long timeout;
	const char *started_file;
	const char *connected_file;
	const char *shut_file;
	long count;
	const char *ready_file;
	const char *pid_file;
	const char *fdname;
	long max_children;
	char **command;
};

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void touch(const char *path)
{
	if (!path)
		return;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
};

/* vsock:CID:PORT (connect), vsock:PORT (listen), unix:PATH */
static int parse_addr(const char *s, int listening, struct addr *a)
{
	memset(a, 0, sizeof(*a));
	if (strncmp(s, "vsock:", 6) == 0) {
		struct sockaddr_vm *vm = (struct sockaddr_vm *)&a->ss;
		unsigned long cid = VMADDR_CID_ANY, port;
		char *end;
		const char *p = s + 6;
		if (!listening) {
			cid = strtoul(p, &end, 10);
			if (end == p || *end != ':')
				return -1;
			p = end + 1;
		}
		port = strtoul(p, &end, 10);
		if (end == p || *end)
			return -1;
		vm->svm_family = AF_VSOCK;
		vm->svm_cid = (unsigned int)cid;
		vm->svm_port = (unsigned int)port;
		a->len = sizeof(*vm);
		a->family = AF_VSOCK;
		return 0;
	}
	if (strncmp(s, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&a->ss;
		if (strlen(s + 5) >= sizeof(un->sun_path))
			return -1;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, s + 5);
		a->len = sizeof(*un);
		a->family = AF_UNIX;
		return 0;
	}
	return -1;
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 10);
	if (*end == 'K' || *end == 'k')
		v <<= 10;
	else if (*end == 'M' || *end == 'm')
		v <<= 20;
	return v;
}

struct result {
	uint64_t sent;
	struct checksum sent_sum;
	struct checksum recv_sum;
	uint64_t recv_at_shut; /* bytes received when we shut our write side */
	int shut;
	int eof;
	const char *end; /* eof, reset, timeout, signal, error */
	int err;
	double seconds;
};

/*
 * Moves the two directions of one connection: send o->send bytes (at once or
 * after the peer's EOF), shut write when they are all sent, and read until EOF.
 */
static void transfer(int fd, const struct options *o, struct result *r)
{
	struct stream st = { o->seed ? o->seed : 1 };
	size_t bufsize = o->chunk;
	unsigned char *out = malloc((bufsize + 7) & ~(size_t)7), *in = malloc(256 * 1024);
	size_t out_len = 0, out_off = 0;
	int started = 0;
	double t0 = now_seconds();

	if (!out || !in) {
		r->end = "error";
		r->err = ENOMEM;
		goto done;
	}
	checksum_init(&r->sent_sum);
	checksum_init(&r->recv_sum);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	r->end = "eof";

	for (;;) {
		int may_send = !r->shut && (!o->after_eof || r->eof);
		if (may_send && out_off == out_len && r->sent == o->send) {
			shutdown(fd, SHUT_WR);
			r->shut = 1;
			r->recv_at_shut = r->recv_sum.total;
			may_send = 0;
			touch(o->shut_file);
		}
		if (r->eof && r->shut)
			break;
		if (stop_signal) {
			r->end = stop_signal == SIGALRM ? "timeout" : "signal";
			break;
		}
		struct pollfd p = { fd, (short)((r->eof ? 0 : POLLIN) | (may_send ? POLLOUT : 0)), 0 };
		if (poll(&p, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			r->end = "error";
			r->err = errno;
			break;
		}
		if (!r->eof && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(fd, in, 256 * 1024);
			if (n > 0) {
				checksum_add(&r->recv_sum, in, (size_t)n);
				if (!started) {
					started = 1;
					touch(o->started_file);
				}
			} else if (n == 0) {
				r->eof = 1;
			} else if (errno != EAGAIN && errno != EINTR) {
				r->end = errno == ECONNRESET ? "reset" : "error";
				r->err = errno;
				r->eof = 1;
				break;
			}
		}
		if (may_send && (p.revents & (POLLOUT | POLLERR))) {
			if (out_off == out_len) {
				uint64_t left = o->send - r->sent;
				size_t n = left < bufsize ? (size_t)left : bufsize;
				stream_fill(&st, out, (bufsize + 7) & ~(size_t)7);
				out_len = n;
				out_off = 0;
			}
			ssize_t n = write(fd, out + out_off, out_len - out_off);
			if (n > 0) {
				checksum_add(&r->sent_sum, out + out_off, (size_t)n);
				out_off += (size_t)n;
				r->sent += (uint64_t)n;
				if (out_off == out_len && o->pace_ms > 0)
					sleep_ms(o->pace_ms);
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				r->end = (errno == ECONNRESET || errno == EPIPE) ? "reset" : "error";
				r->err = errno;
				break;
			}
		}
	}
done:
	r->seconds = now_seconds() - t0;
	free(out);
	free(in);
}

static void print_result(const struct options *o, const char *role, const char *extra,
			 const struct result *r)
{
	uint64_t recv = r->recv_sum.total;
	double mib = (double)(recv > r->sent ? recv : r->sent) / (1024.0 * 1024.0);
	printf("RESULT %s role=%s %s sent=%" PRIu64 " sent_sum=%016" PRIx64 " recv=%" PRIu64
	       " recv_sum=%016" PRIx64 " shut=%d recv_at_shut=%" PRIu64 " eof=%d end=%s errno=%d"
	       " seconds=%.3f mibps=%.1f\n",
	       o->name, role, extra, r->sent, checksum_final(&r->sent_sum), recv,
	       checksum_final(&r->recv_sum), r->shut, r->recv_at_shut, r->eof, r->end, r->err,
	       r->seconds, r->seconds > 0 ? mib / r->seconds : 0.0);
	fflush(stdout);
}

static int run_client(const struct options *o, const struct addr *a)
{
	struct result r = { 0 };
	char extra[128];
	int fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	checksum_init(&r.sent_sum);
	checksum_init(&r.recv_sum);
	if (fd < 0 || connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0) {
		printf("RESULT %s role=client connect=fail errno=%d (%s)\n", o->name, errno,
		       strerror(errno));
		fflush(stdout);
		return 1;
	}
	touch(o->connected_file);
	snprintf(extra, sizeof(extra), "connect=ok");
	if (a->family == AF_VSOCK) {
		struct sockaddr_vm local;
		socklen_t len = sizeof(local);
		if (getsockname(fd, (struct sockaddr *)&local, &len) == 0)
			snprintf(extra, sizeof(extra), "connect=ok local_cid=%u local_port=%u",
				 local.svm_cid, local.svm_port);
	}
	transfer(fd, o, &r);
	close(fd);
	print_result(o, "client", extra, &r);
	return strcmp(r.end, "eof") == 0 ? 0 : 1;
}

static int run_backend(const struct options *o, const struct addr *a)
{
	long accepted = 0;
	int rc = 0;
	int lfd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->family == AF_UNIX)
		unlink(((const struct sockaddr_un *)&a->ss)->sun_path);
	if (lfd < 0 || bind(lfd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
	    listen(lfd, 16) < 0) {
		printf("RESULT %s role=backend-summary listen=fail errno=%d (%s) accepted=0\n",
		       o->name, errno, strerror(errno));
		fflush(stdout);
		return 1;
	}
	touch(o->ready_file);
	while (accepted < o->count && !stop_signal) {
		union {
			struct sockaddr_vm vm;
			struct sockaddr_un un;
		} peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			rc = 1;
			break;
		}
		accepted++;
		char extra[128];
		if (a->family == AF_VSOCK)
			snprintf(extra, sizeof(extra), "conn=%ld peer_cid=%u peer_port=%u", accepted,
				 peer.vm.svm_cid, peer.vm.svm_port);
		else
			snprintf(extra, sizeof(extra), "conn=%ld", accepted);
		struct result r = { 0 };
		transfer(fd, o, &r);
		close(fd);
		print_result(o, "backend", extra, &r);
		if (strcmp(r.end, "eof") != 0)
			rc = 1;
	}
	close(lfd);
	printf("RESULT %s role=backend-summary accepted=%ld stopped_by=%s\n", o->name, accepted,
	       stop_signal == SIGALRM ? "timeout" : stop_signal ? "signal" : "count");
	fflush(stdout);
	return rc;
}

/* The listening socket keep holds, never accepting; -1 with a RESULT line on failure. */
static int keep_listen(const struct options *o, const struct addr *a)
{
	int lfd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->family == AF_UNIX)
		unlink(((const struct sockaddr_un *)&a->ss)->sun_path);
	if (lfd < 0 || bind(lfd, (const struct sockaddr *)&a->ss, a->len) < 0 ||
	    listen(lfd, 128) < 0) {
		printf("RESULT %s role=keeper listen=fail errno=%d (%s) children=0\n", o->name, errno,
		       strerror(errno));
		fflush(stdout);
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	return lfd;
}

/* Child n of keep: the socket as fd 3 and the socket-activation variables. */
static pid_t keep_spawn(const struct options *o, int lfd, int n, const sigset_t *mask)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	char buf[64];
	sigprocmask(SIG_SETMASK, mask, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (lfd == 3)
		fcntl(3, F_SETFD, 0);
	else if (dup2(lfd, 3) < 0)
		_exit(126);
	else
		close(lfd);
	snprintf(buf, sizeof(buf), "%ld", (long)getpid());
	setenv("LISTEN_PID", buf, 1);
	setenv("LISTEN_FDS", "1", 1);
	if (o->fdname)
		setenv("LISTEN_FDNAMES", o->fdname, 1);
	else
		unsetenv("LISTEN_FDNAMES");
	snprintf(buf, sizeof(buf), "%d", n);
	setenv("KEEP_CHILD", buf, 1);
	if (o->pid_file) {
		char path[4096];
		snprintf(path, sizeof(path), "%s.%d", o->pid_file, n);
		FILE *f = fopen(path, "w");
		if (f) {
			fprintf(f, "%ld\n", (long)getpid());
			fclose(f);
		}
	}
	execvp(o->command[0], o->command);
	fprintf(stderr, "vmtool keep: %s: %s\n", o->command[0], strerror(errno));
	_exit(127);
}

#define KEEP_MAX 16

static int run_keep(const struct options *o, const struct addr *a)
{
	pid_t pids[KEEP_MAX];
	int status[KEEP_MAX], live = 0, n = 0, forwarded = 0;
	long max = o->max_children > 0 && o->max_children <= KEEP_MAX ? o->max_children : 8;
	sigset_t block, old;

	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGALRM);
	sigprocmask(SIG_BLOCK, &block, &old);

	int lfd = keep_listen(o, a);
	if (lfd < 0)
		return 1;
	touch(o->ready_file);
	next_child = 1; /* the first child starts at once */
	for (;;) {
		int st;
		pid_t pid;
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			for (int i = 0; i < n; i++) {
				if (pids[i] == pid) {
					status[i] = st;
					pids[i] = 0;
					live--;
				}
			}
		}
		if (stop_signal && !forwarded) {
			for (int i = 0; i < n; i++)
				if (pids[i] > 0)
					kill(pids[i], stop_signal == SIGALRM ? SIGKILL : SIGTERM);
			forwarded = stop_signal == SIGALRM ? 2 : 1;
		}
		if (stop_signal == SIGALRM && forwarded == 1) {
			/* the timeout came while the children were stopping */
			for (int i = 0; i < n; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGKILL);
			forwarded = 2;
		}
		if (forwarded && live == 0)
			break;
		while (!forwarded && next_child > 0 && n < max) {
			next_child--;
			pids[n] = keep_spawn(o, lfd, n + 1, &old);
			if (pids[n] < 0) {
				status[n] = -1;
				pids[n] = 0;
			} else {
				live++;
			}
			n++;
		}
		next_child = 0;
		sigsuspend(&old);
	}
	close(lfd);
	printf("RESULT %s role=keeper children=%d", o->name, n);
	for (int i = 0; i < n; i++) {
		if (status[i] == -1)
			printf(" child%d_exit=forkfail", i + 1);
		else if (WIFEXITED(status[i]))
			printf(" child%d_exit=%d", i + 1, WEXITSTATUS(status[i]));
		else
			printf(" child%d_exit=sig%d", i + 1, WTERMSIG(status[i]));
	}
	printf(" stopped_by=%s\n", stop_signal == SIGALRM ? "timeout" : "signal");
	fflush(stdout);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: vmtool client --connect ADDR | backend --listen ADDR [options]\n"
			"       vmtool keep --listen ADDR [options] -- COMMAND [ARG...]\n"
			"  see the comment at the top of tests/vm/vmtool.c\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct options o = { .name = "unnamed", .seed = 1, .chunk = 64 * 1024, .timeout = 60,
			     .count = 1 };
	struct addr a;

	if (argc < 2)
		usage();
	o.role = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(k, "--")) {
			o.command = argv + i + 1;
			break;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(k, "--connect") || !strcmp(k, "--listen"))
			o.addr = v;
		else if (!strcmp(k, "--name"))
			o.name = v;
		else if (!strcmp(k, "--send"))
			o.send = parse_size(v);
		else if (!strcmp(k, "--seed"))
			o.seed = strtoull(v, NULL, 0);
		else if (!strcmp(k, "--order"))
			o.after_eof = !strcmp(v, "after-eof");
		else if (!strcmp(k, "--pace-ms"))
			o.pace_ms = atol(v);
		else if (!strcmp(k, "--chunk"))
			o.chunk = (size_t)parse_size(v);
		else if (!strcmp(k, "--timeout"))
			o.timeout = atol(v);
		else if (!strcmp(k, "--started-file"))
			o.started_file = v;
		else if (!strcmp(k, "--count"))
			o.count = atol(v);
		else if (!strcmp(k, "--ready-file"))
			o.ready_file = v;
		else if (!strcmp(k, "--connected-file"))
			o.connected_file = v;
		else if (!strcmp(k, "--shut-file"))
			o.shut_file = v;
		else if (!strcmp(k, "--pid-file"))
			o.pid_file = v;
		else if (!strcmp(k, "--fdname"))
			o.fdname = v;
		else if (!strcmp(k, "--max-children"))
			o.max_children = atol(v);
		else
			usage();
	}
	int listening = !strcmp(o.role, "backend") || !strcmp(o.role, "keep");
	if (!o.addr || o.chunk == 0 || parse_addr(o.addr, listening, &a) < 0)
		usage();
	if (!strcmp(o.role, "keep") && (!o.command || !o.command[0]))
		usage();

	/* No SA_RESTART: a signal must interrupt accept/connect/poll. */
	struct sigaction sa = { 0 };
	sa.sa_handler = on_signal;
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned int)o.timeout);

	if (!strcmp(o.role, "client"))
		return run_client(&o, &a);
	if (!strcmp(o.role, "backend"))
		return run_backend(&o, &a);
	if (!strcmp(o.role, "keep")) {
		struct sigaction sn = { 0 };
		sn.sa_handler = on_next;
		sigaction(SIGUSR1, &sn, NULL);
		sn.sa_handler = on_child;
		sigaction(SIGCHLD, &sn, NULL);
		return run_keep(&o, &a);
	}
	usage();
	return 2;
}
