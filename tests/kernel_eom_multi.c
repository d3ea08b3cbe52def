// SPDX-License-Identifier: MIT
/*
 * KVM_MEM_EXIT_ON_MISSING with several vCPUs faulting at once (kvmfault
 * kernel series).  Each of NR_VCPUS vCPUs first walks the same
 * SHARED pages, then PRIVATE pages of its own, in a slot over memory
 * registered with a blocking userfaultfd.  Every vCPU thread resolves its
 * own exits with UFFDIO_COPY (EEXIST when another vCPU won the race).
 * Expected: no vCPU ever waits in the userfaultfd; each private page exits
 * exactly once; each shared page exits at most once per vCPU and at least
 * once in all; every vCPU reads exactly the installed contents.
 */
#include <sys/mman.h>

#include "kernel_common.h"

#define NR_VCPUS 4
#define SHARED 32ULL
#define PRIVATE 32ULL
#define NR_PAGES (SHARED + NR_VCPUS * PRIVATE)
#define REGION_SIZE (2ULL << 20)

static struct {
	uint8_t *hva;
	uint64_t gpa;
	int uffd;
	unsigned int exits[NR_VCPUS][NR_PAGES];
	unsigned int eexist;
} g;

struct guest_args {
	uint64_t gpa;
	uint64_t first_private;
};

static KF_GUEST void check_page(uint64_t gpa)
{
	volatile uint64_t *q = (volatile uint64_t *)gpa;

	GUEST_ASSERT_EQ(q[0], kt_pattern(gpa, 0));
	GUEST_ASSERT_EQ(q[511], kt_pattern(gpa, 511));
}

static KF_GUEST void guest_main(uint64_t gpa)
{
	uint64_t id = kf_guest_vcpu_id(), i;

	for (i = 0; i < SHARED; i++)
		check_page(gpa + i * KF_PAGE_SIZE);
	for (i = 0; i < PRIVATE; i++)
		check_page(gpa + (SHARED + id * PRIVATE + i) * KF_PAGE_SIZE);
}

static int install(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	uint8_t page[KF_PAGE_SIZE] __attribute__((aligned(4096)));
	uint64_t i = (f->gpa - g.gpa) / KF_PAGE_SIZE;

	TEST_ASSERT(f->gpa >= g.gpa && i < NR_PAGES, "vCPU %u: fault at 0x%llx",
		    kf_vcpu_id(vcpu), (unsigned long long)f->gpa);
	TEST_ASSERT_EQ(f->size, KF_PAGE_SIZE);
	TEST_ASSERT_EQ(f->raw_flags, KVM_MEMORY_EXIT_FLAG_READ);
	g.exits[kf_vcpu_id(vcpu)][i]++;
	kt_fill_page(page, f->gpa);
	if (kt_uffd_copy(g.uffd, g.hva + i * KF_PAGE_SIZE, page) == -EEXIST)
		__atomic_add_fetch(&g.eexist, 1, __ATOMIC_SEQ_CST);
	return 0;
}

int main(void)
{
	struct kf_vcpu_ops ops = { .memory_fault = install };
	struct kf_region r = {
		.size = REGION_SIZE, .flags = KVM_MEM_EXIT_ON_MISSING,
		.backing = KF_BACKING_ANON,
	};
	struct kt_uffd_server srv;
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	unsigned int v, total = 0, shared_total = 0;
	uint64_t i;
	int ret;

	kt_require_series();
	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	g.hva = ms->hva;
	g.gpa = r.gpa;
	g.uffd = kt_uffd_open(0);
	kt_uffd_register(g.uffd, ms->hva, ms->size, UFFDIO_REGISTER_MODE_MISSING);
	kt_uffd_server_start(&srv, g.uffd, ms->hva, r.gpa, ms->size);

	for (v = 0; v < NR_VCPUS; v++)
		TEST_OK(kf_vcpu_add(vm, v, guest_main, r.gpa, &vcpu));
	ret = kf_vm_run_all(vm, &ops);
	kt_uffd_server_stop(&srv);
	if (ret)
		kf_test_fail(__FILE__, __LINE__, "run: %s", kf_error());

	TEST_ASSERT(srv.nr_events == 0, "a vCPU waited in userfaultfd %u times",
		    srv.nr_events);
	for (i = 0; i < NR_PAGES; i++) {
		unsigned int n = 0;

		for (v = 0; v < NR_VCPUS; v++) {
			TEST_ASSERT(g.exits[v][i] <= 1, "vCPU %u exited %u times for page %llu",
				    v, g.exits[v][i], (unsigned long long)i);
			n += g.exits[v][i];
		}
		total += n;
		if (i < SHARED) {
			TEST_ASSERT(n >= 1, "shared page %llu never exited",
				    (unsigned long long)i);
			shared_total += n;
		} else {
			v = (i - SHARED) / PRIVATE;
			TEST_ASSERT(n == 1 && g.exits[v][i] == 1,
				    "private page %llu of vCPU %u: %u exits",
				    (unsigned long long)i, v, n);
		}
	}
	printf("%d vCPUs: %u exits for %llu pages (shared pages: %u exits, %u lost races)\n",
	       NR_VCPUS, total, NR_PAGES, shared_total, g.eexist);
	kf_vm_destroy(vm);
	close(g.uffd);
	TEST_PASS("%d vCPUs resolved their own faults concurrently, none waited in userfaultfd",
		  NR_VCPUS);
}
