/* SPDX-License-Identifier: MIT */
/*
 * arm64 guest layout.  Guest code runs at EL1 (SP_EL1) with the MMU on:
 * guest memory is identity-mapped with 2 MiB blocks of Normal write-back
 * memory (4 KiB granule, 48-bit VA), page 0 left unmapped so that a guest
 * NULL dereference faults, and the ucall block mapped as Device memory.
 * In a VM with MTE (kf_vm_enable_mte()) the regions are Normal Tagged
 * memory and EL1 may access allocation tags (SCTLR_EL1.ATA).
 * Exceptions land in a vector table that reports them as
 * KF_UCALL_EXCEPTION with the vector's offset, ESR_EL1, ELR_EL1 and
 * FAR_EL1.  (Architecture facts from the Arm ARM, DDI 0487.)
 */
#ifndef KVMFAULT_ARM64_PROCESSOR_H
#define KVMFAULT_ARM64_PROCESSOR_H

#include <stdint.h>

/* Stage-1 descriptors, 4 KiB granule. */
#define KF_ARM64_PTE_VALID	(1ULL << 0)
#define KF_ARM64_PTE_TABLE	(1ULL << 1)	/* table (L0-L2) or page (L3) */
#define KF_ARM64_PTE_ATTR(i)	((uint64_t)(i) << 2)
#define KF_ARM64_PTE_SH_INNER	(3ULL << 8)
#define KF_ARM64_PTE_AF		(1ULL << 10)
#define KF_ARM64_PTE_PXN	(1ULL << 53)
#define KF_ARM64_PTE_UXN	(1ULL << 54)
#define KF_ARM64_PTE_ADDR	0x0000fffffffff000ULL

/* MAIR_EL1 attribute indexes and their encodings. */
#define KF_ARM64_ATTR_NORMAL	0	/* 0xff: Normal, inner/outer WB */
#define KF_ARM64_ATTR_DEVICE	1	/* 0x04: Device-nGnRE */
#define KF_ARM64_ATTR_TAGGED	2	/* 0xf0: Normal Tagged (MTE) */
#define KF_ARM64_MAIR		0xf004ffULL

#define KF_ARM64_SCTLR_M	(1ULL << 0)
#define KF_ARM64_SCTLR_C	(1ULL << 2)
#define KF_ARM64_SCTLR_I	(1ULL << 12)
#define KF_ARM64_SCTLR_ATA	(1ULL << 43)	/* EL1 allocation tag access */
#define KF_ARM64_SCTLR_RES1	0x30d00800ULL	/* bits 29, 28, 23, 22, 20, 11 */

#define KF_ARM64_TCR_T0SZ(va_bits) (64ULL - (va_bits))
#define KF_ARM64_TCR_IRGN0_WB	(1ULL << 8)
#define KF_ARM64_TCR_ORGN0_WB	(1ULL << 10)
#define KF_ARM64_TCR_SH0_INNER	(3ULL << 12)
#define KF_ARM64_TCR_TG0_4K	(0ULL << 14)
#define KF_ARM64_TCR_EPD1	(1ULL << 23)	/* no TTBR1 walks */
#define KF_ARM64_TCR_IPS_SHIFT	32
#define KF_ARM64_TCR_TBI0	(1ULL << 37)

#define KF_ARM64_CPACR_FPEN	(3ULL << 20)	/* FP/SIMD at EL0 and EL1 */
#define KF_ARM64_PSTATE_EL1H_DAIF 0x3c5ULL	/* EL1h, D, A, I, F masked */

/* ESR_EL1 */
#define KF_ARM64_ESR_EC(esr)	(((esr) >> 26) & 0x3f)

#define KF_ARM64_VA_BITS	48
#define KF_ARM64_BLOCK		(2ULL << 20)
#define KF_ARM64_PT_POOL_PAGES	256
#define KF_ARM64_VCPU_STACK	(60ULL << 10)
#define KF_ARM64_VCPU_AREA	(64ULL << 10)	/* stack + struct kf_guest_vcpu page */
/* KVM's IPA size for a VM that names none (and kernels that cannot). */
#define KF_ARM64_DEFAULT_IPA_BITS 40

#endif
