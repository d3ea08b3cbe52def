// SPDX-License-Identifier: MIT
/*
 * The fault engine's life cycle around its VM and its sources: a
 * successful create that leaves no message,
 * memslots the engine serves that must not go away under it, and a
 * memslot whose page tables cannot be made.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <kvmfault/engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/test.h>
#include <kvmfault/uffd.h>

#define MB (1ULL << 20)
#define GB (1ULL << 30)

static void expect_error(int ret, int err, const char *needle)
{
	TEST_ASSERT_EQ(ret, -err);
	TEST_ASSERT(strstr(kf_error(), needle), "'%s' missing from '%s'",
		    needle, kf_error());
}

static struct kf_memslot *add_anon(struct kf_vm *vm, uint64_t gpa,
				   uint64_t size)
{
	struct kf_region r = { .gpa = gpa, .size = size,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	struct kf_memslot *ms;

	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	return ms;
}

/* --- messages --- */

static void *create_on_fresh_thread(void *arg)
{
	struct kf_vm *vm = arg;
	struct kf_engine *e;

	TEST_ASSERT(!kf_error()[0], "a fresh thread has a message");
	TEST_OK(kf_engine_create(vm, NULL, &e));
	TEST_ASSERT(!kf_error()[0], "a successful kf_engine_create left \"%s\"",
		    kf_error());
	kf_engine_destroy(e);
	return NULL;
}

static void test_no_message_on_success(void)
{
	struct kf_vm *vm;
	pthread_t t;

	TEST_OK(kf_vm_create(&vm));
	TEST_ASSERT(!pthread_create(&t, NULL, create_on_fresh_thread, vm),
		    "thread");
	pthread_join(t, NULL);
	kf_vm_destroy(vm);
}

/* --- memslots and the engine --- */

static void test_remove_served_region(void)
{
	struct kf_pagesrc *src;
	struct kf_memslot *ms;
	struct kf_engine *e;
	struct kf_vm *vm;
	uint32_t slot;

	TEST_OK(kf_vm_create(&vm));
	ms = add_anon(vm, kf_vm_free_gpa(vm), 2 * MB);
	slot = ms->slot;
	TEST_OK(kf_pagesrc_zero_create(ms->gpa, ms->size, &src));
	TEST_OK(kf_engine_create(vm, NULL, &e));
	TEST_OK(kf_engine_add_region(e, slot, src));
	TEST_OK(kf_engine_start(e));
	expect_error(kf_vm_remove_region(vm, slot), EBUSY,
		     "served by a fault engine");
	TEST_ASSERT(kf_vm_find_slot(vm, kf_vm_free_gpa(vm)), "slot gone");
	kf_engine_destroy(e);
	TEST_OK(kf_vm_remove_region(vm, slot));
	kf_pagesrc_destroy(src);
	kf_vm_destroy(vm);
}

/* More page directories than the guest's page-table pool holds. */
static void test_add_region_rollback(void)
{
	struct kf_region r = { .gpa = 4 * GB, .size = 300 * GB,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	struct kf_memslot *ms;
	struct kf_vm *vm;
	int ret;

	TEST_OK(kf_vm_create(&vm));
	ret = kf_vm_add_region(vm, &r, &ms);
	if (ret != -ENOSPC) {
		printf("  add_region rollback: not tested (%s)\n",
		       ret ? kf_error() : "a 300 GiB slot fit the page tables");
		kf_vm_destroy(vm);
		return;
	}
	TEST_ASSERT(strstr(kf_error(), "page-table pool"), "%s", kf_error());
	TEST_ASSERT(!ms, "a slot returned on failure");
	TEST_ASSERT(!kf_vm_find_slot(vm, r.gpa), "the failed slot stayed registered");
	/* KVM must have forgotten it too: the same range fits again. */
	add_anon(vm, r.gpa, 2 * MB);
	kf_vm_destroy(vm);
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "no_message_on_success", test_no_message_on_success },
	{ "remove_served_region", test_remove_served_region },
	{ "add_region_rollback", test_add_region_rollback },
};

/* With an argument, only the test of that name. */
int main(int argc, char **argv)
{
	unsigned int i;

	kf_test_require_kvm();
	if (!kf_uffd_features())
		kf_test_skip("userfaultfd is not available here");
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < KF_ARRAY_SIZE(tests); i++) {
		if (argc > 1 && strcmp(argv[1], tests[i].name))
			continue;
		printf("%s\n", tests[i].name);
		fflush(stdout);
		tests[i].fn();
	}
	TEST_PASS("engine life cycle: no use after free, no stale message, memslots kept consistent");
}
