// SPDX-License-Identifier: MIT
/*
 * Implicit private/shared conversions end to end, with the kvmfault 6.12
 * series' shared GPA bit (KVM_CAP_X86_SW_PROTECTED_SHARED_BIT): the guest
 * accesses a page as private at its address and as shared at the alias;
 * an access in the other state exits, and the library converts the page
 * and re-enters, without any hypercall.  Checked:
 *
 * - both directions, with what the guest and the host read after each
 *   conversion (a page that changes state reads as zero);
 * - two vCPUs converting adjacent pages implicitly at once;
 * - the policy sees implicit requests and a refusal stops the vCPU with
 *   the reason;
 * - explicit requests may name the range by its alias.
 */
#include <stdio.h>
#include <string.h>

#include <kvmfault/private_mem.h>

#include "kernel_common.h"

#define SHARED_BIT 38
#define PAGES 8
#define ROUNDS 50

static struct {
	uint64_t gpa;		/* the guest_memfd slot */
	uint64_t shared;	/* 1 << SHARED_BIT */
	uint64_t deny_gpa;
	unsigned int implicit, explicit_requests;
	pthread_mutex_t lock;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER };


static KF_GUEST void guest_main(uint64_t unused)
{
	uint64_t a = g.gpa, s = g.shared;

	(void)unused;
	/* Shared to private by a private access: fresh private page. */
	kt_stage_check(a, a, 0);
	kt_stage_fill(a, a, 1);
	GUEST_SYNC(1);
	/* Private to shared by a shared access: the shared page was
	 * released when the page became private. */
	kt_stage_check(a | s, a, 0);
	GUEST_SYNC(2);
	kt_stage_check(a | s, a, 2);		/* the host wrote stage 2 */
	kt_stage_fill(a | s, a, 3);
	/* Private again: the private page of stage 1 is gone. */
	kt_stage_check(a, a, 0);
	GUEST_SYNC(3);
	/* An explicit request may name the alias. */
	GUEST_ASSERT_EQ(kf_guest_map_gpa_range(a | s, 1, false), 0);
	kt_stage_check(a | s, a, 0);
	GUEST_SYNC(4);
}

static int policy(void *opaque, const struct kf_conversion *c)
{
	(void)opaque;
	pthread_mutex_lock(&g.lock);
	if (c->cause == KF_CONVERSION_IMPLICIT)
		g.implicit++;
	else
		g.explicit_requests++;
	pthread_mutex_unlock(&g.lock);
	TEST_ASSERT_EQ(c->size, KF_PAGE_SIZE);
	TEST_ASSERT(!(c->gpa & g.shared), "gpa 0x%llx has the shared bit",
		    (unsigned long long)c->gpa);
	return c->gpa == g.deny_gpa ? -EACCES : 0;
}

static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	struct kf_vm *vm = kf_vcpu_vm(vcpu);
	uint64_t *p = kf_vm_gpa_to_hva(vm, g.gpa);
	unsigned int i;

	switch (uc->args[0]) {
	case 1:
		TEST_ASSERT(kf_vm_page_is_private(vm, g.gpa), "private after 1");
		for (i = 0; i < 512; i++)
			TEST_ASSERT_EQ(p[i], 0);	/* never the private data */
		break;
	case 2:
		TEST_ASSERT(!kf_vm_page_is_private(vm, g.gpa), "shared after 2");
		for (i = 0; i < 512; i++)
			p[i] = kt_stage_word(g.gpa, 2, i);
		break;
	case 3:
		TEST_ASSERT(kf_vm_page_is_private(vm, g.gpa), "private after 3");
		break;
	case 4:
		TEST_ASSERT(!kf_vm_page_is_private(vm, g.gpa), "shared after 4");
		break;
	default:
		TEST_ASSERT(0, "stage %llu", (unsigned long long)uc->args[0]);
	}
	return 0;
}

static struct kf_vm *create_vm(void)
{
	struct kf_region r = {
		.size = PAGES * KF_PAGE_SIZE, .flags = KVM_MEM_GUEST_MEMFD,
		.backing = KF_BACKING_MEMFD, .guest_memfd = -1,
	};
	struct kf_vm *vm;
	int ret;

	TEST_OK(kf_vm_create_type(&vm, KF_VM_TYPE_SW_PROTECTED));
	ret = kf_vm_set_shared_bit(vm, SHARED_BIT);
	if (ret == -EOPNOTSUPP)
		kf_test_skip("%s", kf_error());
	TEST_OK(ret);
	r.gpa = g.gpa = kf_vm_free_gpa(vm);
	g.shared = kf_vm_shared_alias(vm, 0);
	TEST_ASSERT_EQ(g.shared, 1ULL << SHARED_BIT);
	TEST_OK(kf_vm_add_region(vm, &r, NULL));
	TEST_OK(kf_vm_enable_conversions(vm, policy, NULL));
	return vm;
}

static void test_both_directions(void)
{
	struct kf_vcpu_ops ops = { .sync = on_sync };
	struct kf_vcpu *vcpu;
	struct kf_vm *vm = create_vm();

	TEST_OK(KF_SYNC_GLOBAL_TO_GUEST(vm, g));
	TEST_OK(kf_vcpu_add(vm, 0, guest_main, 0, &vcpu));
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "run: %s", kf_vcpu_errmsg(vcpu));
	TEST_ASSERT_EQ(g.implicit, 3);
	TEST_ASSERT_EQ(g.explicit_requests, 1);
	printf("one vCPU: 3 implicit conversions and 1 explicit one by the alias, %llu memory-fault exits\n",
	       (unsigned long long)kf_test_counters(vcpu).nr_memory_faults);
	kf_vm_destroy(vm);
}

/* vCPU id flips page 1 + id between private and shared by accessing it. */
static KF_GUEST void guest_flip(uint64_t id)
{
	uint64_t a = g.gpa + (1 + id) * KF_PAGE_SIZE, s = g.shared, r;

	for (r = 1; r <= ROUNDS; r++) {
		kt_stage_check(a, a, 0);		/* to private */
		kt_stage_fill(a, a, r);
		kt_stage_check(a, a, r);
		kt_stage_check(a | s, a, 0);	/* to shared */
		kt_stage_fill(a | s, a, r);
		kt_stage_check(a | s, a, r);
	}
}

static void test_two_vcpus(void)
{
	struct kf_vcpu *vcpu;
	struct kf_vm *vm = create_vm();
	unsigned int i;

	if (kf_vm_max_vcpus(vm) < 2) {
		kf_vm_destroy(vm);
		printf("two vCPUs: not run, one vCPU only\n");
		return;
	}
	g.implicit = 0;
	TEST_OK(KF_SYNC_GLOBAL_TO_GUEST(vm, g));
	for (i = 0; i < 2; i++)
		TEST_OK(kf_vcpu_add(vm, i, guest_flip, i, &vcpu));
	TEST_OK(kf_vm_run_all(vm, NULL));
	TEST_ASSERT_EQ(g.implicit, 2 * 2 * ROUNDS);
	printf("two vCPUs: %u implicit conversions of adjacent pages\n",
	       g.implicit);
	kf_vm_destroy(vm);
}

static KF_GUEST void guest_touch_private(uint64_t gpa)
{
	kt_stage_check(gpa, gpa, 0);
}

static void test_refused(void)
{
	struct kf_vcpu *vcpu;
	struct kf_vm *vm = create_vm();
	int ret;

	g.deny_gpa = g.gpa + 3 * KF_PAGE_SIZE;
	TEST_OK(KF_SYNC_GLOBAL_TO_GUEST(vm, g));
	TEST_OK(kf_vcpu_add(vm, 0, guest_touch_private, g.deny_gpa, &vcpu));
	ret = kf_vcpu_run(vcpu, NULL);
	TEST_ASSERT_EQ(ret, -EACCES);
	TEST_ASSERT(strstr(kf_vcpu_errmsg(vcpu), "policy refused the implicit conversion"),
		    "message: %s", kf_vcpu_errmsg(vcpu));
	TEST_ASSERT(!kf_vm_page_is_private(vm, g.deny_gpa), "nothing converted");
	printf("refused: %s\n", kf_vcpu_errmsg(vcpu));
	kf_vm_destroy(vm);
}

int main(void)
{
	kt_require_sw_protected_vm();
	test_both_directions();
	test_two_vcpus();
	test_refused();
	TEST_PASS("implicit conversions both ways, 2 vCPUs, policy refusal, explicit by alias");
}
