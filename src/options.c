#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#ifndef RDD_GUEST_VERSION
#error "RDD_GUEST_VERSION must come from the top-level VERSION file (see Makefile)"
#endif

static const char usage_text[] =
	"Usage: rdd-guest [OPTION]...\n"
	"Relay connections from the Windows host (AF_VSOCK) to the Docker engine.\n"
	"\n"
	"  --listen vsock:PORT|unix:PATH  where to listen (default vsock:6660);\n"
	"                                 a socket passed by systemd wins\n"
	"  --backend PATH                 the Docker socket (default " RDD_BACKEND_PATH ")\n"
	"  --allow-cid CID                vsock peer allowed; repeatable (default 2)\n"
	"  --allow-uid UID                unix peer uid allowed; repeatable\n"
	"                                 (default: socket permissions decide)\n"
	"  --max-connections N            connections relayed at once (default 256)\n"
	"  --drain-timeout SECONDS        time given to connections at shutdown\n"
	"                                 (default 10)\n"
	"  --log-level LEVEL              err, warning, info or debug (default info)\n"
	"  --splice, --no-splice          move bulk transfers with splice(2) through\n"
	"                                 a pipe (default), or only read/write\n"
	"  --help                         show this help and exit\n"
	"  --version                      show the version and exit\n"
	"\n"
	"Signals: TERM/INT drain and exit (a second one exits at once), USR1 logs\n"
	"counters. Exit status: 0 clean, 1 runtime failure, 2 usage error.\n";

enum option_id {
	OPT_LISTEN = 256,
	OPT_BACKEND,
	OPT_ALLOW_CID,
	OPT_ALLOW_UID,
	OPT_MAX_CONNECTIONS,
	OPT_DRAIN_TIMEOUT,
	OPT_LOG_LEVEL,
	OPT_SPLICE,
	OPT_NO_SPLICE,
	OPT_HELP,
	OPT_VERSION,
};

static const struct option long_options[] = {
	{ "listen", required_argument, NULL, OPT_LISTEN },
	{ "backend", required_argument, NULL, OPT_BACKEND },
	{ "allow-cid", required_argument, NULL, OPT_ALLOW_CID },
	{ "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
	{ "max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS },
	{ "drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "splice", no_argument, NULL, OPT_SPLICE },
	{ "no-splice", no_argument, NULL, OPT_NO_SPLICE },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

void options_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen_kind = LISTEN_VSOCK;
	cfg->vsock_port = RDD_VSOCK_PORT;
	strcpy(cfg->backend_path, RDD_BACKEND_PATH);
	cfg->max_connections = RDD_MAX_CONNECTIONS;
	cfg->drain_timeout_s = RDD_DRAIN_TIMEOUT_S;
	cfg->log_level = LOG_LEVEL_INFO;
	/* Measured (make bench): splice costs about half the CPU per GiB of
	 * read/write between unix sockets and moves bulk faster; small
	 * exchanges stay on read/write either way (see relay.h). */
	cfg->use_splice = true;
}

/* How much of an argument an error line repeats: enough to recognise it;
 * a 100 KB argument must not push the reason off the end of the line. */
#define ECHO "80"

/* One line on `err`: "rdd-guest: " and the message, with any control
 * character from the user's text made harmless (a newline in an argument
 * must not make a second line). */
static void usage_error(FILE *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void usage_error(FILE *err, const char *fmt, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	text_make_printable(message);
	fprintf(err, "rdd-guest: %s\n", message);
}

/* A decimal number in [min, max]: digits only, no sign, no spaces, no
 * suffix, so "-1", "0x2", " 2" and "2k" are all errors, not surprises. */
static int parse_number(const char *text, uint64_t min, uint64_t max, uint64_t *value)
{
	char *end;
	unsigned long long parsed;

	if (text[0] < '0' || text[0] > '9')
		return -EINVAL;
	errno = 0;
	parsed = strtoull(text, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	if (parsed < min || parsed > max)
		return -ERANGE;
	*value = parsed;
	return 0;
}

static int parse_path(const char *text, char *path, size_t size)
{
	size_t len = strlen(text);

	if (len == 0)
		return -EINVAL;
	if (len >= size)
		return -ENAMETOOLONG;
	memcpy(path, text, len + 1);
	return 0;
}

static int parse_log_level(const char *text, int *level)
{
	static const struct {
		const char *name;
		int level;
	} names[] = {
		{ "err", LOG_LEVEL_ERR },   { "error", LOG_LEVEL_ERR },
		{ "warning", LOG_LEVEL_WARNING }, { "warn", LOG_LEVEL_WARNING },
		{ "info", LOG_LEVEL_INFO }, { "debug", LOG_LEVEL_DEBUG },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(text, names[i].name) == 0) {
			*level = names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

/* vsock ports: 0 is not a port, and 4294967295 is VMADDR_PORT_ANY. */
#define VSOCK_PORT_MAX 4294967294u
/* CIDs: 4294967295 is VMADDR_CID_ANY, which no peer can have. */
#define VSOCK_CID_MAX 4294967294u

static int parse_listen(struct config *cfg, const char *text, FILE *err)
{
	uint64_t port;

	if (strncmp(text, "vsock:", 6) == 0) {
		if (parse_number(text + 6, 1, VSOCK_PORT_MAX, &port) < 0) {
			usage_error(err, "--listen %." ECHO "s: the vsock port must be a number from 1 to %u",
				text, VSOCK_PORT_MAX);
			return -1;
		}
		cfg->listen_kind = LISTEN_VSOCK;
		cfg->vsock_port = (uint32_t)port;
		return 0;
	}
	if (strncmp(text, "unix:", 5) == 0) {
		int r = parse_path(text + 5, cfg->unix_path, sizeof(cfg->unix_path));

		if (r < 0) {
			usage_error(err, "--listen %." ECHO "s: %s", text,
				r == -ENAMETOOLONG ? "the socket path is too long (at most 107 bytes)"
						   : "the socket path is empty");
			return -1;
		}
		cfg->listen_kind = LISTEN_UNIX;
		return 0;
	}
	usage_error(err, "--listen %." ECHO "s: expected vsock:PORT or unix:PATH", text);
	return -1;
}

static int add_allowed(const char *option, const char *text, uint64_t max, uint64_t *value,
		       size_t count, FILE *err)
{
	if (count >= POLICY_MAX_ENTRIES) {
		usage_error(err, "%s: at most %d may be given", option, POLICY_MAX_ENTRIES);
		return -1;
	}
	if (parse_number(text, 0, max, value) < 0) {
		usage_error(err, "%s %." ECHO "s: expected a number from 0 to %llu", option, text,
			(unsigned long long)max);
		return -1;
	}
	return 0;
}

enum options_result options_parse(struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
	uint64_t value;
	int option;

	options_defaults(cfg);
	cfg->policy.n_cids = 0;
	opterr = 0;
	optind = 0; /* glibc: 0 also resets getopt's internal state for a new argv */
	while ((option = getopt_long(argc, argv, "+:", long_options, NULL)) != -1) {
		switch (option) {
		case OPT_LISTEN:
			if (parse_listen(cfg, optarg, err) < 0)
				return OPTIONS_USAGE_ERROR;
			break;
		case OPT_BACKEND: {
			int r = parse_path(optarg, cfg->backend_path, sizeof(cfg->backend_path));

			if (r < 0) {
				usage_error(err, "--backend '%." ECHO "s': %s", optarg,
					r == -ENAMETOOLONG ? "the path is too long (at most 107 bytes)"
							   : "the path is empty");
				return OPTIONS_USAGE_ERROR;
			}
			break;
		}
		case OPT_ALLOW_CID:
			if (add_allowed("--allow-cid", optarg, VSOCK_CID_MAX, &value,
					cfg->policy.n_cids, err) < 0)
				return OPTIONS_USAGE_ERROR;
			cfg->policy.cids[cfg->policy.n_cids++] = (uint32_t)value;
			break;
		case OPT_ALLOW_UID:
			/* (uid_t)-1 means "no user" to the kernel: never a peer. */
			if (add_allowed("--allow-uid", optarg, UINT32_MAX - 1, &value,
					cfg->policy.n_uids, err) < 0)
				return OPTIONS_USAGE_ERROR;
			cfg->policy.uids[cfg->policy.n_uids++] = (uid_t)value;
			break;
		case OPT_MAX_CONNECTIONS:
			if (parse_number(optarg, 1, RDD_MAX_CONNECTIONS_LIMIT, &value) < 0) {
				usage_error(err, "--max-connections %." ECHO "s: expected a number from 1 to %u (select() handles descriptors below %d)",
					optarg, (unsigned)RDD_MAX_CONNECTIONS_LIMIT, FD_SETSIZE);
				return OPTIONS_USAGE_ERROR;
			}
			cfg->max_connections = (unsigned)value;
			break;
		case OPT_DRAIN_TIMEOUT:
			if (parse_number(optarg, 0, 86400, &value) < 0) {
				usage_error(err, "--drain-timeout %." ECHO "s: expected seconds from 0 to 86400",
					optarg);
				return OPTIONS_USAGE_ERROR;
			}
			cfg->drain_timeout_s = (unsigned)value;
			break;
		case OPT_LOG_LEVEL:
			if (parse_log_level(optarg, &cfg->log_level) < 0) {
				usage_error(err, "--log-level %." ECHO "s: expected err, warning, info or debug",
					optarg);
				return OPTIONS_USAGE_ERROR;
			}
			break;
		case OPT_SPLICE:
			cfg->use_splice = true;
			break;
		case OPT_NO_SPLICE:
			cfg->use_splice = false;
			break;
		case OPT_HELP:
			fputs(usage_text, out);
			return OPTIONS_EXIT_OK;
		case OPT_VERSION:
			fprintf(out, "rdd-guest %s\n", RDD_GUEST_VERSION);
			return OPTIONS_EXIT_OK;
		case ':':
			usage_error(err, "option '%." ECHO "s' needs a value; see --help",
				argv[optind - 1]);
			return OPTIONS_USAGE_ERROR;
		default:
			usage_error(err, "unknown option '%." ECHO "s'; see --help", argv[optind - 1]);
			return OPTIONS_USAGE_ERROR;
		}
	}
	if (optind < argc) {
		usage_error(err, "unexpected argument '%." ECHO "s'; see --help", argv[optind]);
		return OPTIONS_USAGE_ERROR;
	}
	if (cfg->policy.n_cids == 0)
		cfg->policy.cids[cfg->policy.n_cids++] = POLICY_CID_HOST;
	return OPTIONS_RUN;
}
