/* SPDX-License-Identifier: MIT */
/*
 * Guest-to-host calls.  Each vCPU has a struct kf_ucall in its per-vCPU
 * area; the guest fills it and traps to the host (x86: a write to
 * KF_ARCH_UCALL_PORT), and the host reads it at that exit.  Strings (file,
 * expression, format) are pointers into the program image, which the guest
 * runs at the same addresses as the host, so the host reads them from its
 * own memory.
 */
#ifndef KVMFAULT_UCALL_H
#define KVMFAULT_UCALL_H

#include <stdint.h>

#define KF_UCALL_MAX_ARGS 4

enum kf_ucall_cmd {
	KF_UCALL_NONE,
	KF_UCALL_SYNC,		/* args[0]: stage, args[1..]: values */
	KF_UCALL_DONE,
	KF_UCALL_ABORT,		/* a failed guest assertion */
	KF_UCALL_PRINT,		/* fmt with args[] as unsigned long long */
	KF_UCALL_EXCEPTION,	/* vector, error code, RIP, CR2 */
};

/* Assertion kinds for KF_UCALL_ABORT */
enum kf_guest_assert {
	KF_ASSERT_TRUE,		/* expr was false */
	KF_ASSERT_EQ,		/* args[0] == args[1] failed */
	KF_ASSERT_NE,
};

struct kf_ucall {
	uint64_t cmd;
	uint64_t args[KF_UCALL_MAX_ARGS];
	uint64_t assert_kind;
	const char *file;
	uint64_t line;
	const char *expr;	/* the assertion's text, or a PRINT format */
};

/* Per-vCPU guest area, at the guest's GS base. */
struct kf_guest_vcpu {
	struct kf_guest_vcpu *self;
	uint64_t id;
	uint64_t nr_vcpus;
	uint64_t reserved;
	struct kf_ucall ucall;
};

#endif
