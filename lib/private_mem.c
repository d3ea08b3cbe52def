// SPDX-License-Identifier: MIT
/*
 * Private/shared conversions of a VM's memory (<kvmfault/private_mem.h>).
 * KVM keeps the attributes but has no call to read them back, so the VM
 * keeps its own record: one bit a page in each guest_memfd slot, changed
 * only together with KVM_SET_MEMORY_ATTRIBUTES, under vm->lock.
 */
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/kvm_para.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <kvmfault/error.h>
#include <kvmfault/kvm.h>
#include <kvmfault/private_mem.h>
#include <kvmfault/uapi.h>
#include <kvmfault/vcpu.h>

#include "vm_internal.h"
#include "vm_objects.h"

/* The attrs of KVM_HC_MAP_GPA_RANGE: a page-size hint and the new state. */
#define KF_MAP_GPA_RANGE_PAGE_SIZE_MASK 0xfULL
#define KF_MAP_GPA_RANGE_KNOWN \
	(KF_MAP_GPA_RANGE_PAGE_SIZE_MASK | KVM_MAP_GPA_RANGE_ENCRYPTED)

struct kf_conversions {
	kf_conversion_policy policy;
	void *opaque;
};

static const char *kf_state_name(bool private_mem)
{
	return private_mem ? "private" : "shared";
}

size_t kf_private_record_words(uint64_t size)
{
	return (size / KF_PAGE_SIZE + 63) / 64;
}

bool kf_slot_has_private(const struct kf_slot *s)
{
	size_t i;

	for (i = 0; s->private_pages && i < kf_private_record_words(s->ms.size); i++)
		if (s->private_pages[i])
			return true;
	return false;
}

static bool kf_slot_page_private(const struct kf_slot *s, uint64_t gpa)
{
	uint64_t i = (gpa - s->ms.gpa) / KF_PAGE_SIZE;

	return s->private_pages &&
	       (s->private_pages[i / 64] >> (i % 64) & 1);
}

static void kf_slot_record(struct kf_slot *s, uint64_t gpa, uint64_t end,
			   bool private_mem)
{
	uint64_t i;

	if (!s->private_pages)
		return;
	for (i = (gpa - s->ms.gpa) / KF_PAGE_SIZE;
	     i < (end - s->ms.gpa) / KF_PAGE_SIZE; i++) {
		if (private_mem)
			s->private_pages[i / 64] |= 1ULL << (i % 64);
		else
			s->private_pages[i / 64] &= ~(1ULL << (i % 64));
	}
}

/* gpa itself, or the page it is the shared alias of; under vm->lock. */
static uint64_t kf_canonical_gpa(struct kf_vm *vm, uint64_t gpa)
{
	const struct kf_slot *s = kf_vm_slot_at(vm, gpa);

	return s && s->alias ? gpa & ~vm->shared_bit : gpa;
}

bool kf_vm_page_is_private(struct kf_vm *vm, uint64_t gpa)
{
	const struct kf_slot *s;
	bool ret;

	pthread_mutex_lock(&vm->lock);
	s = kf_vm_slot_at(vm, gpa);
	ret = s && kf_slot_page_private(s, gpa);
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

/* Whether the request is one the VM can carry out; under vm->lock. */
static int kf_convert_check(struct kf_vm *vm, uint64_t gpa, uint64_t size,
			    bool to_private)
{
	uint64_t cur = gpa, end = gpa + size;

	if (!size || !KF_IS_ALIGNED(gpa, KF_PAGE_SIZE) ||
	    !KF_IS_ALIGNED(size, KF_PAGE_SIZE) || end < gpa)
		return kf_fail(EINVAL, "conversion of [0x%llx, +0x%llx): gpa and size must be non-zero multiples of the page size",
			       (unsigned long long)gpa, (unsigned long long)size);
	while (cur < end) {
		const struct kf_memslot *ms = kf_vm_find_slot(vm, cur);

		if (!ms)
			return kf_fail(EINVAL, "conversion of [0x%llx, +0x%llx) to %s: 0x%llx is not guest memory",
				       (unsigned long long)gpa,
				       (unsigned long long)size,
				       kf_state_name(to_private),
				       (unsigned long long)cur);
		if (to_private && !(ms->flags & KVM_MEM_GUEST_MEMFD))
			return kf_fail(EINVAL, "conversion of [0x%llx, +0x%llx) to private: slot %u at 0x%llx has no guest_memfd",
				       (unsigned long long)gpa,
				       (unsigned long long)size, ms->slot,
				       (unsigned long long)ms->gpa);
		cur = ms->gpa + ms->size;
	}
	return 0;
}

/* Release the backing that [gpa, end) of s leaves. */
static int kf_release_left_state(const struct kf_slot *s, uint64_t gpa,
				 uint64_t end, bool to_private)
{
	const struct kf_memslot *ms = &s->ms;
	uint64_t off = gpa - ms->gpa, len = end - gpa;
	char *hva = (char *)ms->hva + off;

	if (!to_private) {
		if (ms->guest_memfd < 0 || !(ms->flags & KVM_MEM_GUEST_MEMFD))
			return 0;
		if (fallocate(ms->guest_memfd,
			      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      ms->guest_memfd_offset + off, len))
			return kf_fail_errno(errno, "punch [0x%llx, +0x%llx) out of the guest_memfd of slot %u",
					     (unsigned long long)gpa,
					     (unsigned long long)len, ms->slot);
		return 0;
	}
	/* Shared file pages (memfd, or maybe the caller's) are removed from
	 * the file; private anonymous ones dropped. */
	if (ms->memfd >= 0 || !s->owned) {
		if (!madvise(hva, len, MADV_REMOVE))
			return 0;
		if (ms->memfd >= 0 || (errno != EINVAL && errno != EACCES))
			return kf_fail_errno(errno, "MADV_REMOVE of the shared pages of [0x%llx, +0x%llx)",
					     (unsigned long long)gpa,
					     (unsigned long long)len);
	}
	if (madvise(hva, len, MADV_DONTNEED))
		return kf_fail_errno(errno, "MADV_DONTNEED of the shared pages of [0x%llx, +0x%llx)",
				     (unsigned long long)gpa,
				     (unsigned long long)len);
	return 0;
}

static int kf_convert_locked(struct kf_vm *vm, uint64_t gpa, uint64_t size,
			     bool to_private)
{
	struct kvm_memory_attributes attrs = {
		.address = gpa,
		.size = size,
		.attributes = to_private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};
	uint64_t cur = gpa, end = gpa + size;
	int ret;

	ret = kf_convert_check(vm, gpa, size, to_private);
	if (ret)
		return ret;
	if (ioctl(vm->fd, KVM_SET_MEMORY_ATTRIBUTES, &attrs))
		return kf_fail_errno(errno, "KVM_SET_MEMORY_ATTRIBUTES [0x%llx, +0x%llx) %s",
				     (unsigned long long)gpa,
				     (unsigned long long)size,
				     kf_state_name(to_private));
	/* KVM has the new state now: record it before anything can fail. */
	for (cur = gpa; cur < end;) {
		struct kf_slot *s = kf_vm_slot_at(vm, cur);
		uint64_t piece_end = KF_MIN(end, s->ms.gpa + s->ms.size);

		kf_slot_record(s, cur, piece_end, to_private);
		cur = piece_end;
	}
	for (cur = gpa; cur < end;) {
		const struct kf_slot *s = kf_vm_slot_at(vm, cur);
		uint64_t piece_end = KF_MIN(end, s->ms.gpa + s->ms.size);

		ret = kf_release_left_state(s, cur, piece_end, to_private);
		if (ret)
			return ret;
		cur = piece_end;
	}
	return 0;
}

int kf_vm_convert(struct kf_vm *vm, uint64_t gpa, uint64_t size,
		  bool to_private)
{
	int ret;

	if (!vm)
		return kf_fail(EINVAL, "no VM");
	pthread_mutex_lock(&vm->lock);
	ret = kf_convert_locked(vm, kf_canonical_gpa(vm, gpa), size, to_private);
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

int kf_vm_enable_conversions(struct kf_vm *vm, kf_conversion_policy policy,
			     void *opaque)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_EXIT_HYPERCALL,
		.args[0] = 1ULL << KVM_HC_MAP_GPA_RANGE,
	};
	struct kf_conversions *c;

	if (!vm)
		return kf_fail(EINVAL, "no VM");
	if (vm->conversions)
		return kf_fail(EBUSY, "conversions are enabled already");
	if (!(kf_check_cap(vm->fd, KVM_CAP_MEMORY_ATTRIBUTES) &
	      KVM_MEMORY_ATTRIBUTE_PRIVATE))
		return kf_fail(EOPNOTSUPP, "this VM (type %lu) has no private memory (KVM_CAP_MEMORY_ATTRIBUTES)",
			       vm->type);
	if (!(kf_check_cap(vm->fd, KVM_CAP_EXIT_HYPERCALL) &
	      (1L << KVM_HC_MAP_GPA_RANGE)))
		return kf_fail(EOPNOTSUPP, "this kernel does not pass KVM_HC_MAP_GPA_RANGE to userspace (KVM_CAP_EXIT_HYPERCALL)");
	c = calloc(1, sizeof(*c));
	if (!c)
		return kf_fail(ENOMEM, "out of memory");
	c->policy = policy;
	c->opaque = opaque;
	if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap)) {
		free(c);
		return kf_fail_errno(errno, "KVM_ENABLE_CAP(KVM_CAP_EXIT_HYPERCALL, MAP_GPA_RANGE)");
	}
	pthread_mutex_lock(&vm->lock);
	vm->conversions = c;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int kf_vm_check_no_private(struct kf_vm *vm, const char *what)
{
	unsigned int i;
	int ret = 0;

	pthread_mutex_lock(&vm->lock);
	for (i = 0; !ret && i < KF_MAX_SLOTS; i++) {
		const struct kf_memslot *ms = &vm->slots[i].ms;

		if (vm->slots[i].used && (ms->flags & KVM_MEM_GUEST_MEMFD))
			ret = kf_fail(EOPNOTSUPP, "%s refused: slot %u [0x%llx, +0x%llx) is guest_memfd (private) memory, which userspace cannot read on this kernel",
				      what, ms->slot,
				      (unsigned long long)ms->gpa,
				      (unsigned long long)ms->size);
	}
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

int kf_vm_set_shared_bit(struct kf_vm *vm, unsigned int bit)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_X86_SW_PROTECTED_SHARED_BIT,
		.args[0] = bit,
	};
	unsigned int i;
	int ret = 0;

	if (!vm)
		return kf_fail(EINVAL, "no VM");
	if (kf_check_cap(vm->fd, KVM_CAP_X86_SW_PROTECTED_SHARED_BIT) <= 0)
		return kf_fail(EOPNOTSUPP, "this VM (type %lu) has no shared GPA bit (KVM_CAP_X86_SW_PROTECTED_SHARED_BIT, kvmfault kernel series)",
			       vm->type);
	if (bit >= 63 || 2ULL << bit > kf_arch_max_gpa(vm))
		return kf_fail(EINVAL, "shared bit %u: the alias would lie above the guest's physical limit 0x%llx",
			       bit, (unsigned long long)kf_arch_max_gpa(vm));
	pthread_mutex_lock(&vm->lock);
	if (vm->nr_vcpus)
		ret = kf_fail(EBUSY, "set the shared bit before adding vCPUs");
	for (i = 0; !ret && i < KF_MAX_SLOTS; i++)
		if (vm->slots[i].used && (vm->slots[i].ms.flags & KVM_MEM_GUEST_MEMFD))
			ret = kf_fail(EBUSY, "set the shared bit before adding guest_memfd regions (slot %u has one)",
				      i);
	if (!ret && ioctl(vm->fd, KVM_ENABLE_CAP, &cap))
		ret = kf_fail_errno(errno, "KVM_ENABLE_CAP(KVM_CAP_X86_SW_PROTECTED_SHARED_BIT, %u)",
				    bit);
	if (!ret)
		vm->shared_bit = 1ULL << bit;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

uint64_t kf_vm_shared_alias(struct kf_vm *vm, uint64_t gpa)
{
	return gpa | vm->shared_bit;
}

void kf_conversions_free(struct kf_vm *vm)
{
	free(vm->conversions);
	vm->conversions = NULL;
}

/*
 * Check, ask the policy, convert.  A request the VM cannot carry out or the
 * policy refuses sets *refused to its -errno (the guest's error for an
 * explicit one) and returns 0; a failure to convert returns -errno.
 */
static int kf_conversion_request(struct kf_vcpu *vcpu,
				 const struct kf_conversion *c, int *refused)
{
	struct kf_vm *vm = vcpu->vm;
	int ret;

	*refused = 0;
	pthread_mutex_lock(&vm->lock);
	ret = kf_convert_check(vm, c->gpa, c->size, c->to_private);
	pthread_mutex_unlock(&vm->lock);
	if (!ret && vm->conversions->policy) {
		ret = vm->conversions->policy(vm->conversions->opaque, c);
		if (ret > 0 || ret < -4095)
			ret = -EPERM;
		if (ret)
			kf_fail(-ret, "the VMM's policy refused the %s conversion of [0x%llx, +0x%llx) to %s",
				c->cause == KF_CONVERSION_EXPLICIT ? "explicit" : "implicit",
				(unsigned long long)c->gpa,
				(unsigned long long)c->size,
				kf_state_name(c->to_private));
	}
	if (ret) {
		*refused = ret;
		return 0;
	}
	return kf_vm_convert(vm, c->gpa, c->size, c->to_private);
}

/*
 * A refusal as the guest gets it: KVM's hypercall errors are the errno
 * values of <linux/kvm_para.h> (KVM_ENOSYS aside); anything else a policy
 * returns reads as KVM_EPERM.
 */
static int64_t kf_hypercall_error(int err)
{
	switch (err) {
	case 0:
	case -KVM_EINVAL:
	case -KVM_EPERM:
	case -KVM_EFAULT:
	case -KVM_E2BIG:
	case -KVM_EOPNOTSUPP:
		return err;
	case -ENOSYS:
		return -KVM_ENOSYS;
	default:
		return -KVM_EPERM;
	}
}

int kf_conversion_hypercall(struct kf_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint64_t gpa = run->hypercall.args[0];
	uint64_t npages = run->hypercall.args[1];
	uint64_t attrs = run->hypercall.args[2];
	struct kf_conversion c = {
		.size = npages * KF_PAGE_SIZE,
		.to_private = attrs & KVM_MAP_GPA_RANGE_ENCRYPTED,
		.cause = KF_CONVERSION_EXPLICIT,
		.vcpu_id = vcpu->id,
	};
	int refused, ret;

	/* With a shared bit, the guest may name the range by its alias. */
	pthread_mutex_lock(&vcpu->vm->lock);
	c.gpa = kf_canonical_gpa(vcpu->vm, gpa);
	pthread_mutex_unlock(&vcpu->vm->lock);
	if ((attrs & ~KF_MAP_GPA_RANGE_KNOWN) ||
	    npages > (UINT64_MAX - gpa) / KF_PAGE_SIZE) {
		run->hypercall.ret = -KVM_EINVAL;
		return 0;
	}
	ret = kf_conversion_request(vcpu, &c, &refused);
	if (ret)
		return ret;
	run->hypercall.ret = (uint64_t)(int64_t)kf_hypercall_error(refused);
	return 0;
}

int kf_conversion_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	struct kf_vm *vm = vcpu->vm;
	struct kf_conversion c = {
		.gpa = KF_ALIGN_DOWN(f->gpa, KF_PAGE_SIZE),
		.size = KF_PAGE_SIZE,
		.to_private = f->private_mem,
		.cause = KF_CONVERSION_IMPLICIT,
		.vcpu_id = vcpu->id,
	};
	const struct kf_slot *s;
	bool now_private, can_be_private;
	int refused, ret;

	pthread_mutex_lock(&vm->lock);
	s = kf_vm_slot_at(vm, c.gpa);
	now_private = s && kf_slot_page_private(s, c.gpa);
	can_be_private = s && (s->ms.flags & KVM_MEM_GUEST_MEMFD);
	pthread_mutex_unlock(&vm->lock);
	if (f->private_mem && !can_be_private)
		return kf_fail(EFAULT, "private access to 0x%llx, which no guest_memfd slot backs",
			       (unsigned long long)f->gpa);
	if (now_private == f->private_mem)
		/* A missing shared page is demand paging's; a private one
		 * was converted by another vCPU meanwhile: retry. */
		return f->private_mem ? 0 : 1;
	/*
	 * Only with a shared bit does the guest choose how it accesses a
	 * page; without one, KVM took the state from the attributes, and the
	 * record, changed with them, is newer: another vCPU's conversion
	 * raced with this fault, and the access retries in the new state.
	 */
	if (!vm->shared_bit)
		return 0;
	ret = kf_conversion_request(vcpu, &c, &refused);
	return ret ? ret : refused;
}
