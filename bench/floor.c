/*
 * floor: a REFERENCE for the benchmark, never built by `make`, never
 * installed, never shipped. bench/run.sh builds it into build/bench/floor.
 *
 *   floor LISTEN-PATH BACKEND-PATH
 *
 * The least a userspace relay can do on a Unix socket: one thread per
 * direction, each a blocking splice(2) loop through its own 256 KiB pipe
 * (socket -> pipe -> socket), and nothing else: no connection limit, no
 * peer policy, no drain at shutdown, no timeouts, no logging, no event
 * loop. A connection is accepted, the backend is dialled, a second thread is
 * started, and each direction half-closes its destination at EOF (or on an
 * error); the thread that owns the connection waits for the other direction,
 * then closes both sockets. It exists so that the bench can say how close
 * rdd-guest comes to what its placement allows (issue 11, part 3): "direct"
 * is the limit without a relay, "floor" the limit with one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define PIPE_SIZE (256 * 1024)

static struct sockaddr_un backend;

struct direction {
	int from, to;
};

struct conn {
	int client, server;
	struct direction down; /* backend -> client, its own thread */
};

static void *relay(void *arg)
{
	struct direction *d = arg;
	int p[2];
	if (pipe2(p, O_CLOEXEC) == 0) {
		fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE); /* best effort */
		for (;;) {
			ssize_t n = splice(d->from, NULL, p[1], NULL, PIPE_SIZE, SPLICE_F_MOVE);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			while (n > 0) {
				ssize_t w = splice(p[0], NULL, d->to, NULL, (size_t)n, SPLICE_F_MOVE);
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					goto out;
				n -= w;
			}
		}
	out:
		close(p[0]);
		close(p[1]);
	}
	shutdown(d->to, SHUT_WR);
	return NULL;
}

/* The connection's owner: dials the backend, starts the other direction,
 * relays client -> backend itself, then waits and closes. */
static void *conn_main(void *arg)
{
	struct conn *c = arg;
	c->server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->server >= 0 &&
	    connect(c->server, (struct sockaddr *)&backend, sizeof backend) == 0) {
		pthread_t t;
		c->down = (struct direction){ .from = c->server, .to = c->client };
		struct direction up = { .from = c->client, .to = c->server };
		if (pthread_create(&t, NULL, relay, &c->down) == 0) {
			relay(&up);
			pthread_join(t, NULL);
		}
	}
	if (c->server >= 0)
		close(c->server);
	close(c->client);
	free(c);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (argc != 3 || strlen(argv[1]) >= sizeof sa.sun_path ||
	    strlen(argv[2]) >= sizeof backend.sun_path) {
		fputs("usage: floor LISTEN-PATH BACKEND-PATH\n", stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	strcpy(sa.sun_path, argv[1]);
	backend.sun_family = AF_UNIX;
	strcpy(backend.sun_path, argv[2]);
	int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unlink(argv[1]);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, SOMAXCONN) < 0) {
		perror("floor: listen");
		return 1;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* out of descriptors or memory: wait, do not spin */
			usleep(10000);
			continue;
		}
		struct conn *c = calloc(1, sizeof *c);
		pthread_t t;
		if (!c) {
			close(fd);
			continue;
		}
		c->client = fd;
		c->server = -1;
		if (pthread_create(&t, &attr, conn_main, c) != 0) {
			close(fd);
			free(c);
		}
	}
}
