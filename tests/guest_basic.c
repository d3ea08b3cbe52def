// SPDX-License-Identifier: MIT
/*
 * Guest C code runs at the library's guest privilege (CPL3 in long mode on
 * x86, EL1 on arm64) and reports to the host: SYNC
 * stages with values, a loop computed in the guest, and DONE when the guest
 * function returns.
 */
#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

static uint64_t guest_counter = 7;

static KF_GUEST void guest_main(uint64_t arg)
{
	uint64_t sum = 0, i;

	GUEST_SYNC_ARGS(1, arg, kt_guest_privilege(), kf_guest_vcpu_id());
	for (i = 1; i <= 1000000; i++)
		sum += i;
	GUEST_SYNC_ARGS(2, sum, guest_counter, 0);
	guest_counter++;
	GUEST_SYNC_ARGS(3, guest_counter, 0, 0);
}

static int stages;

static int host_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	(void)vcpu;
	switch (uc->args[0]) {
	case 1:
		TEST_ASSERT_EQ(uc->args[1], 0xabcdef);	/* the argument */
		TEST_ASSERT_EQ(uc->args[2], KT_GUEST_PRIVILEGE);
		TEST_ASSERT_EQ(uc->args[3], 0);		/* vCPU id */
		break;
	case 2:
		TEST_ASSERT_EQ(uc->args[1], 500000500000ULL);
		TEST_ASSERT_EQ(uc->args[2], 7);
		break;
	case 3:
		TEST_ASSERT_EQ(uc->args[1], 8);
		break;
	default:
		TEST_ASSERT(0, "unexpected stage %llu",
			    (unsigned long long)uc->args[0]);
	}
	TEST_ASSERT_EQ(uc->args[0], stages + 1);
	stages++;
	return 0;
}

int main(void)
{
	struct kf_vcpu_ops ops = { .sync = host_sync };
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;

	kf_test_require_kvm();
	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_vcpu_add(vm, 0, guest_main, 0xabcdef, &vcpu));
	TEST_OK(kf_vcpu_run(vcpu, &ops));
	TEST_ASSERT_EQ(stages, 3);
	/* The guest's writes stay in guest memory, not in the host's copy. */
	TEST_ASSERT_EQ(guest_counter, 7);
	TEST_OK(KF_SYNC_GLOBAL_FROM_GUEST(vm, guest_counter));
	TEST_ASSERT_EQ(guest_counter, 8);
	kf_vm_destroy(vm);
	TEST_PASS("guest ran at CPL3, 3 stages, returned to DONE");
}
