// SPDX-License-Identifier: MIT
/*
 * The VM's IPA size.  kf_vm_create() gives KVM's default of 40 bits (or
 * KVM's limit, KVM_CAP_ARM_VM_IPA_SIZE, when that is lower: KVM refuses
 * its default there), kf_vm_create_phys_bits() up to that limit and the
 * identity map's 48 bits.  In each, a region in the top 2 MiB of the
 * space is accepted and the guest reads and writes it, one past the end
 * is refused with a message; sizes out of range are refused.
 */
#include <string.h>
#include <sys/ioctl.h>

#include <kvmfault/arm64/processor.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

#define MAGIC 0x1ba5123ULL

static KF_GUEST void guest_top(uint64_t gpa)
{
	volatile uint64_t *p = (volatile uint64_t *)gpa;

	GUEST_ASSERT_EQ(*p, MAGIC);
	*p = ~MAGIC;
}

/* The guest uses the top of a bits-wide space; the space ends there. */
static void check_top(struct kf_vm *vm, unsigned int bits)
{
	struct kf_region r = { .size = 2ULL << 20, .backing = KF_BACKING_ANON,
			       .guest_memfd = -1 };
	struct kf_vcpu_ops ops = { 0 };
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;

	r.gpa = (1ULL << bits) - r.size;
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	*(uint64_t *)ms->hva = MAGIC;
	TEST_OK(kf_vcpu_add(vm, 0, guest_top, r.gpa, &vcpu));
	TEST_OK(kf_vcpu_run(vcpu, &ops));
	TEST_ASSERT_EQ(*(uint64_t *)ms->hva, ~MAGIC);
	r.gpa = 1ULL << bits;
	TEST_ASSERT_EQ(kf_vm_add_region(vm, &r, NULL), -EINVAL);
	printf("%u bits: the guest used 0x%llx; %s\n", bits,
	       (unsigned long long)(r.gpa - r.size), kf_error());
	kf_vm_destroy(vm);
}

int main(void)
{
	unsigned int bits, top;
	struct kf_vm *vm;
	int limit;

	kf_test_require_kvm();
	TEST_OK(kf_vm_create(&vm));
	limit = ioctl(kf_vm_fd(vm), KVM_CHECK_EXTENSION, KVM_CAP_ARM_VM_IPA_SIZE);
	if (limit <= 0) {
		kf_vm_destroy(vm);
		kf_test_skip("this KVM has no KVM_CAP_ARM_VM_IPA_SIZE: every VM has 40 bits");
	}
	bits = KF_MIN((unsigned int)limit, KF_ARM64_DEFAULT_IPA_BITS);
	top = KF_MIN((unsigned int)limit, (unsigned int)KF_ARM64_VA_BITS);
	printf("KVM's IPA limit: %d bits\n", limit);
	check_top(vm, bits);

	TEST_OK(kf_vm_create_phys_bits(&vm, top));
	check_top(vm, top);
	TEST_OK(kf_vm_create_phys_bits(&vm, 36));
	check_top(vm, 36);

	TEST_ASSERT_EQ(kf_vm_create_phys_bits(&vm, top + 1), -EINVAL);
	printf("%u bits: %s\n", top + 1, kf_error());
	TEST_ASSERT_EQ(kf_vm_create_phys_bits(&vm, 31), -EINVAL);
	TEST_ASSERT_EQ(kf_vm_create_phys_bits(&vm, 0), -EINVAL);
	TEST_PASS("the top 2 MiB of %u-bit (default), %u-bit and 36-bit VMs; sizes out of range refused",
		  bits, top);
}
