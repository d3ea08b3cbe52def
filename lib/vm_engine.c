// SPDX-License-Identifier: MIT
/*
 * The fault engine for a kf_vm: the VM layer fills the core's host
 * operations and describes its memslots.  See include/kvmfault/vm_engine.h.
 */
#include <string.h>

#include <kvmfault/error.h>
#include <kvmfault/vm_engine.h>

#include "internal.h"
#include "vm_objects.h"

static int kf_vme_set_slot_flags(void *opaque, uint32_t slot, uint32_t flags)
{
	return kf_vm_set_region_flags(opaque, slot, flags);
}

/* Every vCPU running on a library thread leaves KVM_RUN. */
static void kf_vme_stop_vcpus(void *opaque)
{
	struct kf_vm *vm = opaque;
	unsigned int i;

	for (i = 0; i < KF_MAX_VCPUS; i++) {
		struct kf_vcpu *vcpu = vm->vcpus[i];

		if (vcpu && vcpu->thread_started)
			kf_vcpu_stop(vcpu);
	}
}

static int kf_vme_vcpu_of_thread(void *opaque, pid_t tid)
{
	struct kf_vm *vm = opaque;
	unsigned int i;

	for (i = 0; i < KF_MAX_VCPUS; i++) {
		struct kf_vcpu *v = vm->vcpus[i];

		if (v && __atomic_load_n(&v->tid, __ATOMIC_ACQUIRE) == tid)
			return (int)v->id;
	}
	return -1;
}

static unsigned int kf_vme_nr_vcpus(void *opaque)
{
	struct kf_vm *vm = opaque;
	unsigned int i, n = 0;

	for (i = 0; i < KF_MAX_VCPUS; i++)
		if (vm->vcpus[i])
			n = i + 1;
	return n;
}

static void kf_vme_region_removed(void *opaque, uint32_t slot)
{
	struct kf_vm *vm = opaque;

	pthread_mutex_lock(&vm->lock);
	if (slot < KF_MAX_SLOTS)
		vm->slots[slot].engine = false;
	pthread_mutex_unlock(&vm->lock);
}

static void kf_vme_release(void *opaque)
{
	struct kf_vm *vm = opaque;

	__atomic_store_n(&vm->engine, NULL, __ATOMIC_RELEASE);
}

int kf_engine_create(struct kf_vm *vm, const struct kf_engine_config *cfg,
		     struct kf_engine **ep)
{
	const struct kf_engine_host host = {
		.opaque = vm,
		.set_slot_flags = kf_vme_set_slot_flags,
		.stop_vcpus = kf_vme_stop_vcpus,
		.vcpu_of_thread = kf_vme_vcpu_of_thread,
		.nr_vcpus = kf_vme_nr_vcpus,
		.region_removed = kf_vme_region_removed,
		.release = kf_vme_release,
	};
	struct kf_engine *none = NULL;
	int ret;

	*ep = NULL;
	if (!vm)
		return kf_fail(EINVAL, "fault engine: no VM");
	if (__atomic_load_n(&vm->engine, __ATOMIC_ACQUIRE))
		return kf_fail(EBUSY, "this VM has a fault engine already");
	ret = kf_engine_new(&host, cfg, ep);
	if (ret)
		return ret;
	if (!__atomic_compare_exchange_n(&vm->engine, &none, *ep, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		kf_engine_destroy(*ep);
		*ep = NULL;
		return kf_fail(EBUSY, "this VM has a fault engine already");
	}
	return 0;
}

/* The VM of an engine kf_engine_create() made, or NULL. */
static struct kf_vm *kf_engine_vm(struct kf_engine *e)
{
	const struct kf_engine_host *h = e ? kf_engine_host(e) : NULL;

	return h && h->set_slot_flags == kf_vme_set_slot_flags ? h->opaque : NULL;
}

int kf_engine_add_region(struct kf_engine *e, uint32_t slot,
			 struct kf_pagesrc *src)
{
	struct kf_engine_region_desc d;
	struct kf_vm *vm = kf_engine_vm(e);
	const struct kf_memslot *ms;
	int ret;

	if (!vm || !src)
		return kf_fail(EINVAL, "fault engine: add a region needs an engine of a VM (kf_engine_create()) and a source");
	if (slot >= KF_MAX_SLOTS || !vm->slots[slot].used)
		return kf_fail(ENOENT, "fault engine: no memslot %u", slot);
	if (slot == KF_SYSTEM_SLOT)
		return kf_fail(EINVAL, "fault engine: slot 0 holds the guest's code; it cannot be demand paged");
	ms = &vm->slots[slot].ms;
	memset(&d, 0, sizeof(d));
	d.slot = slot;
	d.flags = ms->flags;
	d.gpa = ms->gpa;
	d.size = ms->size;
	d.hva = ms->hva;
	d.memfd = ms->memfd;
	d.page_size = 0;	/* the host's */
	ret = kf_engine_add_memory(e, &d, src);
	if (ret)
		return ret;
	pthread_mutex_lock(&vm->lock);
	vm->slots[slot].engine = true;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

int kf_engine_memory_fault(struct kf_vcpu *vcpu,
			   const struct kf_memory_fault *f)
{
	struct kf_engine *e = __atomic_load_n(&vcpu->vm->engine, __ATOMIC_ACQUIRE);
	struct kf_exit exit = { .kind = KF_EXIT_MEMORY_FAULT, .fault = *f };

	if (!e)
		return kf_fail(EFAULT, "memory fault at gpa 0x%llx: no fault engine serves this VM",
			       (unsigned long long)f->gpa);
	return kf_engine_fault(e, vcpu->id, &exit);
}

int kf_engine_interrupted(struct kf_vcpu *vcpu)
{
	struct kf_engine *e = __atomic_load_n(&vcpu->vm->engine, __ATOMIC_ACQUIRE);
	int ret = kf_engine_check(e);

	if (ret)
		return ret;
	if (vcpu->stop)
		return kf_fail(EINTR, "stopped");
	return 0;
}

static const struct kf_vcpu_ops kf_engine_ops = {
	.memory_fault = kf_engine_memory_fault,
	.interrupted = kf_engine_interrupted,
};

const struct kf_vcpu_ops *kf_engine_vcpu_ops(void)
{
	return &kf_engine_ops;
}
