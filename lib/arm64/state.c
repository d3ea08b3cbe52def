// SPDX-License-Identifier: MIT
/*
 * arm64 vCPU state blobs: every register KVM lists for the vCPU
 * (KVM_GET_REG_LIST: core, FP/SIMD, system, timer and firmware registers),
 * each read with KVM_GET_ONE_REG.  Layout (little endian):
 *
 *   struct kf_state_hdr
 *   nr_regs times: uint64_t id, then the value (the size id encodes),
 *   padded to 8
 *
 * Restore parses and checks the whole blob before the first ioctl, then
 * writes the registers in the order they were saved.  The VM layer sets
 * the VM's counter offset to 0 (guest and host read one counter), upon
 * which KVM ignores writes of the counters (KVM_REG_ARM_TIMER_CNT): a
 * restored guest reads the destination host's counter, and its timer
 * compare values stay absolute.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <kvmfault/compiler.h>
#include <kvmfault/error.h>
#include <kvmfault/limits.h>
#include <kvmfault/vcpu_state.h>

#include "../vcpu_state.h"
#include "../vm_objects.h"
#include "arm64.h"
#define KF_STATE_MAX_REGS 4096
#define KF_STATE_MAX_REG_SIZE 256	/* KVM_REG_SIZE_U2048 */

static size_t kf_reg_size(uint64_t id)
{
	return (size_t)1 << ((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT);
}

static size_t kf_reg_entry_len(uint64_t id)
{
	return sizeof(uint64_t) + KF_ALIGN_UP(kf_reg_size(id), 8);
}

static int kf_state_reg_list(struct kf_vcpu *vcpu, struct kvm_reg_list **listp)
{
	struct kvm_reg_list probe = { .n = 0 }, *list;

	/* The first call fails with E2BIG and says how many there are. */
	if (!ioctl(vcpu->fd, KVM_GET_REG_LIST, &probe) || errno != E2BIG)
		return kf_fail_errno(errno ? errno : EIO, "vCPU %u: KVM_GET_REG_LIST", vcpu->id);
	if (probe.n > KF_STATE_MAX_REGS)
		return kf_fail(E2BIG, "vCPU %u: KVM lists %llu registers, more than %u",
			       vcpu->id, (unsigned long long)probe.n, KF_STATE_MAX_REGS);
	list = calloc(1, sizeof(*list) + probe.n * sizeof(list->reg[0]));
	if (!list)
		return kf_fail(ENOMEM, "out of memory for the register list");
	list->n = probe.n;
	if (ioctl(vcpu->fd, KVM_GET_REG_LIST, list)) {
		free(list);
		return kf_fail_errno(errno, "vCPU %u: KVM_GET_REG_LIST", vcpu->id);
	}
	*listp = list;
	return 0;
}

int kf_vcpu_state_save(struct kf_vcpu *vcpu, void **blobp, size_t *lenp)
{
	struct kf_state_hdr hdr = kf_state_hdr_init(KF_STATE_ARCH_ARM64, vcpu->id);
	struct kvm_reg_list *list = NULL;
	size_t len = sizeof(hdr), off;
	uint64_t i;
	char *blob;
	int ret;

	*blobp = NULL;
	*lenp = 0;
	/*
	 * Finish an MMIO store the vCPU may still owe (its PC moves on
	 * re-entry): KVM_RUN with immediate_exit completes it and returns.
	 * Only then: a first KVM_RUN would freeze the VM's ID registers.
	 */
	if (vcpu->run->exit_reason == KVM_EXIT_MMIO) {
		__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		ioctl(vcpu->fd, KVM_RUN, NULL);
		__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	}

	ret = kf_state_reg_list(vcpu, &list);
	if (ret)
		return ret;
	for (i = 0; i < list->n; i++) {
		if (kf_reg_size(list->reg[i]) > KF_STATE_MAX_REG_SIZE) {
			ret = kf_fail(E2BIG, "vCPU %u: register 0x%llx is %zu bytes",
				      vcpu->id, (unsigned long long)list->reg[i],
				      kf_reg_size(list->reg[i]));
			goto out;
		}
		len += kf_reg_entry_len(list->reg[i]);
	}
	blob = calloc(1, len);
	if (!blob) {
		ret = kf_fail(ENOMEM, "out of memory for vCPU state");
		goto out;
	}
	for (i = 0, off = sizeof(hdr); i < list->n; i++) {
		uint64_t id = list->reg[i], value[KF_STATE_MAX_REG_SIZE / 8];
		struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)value };

		if (ioctl(vcpu->fd, KVM_GET_ONE_REG, &reg)) {
			ret = kf_fail_errno(errno, "vCPU %u: KVM_GET_ONE_REG(0x%llx)",
					    vcpu->id, (unsigned long long)id);
			free(blob);
			goto out;
		}
		memcpy(blob + off, &id, sizeof(id));
		memcpy(blob + off + sizeof(id), value, kf_reg_size(id));
		off += kf_reg_entry_len(id);
	}
	hdr.nr_items = (uint32_t)list->n;
	hdr.total_len = (uint32_t)len;
	memcpy(blob, &hdr, sizeof(hdr));
	*blobp = blob;
	*lenp = len;
out:
	free(list);
	return ret;
}

struct kf_state_view {
	const char *regs;	/* the first entry */
	uint32_t nr_regs;
	unsigned int vcpu_id;
};

static int kf_state_parse(const void *blob, size_t len, struct kf_state_view *v)
{
	const char *p = blob;
	struct kf_state_hdr hdr;
	size_t off = sizeof(hdr);
	uint32_t i;
	int ret;

	memset(v, 0, sizeof(*v));
	ret = kf_state_hdr_check(blob, len, KF_STATE_ARCH_ARM64, &hdr);
	if (ret)
		return ret;
	if (hdr.nr_items > KF_STATE_MAX_REGS)
		return kf_fail(EINVAL, "vCPU state: %u registers", hdr.nr_items);
	for (i = 0; i < hdr.nr_items; i++) {
		uint64_t id;

		if (len - off < sizeof(id))
			return kf_fail(EINVAL, "vCPU state: register %u truncated", i);
		memcpy(&id, p + off, sizeof(id));
		if ((id & KVM_REG_ARCH_MASK) != KVM_REG_ARM64 ||
		    kf_reg_size(id) > KF_STATE_MAX_REG_SIZE)
			return kf_fail(EINVAL, "vCPU state: register %u has a bad id 0x%llx",
				       i, (unsigned long long)id);
		if (kf_reg_entry_len(id) > len - off)
			return kf_fail(EINVAL, "vCPU state: register 0x%llx overruns the blob",
				       (unsigned long long)id);
		off += kf_reg_entry_len(id);
	}
	if (off != len)
		return kf_fail(EINVAL, "vCPU state: %zu trailing bytes", len - off);
	v->regs = p + sizeof(hdr);
	v->nr_regs = hdr.nr_items;
	v->vcpu_id = hdr.vcpu_id;
	return 0;
}

int kf_vcpu_state_check(const void *blob, size_t len, unsigned int *vcpu_id)
{
	struct kf_state_view v;
	int ret = kf_state_parse(blob, len, &v);

	if (!ret && vcpu_id)
		*vcpu_id = v.vcpu_id;
	return ret;
}

uint64_t kf_vcpu_state_ip(const void *blob, size_t len)
{
	const uint64_t pc_id = KF_ARM64_CORE_REG(regs.pc);
	struct kf_state_view v;
	const char *e;
	uint32_t i;

	if (kf_state_parse(blob, len, &v))
		return 0;
	for (i = 0, e = v.regs; i < v.nr_regs; i++) {
		uint64_t id, pc;

		memcpy(&id, e, sizeof(id));
		if (id == pc_id) {
			memcpy(&pc, e + sizeof(id), sizeof(pc));
			return pc;
		}
		e += kf_reg_entry_len(id);
	}
	return 0;
}

int kf_vcpu_state_restore(struct kf_vcpu *vcpu, const void *blob, size_t len)
{
	struct kf_state_view v;
	const char *e;
	uint32_t i;
	int ret = kf_state_parse(blob, len, &v);

	if (ret)
		return ret;
	if (v.vcpu_id != vcpu->id)
		return kf_fail(EINVAL, "vCPU state of vCPU %u cannot be loaded into vCPU %u",
			       v.vcpu_id, vcpu->id);
	for (i = 0, e = v.regs; i < v.nr_regs; i++) {
		uint64_t id, value[KF_STATE_MAX_REG_SIZE / 8];
		struct kvm_one_reg reg = { .addr = (uintptr_t)value };

		memcpy(&id, e, sizeof(id));
		memcpy(value, e + sizeof(id), kf_reg_size(id));
		reg.id = id;
		if (ioctl(vcpu->fd, KVM_SET_ONE_REG, &reg))
			return kf_fail_errno(errno, "vCPU %u: restoring register 0x%llx",
					     vcpu->id, (unsigned long long)id);
		e += kf_reg_entry_len(id);
	}
	return 0;
}
