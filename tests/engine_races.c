// SPDX-License-Identifier: MIT
/*
 * Races the fault engine must win: a source pushing pages in the background
 * while vCPUs fault the same pages on demand (EEXIST-style collisions), and
 * faults while the memslot's flags change under the vCPUs (dirty logging
 * toggled, and with the exit backend exit-on-missing itself toggled, so
 * faults move between the vCPU thread and the userfaultfd fallback).
 * Every page is installed exactly once and the guest sees the source's
 * bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <unistd.h>

#include "engine_workload.h"

/* A memory source that also pushes every page, from the end backwards. */
struct pusher {
	struct kf_pagesrc src;
	struct kf_pagesrc *inner;
	const char *img;
	kf_pagesrc_sink_fn sink;
	void *opaque;
	pthread_t thread;
	int result;
};

static int pusher_read(struct kf_pagesrc *src, uint64_t gpa, void *buf,
		       size_t len)
{
	struct pusher *p = src->priv;

	return kf_pagesrc_read(p->inner, gpa, buf, len);
}

static void *pusher_thread(void *arg)
{
	struct pusher *p = arg;
	uint64_t pages = p->src.size / KF_PAGE_SIZE, i;
	/* Batches of 4 pages or of the engine's unit (a 64 KiB host page). */
	uint64_t n = KF_MAX(4ULL, p->src.push_unit / KF_PAGE_SIZE);

	/* Backwards, meeting the forward-walking vCPU. */
	for (i = pages; i >= n && !p->result; i -= n) {
		uint64_t off = (i - n) * KF_PAGE_SIZE;

		p->result = p->sink(p->opaque, p->src.base + off, p->img + off,
				    NULL, n * KF_PAGE_SIZE);
		usleep(100);	/* about the pace of the vCPUs' faults */
	}
	return NULL;
}

static int pusher_start(struct kf_pagesrc *src, kf_pagesrc_sink_fn sink,
			void *opaque)
{
	struct pusher *p = src->priv;

	p->sink = sink;
	p->opaque = opaque;
	return -pthread_create(&p->thread, NULL, pusher_thread, p);
}

static void pusher_destroy(struct kf_pagesrc *src)
{
	(void)src;
}

static const struct kf_pagesrc_ops pusher_ops = {
	.read = pusher_read,
	.start_push = pusher_start,
	.destroy = pusher_destroy,
};

static struct kf_engine_stats stats;

static void check_exactly_once(struct kf_engine *e,
			       const struct kf_memslot *ms, uint64_t pages)
{
	uint64_t p;

	/* Handlers count a page just after the vCPU could go on: stop them
	 * so that the counts are final. */
	kf_engine_stop(e);
	kf_engine_stats(e, &stats);
	TEST_ASSERT(!kf_engine_error(e), "engine: %s", kf_engine_error(e));
	TEST_ASSERT_EQ(kf_engine_installed_pages(e), wl_host_pages(pages));
	TEST_ASSERT_EQ(stats.total.faults + stats.pushed_pages, wl_host_pages(pages));
	TEST_ASSERT_EQ(stats.total.errors, 0);
	for (p = 0; p < pages; p++)
		TEST_ASSERT_EQ(kf_hash((char *)ms->hva + p * KF_PAGE_SIZE,
				       KF_PAGE_SIZE), wl_expect[p]);
}

static void push_race(enum kf_backend b, enum kf_backing backing,
		      uint64_t pages, const void *img)
{
	struct kf_engine_config cfg = { .backend = b, .handler_threads = 2 };
	struct kf_engine *e;
	const struct kf_memslot *ms;
	struct pusher p = { .img = img };
	struct kf_vm *vm;
	int ret;

	if (!wl_backend_ok(b, backing == KF_BACKING_MEMFD))
		return;
	TEST_OK(kf_vm_create(&vm));
	ms = wl_add_region(vm, backing, pages);
	TEST_OK(kf_pagesrc_memory_create(ms->gpa, img, ms->size, &p.inner));
	p.src = *p.inner;
	p.src.ops = &pusher_ops;
	p.src.kind = "pushing";
	p.src.priv = &p;
	wl_expect_image(img, pages);
	wl_plan(ms->gpa, pages, 2, true, b == KF_BACKEND_UFFD_MISSING);
	wl_sync_tables(vm);
	wl_add_vcpus(vm, 2);
	TEST_OK(kf_engine_create(vm, &cfg, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, &p.src));
	TEST_OK(kf_engine_start(e));
	ret = kf_vm_run_all(vm, kf_engine_vcpu_ops());
	TEST_ASSERT(ret == 0, "run: %s", kf_error());
	pthread_join(p.thread, NULL);
	TEST_ASSERT(p.result == 0, "push failed: %s", kf_engine_error(e));
	check_exactly_once(e, ms, pages);
	printf("  push race, %s: %llu faulted, %llu pushed, %llu pushes found the page there\n",
	       kf_backend_name(kf_engine_region_backend(e, ms->slot)),
	       (unsigned long long)stats.total.faults,
	       (unsigned long long)stats.pushed_pages,
	       (unsigned long long)stats.push_races);
	kf_engine_destroy(e);
	kf_vm_destroy(vm);
	kf_pagesrc_destroy(p.inner);
}

struct toggler {
	struct kf_vm *vm;
	uint32_t slot;
	uint32_t flags;		/* bits to toggle */
	volatile int stop;
	unsigned long changes;
	int result;
	sem_t first_done;	/* posted after the first change */
};

/*
 * Every flag change makes KVM retry the faults in flight, so a toggler
 * without end could starve the vCPUs on a slow kernel (lockdep and KASAN
 * under QEMU): it stops after this many changes.
 */
#define MAX_FLAG_CHANGES 2000

static void *toggle_thread(void *arg)
{
	struct toggler *t = arg;
	uint32_t base = kf_vm_slot(t->vm, t->slot)->flags;

	while (!t->stop && !t->result && t->changes < MAX_FLAG_CHANGES) {
		t->result = kf_vm_set_region_flags(t->vm, t->slot, base ^ t->flags);
		if (!t->result)
			t->result = kf_vm_set_region_flags(t->vm, t->slot, base);
		t->changes += 2;
		if (t->changes == 2)
			sem_post(&t->first_done);
		usleep(20);
	}
	if (t->changes < 2)
		sem_post(&t->first_done);
	return NULL;
}

static void memslot_race(enum kf_backend b, enum kf_backing backing,
			 uint64_t pages, const void *img)
{
	struct kf_engine_config cfg = { .backend = b, .nr_uffds = 2 };
	struct toggler t = { .flags = KVM_MEM_LOG_DIRTY_PAGES };
	struct kf_pagesrc *src;
	struct kf_engine *e;
	const struct kf_memslot *ms;
	struct kf_vm *vm;
	pthread_t thread;
	int ret;

	if (!wl_backend_ok(b, backing == KF_BACKING_MEMFD))
		return;
	TEST_OK(kf_vm_create(&vm));
	ms = wl_add_region(vm, backing, pages);
	TEST_OK(kf_pagesrc_memory_create(ms->gpa, img, ms->size, &src));
	wl_expect_image(img, pages);
	wl_plan(ms->gpa, pages, 2, true, true);
	wl_sync_tables(vm);
	wl_add_vcpus(vm, 2);
	TEST_OK(kf_engine_create(vm, &cfg, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, src));
	if (kf_engine_region_backend(e, ms->slot) == KF_BACKEND_EXIT)
		t.flags |= KVM_MEM_EXIT_ON_MISSING;
	TEST_OK(kf_engine_start(e));
	t.vm = vm;
	t.slot = ms->slot;
	TEST_ASSERT(!sem_init(&t.first_done, 0, 0), "sem_init");
	TEST_ASSERT(!pthread_create(&thread, NULL, toggle_thread, &t), "thread");
	/* However the scheduler runs the threads, the slot changes at least
	 * once while the engine serves it, and keeps changing while the
	 * vCPUs fault. */
	while (sem_wait(&t.first_done) && errno == EINTR)
		;
	ret = kf_vm_run_all(vm, kf_engine_vcpu_ops());
	t.stop = 1;
	pthread_join(thread, NULL);
	TEST_ASSERT(ret == 0, "run: %s", kf_error());
	TEST_ASSERT(t.result == 0, "flag change failed: %s", kf_error());
	TEST_ASSERT(t.changes >= 2, "the slot's flags never changed");
	sem_destroy(&t.first_done);
	check_exactly_once(e, ms, pages);
	printf("  memslot race, %s: %lu flag changes (0x%x) during %llu faults (%llu exits, %llu via uffd)\n",
	       kf_backend_name(kf_engine_region_backend(e, ms->slot)), t.changes,
	       t.flags, (unsigned long long)stats.total.faults,
	       (unsigned long long)stats.exit_faults,
	       (unsigned long long)stats.uffd_faults);
	kf_engine_destroy(e);
	kf_vm_destroy(vm);
	kf_pagesrc_destroy(src);
}

int main(void)
{
	uint64_t pages = wl_pages(2);
	void *img;

	setvbuf(stdout, NULL, _IOLBF, 0);	/* progress survives a hang */
	kf_test_require_kvm();
	if (!kf_uffd_features())
		kf_test_skip("userfaultfd is not available here");
	img = wl_image(pages, 99);
	push_race(KF_BACKEND_UFFD_MISSING, KF_BACKING_ANON, pages, img);
	push_race(KF_BACKEND_UFFD_MINOR, KF_BACKING_MEMFD, pages, img);
	memslot_race(KF_BACKEND_UFFD_MISSING, KF_BACKING_ANON, pages, img);
	memslot_race(KF_BACKEND_UFFD_MINOR, KF_BACKING_MEMFD, pages, img);
	if (kf_kvm_has_cap(KVM_CAP_EXIT_ON_MISSING)) {
		push_race(KF_BACKEND_EXIT, KF_BACKING_ANON, pages, img);
		push_race(KF_BACKEND_EXIT, KF_BACKING_MEMFD, pages, img);
		memslot_race(KF_BACKEND_EXIT, KF_BACKING_ANON, pages, img);
		memslot_race(KF_BACKEND_EXIT, KF_BACKING_MEMFD, pages, img);
	}
	TEST_PASS("pushes racing faults and memslot changes during faults: every page once, right bytes");
}
