/* SPDX-License-Identifier: MIT */
/* /dev/kvm: opening it and probing capabilities. */
#ifndef KVMFAULT_KVM_H
#define KVMFAULT_KVM_H

#include <stdbool.h>

#include <kvmfault/uapi.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

#define KF_KVM_DEV "/dev/kvm"

/*
 * Open /dev/kvm read-write and check the API version.  Returns the fd or a
 * negative errno with a message that says why (missing device, not root).
 */
int kf_kvm_open(void);

/* KVM_CHECK_EXTENSION on fd (system or VM); an absent capability is 0. */
long kf_check_cap(int fd, long cap);

/*
 * Whether the system KVM has cap.  Opens /dev/kvm on first use and keeps it;
 * false when /dev/kvm cannot be opened.
 */
bool kf_kvm_has_cap(long cap);

/* Why KVM is unusable here, or NULL when /dev/kvm opens. */
const char *kf_kvm_unavailable_reason(void);

KF_API_END

#endif
