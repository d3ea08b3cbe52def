// SPDX-License-Identifier: MIT
/*
 * The fault engine as a VMM embeds it, without the VM layer: regions the
 * caller describes (plain anonymous memory here, no KVM needed), a host
 * operations table, the fault entry point with a decoded exit and a vCPU
 * index, and no global state (two engines at once, same opaque).
 */
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#include <kvmfault/engine.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/test.h>
#include <kvmfault/uffd.h>

#define PAGES 16
#define BASE 0x40000000ULL

struct host {
	unsigned int removed, released, stopped;
	uint32_t removed_slot;
};

static void host_stop(void *opaque)
{
	((struct host *)opaque)->stopped++;
}

static void host_removed(void *opaque, uint32_t slot)
{
	struct host *h = opaque;

	h->removed++;
	h->removed_slot = slot;
}

static void host_release(void *opaque)
{
	((struct host *)opaque)->released++;
}

static void expect_error(int ret, int err, const char *needle)
{
	TEST_ASSERT_EQ(ret, -err);
	TEST_ASSERT(strstr(kf_error(), needle), "'%s' missing from '%s'",
		    needle, kf_error());
}

static uint8_t data[PAGES * KF_PAGE_SIZE];

static struct kf_exit fault_exit(uint64_t gpa, uint32_t access)
{
	struct kf_exit ex = { .kind = KF_EXIT_MEMORY_FAULT };

	ex.fault.gpa = gpa;
	ex.fault.size = 8;
	ex.fault.access = access;
	return ex;
}

static void *touch(void *p)
{
	return (void *)(uintptr_t)*(volatile uint8_t *)p;
}

int main(void)
{
	struct kf_engine_host ops = {
		.stop_vcpus = host_stop,
		.region_removed = host_removed,
		.release = host_release,
	};
	struct kf_engine_config cfg = { .backend = KF_BACKEND_UFFD_MISSING };
	struct kf_engine_region_desc d = { .slot = 7, .gpa = BASE,
					   .size = PAGES * KF_PAGE_SIZE,
					   .memfd = -1 };
	struct kf_engine_summary *sum;
	struct kf_engine *e, *e2;
	struct kf_pagesrc *src;
	struct kf_exit ex;
	struct host h = { 0 };
	uint8_t *mem, *mem2;
	pthread_t t;
	void *ret;
	unsigned int i;

	if (!kf_uffd_features())
		kf_test_skip("userfaultfd is not available here (%s)", kf_error());
	for (i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i / KF_PAGE_SIZE * 31 + i % 251);
	mem = mmap(NULL, d.size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mem2 = mmap(NULL, d.size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(mem != MAP_FAILED && mem2 != MAP_FAILED, "mmap");
	d.hva = mem;
	ops.opaque = &h;
	TEST_OK(kf_pagesrc_memory_create(BASE, data, sizeof(data), &src));

	/* Two engines at once with the same opaque: nothing global. */
	TEST_OK(kf_engine_new(&ops, &cfg, &e));
	TEST_OK(kf_engine_new(&ops, &cfg, &e2));

	/* Descriptions the core refuses, with their reasons. */
	d.page_size = 3000;
	expect_error(kf_engine_add_memory(e, &d, src), EINVAL, "page size 3000");
	d.page_size = 0;
	d.hva = mem + 1;
	expect_error(kf_engine_add_memory(e, &d, src), EINVAL, "not aligned");
	d.hva = mem;
	d.flags = KVM_MEM_GUEST_MEMFD;
	expect_error(kf_engine_add_memory(e, &d, src), EOPNOTSUPP, "guest_memfd");
	d.flags = 0;
	cfg.backend = KF_BACKEND_EXIT;
	/* The exit backend needs the host's set_slot_flags. */
	{
		struct kf_engine *xe;

		if (kf_engine_new(&ops, &cfg, &xe) == 0) {
			expect_error(kf_engine_add_memory(xe, &d, src),
				     EOPNOTSUPP, "set_slot_flags");
			kf_engine_destroy(xe);
			h.released = 0;
		}
	}

	TEST_OK(kf_engine_add_memory(e, &d, src));
	TEST_ASSERT(kf_engine_serves(e, 7) && !kf_engine_serves(e, 8), "serves");
	expect_error(kf_engine_add_memory(e, &d, src), EEXIST, "served already");
	d.slot = 8;
	expect_error(kf_engine_add_memory(e, &d, src), EEXIST, "overlaps");
	d.hva = mem2;
	TEST_OK(kf_engine_add_memory(e2, &d, src));
	TEST_OK(kf_engine_start(e));
	TEST_OK(kf_engine_start(e2));

	/* vCPU 3 faulted on page 5: resolved on this thread, re-enter. */
	ex = fault_exit(BASE + 5 * KF_PAGE_SIZE + 8, KF_ACCESS_READ);
	TEST_OK(kf_engine_fault(e, 3, &ex));
	TEST_ASSERT(kf_engine_page_installed(e, BASE + 5 * KF_PAGE_SIZE), "page 5");
	TEST_ASSERT(!kf_engine_page_installed(e2, BASE + 5 * KF_PAGE_SIZE),
		    "the other engine installed page 5 too");
	TEST_ASSERT(!memcmp(mem + 5 * KF_PAGE_SIZE, data + 5 * KF_PAGE_SIZE,
			    KF_PAGE_SIZE), "page 5 holds the source's bytes");

	/* Statistics: vCPU 3's exit fault, up to the highest vCPU index
	 * (counted by the faulting thread itself before it returned). */
	sum = calloc(1, sizeof(*sum));
	TEST_ASSERT(sum, "calloc");
	kf_engine_summary(e, sum);
	TEST_ASSERT_EQ(sum->nr_vcpus, 4);
	TEST_ASSERT_EQ(sum->vcpu[3].faults, 1);
	TEST_ASSERT_EQ(sum->installed_pages, 1);
	TEST_ASSERT(sum->exit_faults >= 1, "exit faults %llu",
		    (unsigned long long)sum->exit_faults);
	free(sum);

	/* A thread touching page 9: the handler thread installs it. */
	TEST_ASSERT(!pthread_create(&t, NULL, touch, mem + 9 * KF_PAGE_SIZE), "thread");
	pthread_join(t, &ret);
	TEST_ASSERT_EQ((uintptr_t)ret, data[9 * KF_PAGE_SIZE]);
	/* The handler marks the page installed just after the thread could
	 * go on: a host fetch waits for it. */
	TEST_OK(kf_engine_fetch(e, BASE + 9 * KF_PAGE_SIZE, 1));
	TEST_ASSERT(kf_engine_page_installed(e, BASE + 9 * KF_PAGE_SIZE), "page 9");

	/* Not a fault of the engine's: -EFAULT with the reason. */
	ex = fault_exit(BASE + PAGES * KF_PAGE_SIZE, KF_ACCESS_WRITE);
	expect_error(kf_engine_fault(e, 0, &ex), EFAULT, "not in any region");
	ex.kind = KF_EXIT_REASON;
	ex.reason = KVM_EXIT_HLT;
	expect_error(kf_engine_fault(e, 0, &ex), EFAULT, "no memory fault");
	TEST_OK(kf_engine_check(e));
	TEST_ASSERT_EQ(h.stopped, 0);

	/* The rest by prefetch, then the region switches off. */
	TEST_OK(kf_engine_fetch(e, BASE, PAGES * KF_PAGE_SIZE));
	TEST_OK(kf_engine_region_complete(e, 7));
	TEST_ASSERT(!memcmp(mem, data, sizeof(data)), "every page is the source's");

	kf_engine_destroy(e);
	TEST_ASSERT_EQ(h.removed, 1);
	TEST_ASSERT_EQ(h.removed_slot, 7);
	TEST_ASSERT_EQ(h.released, 1);
	kf_engine_destroy(e2);
	TEST_ASSERT_EQ(h.removed, 2);
	TEST_ASSERT_EQ(h.removed_slot, 8);
	TEST_ASSERT_EQ(h.released, 2);
	kf_pagesrc_destroy(src);
	TEST_PASS("the core served regions it was given, with no VM layer");
}
