/* SPDX-License-Identifier: MIT */
/*
 * KVM UAPI that kvmfault needs beyond the 6.1 headers that Debian 12 ships.
 *
 * Values merged upstream (Linux 6.8 onwards) carry their upstream numbers, so
 * a VMM built against this header keeps working on upstream kernels.  The
 * exit-on-missing memslot flag and its capability belong to the kvmfault
 * kernel series (kernel/patches/).  Every definition is guarded, so newer
 * system headers win; kernel/uapi-check.sh compares each value against
 * the patched kernel's own header.
 */
#ifndef KVMFAULT_UAPI_H
#define KVMFAULT_UAPI_H

#include <linux/kvm.h>
#include <linux/types.h>
#include <stddef.h>

/* --- KVM_EXIT_MEMORY_FAULT (upstream 6.8) --- */
#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif
#ifndef KVM_CAP_MEMORY_FAULT_INFO
#define KVM_CAP_MEMORY_FAULT_INFO 232
#endif

/*
 * memory_fault.flags: arch-neutral access bits (kvmfault kernel series, set
 * only if the VM enabled KVM_CAP_MEMORY_FAULT_ACCESS) and the kind of memory
 * (PRIVATE, upstream).
 */
#ifndef KVM_MEMORY_EXIT_FLAG_READ
#define KVM_MEMORY_EXIT_FLAG_READ (1ULL << 0)
#endif
#ifndef KVM_MEMORY_EXIT_FLAG_WRITE
#define KVM_MEMORY_EXIT_FLAG_WRITE (1ULL << 1)
#endif
#ifndef KVM_MEMORY_EXIT_FLAG_EXEC
#define KVM_MEMORY_EXIT_FLAG_EXEC (1ULL << 2)
#endif
#ifndef KVM_MEMORY_EXIT_FLAG_PRIVATE
#define KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)
#endif

/*
 * kvm_run.memory_fault sits in the exit union, at the same offset as every
 * other exit's data.  Headers older than 6.8 lack the member, so kvmfault
 * reads it through this view of the union.
 */
struct kf_kvm_memory_fault {
	__u64 flags;
	__u64 gpa;
	__u64 size;
};

#define KF_KVM_RUN_EXIT_UNION_OFFSET offsetof(struct kvm_run, mmio)

static inline const struct kf_kvm_memory_fault *
kf_run_memory_fault(const struct kvm_run *run)
{
	return (const struct kf_kvm_memory_fault *)
		((const char *)run + KF_KVM_RUN_EXIT_UNION_OFFSET);
}

/* --- KVM_SET_USER_MEMORY_REGION2 and guest_memfd (upstream 6.8) --- */
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231
#endif
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES 233
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
#endif
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif
#ifndef KVM_CAP_GUEST_MEMFD_FLAGS
#define KVM_CAP_GUEST_MEMFD_FLAGS 244
#endif

#ifndef KVM_MEM_GUEST_MEMFD
#define KVM_MEM_GUEST_MEMFD (1UL << 2)
#endif

#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 \
	_IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif

#ifndef KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
	__u64 size;
	__u64 flags;
	__u64 reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif
#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#endif
#ifndef GUEST_MEMFD_FLAG_INIT_SHARED
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)
#endif

#ifndef KVM_SET_MEMORY_ATTRIBUTES
struct kvm_memory_attributes {
	__u64 address;
	__u64 size;
	__u64 attributes;
	__u64 flags;
};
#define KVM_SET_MEMORY_ATTRIBUTES _IOW(KVMIO, 0xd2, struct kvm_memory_attributes)
#endif
#ifndef KVM_MEMORY_ATTRIBUTE_PRIVATE
#define KVM_MEMORY_ATTRIBUTE_PRIVATE (1ULL << 3)
#endif

/*
 * --- kvmfault kernel series (not upstream) ---
 *
 * Upstream allocates memslot flags from bit 3 upwards (bit 2 is
 * KVM_MEM_GUEST_MEMFD since 6.8, so also on 6.12; bit 3 is KVM_MEM_USERFAULT
 * in the posted KVM Userfault series; bits 16-31 are KVM-internal) and
 * capability numbers sequentially (about 246 at 6.18).  These values are
 * chosen away from both: the highest userspace flag bit, and capabilities
 * above 511.  That avoids upstream's next assignments but cannot rule out a
 * collision; the numbers would be reassigned on an upstream submission.
 */
#ifndef KVM_MEM_EXIT_ON_MISSING
#define KVM_MEM_EXIT_ON_MISSING (1UL << 15)
#endif
#ifndef KVM_CAP_EXIT_ON_MISSING
#define KVM_CAP_EXIT_ON_MISSING 512
#endif
/* VM capability (KVM_ENABLE_CAP, before vCPUs): access flags in exits. */
#ifndef KVM_CAP_MEMORY_FAULT_ACCESS
#define KVM_CAP_MEMORY_FAULT_ACCESS 513
#endif
/*
 * VM capability of the 6.12 series' development vehicle (software-protected
 * VMs only, before vCPUs): args[0] is a GPA bit that marks an access to a
 * guest_memfd slot as shared, so that a guest can trigger implicit
 * conversions.
 */
/* x86's KVM_HC_MAP_GPA_RANGE attribute (asm/kvm_para.h), for code that
 * decodes the hypercall on every architecture. */
#ifndef KVM_MAP_GPA_RANGE_ENCRYPTED
#define KVM_MAP_GPA_RANGE_ENCRYPTED (1 << 4)
#endif

#ifndef KVM_CAP_X86_SW_PROTECTED_SHARED_BIT
#define KVM_CAP_X86_SW_PROTECTED_SHARED_BIT 514
#endif

#endif /* KVMFAULT_UAPI_H */
