// SPDX-License-Identifier: MIT
/*
 * Hardware-poisoned guest memory (<kvmfault/poison.h>).
 *
 * KVM reports a poisoned page of an ordinary memslot with a signal, so this
 * file keeps the one piece of process state of the VM layer: a SIGBUS
 * handler, and per thread the vCPU inside KVM_RUN and the address of a
 * poison hit.  Signal handlers are process-wide; nothing else could do it.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>

#include <kvmfault/error.h>
#include <kvmfault/kvm.h>
#include <kvmfault/poison.h>
#include <kvmfault/vcpu.h>

#include "vm_internal.h"
#include "vm_objects.h"

/* Initial-exec: read in a signal handler, also from the shared library. */
#define KF_SIGNAL_TLS __thread __attribute__((tls_model("initial-exec")))

static KF_SIGNAL_TLS struct kf_vcpu *volatile kf_vcpu_in_run;
static KF_SIGNAL_TLS volatile sig_atomic_t kf_poison_pending;
static KF_SIGNAL_TLS void *volatile kf_poison_addr;

static struct sigaction kf_previous_sigbus;
static pthread_once_t kf_sigbus_once = PTHREAD_ONCE_INIT;

static void kf_sigbus(int sig, siginfo_t *si, void *ctx)
{
	struct kf_vcpu *vcpu = kf_vcpu_in_run;

	if (vcpu && vcpu->vm->poison_policy != KF_POISON_DEFAULT &&
	    si->si_code == BUS_MCEERR_AR) {
		kf_poison_addr = si->si_addr;
		kf_poison_pending = 1;
		return;
	}
	/* Not KVM's report for one of ours: as if we were not here. */
	if (kf_previous_sigbus.sa_flags & SA_SIGINFO) {
		kf_previous_sigbus.sa_sigaction(sig, si, ctx);
	} else if (kf_previous_sigbus.sa_handler != SIG_DFL &&
		   kf_previous_sigbus.sa_handler != SIG_IGN) {
		kf_previous_sigbus.sa_handler(sig);
	} else if (si->si_code > 0) {
		/* A fault: it recurs on return and takes the default action,
		 * which an ignored SIGBUS from a fault gets too. */
		signal(SIGBUS, SIG_DFL);
	} else if (kf_previous_sigbus.sa_handler == SIG_DFL) {
		signal(SIGBUS, SIG_DFL);
		raise(SIGBUS);
	}
}

static void kf_sigbus_install(void)
{
	struct sigaction sa = { .sa_sigaction = kf_sigbus,
				.sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &kf_previous_sigbus);
}

int kf_vm_set_poison_policy(struct kf_vm *vm, enum kf_poison_policy policy)
{
	if (!vm)
		return kf_fail(EINVAL, "no VM");
	if (policy > KF_POISON_INJECT_MCE)
		return kf_fail(EINVAL, "unknown poison policy %d", policy);
	if (vm->nr_vcpus)
		return kf_fail(EBUSY, "set the poison policy before adding vCPUs");
	if (policy == KF_POISON_INJECT_MCE) {
		int ret = kf_arch_check_inject_mce(vm);

		if (ret)
			return ret;
	}
	if (policy != KF_POISON_DEFAULT)
		pthread_once(&kf_sigbus_once, kf_sigbus_install);
	vm->poison_policy = policy;
	return 0;
}

void kf_poison_enter_run(struct kf_vcpu *vcpu)
{
	kf_poison_pending = 0;
	kf_vcpu_in_run = vcpu;
}

void kf_poison_leave_run(void)
{
	kf_vcpu_in_run = NULL;
}

/* The guest physical address of host address hva, or -1. */
static uint64_t kf_hva_to_gpa(struct kf_vm *vm, uintptr_t hva,
			      uint32_t *slot)
{
	unsigned int i;

	for (i = 0; i < KF_MAX_SLOTS; i++) {
		const struct kf_memslot *ms = &vm->slots[i].ms;
		uintptr_t start = (uintptr_t)ms->hva;

		if (vm->slots[i].used && !vm->slots[i].alias && hva >= start &&
		    hva - start < ms->size) {
			*slot = ms->slot;
			return ms->gpa + (hva - start);
		}
	}
	return (uint64_t)-1;
}

static int kf_poison_hit(struct kf_vcpu *vcpu, uint64_t gpa, uint32_t slot)
{
	gpa = KF_ALIGN_DOWN(gpa, (uint64_t)KF_PAGE_SIZE);
	if (vcpu->vm->poison_policy == KF_POISON_INJECT_MCE) {
		/* A guest that ignores the machine check (e.g. masked it in
		 * MCG_CTL, where KVM drops it) would hit the page for ever. */
		if (gpa == vcpu->last_poison_gpa &&
		    ++vcpu->repeated_poison > vcpu->max_repeated_faults)
			return kf_fail(ELOOP, "guest memory at 0x%llx (slot %u) is hardware-poisoned and the guest accessed it %u times after machine checks: the VM is stopped",
				       (unsigned long long)gpa, slot,
				       vcpu->repeated_poison);
		if (gpa != vcpu->last_poison_gpa)
			vcpu->repeated_poison = 1;
		vcpu->last_poison_gpa = gpa;
		return kf_arch_inject_mce(vcpu, gpa);
	}
	return kf_fail(EHWPOISON, "guest memory at 0x%llx (slot %u) is hardware-poisoned: the VM is stopped",
		       (unsigned long long)gpa, slot);
}

int kf_poison_after_run(struct kf_vcpu *vcpu)
{
	uint32_t slot = 0;
	uint64_t gpa;
	uintptr_t hva;

	if (!kf_poison_pending)
		return 1;
	kf_poison_pending = 0;
	hva = (uintptr_t)kf_poison_addr;
	pthread_mutex_lock(&vcpu->vm->lock);
	gpa = kf_hva_to_gpa(vcpu->vm, hva, &slot);
	pthread_mutex_unlock(&vcpu->vm->lock);
	if (gpa == (uint64_t)-1)
		return kf_fail(EHWPOISON, "hardware-poisoned host memory at %p, which no memslot maps",
			       (void *)hva);
	return kf_poison_hit(vcpu, gpa, slot);
}

int kf_poison_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	const struct kf_memslot *ms;
	uint32_t slot;

	if (vcpu->vm->poison_policy == KF_POISON_DEFAULT)
		return kf_fail(EHWPOISON, "guest memory at 0x%llx is hardware-poisoned (no poison policy)",
			       (unsigned long long)f->gpa);
	pthread_mutex_lock(&vcpu->vm->lock);
	ms = kf_vm_find_slot(vcpu->vm, f->gpa);
	slot = ms ? ms->slot : 0;
	pthread_mutex_unlock(&vcpu->vm->lock);
	return kf_poison_hit(vcpu, f->gpa, slot);
}
