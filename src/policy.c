#include "policy.h"

bool policy_allows_cid(const struct peer_policy *policy, uint32_t cid)
{
	for (size_t i = 0; i < policy->n_cids; i++)
		if (policy->cids[i] == cid)
			return true;
	return false;
}

/* With no --allow-uid the socket file's permissions are the only gate, as
 * for /var/run/docker.sock itself. */
bool policy_allows_uid(const struct peer_policy *policy, uid_t uid)
{
	if (policy->n_uids == 0)
		return true;
	for (size_t i = 0; i < policy->n_uids; i++)
		if (policy->uids[i] == uid)
			return true;
	return false;
}
