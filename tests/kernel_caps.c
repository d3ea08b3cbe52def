// SPDX-License-Identifier: MIT
/*
 * Capabilities and memslot flags of the kvmfault kernel series: the values
 * (upstream's 232 for KVM_CAP_MEMORY_FAULT_INFO, 512 for
 * KVM_CAP_EXIT_ON_MISSING, 513 for KVM_CAP_MEMORY_FAULT_ACCESS, bit 15 for
 * KVM_MEM_EXIT_ON_MISSING); 232 and 512 informational (KVM_ENABLE_CAP
 * fails with EINVAL), 232 not advertised on arm64, whose exits need
 * KVM_MEM_EXIT_ON_MISSING; 513 enabled on the VM only with zero flags and args
 * and only before the first vCPU (EBUSY after); and which
 * KVM_MEM_EXIT_ON_MISSING combinations the memslot ioctl accepts: at
 * creation, with KVM_MEM_READONLY and dirty logging too, toggled by a
 * flags-only update; unknown flags stay refused.  On a kernel without
 * capability 512 the flag must be refused.
 */
#include <sys/mman.h>

#include "kernel_common.h"

#define SIZE (2ULL << 20)
#define GPA (1ULL << 30)

static int set_slot(int vm, uint32_t slot, uint32_t flags, uint64_t gpa,
		    uint64_t size, void *hva)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = (uintptr_t)hva,
	};

	return ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) ? -errno : 0;
}

static int enable_cap(int fd, uint32_t cap, uint32_t flags, uint64_t arg0)
{
	struct kvm_enable_cap ec = { .cap = cap, .flags = flags,
				     .args = { arg0 } };

	return ioctl(fd, KVM_ENABLE_CAP, &ec) ? -errno : 0;
}

static void expect_enable_cap_einval(int fd, uint32_t cap, const char *what)
{
	int ret = enable_cap(fd, cap, 0, 0);

	TEST_ASSERT(ret == -EINVAL, "KVM_ENABLE_CAP(%u) on the %s: expected EINVAL, got %s",
		    cap, what, strerror(-ret));
}

/* KVM_CAP_MEMORY_FAULT_ACCESS: VM-scoped opt-in, before the first vCPU. */
static void check_fault_access_cap(int kvm)
{
	int vm, vcpu;

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	TEST_ASSERT(vm >= 0, "KVM_CREATE_VM: %s", strerror(errno));
	TEST_ASSERT_EQ(kf_check_cap(vm, KVM_CAP_MEMORY_FAULT_ACCESS), 1);
	TEST_ASSERT_EQ(enable_cap(vm, KVM_CAP_MEMORY_FAULT_ACCESS, 1, 0), -EINVAL);
	TEST_ASSERT_EQ(enable_cap(vm, KVM_CAP_MEMORY_FAULT_ACCESS, 0, 1), -EINVAL);
	TEST_ASSERT_EQ(enable_cap(vm, KVM_CAP_MEMORY_FAULT_ACCESS, 0, 0), 0);
	TEST_ASSERT_EQ(enable_cap(vm, KVM_CAP_MEMORY_FAULT_ACCESS, 0, 0), 0);
	close(vm);

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	TEST_ASSERT(vm >= 0, "KVM_CREATE_VM: %s", strerror(errno));
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	TEST_ASSERT(vcpu >= 0, "KVM_CREATE_VCPU: %s", strerror(errno));
	TEST_ASSERT_EQ(enable_cap(vm, KVM_CAP_MEMORY_FAULT_ACCESS, 0, 0), -EBUSY);
	/* A vCPU is not where it is enabled. */
	TEST_ASSERT(enable_cap(vcpu, KVM_CAP_MEMORY_FAULT_ACCESS, 0, 0) < 0,
		    "KVM_ENABLE_CAP(KVM_CAP_MEMORY_FAULT_ACCESS) succeeded on a vCPU");
	close(vcpu);
	close(vm);
}

int main(void)
{
	int kvm, vm, vcpu;
	void *mem;
	uint32_t bit;
	bool eom;
	/* arm64: the slot flag is the opt-in, 232 would add nothing. */
	int fault_info = kt_annotated_slot_flags() ? 0 : 1;

	kt_require_annotations();
	kvm = kf_kvm_open();
	TEST_ASSERT(kvm >= 0, "open /dev/kvm");
	eom = kf_check_cap(kvm, KVM_CAP_EXIT_ON_MISSING) > 0;

	/* Values: the numbers themselves are compile-time UAPI, check them. */
	TEST_ASSERT_EQ(KVM_CAP_MEMORY_FAULT_INFO, 232);
	TEST_ASSERT_EQ(KVM_CAP_EXIT_ON_MISSING, 512);
	TEST_ASSERT_EQ(KVM_CAP_MEMORY_FAULT_ACCESS, 513);
	TEST_ASSERT_EQ(KVM_EXIT_MEMORY_FAULT, 39);
	TEST_ASSERT_EQ(KVM_MEM_EXIT_ON_MISSING, 1u << 15);
	TEST_ASSERT_EQ(kf_check_cap(kvm, KVM_CAP_MEMORY_FAULT_INFO), fault_info);

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	TEST_ASSERT(vm >= 0, "KVM_CREATE_VM: %s", strerror(errno));
	TEST_ASSERT_EQ(kf_check_cap(vm, KVM_CAP_MEMORY_FAULT_INFO), fault_info);
	TEST_ASSERT_EQ(kf_check_cap(vm, KVM_CAP_EXIT_ON_MISSING), eom);
	/* Nothing around ours is claimed. */
	TEST_ASSERT_EQ(kf_check_cap(vm, 511), 0);
	TEST_ASSERT_EQ(kf_check_cap(vm, 514), 0);

	/* Informational: enabling fails with EINVAL, on the VM and a vCPU. */
	expect_enable_cap_einval(vm, KVM_CAP_MEMORY_FAULT_INFO, "VM");
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	TEST_ASSERT(vcpu >= 0, "KVM_CREATE_VCPU: %s", strerror(errno));
	expect_enable_cap_einval(vcpu, KVM_CAP_MEMORY_FAULT_INFO, "vCPU");

	mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap: %s", strerror(errno));

	if (!eom) {
		/* No capability, no flag: a capability must not lie either way. */
		TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING, GPA, SIZE, mem),
			       -EINVAL);
		TEST_ASSERT_EQ(set_slot(vm, 1, 0, GPA, SIZE, mem), 0);
		TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING, GPA, SIZE, mem),
			       -EINVAL);
		TEST_PASS("cap 232 informational; no cap 512 and the flag is refused");
	}
	expect_enable_cap_einval(vm, KVM_CAP_EXIT_ON_MISSING, "VM");
	expect_enable_cap_einval(vcpu, KVM_CAP_EXIT_ON_MISSING, "vCPU");
	/* The series that has 512 has 513 as well. */
	check_fault_access_cap(kvm);

	/* Refused: every bit the kernel does not know, alone and with ours. */
	for (bit = 2; bit < 32; bit++) {
		if (1u << bit == KVM_MEM_EXIT_ON_MISSING)
			continue;
		TEST_ASSERT_EQ(set_slot(vm, 1, 1u << bit, GPA, SIZE, mem), -EINVAL);
		TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING | (1u << bit),
					GPA, SIZE, mem), -EINVAL);
	}

	/* Accepted at creation, alone, with dirty logging, with READONLY. */
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING, GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 2, KVM_MEM_EXIT_ON_MISSING |
				KVM_MEM_LOG_DIRTY_PAGES, 2 * GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 3, KVM_MEM_EXIT_ON_MISSING | KVM_MEM_READONLY,
				3 * GPA, SIZE, mem), 0);

	/* Toggled by flags-only updates, alone and together with dirty logging. */
	TEST_ASSERT_EQ(set_slot(vm, 1, 0, GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING, GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_LOG_DIRTY_PAGES, GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING |
				KVM_MEM_LOG_DIRTY_PAGES, GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 2, KVM_MEM_LOG_DIRTY_PAGES, 2 * GPA, SIZE, mem), 0);

	/* A READONLY slot toggles the flag; READONLY itself never changes. */
	TEST_ASSERT_EQ(set_slot(vm, 3, KVM_MEM_READONLY, 3 * GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 3, KVM_MEM_READONLY | KVM_MEM_EXIT_ON_MISSING,
				3 * GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 3, KVM_MEM_EXIT_ON_MISSING, 3 * GPA, SIZE, mem),
		       -EINVAL);
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_READONLY | KVM_MEM_EXIT_ON_MISSING,
				GPA, SIZE, mem), -EINVAL);
	/* An unknown bit on an update of an existing slot is refused too. */
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING | (1u << 4),
				GPA, SIZE, mem), -EINVAL);

	/* Moving a flagged slot and deleting it work as for any slot. */
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING, 4 * GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 1, 0, 4 * GPA, 0, mem), 0);

	close(vcpu);
	close(vm);
	close(kvm);
	munmap(mem, SIZE);
	TEST_PASS("caps 232/512 informational, 513 opt-in before vCPUs; EXIT_ON_MISSING flag rules hold");
}
