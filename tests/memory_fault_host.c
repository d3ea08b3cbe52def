// SPDX-License-Identifier: MIT
/*
 * The exit contract on the host's own KVM.
 *
 * A real KVM_EXIT_MEMORY_FAULT: on the stock kernels seen here the one way
 * to get it is a guest_memfd memslot whose mapping was unmapped and whose
 * file was closed while the slot stayed.  The decoded fault must carry the
 * page's gpa and reach the memory_fault handler; a handler that does not
 * resolve it trips the repeated-fault guard instead of spinning forever.
 * A PROT_NONE page gives an EFAULT without annotation: an error, not a
 * fault.
 */
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

#include "orphan_slot.h"

#define REGION_SIZE (2ULL << 20)
#define TOUCH_OFFSET 0x3008ULL

static KF_GUEST void guest_write(uint64_t addr)
{
	*(volatile uint64_t *)addr = 5;
}

static unsigned int nr_handled;
static uint64_t handled_gpa;

static int count_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	(void)vcpu;
	nr_handled++;
	handled_gpa = f->gpa;
	TEST_ASSERT(f->size >= KF_PAGE_SIZE, "size 0x%llx",
		    (unsigned long long)f->size);
	TEST_ASSERT_EQ(f->poison, 0);
	return 0;	/* "resolved", though nothing was mapped */
}


static void test_real_exit_39(void)
{
	struct kf_vcpu_ops ops = { .memory_fault = count_fault };
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	struct kf_exit exit;
	uint64_t gpa;
	int ret;

	TEST_OK(kf_vm_create(&vm));
	gpa = kf_vm_free_gpa(vm);
	if (add_orphaned_guest_memfd_slot(vm, gpa, REGION_SIZE))
		kf_test_skip("no guest_memfd with MMAP and INIT_SHARED here: the host cannot produce KVM_EXIT_MEMORY_FAULT");
	TEST_OK(kf_vcpu_add(vm, 0, guest_write, gpa + TOUCH_OFFSET, &vcpu));

	/* One KVM_RUN, decoded by hand. */
	kf_vcpu_run_once(vcpu, &exit);
	TEST_ASSERT_EQ(exit.kind, KF_EXIT_MEMORY_FAULT);
	TEST_ASSERT_EQ(exit.err, EFAULT);
	TEST_ASSERT_EQ(exit.fault.gpa, gpa + KF_ALIGN_DOWN(TOUCH_OFFSET, KF_PAGE_SIZE));
	TEST_ASSERT_EQ(exit.fault.private_mem, 0);

	/* The run loop hands it to the handler, which never resolves it. */
	ret = kf_vcpu_run(vcpu, &ops);
	TEST_ASSERT_EQ(ret, -ELOOP);
	TEST_ASSERT_EQ(nr_handled, KF_DEFAULT_MAX_REPEATED_FAULTS);
	TEST_ASSERT_EQ(handled_gpa, exit.fault.gpa);
	TEST_ASSERT(strstr(kf_vcpu_errmsg(vcpu), "without progress"),
		    "message: %s", kf_vcpu_errmsg(vcpu));
	printf("exit 39: %s\n", kf_vcpu_errmsg(vcpu));
	kf_vm_destroy(vm);
}

static void test_unannotated_efault(void)
{
	struct kf_vcpu_ops ops = { .memory_fault = count_fault };
	struct kf_region r = { .size = REGION_SIZE, .backing = KF_BACKING_ANON };
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	struct kf_exit exit;

	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	TEST_ASSERT(!mprotect(ms->hva, REGION_SIZE, PROT_NONE), "mprotect: %m");
	TEST_OK(kf_vcpu_add(vm, 0, guest_write, r.gpa + TOUCH_OFFSET, &vcpu));

	kf_vcpu_run_once(vcpu, &exit);
	if (exit.kind == KF_EXIT_MEMORY_FAULT) {
		/* A kernel that annotates (ours, in the rig) */
		TEST_ASSERT_EQ(exit.fault.gpa, r.gpa + 0x3000);
		TEST_ASSERT_EQ(exit.fault.access, KF_ACCESS_WRITE);
	} else {
		TEST_ASSERT_EQ(exit.kind, KF_EXIT_ERROR);
		TEST_ASSERT_EQ(exit.err, EFAULT);
		/* the run loop reports an error, the handler is not called */
		nr_handled = 0;
		TEST_ASSERT_EQ(kf_vcpu_run(vcpu, &ops), -EFAULT);
		TEST_ASSERT_EQ(nr_handled, 0);
		TEST_ASSERT(strstr(kf_vcpu_errmsg(vcpu), "no memory_fault annotation"),
			    "message: %s", kf_vcpu_errmsg(vcpu));
	}
	kf_vm_destroy(vm);
}

int main(void)
{
	kf_test_require_kvm();
	test_unannotated_efault();
	test_real_exit_39();
	TEST_PASS("exit 39 decoded and guarded; unannotated EFAULT is an error");
}
