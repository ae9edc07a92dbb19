/* A minimal unit-test harness: CHECK records a failure with its line and
 * goes on; each test file's main calls RUN for its tests and ends with
 * unit_summary(), which prints "N passed, N failed" and sets the exit code. */
#ifndef RDD_UNIT_H
#define RDD_UNIT_H

#include <stdio.h>

static int unit_failures_in_test;
static int unit_passed, unit_failed;

#define CHECK(cond)                                                               \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__,   \
				__LINE__, #cond);                                 \
			unit_failures_in_test++;                                  \
		}                                                                 \
	} while (0)

#define RUN(test)                                                                 \
	do {                                                                      \
		unit_failures_in_test = 0;                                        \
		test();                                                           \
		if (unit_failures_in_test == 0) {                                 \
			unit_passed++;                                            \
			printf("ok   %s\n", #test);                              \
		} else {                                                          \
			unit_failed++;                                            \
			printf("FAIL %s\n", #test);                              \
		}                                                                 \
	} while (0)

/* Line-buffered, so that a crash still shows the tests that ran. */
__attribute__((constructor)) static void unit_line_buffered(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline int unit_summary(void)
{
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed == 0 ? 0 : 1;
}

#endif
