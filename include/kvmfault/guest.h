/* SPDX-License-Identifier: MIT */
/*
 * The guest side: helpers for guest C code running in a kvmfault VM.
 *
 * Guest code runs at CPL3 (x86) or EL1 (arm64) with no libc: call only
 * KF_GUEST functions.  Mark every guest function KF_GUEST so that
 * sanitizers and the stack protector (which would touch host-only memory)
 * leave it alone.
 */
#ifndef KVMFAULT_GUEST_H
#define KVMFAULT_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kvmfault/compiler.h>
#include <kvmfault/hash.h>
#include <kvmfault/ucall.h>

/* The architecture's part: kf_arch_guest_self(), kf_arch_guest_ucall(),
 * kf_arch_guest_cycles(), kf_arch_guest_hypercall(), kf_arch_host_cycles(). */
#if defined(__x86_64__)
#include <kvmfault/x86/guest.h>
#elif defined(__aarch64__)
#include <kvmfault/arm64/guest.h>
#else
#error "kvmfault: no guest runtime for this architecture (see include/kvmfault/x86/guest.h)"
#endif

KF_GUEST_INLINE struct kf_guest_vcpu *kf_guest_self(void)
{
	return kf_arch_guest_self();
}

KF_GUEST_INLINE uint64_t kf_guest_vcpu_id(void)
{
	return kf_guest_self()->id;
}

/* A cycle counter the guest can read (for timing inside the guest); the
 * host reads the same one with kf_host_cycles(). */
KF_GUEST_INLINE uint64_t kf_guest_cycles(void)
{
	return kf_arch_guest_cycles();
}

static inline uint64_t kf_host_cycles(void)
{
	return kf_arch_host_cycles();
}

/*
 * Ask the VMM to make [gpa, gpa + npages pages) private or shared
 * (KVM_HC_MAP_GPA_RANGE; <kvmfault/private_mem.h>): 0 when done, else a
 * negative KVM error: -KVM_EINVAL (22) for a range the VM cannot convert,
 * the VMM policy's error for a refusal, -KVM_ENOSYS (1000) when the VMM
 * did not enable conversions.
 */
KF_GUEST_INLINE int64_t kf_guest_map_gpa_range(uint64_t gpa, uint64_t npages,
					       bool to_private)
{
	return kf_arch_guest_hypercall(12 /* KVM_HC_MAP_GPA_RANGE */, gpa,
				       npages, to_private ? 1 << 4 : 0);
}

KF_GUEST_INLINE void kf_guest_ucall_out(void)
{
	kf_arch_guest_ucall();
}

KF_GUEST_INLINE void kf_guest_ucall(uint64_t cmd, uint64_t a0, uint64_t a1,
				    uint64_t a2, uint64_t a3)
{
	struct kf_ucall *uc = &kf_guest_self()->ucall;

	uc->cmd = cmd;
	uc->args[0] = a0;
	uc->args[1] = a1;
	uc->args[2] = a2;
	uc->args[3] = a3;
	kf_guest_ucall_out();
}

KF_GUEST_INLINE void kf_guest_abort(uint64_t kind, const char *file,
				    uint64_t line, const char *expr,
				    uint64_t a0, uint64_t a1)
{
	struct kf_ucall *uc = &kf_guest_self()->ucall;

	uc->assert_kind = kind;
	uc->file = file;
	uc->line = line;
	uc->expr = expr;
	kf_guest_ucall(KF_UCALL_ABORT, a0, a1, 0, 0);
	for (;;)	/* the host never re-enters an aborted vCPU */
		kf_guest_ucall_out();
}

#define KF_GUEST_ARG(x) ((uint64_t)(x))

#define GUEST_SYNC(stage) kf_guest_ucall(KF_UCALL_SYNC, (stage), 0, 0, 0)
#define GUEST_SYNC_ARGS(stage, a1, a2, a3) \
	kf_guest_ucall(KF_UCALL_SYNC, (stage), KF_GUEST_ARG(a1), \
		       KF_GUEST_ARG(a2), KF_GUEST_ARG(a3))
#define GUEST_DONE() kf_guest_ucall(KF_UCALL_DONE, 0, 0, 0, 0)

/* Up to four integer arguments; the host prints with its own printf. */
#define GUEST_PRINTF(fmt, a0, a1, a2, a3) do {				\
	kf_guest_self()->ucall.expr = (fmt);				\
	kf_guest_ucall(KF_UCALL_PRINT, KF_GUEST_ARG(a0),		\
		       KF_GUEST_ARG(a1), KF_GUEST_ARG(a2),		\
		       KF_GUEST_ARG(a3));				\
} while (0)

#define GUEST_ASSERT(cond) do {						\
	if (!(cond))							\
		kf_guest_abort(KF_ASSERT_TRUE, __FILE__, __LINE__,	\
			       #cond, 0, 0);				\
} while (0)

#define GUEST_ASSERT_EQ(seen, expected) do {				\
	uint64_t __s = KF_GUEST_ARG(seen);				\
	uint64_t __e = KF_GUEST_ARG(expected);				\
	if (__s != __e)							\
		kf_guest_abort(KF_ASSERT_EQ, __FILE__, __LINE__,	\
			       #seen " == " #expected, __s, __e);	\
} while (0)

#define GUEST_ASSERT_NE(seen, unexpected) do {				\
	uint64_t __s = KF_GUEST_ARG(seen);				\
	uint64_t __u = KF_GUEST_ARG(unexpected);			\
	if (__s == __u)							\
		kf_guest_abort(KF_ASSERT_NE, __FILE__, __LINE__,	\
			       #seen " != " #unexpected, __s, __u);	\
} while (0)

#endif
