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

#include <pthread.h>
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

struct kf_memslot {
	bool used;
	uint32_t slot;
	uint32_t flags;
	uint64_t gpa;
	uint64_t size;
	void *hva;
	int memfd;		/* KF_BACKING_MEMFD: the file, else -1 */
	bool owned;		/* the library mapped hva and unmaps it */
	int guest_memfd;
	uint64_t guest_memfd_offset;
	bool guest_memfd_owned;	/* the library created it and closes it */
	uint32_t alias_slot;	/* its shared alias (kf_vm_set_shared_bit), 0 if none */
	bool alias;		/* this slot is another's shared alias */
	uint64_t *private_pages;	/* guest_memfd slots: one bit a private page */
	bool engine;		/* a fault engine serves it (vm->lock) */
};

struct kf_engine;
struct kf_conversions;

struct kf_vm {
	int kvm_fd;
	int fd;
	int run_size;
	pthread_mutex_t lock;
	struct kf_memslot slots[KF_MAX_SLOTS];
	struct kf_vcpu *vcpus[KF_MAX_VCPUS];
	unsigned int nr_vcpus;
	unsigned int max_vcpus;
	unsigned long type;	/* KVM_CREATE_VM's type: KF_VM_TYPE_* */
	bool fault_access;	/* exits carry READ/WRITE/EXEC (enabled) */
	struct kf_conversions *conversions;	/* private_mem.c, when enabled */
	uint64_t shared_bit;	/* kf_vm_set_shared_bit(): 1 << bit, or 0 */
	int poison_policy;	/* enum kf_poison_policy */
	struct kf_engine *engine;	/* its fault engine (vm_engine.c) */
	void *arch;		/* struct kf_x86_vm */
};

/* VM types of KVM_CREATE_VM (KVM_CAP_VM_TYPES lists what a kernel has). */
#define KF_VM_TYPE_DEFAULT 0		/* KVM_X86_DEFAULT_VM */
#define KF_VM_TYPE_SW_PROTECTED 1	/* KVM_X86_SW_PROTECTED_VM: private memory */

/* Create a VM with the program image in slot 0, ready for vCPUs. */
int kf_vm_create(struct kf_vm **vmp);
/* The same for a VM of another type (-EOPNOTSUPP when the kernel lacks it). */
int kf_vm_create_type(struct kf_vm **vmp, unsigned long type);
/* 1 when this kernel creates VMs of type, 0 when not, -errno without KVM. */
int kf_vm_type_supported(unsigned long type);
void kf_vm_destroy(struct kf_vm *vm);

/*
 * Add memory as a new memslot.  gpa and size must be page aligned, must not
 * overlap another slot and must lie below the guest's physical address
 * limit.  The guest's page tables map the region identity (gva == gpa).
 */
int kf_vm_add_region(struct kf_vm *vm, const struct kf_region *region,
		     struct kf_memslot **slotp);

/*
 * Delete a memslot (its mapping is unmapped if the library made it).
 * -EBUSY while a fault engine serves the slot: destroy the engine first.
 */
int kf_vm_remove_region(struct kf_vm *vm, uint32_t slot);

/* Change only the flags of a memslot (KVM_MR_FLAGS_ONLY). */
int kf_vm_set_region_flags(struct kf_vm *vm, uint32_t slot, uint32_t flags);

/* The slot containing gpa, or NULL. */
struct kf_memslot *kf_vm_find_slot(struct kf_vm *vm, uint64_t gpa);

/* The host address of gpa, or NULL when no slot has it. */
void *kf_vm_gpa_to_hva(struct kf_vm *vm, uint64_t gpa);

/* Copy size bytes between this process and the guest's copy of addr. */
int kf_vm_sync_to_guest(struct kf_vm *vm, const void *addr, size_t size);
int kf_vm_sync_from_guest(struct kf_vm *vm, void *addr, size_t size);

#define KF_SYNC_GLOBAL_TO_GUEST(vm, var) \
	kf_vm_sync_to_guest(vm, &(var), sizeof(var))
#define KF_SYNC_GLOBAL_FROM_GUEST(vm, var) \
	kf_vm_sync_from_guest(vm, &(var), sizeof(var))

/* KVM_GET_DIRTY_LOG for a slot into bitmap (one bit a page, size/4096 bits). */
int kf_vm_get_dirty_log(struct kf_vm *vm, uint32_t slot, uint64_t *bitmap);

/* Where guest test memory may start: above the system slot. */
uint64_t kf_vm_free_gpa(struct kf_vm *vm);

KF_API_END

#endif
