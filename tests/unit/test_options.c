/* The command line: every option's effect, and every bad value gives a
 * usage error with exactly one line on stderr and nothing on stdout. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "options.h"
#include "unit.h"

static char out_buf[8192], err_buf[8192];

/* Parses a NULL-terminated argument list (argv[0] is added). */
static enum options_result parse(struct config *cfg, const char *const *args)
{
	char *argv[256];
	int argc = 0;
	FILE *out = fmemopen(out_buf, sizeof(out_buf), "w");
	FILE *err = fmemopen(err_buf, sizeof(err_buf), "w");
	enum options_result r;

	argv[argc++] = (char *)"rdd-guest";
	while (*args)
		argv[argc++] = (char *)*args++;
	argv[argc] = NULL;
	memset(out_buf, 0, sizeof(out_buf));
	memset(err_buf, 0, sizeof(err_buf));
	r = options_parse(cfg, argc, argv, out, err);
	fclose(out);
	fclose(err);
	return r;
}

static int count_lines(const char *text)
{
	int n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

static void test_defaults(void)
{
	struct config cfg;
	const char *args[] = { NULL };

	CHECK(parse(&cfg, args) == OPTIONS_RUN);
	CHECK(cfg.listen_kind == LISTEN_VSOCK);
	CHECK(cfg.vsock_port == 6660);
	CHECK(strcmp(cfg.backend_path, "/var/run/docker.sock") == 0);
	CHECK(cfg.policy.n_cids == 1 && cfg.policy.cids[0] == 2);
	CHECK(cfg.policy.n_uids == 0);
	CHECK(cfg.max_connections == 256);
	CHECK(cfg.drain_timeout_s == 10);
	CHECK(cfg.log_level == LOG_LEVEL_INFO);
	CHECK(cfg.use_splice);
	CHECK(err_buf[0] == '\0');
}

static void test_every_option(void)
{
	struct config cfg;
	const char *args[] = { "--listen", "unix:/run/x.sock", "--backend", "/tmp/d.sock",
			       "--allow-cid", "3", "--allow-cid=1", "--allow-uid", "1000",
			       "--max-connections", "10", "--drain-timeout", "0",
			       "--log-level", "debug", "--no-splice", NULL };

	CHECK(parse(&cfg, args) == OPTIONS_RUN);
	CHECK(cfg.listen_kind == LISTEN_UNIX);
	CHECK(strcmp(cfg.unix_path, "/run/x.sock") == 0);
	CHECK(strcmp(cfg.backend_path, "/tmp/d.sock") == 0);
	/* --allow-cid replaces the default 2, it does not add to it. */
	CHECK(cfg.policy.n_cids == 2 && cfg.policy.cids[0] == 3 && cfg.policy.cids[1] == 1);
	CHECK(cfg.policy.n_uids == 1 && cfg.policy.uids[0] == 1000);
	CHECK(cfg.max_connections == 10);
	CHECK(cfg.drain_timeout_s == 0);
	CHECK(cfg.log_level == LOG_LEVEL_DEBUG);
	CHECK(!cfg.use_splice);
}

static void test_vsock_port_range(void)
{
	struct config cfg;
	const char *low[] = { "--listen", "vsock:1", NULL };
	const char *high[] = { "--listen", "vsock:4294967294", NULL };

	CHECK(parse(&cfg, low) == OPTIONS_RUN && cfg.vsock_port == 1);
	CHECK(parse(&cfg, high) == OPTIONS_RUN && cfg.vsock_port == 4294967294u);
}

static void test_help_and_version(void)
{
	struct config cfg;
	const char *help[] = { "--help", NULL };
	const char *version[] = { "--version", NULL };

	CHECK(parse(&cfg, help) == OPTIONS_EXIT_OK);
	CHECK(strstr(out_buf, "--listen") && strstr(out_buf, "--allow-cid") &&
	      strstr(out_buf, "--drain-timeout"));
	CHECK(parse(&cfg, version) == OPTIONS_EXIT_OK);
	CHECK(strcmp(out_buf, "rdd-guest " RDD_GUEST_VERSION "\n") == 0);
}

static void test_bad_command_lines(void)
{
	static const char *const bad[][5] = {
		{ "--bogus", NULL },
		{ "-x", NULL },
		{ "stray-argument", NULL },
		{ "--listen", NULL },
		{ "--listen", "vsock:0", NULL },
		{ "--listen", "vsock:4294967295", NULL },
		{ "--listen", "vsock:99999999999", NULL },
		{ "--listen", "vsock:-1", NULL },
		{ "--listen", "vsock:", NULL },
		{ "--listen", "vsock:12ab", NULL },
		{ "--listen", "unix:", NULL },
		{ "--listen", "tcp:1234", NULL },
		{ "--listen", "", NULL },
		{ "--listen", "unix:/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL },
		{ "--backend", "", NULL },
		{ "--allow-cid", "host", NULL },
		{ "--allow-cid", "", NULL },
		{ "--allow-cid", "-2", NULL },
		{ "--allow-cid", "0x2", NULL },
		{ "--allow-cid", "4294967295", NULL },
		{ "--allow-uid", "root", NULL },
		{ "--max-connections", "0", NULL },
		{ "--max-connections", "100000", NULL },
		{ "--max-connections", "ten", NULL },
		{ "--drain-timeout", "-1", NULL },
		{ "--drain-timeout", "1.5", NULL },
		{ "--log-level", "loud", NULL },
		{ "--splice=yes", NULL },
		{ "--log-level", "debug\n<3>a forged second line", NULL },
		{ "--listen\nx", NULL },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct config cfg;
		enum options_result r = parse(&cfg, bad[i]);

		if (r != OPTIONS_USAGE_ERROR || count_lines(err_buf) != 1 || out_buf[0] != '\0' ||
		    strncmp(err_buf, "rdd-guest: ", 11) != 0) {
			fprintf(stderr, "  case %zu (%s %s): result %d, stderr '%s'\n", i, bad[i][0],
				bad[i][1] ? bad[i][1] : "", (int)r, err_buf);
			CHECK(!"one error line and a usage error");
		}
	}
}

static void test_allow_lists_are_bounded(void)
{
	const char *args[2 * POLICY_MAX_ENTRIES + 4];
	struct config cfg;
	int n = 0;

	for (int i = 0; i <= POLICY_MAX_ENTRIES; i++) {
		args[n++] = "--allow-cid";
		args[n++] = "7";
	}
	args[n] = NULL;
	CHECK(parse(&cfg, args) == OPTIONS_USAGE_ERROR);
	CHECK(count_lines(err_buf) == 1);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_every_option);
	RUN(test_vsock_port_range);
	RUN(test_help_and_version);
	RUN(test_bad_command_lines);
	RUN(test_allow_lists_are_bounded);
	return unit_summary();
}
