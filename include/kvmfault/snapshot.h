/* SPDX-License-Identifier: MIT */
/*
 * Snapshot files: a guest's vCPU state and memory, restorable eagerly or
 * lazily (a page source that reads pages on demand).
 *
 * Format version KF_SNAP_VERSION, or KF_SNAP_VERSION_TAGS for a snapshot
 * with allocation tags (so that programs before it refuse one by its
 * version), little endian:
 *
 *   offset 0      header (struct kf_snap_header, padded to 4096), with a
 *                 checksum of itself and one of all the metadata below
 *   region_off    nr_regions x struct kf_snap_region
 *   vcpu_off      per vCPU: struct kf_snap_vcpu, then the state blob
 *                 (include/kvmfault/vcpu_state.h), padded to 8
 *   index_off     total_pages x struct kf_snap_page: checksum and kind
 *   tags_off      with KF_SNAP_F_MTE_TAGS only: total_pages x
 *                 KF_SNAP_TAG_BYTES, page i's MTE allocation tags, two
 *                 16-byte granules a byte (the lower granule in the low
 *                 nibble); at index_off + the index, aligned up to 8
 *   data_off      page i of the index at data_off + i * 4096 (zero pages
 *                 are holes and are never read); the end of the sections
 *                 before, aligned up to 4096
 *
 * Opening checks the header, its checksum, the file size (a truncated file
 * is refused) and the metadata checksum, which covers the tags too (so
 * opening reads them all: 1/32 of the guest's memory).  Every page is checked against its
 * own checksum when it is read: a corrupted page is reported (EBADMSG,
 * naming the page) and never handed out.
 */
#ifndef KVMFAULT_SNAPSHOT_H
#define KVMFAULT_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kvmfault/pagesrc.h>
#include <kvmfault/vcpu.h>
#include <kvmfault/vm.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

#define KF_SNAP_MAGIC "KVMFSNAP"
/* 2: checksums are kf_host_hash() (XXH3), no longer kf_hash().  3: the
 * same with KF_SNAP_F_MTE_TAGS and its tags section. */
#define KF_SNAP_VERSION 2
#define KF_SNAP_VERSION_TAGS 3
#define KF_SNAP_MAX_REGIONS 64
#define KF_SNAP_PAGE_DATA 0
#define KF_SNAP_PAGE_ZERO 1
/* Header flags.  The VM had MTE: the file holds every page's tags, and a
 * restore gives the VM MTE and each page its tags before the guest sees it. */
#define KF_SNAP_F_MTE_TAGS (1u << 0)
#define KF_SNAP_TAG_BYTES 128

struct kf_snap_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size;
	uint32_t page_size;
	uint32_t nr_vcpus;
	uint32_t nr_regions;
	uint32_t flags;
	uint64_t image_id;	/* kf_mig_image_id() of the saving program */
	uint64_t created_realtime_ns;
	uint64_t region_off;
	uint64_t vcpu_off;
	uint64_t vcpu_len;
	uint64_t index_off;
	uint64_t total_pages;
	uint64_t data_off;
	uint64_t file_size;
	uint64_t meta_hash;	/* regions, vCPU states, page index */
	uint64_t app_data[8];	/* free for the saving program */
	uint64_t header_hash;	/* this header with header_hash = 0 */
};

struct kf_snap_region {
	uint64_t gpa;
	uint64_t size;
	uint32_t slot_flags;
	uint32_t reserved;
	uint64_t first_page;	/* index of its first page */
};

struct kf_snap_vcpu {
	uint32_t id;
	uint32_t len;
};

struct kf_snap_page {
	uint64_t hash;		/* kf_mig_page_hash(gpa, page) */
	uint32_t kind;		/* KF_SNAP_PAGE_* */
	uint32_t reserved;
};

struct kf_snapshot;

/*
 * Save every memslot of vm and the state of vcpus[0..nr_vcpus) (stopped,
 * ids 0..nr_vcpus-1) to path.  app_data (8 words, may be NULL) is stored
 * in the header.  *bytes gets the file's size (may be NULL).  The file is
 * written beside path with mode 0600, synced and renamed over path: path
 * holds the old snapshot or the complete new one, never a partial one.
 */
int kf_snapshot_save(struct kf_vm *vm, struct kf_vcpu **vcpus,
		     unsigned int nr_vcpus, const uint64_t *app_data,
		     const char *path, uint64_t *bytes);

/* Open and check a snapshot file / a snapshot held in memory (borrowed). */
int kf_snapshot_open(const char *path, struct kf_snapshot **snapp);
int kf_snapshot_open_mem(const void *buf, size_t len,
			 struct kf_snapshot **snapp);
void kf_snapshot_close(struct kf_snapshot *snap);

const struct kf_snap_header *kf_snapshot_header(const struct kf_snapshot *snap);
const struct kf_snap_region *kf_snapshot_region(const struct kf_snapshot *snap,
						unsigned int i);
/* The saved state of vCPU id (pointer into the snapshot). */
int kf_snapshot_vcpu_state(const struct kf_snapshot *snap, unsigned int id,
			   const void **blobp, size_t *lenp);

/* Read and verify the page at gpa into buf (4096 bytes). */
int kf_snapshot_read_page(struct kf_snapshot *snap, uint64_t gpa, void *buf);
/*
 * The allocation tags of the len bytes of whole pages at gpa, one byte a
 * 16-byte granule (KVM_ARM_MTE_COPY_TAGS' layout: len / 16 bytes into
 * tags).  -ENODATA for a snapshot without KF_SNAP_F_MTE_TAGS.
 */
int kf_snapshot_read_tags(struct kf_snapshot *snap, uint64_t gpa, void *tags,
			  size_t len);

/* A page source over region i (borrows snap: close it after the source);
 * with KF_PAGESRC_TAGS when the snapshot holds tags. */
int kf_snapshot_pagesrc(struct kf_snapshot *snap, unsigned int i,
			struct kf_pagesrc **srcp);
/*
 * The same, and once the engine starts it, it also prefetches: a thread
 * reads the region from the file, the loaded working set's pages first in
 * its order, then the rest in file order, in runs of up to 64 pages, and
 * pushes them (the engine skips pages its faults got first).
 */
int kf_snapshot_pagesrc_prefetch(struct kf_snapshot *snap, unsigned int i,
				 struct kf_pagesrc **srcp);

/*
 * Working sets.  A working set file lists guest page addresses in the
 * order a restored guest first touched them (little endian):
 *
 *   struct kf_snap_ws_header, then nr_pages x uint64_t guest address
 *
 * hash is kf_host_hash() of the addresses, seeded with that of the header
 * (hash = 0); snapshot_hash ties the file to one snapshot (its header's
 * header_hash).  Record at a lazy restore, save, and load it at later
 * restores: their prefetching sources install its pages first, in its
 * order, then the rest in file order.
 */
#define KF_SNAP_WS_MAGIC "KVMFWSET"
#define KF_SNAP_WS_VERSION 1

struct kf_snap_ws_header {
	char magic[8];
	uint32_t version;
	uint32_t reserved;
	uint64_t snapshot_hash;
	uint64_t nr_pages;
	uint64_t hash;
};

/* Record the first touch of each page by a fault (from now on). */
int kf_snapshot_ws_record(struct kf_snapshot *snap);
/* Pages recorded so far, and pages of the loaded working set. */
void kf_snapshot_ws_count(struct kf_snapshot *snap, uint64_t *recorded,
			  uint64_t *loaded);
/* Write what was recorded to path: mode 0600, renamed into place whole. */
int kf_snapshot_ws_save(struct kf_snapshot *snap, const char *path);
/* Load path (checked: format, checksum, this snapshot's pages only), for
 * the prefetching sources made after this call. */
int kf_snapshot_ws_load(struct kf_snapshot *snap, const char *path);

/* Copy region i into host memory at hva, verifying every page. */
int kf_snapshot_load_region(struct kf_snapshot *snap, unsigned int i,
			    void *hva);

/* ----------------------------------------------------------------------
 * Restoring a whole VM (lib/snapshot_restore.c).
 */
struct kf_engine;

struct kf_snapshot_restore {
	bool lazy;			/* demand-page data regions from the file */
	bool prefetch;			/* lazy: and prefetch them in the background */
	int backend;			/* enum kf_backend, for lazy */
	void (*entry)(uint64_t);	/* placeholder vCPU entry (the saved
					 * state replaces it); NULL: one of
					 * the library's */
	/* results */
	struct kf_vm *vm;
	struct kf_vcpu *vcpus[KF_MAX_VCPUS];
	unsigned int nr_vcpus;
	struct kf_engine *engine;	/* lazy only; started */
	struct kf_pagesrc *srcs[KF_SNAP_MAX_REGIONS];
	uint64_t eager_pages;		/* pages copied before the guest ran */
};

/*
 * Build a VM from snap: the system slot and (eager) every region copied and
 * verified, or (lazy) data regions served by the fault engine from the
 * file; vCPU states loaded.  The vCPUs are not started.  A snapshot taken
 * by another program image is refused (guest code lives in the image).
 */
int kf_snapshot_restore_vm(struct kf_snapshot *snap, struct kf_snapshot_restore *rs);
/* Tear down what kf_snapshot_restore_vm() built (vCPUs must be joined). */
void kf_snapshot_restore_free(struct kf_snapshot_restore *rs);

KF_API_END

#endif
