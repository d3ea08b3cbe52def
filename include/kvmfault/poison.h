/* SPDX-License-Identifier: MIT */
/*
 * Hardware-poisoned guest memory.
 *
 * When the guest touches a poisoned page of an ordinary memslot, KVM sends
 * the vCPU thread SIGBUS (BUS_MCEERR_AR, si_addr the page's host address)
 * and KVM_RUN returns EINTR; for a page KVM reports through the exit (a
 * private page), KVM_RUN fails with EHWPOISON and a memory-fault exit.
 * Without a policy nothing changes: the SIGBUS kills the process, as for
 * any VMM that does not handle it.  With one, kf_vcpu_run() catches both
 * and, for the guest physical page, either
 *
 *   KF_POISON_STOP        stops the VM: the vCPU fails with -EHWPOISON and
 *                         "guest memory at 0x... (slot N) is hardware-
 *                         poisoned"; never a silently wrong page;
 *   KF_POISON_INJECT_MCE  injects a machine check into the vCPU (an action-
 *                         required uncorrected error for that address,
 *                         KVM_X86_SET_MCE) and re-enters: the guest's #MC
 *                         handler decides.  The vCPUs get machine-check
 *                         banks (KVM_X86_SETUP_MCE) and CR4.MCE.  On arm64
 *                         the guest gets a synchronous external abort at
 *                         the faulting address instead
 *                         (KVM_CAP_ARM_INJECT_EXT_DABT).
 *
 * The SIGBUS handler is process-wide (installed once, by the first VM that
 * sets a policy); it takes only the SIGBUS that KVM raises inside KVM_RUN of
 * such a VM's vCPU, and leaves every other SIGBUS to what was there before.
 */
#ifndef KVMFAULT_POISON_H
#define KVMFAULT_POISON_H

#include <kvmfault/vm.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

enum kf_poison_policy {
	KF_POISON_DEFAULT,	/* not handled: SIGBUS kills the process */
	KF_POISON_STOP,
	KF_POISON_INJECT_MCE,
};

/*
 * Set the VM's policy before its first vCPU (-EBUSY after);
 * KF_POISON_INJECT_MCE needs KVM_CAP_MCE, on arm64
 * KVM_CAP_ARM_INJECT_EXT_DABT (-EOPNOTSUPP).
 */
int kf_vm_set_poison_policy(struct kf_vm *vm, enum kf_poison_policy policy);

KF_API_END

#endif
