/* SPDX-License-Identifier: MIT */
/*
 * x86-64 guest layout.  Guest code runs in long mode at CPL3 (on hosts
 * whose KVM emulates CPL0, user mode is the fast path) with IOPL=3, so the
 * port I/O of ucalls works on VMX/SVM hardware too.  Guest memory is
 * identity-mapped with 2 MiB user pages; page 0 is left unmapped so that a
 * guest NULL dereference faults.
 */
#ifndef KVMFAULT_X86_PROCESSOR_H
#define KVMFAULT_X86_PROCESSOR_H

#include <stdint.h>

#define KF_X86_PTE_PRESENT (1ULL << 0)
#define KF_X86_PTE_WRITE   (1ULL << 1)
#define KF_X86_PTE_USER    (1ULL << 2)
#define KF_X86_PTE_ACCESSED (1ULL << 5)
#define KF_X86_PTE_DIRTY   (1ULL << 6)
#define KF_X86_PTE_LARGE   (1ULL << 7)
#define KF_X86_PTE_ADDR    0x000ffffffffff000ULL

#define KF_X86_CR0_PE (1ULL << 0)
#define KF_X86_CR0_MP (1ULL << 1)
#define KF_X86_CR0_ET (1ULL << 4)
#define KF_X86_CR0_NE (1ULL << 5)
#define KF_X86_CR0_WP (1ULL << 16)
#define KF_X86_CR0_PG (1ULL << 31)
#define KF_X86_CR4_PAE (1ULL << 5)
#define KF_X86_CR4_MCE (1ULL << 6)
#define KF_X86_CR4_OSFXSR (1ULL << 9)
#define KF_X86_CR4_OSXMMEXCPT (1ULL << 10)
#define KF_X86_EFER_LME (1ULL << 8)
#define KF_X86_EFER_LMA (1ULL << 10)

#define KF_X86_RFLAGS_FIXED 0x2ULL
#define KF_X86_RFLAGS_IOPL3 (3ULL << 12)

/* GDT: null, kernel code/data, user code/data, then one 64-bit TSS
 * descriptor (two slots) a vCPU. */
#define KF_X86_SEL_KERNEL_CS 0x08
#define KF_X86_SEL_KERNEL_DS 0x10
#define KF_X86_SEL_USER_CS   0x1b
#define KF_X86_SEL_USER_DS   0x23

/* Machine checks (Intel SDM vol. 3, chapter 16; AMD the same). */
#define KF_X86_MCG_COUNT_MASK 0xffULL
#define KF_X86_MCG_CTL_P (1ULL << 8)
#define KF_X86_MCG_SER_P (1ULL << 24)
#define KF_X86_MCG_STATUS_EIPV (1ULL << 1)
#define KF_X86_MCG_STATUS_MCIP (1ULL << 2)
#define KF_X86_MCI_STATUS_VAL (1ULL << 63)
#define KF_X86_MCI_STATUS_UC (1ULL << 61)
#define KF_X86_MCI_STATUS_EN (1ULL << 60)
#define KF_X86_MCI_STATUS_MISCV (1ULL << 59)
#define KF_X86_MCI_STATUS_ADDRV (1ULL << 58)
#define KF_X86_MCI_STATUS_S (1ULL << 56)
#define KF_X86_MCI_STATUS_AR (1ULL << 55)
#define KF_X86_MCACOD_DATA_LOAD 0x134ULL
#define KF_X86_MCI_MISC_PHYS_ADDR (2ULL << 6)
#define KF_X86_MSR_MCG_STATUS 0x17a
#define KF_X86_MSR_MC_STATUS(bank) (0x401 + 4 * (bank))
#define KF_X86_MSR_MC_ADDR(bank) (0x402 + 4 * (bank))
/* The bank kvmfault reports poisoned guest memory in. */
#define KF_X86_MCE_BANK 1

/* The IDT gate CPL3 code calls to make a KVM hypercall from CPL0. */
#define KF_X86_HYPERCALL_VECTOR 0x20

#define KF_X86_LARGE_PAGE (2ULL << 20)
#define KF_X86_PT_POOL_PAGES 256
#define KF_X86_VCPU_STACK (60ULL << 10)
#define KF_X86_VCPU_AREA (64ULL << 10)	/* stack + struct kf_guest_vcpu page */
/* Guest physical memory this library maps, at most. */
#define KF_X86_MAX_GPA (1ULL << 39)

#endif
