/*
 * faultinject.so: LD_PRELOAD shim for the stress suite's "ENFILE-like
 * pressure" scenario. While the file named by RDD_FAULT_FILE exists and
 * holds an errno name (ENFILE, ENOBUFS, ENOMEM, EMFILE), accept4() fails
 * with that errno; each injected failure is counted into the file named by
 * RDD_FAULT_COUNT. Without the file, accept4() is the real one.
 *
 * Why a shim and not the real thing: the system-wide file table limit
 * (fs.file-max) is shared with every other process on the machine, CI's
 * and other sessions' alike, and root (which the daemon runs as) bypasses
 * it with CAP_SYS_ADMIN anyway; ENOBUFS and ENOMEM cannot be provoked
 * without starving the whole machine.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned long injected;

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
	};
	const char *path = getenv("RDD_FAULT_FILE");
	char buf[32];
	ssize_t n;
	int fd;

	if (!path)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	buf[strcspn(buf, " \n")] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(buf, names[i].name) == 0)
			return names[i].err;
	return 0;
}

static void count_injection(void)
{
	const char *path = getenv("RDD_FAULT_COUNT");
	char buf[32];
	int fd, len;

	injected++;
	if (!path)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	len = snprintf(buf, sizeof(buf), "%lu\n", injected);
	(void)!write(fd, buf, (size_t)len);
	close(fd);
}

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
	int err = injected_errno();

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
	return real_accept4(fd, addr, len, flags);
}
