/* SPDX-License-Identifier: MIT */
/* KVM/arm64 register ids and the UAPI newer than Debian 12's headers. */
#ifndef KVMFAULT_LIB_ARM64_H
#define KVMFAULT_LIB_ARM64_H

#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

#define KF_ARM64_CORE_REG(name) \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
	 KVM_REG_ARM_CORE_REG(name))

#define KF_ARM64_SCTLR_EL1	ARM64_SYS_REG(3, 0, 1, 0, 0)
#define KF_ARM64_CPACR_EL1	ARM64_SYS_REG(3, 0, 1, 0, 2)
#define KF_ARM64_TTBR0_EL1	ARM64_SYS_REG(3, 0, 2, 0, 0)
#define KF_ARM64_TCR_EL1	ARM64_SYS_REG(3, 0, 2, 0, 2)
#define KF_ARM64_MAIR_EL1	ARM64_SYS_REG(3, 0, 10, 2, 0)
#define KF_ARM64_VBAR_EL1	ARM64_SYS_REG(3, 0, 12, 0, 0)
#define KF_ARM64_TPIDR_EL1	ARM64_SYS_REG(3, 0, 13, 0, 4)

/* KVM_ARM_SET_COUNTER_OFFSET (Linux 6.4) */
#define KF_ARM64_CAP_COUNTER_OFFSET 227
struct kf_arm64_counter_offset {
	uint64_t counter_offset;
	uint64_t reserved;
};
#define KF_ARM64_SET_COUNTER_OFFSET \
	_IOW(KVMIO, 0xb5, struct kf_arm64_counter_offset)

#endif
