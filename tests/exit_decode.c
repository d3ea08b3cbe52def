// SPDX-License-Identifier: MIT
/*
 * The exit contract, exhaustively: every combination of KVM_RUN's return
 * value, errno and exit_reason, with memory_fault filled in every time, so
 * that stale contents are offered to the decoder on every path.
 */
#include <errno.h>
#include <string.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

static const int rets[] = { 0, -1, 1, -2 };
static const int errs[] = { 0, EFAULT, EHWPOISON, EINTR, EAGAIN, EINVAL,
			    ENOMEM, ENOEXEC, EIO };
static const uint32_t reasons[] = {
	KVM_EXIT_UNKNOWN, KVM_EXIT_IO, KVM_EXIT_MMIO, KVM_EXIT_SHUTDOWN,
	KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_NOTIFY, KVM_EXIT_MEMORY_FAULT, 40,
	0xffffffff,
};

static void fill_run(struct kvm_run *run, uint32_t reason, uint64_t flags)
{
	struct kf_kvm_memory_fault *mf = (struct kf_kvm_memory_fault *)
		((char *)run + KF_KVM_RUN_EXIT_UNION_OFFSET);

	memset(run, 0xa5, sizeof(*run));
	run->exit_reason = reason;
	mf->flags = flags;
	mf->gpa = 0x123456000ULL;
	mf->size = 0x1000;
}

static void check_combination(int ret, int err, uint32_t reason)
{
	static struct kvm_run run;
	struct kf_exit exit;
	bool failed = ret != 0;

	fill_run(&run, reason, KVM_MEMORY_EXIT_FLAG_WRITE);
	kf_exit_decode(ret, err, &run, &exit);

	if (!failed) {
		TEST_ASSERT_EQ(exit.kind, KF_EXIT_REASON);
		TEST_ASSERT_EQ(exit.reason, reason);
		TEST_ASSERT_EQ(exit.err, 0);
	} else if (ret == -1 && (err == EINTR || err == EAGAIN)) {
		TEST_ASSERT_EQ(exit.kind, KF_EXIT_INTERRUPTED);
		TEST_ASSERT_EQ(exit.err, err);
	} else if (ret == -1 && (err == EFAULT || err == EHWPOISON) &&
		   reason == KVM_EXIT_MEMORY_FAULT) {
		TEST_ASSERT_EQ(exit.kind, KF_EXIT_MEMORY_FAULT);
		TEST_ASSERT_EQ(exit.fault.gpa, 0x123456000ULL);
		TEST_ASSERT_EQ(exit.fault.size, 0x1000);
		TEST_ASSERT_EQ(exit.fault.access, KF_ACCESS_WRITE);
		TEST_ASSERT_EQ(exit.fault.poison, err == EHWPOISON);
		TEST_ASSERT_EQ(exit.fault.private_mem, 0);
	} else {
		TEST_ASSERT_EQ(exit.kind, KF_EXIT_ERROR);
		TEST_ASSERT_EQ(exit.err, ret == -1 ? err : EINVAL);
	}
	/* memory_fault data never leaks into a non-fault exit */
	if (exit.kind != KF_EXIT_MEMORY_FAULT) {
		TEST_ASSERT_EQ(exit.fault.gpa, 0);
		TEST_ASSERT_EQ(exit.fault.size, 0);
		TEST_ASSERT_EQ(exit.fault.access, 0);
	}
}

static void check_flags(void)
{
	static struct kvm_run run;
	struct kf_exit exit;
	uint64_t f;

	for (f = 0; f < 32; f++) {
		fill_run(&run, KVM_EXIT_MEMORY_FAULT, f | (1ULL << 40));
		kf_exit_decode(-1, EFAULT, &run, &exit);
		TEST_ASSERT_EQ(exit.kind, KF_EXIT_MEMORY_FAULT);
		TEST_ASSERT_EQ(exit.fault.access, f & 7);
		TEST_ASSERT_EQ(exit.fault.private_mem, !!(f & 8));
		TEST_ASSERT_EQ(exit.fault.raw_flags, f | (1ULL << 40));
	}
}

static void check_layout(void)
{
	/* Upstream: the exit union starts at byte 32 of struct kvm_run. */
	TEST_ASSERT_EQ(KF_KVM_RUN_EXIT_UNION_OFFSET, 32);
	TEST_ASSERT_EQ(sizeof(struct kf_kvm_memory_fault), 24);
	TEST_ASSERT_EQ(KVM_EXIT_MEMORY_FAULT, 39);
	TEST_ASSERT_EQ(KVM_CAP_MEMORY_FAULT_INFO, 232);
	TEST_ASSERT_EQ(sizeof(struct kvm_userspace_memory_region2), 160);
	TEST_ASSERT_EQ(sizeof(struct kvm_create_guest_memfd), 64);
}

static void check_strings(void)
{
	struct kf_exit exit = { .kind = KF_EXIT_MEMORY_FAULT };
	char buf[160], acc[4];

	exit.fault.gpa = 0x40000000;
	exit.fault.size = 4096;
	exit.fault.access = KF_ACCESS_READ | KF_ACCESS_EXEC;
	kf_exit_str(&exit, buf, sizeof(buf));
	TEST_ASSERT(strstr(buf, "gpa 0x40000000") && strstr(buf, "r-x"),
		    "got '%s'", buf);
	TEST_ASSERT(!strcmp(kf_access_str(KF_ACCESS_WRITE, acc), "-w-"), "%s", acc);
	TEST_ASSERT(!strcmp(kf_exit_reason_name(KVM_EXIT_MEMORY_FAULT),
			    "MEMORY_FAULT"), "name");
	TEST_ASSERT(!strcmp(kf_exit_reason_name(1000), "UNKNOWN(1000)"), "name");
}

int main(void)
{
	unsigned int r, e, x, n = 0;

	for (r = 0; r < KF_ARRAY_SIZE(rets); r++)
		for (e = 0; e < KF_ARRAY_SIZE(errs); e++)
			for (x = 0; x < KF_ARRAY_SIZE(reasons); x++, n++)
				check_combination(rets[r], errs[e], reasons[x]);
	check_flags();
	check_layout();
	check_strings();
	TEST_PASS("%u combinations of return value, errno and exit_reason", n);
}
