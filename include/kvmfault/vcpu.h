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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/*
 * A vCPU: an opaque handle that kf_vcpu_add() makes; kf_vm_destroy() frees
 * it with its VM.
 */
struct kf_vcpu;

/*
 * What a vCPU counted.  Later versions may add fields at the end: pass
 * sizeof(struct kf_vcpu_counters) as the caller knows it.
 */
struct kf_vcpu_counters {
	uint64_t nr_exits;		/* returns from KVM_RUN */
	uint64_t nr_memory_faults;	/* memory fault exits */
	uint64_t nr_ucalls;		/* calls of the guest (GUEST_SYNC() ...) */
};

/*
 * Create vCPU id; it starts at guest_fn(arg), at CPL3 in long mode on x86,
 * at EL1 with the MMU on on arm64.  When guest_fn returns, the run
 * finishes as if it had called GUEST_DONE().
 */
int kf_vcpu_add(struct kf_vm *vm, unsigned int id, void (*guest_fn)(uint64_t),
		uint64_t arg, struct kf_vcpu **vcpup);

/* One KVM_RUN, decoded. */
void kf_vcpu_run_once(struct kf_vcpu *vcpu, struct kf_exit *exit);

/*
 * Run until done (0), failure (negative errno; kf_error() and
 * kf_vcpu_errmsg() say why) or a stop requested with kf_vcpu_stop().
 */
int kf_vcpu_run(struct kf_vcpu *vcpu, const struct kf_vcpu_ops *ops);

/* Run on a thread of its own; kf_vcpu_join() returns kf_vcpu_run()'s value. */
int kf_vcpu_start(struct kf_vcpu *vcpu, const struct kf_vcpu_ops *ops);
int kf_vcpu_join(struct kf_vcpu *vcpu);

/* Ask the vCPU to leave KVM_RUN (immediate_exit and a signal) and stop. */
void kf_vcpu_stop(struct kf_vcpu *vcpu);

/* Start every vCPU of vm with ops, join them all; first failure wins. */
int kf_vm_run_all(struct kf_vm *vm, const struct kf_vcpu_ops *ops);

/* The vCPU's id, its VM, its file descriptor (KVM_CREATE_VCPU). */
unsigned int kf_vcpu_id(const struct kf_vcpu *vcpu);
struct kf_vm *kf_vcpu_vm(const struct kf_vcpu *vcpu);
int kf_vcpu_fd(const struct kf_vcpu *vcpu);

/* Its struct kvm_run, mapped for as long as the vCPU exists. */
struct kvm_run *kf_vcpu_kvm_run(struct kf_vcpu *vcpu);

/* A pointer of the caller's for its handlers (NULL until set). */
void kf_vcpu_set_opaque(struct kf_vcpu *vcpu, void *opaque);
void *kf_vcpu_opaque(const struct kf_vcpu *vcpu);

/*
 * The result of the vCPU's last run: what kf_vcpu_run() returned, 0 before
 * it ends and while it runs again.  May be read while the vCPU runs on its
 * thread; once it is not 0, kf_vcpu_errmsg() holds the reason.
 */
int kf_vcpu_result(const struct kf_vcpu *vcpu);

/*
 * Why the vCPU's last run failed ("vCPU 1: ..."), "" while it has not.
 * Valid until it runs again.
 */
const char *kf_vcpu_errmsg(const struct kf_vcpu *vcpu);

/*
 * Copy what the vCPU counted into *c (size: sizeof(*c)): 0, or -EINVAL
 * with a message.  Exact once its runs are over; a moment old while it
 * runs.
 */
int kf_vcpu_counters(const struct kf_vcpu *vcpu, struct kf_vcpu_counters *c,
		     size_t size);

/*
 * How many times in a row the same fault may come back before the run
 * fails with ELOOP (KF_DEFAULT_MAX_REPEATED_FAULTS); set it before the
 * vCPU runs.  0, or -EINVAL with a message for 0.
 */
int kf_vcpu_set_max_repeated_faults(struct kf_vcpu *vcpu, unsigned int max);

KF_API_END

#endif
