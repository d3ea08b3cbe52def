// SPDX-License-Identifier: MIT
/*
 * Hardware-poisoned guest memory (<kvmfault/poison.h>), poisoned for real
 * with MADV_HWPOISON (CONFIG_MEMORY_FAILURE, the rig kernels of 6.12, x86
 * and arm64):
 *
 * - no policy: the guest's access kills the process with SIGBUS, as before
 *   (checked in a child);
 * - KF_POISON_STOP: the vCPU stops with -EHWPOISON and a message naming
 *   the guest physical page; a healthy page next to it reads fine;
 * - KF_POISON_INJECT_MCE: on x86 the guest takes #MC, and the vCPU's bank
 *   holds an uncorrected, valid error at that guest physical address; on
 *   arm64 the guest takes a synchronous external abort on its access
 *   (ESR: a data abort, FSC 0x10) with FAR the address it accessed.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kvmfault/poison.h>
#if defined(__x86_64__)
#include <kvmfault/x86/processor.h>
#endif

#include "kernel_common.h"

#define PAGES 4
#define POISONED 2	/* the page that gets poisoned */

static KF_GUEST void guest_read(uint64_t gpa)
{
	GUEST_ASSERT_EQ(*(volatile uint64_t *)gpa, kt_pattern(gpa, 0));
	GUEST_SYNC(1);
	GUEST_ASSERT_EQ(*(volatile uint64_t *)(gpa + POISONED * KF_PAGE_SIZE),
			kt_pattern(gpa + POISONED * KF_PAGE_SIZE, 0));
}

static volatile sig_atomic_t madvise_sigbus;

static void note_sigbus(int sig)
{
	(void)sig;
	madvise_sigbus = 1;
}

/*
 * MADV_HWPOISON also reports the poison to the caller at once (SIGBUS, as
 * if it had consumed it): take that one here, so that what the test sees is
 * the guest's access.
 */
static int poison_page(void *page)
{
	struct sigaction sa = { .sa_handler = note_sigbus }, old;
	int ret;

	sigemptyset(&sa.sa_mask);
	TEST_ASSERT(!sigaction(SIGBUS, &sa, &old), "sigaction: %m");
	ret = madvise(page, KF_PAGE_SIZE, MADV_HWPOISON);
	TEST_ASSERT(!sigaction(SIGBUS, &old, NULL), "sigaction: %m");
	return ret;
}

/* A VM with PAGES pages of guest memory, page POISONED poisoned. */
static struct kf_vm *poisoned_vm(enum kf_poison_policy policy, uint64_t *gpa,
				 struct kf_vcpu **vcpu)
{
	struct kf_region r = { .size = PAGES * KF_PAGE_SIZE,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	const struct kf_memslot *ms;
	struct kf_vm *vm;
	unsigned int i;

	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_vm_set_poison_policy(vm, policy));
	r.gpa = *gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	for (i = 0; i < PAGES; i++)
		kt_fill_page((uint8_t *)ms->hva + i * KF_PAGE_SIZE,
			     r.gpa + i * KF_PAGE_SIZE);
	if (poison_page((uint8_t *)ms->hva + POISONED * KF_PAGE_SIZE)) {
		int err = errno;

		kf_vm_destroy(vm);
		if (err == EINVAL || err == EPERM || err == ENOSYS)
			kf_test_skip("MADV_HWPOISON: %s (no CONFIG_MEMORY_FAILURE, or not root)",
				     strerror(err));
		TEST_ASSERT(0, "MADV_HWPOISON: %s", strerror(err));
	}
	TEST_OK(kf_vcpu_add(vm, 0, guest_read, r.gpa, vcpu));
	return vm;
}

static int count_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	(void)vcpu;
	TEST_ASSERT_EQ(uc->args[0], 1);
	return 0;
}

/*
 * In a child: a VM with policy, then the guest's access to the poisoned
 * page, or with host_access the VMM's own; the child must die of SIGBUS.
 */
static void expect_sigbus_death(enum kf_poison_policy policy, bool host_access,
				const char *what)
{
	struct kf_vcpu_ops ops = { .sync = count_sync };
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	uint64_t gpa;
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork: %m");
	if (!pid) {
		vm = poisoned_vm(policy, &gpa, &vcpu);
		if (host_access)
			(void)*(volatile uint64_t *)kf_vm_gpa_to_hva(vm, gpa + POISONED * KF_PAGE_SIZE);
		else
			kf_vcpu_run(vcpu, &ops);
		kf_vm_destroy(vm);
		_exit(0);	/* not reached: SIGBUS */
	}
	TEST_ASSERT_EQ(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == KF_TEST_SKIP)
		kf_test_skip("MADV_HWPOISON does not work here");
	TEST_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS,
		    "%s: the VMM must die of SIGBUS: status 0x%x", what, status);
	printf("%s: killed by SIGBUS\n", what);
}

static void test_stop(void)
{
	struct kf_vcpu_ops ops = { .sync = count_sync };
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	const char *msg;
	char want[64];
	uint64_t gpa;

	vm = poisoned_vm(KF_POISON_STOP, &gpa, &vcpu);
	TEST_ASSERT_EQ(kf_vcpu_run(vcpu, &ops), -EHWPOISON);
	snprintf(want, sizeof(want), "0x%llx",
		 (unsigned long long)(gpa + POISONED * KF_PAGE_SIZE));
	msg = kf_vcpu_errmsg(vcpu);
	TEST_ASSERT(strstr(msg, "hardware-poisoned") && strstr(msg, want),
		    "message names %s: %s", want, msg);
	/* the healthy page was read */
	TEST_ASSERT_EQ(kf_test_counters(vcpu).nr_ucalls, 1);
	printf("stop: %s\n", msg);
	kf_vm_destroy(vm);
}

#if defined(__x86_64__)
static uint64_t get_msr(struct kf_vcpu *vcpu, uint32_t index)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry entry;
	} msrs = { .hdr.nmsrs = 1, .entry.index = index };

	TEST_ASSERT_EQ(ioctl(kf_vcpu_fd(vcpu), KVM_GET_MSRS, &msrs), 1);
	return msrs.entry.data;
}

static void test_inject_mce(void)
{
	struct kf_vcpu_ops ops = { .sync = count_sync };
	uint64_t gpa, status, want = KF_X86_MCI_STATUS_VAL | KF_X86_MCI_STATUS_UC |
				      KF_X86_MCI_STATUS_ADDRV | KF_X86_MCI_STATUS_AR;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	int ret;
	int kvm_fd = kf_kvm_open();
	long mce;

	TEST_ASSERT(kvm_fd >= 0, "/dev/kvm: %s", kf_error());
	mce = kf_check_cap(kvm_fd, KVM_CAP_MCE);
	close(kvm_fd);
	if (mce <= 0) {
		printf("inject: not run, no KVM_CAP_MCE\n");
		return;
	}
	vm = poisoned_vm(KF_POISON_INJECT_MCE, &gpa, &vcpu);
	ret = kf_vcpu_run(vcpu, &ops);
	/* The guest runtime's #MC handler reports the exception. */
	TEST_ASSERT(ret < 0 && strstr(kf_vcpu_errmsg(vcpu), "vector 18"),
		    "the guest took #MC: %d, %s", ret, kf_vcpu_errmsg(vcpu));
	status = get_msr(vcpu, KF_X86_MSR_MC_STATUS(KF_X86_MCE_BANK));
	TEST_ASSERT((status & want) == want, "MC%d_STATUS 0x%llx lacks 0x%llx",
		    KF_X86_MCE_BANK, (unsigned long long)status,
		    (unsigned long long)want);
	TEST_ASSERT_EQ(get_msr(vcpu, KF_X86_MSR_MC_ADDR(KF_X86_MCE_BANK)),
		       gpa + POISONED * KF_PAGE_SIZE);
	TEST_ASSERT(get_msr(vcpu, KF_X86_MSR_MCG_STATUS) & KF_X86_MCG_STATUS_MCIP,
		    "MCG_STATUS.MCIP");
	printf("inject: %s; MC%d_STATUS 0x%llx\n", kf_vcpu_errmsg(vcpu),
	       KF_X86_MCE_BANK, (unsigned long long)status);
	kf_vm_destroy(vm);
}
#else
static void test_inject_mce(void)
{
	struct kf_vcpu_ops ops = { .sync = count_sync };
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	char want[96];
	uint64_t gpa;
	int kvm_fd = kf_kvm_open();
	long dabt;
	int ret;

	TEST_ASSERT(kvm_fd >= 0, "/dev/kvm: %s", kf_error());
	dabt = kf_check_cap(kvm_fd, KVM_CAP_ARM_INJECT_EXT_DABT);
	close(kvm_fd);
	if (dabt <= 0) {
		printf("inject: not run, no KVM_CAP_ARM_INJECT_EXT_DABT\n");
		return;
	}
	vm = poisoned_vm(KF_POISON_INJECT_MCE, &gpa, &vcpu);
	ret = kf_vcpu_run(vcpu, &ops);
	/*
	 * The guest's vector table reports the abort: a data abort at the
	 * current EL (EC 0x25, IL) with FSC 0x10, synchronous external abort,
	 * at the address the guest read (identity-mapped).
	 */
	snprintf(want, sizeof(want), "ESR 0x96000010, FAR 0x%llx",
		 (unsigned long long)(gpa + POISONED * KF_PAGE_SIZE));
	TEST_ASSERT(ret < 0 && strstr(kf_vcpu_errmsg(vcpu), "data abort (EC 0x25") &&
		    strstr(kf_vcpu_errmsg(vcpu), want),
		    "the guest took an external abort (%s): %d, %s", want, ret,
		    kf_vcpu_errmsg(vcpu));
	/* the SYNC after the healthy page, then the exception report */
	TEST_ASSERT_EQ(kf_test_counters(vcpu).nr_ucalls, 2);
	printf("inject: %s\n", kf_vcpu_errmsg(vcpu));
	kf_vm_destroy(vm);
}
#endif

int main(void)
{
	kf_test_require_kvm();
	expect_sigbus_death(KF_POISON_DEFAULT, false,
			    "no policy, the guest's access (as before)");
	expect_sigbus_death(KF_POISON_STOP, true,
			    "a policy, the VMM's own access");
	test_stop();
	test_inject_mce();
	TEST_PASS("poisoned guest page: SIGBUS without a policy, stop, injected error");
}
