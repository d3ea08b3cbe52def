/* SPDX-License-Identifier: MIT */
/*
 * The arm64 side of the guest runtime: what <kvmfault/guest.h> needs from
 * the architecture (see include/kvmfault/x86/guest.h for the list).
 *
 *   KF_ARCH_UCALL_GPA        the MMIO address a ucall stores to (no
 *                            memslot there: KVM_EXIT_MMIO)
 *   kf_arch_guest_self()     this vCPU's struct kf_guest_vcpu (TPIDR_EL1)
 *   kf_arch_guest_cycles()   the virtual counter (CNTVCT_EL0)
 */
#ifndef KVMFAULT_ARM64_GUEST_H
#define KVMFAULT_ARM64_GUEST_H

#include <stdint.h>

#include <kvmfault/compiler.h>

/* 1 GiB - 2 MiB: below the test memory of kf_vm_free_gpa(), above the
 * system slot.  The whole 2 MiB block is Device memory in the guest. */
#define KF_ARCH_UCALL_GPA 0x3fe00000ULL

struct kf_guest_vcpu;

KF_GUEST_INLINE struct kf_guest_vcpu *kf_arch_guest_self(void)
{
	struct kf_guest_vcpu *self;

	__asm__ volatile("mrs %0, tpidr_el1" : "=r"(self));
	return self;
}

/* A single-register store: its abort carries a syndrome KVM can decode. */
KF_GUEST_INLINE void kf_arch_guest_ucall(void)
{
	__asm__ volatile("str xzr, [%0]"
			 : : "r"(KF_ARCH_UCALL_GPA) : "memory");
}

KF_GUEST_INLINE uint64_t kf_arch_guest_cycles(void)
{
	uint64_t v;

	__asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v) : : "memory");
	return v;
}

/*
 * KVM/arm64 has no KVM_HC_MAP_GPA_RANGE (no private memory): the answer
 * is the one a VMM without conversions gives, -KVM_ENOSYS.
 */
KF_GUEST_INLINE int64_t kf_arch_guest_hypercall(uint64_t nr, uint64_t a0,
						uint64_t a1, uint64_t a2)
{
	(void)nr; (void)a0; (void)a1; (void)a2;
	return -1000;
}

/* The same counter as the guest's: the library sets the VM's counter
 * offset to 0 where KVM allows it (KVM_CAP_COUNTER_OFFSET). */
static inline uint64_t kf_arch_host_cycles(void)
{
	return kf_arch_guest_cycles();
}

#endif
