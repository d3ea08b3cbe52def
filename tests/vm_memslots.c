// SPDX-License-Identifier: MIT
/*
 * Memslots: added, used by the guest, changed, removed; and every kind of
 * bad argument refused with an error and a message, never a crash.
 */
#include <string.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

#define MB (1ULL << 20)

static KF_GUEST void guest_fill(uint64_t base)
{
	volatile uint64_t *p = (volatile uint64_t *)base;
	uint64_t i;

	for (i = 0; i < MB / 8; i += 512)
		p[i] = base + i;
	GUEST_SYNC(1);
	/* The host removed the slot: this access has no memory behind it. */
	kt_guest_mmio_write(p, 1);
}

static int mmio_exits;

static int on_vm_exit(struct kf_vcpu *vcpu, const struct kf_exit *exit)
{
	if (exit->kind == KF_EXIT_REASON && exit->reason == KVM_EXIT_MMIO) {
		const struct kvm_run *run = kf_vcpu_kvm_run(vcpu);

		mmio_exits++;
		TEST_ASSERT_EQ(run->mmio.phys_addr, kf_vm_free_gpa(kf_vcpu_vm(vcpu)));
		TEST_ASSERT_EQ(run->mmio.is_write, 1);
		return 1;	/* finished */
	}
	return -EPROTO;
}

static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	struct kf_vm *vm = kf_vcpu_vm(vcpu);
	uint64_t base = kf_vm_free_gpa(vm);
	uint64_t *hva = kf_vm_gpa_to_hva(vm, base);
	const struct kf_memslot *ms = kf_vm_find_slot(vm, base);
	uint64_t i;

	TEST_ASSERT_EQ(uc->args[0], 1);
	TEST_ASSERT(hva && ms, "slot at 0x%llx", (unsigned long long)base);
	for (i = 0; i < MB / 8; i += 512)
		TEST_ASSERT_EQ(hva[i], base + i);
	TEST_OK(kf_vm_remove_region(vm, ms->slot));
	TEST_ASSERT(!kf_vm_gpa_to_hva(vm, base), "slot still there");
	return 0;
}

static void expect_error(int ret, int err, const char *needle)
{
	TEST_ASSERT_EQ(ret, -err);
	TEST_ASSERT(strstr(kf_error(), needle), "'%s' missing from '%s'",
		    needle, kf_error());
}

static void test_bad_input(struct kf_vm *vm)
{
	uint64_t base = kf_vm_free_gpa(vm);
	struct kf_region r = { .gpa = base, .size = MB, .backing = KF_BACKING_ANON };
	struct kf_region bad;
	struct kf_vcpu *vcpu, *dup;

	TEST_OK(kf_vm_add_region(vm, &r, NULL));
	bad = r;
	expect_error(kf_vm_add_region(vm, &bad, NULL), EEXIST, "overlaps");
	bad.gpa = base + MB - getpagesize();
	expect_error(kf_vm_add_region(vm, &bad, NULL), EEXIST, "overlaps");
	bad.gpa = base + 4 * MB + 100;
	expect_error(kf_vm_add_region(vm, &bad, NULL), EINVAL, "page size");
	bad.gpa = base + 4 * MB;
	bad.size = 5000;
	expect_error(kf_vm_add_region(vm, &bad, NULL), EINVAL, "page size");
	bad.size = 0;
	expect_error(kf_vm_add_region(vm, &bad, NULL), EINVAL, "page size");
	bad.size = MB;
	bad.flags = 1u << 20;
	expect_error(kf_vm_add_region(vm, &bad, NULL), EINVAL, "unknown memslot flags");
	bad.flags = 0;
	bad.gpa = 1ULL << 52;
	expect_error(kf_vm_add_region(vm, &bad, NULL), EINVAL, "physical limit");
#if defined(__x86_64__)
	expect_error(kf_vm_enable_mte(vm), EOPNOTSUPP, "arm64");
#else
	/* After a region: KVM would refuse its memory only at run time. */
	expect_error(kf_vm_enable_mte(vm), EBUSY, "before adding regions");
	/* The ucall block has no memory: a ucall is an MMIO exit there. */
	bad.gpa = KF_ARCH_UCALL_GPA - getpagesize();
	bad.size = 2 * getpagesize();
	expect_error(kf_vm_add_region(vm, &bad, NULL), EINVAL, "ucall block");
	bad.size = MB;
#endif
	bad.gpa = base + 4 * MB;
	bad.backing = KF_BACKING_USER;
	bad.hva = NULL;
	expect_error(kf_vm_add_region(vm, &bad, NULL), EINVAL, "host address");
	bad.backing = 17;
	expect_error(kf_vm_add_region(vm, &bad, NULL), EINVAL, "unknown backing");

	expect_error(kf_vm_remove_region(vm, KF_SYSTEM_SLOT), EBUSY, "slot 0");
	expect_error(kf_vm_remove_region(vm, 40), ENOENT, "no memslot 40");
	expect_error(kf_vm_remove_region(vm, 1000), ENOENT, "no memslot 1000");
	expect_error(kf_vm_set_region_flags(vm, 40, 0), ENOENT, "no memslot");

	expect_error(kf_vcpu_add(vm, kf_vm_max_vcpus(vm), guest_fill, 0, &vcpu),
		     EINVAL, "at most");
	expect_error(kf_vcpu_add(vm, 0, NULL, 0, &vcpu), EINVAL, "guest function");
	TEST_OK(kf_vcpu_add(vm, 0, guest_fill, 0, &vcpu));
	expect_error(kf_vcpu_add(vm, 0, guest_fill, 0, &dup), EEXIST, "exists");
	TEST_ASSERT(!dup, "a refused vCPU was returned");
	expect_error(kf_vcpu_join(vcpu), EINVAL, "not started");
	expect_error(kf_vcpu_join(NULL), EINVAL, "no vCPU");
	expect_error(kf_vcpu_start(NULL, NULL), EINVAL, "no vCPU");
	expect_error(kf_vcpu_run(NULL, NULL), EINVAL, "no vCPU");
}

static void test_flags_only_update(struct kf_vm *vm)
{
	struct kf_region r = { .size = MB, .backing = KF_BACKING_MEMFD };
	const struct kf_memslot *ms;
	uint64_t bitmap[MB / KF_PAGE_SIZE / 64];

	r.gpa = kf_vm_free_gpa(vm) + 8 * MB;
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	TEST_ASSERT(ms->memfd >= 0, "memfd backing has no fd");
	TEST_OK(kf_vm_set_region_flags(vm, ms->slot, KVM_MEM_LOG_DIRTY_PAGES));
	TEST_ASSERT_EQ(ms->flags, KVM_MEM_LOG_DIRTY_PAGES);
	TEST_OK(kf_vm_get_dirty_log(vm, ms->slot, bitmap));
	TEST_OK(kf_vm_set_region_flags(vm, ms->slot, 0));
	TEST_ASSERT_EQ(ms->flags, 0);
	TEST_ASSERT(kf_vm_get_dirty_log(vm, ms->slot, bitmap) < 0,
		    "dirty log of a slot without logging");
	TEST_OK(kf_vm_remove_region(vm, ms->slot));
}

int main(void)
{
	struct kf_vcpu_ops ops = { .sync = on_sync, .exit = on_vm_exit };
	struct kf_vm *vm;

	kf_test_require_kvm();
	TEST_OK(kf_vm_create(&vm));
	test_bad_input(vm);
	test_flags_only_update(vm);
	TEST_OK(kf_vm_sync_to_guest(vm, &mmio_exits, sizeof(mmio_exits)));
	expect_error(kf_vm_sync_to_guest(vm, (void *)(uintptr_t)(3ULL << 40), 8),
		     EFAULT, "not guest memory");
	/* vCPU 0 exists from test_bad_input, at guest_fill(0): restart it. */
	kf_vm_destroy(vm);

	TEST_OK(kf_vm_create(&vm));
	{
		struct kf_region r = { .size = MB, .backing = KF_BACKING_ANON };
		struct kf_vcpu *vcpu;

		r.gpa = kf_vm_free_gpa(vm);
		TEST_OK(kf_vm_add_region(vm, &r, NULL));
		TEST_OK(kf_vcpu_add(vm, 0, guest_fill, r.gpa, &vcpu));
		TEST_OK(kf_vcpu_run(vcpu, &ops));
		TEST_ASSERT_EQ(mmio_exits, 1);
	}
	kf_vm_destroy(vm);
	TEST_PASS("memslots added, used, re-flagged, removed; bad input refused");
}
