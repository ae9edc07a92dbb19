/*
 * faultinject.so: LD_PRELOAD shim for the stress suite's fault scenarios.
 * Every control is a file named by an environment variable, so that a
 * scenario arms and disarms a fault while the daemon runs (its start-up
 * sockets are never touched):
 *
 *   RDD_FAULT_FILE         while it exists and holds an errno name (ENFILE,
 *                          EMFILE, ENOBUFS, ENOMEM, EPERM, EINVAL, ENOTSOCK,
 *                          EPROTO, ECONNABORTED, EINTR), accept4() fails
 *                          with that errno.
 *   RDD_FAULT_SOCKET_HIGH  while it holds a number N > 0, the next AF_UNIX
 *                          socket() result is moved to a descriptor
 *                          >= FD_SETSIZE (fcntl F_DUPFD, so RLIMIT_NOFILE
 *                          must be above 1024: the runner raises it) and N
 *                          is decremented: N sockets in all.
 *   RDD_FAULT_ACCEPT_HIGH  the same for accept4()'s results.
 *   RDD_FAULT_COUNT        each injected fault (of any kind) is counted
 *                          into this file.
 *
 * Why a shim and not the real thing: the system-wide file table limit
 * (fs.file-max) is shared with every other process on the machine, CI's
 * and other sessions' alike, and root (which the daemon runs as) bypasses
 * it with CAP_SYS_ADMIN anyway; ENOBUFS and ENOMEM cannot be provoked
 * without starving the whole machine; EPERM needs an LSM policy; and the
 * daemon's descriptor budget keeps its sockets below FD_SETSIZE, so the
 * safety net for one above it can only be reached by force.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned long injected;

/* The first word of the file named by the environment variable `var`,
 * or false when there is none. */
static int read_control(const char *var, char *buf, size_t size)
{
	const char *path = getenv(var);
	ssize_t n;
	int fd;

	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	buf[strcspn(buf, " \n")] = '\0';
	return 1;
}

static int injected_errno(void)
{
	static const struct {
		const char *name;
		int err;
	} names[] = {
		{ "ENFILE", ENFILE },
		{ "EMFILE", EMFILE },
		{ "ENOBUFS", ENOBUFS },
		{ "ENOMEM", ENOMEM },
		{ "EPERM", EPERM },
		{ "EINVAL", EINVAL },
		{ "ENOTSOCK", ENOTSOCK },
		{ "EPROTO", EPROTO },
		{ "ECONNABORTED", ECONNABORTED },
		{ "EINTR", EINTR },
	};
	char buf[32];

	if (!read_control("RDD_FAULT_FILE", buf, sizeof(buf)))
		return 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(buf, names[i].name) == 0)
			return names[i].err;
	return 0;
}

/* Written beside and renamed over: a reader never sees the file empty,
 * however fast a spinning daemon rewrites it. */
static void write_number(const char *path, unsigned long n)
{
	char buf[32], tmp[4096];
	int fd, len;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	len = snprintf(buf, sizeof(buf), "%lu\n", n);
	(void)!write(fd, buf, (size_t)len);
	close(fd);
	(void)rename(tmp, path);
}

static void count_injection(void)
{
	const char *path = getenv("RDD_FAULT_COUNT");

	injected++;
	if (path)
		write_number(path, injected);
}

/* One more of the N armed in the file named by `var`: true, and N - 1
 * written back. The daemon is single-threaded, so read-then-write is
 * enough. */
static int take_one(const char *var)
{
	char buf[32], *end;
	unsigned long n;

	if (!read_control(var, buf, sizeof(buf)))
		return 0;
	n = strtoul(buf, &end, 10);
	if (end == buf || n == 0)
		return 0;
	write_number(getenv(var), n - 1);
	return 1;
}

/* fd moved to a number >= FD_SETSIZE, its close-on-exec flag kept; on
 * failure (RLIMIT_NOFILE too low) fd itself, the fault not injected. */
static int move_high(int fd)
{
	int cloexec, high;

	if (fd < 0 || fd >= FD_SETSIZE)
		return fd;
	cloexec = fcntl(fd, F_GETFD);
	high = fcntl(fd, cloexec >= 0 && (cloexec & FD_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD,
		     FD_SETSIZE);
	if (high < 0)
		return fd;
	close(fd);
	count_injection();
	return high;
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
	int err = injected_errno();
	int r;

	if (err) {
		count_injection();
		errno = err;
		return -1;
	}
	if (!real_accept4) {
		*(void **)&real_accept4 = dlsym(RTLD_NEXT, "accept4");
		if (!real_accept4) {
			errno = ENOSYS;
			return -1;
		}
	}
	r = real_accept4(fd, addr, len, flags);
	if (r >= 0 && take_one("RDD_FAULT_ACCEPT_HIGH"))
		r = move_high(r);
	return r;
}

int socket(int domain, int type, int protocol)
{
	static int (*real_socket)(int, int, int);
	int r;

	if (!real_socket) {
		*(void **)&real_socket = dlsym(RTLD_NEXT, "socket");
		if (!real_socket) {
			errno = ENOSYS;
			return -1;
		}
	}
	r = real_socket(domain, type, protocol);
	if (r >= 0 && domain == AF_UNIX && take_one("RDD_FAULT_SOCKET_HIGH"))
		r = move_high(r);
	return r;
}
