// SPDX-License-Identifier: MIT
/*
 * Capabilities and memslot flags of the kvmfault kernel series: the values
 * (upstream's 232 for KVM_CAP_MEMORY_FAULT_INFO, 512 for
 * KVM_CAP_EXIT_ON_MISSING), both informational (KVM_ENABLE_CAP fails with
 * EINVAL), and which KVM_MEM_EXIT_ON_MISSING combinations the memslot ioctl
 * accepts: at creation, toggled by a flags-only update, never with
 * KVM_MEM_READONLY; unknown flags stay refused.  On a kernel with only
 * patches 1-2 (no capability 512) the flag must be refused.
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

static void expect_enable_cap_einval(int fd, uint32_t cap, const char *what)
{
	struct kvm_enable_cap ec = { .cap = cap };

	errno = 0;
	TEST_ASSERT(ioctl(fd, KVM_ENABLE_CAP, &ec) == -1 && errno == EINVAL,
		    "KVM_ENABLE_CAP(%u) on the %s: expected EINVAL, got %s",
		    cap, what, strerror(errno));
}

int main(void)
{
	int kvm, vm, vcpu;
	void *mem;
	uint32_t bit;
	bool eom;

	kt_require_annotations();
	kvm = kf_kvm_open();
	TEST_ASSERT(kvm >= 0, "open /dev/kvm");
	eom = kf_check_cap(kvm, KVM_CAP_EXIT_ON_MISSING) > 0;

	/* Values: the numbers themselves are compile-time UAPI, check them. */
	TEST_ASSERT_EQ(KVM_CAP_MEMORY_FAULT_INFO, 232);
	TEST_ASSERT_EQ(KVM_CAP_EXIT_ON_MISSING, 512);
	TEST_ASSERT_EQ(KVM_EXIT_MEMORY_FAULT, 39);
	TEST_ASSERT_EQ(KVM_MEM_EXIT_ON_MISSING, 1u << 3);
	TEST_ASSERT_EQ(kf_check_cap(kvm, KVM_CAP_MEMORY_FAULT_INFO), 1);

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	TEST_ASSERT(vm >= 0, "KVM_CREATE_VM: %s", strerror(errno));
	TEST_ASSERT_EQ(kf_check_cap(vm, KVM_CAP_MEMORY_FAULT_INFO), 1);
	TEST_ASSERT_EQ(kf_check_cap(vm, KVM_CAP_EXIT_ON_MISSING), eom);
	/* Nothing in between: no capability of upstream's range is claimed. */
	TEST_ASSERT_EQ(kf_check_cap(vm, 511), 0);
	TEST_ASSERT_EQ(kf_check_cap(vm, 513), 0);

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

	/* Refused: with READONLY, and every bit the kernel does not know. */
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING | KVM_MEM_READONLY,
				GPA, SIZE, mem), -EINVAL);
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING | KVM_MEM_READONLY |
				KVM_MEM_LOG_DIRTY_PAGES, GPA, SIZE, mem), -EINVAL);
	for (bit = 2; bit < 32; bit++) {
		if (bit == 3)
			continue;
		TEST_ASSERT_EQ(set_slot(vm, 1, 1u << bit, GPA, SIZE, mem), -EINVAL);
		TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING | (1u << bit),
					GPA, SIZE, mem), -EINVAL);
	}

	/* Accepted at creation, alone and with dirty logging. */
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING, GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 2, KVM_MEM_EXIT_ON_MISSING |
				KVM_MEM_LOG_DIRTY_PAGES, 2 * GPA, SIZE, mem), 0);

	/* Toggled by flags-only updates, alone and together with dirty logging. */
	TEST_ASSERT_EQ(set_slot(vm, 1, 0, GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING, GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_LOG_DIRTY_PAGES, GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 1, KVM_MEM_EXIT_ON_MISSING |
				KVM_MEM_LOG_DIRTY_PAGES, GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 2, KVM_MEM_LOG_DIRTY_PAGES, 2 * GPA, SIZE, mem), 0);

	/* A READONLY slot cannot gain the flag, and the flag cannot go RO. */
	TEST_ASSERT_EQ(set_slot(vm, 3, KVM_MEM_READONLY, 3 * GPA, SIZE, mem), 0);
	TEST_ASSERT_EQ(set_slot(vm, 3, KVM_MEM_READONLY | KVM_MEM_EXIT_ON_MISSING,
				3 * GPA, SIZE, mem), -EINVAL);
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
	TEST_PASS("caps 232/512 informational; EXIT_ON_MISSING flag rules hold");
}
