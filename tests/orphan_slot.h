/* SPDX-License-Identifier: MIT */
/*
 * The one real KVM_EXIT_MEMORY_FAULT a stock 6.8+ host gives (FACTS.md):
 * a guest_memfd (MMAP, INIT_SHARED) memslot whose file is unmapped and
 * closed while the slot stays.  Shared by the host tests that need exit 39.
 */
#ifndef KVMFAULT_TESTS_ORPHAN_SLOT_H
#define KVMFAULT_TESTS_ORPHAN_SLOT_H

#include <errno.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

/* Add [gpa, gpa + size) as such a slot; -EOPNOTSUPP where the host lacks it. */
static inline int add_orphaned_guest_memfd_slot(struct kf_vm *vm, uint64_t gpa,
						uint64_t size)
{
	struct kvm_create_guest_memfd cg = {
		.size = size,
		.flags = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED,
	};
	struct kf_region r = {
		.gpa = gpa, .size = size, .flags = KVM_MEM_GUEST_MEMFD,
		.backing = KF_BACKING_USER,
	};
	int fd;

	if (!kf_check_cap(kf_vm_fd(vm), KVM_CAP_GUEST_MEMFD) ||
	    (kf_check_cap(kf_vm_fd(vm), KVM_CAP_GUEST_MEMFD_FLAGS) & 3) != 3)
		return -EOPNOTSUPP;
	fd = ioctl(kf_vm_fd(vm), KVM_CREATE_GUEST_MEMFD, &cg);
	TEST_ASSERT(fd >= 0, "KVM_CREATE_GUEST_MEMFD: %m");
	r.hva = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(r.hva != MAP_FAILED, "mmap guest_memfd: %m");
	r.guest_memfd = fd;
	TEST_OK(kf_vm_add_region(vm, &r, NULL));
	munmap(r.hva, size);
	close(fd);
	return 0;
}

#endif
