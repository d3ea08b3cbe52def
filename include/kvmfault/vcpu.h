/* SPDX-License-Identifier: MIT */
/*
 * vCPUs, the run loop and vCPU threads.
 *
 * kf_vcpu_run() enters the guest until it finishes (a DONE ucall, or its
 * entry function returns), fails, or a handler stops it.  Exits are
 * dispatched to the handlers of struct kf_vcpu_ops; memory faults decoded
 * by kf_exit_decode() go to ops->memory_fault, which resolves them from the
 * vCPU thread itself and lets the guest re-enter.
 */
#ifndef KVMFAULT_VCPU_H
#define KVMFAULT_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <kvmfault/exit.h>
#include <kvmfault/ucall.h>
#include <kvmfault/vm.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

/* The same fault this many times in a row, with nothing else in between,
 * means the handler is not making progress. */
#define KF_DEFAULT_MAX_REPEATED_FAULTS 16

struct kf_vcpu_ops {
	/* A memory fault: 0 to re-enter, a negative errno to stop. */
	int (*memory_fault)(struct kf_vcpu *vcpu,
			    const struct kf_memory_fault *fault);
	/* A SYNC ucall: 0 to re-enter, a negative errno to stop. */
	int (*sync)(struct kf_vcpu *vcpu, const struct kf_ucall *uc);
	/* Any exit the loop does not handle itself: 0 re-enters,
	 * 1 finishes the run successfully, a negative errno stops. */
	int (*exit)(struct kf_vcpu *vcpu, const struct kf_exit *exit);
	/* EINTR/EAGAIN: 0 re-enters, 1 finishes successfully, <0 stops.
	 * Without a handler the loop re-enters unless kf_vcpu_stop() was
	 * called. */
	int (*interrupted)(struct kf_vcpu *vcpu);
};

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
	int result;
	char errmsg[512];

	/* counters */
	uint64_t nr_exits;
	uint64_t nr_memory_faults;
	uint64_t nr_ucalls;
};

/*
 * Create vCPU id; it starts at guest_fn(arg) at CPL3 in long mode.  When
 * guest_fn returns, the run finishes as if it had called GUEST_DONE().
 */
int kf_vcpu_add(struct kf_vm *vm, unsigned int id, void (*guest_fn)(uint64_t),
		uint64_t arg, struct kf_vcpu **vcpup);

/* One KVM_RUN, decoded. */
void kf_vcpu_run_once(struct kf_vcpu *vcpu, struct kf_exit *exit);

/*
 * Run until done (0), failure (negative errno; kf_error() and
 * vcpu->errmsg say why) or a stop requested with kf_vcpu_stop().
 */
int kf_vcpu_run(struct kf_vcpu *vcpu, const struct kf_vcpu_ops *ops);

/* Run on a thread of its own; kf_vcpu_join() returns kf_vcpu_run()'s value. */
int kf_vcpu_start(struct kf_vcpu *vcpu, const struct kf_vcpu_ops *ops);
int kf_vcpu_join(struct kf_vcpu *vcpu);

/* Ask the vCPU to leave KVM_RUN (immediate_exit and a signal) and stop. */
void kf_vcpu_stop(struct kf_vcpu *vcpu);

/* Start every vCPU of vm with ops, join them all; first failure wins. */
int kf_vm_run_all(struct kf_vm *vm, const struct kf_vcpu_ops *ops);

KF_API_END

#endif
