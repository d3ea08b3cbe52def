// SPDX-License-Identifier: MIT
/* Restoring a VM from a snapshot, eagerly or lazily (the fault engine). */
#include <stdlib.h>
#include <string.h>

#include <kvmfault/compiler.h>
#include <kvmfault/error.h>
#include <kvmfault/migration.h>
#include <kvmfault/snapshot.h>
#include <kvmfault/vcpu_state.h>
#include <kvmfault/vm_engine.h>

#include "vm_internal.h"

/* The entry a vCPU is made with before its saved state replaces it all:
 * never runs. */
static KF_GUEST void kf_restore_placeholder(uint64_t arg)
{
	(void)arg;
}

#define KF_RESTORE_TAG_CHUNK 256	/* pages */

static bool kf_tags_zero(const uint8_t *tags)
{
	unsigned int i;

	for (i = 0; i < KF_MTE_TAGS_PER_PAGE; i++)
		if (tags[i])
			return false;
	return true;
}

/*
 * Region i's allocation tags, from the snapshot into the guest (copied,
 * before any vCPU runs).  Pages whose tags are all zero are left alone:
 * KVM gives them zero tags when it first maps them, and a read-only slot,
 * where the guest cannot store a tag, refuses KVM_ARM_MTE_COPY_TAGS.
 */
static int kf_restore_tags(struct kf_snapshot *snap, unsigned int i, struct kf_vm *vm)
{
	const struct kf_snap_region *sr = kf_snapshot_region(snap, i);
	uint8_t *tags = malloc(KF_RESTORE_TAG_CHUNK * KF_MTE_TAGS_PER_PAGE);
	uint64_t p, n, np = sr->size / KF_PAGE_SIZE;
	int ret = tags ? 0 : kf_fail(ENOMEM, "out of memory for allocation tags");

	for (p = 0; !ret && p < np; p += n) {
		uint64_t a, b;

		n = KF_MIN(np - p, (uint64_t)KF_RESTORE_TAG_CHUNK);
		ret = kf_snapshot_read_tags(snap, sr->gpa + p * KF_PAGE_SIZE, tags,
					    n * KF_PAGE_SIZE);
		for (a = 0; !ret && a < n; a = b) {
			if (kf_tags_zero(tags + a * KF_MTE_TAGS_PER_PAGE)) {
				b = a + 1;
				continue;
			}
			for (b = a + 1; b < n && !kf_tags_zero(tags + b * KF_MTE_TAGS_PER_PAGE); b++)
				;
			ret = kf_arch_copy_tags(vm, sr->gpa + (p + a) * KF_PAGE_SIZE,
						(b - a) * KF_PAGE_SIZE,
						tags + a * KF_MTE_TAGS_PER_PAGE, true);
		}
	}
	free(tags);
	return ret;
}

int kf_snapshot_restore_vm(struct kf_snapshot *snap, struct kf_snapshot_restore *rs)
{
	const struct kf_snap_header *h = kf_snapshot_header(snap);
	struct kf_engine_config ec = { .backend = (enum kf_backend)rs->backend };
	bool mte = h->flags & KF_SNAP_F_MTE_TAGS;
	/* The engine tags a page in the page cache before the guest maps it:
	 * a tagged lazy region is a memfd's. */
	bool memfd = rs->backend == KF_BACKEND_UFFD_MINOR || (rs->lazy && mte);
	unsigned int i;
	int ret;

	rs->vm = NULL;
	rs->engine = NULL;
	rs->nr_vcpus = 0;
	rs->eager_pages = 0;
	memset(rs->srcs, 0, sizeof(rs->srcs));
	if (h->image_id != kf_mig_image_id())
		return kf_fail(EINVAL, "snapshot was taken by another program image (0x%llx, this one 0x%llx): its guest code would not match",
			       (unsigned long long)h->image_id,
			       (unsigned long long)kf_mig_image_id());
	ret = kf_vm_create(&rs->vm);
	if (ret)
		return ret;
	if (mte) {
		ret = kf_vm_enable_mte(rs->vm);
		if (ret)
			goto fail;
	}
	if (rs->lazy) {
		ret = kf_engine_create(rs->vm, &ec, &rs->engine);
		if (ret)
			goto fail;
	}
	for (i = 0; i < h->nr_regions; i++) {
		const struct kf_snap_region *sr = kf_snapshot_region(snap, i);
		const struct kf_memslot *ms = kf_vm_find_slot(rs->vm, sr->gpa);
		struct kf_region reg = {
			.gpa = sr->gpa, .size = sr->size, .flags = sr->slot_flags,
			.backing = memfd ? KF_BACKING_MEMFD : KF_BACKING_ANON,
			.guest_memfd = -1,
		};

		if (ms && ms->slot == KF_SYSTEM_SLOT) {
			ret = kf_vm_check_system_slot(ms, sr->gpa, sr->size, EINVAL,
						      "snapshot");
			if (ret)
				goto fail;
		} else {
			ret = kf_vm_add_region(rs->vm, &reg, &ms);
			if (ret)
				goto fail;
		}
		if (rs->lazy && ms->slot != KF_SYSTEM_SLOT) {
			ret = rs->prefetch ? kf_snapshot_pagesrc_prefetch(snap, i, &rs->srcs[i]) :
					     kf_snapshot_pagesrc(snap, i, &rs->srcs[i]);
			if (!ret)
				ret = kf_engine_add_region(rs->engine, ms->slot, rs->srcs[i]);
		} else {
			ret = kf_snapshot_load_region(snap, i, ms->hva);
			if (!ret && mte)
				ret = kf_restore_tags(snap, i, rs->vm);
			rs->eager_pages += sr->size / KF_PAGE_SIZE;
		}
		if (ret)
			goto fail;
	}
	for (i = 0; i < h->nr_vcpus; i++) {
		const void *blob;
		size_t len;

		ret = kf_vcpu_add(rs->vm, i, rs->entry ? rs->entry : kf_restore_placeholder,
				  0, &rs->vcpus[i]);
		if (ret)
			goto fail;
		rs->nr_vcpus++;
		ret = kf_snapshot_vcpu_state(snap, i, &blob, &len);
		if (!ret)
			ret = kf_vcpu_state_restore(rs->vcpus[i], blob, len);
		if (ret)
			goto fail;
	}
	if (rs->engine) {
		ret = kf_engine_start(rs->engine);
		if (ret)
			goto fail;
	}
	return 0;
fail:
	kf_snapshot_restore_free(rs);
	return ret;
}

void kf_snapshot_restore_free(struct kf_snapshot_restore *rs)
{
	unsigned int i;

	kf_engine_destroy(rs->engine);
	rs->engine = NULL;
	for (i = 0; i < KF_SNAP_MAX_REGIONS; i++) {
		kf_pagesrc_destroy(rs->srcs[i]);
		rs->srcs[i] = NULL;
	}
	kf_vm_destroy(rs->vm);
	rs->vm = NULL;
	rs->nr_vcpus = 0;
}
