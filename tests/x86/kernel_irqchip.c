// SPDX-License-Identifier: MIT
/*
 * A VM as QEMU makes them, with an in-kernel irqchip, whose guest runs
 * with interrupts enabled (IF=1), touching a page whose host memory is
 * missing: KVM_RUN must return the annotated EFAULT (exit 39, the page's
 * gpa, the access), both when userfaultfd refuses the page (SIGBUS mode)
 * and on an exit-on-missing slot.  Measured on the first 6.1 series: with
 * the irqchip and IF=1 the hard error was queued as an async page fault
 * whose worker failed too, and KVM_RUN retried it forever (this test then
 * hangs until the runner's timeout).  A bug fix has no capability to test
 * for: the fix comes before KVM_CAP_EXIT_ON_MISSING in both series (6.12
 * and 6.1), so the test runs on kernels with the whole series.
 */
#include <sys/mman.h>

#include "../kernel_common.h"

#define REGION_SIZE (2ULL << 20)
#define PAGE_OFF 0x3000ULL
#define X86_EFLAGS_IF (1ULL << 9)

struct ctx {
	int uffd;
	uint8_t *page_hva;
	uint8_t contents[KF_PAGE_SIZE];
	unsigned int nr_faults;
	struct kf_memory_fault fault;
	uint64_t synced;
};

static KF_GUEST void guest_read(uint64_t addr)
{
	GUEST_SYNC_ARGS(1, *(volatile uint64_t *)addr, 0, 0);
}

static int on_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	struct ctx *c = kf_vcpu_opaque(vcpu);

	c->nr_faults++;
	c->fault = *f;
	kt_uffd_copy(c->uffd, c->page_hva, c->contents);
	return 0;
}

static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	struct ctx *c = kf_vcpu_opaque(vcpu);

	c->synced = uc->args[1];
	return 0;
}

static void set_interrupts_enabled(struct kf_vcpu *vcpu)
{
	int fd = kf_vcpu_fd(vcpu);
	struct kvm_regs regs;

	TEST_ASSERT(!ioctl(fd, KVM_GET_REGS, &regs), "KVM_GET_REGS: %s",
		    strerror(errno));
	regs.rflags |= X86_EFLAGS_IF;
	TEST_ASSERT(!ioctl(fd, KVM_SET_REGS, &regs), "KVM_SET_REGS: %s",
		    strerror(errno));
}

static void test_missing(bool exit_on_missing)
{
	struct kf_vcpu_ops ops = { .memory_fault = on_fault, .sync = on_sync };
	struct kf_region r = { .size = REGION_SIZE, .backing = KF_BACKING_ANON };
	const char *what = exit_on_missing ? "exit-on-missing slot" :
					     "userfaultfd in SIGBUS mode";
	static struct ctx c;
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	uint64_t gpa;

	memset(&c, 0, sizeof(c));
	TEST_OK(kf_vm_create(&vm));
	TEST_ASSERT(!ioctl(kf_vm_fd(vm), KVM_CREATE_IRQCHIP, 0),
		    "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	r.gpa = kf_vm_free_gpa(vm);
	r.flags = exit_on_missing ? KVM_MEM_EXIT_ON_MISSING : 0;
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	gpa = r.gpa + PAGE_OFF;
	c.page_hva = (uint8_t *)ms->hva + PAGE_OFF;
	kt_fill_page(c.contents, gpa);
	/* SIGBUS mode refuses the page to KVM; in plain MISSING mode KVM would
	 * wait in userfaultfd, which exit-on-missing must never do. */
	c.uffd = kt_uffd_open(exit_on_missing ? 0 : UFFD_FEATURE_SIGBUS);
	kt_uffd_register(c.uffd, ms->hva, ms->size, UFFDIO_REGISTER_MODE_MISSING);

	TEST_OK(kf_vcpu_add(vm, 0, guest_read, gpa, &vcpu));
	set_interrupts_enabled(vcpu);
	kf_vcpu_set_opaque(vcpu, &c);
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "%s: %s", what, kf_vcpu_errmsg(vcpu));
	printf("irqchip, IF=1, %s: exit 39 gpa 0x%llx size 0x%llx flags 0x%llx\n",
	       what, (unsigned long long)c.fault.gpa,
	       (unsigned long long)c.fault.size,
	       (unsigned long long)c.fault.raw_flags);
	kt_assert_one_fault(vm, c.nr_faults, &c.fault, gpa,
			    KVM_MEMORY_EXIT_FLAG_READ);
	TEST_ASSERT_EQ(c.synced, kt_pattern(gpa, 0));
	kf_vm_destroy(vm);
	close(c.uffd);
}

int main(void)
{
	kt_require_series();
	test_missing(false);
	test_missing(true);
	TEST_PASS("in-kernel irqchip with IF=1: missing pages give the annotated EFAULT");
}
