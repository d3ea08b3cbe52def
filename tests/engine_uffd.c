// SPDX-License-Identifier: MIT
/*
 * The fault engine's userfaultfd backends: every page of a demand-paged
 * slot reaches the guest with exactly the source's bytes (checked by
 * hashes computed in the guest), each page is installed exactly once even
 * when two vCPUs fault it at the same time (a shared range walked from both
 * ends), with one shared uffd and several handler threads or one uffd per
 * vCPU, from zero, memory and file sources, for reads and writes.
 */
#include <fcntl.h>
#include <unistd.h>

#include "engine_workload.h"

struct combo {
	enum kf_backend backend;
	enum kf_backing backing;
	const char *source;	/* zero, memory, file */
	bool shared;		/* vCPUs walk the same range */
	bool write;
	unsigned int nr_uffds;
	unsigned int handlers;
};

static const struct combo combos[] = {
	{ KF_BACKEND_UFFD_MISSING, KF_BACKING_ANON, "memory", true, false, 1, 1 },
	{ KF_BACKEND_UFFD_MISSING, KF_BACKING_ANON, "memory", true, true, 1, 2 },
	{ KF_BACKEND_UFFD_MISSING, KF_BACKING_ANON, "memory", false, false, 2, 1 },
	{ KF_BACKEND_UFFD_MISSING, KF_BACKING_ANON, "zero", true, false, 1, 2 },
	{ KF_BACKEND_UFFD_MISSING, KF_BACKING_ANON, "zero", true, true, 2, 1 },
	{ KF_BACKEND_UFFD_MISSING, KF_BACKING_ANON, "file", true, false, 1, 2 },
	{ KF_BACKEND_UFFD_MISSING, KF_BACKING_MEMFD, "memory", true, true, 1, 2 },
	{ KF_BACKEND_UFFD_MINOR, KF_BACKING_MEMFD, "memory", true, false, 1, 1 },
	{ KF_BACKEND_UFFD_MINOR, KF_BACKING_MEMFD, "memory", true, true, 1, 2 },
	{ KF_BACKEND_UFFD_MINOR, KF_BACKING_MEMFD, "memory", false, true, 2, 1 },
	{ KF_BACKEND_UFFD_MINOR, KF_BACKING_MEMFD, "zero", true, false, 1, 2 },
	{ KF_BACKEND_UFFD_MINOR, KF_BACKING_MEMFD, "file", false, false, 2, 2 },
	{ KF_BACKEND_AUTO, KF_BACKING_MEMFD, "memory", true, false, 1, 1 },
	{ KF_BACKEND_AUTO, KF_BACKING_ANON, "memory", true, true, 1, 1 },
};

static struct kf_engine_stats stats;

static const char *write_file(const void *img, uint64_t size)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/kf-engine-uffd-XXXXXX");
	fd = mkstemp(path);

	TEST_ASSERT(fd >= 0, "mkstemp");
	TEST_ASSERT(write(fd, img, size) == (ssize_t)size, "write image");
	close(fd);
	return path;
}

static void run_combo(const struct combo *c, uint64_t pages, unsigned int nr_vcpus,
		      const void *img)
{
	struct kf_engine_config cfg = {
		.backend = c->backend,
		.nr_uffds = c->nr_uffds,
		.handler_threads = c->handlers,
	};
	bool memfd = c->backing == KF_BACKING_MEMFD;
	struct kf_pagesrc *src = NULL;
	const char *path = NULL;
	struct kf_engine *e;
	const struct kf_memslot *ms;
	struct kf_vm *vm;
	uint64_t p;
	int ret;

	if (c->backend == KF_BACKEND_AUTO &&
	    kf_kvm_has_cap(KVM_CAP_EXIT_ON_MISSING))
		return;	/* auto would pick exit: tests/engine_exit.c */
	if (c->backend != KF_BACKEND_AUTO && !wl_backend_ok(c->backend, memfd))
		return;
	printf("  %s %s source=%s %s %s uffds=%u handlers=%u\n",
	       kf_backend_name(c->backend), memfd ? "memfd" : "anon", c->source,
	       c->shared ? "shared" : "split", c->write ? "write" : "read",
	       c->nr_uffds, c->handlers);
	fflush(stdout);

	TEST_OK(kf_vm_create(&vm));
	ms = wl_add_region(vm, c->backing, pages);
	if (!strcmp(c->source, "zero")) {
		TEST_OK(kf_pagesrc_zero_create(ms->gpa, ms->size, &src));
		wl_expect_zero(pages);
	} else if (!strcmp(c->source, "memory")) {
		TEST_OK(kf_pagesrc_memory_create(ms->gpa, img, ms->size, &src));
		wl_expect_image(img, pages);
	} else {
		path = write_file(img, ms->size);
		TEST_OK(kf_pagesrc_rawfile_open(path, ms->gpa, &src));
		wl_expect_image(img, pages);
	}
	wl_plan(ms->gpa, pages, nr_vcpus, c->shared, c->write);
	wl_sync_tables(vm);
	wl_add_vcpus(vm, nr_vcpus);

	TEST_OK(kf_engine_create(vm, &cfg, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, src));
	TEST_ASSERT(kf_engine_region_backend(e, ms->slot) ==
		    (c->backend == KF_BACKEND_AUTO ?
		     (memfd ? KF_BACKEND_UFFD_MINOR : KF_BACKEND_UFFD_MISSING) :
		     c->backend), "auto backend choice");
	TEST_OK(kf_engine_start(e));
	ret = kf_vm_run_all(vm, kf_engine_vcpu_ops());
	TEST_ASSERT(ret == 0, "run: %s (engine: %s)", kf_error(),
		    kf_engine_error(e) ? kf_engine_error(e) : "ok");
	TEST_ASSERT(!kf_engine_error(e), "engine error %s", kf_engine_error(e));

	/*
	 * Exactly once: as many installs as pages, all counted as faults.
	 * A handler counts a page just after its UFFDIO_COPY woke the vCPU:
	 * stop the handlers so that the counts are final.
	 */
	kf_engine_stop(e);
	kf_engine_stats(e, &stats);
	TEST_ASSERT_EQ(kf_engine_installed_pages(e), pages);
	TEST_ASSERT_EQ(stats.total.faults, pages);
	TEST_ASSERT_EQ(stats.total.bytes, pages * KF_PAGE_SIZE);
	TEST_ASSERT_EQ(stats.total.errors, 0);
	TEST_ASSERT_EQ(stats.exit_faults, 0);
	TEST_ASSERT(stats.uffd_faults >= pages, "uffd faults %llu",
		    (unsigned long long)stats.uffd_faults);
	TEST_ASSERT_EQ(stats.total.latency.count, pages);
	if (c->nr_uffds == nr_vcpus && !c->shared)
		for (unsigned int v = 0; v < nr_vcpus; v++)
			TEST_ASSERT_EQ(stats.vcpu[v].faults, wl_walks[v].pages);
	/* The host sees the same bytes through the slot. */
	for (p = 0; p < pages; p++)
		TEST_ASSERT_EQ(kf_hash((char *)ms->hva + p * KF_PAGE_SIZE,
				       KF_PAGE_SIZE), wl_expect[p]);
	TEST_ASSERT_EQ(kf_engine_installed_pages(e), pages);

	kf_engine_destroy(e);
	kf_vm_destroy(vm);
	kf_pagesrc_destroy(src);
	if (path)
		unlink(path);
}

int main(void)
{
	uint64_t pages = wl_pages(2);
	unsigned int i, nr_vcpus = 2;
	void *img;

	kf_test_require_kvm();
	if (!kf_uffd_features())
		kf_test_skip("userfaultfd is not available here");
	img = wl_image(pages, 42);
	for (i = 0; i < KF_ARRAY_SIZE(combos); i++)
		run_combo(&combos[i], pages, nr_vcpus, img);
	TEST_PASS("%zu configurations, %llu pages each, 2 vCPUs: every page exactly once, guest hashes match",
		  KF_ARRAY_SIZE(combos), (unsigned long long)pages);
}
