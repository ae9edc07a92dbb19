/* Dialling the Docker engine's unix socket, once per accepted peer. */
#ifndef RDD_BACKEND_H
#define RDD_BACKEND_H

/* A fresh non-blocking unix stream socket, or -errno. The server keeps one
 * made in advance, so that a peer is accepted only when there is a
 * descriptor to dial the backend with. */
int backend_socket(void);

/* Returns 0 when connected, -EINPROGRESS when the result comes later (the
 * socket turns writable; see backend_connect_result), or -errno. A full
 * backlog on the engine's socket is EAGAIN: a failure, not a wait, so that
 * no client hangs on an engine that does not accept. */
int backend_connect(int fd, const char *path);

/* After -EINPROGRESS: 0 or -errno from SO_ERROR. */
int backend_connect_result(int fd);

#endif
