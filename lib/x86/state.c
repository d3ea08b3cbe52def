// SPDX-License-Identifier: MIT
/*
 * x86 vCPU state blobs.  Layout (little endian, native struct layouts of
 * the KVM UAPI, which are fixed ABI):
 *
 *   struct kf_state_hdr
 *   repeated: struct kf_state_sec, then len bytes, padded to 8
 *
 * Restore parses and checks every section before the first ioctl.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <kvmfault/compiler.h>
#include <kvmfault/error.h>
#include <kvmfault/vcpu_state.h>

#include "../vcpu_state.h"
#include "../vm_objects.h"

enum kf_state_sec_type {
	KF_SEC_REGS = 1,
	KF_SEC_SREGS,
	KF_SEC_FPU,
	KF_SEC_XCRS,
	KF_SEC_XSAVE,
	KF_SEC_MSRS,
	KF_SEC_EVENTS,
	KF_SEC_MAX,
};

struct kf_state_sec {
	uint32_t type;
	uint32_t len;
};

/* MSRs that CPL3 guest code (or its kernel, were there one) depends on. */
static const uint32_t kf_state_msrs[] = {
	0x00000174, 0x00000175, 0x00000176,	/* SYSENTER_CS/ESP/EIP */
	0x00000277,				/* PAT */
	0xc0000081, 0xc0000082, 0xc0000083,	/* STAR, LSTAR, CSTAR */
	0xc0000084,				/* SFMASK */
	0xc0000102,				/* KERNEL_GS_BASE */
	0xc0000103,				/* TSC_AUX */
};
#define KF_STATE_NR_MSRS KF_ARRAY_SIZE(kf_state_msrs)

struct kf_state_buf {
	char *p;
	size_t len, cap;
	uint32_t nr;
};

static int kf_state_put(struct kf_state_buf *b, uint32_t type,
			const void *data, size_t len)
{
	size_t need = sizeof(struct kf_state_sec) + KF_ALIGN_UP(len, 8);
	struct kf_state_sec sec = { .type = type, .len = (uint32_t)len };

	if (b->len + need > b->cap) {
		size_t cap = KF_MAX(b->cap * 2, b->len + need + 4096);
		char *p = realloc(b->p, cap);

		if (!p)
			return kf_fail(ENOMEM, "out of memory for vCPU state");
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, &sec, sizeof(sec));
	memcpy(b->p + b->len + sizeof(sec), data, len);
	memset(b->p + b->len + sizeof(sec) + len, 0,
	       KF_ALIGN_UP(len, 8) - len);
	b->len += need;
	b->nr++;
	return 0;
}

static int kf_state_get_msrs(struct kf_vcpu *vcpu, struct kf_state_buf *b)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[KF_STATE_NR_MSRS];
	} m;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} one;
	unsigned int i, n = 0;

	memset(&m, 0, sizeof(m));
	/* One at a time: a KVM may lack some; keep those it has. */
	for (i = 0; i < KF_STATE_NR_MSRS; i++) {
		memset(&one, 0, sizeof(one));
		one.hdr.nmsrs = 1;
		one.e[0].index = kf_state_msrs[i];
		if (ioctl(vcpu->fd, KVM_GET_MSRS, &one) == 1)
			m.e[n++] = one.e[0];
	}
	m.hdr.nmsrs = n;
	return kf_state_put(b, KF_SEC_MSRS, &m,
			    sizeof(m.hdr) + n * sizeof(m.e[0]));
}

int kf_vcpu_state_save(struct kf_vcpu *vcpu, void **blobp, size_t *lenp)
{
	struct kf_state_buf b = { 0 };
	struct kf_state_hdr hdr = kf_state_hdr_init(KF_STATE_ARCH_X86_64, vcpu->id);
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events ev;
	int ret = -EINVAL, xsize;

	*blobp = NULL;
	*lenp = 0;
	/*
	 * Finish an exit the vCPU may still owe (an OUT whose instruction
	 * pointer moves on re-entry): a KVM_RUN with immediate_exit completes
	 * it and returns at once, so the state saved is consistent.
	 */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	ioctl(vcpu->fd, KVM_RUN, NULL);
	__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);

	b.cap = 8192;
	b.p = malloc(b.cap);
	if (!b.p)
		return kf_fail(ENOMEM, "out of memory for vCPU state");
	b.len = sizeof(hdr);

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs)) {
		ret = kf_fail_errno(errno, "vCPU %u: KVM_GET_REGS", vcpu->id);
		goto fail;
	}
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sregs)) {
		ret = kf_fail_errno(errno, "vCPU %u: KVM_GET_SREGS", vcpu->id);
		goto fail;
	}
	if ((ret = kf_state_put(&b, KF_SEC_SREGS, &sregs, sizeof(sregs))) ||
	    (ret = kf_state_put(&b, KF_SEC_REGS, &regs, sizeof(regs))))
		goto fail;

	xsize = ioctl(vcpu->vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	if (xsize < (int)sizeof(struct kvm_xsave))
		xsize = sizeof(struct kvm_xsave);
	if (ioctl(vcpu->vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0) {
		struct kvm_xsave *xs = calloc(1, xsize);
		unsigned long req = xsize > (int)sizeof(struct kvm_xsave) ?
				    KVM_GET_XSAVE2 : KVM_GET_XSAVE;

		if (!xs) {
			ret = kf_fail(ENOMEM, "out of memory for XSAVE state");
			goto fail;
		}
		if (ioctl(vcpu->fd, req, xs)) {
			ret = kf_fail_errno(errno, "vCPU %u: KVM_GET_XSAVE", vcpu->id);
			free(xs);
			goto fail;
		}
		ret = kf_state_put(&b, KF_SEC_XSAVE, xs, xsize);
		free(xs);
		if (ret)
			goto fail;
	} else {
		if (ioctl(vcpu->fd, KVM_GET_FPU, &fpu)) {
			ret = kf_fail_errno(errno, "vCPU %u: KVM_GET_FPU", vcpu->id);
			goto fail;
		}
		if ((ret = kf_state_put(&b, KF_SEC_FPU, &fpu, sizeof(fpu))))
			goto fail;
	}
	if (ioctl(vcpu->vm->fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0) {
		if (ioctl(vcpu->fd, KVM_GET_XCRS, &xcrs)) {
			ret = kf_fail_errno(errno, "vCPU %u: KVM_GET_XCRS", vcpu->id);
			goto fail;
		}
		if ((ret = kf_state_put(&b, KF_SEC_XCRS, &xcrs, sizeof(xcrs))))
			goto fail;
	}
	if ((ret = kf_state_get_msrs(vcpu, &b)))
		goto fail;
	if (!ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) &&
	    (ret = kf_state_put(&b, KF_SEC_EVENTS, &ev, sizeof(ev))))
		goto fail;

	hdr.nr_items = b.nr;
	hdr.total_len = (uint32_t)b.len;
	memcpy(b.p, &hdr, sizeof(hdr));
	*blobp = b.p;
	*lenp = b.len;
	return 0;
fail:
	free(b.p);
	return ret;
}

struct kf_state_view {
	const void *sec[KF_SEC_MAX];
	uint32_t len[KF_SEC_MAX];
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
	ret = kf_state_hdr_check(blob, len, KF_STATE_ARCH_X86_64, &hdr);
	if (ret)
		return ret;
	for (i = 0; i < hdr.nr_items; i++) {
		struct kf_state_sec sec;

		if (len - off < sizeof(sec))
			return kf_fail(EINVAL, "vCPU state: section %u truncated", i);
		memcpy(&sec, p + off, sizeof(sec));
		off += sizeof(sec);
		if (sec.len > len - off || KF_ALIGN_UP((size_t)sec.len, 8) > len - off)
			return kf_fail(EINVAL, "vCPU state: section %u (type %u) overruns the blob",
				       i, sec.type);
		if (sec.type == 0 || sec.type >= KF_SEC_MAX || v->sec[sec.type])
			return kf_fail(EINVAL, "vCPU state: section %u has bad or repeated type %u",
				       i, sec.type);
		v->sec[sec.type] = p + off;
		v->len[sec.type] = sec.len;
		off += KF_ALIGN_UP((size_t)sec.len, 8);
	}
	if (off != len)
		return kf_fail(EINVAL, "vCPU state: %zu trailing bytes", len - off);
	if (v->len[KF_SEC_REGS] != sizeof(struct kvm_regs) ||
	    v->len[KF_SEC_SREGS] != sizeof(struct kvm_sregs))
		return kf_fail(EINVAL, "vCPU state: registers missing or of the wrong size");
	if (v->sec[KF_SEC_FPU] && v->len[KF_SEC_FPU] != sizeof(struct kvm_fpu))
		return kf_fail(EINVAL, "vCPU state: FPU section of the wrong size");
	if (v->sec[KF_SEC_XCRS] && v->len[KF_SEC_XCRS] != sizeof(struct kvm_xcrs))
		return kf_fail(EINVAL, "vCPU state: XCR section of the wrong size");
	if (v->sec[KF_SEC_XSAVE] && v->len[KF_SEC_XSAVE] < sizeof(struct kvm_xsave))
		return kf_fail(EINVAL, "vCPU state: XSAVE section too short");
	if (v->sec[KF_SEC_EVENTS] &&
	    v->len[KF_SEC_EVENTS] != sizeof(struct kvm_vcpu_events))
		return kf_fail(EINVAL, "vCPU state: events section of the wrong size");
	if (v->sec[KF_SEC_MSRS]) {
		struct kvm_msrs mh;

		if (v->len[KF_SEC_MSRS] < sizeof(mh))
			return kf_fail(EINVAL, "vCPU state: MSR section too short");
		memcpy(&mh, v->sec[KF_SEC_MSRS], sizeof(mh));
		if (mh.nmsrs > KF_STATE_NR_MSRS ||
		    v->len[KF_SEC_MSRS] != sizeof(mh) +
					   mh.nmsrs * sizeof(struct kvm_msr_entry))
			return kf_fail(EINVAL, "vCPU state: MSR section holds a bad count");
	}
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
	struct kf_state_view v;
	struct kvm_regs regs;

	if (kf_state_parse(blob, len, &v))
		return 0;
	memcpy(&regs, v.sec[KF_SEC_REGS], sizeof(regs));
	return regs.rip;
}

/* A copy aligned for the ioctl (blob sections are only 8-byte aligned). */
static void *kf_state_dup(const void *p, size_t len)
{
	void *q = aligned_alloc(64, KF_ALIGN_UP(len, 64));

	if (q)
		memcpy(q, p, len);
	return q;
}

static int kf_state_set(struct kf_vcpu *vcpu, unsigned long req,
			const void *p, size_t len, const char *what)
{
	void *q = kf_state_dup(p, len);
	int ret = 0;

	if (!q)
		return kf_fail(ENOMEM, "out of memory restoring %s", what);
	if (ioctl(vcpu->fd, req, q))
		ret = kf_fail_errno(errno, "vCPU %u: restoring %s", vcpu->id, what);
	free(q);
	return ret;
}

int kf_vcpu_state_restore(struct kf_vcpu *vcpu, const void *blob, size_t len)
{
	struct kf_state_view v;
	int ret = kf_state_parse(blob, len, &v);

	if (ret)
		return ret;
	if (v.vcpu_id != vcpu->id)
		return kf_fail(EINVAL, "vCPU state of vCPU %u cannot be loaded into vCPU %u",
			       v.vcpu_id, vcpu->id);
	if ((ret = kf_state_set(vcpu, KVM_SET_SREGS, v.sec[KF_SEC_SREGS],
				v.len[KF_SEC_SREGS], "special registers")))
		return ret;
	if (v.sec[KF_SEC_MSRS]) {
		struct kvm_msrs mh;
		void *q = kf_state_dup(v.sec[KF_SEC_MSRS], v.len[KF_SEC_MSRS]);
		int n;

		if (!q)
			return kf_fail(ENOMEM, "out of memory restoring MSRs");
		memcpy(&mh, q, sizeof(mh));
		n = ioctl(vcpu->fd, KVM_SET_MSRS, q);
		free(q);
		if (n != (int)mh.nmsrs)
			return kf_fail(EIO, "vCPU %u: KVM_SET_MSRS set %d of %u MSRs",
				       vcpu->id, n, mh.nmsrs);
	}
	if (v.sec[KF_SEC_XCRS] &&
	    (ret = kf_state_set(vcpu, KVM_SET_XCRS, v.sec[KF_SEC_XCRS],
				v.len[KF_SEC_XCRS], "XCRs")))
		return ret;
	if (v.sec[KF_SEC_XSAVE]) {
		/* KVM_SET_XSAVE reads as much as KVM_GET_XSAVE2 wrote. */
		if ((ret = kf_state_set(vcpu, KVM_SET_XSAVE, v.sec[KF_SEC_XSAVE],
					v.len[KF_SEC_XSAVE], "XSAVE state")))
			return ret;
	} else if (v.sec[KF_SEC_FPU] &&
		   (ret = kf_state_set(vcpu, KVM_SET_FPU, v.sec[KF_SEC_FPU],
				       v.len[KF_SEC_FPU], "FPU state"))) {
		return ret;
	}
	if ((ret = kf_state_set(vcpu, KVM_SET_REGS, v.sec[KF_SEC_REGS],
				v.len[KF_SEC_REGS], "registers")))
		return ret;
	if (v.sec[KF_SEC_EVENTS] &&
	    (ret = kf_state_set(vcpu, KVM_SET_VCPU_EVENTS, v.sec[KF_SEC_EVENTS],
				v.len[KF_SEC_EVENTS], "pending events")))
		return ret;
	return 0;
}
