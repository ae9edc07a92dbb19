#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"

/* As long as the kernel allows (it caps the value at net.core.somaxconn):
 * a burst from the host (docker compose starting a dozen services), or the
 * connects that arrive while the daemon restarts, wait in the kernel
 * rather than being refused. */
#define LISTEN_BACKLOG INT_MAX

/* Room for any address this daemon listens on or accepts from. */
union socket_address {
	struct sockaddr sa;
	struct sockaddr_vm vm;
	struct sockaddr_un un;
};

static void describe_address(struct listener *listener)
{
	union socket_address addr;
	socklen_t len = sizeof(addr);

	memset(&addr, 0, sizeof(addr));
	if (getsockname(listener->fd, &addr.sa, &len) < 0) {
		snprintf(listener->description, sizeof(listener->description), "fd %d", listener->fd);
		return;
	}
	listener->family = addr.sa.sa_family;
	if (addr.sa.sa_family == AF_VSOCK)
		snprintf(listener->description, sizeof(listener->description), "vsock:%u",
			 addr.vm.svm_port);
	else if (addr.sa.sa_family == AF_UNIX)
		snprintf(listener->description, sizeof(listener->description), "unix:%.*s",
			 (int)sizeof(addr.un.sun_path), addr.un.sun_path[0] ? addr.un.sun_path : "@");
	else
		snprintf(listener->description, sizeof(listener->description), "family %d",
			 addr.sa.sa_family);
}

/* systemd passed us the socket: use it whatever its family or address. */
static int listener_inherit(struct listener *listener)
{
	const char *names = getenv("LISTEN_FDNAMES");
	int fd = SD_LISTEN_FDS_START;
	int n, flags;

	/* The name says where it came from ("listener": our own, back from
	 * systemd's descriptor store) for the start-up line only: either way
	 * it lives on after us. Read before sd_listen_fds() unsets it; a name
	 * list that does not match the count is not worth refusing to serve. */
	listener->stored = names && strcmp(names, "listener") == 0;
	n = sd_listen_fds(1);
	if (n < 0) {
		log_at(LOG_LEVEL_ERR, "socket activation: invalid LISTEN_FDS/LISTEN_PID: %s",
		       strerror(-n));
		return n;
	}
	if (n == 0)
		return 0;
	if (n > 1) {
		log_at(LOG_LEVEL_ERR, "socket activation: got %d sockets, expected one", n);
		return -EINVAL;
	}
	if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
		log_at(LOG_LEVEL_ERR, "socket activation: fd %d is not a listening stream socket", fd);
		return -ENOTSOCK;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	listener->fd = fd;
	listener->inherited = true;
	describe_address(listener);
	return 1;
}

/* socket, bind, listen; on failure one error line naming the address
 * (listener->description, set by the caller). */
static int listener_bind(struct listener *listener, const struct sockaddr *addr, socklen_t len)
{
	int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int err;

	if (fd < 0) {
		err = errno;
		log_at(LOG_LEVEL_ERR, "cannot listen on %s: %s%s", listener->description,
		       strerror(err),
		       err == EAFNOSUPPORT ? " (is a vsock transport module loaded?)" : "");
		return -err;
	}
	if (bind(fd, addr, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		err = errno;
		log_at(LOG_LEVEL_ERR, "cannot listen on %s: %s", listener->description, strerror(err));
		close(fd);
		return -err;
	}
	listener->fd = fd;
	listener->family = addr->sa_family;
	return 0;
}

static int listener_bind_vsock(struct listener *listener, uint32_t port)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK,
		.svm_cid = VMADDR_CID_ANY,
		.svm_port = port,
	};

	snprintf(listener->description, sizeof(listener->description), "vsock:%u", port);
	return listener_bind(listener, (const struct sockaddr *)&addr, sizeof(addr));
}

/* A socket file left by a daemon that did not exit cleanly is replaced; one
 * that a live process listens on, or a file that is not a socket, is not.
 * Only ECONNREFUSED proves that nobody listens: EACCES (a root-owned 0700
 * socket probed by another user), EAGAIN (a full backlog) and the rest
 * prove nothing, and a live socket must never be unlinked on a guess. */
static int remove_stale_socket(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		log_at(LOG_LEVEL_ERR, "cannot listen on %s: it exists and is not a socket", path);
		return -EEXIST;
	}
	/* Non-blocking: a live listener with a full backlog answers EAGAIN
	 * instead of holding up start-up. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	strcpy(addr.sun_path, path);
	r = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 ? 0 : -errno;
	close(fd);
	if (r == 0 || r == -EAGAIN) {
		log_at(LOG_LEVEL_ERR, "cannot listen on %s: another process is listening there", path);
		return -EADDRINUSE;
	}
	if (r == -ENOENT)
		return 0; /* gone since the lstat */
	if (r != -ECONNREFUSED) {
		log_at(LOG_LEVEL_ERR,
		       "cannot listen on %s: a socket exists there and probing it failed (%s), "
		       "so it may be live; remove it if it is stale",
		       path, strerror(-r));
		return -EADDRINUSE;
	}
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int listener_bind_unix(struct listener *listener, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	int r = remove_stale_socket(path);

	if (r < 0) {
		if (r != -EEXIST && r != -EADDRINUSE)
			log_at(LOG_LEVEL_ERR, "cannot listen on %s: %s", path, strerror(-r));
		return r;
	}
	strcpy(addr.sun_path, path);
	snprintf(listener->description, sizeof(listener->description), "unix:%s", path);
	r = listener_bind(listener, (const struct sockaddr *)&addr, sizeof(addr));
	if (r < 0)
		return r;
	strcpy(listener->path, path);
	if (stat(path, &st) == 0) {
		listener->remove_path = true;
		listener->path_dev = st.st_dev;
		listener->path_ino = st.st_ino;
	}
	return 0;
}

int listener_open(struct listener *listener, const struct config *cfg)
{
	int r;

	memset(listener, 0, sizeof(*listener));
	listener->fd = -1;
	r = listener_inherit(listener);
	if (r != 0)
		return r < 0 ? r : 0;
	if (cfg->listen_kind == LISTEN_VSOCK)
		return listener_bind_vsock(listener, cfg->vsock_port);
	return listener_bind_unix(listener, cfg->unix_path);
}

int listener_accept(struct listener *listener, struct peer *peer, bool want_credentials)
{
	union socket_address addr;
	socklen_t len = sizeof(addr);
	int fd;

	memset(peer, 0, sizeof(*peer));
	fd = accept4(listener->fd, &addr.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	peer->family = listener->family;
	if (listener->family == AF_VSOCK) {
		peer->cid = addr.vm.svm_cid;
		peer->port = addr.vm.svm_port;
	} else if (listener->family == AF_UNIX && want_credentials) {
		struct ucred cred;
		socklen_t cred_len = sizeof(cred);

		/* Unknown credentials are refused by any uid allow-list. */
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0) {
			cred.uid = (uid_t)-1;
			cred.pid = 0;
		}
		peer->uid = cred.uid;
		peer->pid = cred.pid;
		peer->credentials = true;
	}
	return fd;
}

bool listener_outlives_us(const struct listener *listener)
{
	return listener->inherited || listener->stored;
}

void listener_close(struct listener *listener)
{
	struct stat st;

	if (listener->fd < 0)
		return;
	close(listener->fd);
	listener->fd = -1;
	/* Another process may have replaced the file since (a second daemon
	 * started after this one's socket was removed): its socket stays. */
	if (listener->remove_path && !listener->stored && lstat(listener->path, &st) == 0 &&
	    st.st_dev == listener->path_dev && st.st_ino == listener->path_ino)
		unlink(listener->path);
	listener->remove_path = false;
}
