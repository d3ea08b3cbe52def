/* SPDX-License-Identifier: MIT */
/*
 * The header every vCPU state blob starts with, whatever its architecture
 * (lib/x86/state.c, lib/arm64/state.c; <kvmfault/vcpu_state.h>).
 */
#ifndef KVMFAULT_LIB_VCPU_STATE_H
#define KVMFAULT_LIB_VCPU_STATE_H

#include <stddef.h>
#include <stdint.h>

#define KF_STATE_ARCH_X86_64 1
#define KF_STATE_ARCH_ARM64 2

struct kf_state_hdr {
	uint32_t magic;		/* KF_VCPU_STATE_MAGIC */
	uint16_t version;	/* KF_VCPU_STATE_VERSION */
	uint16_t arch;		/* KF_STATE_ARCH_* */
	uint32_t vcpu_id;
	uint32_t nr_items;	/* x86: sections; arm64: registers */
	uint32_t total_len;	/* the whole blob */
	uint32_t reserved;
};

/* A header for vcpu_id of this architecture; nr_items and total_len 0. */
struct kf_state_hdr kf_state_hdr_init(uint16_t arch, unsigned int vcpu_id);

/*
 * Check the header of a blob of len bytes (safe on arbitrary bytes): 0
 * with *h filled, or -errno with "vCPU state: ..." (too short, magic,
 * version, another architecture than arch, length, vCPU id).
 */
int kf_state_hdr_check(const void *blob, size_t len, uint16_t arch,
		       struct kf_state_hdr *h);

#endif
