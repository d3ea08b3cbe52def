// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <kvmfault/exit.h>

#define KF_MEMORY_FAULT_ACCESS_MASK \
	(KVM_MEMORY_EXIT_FLAG_READ | KVM_MEMORY_EXIT_FLAG_WRITE | \
	 KVM_MEMORY_EXIT_FLAG_EXEC)

static void kf_decode_memory_fault(int err, const struct kvm_run *run,
				   struct kf_memory_fault *fault)
{
	const struct kf_kvm_memory_fault *mf = kf_run_memory_fault(run);

	fault->gpa = mf->gpa;
	fault->size = mf->size;
	fault->raw_flags = mf->flags;
	fault->access = mf->flags & KF_MEMORY_FAULT_ACCESS_MASK;
	fault->private_mem = !!(mf->flags & KVM_MEMORY_EXIT_FLAG_PRIVATE);
	fault->poison = err == EHWPOISON;
}

void kf_exit_decode(int ret, int err, const struct kvm_run *run,
		    struct kf_exit *exit)
{
	memset(exit, 0, sizeof(*exit));

	if (ret == 0) {
		exit->kind = KF_EXIT_REASON;
		exit->reason = run->exit_reason;
		return;
	}

	exit->err = ret == -1 ? err : EINVAL;
	if (ret == -1 && (err == EINTR || err == EAGAIN)) {
		exit->kind = KF_EXIT_INTERRUPTED;
		return;
	}
	if (ret == -1 && (err == EFAULT || err == EHWPOISON) &&
	    run->exit_reason == KVM_EXIT_MEMORY_FAULT) {
		exit->kind = KF_EXIT_MEMORY_FAULT;
		exit->reason = KVM_EXIT_MEMORY_FAULT;
		kf_decode_memory_fault(err, run, &exit->fault);
		return;
	}
	exit->kind = KF_EXIT_ERROR;
}

static const char *const kf_exit_names[] = {
	[KVM_EXIT_UNKNOWN] = "UNKNOWN",
	[KVM_EXIT_EXCEPTION] = "EXCEPTION",
	[KVM_EXIT_IO] = "IO",
	[KVM_EXIT_HYPERCALL] = "HYPERCALL",
	[KVM_EXIT_DEBUG] = "DEBUG",
	[KVM_EXIT_HLT] = "HLT",
	[KVM_EXIT_MMIO] = "MMIO",
	[KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
	[KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
	[KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
	[KVM_EXIT_INTR] = "INTR",
	[KVM_EXIT_SET_TPR] = "SET_TPR",
	[KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS",
	[KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
	[KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT",
	[KVM_EXIT_X86_RDMSR] = "X86_RDMSR",
	[KVM_EXIT_X86_WRMSR] = "X86_WRMSR",
	[KVM_EXIT_DIRTY_RING_FULL] = "DIRTY_RING_FULL",
	[KVM_EXIT_NOTIFY] = "NOTIFY",
	[KVM_EXIT_MEMORY_FAULT] = "MEMORY_FAULT",
};

const char *kf_exit_reason_name(uint32_t reason)
{
	static __thread char buf[32];

	if (reason < sizeof(kf_exit_names) / sizeof(kf_exit_names[0]) &&
	    kf_exit_names[reason])
		return kf_exit_names[reason];
	snprintf(buf, sizeof(buf), "UNKNOWN(%u)", reason);
	return buf;
}

const char *kf_access_str(uint32_t access, char *buf)
{
	buf[0] = access & KF_ACCESS_READ ? 'r' : '-';
	buf[1] = access & KF_ACCESS_WRITE ? 'w' : '-';
	buf[2] = access & KF_ACCESS_EXEC ? 'x' : '-';
	buf[3] = '\0';
	return buf;
}

const char *kf_exit_str(const struct kf_exit *exit, char *buf, size_t len)
{
	char acc[4];

	switch (exit->kind) {
	case KF_EXIT_REASON:
		snprintf(buf, len, "exit %s", kf_exit_reason_name(exit->reason));
		break;
	case KF_EXIT_MEMORY_FAULT:
		snprintf(buf, len,
			 "memory fault%s at gpa 0x%llx size 0x%llx access %s%s flags 0x%llx",
			 exit->fault.poison ? " (poison)" : "",
			 (unsigned long long)exit->fault.gpa,
			 (unsigned long long)exit->fault.size,
			 kf_access_str(exit->fault.access, acc),
			 exit->fault.private_mem ? " private" : "",
			 (unsigned long long)exit->fault.raw_flags);
		break;
	case KF_EXIT_INTERRUPTED:
		snprintf(buf, len, "interrupted (%s)", strerror(exit->err));
		break;
	case KF_EXIT_ERROR:
		snprintf(buf, len, "KVM_RUN failed: %s%s", strerror(exit->err),
			 exit->err == EFAULT ?
			 " (no memory_fault annotation: the kernel did not say where)" : "");
		break;
	}
	return buf;
}
