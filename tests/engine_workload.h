/* SPDX-License-Identifier: MIT */
/*
 * Shared by the engine tests: a demand-paged region, an image with a
 * distinct pattern per page, its expected hashes in a global table the
 * guest reads (slot 0 is not demand paged), and a guest that walks pages
 * and checks each one's hash against the table.
 */
#ifndef KF_TESTS_ENGINE_WORKLOAD_H
#define KF_TESTS_ENGINE_WORKLOAD_H

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kvmfault/vm_engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/test.h>
#include <kvmfault/uffd.h>

#define WL_MAX_PAGES 16384	/* 64 MiB */

struct wl_walk {
	uint64_t gpa;		/* first page of the range */
	uint64_t pages;		/* pages in the range */
	uint64_t first;		/* index to start at (wraps) */
	uint64_t step;		/* 1 forward, pages - 1 backward */
	uint64_t write;		/* first touch is a write (value kept) */
	uint64_t base_idx;	/* index of gpa in wl_expect[] */
};

static uint64_t wl_expect[WL_MAX_PAGES];
static struct wl_walk wl_walks[KF_MAX_VCPUS];

static KF_GUEST void wl_guest(uint64_t arg)
{
	const struct wl_walk *w = &wl_walks[arg];
	uint64_t i, idx = w->first % w->pages;

	for (i = 0; i < w->pages; i++) {
		uint64_t gpa = w->gpa + idx * KF_PAGE_SIZE;

		if (w->write)
			kt_guest_write_keep((volatile uint64_t *)gpa);
		GUEST_ASSERT_EQ(kf_hash((const void *)gpa, KF_PAGE_SIZE),
				wl_expect[w->base_idx + idx]);
		idx = (idx + w->step) % w->pages;
	}
	GUEST_SYNC_ARGS(1, w->pages, 0, 0);
}

/* Test memory in pages, from KF_ENGINE_TEST_MB (default mb). */
/* The engine installs host pages (4, 16 or 64 KiB): how many hold pages. */
static inline uint64_t wl_host_pages(uint64_t pages)
{
	return pages * KF_PAGE_SIZE / (uint64_t)getpagesize();
}

static inline uint64_t wl_pages(uint64_t mb)
{
	const char *env = getenv("KF_ENGINE_TEST_MB");
	uint64_t pages;

	if (env && atoi(env) > 0)
		mb = atoi(env);
	pages = mb * 256;
	return pages > WL_MAX_PAGES ? WL_MAX_PAGES : pages;
}

static inline uint64_t wl_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* An image of pages: every page distinct; every 7th page all zeros. */
static inline void *wl_image(uint64_t pages, uint64_t seed)
{
	uint64_t *img = mmap(NULL, pages * KF_PAGE_SIZE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t p, i, n = KF_PAGE_SIZE / 8;

	TEST_ASSERT(img != MAP_FAILED, "mmap image");
	for (p = 0; p < pages; p++)
		for (i = 0; i < n; i++)
			img[p * n + i] = p % 7 == 3 ? 0 : wl_mix(seed ^ (p << 20) ^ i);
	return img;
}

static inline void wl_expect_image(const void *img, uint64_t pages)
{
	uint64_t p;

	for (p = 0; p < pages; p++)
		wl_expect[p] = kf_hash((const char *)img + p * KF_PAGE_SIZE,
				       KF_PAGE_SIZE);
}

static inline void wl_expect_zero(uint64_t pages)
{
	static const uint64_t zero[KF_PAGE_SIZE / 8];
	uint64_t p, h = kf_hash(zero, KF_PAGE_SIZE);

	for (p = 0; p < pages; p++)
		wl_expect[p] = h;
}

/* vCPU v walks all pages from its own starting point (shared range:
 * every page is faulted by several vCPUs at once), or only its share. */
static inline void wl_plan(uint64_t gpa, uint64_t pages, unsigned int nr_vcpus,
			   bool shared, bool write)
{
	unsigned int v;

	for (v = 0; v < nr_vcpus; v++) {
		struct wl_walk *w = &wl_walks[v];

		if (shared) {
			w->gpa = gpa;
			w->pages = pages;
			w->first = v % 2 ? pages - 1 : 0;
			w->step = v % 2 ? pages - 1 : 1;
			w->base_idx = 0;
		} else {
			uint64_t a = pages * v / nr_vcpus, b = pages * (v + 1) / nr_vcpus;

			w->gpa = gpa + a * KF_PAGE_SIZE;
			w->pages = b - a;
			w->first = 0;
			w->step = 1;
			w->base_idx = a;
		}
		w->write = write;
	}
}

static inline const struct kf_memslot *wl_add_region(struct kf_vm *vm,
						     enum kf_backing backing,
						     uint64_t pages)
{
	struct kf_region r = {
		.gpa = kf_vm_free_gpa(vm),
		.size = pages * KF_PAGE_SIZE,
		.backing = backing,
		.guest_memfd = -1,
	};
	const struct kf_memslot *ms;

	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	return ms;
}

static inline void wl_sync_tables(struct kf_vm *vm)
{
	TEST_OK(KF_SYNC_GLOBAL_TO_GUEST(vm, wl_expect));
	TEST_OK(KF_SYNC_GLOBAL_TO_GUEST(vm, wl_walks));
}

static inline void wl_add_vcpus(struct kf_vm *vm, unsigned int nr)
{
	struct kf_vcpu *vcpu;
	unsigned int v;

	for (v = 0; v < nr; v++)
		TEST_OK(kf_vcpu_add(vm, v, wl_guest, v, &vcpu));
}

/* Whether backend b can run here; prints why not. */
static inline bool wl_backend_ok(enum kf_backend b, bool memfd)
{
	if (kf_backend_available(b, memfd)) {
		printf("  %s on %s: not available here: %s\n", kf_backend_name(b),
		       memfd ? "memfd" : "anon", kf_error());
		return false;
	}
	return true;
}

#endif
