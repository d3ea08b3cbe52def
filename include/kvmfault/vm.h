/* SPDX-License-Identifier: MIT */
/*
 * Virtual machines and their memory.
 *
 * kf_vm_create() makes a VM whose slot 0 holds a copy of this program's own
 * image at the addresses it has in this process, identity-mapped, so guest
 * C code in the program runs in the guest (see include/kvmfault/guest.h).
 * Further memory is added as regions, one memslot each.
 */
#ifndef KVMFAULT_VM_H
#define KVMFAULT_VM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kvmfault/limits.h>
#include <kvmfault/uapi.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

#define KF_SYSTEM_SLOT 0

struct kf_vcpu;

enum kf_backing {
	KF_BACKING_ANON,	/* private anonymous memory */
	KF_BACKING_MEMFD,	/* a memfd (shmem), shared mapping: MINOR faults */
	KF_BACKING_USER,	/* memory the caller mapped: hva */
};

struct kf_region {
	uint64_t gpa;
	uint64_t size;
	uint32_t flags;		/* KVM_MEM_* */
	enum kf_backing backing;
	void *hva;		/* KF_BACKING_USER only */
	/*
	 * With KVM_MEM_GUEST_MEMFD in flags: the guest_memfd to bind
	 * (KVM_SET_USER_MEMORY_REGION2), or < 0 for one the library creates
	 * with the region's size and closes with the slot.  Such a slot can
	 * be private (<kvmfault/private_mem.h>).
	 */
	int guest_memfd;
	uint64_t guest_memfd_offset;
};

/*
 * A memslot of a VM, as kf_vm_add_region(), kf_vm_find_slot() and
 * kf_vm_slot() hand it out.  The library allocates it and keeps it up to
 * date (flags follow kf_vm_set_region_flags()); it stays valid until the
 * slot is removed or the VM destroyed.  Callers only read it: never write,
 * copy or embed it, since later versions may add fields at its end.
 */
struct kf_memslot {
	uint32_t slot;
	uint32_t flags;		/* KVM_MEM_* */
	uint64_t gpa;
	uint64_t size;
	void *hva;
	int memfd;		/* KF_BACKING_MEMFD: the file, else -1 */
	int guest_memfd;	/* KVM_MEM_GUEST_MEMFD: the file, else -1 */
	uint64_t guest_memfd_offset;
};

/*
 * A VM: an opaque handle that kf_vm_create() makes and kf_vm_destroy()
 * frees.  Its memslots and vCPUs are found with the functions below.
 */
struct kf_vm;

/* VM types of KVM_CREATE_VM (KVM_CAP_VM_TYPES lists what a kernel has). */
#define KF_VM_TYPE_DEFAULT 0		/* KVM_X86_DEFAULT_VM */
#define KF_VM_TYPE_SW_PROTECTED 1	/* KVM_X86_SW_PROTECTED_VM: private memory */

/* Create a VM with the program image in slot 0, ready for vCPUs. */
int kf_vm_create(struct kf_vm **vmp);
/* The same for a VM of another type (-EOPNOTSUPP when the kernel lacks it). */
int kf_vm_create_type(struct kf_vm **vmp, unsigned long type);
/*
 * arm64: a VM of phys_bits guest physical address bits (the IPA size,
 * 32 up to KVM's limit and the identity map's 48; kf_vm_create() gives
 * 40, or KVM's limit when that is lower).  -EOPNOTSUPP on x86, whose VMs
 * have the host's width.
 */
int kf_vm_create_phys_bits(struct kf_vm **vmp, unsigned int phys_bits);
/* 1 when this kernel creates VMs of type, 0 when not, -errno without KVM. */
int kf_vm_type_supported(unsigned long type);
void kf_vm_destroy(struct kf_vm *vm);

/*
 * Add memory as a new memslot.  gpa and size must be page aligned, must not
 * overlap another slot and must lie below the guest's physical address
 * limit.  The guest's page tables map the region identity (gva == gpa).
 */
int kf_vm_add_region(struct kf_vm *vm, const struct kf_region *region,
		     const struct kf_memslot **slotp);

/*
 * Delete a memslot (its mapping is unmapped if the library made it).
 * -EBUSY while a fault engine serves the slot: destroy the engine first.
 */
int kf_vm_remove_region(struct kf_vm *vm, uint32_t slot);

/* Change only the flags of a memslot (KVM_MR_FLAGS_ONLY). */
int kf_vm_set_region_flags(struct kf_vm *vm, uint32_t slot, uint32_t flags);

/* The slot containing gpa, or NULL. */
const struct kf_memslot *kf_vm_find_slot(struct kf_vm *vm, uint64_t gpa);

/* Memslot slot (0 to KF_MAX_SLOTS - 1), or NULL when it is not in use. */
const struct kf_memslot *kf_vm_slot(const struct kf_vm *vm, uint32_t slot);

/* The host address of gpa, or NULL when no slot has it. */
void *kf_vm_gpa_to_hva(struct kf_vm *vm, uint64_t gpa);

/* Copy size bytes between this process and the guest's copy of addr. */
int kf_vm_sync_to_guest(struct kf_vm *vm, const void *addr, size_t size);
int kf_vm_sync_from_guest(struct kf_vm *vm, void *addr, size_t size);

#define KF_SYNC_GLOBAL_TO_GUEST(vm, var) \
	kf_vm_sync_to_guest(vm, &(var), sizeof(var))
#define KF_SYNC_GLOBAL_FROM_GUEST(vm, var) \
	kf_vm_sync_from_guest(vm, &(var), sizeof(var))

/* KVM_GET_DIRTY_LOG for a slot into bitmap: one bit a KF_PAGE_SIZE page
 * (size/4096 bits), a larger host page's bit repeated over its pages. */
int kf_vm_get_dirty_log(struct kf_vm *vm, uint32_t slot, uint64_t *bitmap);

/* Where guest test memory may start: above the system slot. */
uint64_t kf_vm_free_gpa(struct kf_vm *vm);

/* The VM's file descriptor (KVM_CREATE_VM), for ioctls of the caller's. */
int kf_vm_fd(const struct kf_vm *vm);

/*
 * Whether the VM's memory fault exits say whether the guest read, wrote
 * or fetched (KVM_CAP_MEMORY_FAULT_ACCESS, enabled where the kernel has it).
 */
bool kf_vm_fault_access(const struct kf_vm *vm);

/*
 * Give the guest the Memory Tagging Extension (arm64, KVM_CAP_ARM_MTE;
 * -EOPNOTSUPP elsewhere): before the first vCPU (-EBUSY after).  Guest
 * memory is then mapped as Normal Tagged memory and guest code at EL1 may
 * load and store allocation tags (LDG, STG); every region must be
 * anonymous or memfd memory (KVM refuses others).  Snapshots and migration
 * refuse such a VM: they do not carry allocation tags yet.
 */
int kf_vm_enable_mte(struct kf_vm *vm);

/* Whether kf_vm_enable_mte() gave the VM MTE. */
bool kf_vm_mte(const struct kf_vm *vm);

/* How many vCPUs the VM takes: vCPU ids 0 to kf_vm_max_vcpus() - 1. */
unsigned int kf_vm_max_vcpus(const struct kf_vm *vm);

/* vCPU id of the VM (kf_vcpu_add()), or NULL when there is none. */
struct kf_vcpu *kf_vm_vcpu(const struct kf_vm *vm, unsigned int id);

KF_API_END

#endif
