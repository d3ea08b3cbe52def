/* SPDX-License-Identifier: MIT */
/*
 * Private memory: VMs whose pages are either private to the guest (backed
 * by a guest_memfd the host cannot read) or shared with the host (backed by
 * the slot's ordinary mapping), and conversions between the two.
 *
 *   kf_vm_create_type(&vm, KF_VM_TYPE_SW_PROTECTED);
 *   kf_vm_add_region(vm, &(struct kf_region){ ..., .flags =
 *                    KVM_MEM_GUEST_MEMFD, .guest_memfd = -1 }, &ms);
 *   kf_vm_enable_conversions(vm, policy, opaque);
 *   kf_vm_run_all(vm, ops);
 *
 * Every page starts shared.  A guest asks for a conversion explicitly with
 * kf_guest_map_gpa_range() (KVM_HC_MAP_GPA_RANGE, a KVM_EXIT_HYPERCALL), or,
 * in a VM with a shared bit (kf_vm_set_shared_bit()), implicitly by
 * accessing a page in the other state (a memory-fault exit whose PRIVATE
 * flag differs from the page's state).  The vCPU loop sends both to the
 * conversion handler, and only a fault on a shared page that is shared
 * goes on to ops->memory_fault (the demand-paging engine), so the engine
 * sees shared faults only.  The repeated-fault guard of <kvmfault/vcpu.h>
 * counts implicit conversions like any other fault.  docs/private-memory.md
 * has the details.
 *
 * A conversion destroys the contents of the range: after it the range reads
 * as zero in its new state (the pages it leaves are released: MADV_REMOVE
 * or MADV_DONTNEED of the shared mapping, FALLOC_FL_PUNCH_HOLE of the
 * guest_memfd).
 *
 * Snapshots and migration refuse VMs with guest_memfd slots: private pages
 * cannot be read from userspace on the kernels this library targets.
 */
#ifndef KVMFAULT_PRIVATE_MEM_H
#define KVMFAULT_PRIVATE_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include <kvmfault/vm.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

enum kf_conversion_cause {
	KF_CONVERSION_EXPLICIT,	/* the guest's KVM_HC_MAP_GPA_RANGE */
	KF_CONVERSION_IMPLICIT,	/* an access in the other state */
};

struct kf_conversion {
	uint64_t gpa;
	uint64_t size;
	bool to_private;
	enum kf_conversion_cause cause;
	unsigned int vcpu_id;
};

/*
 * The VMM's policy, called on the vCPU thread before a valid request is
 * carried out: 0 converts; a negative errno refuses, and then an explicit
 * request fails in the guest with that error (the hypercall returns it)
 * while an implicit one stops the vCPU with it.  Log from here if wanted.
 */
typedef int (*kf_conversion_policy)(void *opaque,
				    const struct kf_conversion *conversion);

/*
 * Let this VM's vCPUs convert memory: enables the KVM_HC_MAP_GPA_RANGE exit
 * (KVM_CAP_EXIT_HYPERCALL, which replaces any other hypercall exits the VMM
 * enabled) and routes conversion exits as described above.  Once a VM;
 * policy NULL allows every valid request.  -EOPNOTSUPP for a VM without
 * private memory (KVM_CAP_MEMORY_ATTRIBUTES), -EBUSY the second time.
 */
int kf_vm_enable_conversions(struct kf_vm *vm, kf_conversion_policy policy,
			     void *opaque);

/*
 * Make [gpa, gpa + size) private or shared (KVM_SET_MEMORY_ATTRIBUTES) and
 * release what the range leaves.  gpa and size must be page aligned and
 * non-zero, the range must lie in guest memory without holes (it may span
 * slots), and can become private only where its slots have a guest_memfd:
 * else -EINVAL with a message, and nothing changed.  With a shared bit the
 * range may be named by its alias.
 */
int kf_vm_convert(struct kf_vm *vm, uint64_t gpa, uint64_t size,
		  bool to_private);

/*
 * The kvmfault 6.12 series' development vehicle for implicit conversions
 * (KVM_CAP_X86_SW_PROTECTED_SHARED_BIT): in a software-protected VM, the
 * guest accesses a guest_memfd slot as private at gpa and as shared at
 * gpa | 1 << bit, as with TDX's shared bit, so an access in the other state
 * is an implicit conversion request.  The library maps the shared memory of
 * each guest_memfd slot a second time at its alias (a memslot of its own),
 * which the guest's page tables map too.  Call before adding guest_memfd
 * regions and vCPUs; every guest_memfd region must then lie below the bit.
 * -EOPNOTSUPP where the kernel lacks the capability.
 */
int kf_vm_set_shared_bit(struct kf_vm *vm, unsigned int bit);

/* Where the guest accesses gpa as shared: gpa | 1 << bit, or gpa itself
 * when the VM has no shared bit. */
uint64_t kf_vm_shared_alias(struct kf_vm *vm, uint64_t gpa);

/* Whether the page at gpa is private now. */
bool kf_vm_page_is_private(struct kf_vm *vm, uint64_t gpa);

/* 0 when vm has no guest_memfd slot, else -EOPNOTSUPP naming what refuses:
 * "snapshot", "migration". */
int kf_vm_check_no_private(struct kf_vm *vm, const char *what);

KF_API_END

#endif
