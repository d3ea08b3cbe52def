// SPDX-License-Identifier: MIT
#include <string.h>

#include <kvmfault/error.h>
#include <kvmfault/limits.h>
#include <kvmfault/vcpu_state.h>

#include "vcpu_state.h"

static const char *kf_state_arch_name(uint16_t arch)
{
	switch (arch) {
	case KF_STATE_ARCH_X86_64: return "x86-64";
	case KF_STATE_ARCH_ARM64: return "arm64";
	default: return "unknown";
	}
}

struct kf_state_hdr kf_state_hdr_init(uint16_t arch, unsigned int vcpu_id)
{
	return (struct kf_state_hdr){
		.magic = KF_VCPU_STATE_MAGIC,
		.version = KF_VCPU_STATE_VERSION,
		.arch = arch,
		.vcpu_id = vcpu_id,
	};
}

int kf_state_hdr_check(const void *blob, size_t len, uint16_t arch,
		       struct kf_state_hdr *h)
{
	if (!blob || len < sizeof(*h))
		return kf_fail(EINVAL, "vCPU state: %zu bytes is too short", len);
	memcpy(h, blob, sizeof(*h));
	if (h->magic != KF_VCPU_STATE_MAGIC)
		return kf_fail(EINVAL, "vCPU state: bad magic 0x%08x", h->magic);
	if (h->version != KF_VCPU_STATE_VERSION)
		return kf_fail(EPROTO, "vCPU state: version %u, this program reads version %u",
			       h->version, KF_VCPU_STATE_VERSION);
	if (h->arch != arch)
		return kf_fail(EPROTO, "vCPU state: architecture %u (%s) is not %s",
			       h->arch, kf_state_arch_name(h->arch),
			       kf_state_arch_name(arch));
	if (h->total_len != len || len > KF_VCPU_STATE_MAX)
		return kf_fail(EINVAL, "vCPU state: length %zu, header says %u",
			       len, h->total_len);
	if (h->vcpu_id >= KF_MAX_VCPUS)
		return kf_fail(EINVAL, "vCPU state: vCPU id %u out of range",
			       h->vcpu_id);
	return 0;
}
