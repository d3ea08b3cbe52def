/* SPDX-License-Identifier: MIT */
/*
 * vCPU state save and restore, for snapshots and migration.
 *
 * kf_vcpu_state_save() captures everything KVM keeps for a vCPU that the
 * guest could notice (on x86: general and special registers, FPU/XSAVE,
 * XCRs, the MSRs guest code can use, pending events) into one
 * self-describing blob; kf_vcpu_state_restore() loads such a blob into a
 * vCPU of another VM, made with kf_vcpu_add() and not running.  The blob
 * carries a magic, a version and the architecture, and every section is
 * length-checked: a blob from another version or a damaged one is refused
 * with a message, never half-applied (it is parsed completely first).
 *
 * The vCPU must not be in KVM_RUN (stop and join its thread first).
 */
#ifndef KVMFAULT_VCPU_STATE_H
#define KVMFAULT_VCPU_STATE_H

#include <stddef.h>
#include <stdint.h>

#include <kvmfault/vcpu.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

#define KF_VCPU_STATE_MAGIC 0x5356464bU	/* "KFVS" */
#define KF_VCPU_STATE_VERSION 1
#define KF_VCPU_STATE_MAX (1U << 20)	/* no valid blob is larger */

/* Save vcpu's state into a malloc()ed blob (*blobp, *lenp); free() it. */
int kf_vcpu_state_save(struct kf_vcpu *vcpu, void **blobp, size_t *lenp);

/* Load a blob saved by kf_vcpu_state_save() into vcpu. */
int kf_vcpu_state_restore(struct kf_vcpu *vcpu, const void *blob, size_t len);

/* Validate a blob without applying it; *vcpu_id gets the id it was saved
 * from (may be NULL).  Safe on arbitrary bytes. */
int kf_vcpu_state_check(const void *blob, size_t len, unsigned int *vcpu_id);

/* The instruction pointer a blob holds (for reports), or 0. */
uint64_t kf_vcpu_state_ip(const void *blob, size_t len);

KF_API_END

#endif
