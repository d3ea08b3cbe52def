// SPDX-License-Identifier: MIT
/*
 * The VM's IPA size is what KVM allows (KVM_CAP_ARM_VM_IPA_SIZE), up to
 * the 48 bits the library's identity map reaches, not KVM's default of 40:
 * a region at the top of that space is accepted and the guest reads and
 * writes it; one past the end is refused with a message.  (A host whose
 * limit is under 40 bits could create no VM with the default at all.)
 */
#include <string.h>
#include <sys/ioctl.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

#define MAGIC 0x1ba5123ULL

static KF_GUEST void guest_top(uint64_t gpa)
{
	volatile uint64_t *p = (volatile uint64_t *)gpa;

	GUEST_ASSERT_EQ(*p, MAGIC);
	*p = ~MAGIC;
}

int main(void)
{
	struct kf_region r = { .size = 2ULL << 20, .backing = KF_BACKING_ANON,
			       .guest_memfd = -1 };
	struct kf_vcpu_ops ops = { 0 };
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	unsigned int bits;
	int limit;

	kf_test_require_kvm();
	TEST_OK(kf_vm_create(&vm));
	limit = ioctl(kf_vm_fd(vm), KVM_CHECK_EXTENSION, KVM_CAP_ARM_VM_IPA_SIZE);
	if (limit <= 0)
		kf_test_skip("this KVM has no KVM_CAP_ARM_VM_IPA_SIZE: every VM has 40 bits");
	bits = KF_MIN((unsigned int)limit, 48u);
	printf("KVM's IPA limit %d bits; the VM has %u\n", limit, bits);

	r.gpa = (1ULL << bits) - r.size;
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	*(uint64_t *)ms->hva = MAGIC;
	TEST_OK(kf_vcpu_add(vm, 0, guest_top, r.gpa, &vcpu));
	TEST_OK(kf_vcpu_run(vcpu, &ops));
	TEST_ASSERT_EQ(*(uint64_t *)ms->hva, ~MAGIC);

	r.gpa = 1ULL << bits;
	TEST_ASSERT_EQ(kf_vm_add_region(vm, &r, NULL), -EINVAL);
	printf("a region at 0x%llx: %s\n", (unsigned long long)r.gpa, kf_error());
	kf_vm_destroy(vm);
	TEST_PASS("a region in the top 2 MiB of a %u-bit IPA space: the guest read and wrote it", bits);
}
