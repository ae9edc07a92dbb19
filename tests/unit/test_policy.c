/* The peer policy: who gets through to the Docker socket. */
#include "policy.h"
#include "unit.h"

static void test_default_only_host(void)
{
	struct peer_policy p = { .cids = { POLICY_CID_HOST }, .n_cids = 1 };

	CHECK(policy_allows_cid(&p, 2));
	CHECK(!policy_allows_cid(&p, 0));
	CHECK(!policy_allows_cid(&p, 1)); /* VMADDR_CID_LOCAL: another process in the VM */
	CHECK(!policy_allows_cid(&p, 3));
	CHECK(!policy_allows_cid(&p, 0xffffffffu));
}

static void test_cid_list_replaces_default(void)
{
	struct peer_policy p = { .cids = { 1, 5 }, .n_cids = 2 };

	CHECK(policy_allows_cid(&p, 1));
	CHECK(policy_allows_cid(&p, 5));
	CHECK(!policy_allows_cid(&p, 2));
}

static void test_no_uid_list_allows_any(void)
{
	struct peer_policy p = { .n_uids = 0 };

	CHECK(policy_allows_uid(&p, 0));
	CHECK(policy_allows_uid(&p, 1000));
}

static void test_uid_list(void)
{
	struct peer_policy p = { .uids = { 0, 1000 }, .n_uids = 2 };

	CHECK(policy_allows_uid(&p, 0));
	CHECK(policy_allows_uid(&p, 1000));
	CHECK(!policy_allows_uid(&p, 1001));
	CHECK(!policy_allows_uid(&p, (uid_t)-1)); /* credentials unknown */
}

int main(void)
{
	RUN(test_default_only_host);
	RUN(test_cid_list_replaces_default);
	RUN(test_no_uid_list_allows_any);
	RUN(test_uid_list);
	return unit_summary();
}
