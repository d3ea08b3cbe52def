/* SPDX-License-Identifier: MIT */
/*
 * Library-internal interfaces of the VM layer: the program image and the
 * arch hooks (lib/x86/, lib/arm64/).  They take the VM layer's objects as handles;
 * what is inside them is in vm_objects.h, for the library's files only.
 */
#ifndef KVMFAULT_VM_INTERNAL_H
#define KVMFAULT_VM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kvmfault/exit.h>
#include <kvmfault/ucall.h>
#include <kvmfault/vcpu.h>
#include <kvmfault/vm.h>

#include "internal.h"

/*
 * Whether this VM's system slot ms is the saved or migrated VM's
 * [gpa, +size): 0, or -err with "WHOSE system slot ... differs ...".
 */
int kf_vm_check_system_slot(const struct kf_memslot *ms, uint64_t gpa,
			    uint64_t size, int err, const char *whose);

/* The running program's loaded segments, [start, end) in its own memory. */
int kf_image_extent(uint64_t *start, uint64_t *end);
/* Copy every loaded segment to the same guest physical address. */
int kf_image_copy(struct kf_vm *vm);
/* Whether [p, p + len) lies inside the program image. */
bool kf_image_contains(const void *p, size_t len);

/*
 * Conversions (private_mem.c), for the vCPU loop of a VM that enabled them.
 * A KVM_EXIT_HYPERCALL: 0 re-enters (the guest has its answer), -errno
 * stops.  A memory fault: 1 when it is no conversion (demand paging's),
 * 0 re-enters, -errno stops.
 */
int kf_conversion_hypercall(struct kf_vcpu *vcpu);
int kf_conversion_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f);
void kf_conversions_free(struct kf_vm *vm);
/* The private-page record of a guest_memfd slot: its length in words for
 * size bytes, and whether any page of s is private. */
struct kf_slot;
size_t kf_private_record_words(uint64_t size);
bool kf_slot_has_private(const struct kf_slot *s);

/*
 * Poison (poison.c).  Around KVM_RUN, so that the SIGBUS handler knows the
 * vCPU; after every KVM_RUN: 1 when no poison hit it, 0 when handled,
 * -errno to stop; for an EHWPOISON exit: 0 or -errno.
 */
void kf_poison_enter_run(struct kf_vcpu *vcpu);
void kf_poison_leave_run(void);
int kf_poison_after_run(struct kf_vcpu *vcpu);
int kf_poison_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f);

/* Arch hooks (lib/x86/, lib/arm64/). */
/*
 * KVM_CREATE_VM's argument for vm->type and phys_bits guest physical
 * address bits (0: the default), into *kvm_type: 0, or -errno with a
 * message (arm64: sets vm->phys_bits, the IPA size).
 */
int kf_arch_vm_type(struct kf_vm *vm, unsigned int phys_bits,
		    unsigned long *kvm_type);
int kf_arch_vm_init(struct kf_vm *vm);
void kf_arch_vm_free(struct kf_vm *vm);
uint64_t kf_arch_max_gpa(struct kf_vm *vm);
uint64_t kf_arch_free_gpa(struct kf_vm *vm);
int kf_arch_map_region(struct kf_vm *vm, uint64_t gpa, uint64_t size);
int kf_arch_vcpu_init(struct kf_vcpu *vcpu, void (*guest_fn)(uint64_t),
		      uint64_t arg);
void kf_arch_vcpu_free(struct kf_vcpu *vcpu);
/* Whether [gpa, +size) may be guest memory here: 0, or -EINVAL. */
int kf_arch_check_region(struct kf_vm *vm, uint64_t gpa, uint64_t size);
/* Enable MTE for the VM (vm->mte), or -EOPNOTSUPP. */
int kf_arch_enable_mte(struct kf_vm *vm);
/*
 * The MTE allocation tags of guest memory [gpa, +len) (whole pages), one
 * byte a 16-byte granule: read into tags, or written from them (to_guest,
 * before vCPUs run and with no slot dirty-logging: newer kernels refuse
 * it then).  0, or -errno with a message: -EINVAL for a VM without MTE,
 * -EOPNOTSUPP off arm64.
 */
int kf_arch_copy_tags(struct kf_vm *vm, uint64_t gpa, uint64_t len,
		      uint8_t *tags, bool to_guest);
/* Whether this KVM can report poison to the guest: 0, or -EOPNOTSUPP. */
int kf_arch_check_inject_mce(struct kf_vm *vm);
/* Report an action-required machine check at gpa to the vCPU. */
int kf_arch_inject_mce(struct kf_vcpu *vcpu, uint64_t gpa);
/* The ucall this exit carries, or NULL when it is no ucall. */
struct kf_ucall *kf_arch_ucall(struct kf_vcpu *vcpu, const struct kf_exit *exit);
/*
 * A guest exception that a KF_UCALL_EXCEPTION reports (args: vector,
 * error code, instruction pointer, fault address), in words: on x86
 * "#PF (vector 14) at rip 0x..., error code 0x4, address 0x10".
 */
void kf_arch_exception_str(const struct kf_ucall *uc, char *buf, size_t len);
/*
 * Copy program memory as raw bytes, unseen by the sanitizers: the image
 * spans their redzones between globals, part of it like everything else.
 */
void kf_arch_raw_copy(void *dst, const void *src, size_t len);
/* Registers worth printing with an unexpected exit. */
void kf_arch_describe(struct kf_vcpu *vcpu, char *buf, size_t len);

#endif
