/* SPDX-License-Identifier: MIT */
/*
 * The objects of the VM layer: struct kf_vm, kf_vcpu and kf_slot.  Only the
 * library's own files (lib/, lib/x86/) include this header.  The public
 * headers declare kf_vm and kf_vcpu opaque, and the harness, the tool and
 * the tests use the accessors of <kvmfault/vm.h> and <kvmfault/vcpu.h>
 * (the harness includes vm_internal.h, never this), so fields here may
 * change without breaking the ABI.
 */
#ifndef KVMFAULT_VM_OBJECTS_H
#define KVMFAULT_VM_OBJECTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <kvmfault/exit.h>
#include <kvmfault/limits.h>
#include <kvmfault/vcpu.h>
#include <kvmfault/vm.h>

/* A memslot: what callers see of it first, then the library's own. */
struct kf_slot {
	struct kf_memslot ms;
	bool used;
	bool owned;		/* the library mapped hva and unmaps it */
	bool guest_memfd_owned;	/* the library created it and closes it */
	uint32_t alias_slot;	/* its shared alias (kf_vm_set_shared_bit), 0 if none */
	bool alias;		/* this slot is another's shared alias */
	uint64_t *private_pages;	/* guest_memfd slots: one bit a private page */
	bool engine;		/* a fault engine serves it (vm->lock) */
};

struct kf_engine;
struct kf_conversions;

struct kf_vm {
	int kvm_fd;
	int fd;
	int run_size;
	pthread_mutex_t lock;
	struct kf_slot slots[KF_MAX_SLOTS];
	struct kf_vcpu *vcpus[KF_MAX_VCPUS];
	unsigned int nr_vcpus;
	unsigned int max_vcpus;
	unsigned long type;	/* KVM_CREATE_VM's type: KF_VM_TYPE_* */
	unsigned int phys_bits;	/* arm64: the IPA size it was made with */
	bool fault_access;	/* exits carry READ/WRITE/EXEC (enabled) */
	bool mte;		/* KVM_CAP_ARM_MTE enabled */
	struct kf_conversions *conversions;	/* private_mem.c, when enabled */
	uint64_t shared_bit;	/* kf_vm_set_shared_bit(): 1 << bit, or 0 */
	int poison_policy;	/* enum kf_poison_policy */
	struct kf_engine *engine;	/* its fault engine (vm_engine.c) */
	void *arch;		/* struct kf_x86_vm, struct kf_arm64_vm */
};

/* The used slot containing gpa, or NULL. */
struct kf_slot *kf_vm_slot_at(struct kf_vm *vm, uint64_t gpa);

struct kf_vcpu {
	struct kf_vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	void *arch;			/* struct kf_x86_vcpu */
	const struct kf_vcpu_ops *ops;
	void *opaque;			/* the caller's, for handlers */

	/* repeated-fault guard */
	unsigned int max_repeated_faults;
	struct kf_memory_fault last_fault;
	unsigned int repeated_faults;
	bool last_exit_was_fault;
	uint64_t last_poison_gpa;	/* machine checks injected for it */
	unsigned int repeated_poison;

	/* thread state */
	pthread_t thread;
	pid_t tid;		/* the thread in kf_vcpu_run(), 0 before */
	bool thread_started;
	/* The thread has not left kf_vcpu_run() yet: it may be signalled
	 * (under kick_lock; a joined thread must never be). */
	bool thread_running;
	pthread_mutex_t kick_lock;
	volatile int stop;
	/* kf_vcpu_run()'s value, stored (release) after errmsg. */
	int result;
	char errmsg[512];

	/* counters */
	struct kf_vcpu_counters counters;
};

#endif
