// SPDX-License-Identifier: MIT
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kvmfault/compiler.h>
#include <kvmfault/error.h>
#include <kvmfault/kvm.h>
#include <kvmfault/uapi.h>
#include <kvmfault/vcpu.h>
#include <kvmfault/vm.h>

#include "vm_internal.h"
#include "vm_objects.h"

#define KF_KNOWN_SLOT_FLAGS \
	(KVM_MEM_LOG_DIRTY_PAGES | KVM_MEM_READONLY | KVM_MEM_GUEST_MEMFD | \
	 KVM_MEM_EXIT_ON_MISSING)

/*
 * Memory-fault exits say whether the guest read, wrote or fetched only on
 * VMs that ask (KVM_CAP_MEMORY_FAULT_ACCESS, before the first vCPU): ask
 * wherever the kernel offers it.
 */
static int kf_vm_enable_fault_access(struct kf_vm *vm)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_MEMORY_FAULT_ACCESS };

	if (kf_check_cap(vm->fd, KVM_CAP_MEMORY_FAULT_ACCESS) <= 0)
		return 0;
	if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap))
		return kf_fail_errno(errno, "KVM_ENABLE_CAP(KVM_CAP_MEMORY_FAULT_ACCESS)");
	vm->fault_access = true;
	return 0;
}

/* Whether the KVM behind kvm_fd creates VMs of type (KVM_CAP_VM_TYPES). */
static bool kf_kvm_has_vm_type(int kvm_fd, unsigned long type)
{
	long types;

	if (type == KF_VM_TYPE_DEFAULT)
		return true;
	types = kf_check_cap(kvm_fd, KVM_CAP_VM_TYPES);
	return type < 64 && types > 0 && (types & (1L << type));
}

int kf_vm_type_supported(unsigned long type)
{
	int kvm_fd = kf_kvm_open();
	bool ret;

	if (kvm_fd < 0)
		return kvm_fd;
	ret = kf_kvm_has_vm_type(kvm_fd, type);
	close(kvm_fd);
	return ret;
}

static int kf_vm_create_common(struct kf_vm **vmp, unsigned long type,
			       unsigned int phys_bits);

int kf_vm_create(struct kf_vm **vmp)
{
	return kf_vm_create_common(vmp, KF_VM_TYPE_DEFAULT, 0);
}

int kf_vm_create_type(struct kf_vm **vmp, unsigned long type)
{
	return kf_vm_create_common(vmp, type, 0);
}

int kf_vm_create_phys_bits(struct kf_vm **vmp, unsigned int phys_bits)
{
	if (!phys_bits)
		return kf_fail(EINVAL, "a VM of 0 guest physical address bits");
	return kf_vm_create_common(vmp, KF_VM_TYPE_DEFAULT, phys_bits);
}

static int kf_vm_create_common(struct kf_vm **vmp, unsigned long type,
			       unsigned int phys_bits)
{
	unsigned long kvm_type;
	struct kf_vm *vm;
	long max;
	int ret;

	*vmp = NULL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return kf_fail(ENOMEM, "out of memory for a VM");
	vm->fd = -1;
	pthread_mutex_init(&vm->lock, NULL);

	vm->kvm_fd = kf_kvm_open();
	if (vm->kvm_fd < 0) {
		ret = vm->kvm_fd;
		free(vm);
		return ret;
	}
	vm->type = type;
	if (!kf_kvm_has_vm_type(vm->kvm_fd, type)) {
		ret = kf_fail(EOPNOTSUPP, "this kernel has no VM type %lu (KVM_CAP_VM_TYPES 0x%lx)",
			      type, kf_check_cap(vm->kvm_fd, KVM_CAP_VM_TYPES));
		goto fail;
	}
	ret = kf_arch_vm_type(vm, phys_bits, &kvm_type);
	if (ret)
		goto fail;
	vm->fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, kvm_type);
	if (vm->fd < 0) {
		ret = kf_fail_errno(errno, "KVM_CREATE_VM(type %lu)", type);
		goto fail;
	}
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size < (int)sizeof(struct kvm_run)) {
		ret = kf_fail_errno(errno, "KVM_GET_VCPU_MMAP_SIZE");
		goto fail;
	}
	max = kf_check_cap(vm->fd, KVM_CAP_MAX_VCPUS);
	if (max <= 0)
		max = kf_check_cap(vm->kvm_fd, KVM_CAP_NR_VCPUS);
	vm->max_vcpus = KF_MIN(max > 0 ? (unsigned long)max : 1UL,
			       (unsigned long)KF_MAX_VCPUS);

	ret = kf_vm_enable_fault_access(vm);
	if (ret)
		goto fail;
	ret = kf_arch_vm_init(vm);
	if (ret)
		goto fail;
	*vmp = vm;
	return 0;
fail:
	kf_vm_destroy(vm);
	return ret;
}

static void kf_slot_release(struct kf_slot *s)
{
	if (s->owned && s->ms.hva)
		munmap(s->ms.hva, s->ms.size);
	if (s->ms.memfd >= 0)
		close(s->ms.memfd);
	if (s->guest_memfd_owned)
		close(s->ms.guest_memfd);
	free(s->private_pages);
	memset(s, 0, sizeof(*s));
	s->ms.memfd = -1;
}

void kf_vm_destroy(struct kf_vm *vm)
{
	unsigned int i;

	if (!vm)
		return;
	for (i = 0; i < KF_MAX_VCPUS; i++) {
		struct kf_vcpu *vcpu = vm->vcpus[i];

		if (!vcpu)
			continue;
		kf_arch_vcpu_free(vcpu);
		if (vcpu->run)
			munmap(vcpu->run, vm->run_size);
		close(vcpu->fd);
		pthread_mutex_destroy(&vcpu->kick_lock);
		free(vcpu);
	}
	if (vm->fd >= 0)
		close(vm->fd);
	for (i = 0; i < KF_MAX_SLOTS; i++)
		if (vm->slots[i].used)
			kf_slot_release(&vm->slots[i]);
	kf_conversions_free(vm);
	kf_arch_vm_free(vm);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

static int kf_set_memslot(struct kf_vm *vm, const struct kf_memslot *ms,
			  uint32_t flags, uint64_t size)
{
	struct kvm_userspace_memory_region2 r2 = {
		.slot = ms->slot,
		.flags = flags,
		.guest_phys_addr = ms->gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)ms->hva,
		.guest_memfd_offset = ms->guest_memfd_offset,
		.guest_memfd = ms->guest_memfd,
	};
	struct kvm_userspace_memory_region r1 = {
		.slot = ms->slot,
		.flags = flags,
		.guest_phys_addr = ms->gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)ms->hva,
	};

	if (flags & KVM_MEM_GUEST_MEMFD)
		return ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION2, &r2);
	return ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r1);
}

static int kf_region_check(struct kf_vm *vm, const struct kf_region *r)
{
	uint64_t max = kf_arch_max_gpa(vm), ps = kf_host_page_size();
	unsigned int i;
	int ret;

	if (!r->size || !KF_IS_ALIGNED(r->gpa, ps) || !KF_IS_ALIGNED(r->size, ps))
		return kf_fail(EINVAL, "region gpa 0x%llx size 0x%llx: both must be non-zero multiples of the host page size (%llu bytes)",
			       (unsigned long long)r->gpa,
			       (unsigned long long)r->size, (unsigned long long)ps);
	if (r->gpa >= max || r->size > max - r->gpa)
		return kf_fail(EINVAL, "region [0x%llx, +0x%llx) ends above the guest's physical limit 0x%llx",
			       (unsigned long long)r->gpa,
			       (unsigned long long)r->size,
			       (unsigned long long)max);
	if ((ret = kf_arch_check_region(vm, r->gpa, r->size)))
		return ret;
	if (r->flags & ~KF_KNOWN_SLOT_FLAGS)
		return kf_fail(EINVAL, "unknown memslot flags 0x%x", r->flags);
	if (r->backing == KF_BACKING_USER &&
	    (!r->hva || !KF_IS_ALIGNED((uintptr_t)r->hva, ps)))
		return kf_fail(EINVAL, "a user-backed region needs a page-aligned host address");
	if (r->backing > KF_BACKING_USER)
		return kf_fail(EINVAL, "unknown backing %d", r->backing);
	for (i = 0; i < KF_MAX_SLOTS; i++) {
		const struct kf_memslot *ms = &vm->slots[i].ms;

		if (vm->slots[i].used && r->gpa < ms->gpa + ms->size &&
		    ms->gpa < r->gpa + r->size)
			return kf_fail(EEXIST, "region [0x%llx, +0x%llx) overlaps slot %u [0x%llx, +0x%llx)",
				       (unsigned long long)r->gpa,
				       (unsigned long long)r->size, ms->slot,
				       (unsigned long long)ms->gpa,
				       (unsigned long long)ms->size);
	}
	return 0;
}

static int kf_region_map(const struct kf_region *r, struct kf_slot *s)
{
	struct kf_memslot *ms = &s->ms;
	int prot = PROT_READ | PROT_WRITE;
	void *p;

	ms->memfd = -1;
	switch (r->backing) {
	case KF_BACKING_USER:
		ms->hva = r->hva;
		return 0;
	case KF_BACKING_ANON:
		p = mmap(NULL, r->size, prot,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		break;
	case KF_BACKING_MEMFD:
		ms->memfd = memfd_create("kvmfault-guest", MFD_CLOEXEC);
		if (ms->memfd < 0)
			return kf_fail_errno(errno, "memfd_create");
		if (ftruncate(ms->memfd, r->size)) {
			int err = errno;

			close(ms->memfd);
			ms->memfd = -1;
			return kf_fail_errno(err, "ftruncate memfd to 0x%llx",
					     (unsigned long long)r->size);
		}
		p = mmap(NULL, r->size, prot, MAP_SHARED, ms->memfd, 0);
		break;
	default:
		return kf_fail(EINVAL, "unknown backing");
	}
	if (p == MAP_FAILED) {
		int err = errno;

		if (ms->memfd >= 0)
			close(ms->memfd);
		ms->memfd = -1;
		return kf_fail_errno(err, "mmap 0x%llx bytes of guest memory",
				     (unsigned long long)r->size);
	}
	ms->hva = p;
	s->owned = true;
	return 0;
}

/* The slot's guest_memfd and the record of its private pages. */
static int kf_region_guest_memfd(struct kf_vm *vm, const struct kf_region *r,
				 struct kf_slot *s)
{
	struct kvm_create_guest_memfd create = { .size = r->size };
	struct kf_memslot *ms = &s->ms;

	ms->guest_memfd = -1;
	if (!(r->flags & KVM_MEM_GUEST_MEMFD))
		return 0;
	s->private_pages = calloc(kf_private_record_words(r->size),
				  sizeof(uint64_t));
	if (!s->private_pages)
		return kf_fail(ENOMEM, "out of memory for the private-page record");
	ms->guest_memfd_offset = r->guest_memfd_offset;
	if (r->guest_memfd >= 0) {
		ms->guest_memfd = r->guest_memfd;
		return 0;
	}
	if (r->guest_memfd_offset)
		return kf_fail(EINVAL, "a guest_memfd the library creates starts at offset 0, not 0x%llx",
			       (unsigned long long)r->guest_memfd_offset);
	ms->guest_memfd = ioctl(vm->fd, KVM_CREATE_GUEST_MEMFD, &create);
	if (ms->guest_memfd < 0)
		return kf_fail_errno(errno, "KVM_CREATE_GUEST_MEMFD of 0x%llx bytes",
				     (unsigned long long)r->size);
	s->guest_memfd_owned = true;
	return 0;
}

static struct kf_slot *kf_vm_free_slot(struct kf_vm *vm)
{
	unsigned int i;

	for (i = 0; i < KF_MAX_SLOTS; i++)
		if (!vm->slots[i].used)
			return &vm->slots[i];
	kf_fail(ENOSPC, "all %d memslots are in use", KF_MAX_SLOTS);
	return NULL;
}

/*
 * With a shared bit (kf_vm_set_shared_bit()), a guest_memfd slot's shared
 * memory is mapped a second time at its alias; under vm->lock.
 */
static int kf_vm_add_shared_alias(struct kf_vm *vm, struct kf_slot *s)
{
	const struct kf_memslot *ms = &s->ms;
	struct kf_slot *alias;
	struct kf_memslot *a;
	int ret;

	if (!vm->shared_bit || !(ms->flags & KVM_MEM_GUEST_MEMFD))
		return 0;
	if (ms->gpa + ms->size > vm->shared_bit)
		return kf_fail(EINVAL, "guest_memfd region [0x%llx, +0x%llx) reaches the shared bit 0x%llx",
			       (unsigned long long)ms->gpa,
			       (unsigned long long)ms->size,
			       (unsigned long long)vm->shared_bit);
	alias = kf_vm_free_slot(vm);
	if (!alias)
		return -ENOSPC;
	a = &alias->ms;
	a->slot = alias - vm->slots;
	a->flags = ms->flags & ~KVM_MEM_GUEST_MEMFD;
	a->gpa = ms->gpa | vm->shared_bit;
	a->size = ms->size;
	a->hva = ms->hva;
	a->memfd = -1;
	a->guest_memfd = -1;
	alias->alias = true;
	if (kf_set_memslot(vm, a, a->flags, a->size)) {
		ret = kf_fail_errno(errno, "set the shared alias memslot %u at 0x%llx",
				    a->slot, (unsigned long long)a->gpa);
		kf_slot_release(alias);
		return ret;
	}
	alias->used = true;
	ret = kf_arch_map_region(vm, a->gpa, a->size);
	if (ret) {
		kf_set_memslot(vm, a, a->flags, 0);
		kf_slot_release(alias);
		return ret;
	}
	s->alias_slot = a->slot;
	return 0;
}

int kf_vm_add_region(struct kf_vm *vm, const struct kf_region *r,
		     const struct kf_memslot **slotp)
{
	struct kf_slot *s = NULL;
	struct kf_memslot *ms;
	int ret;

	if (slotp)
		*slotp = NULL;
	if (!vm || !r)
		return kf_fail(EINVAL, "no VM or no region");
	pthread_mutex_lock(&vm->lock);
	ret = kf_region_check(vm, r);
	if (ret)
		goto out;
	s = kf_vm_free_slot(vm);
	if (!s) {
		ret = -ENOSPC;
		goto out;
	}
	ms = &s->ms;
	ret = kf_region_map(r, s);
	if (ret)
		goto out;
	ms->slot = s - vm->slots;
	ms->flags = r->flags;
	ms->gpa = r->gpa;
	ms->size = r->size;
	ret = kf_region_guest_memfd(vm, r, s);
	if (ret) {
		kf_slot_release(s);
		goto out;
	}
	if (kf_set_memslot(vm, ms, ms->flags, ms->size)) {
		ret = kf_fail_errno(errno, "set memslot %u [0x%llx, +0x%llx) flags 0x%x",
				    ms->slot, (unsigned long long)ms->gpa,
				    (unsigned long long)ms->size, ms->flags);
		kf_slot_release(s);
		goto out;
	}
	s->used = true;
	ret = kf_arch_map_region(vm, ms->gpa, ms->size);
	if (!ret)
		ret = kf_vm_add_shared_alias(vm, s);
	if (ret) {
		/* The guest must not keep memory its page tables lack. */
		if (kf_set_memslot(vm, ms, ms->flags, 0))
			ret = kf_fail_errno(errno, "delete memslot %u after: %s",
					    ms->slot, kf_error());
		else
			kf_slot_release(s);
		goto out;
	}
	if (slotp)
		*slotp = ms;
out:
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

/* Memslot slot if it is in use, else NULL with a message. */
static struct kf_slot *kf_vm_used_slot(struct kf_vm *vm, uint32_t slot)
{
	if (slot >= KF_MAX_SLOTS || !vm->slots[slot].used) {
		kf_fail(ENOENT, "no memslot %u", slot);
		return NULL;
	}
	return &vm->slots[slot];
}

/* Delete memslot s and its shared alias; under vm->lock. */
static int kf_vm_delete_slot(struct kf_vm *vm, struct kf_slot *s)
{
	const struct kf_memslot *ms = &s->ms;
	struct kvm_memory_attributes shared = { .address = ms->gpa,
						.size = ms->size };

	/* The alias first: no vCPU may reach memory that is going away. */
	if (s->alias_slot) {
		struct kf_slot *alias = &vm->slots[s->alias_slot];

		if (kf_set_memslot(vm, &alias->ms, alias->ms.flags, 0))
			return kf_fail_errno(errno, "delete the shared alias memslot %u",
					     alias->ms.slot);
		kf_slot_release(alias);
		s->alias_slot = 0;
	}
	/* KVM keeps attributes by address: leave none behind for whatever
	 * is mapped here next. */
	if (kf_slot_has_private(s) &&
	    ioctl(vm->fd, KVM_SET_MEMORY_ATTRIBUTES, &shared))
		return kf_fail_errno(errno, "make [0x%llx, +0x%llx) shared before deleting memslot %u",
				     (unsigned long long)ms->gpa,
				     (unsigned long long)ms->size, ms->slot);
	if (kf_set_memslot(vm, ms, ms->flags, 0))
		return kf_fail_errno(errno, "delete memslot %u", ms->slot);
	kf_slot_release(s);
	return 0;
}

int kf_vm_remove_region(struct kf_vm *vm, uint32_t slot)
{
	struct kf_slot *s;
	int ret = 0;

	if (!vm)
		return kf_fail(EINVAL, "no VM");
	pthread_mutex_lock(&vm->lock);
	s = kf_vm_used_slot(vm, slot);
	if (!s)
		ret = -ENOENT;
	else if (slot == KF_SYSTEM_SLOT)
		ret = kf_fail(EBUSY, "slot 0 holds the guest's code and page tables");
	else if (s->engine)
		ret = kf_fail(EBUSY, "memslot %u is served by a fault engine: destroy the engine before removing the slot",
			      slot);
	else if (s->alias)
		ret = kf_fail(EBUSY, "memslot %u is the shared alias of a guest_memfd slot: remove that one",
			      slot);
	else
		ret = kf_vm_delete_slot(vm, s);
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

int kf_vm_set_region_flags(struct kf_vm *vm, uint32_t slot, uint32_t flags)
{
	struct kf_slot *s;
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	s = kf_vm_used_slot(vm, slot);
	if (!s)
		ret = -ENOENT;
	else if (kf_set_memslot(vm, &s->ms, flags, s->ms.size))
		ret = kf_fail_errno(errno, "change flags of memslot %u from 0x%x to 0x%x",
				    slot, s->ms.flags, flags);
	else
		s->ms.flags = flags;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

struct kf_slot *kf_vm_slot_at(struct kf_vm *vm, uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < KF_MAX_SLOTS; i++) {
		struct kf_slot *s = &vm->slots[i];

		if (s->used && gpa >= s->ms.gpa && gpa - s->ms.gpa < s->ms.size)
			return s;
	}
	return NULL;
}

const struct kf_memslot *kf_vm_find_slot(struct kf_vm *vm, uint64_t gpa)
{
	const struct kf_slot *s = kf_vm_slot_at(vm, gpa);

	return s ? &s->ms : NULL;
}

const struct kf_memslot *kf_vm_slot(const struct kf_vm *vm, uint32_t slot)
{
	if (!vm || slot >= KF_MAX_SLOTS || !vm->slots[slot].used)
		return NULL;
	return &vm->slots[slot].ms;
}

void *kf_vm_gpa_to_hva(struct kf_vm *vm, uint64_t gpa)
{
	const struct kf_memslot *ms = kf_vm_find_slot(vm, gpa);

	return ms ? (char *)ms->hva + (gpa - ms->gpa) : NULL;
}

static void *kf_vm_range(struct kf_vm *vm, const void *addr, size_t size)
{
	uint64_t gpa = (uintptr_t)addr;
	const struct kf_memslot *ms = kf_vm_find_slot(vm, gpa);

	if (!ms || size > ms->size - (gpa - ms->gpa)) {
		kf_fail(EFAULT, "[%p, +0x%zx) is not guest memory", addr, size);
		return NULL;
	}
	return (char *)ms->hva + (gpa - ms->gpa);
}

int kf_vm_sync_to_guest(struct kf_vm *vm, const void *addr, size_t size)
{
	void *dst = kf_vm_range(vm, addr, size);

	if (!dst)
		return -EFAULT;
	memcpy(dst, addr, size);
	return 0;
}

int kf_vm_sync_from_guest(struct kf_vm *vm, void *addr, size_t size)
{
	void *src = kf_vm_range(vm, addr, size);

	if (!src)
		return -EFAULT;
	memcpy(addr, src, size);
	return 0;
}

/* KVM's bitmap has a bit a host page: spread each over the KF_PAGE_SIZE
 * pages its host page holds. */
int kf_vm_get_dirty_log(struct kf_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	uint64_t per = kf_host_page_size() / KF_PAGE_SIZE, pages = 0, i;
	struct kvm_dirty_log log = { .slot = slot, .dirty_bitmap = bitmap };
	struct kf_slot *s = slot < KF_MAX_SLOTS ? &vm->slots[slot] : NULL;
	uint64_t *host = NULL;
	int ret = 0;

	if (per > 1 && s && s->used) {
		pages = s->ms.size / KF_PAGE_SIZE;
		host = calloc((pages / per + 63) / 64, 8);
		if (!host)
			return kf_fail(ENOMEM, "out of memory for a dirty bitmap");
		log.dirty_bitmap = host;
	}
	if (ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log))
		ret = kf_fail_errno(errno, "KVM_GET_DIRTY_LOG slot %u", slot);
	if (log.dirty_bitmap == bitmap)
		return ret;
	memset(bitmap, 0, (pages + 63) / 64 * 8);
	for (i = 0; !ret && i < pages; i++)
		if (host[i / per / 64] >> (i / per % 64) & 1)
			bitmap[i / 64] |= 1ULL << (i % 64);
	free(host);
	return ret;
}

int kf_vm_check_system_slot(const struct kf_memslot *ms, uint64_t gpa,
			    uint64_t size, int err, const char *whose)
{
	if (ms->gpa == gpa && ms->size == size)
		return 0;
	return kf_fail(err, "%s system slot [0x%llx, +0x%llx) differs from this VM's [0x%llx, +0x%llx)",
		       whose, (unsigned long long)gpa, (unsigned long long)size,
		       (unsigned long long)ms->gpa, (unsigned long long)ms->size);
}

uint64_t kf_vm_free_gpa(struct kf_vm *vm)
{
	return kf_arch_free_gpa(vm);
}

int kf_vm_fd(const struct kf_vm *vm)
{
	return vm->fd;
}

bool kf_vm_fault_access(const struct kf_vm *vm)
{
	return vm->fault_access;
}

int kf_vm_enable_mte(struct kf_vm *vm)
{
	if (!vm)
		return kf_fail(EINVAL, "no VM");
	if (vm->nr_vcpus)
		return kf_fail(EBUSY, "enable MTE before adding vCPUs");
	if (vm->mte)
		return 0;
	return kf_arch_enable_mte(vm);
}

bool kf_vm_mte(const struct kf_vm *vm)
{
	return vm->mte;
}

unsigned int kf_vm_max_vcpus(const struct kf_vm *vm)
{
	return vm->max_vcpus;
}

struct kf_vcpu *kf_vm_vcpu(const struct kf_vm *vm, unsigned int id)
{
	return id < KF_MAX_VCPUS ? vm->vcpus[id] : NULL;
}
