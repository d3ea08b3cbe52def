// SPDX-License-Identifier: MIT
/*
 * The fault engine's failures are clear errors, never crashes, hangs or
 * wrong pages: bad backends and sizes are refused with a message, sources
 * report reads outside them and short reads, and a source that fails while
 * vCPUs fault stops the VM with the source's message (the faulting vCPU
 * leaves KVM_RUN, the other one is kicked out).
 */
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include "engine_workload.h"

static void expect_error(int ret, int err, const char *what)
{
	TEST_ASSERT(ret == -err, "%s: got %d (%s), want %d", what, ret,
		    kf_error(), -err);
	TEST_ASSERT(kf_error()[0], "%s: no message", what);
	printf("  %s: %s\n", what, kf_error());
}

/* A source that fails at one page, like a remote source losing its link. */
struct failing {
	struct kf_pagesrc src;
	struct kf_pagesrc *inner;
	uint64_t bad_gpa;
};

static int failing_read(struct kf_pagesrc *src, uint64_t gpa, void *buf,
			size_t len)
{
	struct failing *f = src->priv;

	if (gpa <= f->bad_gpa && f->bad_gpa < gpa + len)
		return kf_fail(ECONNRESET, "injected failure: connection lost reading gpa 0x%llx",
			       (unsigned long long)gpa);
	return kf_pagesrc_read(f->inner, gpa, buf, len);
}

static void failing_destroy(struct kf_pagesrc *src)
{
	(void)src;
}

static const struct kf_pagesrc_ops failing_ops = {
	.read = failing_read,
	.destroy = failing_destroy,
};

static void run_failing(enum kf_backend b, enum kf_backing backing,
			uint64_t pages, const void *img)
{
	struct kf_engine_config cfg = { .backend = b, .handler_threads = 2 };
	struct failing f;
	struct kf_engine *e;
	const struct kf_memslot *ms;
	struct kf_vm *vm;
	int ret;

	if (!wl_backend_ok(b, backing == KF_BACKING_MEMFD))
		return;
	TEST_OK(kf_vm_create(&vm));
	ms = wl_add_region(vm, backing, pages);
	TEST_OK(kf_pagesrc_memory_create(ms->gpa, img, ms->size, &f.inner));
	f.src = *f.inner;
	f.src.ops = &failing_ops;
	f.src.kind = "failing";
	f.src.priv = &f;
	f.bad_gpa = ms->gpa + pages / 2 * KF_PAGE_SIZE;
	wl_expect_image(img, pages);
	wl_plan(ms->gpa, pages, 2, false, false);
	wl_sync_tables(vm);
	wl_add_vcpus(vm, 2);
	TEST_OK(kf_engine_create(vm, &cfg, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, &f.src));
	TEST_OK(kf_engine_start(e));
	ret = kf_vm_run_all(vm, kf_engine_vcpu_ops());
	TEST_ASSERT(ret < 0, "the run should fail");
	printf("  %s: run failed: %s\n", kf_backend_name(b), kf_error());
	TEST_ASSERT(kf_engine_error(e), "the engine should report the failure");
	TEST_ASSERT(strstr(kf_engine_error(e), "injected failure"),
		    "engine message: %s", kf_engine_error(e));
	printf("  %s: engine: %s\n", kf_backend_name(b), kf_engine_error(e));
	TEST_ASSERT(!kf_engine_page_installed(e, f.bad_gpa), "failed page installed");
	kf_engine_destroy(e);
	kf_vm_destroy(vm);
	kf_pagesrc_destroy(f.inner);
}

int main(void)
{
	struct kf_pagesrc *src;
	struct kf_engine *e;
	const struct kf_memslot *ms;
	struct kf_vm *vm;
	enum kf_backend b;
	char buf[KF_PAGE_SIZE];
	char path[] = "/tmp/kf-engine-errors-XXXXXX";
	uint64_t pages = wl_pages(1);
	void *img;
	int fd;

	kf_test_require_kvm();
	if (!kf_uffd_features())
		kf_test_skip("userfaultfd is not available here");
	img = wl_image(pages, 7);

	expect_error(kf_backend_parse("bogus", &b), EINVAL, "unknown backend");
	TEST_OK(kf_backend_parse("uffd-minor", &b));
	TEST_ASSERT_EQ(b, KF_BACKEND_UFFD_MINOR);
	expect_error(kf_backend_available(KF_BACKEND_UFFD_MINOR, false), EINVAL,
		     "uffd-minor on anonymous memory");
	if (!kf_kvm_has_cap(KVM_CAP_EXIT_ON_MISSING))
		expect_error(kf_backend_available(KF_BACKEND_EXIT, false),
			     EOPNOTSUPP, "exit backend without the capability");

	/* Sources: out of range, short read, bad geometry. */
	TEST_OK(kf_pagesrc_memory_create(1 << 30, img, pages * KF_PAGE_SIZE, &src));
	expect_error(kf_pagesrc_read(src, (1 << 30) + pages * KF_PAGE_SIZE, buf,
				     KF_PAGE_SIZE), ERANGE, "memory source past its end");
	expect_error(kf_pagesrc_read(src, (1 << 30) - KF_PAGE_SIZE, buf,
				     KF_PAGE_SIZE), ERANGE, "memory source before its start");
	kf_pagesrc_destroy(src);
	expect_error(kf_pagesrc_zero_create(0, 100, &src), EINVAL,
		     "zero source of 100 bytes");
	fd = mkstemp(path);
	TEST_ASSERT(fd >= 0, "mkstemp");
	TEST_ASSERT(write(fd, img, 4 * KF_PAGE_SIZE) == 4 * KF_PAGE_SIZE, "write");
	TEST_OK(kf_pagesrc_rawfile_open(path, 1 << 30, &src));
	TEST_OK(kf_pagesrc_read(src, (1 << 30) + 3 * KF_PAGE_SIZE, buf, KF_PAGE_SIZE));
	TEST_ASSERT(!memcmp(buf, (char *)img + 3 * KF_PAGE_SIZE, KF_PAGE_SIZE),
		    "file source bytes");
	TEST_ASSERT(!ftruncate(fd, 2 * KF_PAGE_SIZE + 100), "truncate");
	expect_error(kf_pagesrc_read(src, (1 << 30) + 2 * KF_PAGE_SIZE, buf,
				     KF_PAGE_SIZE), EIO, "file source that shrank");
	kf_pagesrc_destroy(src);
	expect_error(kf_pagesrc_rawfile_open(path, 1 << 30, &src), EINVAL,
		     "file source not a page multiple");
	expect_error(kf_pagesrc_rawfile_open("/nonexistent/image", 0, &src),
		     ENOENT, "missing file");
	close(fd);
	unlink(path);

	/* The engine refuses what it cannot serve. */
	TEST_OK(kf_vm_create(&vm));
	ms = wl_add_region(vm, KF_BACKING_ANON, pages);
	TEST_OK(kf_engine_create(vm, NULL, &e));
	TEST_OK(kf_pagesrc_zero_create(ms->gpa, ms->size - KF_PAGE_SIZE, &src));
	expect_error(kf_engine_add_region(e, ms->slot, src), EINVAL,
		     "source smaller than the slot");
	kf_pagesrc_destroy(src);
	TEST_OK(kf_pagesrc_zero_create(ms->gpa, ms->size, &src));
	expect_error(kf_engine_add_region(e, 0, src), EINVAL, "slot 0");
	expect_error(kf_engine_add_region(e, 17, src), ENOENT, "missing slot");
	kf_engine_destroy(e);
	{
		struct kf_engine_config cfg = { .backend = KF_BACKEND_UFFD_MINOR };

		TEST_OK(kf_engine_create(vm, &cfg, &e));
		expect_error(kf_engine_add_region(e, ms->slot, src), EINVAL,
			     "uffd-minor forced on an anonymous slot");
		kf_engine_destroy(e);
	}
	{
		struct kf_engine_config cfg = { .backend = 9 };

		expect_error(kf_engine_create(vm, &cfg, &e), EINVAL, "backend 9");
	}
	kf_pagesrc_destroy(src);
	kf_vm_destroy(vm);

	/* A source failing in the middle of a run stops the VM. */
	run_failing(KF_BACKEND_UFFD_MISSING, KF_BACKING_ANON, pages, img);
	run_failing(KF_BACKEND_UFFD_MINOR, KF_BACKING_MEMFD, pages, img);
	if (kf_kvm_has_cap(KVM_CAP_EXIT_ON_MISSING)) {
		run_failing(KF_BACKEND_EXIT, KF_BACKING_ANON, pages, img);
		run_failing(KF_BACKEND_EXIT, KF_BACKING_MEMFD, pages, img);
	}
	TEST_PASS("bad input and failing sources give clear errors");
}
