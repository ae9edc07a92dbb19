/* Descriptor hygiene at start-up, before any socket is opened: what a
 * careless parent can hand us that would break select() or the logs. */
#ifndef RDD_DESCRIPTORS_H
#define RDD_DESCRIPTORS_H

/* Opens /dev/null over a closed stdin, stdout or stderr. Otherwise the
 * first socket opened would take number 2 and every log line would be
 * written into a relayed connection. */
void descriptors_open_stdio(void);

/* select() can only watch descriptors below FD_SETSIZE, and each
 * connection needs two there. Returns 0 when enough numbers are free for
 * max_connections, or -EMFILE after logging how many are taken (inherited
 * descriptors a parent forgot to close). */
int descriptors_check_room(unsigned max_connections);

#endif
