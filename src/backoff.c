#include "backoff.h"

unsigned backoff_next(struct backoff *backoff)
{
	if (backoff->delay_ms == 0)
		backoff->delay_ms = BACKOFF_FIRST_MS;
	else if (backoff->delay_ms >= BACKOFF_MAX_MS / 2)
		backoff->delay_ms = BACKOFF_MAX_MS;
	else
		backoff->delay_ms *= 2;
	return backoff->delay_ms;
}

void backoff_reset(struct backoff *backoff)
{
	backoff->delay_ms = 0;
}
