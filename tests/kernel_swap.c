// SPDX-License-Identifier: MIT
/*
 * Exit-on-missing on pages that are swapped out (the kernel series'
 * exit-on-missing patch and its api.rst): the host page exists but may be
 * on the swap device.  A page still in the swap cache is served without an
 * exit.  One that must be read back means waiting for I/O, so KVM starts
 * the read and exits instead; at the exit UFFDIO_COPY fails with EEXIST
 * (the page is not missing for userfaultfd) and MADV_POPULATE_READ waits
 * for the read in the vCPU thread, after which the guest re-enters and
 * reads what the host wrote before the page went out.  The fault engine
 * takes such an exit for a page it installed earlier the same way.
 *
 * A page of shmem (a memfd) that went to swap is read back by the page
 * fault handler itself, which waits for the read: KVM waits with it and
 * does not exit.  With a MINOR userfaultfd on the range, userfaultfd
 * reports every page no longer mapped first: the fault exits once per such
 * page, and UFFDIO_CONTINUE reads it back and maps it.
 *
 * The rig swaps to a virtio disk (kernel/rig-common.sh), whose reads
 * complete asynchronously.  Whether a read is done before KVM tries the
 * page's lock (the page is served) or not (the fault exits) depends on how
 * the host schedules QEMU's threads, so the test counts exits for evicted
 * pages and checks what must hold either way; in the rig they usually
 * come (4 to 10 for 64 pages).  Without a swap device the test skips.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/vm_engine.h>

#include "kernel_common.h"

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#define NR_PAGES 64ULL
#define REGION_SIZE (NR_PAGES * KF_PAGE_SIZE)
#define PAGEMAP_SWAPPED (1ULL << 62)
#define PAGEMAP_PRESENT (1ULL << 63)

/* Whether some swap device is on (/proc/swaps: a header, then one line
 * per device). */
static bool swap_is_on(void)
{
	FILE *f = fopen("/proc/swaps", "r");
	char line[256];
	int lines = 0;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	return lines > 1;
}

/* Where each page of [hva, +NR_PAGES) is: mapped by the page table, on swap
 * (a swap entry in the page table) and, if so, whether still in memory (the
 * swap cache). */
struct page_state {
	bool mapped[NR_PAGES];
	bool swapped[NR_PAGES];
	bool resident[NR_PAGES];
	unsigned int nr_cached;		/* swapped and resident */
	unsigned int nr_evicted;	/* swapped and not resident */
};

static void page_state(uint8_t *hva, struct page_state *st)
{
	uint64_t entries[NR_PAGES];
	unsigned char vec[NR_PAGES];
	off_t off = (uintptr_t)hva / KF_PAGE_SIZE * sizeof(uint64_t);
	int fd = open("/proc/self/pagemap", O_RDONLY);
	unsigned int i;

	TEST_ASSERT(fd >= 0, "open /proc/self/pagemap: %s", strerror(errno));
	TEST_ASSERT(pread(fd, entries, sizeof(entries), off) == sizeof(entries),
		    "read /proc/self/pagemap: %s", strerror(errno));
	close(fd);
	TEST_ASSERT(!mincore(hva, REGION_SIZE, vec), "mincore: %s",
		    strerror(errno));
	memset(st, 0, sizeof(*st));
	for (i = 0; i < NR_PAGES; i++) {
		st->mapped[i] = entries[i] & PAGEMAP_PRESENT;
		st->swapped[i] = entries[i] & PAGEMAP_SWAPPED;
		st->resident[i] = vec[i] & 1;
		if (st->swapped[i] && st->resident[i])
			st->nr_cached++;
		else if (st->swapped[i])
			st->nr_evicted++;
	}
}

/* Swap writes in flight anywhere (/proc/vmstat nr_writeback). */
static long pages_under_writeback(void)
{
	FILE *f = fopen("/proc/vmstat", "r");
	char name[64];
	long v, n = -1;

	TEST_ASSERT(f, "open /proc/vmstat: %s", strerror(errno));
	while (fscanf(f, "%63s %ld", name, &v) == 2)
		if (!strcmp(name, "nr_writeback"))
			n = v;
	fclose(f);
	TEST_ASSERT(n >= 0, "no nr_writeback in /proc/vmstat");
	return n;
}

/*
 * Write the region to swap and wait until the writes are done.  Reclaim
 * keeps a page in the swap cache while its write is in flight and frees it
 * only in a later reclaim pass, so the pages end up on swap and in memory.
 * MADV_PAGEOUT skips pages that are not on an LRU list yet; nothing else
 * runs here, so one more call catches those.
 */
static void page_out(uint8_t *hva)
{
	unsigned int tries, ms;

	for (tries = 0; tries < 2; tries++)
		TEST_ASSERT(!madvise(hva, REGION_SIZE, MADV_PAGEOUT),
			    "MADV_PAGEOUT: %s", strerror(errno));
	/* The virtio disk's writes take milliseconds; a minute is ample. */
	for (ms = 0; pages_under_writeback() > 0; ms += 10) {
		TEST_ASSERT(ms < 60000, "swap writes still in flight after 60 s");
		usleep(10000);
	}
}

/*
 * Leave the region's pages on swap only: write them out, map them again
 * from the swap cache by reading them (which keeps their swap copies), then
 * page them out again: clean pages with a copy on swap are freed at once.
 */
static void evict(uint8_t *hva)
{
	uint64_t i;

	page_out(hva);
	for (i = 0; i < NR_PAGES; i++)
		(void)*(volatile uint64_t *)(hva + i * KF_PAGE_SIZE);
	page_out(hva);
}

/* Read every word of every page of the region, twice with a SYNC between
 * the passes when arg's bit 0 is set. */
static KF_GUEST void guest_read(uint64_t arg)
{
	uint64_t gpa = arg & ~1ULL, pass, p, i;

	for (pass = 0; pass < 1 + (arg & 1); pass++) {
		for (p = 0; p < NR_PAGES; p++) {
			uint64_t page = gpa + p * KF_PAGE_SIZE;
			volatile uint64_t *q = (volatile uint64_t *)page;

			for (i = 0; i < KF_PAGE_SIZE / 8; i++)
				GUEST_ASSERT_EQ(q[i], kt_pattern(page, i));
		}
		GUEST_SYNC(pass);
	}
}

static struct kf_vm *vm_with_region(const struct kf_memslot **ms)
{
	struct kf_region r = {
		.size = REGION_SIZE, .flags = KVM_MEM_EXIT_ON_MISSING,
		.backing = KF_BACKING_ANON,
	};
	struct kf_vm *vm;

	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, ms));
	/* A THP would go out and come back as one; keep it to 4 KiB pages. */
	TEST_ASSERT(!madvise((*ms)->hva, REGION_SIZE, MADV_NOHUGEPAGE),
		    "MADV_NOHUGEPAGE: %s", strerror(errno));
	return vm;
}

/* --- the VMM resolves the exits itself --- */

struct raw_ctx {
	const struct kf_vm *vm;
	uint8_t *hva;
	uint64_t gpa;
	int uffd;
	struct page_state st;
	unsigned int exits[NR_PAGES];
	unsigned int nr_exits;
};

static int raw_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	struct raw_ctx *c = kf_vcpu_opaque(vcpu);
	uint64_t i = (f->gpa - c->gpa) / KF_PAGE_SIZE;
	uint8_t page[KF_PAGE_SIZE] __attribute__((aligned(4096)));
	uint8_t *hva;

	TEST_ASSERT(f->gpa >= c->gpa && i < NR_PAGES, "fault at 0x%llx",
		    (unsigned long long)f->gpa);
	TEST_ASSERT_EQ(f->gpa % KF_PAGE_SIZE, 0);
	TEST_ASSERT_EQ(f->size, KF_PAGE_SIZE);
	TEST_ASSERT_EQ(f->raw_flags,
		       kf_vm_fault_access(c->vm) ? KVM_MEMORY_EXIT_FLAG_READ : 0);
	TEST_ASSERT(c->st.swapped[i] && !c->st.resident[i],
		    "page %llu exited, but it was %s", (unsigned long long)i,
		    c->st.swapped[i] ? "in the swap cache" : "mapped");
	c->nr_exits++;
	TEST_ASSERT(++c->exits[i] == 1, "page %llu exited %u times",
		    (unsigned long long)i, c->exits[i]);
	hva = c->hva + i * KF_PAGE_SIZE;
	/* Not missing for userfaultfd: nothing may replace the page. */
	memset(page, 0xa5, sizeof(page));
	TEST_ASSERT_EQ(kt_uffd_copy(c->uffd, hva, page), -EEXIST);
	TEST_ASSERT(!madvise(hva, KF_PAGE_SIZE, MADV_POPULATE_READ),
		    "MADV_POPULATE_READ page %llu: %s", (unsigned long long)i,
		    strerror(errno));
	return 0;
}

/*
 * evicted: the pages are on swap only, and the guest's first access to one
 * must exit; otherwise they are also in the swap cache, and none may exit.
 */
static void test_vmm_resolves(bool evicted)
{
	struct kf_vcpu_ops ops = { .memory_fault = raw_fault };
	const struct kf_memslot *ms;
	static struct raw_ctx c;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	uint64_t i;

	memset(&c, 0, sizeof(c));
	vm = vm_with_region(&ms);
	c.vm = vm;
	c.hva = ms->hva;
	c.gpa = ms->gpa;
	for (i = 0; i < NR_PAGES; i++)
		kt_fill_page(c.hva + i * KF_PAGE_SIZE, c.gpa + i * KF_PAGE_SIZE);
	c.uffd = kt_uffd_open(0);
	kt_uffd_register(c.uffd, c.hva, REGION_SIZE, UFFDIO_REGISTER_MODE_MISSING);
	if (evicted)
		evict(c.hva);
	else
		page_out(c.hva);
	page_state(c.hva, &c.st);
	printf("%s: of %llu pages %u on swap and in the swap cache, %u on swap only\n",
	       evicted ? "evicted" : "swap cache", NR_PAGES, c.st.nr_cached,
	       c.st.nr_evicted);
	if (evicted)
		TEST_ASSERT(c.st.nr_evicted > 0, "no page left memory");
	else
		TEST_ASSERT(c.st.nr_cached > 0, "no page went to swap");

	TEST_OK(kf_vcpu_add(vm, 0, guest_read, c.gpa, &vcpu));
	kf_vcpu_set_opaque(vcpu, &c);
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "%s", kf_vcpu_errmsg(vcpu));
	printf("%s: %u exits\n", evicted ? "evicted" : "swap cache", c.nr_exits);
	/*
	 * Each evicted page is read from the disk; whether the read is done
	 * before KVM tries the page's lock (served) or not (an exit) is the
	 * host scheduler's choice, so the exits are counted, not required.
	 */
	for (i = 0; i < NR_PAGES; i++)
		TEST_ASSERT_EQ(((uint64_t *)(c.hva + i * KF_PAGE_SIZE))[7],
			       kt_pattern(c.gpa + i * KF_PAGE_SIZE, 7));
	kf_vm_destroy(vm);
	close(c.uffd);
}

/* --- the fault engine, for pages it installed before they went out --- */

struct engine_ctx {
	uint8_t *hva;
	struct page_state st;
	unsigned int nr_exits;
};

static int engine_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	struct engine_ctx *c = kf_vcpu_opaque(vcpu);

	c->nr_exits++;
	return kf_engine_memory_fault(vcpu, f);
}

/* Between the guest's two passes every page is installed: evict them. */
static int engine_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	struct engine_ctx *c = kf_vcpu_opaque(vcpu);

	if (uc->args[0] == 0) {
		evict(c->hva);
		page_state(c->hva, &c->st);
		TEST_ASSERT(c->st.nr_evicted > 0, "no installed page left memory");
	}
	return 0;
}

static void test_engine(void)
{
	struct kf_vcpu_ops ops = {
		.memory_fault = engine_fault, .sync = engine_sync,
		.interrupted = kf_engine_interrupted,
	};
	struct kf_engine_config cfg = { .backend = KF_BACKEND_EXIT };
	static struct kf_engine_stats stats;
	const struct kf_memslot *ms;
	static struct engine_ctx c;
	struct kf_pagesrc *src;
	struct kf_vcpu *vcpu;
	struct kf_engine *e;
	struct kf_vm *vm;
	uint8_t *img;
	uint64_t i;

	memset(&c, 0, sizeof(c));
	vm = vm_with_region(&ms);
	c.hva = ms->hva;
	img = malloc(REGION_SIZE);
	TEST_ASSERT(img, "malloc");
	for (i = 0; i < NR_PAGES; i++)
		kt_fill_page(img + i * KF_PAGE_SIZE, ms->gpa + i * KF_PAGE_SIZE);
	TEST_OK(kf_pagesrc_memory_create(ms->gpa, img, REGION_SIZE, &src));
	TEST_OK(kf_engine_create(vm, &cfg, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, src));
	TEST_ASSERT_EQ(kf_engine_region_backend(e, ms->slot), KF_BACKEND_EXIT);
	TEST_OK(kf_engine_start(e));

	TEST_OK(kf_vcpu_add(vm, 0, guest_read, ms->gpa | 1, &vcpu));
	kf_vcpu_set_opaque(vcpu, &c);
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "%s (engine: %s)",
			     kf_vcpu_errmsg(vcpu),
			     kf_engine_error(e) ? kf_engine_error(e) : "ok");
	kf_engine_stop(e);
	kf_engine_stats(e, &stats);
	printf("engine: %llu pages installed, %u of them then on swap only; %u exits, %llu for installed pages\n",
	       (unsigned long long)kf_engine_installed_pages(e),
	       c.st.nr_evicted, c.nr_exits,
	       (unsigned long long)stats.total.spurious);
	TEST_ASSERT_EQ(kf_engine_installed_pages(e), NR_PAGES);
	TEST_ASSERT_EQ(stats.total.faults, NR_PAGES);
	TEST_ASSERT_EQ(stats.total.errors, 0);
	/* Exits in the second pass, if any, were for installed pages. */
	TEST_ASSERT_EQ(c.nr_exits, NR_PAGES + stats.total.spurious);
	for (i = 0; i < NR_PAGES; i++)
		TEST_ASSERT_EQ(kf_hash(ms->hva + i * KF_PAGE_SIZE, KF_PAGE_SIZE),
			       kf_hash(img + i * KF_PAGE_SIZE, KF_PAGE_SIZE));
	kf_engine_destroy(e);
	kf_pagesrc_destroy(src);
	kf_vm_destroy(vm);
	free(img);
}

/* --- shmem: the page fault handler reads the page back itself --- */

/* kB of the VMA at hva that are on swap (/proc/self/smaps "Swap:"; for a
 * shmem mapping, the file's pages on swap within the mapping). */
static long vma_swap_kb(const void *hva)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	unsigned long start, end;
	bool in_vma = false;
	char line[256];
	long kb = -1, v;

	TEST_ASSERT(f, "open /proc/self/smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2)
			in_vma = start <= (uintptr_t)hva && (uintptr_t)hva < end;
		else if (in_vma && sscanf(line, "Swap: %ld kB", &v) == 1)
			kb = v;
	}
	fclose(f);
	TEST_ASSERT(kb >= 0, "no Swap: line for the region in /proc/self/smaps");
	return kb;
}

struct shmem_ctx {
	uint8_t *hva;
	uint64_t gpa;
	int uffd;			/* MINOR userfaultfd, or -1 */
	bool unmapped[NR_PAGES];	/* no page table entry before the run */
	unsigned int exits[NR_PAGES];
	unsigned int nr_exits;
};

static int shmem_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	struct shmem_ctx *c = kf_vcpu_opaque(vcpu);
	uint64_t i = (f->gpa - c->gpa) / KF_PAGE_SIZE;

	TEST_ASSERT(f->gpa >= c->gpa && i < NR_PAGES, "fault at 0x%llx",
		    (unsigned long long)f->gpa);
	TEST_ASSERT(c->uffd >= 0,
		    "shmem page %llu exited: KVM must wait for its read instead",
		    (unsigned long long)i);
	TEST_ASSERT_EQ(f->size, KF_PAGE_SIZE);
	TEST_ASSERT(c->unmapped[i], "page %llu exited, but it was mapped",
		    (unsigned long long)i);
	c->nr_exits++;
	TEST_ASSERT(++c->exits[i] == 1, "page %llu exited %u times",
		    (unsigned long long)i, c->exits[i]);
	TEST_ASSERT_EQ(kt_uffd_continue(c->uffd, c->hva + i * KF_PAGE_SIZE), 0);
	return 0;
}

static void test_shmem(bool minor)
{
	struct kf_vcpu_ops ops = { .memory_fault = shmem_fault };
	struct kf_region r = {
		.size = REGION_SIZE, .flags = KVM_MEM_EXIT_ON_MISSING,
		.backing = KF_BACKING_MEMFD,
	};
	const char *name = minor ? "shmem, MINOR userfaultfd" : "shmem";
	const struct kf_memslot *ms;
	static struct shmem_ctx c;
	unsigned int nr_unmapped = 0;
	struct page_state st;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	long swap_kb;
	uint64_t i;

	memset(&c, 0, sizeof(c));
	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	c.hva = ms->hva;
	c.gpa = ms->gpa;
	c.uffd = -1;
	for (i = 0; i < NR_PAGES; i++)
		kt_fill_page(c.hva + i * KF_PAGE_SIZE, c.gpa + i * KF_PAGE_SIZE);
	if (minor) {
		c.uffd = kt_uffd_open(UFFD_FEATURE_MINOR_SHMEM);
		kt_uffd_register(c.uffd, c.hva, REGION_SIZE,
				 UFFDIO_REGISTER_MODE_MINOR);
	}
	page_out(c.hva);

	page_state(c.hva, &st);
	for (i = 0; i < NR_PAGES; i++) {
		c.unmapped[i] = !st.mapped[i];
		nr_unmapped += c.unmapped[i];
	}
	swap_kb = vma_swap_kb(c.hva);
	printf("%s: of %llu pages %u unmapped, %ld kB on swap\n", name,
	       NR_PAGES, nr_unmapped, swap_kb);
	TEST_ASSERT(swap_kb > 0, "no shmem page went to swap");

	TEST_OK(kf_vcpu_add(vm, 0, guest_read, c.gpa, &vcpu));
	kf_vcpu_set_opaque(vcpu, &c);
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "%s", kf_vcpu_errmsg(vcpu));
	printf("%s: %u exits\n", name, c.nr_exits);
	/* Without a userfaultfd shmem_fault() never lets the vCPU exit. */
	TEST_ASSERT_EQ(c.nr_exits, minor ? nr_unmapped : 0);
	for (i = 0; i < NR_PAGES; i++)
		TEST_ASSERT_EQ(((uint64_t *)(c.hva + i * KF_PAGE_SIZE))[7],
			       kt_pattern(c.gpa + i * KF_PAGE_SIZE, 7));
	kf_vm_destroy(vm);
	if (minor)
		close(c.uffd);
}

int main(void)
{
	kt_require_series();
	if (!swap_is_on()) {
		/* The rig gives a disk for swap: its swapon must have worked. */
		TEST_ASSERT(access("/dev/vda", F_OK),
			    "/dev/vda exists but no swap is on (the rig's swapon failed?)");
		kf_test_skip("no swap device is on (/proc/swaps)");
	}
	test_vmm_resolves(false);
	test_vmm_resolves(true);
	test_engine();
	test_shmem(false);
	test_shmem(true);
	TEST_PASS("pages in the swap cache are served without exits; pages on swap only exit at most once each, UFFDIO_COPY gives EEXIST there and MADV_POPULATE_READ brings back the host's bytes; the engine serves such exits for installed pages; swapped-out shmem is read back without an exit, and with a MINOR userfaultfd exits once a page until UFFDIO_CONTINUE");
}
