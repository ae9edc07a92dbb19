#include "descriptors.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/select.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

void descriptors_open_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* The lowest free number is fd itself: 0..fd-1 are open. */
		if (open("/dev/null", O_RDWR) < 0)
			return;
	}
}

int descriptors_check_room(unsigned max_connections)
{
	/* Two sockets per connection, and the reserve (config.h) for the rest,
	 * stdio included: stdio is open by now and counted in `taken`. */
	unsigned taken = 0, need = 2u * max_connections + RDD_RESERVED_FDS - 3u;
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *entry;

	if (!dir)
		return 0; /* no /proc: nothing to learn, nothing to refuse */
	while ((entry = readdir(dir)) != NULL) {
		char *end;
		long fd = strtol(entry->d_name, &end, 10);

		if (*end == '\0' && end != entry->d_name && fd < FD_SETSIZE && fd != dirfd(dir))
			taken++;
	}
	closedir(dir);
	if (FD_SETSIZE - taken >= need)
		return 0;
	log_at(LOG_LEVEL_ERR,
	       "%u descriptors below %d are already open (inherited from the parent?): "
	       "--max-connections %u needs %u free there for select(); close them or lower the limit",
	       taken, FD_SETSIZE, max_connections, need);
	return -EMFILE;
}
