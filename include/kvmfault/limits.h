/* SPDX-License-Identifier: MIT */
/* Sizes and limits shared by the core and the VM layer. */
#ifndef KVMFAULT_LIMITS_H
#define KVMFAULT_LIMITS_H

#define KF_PAGE_SIZE 4096ULL	/* the base page size (x86-64, arm64 4K) */
#define KF_MAX_VCPUS 64		/* vCPU indexes 0..63 have statistics */
#define KF_MAX_SLOTS 64		/* memslots of a kf_vm; regions of an engine */

#endif
