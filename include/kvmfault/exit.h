/* SPDX-License-Identifier: MIT */
/*
 * The KVM_RUN exit contract.
 *
 * kvm_run.memory_fault is valid if and only if KVM_RUN returned -1 with
 * errno EFAULT or EHWPOISON *and* exit_reason is KVM_EXIT_MEMORY_FAULT.  For
 * any other errno exit_reason is stale: EINTR or EAGAIN (immediate_exit or a
 * signal) is an interruption, never a fault.  A successful KVM_RUN reports
 * its exit in exit_reason.  kf_exit_decode() is the one place that applies
 * these rules.
 */
#ifndef KVMFAULT_EXIT_H
#define KVMFAULT_EXIT_H

#include <stdbool.h>
#include <stdint.h>

#include <kvmfault/uapi.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

enum kf_exit_kind {
	KF_EXIT_REASON,		/* KVM_RUN succeeded: see exit_reason */
	KF_EXIT_MEMORY_FAULT,	/* annotated memory fault: see fault */
	KF_EXIT_INTERRUPTED,	/* EINTR/EAGAIN: signal or immediate_exit */
	KF_EXIT_ERROR,		/* any other failure: see err */
};

/* Access bits of a memory fault; arch-neutral, as in the UAPI. */
#define KF_ACCESS_READ  (1u << 0)
#define KF_ACCESS_WRITE (1u << 1)
#define KF_ACCESS_EXEC  (1u << 2)

struct kf_memory_fault {
	uint64_t gpa;
	uint64_t size;
	uint32_t access;	/* KF_ACCESS_*; 0 when the kernel gave none */
	bool private_mem;	/* KVM_MEMORY_EXIT_FLAG_PRIVATE */
	bool poison;		/* errno was EHWPOISON */
	uint64_t raw_flags;	/* memory_fault.flags as the kernel wrote it */
};

struct kf_exit {
	enum kf_exit_kind kind;
	uint32_t reason;	/* KF_EXIT_REASON: kvm_run.exit_reason */
	int err;		/* errno of a failed KVM_RUN, else 0 */
	struct kf_memory_fault fault;	/* KF_EXIT_MEMORY_FAULT only */
};

/* Decode the result of KVM_RUN: ret and errno as returned, run as mapped. */
void kf_exit_decode(int ret, int err, const struct kvm_run *run,
		    struct kf_exit *exit);

/* "IO", "MMIO", "MEMORY_FAULT", ... or "UNKNOWN(n)" in a static buffer. */
const char *kf_exit_reason_name(uint32_t reason);

/* "r-x" style text of access bits, in buf (at least 4 bytes). */
const char *kf_access_str(uint32_t access, char *buf);

/* A one-line description of an exit, in buf. */
const char *kf_exit_str(const struct kf_exit *exit, char *buf, size_t len);

KF_API_END

#endif
