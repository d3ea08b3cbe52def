/* SPDX-License-Identifier: MIT */
/*
 * The fault engine for a kf_vm: the VM layer as one user of the core
 * (<kvmfault/engine.h>).  It fills the engine's host operations from the
 * VM (memslot flags, its vCPU threads) and describes memslots as regions.
 *
 *   kf_engine_create(vm, &cfg, &e);
 *   kf_engine_add_region(e, slot, src);     one page source per memslot
 *   kf_engine_start(e);
 *   kf_vm_run_all(vm, kf_engine_vcpu_ops()); or your ops with
 *                                           .memory_fault = kf_engine_memory_fault
 *                                           .interrupted = kf_engine_interrupted
 *   kf_engine_destroy(e);
 *
 * A VM has at most one engine; kf_vm_remove_region() refuses a slot the
 * engine serves until the engine is destroyed.
 */
#ifndef KVMFAULT_VM_ENGINE_H
#define KVMFAULT_VM_ENGINE_H

#include <stdint.h>

#include <kvmfault/engine.h>
#include <kvmfault/vcpu.h>
#include <kvmfault/vm.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

/* An engine for vm (-EBUSY when vm has one already). */
int kf_engine_create(struct kf_vm *vm, const struct kf_engine_config *cfg,
		     struct kf_engine **ep);
/*
 * Serve memslot slot of the engine's VM from src (see
 * kf_engine_add_memory()).  Slot 0, the guest's code, cannot be served.
 */
int kf_engine_add_region(struct kf_engine *e, uint32_t slot,
			 struct kf_pagesrc *src);

/* vCPU hooks: resolve a fault on the vCPU thread (kf_engine_fault());
 * report an engine failure when the vCPU was stopped for it. */
int kf_engine_memory_fault(struct kf_vcpu *vcpu,
			   const struct kf_memory_fault *fault);
int kf_engine_interrupted(struct kf_vcpu *vcpu);
/* Static ops with just those two hooks. */
const struct kf_vcpu_ops *kf_engine_vcpu_ops(void);

KF_API_END

#endif
