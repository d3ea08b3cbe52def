// SPDX-License-Identifier: MIT
/*
 * KVM_MEM_EXIT_ON_MISSING with one vCPU (kvmfault kernel series).
 *
 * A guest touching N missing pages of a flagged slot over memory registered
 * with a (blocking) userfaultfd exits once per page with
 * KVM_EXIT_MEMORY_FAULT and never waits in the userfaultfd; the vCPU thread
 * installs each page (UFFDIO_COPY for MISSING on anonymous memory,
 * UFFDIO_CONTINUE for MINOR on a memfd) and the guest sees exactly the
 * installed contents.  Read faults and write faults are both covered.
 * Without a userfaultfd, the flag exits only where the page cannot be had
 * without waiting or at all: a page mapped read-only by mprotect serves a
 * read and exits (rather than hangs) on a write until userspace makes it
 * writable; the shared zero page serves a read, and a write after the
 * copy-on-write, without an exit; so does a page never touched (the fault
 * handler allocates it without waiting).
 */
#include <sys/mman.h>

#include "kernel_common.h"

#define REGION_SIZE (2ULL << 20)
#define NR_PAGES 64ULL

struct ctx {
	int uffd;
	bool minor;		/* UFFDIO_CONTINUE instead of UFFDIO_COPY */
	uint8_t *hva;
	uint64_t gpa;
	uint64_t expect_flags;
	unsigned int exits[NR_PAGES];
	unsigned int nr_exits;
};

/* arg: gpa of the region; bit 0 set: write first, else read first. */
static KF_GUEST void guest_touch(uint64_t arg)
{
	uint64_t gpa = arg & ~1ULL, i;
	bool write = arg & 1;

	for (i = 0; i < NR_PAGES; i++) {
		volatile uint64_t *q = (volatile uint64_t *)(gpa + i * KF_PAGE_SIZE);
		uint64_t idx = (i * 37) % (KF_PAGE_SIZE / 8);

		if (write) {
			q[idx] = ~i;
			GUEST_ASSERT_EQ(q[idx], ~i);
		} else {
			GUEST_ASSERT_EQ(q[idx], kt_pattern(gpa + i * KF_PAGE_SIZE, idx));
			GUEST_ASSERT_EQ(q[0], kt_pattern(gpa + i * KF_PAGE_SIZE, 0));
			q[1] = i;	/* mapped writable: no second exit */
		}
	}
}

static int install(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	struct ctx *c = kf_vcpu_opaque(vcpu);
	uint8_t page[KF_PAGE_SIZE] __attribute__((aligned(4096)));
	uint64_t i = (f->gpa - c->gpa) / KF_PAGE_SIZE;

	TEST_ASSERT(f->gpa >= c->gpa && i < NR_PAGES, "fault at 0x%llx",
		    (unsigned long long)f->gpa);
	TEST_ASSERT_EQ(f->gpa % KF_PAGE_SIZE, 0);
	TEST_ASSERT_EQ(f->size, KF_PAGE_SIZE);
	TEST_ASSERT_EQ(f->raw_flags, c->expect_flags);
	c->exits[i]++;
	c->nr_exits++;
	TEST_ASSERT(c->exits[i] == 1, "page %llu exited %u times",
		    (unsigned long long)i, c->exits[i]);
	if (c->minor) {
		kt_uffd_continue(c->uffd, c->hva + i * KF_PAGE_SIZE);
	} else {
		kt_fill_page(page, f->gpa);
		kt_uffd_copy(c->uffd, c->hva + i * KF_PAGE_SIZE, page);
	}
	return 0;
}

static void test_uffd(bool minor, bool write)
{
	struct kf_vcpu_ops ops = { .memory_fault = install };
	struct kf_region r = {
		.size = REGION_SIZE, .flags = KVM_MEM_EXIT_ON_MISSING,
		.backing = minor ? KF_BACKING_MEMFD : KF_BACKING_ANON,
	};
	struct kt_uffd_server srv;
	static struct ctx c;
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	uint64_t i;

	memset(&c, 0, sizeof(c));
	c.minor = minor;
	c.expect_flags = write ? KVM_MEMORY_EXIT_FLAG_WRITE : KVM_MEMORY_EXIT_FLAG_READ;
	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	c.hva = ms->hva;
	c.gpa = r.gpa;
	c.uffd = kt_uffd_open(minor ? UFFD_FEATURE_MINOR_SHMEM : 0);
	if (minor) {
		/* The contents are in the page cache, mapped nowhere yet. */
		uint8_t *alias = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE,
				      MAP_SHARED, ms->memfd, 0);

		TEST_ASSERT(alias != MAP_FAILED, "mmap alias");
		for (i = 0; i < NR_PAGES; i++)
			kt_fill_page(alias + i * KF_PAGE_SIZE, r.gpa + i * KF_PAGE_SIZE);
		munmap(alias, REGION_SIZE);
	}
	kt_uffd_register(c.uffd, ms->hva, ms->size,
			 minor ? UFFDIO_REGISTER_MODE_MINOR : UFFDIO_REGISTER_MODE_MISSING);
	/* Only a thread blocked in the userfaultfd would reach this server. */
	kt_uffd_server_start(&srv, c.uffd, ms->hva, r.gpa, ms->size);

	TEST_OK(kf_vcpu_add(vm, 0, guest_touch, r.gpa | write, &vcpu));
	kf_vcpu_set_opaque(vcpu, &c);
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "%s %s: %s",
			     minor ? "MINOR" : "MISSING", write ? "write" : "read",
			     kf_vcpu_errmsg(vcpu));
	kt_uffd_server_stop(&srv);

	printf("%s, %s first: %u exits for %llu pages, %u userfaultfd waits\n",
	       minor ? "MINOR+CONTINUE" : "MISSING+COPY", write ? "write" : "read",
	       c.nr_exits, NR_PAGES, srv.nr_events);
	TEST_ASSERT(srv.nr_events == 0,
		    "KVM waited in userfaultfd %u times in an exit-on-missing slot",
		    srv.nr_events);
	TEST_ASSERT_EQ(c.nr_exits, NR_PAGES);
	for (i = 0; i < NR_PAGES; i++) {
		uint64_t *q = (uint64_t *)(ms->hva + i * KF_PAGE_SIZE);
		uint64_t idx = (i * 37) % (KF_PAGE_SIZE / 8);

		TEST_ASSERT_EQ(c.exits[i], 1);
		if (write) {
			TEST_ASSERT_EQ(q[idx], ~i);
		} else {
			TEST_ASSERT_EQ(q[1], i);
			TEST_ASSERT_EQ(q[2], kt_pattern(r.gpa + i * KF_PAGE_SIZE, 2));
		}
	}
	kf_vm_destroy(vm);
	close(c.uffd);
}

/* --- pages the host maps without write permission --- */

enum ro_case { RO_PAGE, ZERO_READ, ZERO_WRITE, NEVER_TOUCHED };

struct ro_ctx {
	enum ro_case rc;
	uint8_t *page;
	unsigned int nr_exits;
	uint64_t flags[4];
};

static KF_GUEST void guest_read_then_write(uint64_t addr)
{
	uint64_t v = *(volatile uint64_t *)addr;

	GUEST_SYNC_ARGS(1, v, 0, 0);
	*(volatile uint64_t *)addr = v + 1;
	GUEST_SYNC_ARGS(2, *(volatile uint64_t *)addr, 0, 0);
}

static KF_GUEST void guest_write_only(uint64_t addr)
{
	*(volatile uint64_t *)addr = 0x77;
	GUEST_SYNC_ARGS(2, *(volatile uint64_t *)addr, 0, 0);
}

static int ro_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	struct ro_ctx *c = kf_vcpu_opaque(vcpu);

	TEST_ASSERT(c->nr_exits < 4, "too many exits");
	c->flags[c->nr_exits++] = f->raw_flags;
	switch (c->rc) {
	case RO_PAGE:
		TEST_ASSERT(!mprotect(c->page, KF_PAGE_SIZE, PROT_READ | PROT_WRITE),
			    "mprotect");
		break;
	default:
		break;
	}
	/* make it present and writable: a write from this thread */
	*(volatile uint8_t *)c->page = *(volatile uint8_t *)c->page;
	return 0;
}

static uint64_t ro_synced[3];

static int ro_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	(void)vcpu;
	ro_synced[uc->args[0]] = uc->args[1];
	return 0;
}

static void test_readonly(enum ro_case rc)
{
	static const char *const name[] = {
		"read-only page", "zero page, read", "zero page, write",
		"never touched",
	};
	struct kf_vcpu_ops ops = { .memory_fault = ro_fault, .sync = ro_sync };
	struct kf_region r = {
		.size = REGION_SIZE, .flags = KVM_MEM_EXIT_ON_MISSING,
		.backing = KF_BACKING_ANON,
	};
	static struct ro_ctx c;
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	volatile uint64_t sink;

	memset(&c, 0, sizeof(c));
	memset(ro_synced, 0, sizeof(ro_synced));
	c.rc = rc;
	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	/* THP would hide the zero page behind a huge zero page or a real one */
	madvise(ms->hva, ms->size, MADV_NOHUGEPAGE);
	c.page = ms->hva + 0x3000;
	switch (rc) {
	case RO_PAGE:
		*(uint64_t *)c.page = 41;
		TEST_ASSERT(!mprotect(c.page, KF_PAGE_SIZE, PROT_READ), "mprotect");
		break;
	case ZERO_READ:
	case ZERO_WRITE:
		sink = *(volatile uint64_t *)c.page;	/* maps the zero page */
		(void)sink;
		break;
	case NEVER_TOUCHED:
		break;
	}
	TEST_OK(kf_vcpu_add(vm, 0, rc == ZERO_WRITE ? guest_write_only :
			    guest_read_then_write, r.gpa + 0x3000, &vcpu));
	kf_vcpu_set_opaque(vcpu, &c);
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "%s: %s", name[rc], kf_vcpu_errmsg(vcpu));
	printf("%s: %u exits, flags 0x%llx 0x%llx\n", name[rc], c.nr_exits,
	       (unsigned long long)c.flags[0], (unsigned long long)c.flags[1]);
	switch (rc) {
	case RO_PAGE:
		/* the read is served read-only; the write exits once */
		TEST_ASSERT_EQ(ro_synced[1], 41);
		TEST_ASSERT_EQ(ro_synced[2], 42);
		TEST_ASSERT_EQ(c.nr_exits, 1);
		TEST_ASSERT_EQ(c.flags[0], KVM_MEMORY_EXIT_FLAG_WRITE);
		break;
	case ZERO_READ:
	case NEVER_TOUCHED:
		/* served without waiting: no exit, the write lands */
		TEST_ASSERT_EQ(ro_synced[1], 0);
		TEST_ASSERT_EQ(ro_synced[2], 1);
		TEST_ASSERT_EQ(c.nr_exits, 0);
		break;
	case ZERO_WRITE:
		TEST_ASSERT_EQ(ro_synced[2], 0x77);
		TEST_ASSERT_EQ(c.nr_exits, 0);
		break;
	}
	TEST_ASSERT_EQ(*(uint64_t *)c.page, rc == ZERO_WRITE ? 0x77 :
		       rc == RO_PAGE ? 42 : 1);
	kf_vm_destroy(vm);
}

int main(void)
{
	kt_require_series();
	test_uffd(false, false);
	test_uffd(false, true);
	test_uffd(true, false);
	test_uffd(true, true);
	test_readonly(RO_PAGE);
	test_readonly(ZERO_READ);
	test_readonly(ZERO_WRITE);
	test_readonly(NEVER_TOUCHED);
	TEST_PASS("one exit per missing page, no userfaultfd wait, contents as installed; zero and new pages served without exits, read-only pages exit on writes until writable");
}
