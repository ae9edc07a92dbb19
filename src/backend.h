/* Dialling the Docker engine's unix socket, once per accepted peer. */
#ifndef RDD_BACKEND_H
#define RDD_BACKEND_H

/* A fresh non-blocking unix stream socket, or -errno. The server keeps one
 * made in advance, so that a peer is accepted only when there is a
 * descriptor to dial the backend with. */
int backend_socket(void);

/* Returns 0 when connected, or -errno. A non-blocking unix connect never
 * returns EINPROGRESS: it completes at once, or answers EAGAIN when the
 * engine's listen backlog is full (then the same socket may try again). */
int backend_connect(int fd, const char *path);

#endif
