// SPDX-License-Identifier: MIT
#include <linux/kvm_para.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kvmfault/compiler.h>
#include <kvmfault/error.h>
#include <kvmfault/vcpu.h>

#include "vm_internal.h"
#include "vm_objects.h"

int kf_vcpu_add(struct kf_vm *vm, unsigned int id, void (*guest_fn)(uint64_t),
		uint64_t arg, struct kf_vcpu **vcpup)
{
	struct kf_vcpu *vcpu;
	int ret;

	if (!vm || !vcpup)
		return kf_fail(EINVAL, "no VM or nowhere to return the vCPU");
	*vcpup = NULL;
	if (id >= vm->max_vcpus)
		return kf_fail(EINVAL, "vCPU id %u: this VM takes at most %u vCPUs",
			       id, vm->max_vcpus);
	if (vm->vcpus[id])
		return kf_fail(EEXIST, "vCPU %u exists already", id);
	if (!guest_fn)
		return kf_fail(EINVAL, "vCPU %u needs a guest function", id);

	vcpu = calloc(1, sizeof(*vcpu));
	if (!vcpu)
		return kf_fail(ENOMEM, "out of memory for a vCPU");
	vcpu->vm = vm;
	vcpu->id = id;
	pthread_mutex_init(&vcpu->kick_lock, NULL);
	vcpu->max_repeated_faults = KF_DEFAULT_MAX_REPEATED_FAULTS;
	vcpu->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
	if (vcpu->fd < 0) {
		ret = kf_fail_errno(errno, "KVM_CREATE_VCPU %u", id);
		pthread_mutex_destroy(&vcpu->kick_lock);
		free(vcpu);
		return ret;
	}
	vcpu->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 vcpu->fd, 0);
	if (vcpu->run == MAP_FAILED) {
		ret = kf_fail_errno(errno, "mmap kvm_run of vCPU %u", id);
		close(vcpu->fd);
		pthread_mutex_destroy(&vcpu->kick_lock);
		free(vcpu);
		return ret;
	}
	pthread_mutex_lock(&vm->lock);
	vm->vcpus[id] = vcpu;
	vm->nr_vcpus++;
	pthread_mutex_unlock(&vm->lock);

	ret = kf_arch_vcpu_init(vcpu, guest_fn, arg);
	if (ret)
		return ret;	/* kf_vm_destroy() frees it */
	*vcpup = vcpu;
	return 0;
}

void kf_vcpu_run_once(struct kf_vcpu *vcpu, struct kf_exit *exit)
{
	int ret, err;

	kf_poison_enter_run(vcpu);
	ret = ioctl(vcpu->fd, KVM_RUN, NULL);
	err = ret < 0 ? errno : 0;
	kf_poison_leave_run();
	kf_exit_decode(ret, err, vcpu->run, exit);
	vcpu->counters.nr_exits++;
}

static int kf_vcpu_fail(struct kf_vcpu *vcpu, int err, const char *fmt, ...)
	KF_PRINTF(3, 4);

static int kf_vcpu_fail(struct kf_vcpu *vcpu, int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(vcpu->errmsg, sizeof(vcpu->errmsg), "vCPU %u: ", vcpu->id);
	va_start(ap, fmt);
	vsnprintf(vcpu->errmsg + n, sizeof(vcpu->errmsg) - n, fmt, ap);
	va_end(ap);
	return kf_fail(err, "%s", vcpu->errmsg);
}

/* A string the guest named: only one inside the program image, NUL-ended. */
static const char *kf_guest_str(const char *s)
{
	size_t i;

	if (!s || !kf_image_contains(s, 1))
		return "?";
	for (i = 0; kf_image_contains(s + i, 1); i++)
		if (!s[i])
			return s;
	return "?";
}

static int kf_guest_abort_fail(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	const char *file = kf_guest_str(uc->file);
	const char *expr = kf_guest_str(uc->expr);
	unsigned long long a0 = uc->args[0], a1 = uc->args[1];

	switch (uc->assert_kind) {
	case KF_ASSERT_EQ:
		return kf_vcpu_fail(vcpu, EPROTO,
				    "guest assertion failed at %s:%llu: %s\n  seen     0x%llx (%lld)\n  expected 0x%llx (%lld)",
				    file, (unsigned long long)uc->line, expr,
				    a0, (long long)a0, a1, (long long)a1);
	case KF_ASSERT_NE:
		return kf_vcpu_fail(vcpu, EPROTO,
				    "guest assertion failed at %s:%llu: %s\n  both are 0x%llx",
				    file, (unsigned long long)uc->line, expr, a0);
	default:
		return kf_vcpu_fail(vcpu, EPROTO,
				    "guest assertion failed at %s:%llu: %s",
				    file, (unsigned long long)uc->line, expr);
	}
}

static void kf_guest_print(const struct kf_ucall *uc)
{
	const char *fmt = kf_guest_str(uc->expr);

	/* The format is the program's own string literal. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	printf(fmt, (unsigned long long)uc->args[0],
	       (unsigned long long)uc->args[1],
	       (unsigned long long)uc->args[2],
	       (unsigned long long)uc->args[3]);
#pragma GCC diagnostic pop
	fflush(stdout);
}

static int kf_guest_exception_fail(struct kf_vcpu *vcpu,
				   const struct kf_ucall *uc)
{
	char what[256];

	kf_arch_exception_str(uc, what, sizeof(what));
	return kf_vcpu_fail(vcpu, EFAULT, "guest exception %s", what);
}

/* 1: the guest is done; 0: re-enter; < 0: stop. */
static int kf_vcpu_ucall(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	vcpu->counters.nr_ucalls++;
	switch (uc->cmd) {
	case KF_UCALL_DONE:
		return 1;
	case KF_UCALL_SYNC:
		return vcpu->ops && vcpu->ops->sync ? vcpu->ops->sync(vcpu, uc) : 0;
	case KF_UCALL_PRINT:
		kf_guest_print(uc);
		return 0;
	case KF_UCALL_ABORT:
		return kf_guest_abort_fail(vcpu, uc);
	case KF_UCALL_EXCEPTION:
		return kf_guest_exception_fail(vcpu, uc);
	default:
		return kf_vcpu_fail(vcpu, EPROTO, "unknown ucall %llu",
				    (unsigned long long)uc->cmd);
	}
}

static bool kf_same_fault(const struct kf_memory_fault *a,
			  const struct kf_memory_fault *b)
{
	return a->gpa == b->gpa && a->size == b->size &&
	       a->raw_flags == b->raw_flags && a->poison == b->poison;
}

static int kf_vcpu_memory_fault(struct kf_vcpu *vcpu, const struct kf_exit *exit)
{
	const struct kf_memory_fault *f = &exit->fault;
	char desc[160];
	int ret;

	vcpu->counters.nr_memory_faults++;
	if (vcpu->last_exit_was_fault && kf_same_fault(f, &vcpu->last_fault))
		vcpu->repeated_faults++;
	else
		vcpu->repeated_faults = 1;
	vcpu->last_fault = *f;
	vcpu->last_exit_was_fault = true;

	/* The description only for a failure: formatting costs per fault. */
	if (vcpu->repeated_faults > vcpu->max_repeated_faults)
		return kf_vcpu_fail(vcpu, ELOOP,
				    "%s repeated %u times without progress: the handler does not map the page",
				    kf_exit_str(exit, desc, sizeof(desc)),
				    vcpu->repeated_faults);
	if (f->poison) {
		ret = kf_poison_fault(vcpu, f);
		return ret ? kf_vcpu_fail(vcpu, -ret, "%s", kf_error()) : 0;
	}
	if (vcpu->vm->conversions) {
		ret = kf_conversion_fault(vcpu, f);
		if (ret <= 0)
			return ret ? kf_vcpu_fail(vcpu, -ret, "%s: %s",
						  kf_exit_str(exit, desc, sizeof(desc)),
						  kf_error()) : 0;
		/* A shared page another vCPU just converted looks missing:
		 * without a demand-paging handler, retry (the guard stops a
		 * page that stays missing). */
		if (!vcpu->ops || !vcpu->ops->memory_fault)
			return 0;
	}
	if (!vcpu->ops || !vcpu->ops->memory_fault)
		return kf_vcpu_fail(vcpu, EFAULT, "unhandled %s",
				    kf_exit_str(exit, desc, sizeof(desc)));
	ret = vcpu->ops->memory_fault(vcpu, f);
	if (ret < 0)
		return kf_vcpu_fail(vcpu, -ret, "%s: %s",
				    kf_exit_str(exit, desc, sizeof(desc)),
				    kf_error());
	return 0;
}

/* 1: done; 0: re-enter; < 0: stop. */
static int kf_vcpu_dispatch(struct kf_vcpu *vcpu, const struct kf_exit *exit)
{
	const struct kf_vcpu_ops *ops = vcpu->ops;
	struct kf_ucall *uc;
	char desc[160], regs[256];
	int ret;

	/* KVM raised SIGBUS for a poisoned page, whatever KVM_RUN returned. */
	ret = kf_poison_after_run(vcpu);
	if (ret <= 0)
		return ret ? kf_vcpu_fail(vcpu, -ret, "%s", kf_error()) : 0;
	if (exit->kind == KF_EXIT_MEMORY_FAULT)
		return kf_vcpu_memory_fault(vcpu, exit);
	vcpu->last_exit_was_fault = false;

	switch (exit->kind) {
	case KF_EXIT_INTERRUPTED:
		if (ops && ops->interrupted)
			return ops->interrupted(vcpu);
		if (vcpu->stop)
			return kf_vcpu_fail(vcpu, EINTR, "stopped");
		return 0;
	case KF_EXIT_ERROR:
		kf_arch_describe(vcpu, regs, sizeof(regs));
		return kf_vcpu_fail(vcpu, exit->err, "%s (%s)",
				    kf_exit_str(exit, desc, sizeof(desc)), regs);
	default:
		break;
	}

	uc = kf_arch_ucall(vcpu, exit);
	if (uc)
		return kf_vcpu_ucall(vcpu, uc);
	if (exit->reason == KVM_EXIT_HYPERCALL && vcpu->vm->conversions &&
	    vcpu->run->hypercall.nr == KVM_HC_MAP_GPA_RANGE) {
		ret = kf_conversion_hypercall(vcpu);
		return ret ? kf_vcpu_fail(vcpu, -ret, "%s", kf_error()) : 0;
	}
	if (ops && ops->exit) {
		ret = ops->exit(vcpu, exit);
		if (ret < 0 && !vcpu->errmsg[0])
			kf_vcpu_fail(vcpu, -ret, "%s", kf_error());
		return ret;
	}
	kf_arch_describe(vcpu, regs, sizeof(regs));
	return kf_vcpu_fail(vcpu, EPROTO, "unexpected %s (%s)",
			    kf_exit_str(exit, desc, sizeof(desc)), regs);
}

int kf_vcpu_run(struct kf_vcpu *vcpu, const struct kf_vcpu_ops *ops)
{
	struct kf_exit exit;
	int ret;

	if (!vcpu)
		return kf_fail(EINVAL, "no vCPU");
	vcpu->ops = ops;
	__atomic_store_n(&vcpu->result, 0, __ATOMIC_RELAXED);
	vcpu->errmsg[0] = '\0';
	/* Lets userfaultfd handlers tell which vCPU faulted (uffd ptid). */
	__atomic_store_n(&vcpu->tid, gettid(), __ATOMIC_RELEASE);
	do {
		kf_vcpu_run_once(vcpu, &exit);
		ret = kf_vcpu_dispatch(vcpu, &exit);
	} while (ret == 0);

	vcpu->run->immediate_exit = 0;
	vcpu->stop = 0;
	if (ret < 0 && !vcpu->errmsg[0])
		snprintf(vcpu->errmsg, sizeof(vcpu->errmsg), "vCPU %u: %s",
			 vcpu->id, kf_error());
	ret = ret > 0 ? 0 : ret;
	/* kf_vcpu_result() from another thread: the message comes first. */
	__atomic_store_n(&vcpu->result, ret, __ATOMIC_RELEASE);
	return ret;
}

static void kf_kick_handler(int sig)
{
	(void)sig;
}

static int kf_kick_signal(void)
{
	return SIGRTMIN + 3;
}

static pthread_once_t kf_kick_once = PTHREAD_ONCE_INIT;

static void kf_kick_install(void)
{
	struct sigaction sa = { .sa_handler = kf_kick_handler };

	sigemptyset(&sa.sa_mask);
	sigaction(kf_kick_signal(), &sa, NULL);
}

static void *kf_vcpu_thread(void *arg)
{
	struct kf_vcpu *vcpu = arg;

	kf_vcpu_run(vcpu, vcpu->ops);
	pthread_mutex_lock(&vcpu->kick_lock);
	vcpu->thread_running = false;
	pthread_mutex_unlock(&vcpu->kick_lock);
	return NULL;
}

int kf_vcpu_start(struct kf_vcpu *vcpu, const struct kf_vcpu_ops *ops)
{
	int ret;

	if (!vcpu)
		return kf_fail(EINVAL, "no vCPU");
	if (vcpu->thread_started)
		return kf_fail(EBUSY, "vCPU %u is running already", vcpu->id);
	pthread_once(&kf_kick_once, kf_kick_install);
	vcpu->ops = ops;
	__atomic_store_n(&vcpu->result, 0, __ATOMIC_RELAXED);
	pthread_mutex_lock(&vcpu->kick_lock);
	ret = pthread_create(&vcpu->thread, NULL, kf_vcpu_thread, vcpu);
	vcpu->thread_running = !ret;
	pthread_mutex_unlock(&vcpu->kick_lock);
	if (ret)
		return kf_fail(ret, "cannot start the thread of vCPU %u", vcpu->id);
	vcpu->thread_started = true;
	return 0;
}

int kf_vcpu_join(struct kf_vcpu *vcpu)
{
	if (!vcpu)
		return kf_fail(EINVAL, "no vCPU");
	if (!vcpu->thread_started)
		return kf_fail(EINVAL, "vCPU %u was not started", vcpu->id);
	pthread_join(vcpu->thread, NULL);
	vcpu->thread_started = false;
	if (vcpu->result)
		kf_fail(-vcpu->result, "%s", vcpu->errmsg);
	return vcpu->result;
}

void kf_vcpu_stop(struct kf_vcpu *vcpu)
{
	vcpu->stop = 1;
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	/* thread_started stays true until after the join: not a guard. */
	pthread_mutex_lock(&vcpu->kick_lock);
	if (vcpu->thread_running)
		pthread_kill(vcpu->thread, kf_kick_signal());
	pthread_mutex_unlock(&vcpu->kick_lock);
}

int kf_vm_run_all(struct kf_vm *vm, const struct kf_vcpu_ops *ops)
{
	unsigned int i;
	int ret = 0, first = 0;
	char msg[512] = "";

	for (i = 0; i < KF_MAX_VCPUS; i++) {
		if (!vm->vcpus[i])
			continue;
		ret = kf_vcpu_start(vm->vcpus[i], ops);
		if (ret)
			break;
	}
	if (ret) {
		first = ret;
		snprintf(msg, sizeof(msg), "%s", kf_error());
		for (i = 0; i < KF_MAX_VCPUS; i++)
			if (vm->vcpus[i] && vm->vcpus[i]->thread_started)
				kf_vcpu_stop(vm->vcpus[i]);
	}
	/* Join in completion order would be nicer; a failure stops the rest. */
	for (;;) {
		bool any = false;

		for (i = 0; i < KF_MAX_VCPUS; i++) {
			struct kf_vcpu *vcpu = vm->vcpus[i];

			if (!vcpu || !vcpu->thread_started)
				continue;
			any = true;
			if (pthread_tryjoin_np(vcpu->thread, NULL))
				continue;
			vcpu->thread_started = false;
			if (vcpu->result && !first) {
				first = vcpu->result;
				snprintf(msg, sizeof(msg), "%s", vcpu->errmsg);
				for (unsigned int j = 0; j < KF_MAX_VCPUS; j++)
					if (vm->vcpus[j] && vm->vcpus[j]->thread_started)
						kf_vcpu_stop(vm->vcpus[j]);
			}
		}
		if (!any)
			break;
		usleep(1000);
	}
	if (first)
		kf_fail(-first, "%s", msg);
	return first;
}

unsigned int kf_vcpu_id(const struct kf_vcpu *vcpu)
{
	return vcpu->id;
}

struct kf_vm *kf_vcpu_vm(const struct kf_vcpu *vcpu)
{
	return vcpu->vm;
}

int kf_vcpu_fd(const struct kf_vcpu *vcpu)
{
	return vcpu->fd;
}

struct kvm_run *kf_vcpu_kvm_run(struct kf_vcpu *vcpu)
{
	return vcpu->run;
}

void kf_vcpu_set_opaque(struct kf_vcpu *vcpu, void *opaque)
{
	vcpu->opaque = opaque;
}

void *kf_vcpu_opaque(const struct kf_vcpu *vcpu)
{
	return vcpu->opaque;
}

int kf_vcpu_result(const struct kf_vcpu *vcpu)
{
	return __atomic_load_n(&vcpu->result, __ATOMIC_ACQUIRE);
}

const char *kf_vcpu_errmsg(const struct kf_vcpu *vcpu)
{
	return vcpu->errmsg;
}

int kf_vcpu_counters(const struct kf_vcpu *vcpu, struct kf_vcpu_counters *c,
		     size_t size)
{
	struct kf_vcpu_counters now;

	if (!vcpu || !c)
		return kf_fail(EINVAL, "no vCPU or nowhere to put its counters");
	now.nr_exits = __atomic_load_n(&vcpu->counters.nr_exits, __ATOMIC_RELAXED);
	now.nr_memory_faults = __atomic_load_n(&vcpu->counters.nr_memory_faults,
					       __ATOMIC_RELAXED);
	now.nr_ucalls = __atomic_load_n(&vcpu->counters.nr_ucalls, __ATOMIC_RELAXED);
	/* A caller built with a longer structure gets zeros for the rest. */
	memset(c, 0, size);
	memcpy(c, &now, KF_MIN(size, sizeof(now)));
	return 0;
}

int kf_vcpu_set_max_repeated_faults(struct kf_vcpu *vcpu, unsigned int max)
{
	if (!vcpu || !max)
		return kf_fail(EINVAL, "vCPU: a repeated-fault limit needs a vCPU and at least 1");
	vcpu->max_repeated_faults = max;
	return 0;
}
