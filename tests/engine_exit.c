// SPDX-License-Identifier: MIT
/*
 * The exit backend (kvmfault kernel series, KVM_CAP_EXIT_ON_MISSING): the
 * vCPU thread receives KVM_EXIT_MEMORY_FAULT for a missing page, installs
 * it itself and re-enters.  Two vCPUs fault the same pages (one reading,
 * one writing, so writes also hit zero pages mapped read-only); every page
 * is installed exactly once, seen with the source's bytes, and the faults
 * arrive as exits.  Skips on kernels without the capability (the host);
 * runs in the QEMU rig.
 */
#include "engine_workload.h"

static struct kf_engine_stats stats;

static void run(enum kf_backing backing, bool zero, uint64_t pages,
		const void *img)
{
	struct kf_engine_config cfg = { .backend = KF_BACKEND_EXIT };
	struct kf_pagesrc *src;
	struct kf_engine *e;
	const struct kf_memslot *ms;
	struct kf_vm *vm;
	uint64_t p;
	int ret;

	TEST_OK(kf_vm_create(&vm));
	ms = wl_add_region(vm, backing, pages);
	if (zero) {
		TEST_OK(kf_pagesrc_zero_create(ms->gpa, ms->size, &src));
		wl_expect_zero(pages);
	} else {
		TEST_OK(kf_pagesrc_memory_create(ms->gpa, img, ms->size, &src));
		wl_expect_image(img, pages);
	}
	wl_plan(ms->gpa, pages, 2, true, false);
	wl_walks[1].write = 1;
	wl_sync_tables(vm);
	wl_add_vcpus(vm, 2);
	TEST_OK(kf_engine_create(vm, &cfg, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, src));
	TEST_ASSERT_EQ(kf_engine_region_backend(e, ms->slot), KF_BACKEND_EXIT);
	TEST_ASSERT(ms->flags & KVM_MEM_EXIT_ON_MISSING,
		    "the engine sets exit-on-missing on the slot");
	TEST_OK(kf_engine_start(e));
	ret = kf_vm_run_all(vm, kf_engine_vcpu_ops());
	TEST_ASSERT(ret == 0, "run: %s (engine: %s)", kf_error(),
		    kf_engine_error(e) ? kf_engine_error(e) : "ok");
	/* Faults KVM took outside a vCPU are counted by handler threads just
	 * after the page was mapped: stop them so that the counts are final. */
	kf_engine_stop(e);
	kf_engine_stats(e, &stats);
	TEST_ASSERT_EQ(kf_engine_installed_pages(e), wl_host_pages(pages));
	TEST_ASSERT_EQ(stats.total.faults, wl_host_pages(pages));
	TEST_ASSERT_EQ(stats.total.errors, 0);
	TEST_ASSERT(stats.exit_faults >= wl_host_pages(pages) / 2,
		    "faults should arrive as exits: %llu exits, %llu via uffd",
		    (unsigned long long)stats.exit_faults,
		    (unsigned long long)stats.uffd_faults);
	for (p = 0; p < pages; p++)
		TEST_ASSERT_EQ(kf_hash((char *)ms->hva + p * KF_PAGE_SIZE,
				       KF_PAGE_SIZE), wl_expect[p]);
	printf("  %s %s: %llu pages, %llu exits, %llu via uffd, %llu repeated\n",
	       backing == KF_BACKING_MEMFD ? "memfd" : "anon",
	       zero ? "zero" : "memory", (unsigned long long)pages,
	       (unsigned long long)stats.exit_faults,
	       (unsigned long long)stats.uffd_faults,
	       (unsigned long long)stats.total.spurious);
	kf_engine_destroy(e);
	TEST_ASSERT(!(ms->flags & KVM_MEM_EXIT_ON_MISSING),
		    "destroy restores the slot's flags");
	kf_vm_destroy(vm);
	kf_pagesrc_destroy(src);
}

int main(void)
{
	uint64_t pages = wl_pages(1);
	void *img;

	kf_test_require_kvm();
	TEST_REQUIRE_CAP(KVM_CAP_EXIT_ON_MISSING);
	if (kf_backend_available(KF_BACKEND_EXIT, false))
		kf_test_skip("%s", kf_error());
	img = wl_image(pages, 5);
	run(KF_BACKING_ANON, false, pages, img);
	run(KF_BACKING_ANON, true, pages, img);
	run(KF_BACKING_MEMFD, false, pages, img);
	run(KF_BACKING_MEMFD, true, pages, img);
	TEST_PASS("exit backend: faults resolved on the vCPU threads, every page once");
}
