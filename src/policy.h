/* Who may use the bridge. Every WSL2 distro on a Windows machine shares one
 * utility VM and so one vsock namespace: without this check any process in
 * any distro could dial port 6660 and get root on the Docker engine. */
#ifndef RDD_POLICY_H
#define RDD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define POLICY_MAX_ENTRIES 64
#define POLICY_CID_HOST 2u /* VMADDR_CID_HOST: the Windows host */

struct peer_policy {
	uint32_t cids[POLICY_MAX_ENTRIES]; /* vsock peers allowed; never empty in use */
	size_t n_cids;
	uid_t uids[POLICY_MAX_ENTRIES];    /* unix peers allowed; empty = any */
	size_t n_uids;
};

bool policy_allows_cid(const struct peer_policy *policy, uint32_t cid);
bool policy_allows_uid(const struct peer_policy *policy, uid_t uid);

#endif
