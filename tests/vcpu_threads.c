// SPDX-License-Identifier: MIT
/*
 * Several vCPUs run at once, each on its own thread, each on its own part
 * of a shared region; a vCPU spinning forever is stopped from another
 * thread (immediate_exit plus a signal), and KVM_RUN with immediate_exit is
 * an interruption, never a fault.
 */
#include <string.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

#define NR_VCPUS 4
#define PER_VCPU (256ULL << 10)

static KF_GUEST void guest_work(uint64_t base)
{
	uint64_t id = kf_guest_vcpu_id();
	volatile uint64_t *p = (volatile uint64_t *)(base + id * PER_VCPU);
	uint64_t i;

	for (i = 0; i < PER_VCPU / 8; i++)
		p[i] = id * 1000003 + i;
	GUEST_SYNC_ARGS(1, id, kf_hash((const void *)p, PER_VCPU), 0);
}

static uint64_t hashes[NR_VCPUS];

static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	TEST_ASSERT_EQ(uc->args[1], kf_vcpu_id(vcpu));
	hashes[kf_vcpu_id(vcpu)] = uc->args[2];
	return 0;
}

static KF_GUEST void guest_spin(uint64_t arg)
{
	volatile uint64_t n = arg;

	for (;;)
		n++;
}

static void test_parallel(void)
{
	struct kf_vcpu_ops ops = { .sync = on_sync };
	struct kf_region r = { .size = NR_VCPUS * PER_VCPU,
			       .backing = KF_BACKING_ANON };
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	uint64_t ucalls;
	unsigned int i;

	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, NULL));
	for (i = 0; i < NR_VCPUS; i++)
		TEST_OK(kf_vcpu_add(vm, i, guest_work, r.gpa, &vcpu));
	TEST_OK(kf_vm_run_all(vm, &ops));
	for (i = 0; i < NR_VCPUS; i++) {
		const uint64_t *p = kf_vm_gpa_to_hva(vm, r.gpa + i * PER_VCPU);
		uint64_t j;

		for (j = 0; j < PER_VCPU / 8; j += 97)
			TEST_ASSERT_EQ(p[j], i * 1000003 + j);
		TEST_ASSERT_EQ(hashes[i], kf_hash(p, PER_VCPU));
		ucalls = kf_test_counters(kf_vm_vcpu(vm, i)).nr_ucalls;
		TEST_ASSERT(ucalls >= 2, "ucalls %llu", (unsigned long long)ucalls);
	}
	kf_vm_destroy(vm);
}

static void test_interrupt(void)
{
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	struct kf_exit exit;
	struct kvm_run *run;

	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_vcpu_add(vm, 0, guest_spin, 0, &vcpu));
	run = kf_vcpu_kvm_run(vcpu);

	/* immediate_exit: EINTR, decoded as an interruption even with a
	 * stale KVM_EXIT_MEMORY_FAULT in exit_reason. */
	run->immediate_exit = 1;
	run->exit_reason = KVM_EXIT_MEMORY_FAULT;
	kf_vcpu_run_once(vcpu, &exit);
	TEST_ASSERT_EQ(exit.kind, KF_EXIT_INTERRUPTED);
	TEST_ASSERT_EQ(exit.err, EINTR);
	run->immediate_exit = 0;

	/* A spinning guest stopped from another thread. */
	TEST_OK(kf_vcpu_start(vcpu, NULL));
	usleep(50000);
	kf_vcpu_stop(vcpu);
	TEST_ASSERT_EQ(kf_vcpu_join(vcpu), -EINTR);
	TEST_ASSERT(strstr(kf_vcpu_errmsg(vcpu), "stopped"), "%s",
		    kf_vcpu_errmsg(vcpu));
	TEST_ASSERT_EQ(run->immediate_exit, 0);
	kf_vm_destroy(vm);
}

int main(void)
{
	kf_test_require_kvm();
	test_parallel();
	test_interrupt();
	TEST_PASS("%d vCPUs in parallel; stop and immediate_exit interrupt", NR_VCPUS);
}
