/* The accept backoff schedule and the log rate limiter. */
#include "backoff.h"
#include "log.h"
#include "unit.h"

static void test_schedule_doubles_to_one_second(void)
{
	static const unsigned expected[] = { 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000 };
	struct backoff b = { 0 };

	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++)
		CHECK(backoff_next(&b) == expected[i]);
}

static void test_reset_starts_over(void)
{
	struct backoff b = { 0 };

	for (int i = 0; i < 20; i++)
		backoff_next(&b);
	backoff_reset(&b);
	CHECK(backoff_next(&b) == 10);
	CHECK(backoff_next(&b) == 20);
}

static void test_ratelimit_one_line_a_second(void)
{
	struct ratelimit rl = { 0 };
	uint64_t suppressed = 99;
	int allowed = 0;

	CHECK(ratelimit_allow(&rl, 5000, &suppressed) && suppressed == 0);
	/* A flood within the second: nothing through. */
	for (uint64_t t = 5000; t < 6000; t += 1)
		allowed += ratelimit_allow(&rl, t, &suppressed);
	CHECK(allowed == 0);
	/* The next line carries the count of what was dropped. */
	CHECK(ratelimit_allow(&rl, 6000, &suppressed) && suppressed == 1000);
	CHECK(!ratelimit_allow(&rl, 6999, &suppressed));
	CHECK(ratelimit_allow(&rl, 9000, &suppressed) && suppressed == 1);
}

static void test_ratelimit_first_event_at_time_zero(void)
{
	struct ratelimit rl = { 0 };
	uint64_t suppressed;

	CHECK(ratelimit_allow(&rl, 0, &suppressed));
	CHECK(!ratelimit_allow(&rl, 1, &suppressed));
}

int main(void)
{
	RUN(test_schedule_doubles_to_one_second);
	RUN(test_reset_starts_over);
	RUN(test_ratelimit_one_line_a_second);
	RUN(test_ratelimit_first_event_at_time_zero);
	return unit_summary();
}
