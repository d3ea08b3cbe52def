// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the snapshot parser: open a snapshot held in
 * memory (header, regions, vCPU states, page index, allocation tags) and
 * read every page and its tags it claims to hold.  Errors are expected; crashes are bugs.
 */
#include <stddef.h>
#include <stdint.h>

#include <kvmfault/snapshot.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t page[KF_PAGE_SIZE], tags[KF_PAGE_SIZE / 16];
	struct kf_snapshot *snap;
	unsigned int i;

	if (kf_snapshot_open_mem(data, size, &snap))
		return 0;
	for (i = 0; i < kf_snapshot_header(snap)->nr_regions; i++) {
		const struct kf_snap_region *r = kf_snapshot_region(snap, i);
		uint64_t off;

		for (off = 0; off < r->size && off < (64ULL << 20); off += KF_PAGE_SIZE) {
			kf_snapshot_read_page(snap, r->gpa + off, page);
			kf_snapshot_read_tags(snap, r->gpa + off, tags, KF_PAGE_SIZE);
		}
	}
	for (i = 0; i < kf_snapshot_header(snap)->nr_vcpus; i++) {
		const void *blob;
		size_t len;

		kf_snapshot_vcpu_state(snap, i, &blob, &len);
	}
	kf_snapshot_close(snap);
	return 0;
}
