// SPDX-License-Identifier: MIT
/*
 * A region's own host page size: the core refuses a page size or a
 * region that does not fit it, and, where this machine has free 2 MiB
 * huge pages (vm.nr_hugepages), serves a hugetlb region a whole huge page
 * at a time: one fault installs 2 MiB from the source.
 */
#include <string.h>
#include <sys/mman.h>

#include <kvmfault/engine.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/test.h>
#include <kvmfault/uffd.h>

#define HUGE (2ULL << 20)
#define BASE 0x80000000ULL
#define SIZE (2 * HUGE)

static void expect_error(int ret, int err, const char *needle)
{
	TEST_ASSERT_EQ(ret, -err);
	TEST_ASSERT(strstr(kf_error(), needle), "'%s' missing from '%s'",
		    needle, kf_error());
}

int main(void)
{
	static const struct kf_engine_host host;
	struct kf_engine_config cfg = { .backend = KF_BACKEND_UFFD_MISSING };
	struct kf_engine_region_desc d = { .slot = 1, .gpa = BASE, .size = SIZE,
					   .memfd = -1, .page_size = HUGE };
	struct kf_engine_summary *sum;
	struct kf_pagesrc *src;
	struct kf_engine *e;
	struct kf_exit ex = { .kind = KF_EXIT_MEMORY_FAULT };
	uint8_t *data, *mem;
	uint64_t i;

	if (!kf_uffd_features())
		kf_test_skip("userfaultfd is not available here (%s)", kf_error());
	data = malloc(SIZE);
	TEST_ASSERT(data, "malloc");
	for (i = 0; i < SIZE; i++)
		data[i] = (uint8_t)(i * 7 + i / 4096);
	TEST_OK(kf_pagesrc_memory_create(BASE, data, SIZE, &src));
	TEST_OK(kf_engine_new(&host, &cfg, &e));

	/* Descriptions that do not fit their page size. */
	mem = mmap(NULL, SIZE + HUGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap");
	d.hva = (void *)KF_ALIGN_UP((uintptr_t)mem, HUGE);
	d.page_size = 3 * 4096;
	expect_error(kf_engine_add_memory(e, &d, src), EINVAL, "no power of two");
	d.page_size = HUGE;
	d.gpa = BASE + 4096;
	expect_error(kf_engine_add_memory(e, &d, src), EINVAL, "not aligned");
	d.gpa = BASE;
	d.size = HUGE + 4096;
	expect_error(kf_engine_add_memory(e, &d, src), EINVAL, "not aligned");
	d.size = SIZE;
	d.hva = (uint8_t *)d.hva + 4096;
	expect_error(kf_engine_add_memory(e, &d, src), EINVAL, "not aligned");
	munmap(mem, SIZE + HUGE);

	mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (mem == MAP_FAILED)
		kf_test_skip("no two free 2 MiB huge pages (vm.nr_hugepages): the page size checks passed");
	d.hva = mem;
	TEST_OK(kf_engine_add_memory(e, &d, src));
	TEST_OK(kf_engine_start(e));

	/* One fault in the second huge page installs all of it. */
	ex.fault.gpa = BASE + HUGE + 12345;
	ex.fault.size = 1;
	ex.fault.access = KF_ACCESS_READ;
	TEST_OK(kf_engine_fault(e, 0, &ex));
	TEST_ASSERT(kf_engine_page_installed(e, BASE + HUGE), "huge page 1");
	TEST_ASSERT(kf_engine_page_installed(e, BASE + SIZE - 1), "its last byte");
	TEST_ASSERT(!kf_engine_page_installed(e, BASE), "huge page 0 too early");
	TEST_ASSERT(!memcmp(mem + HUGE, data + HUGE, HUGE), "huge page 1's bytes");
	sum = calloc(1, sizeof(*sum));
	TEST_ASSERT(sum, "calloc");
	kf_engine_summary(e, sum);
	TEST_ASSERT_EQ(sum->installed_pages, 1);
	TEST_ASSERT_EQ(sum->vcpu[0].bytes, HUGE);
	free(sum);

	/* The first by prefetch, then all of it is the source's. */
	TEST_OK(kf_engine_fetch(e, BASE, 1));
	TEST_ASSERT(!memcmp(mem, data, SIZE), "every byte is the source's");
	kf_engine_destroy(e);
	kf_pagesrc_destroy(src);
	munmap(mem, SIZE);
	free(data);
	TEST_PASS("a region of 2 MiB pages, served a huge page at a time");
}
