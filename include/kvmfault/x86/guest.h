/* SPDX-License-Identifier: MIT */
/*
 * The x86-64 side of the guest runtime: what <kvmfault/guest.h> needs
 * from the architecture.  An arm64 port puts the same few definitions in
 * include/kvmfault/arm64/guest.h (a per-vCPU pointer register, a trapping
 * MMIO or HVC ucall, the virtual counter).
 *
 *   KF_ARCH_UCALL_PORT       the I/O port a ucall writes to (KVM_EXIT_IO)
 *   kf_arch_guest_self()     this vCPU's struct kf_guest_vcpu (%gs:0)
 *   kf_arch_guest_ucall()    trap to the host: the ucall is ready
 *   kf_arch_guest_cycles()   a cycle counter readable at CPL3 (rdtsc)
 *   kf_arch_guest_hypercall() a KVM hypercall (from CPL0, through a gate)
 *   kf_arch_host_cycles()    the same counter on the host
 */
#ifndef KVMFAULT_X86_GUEST_H
#define KVMFAULT_X86_GUEST_H

#include <stdint.h>

#include <kvmfault/compiler.h>

#define KF_ARCH_UCALL_PORT 0x4b46

struct kf_guest_vcpu;

KF_GUEST_INLINE struct kf_guest_vcpu *kf_arch_guest_self(void)
{
	struct kf_guest_vcpu *self;

	__asm__ volatile("mov %%gs:0, %0" : "=r"(self));
	return self;
}

KF_GUEST_INLINE void kf_arch_guest_ucall(void)
{
	__asm__ volatile("outb %%al, %%dx"
			 : : "a"(0), "d"(KF_ARCH_UCALL_PORT) : "memory");
}

KF_GUEST_INLINE uint64_t kf_arch_guest_cycles(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi) : : "memory");
	return (uint64_t)hi << 32 | lo;
}

/* KVM's hypercall ABI; the gate's stub runs VMCALL/VMMCALL at CPL0. */
KF_GUEST_INLINE int64_t kf_arch_guest_hypercall(uint64_t nr, uint64_t a0,
						uint64_t a1, uint64_t a2)
{
	int64_t ret;

	__asm__ volatile("int $0x20"	/* KF_X86_HYPERCALL_VECTOR */
			 : "=a"(ret) : "a"(nr), "b"(a0), "c"(a1), "d"(a2)
			 : "memory");
	return ret;
}

static inline uint64_t kf_arch_host_cycles(void)
{
	return __builtin_ia32_rdtsc();
}

#endif
