// SPDX-License-Identifier: MIT
/* Snapshot files (see include/kvmfault/snapshot.h). */
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/migration.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/private_mem.h>
#include <kvmfault/snapshot.h>
#include <kvmfault/vcpu_state.h>

#include "internal.h"
#include "vm_internal.h"

#define KF_SNAP_HEADER_SIZE 4096
#define KF_SNAP_MAX_VCPU_LEN ((uint64_t)KF_MAX_VCPUS * (KF_VCPU_STATE_MAX + 8))

struct kf_snapshot {
	int fd;			/* -1: in memory */
	const char *mem;
	size_t mem_len;
	uint64_t size;
	struct kf_snap_header hdr;
	struct kf_snap_region *regions;
	char *vcpus;		/* the vCPU section */
	const void *vcpu_blob[KF_MAX_VCPUS];
	size_t vcpu_len[KF_MAX_VCPUS];
	struct kf_snap_page *index;
	uint8_t *tags;		/* KF_SNAP_F_MTE_TAGS: the tags section */
	struct kf_snap_ws *ws;	/* working set: recorded or loaded */
};

static uint64_t kf_snap_header_hash(const struct kf_snap_header *h)
{
	struct kf_snap_header c = *h;

	c.header_hash = 0;
	return kf_host_hash(&c, sizeof(c), 0);
}

/* Regions, vCPU states, page index and tags (when there are), each hash
 * the next one's seed. */
static uint64_t kf_snap_meta_hash(const struct kf_snap_region *regions,
				  uint64_t nr_regions, const void *vcpus,
				  uint64_t vcpu_len, const struct kf_snap_page *index,
				  uint64_t nr_pages, const uint8_t *tags,
				  uint64_t tags_len)
{
	uint64_t h;

	h = kf_host_hash(regions, nr_regions * sizeof(*regions), 0);
	h = kf_host_hash(vcpus, vcpu_len, h);
	h = kf_host_hash(index, nr_pages * sizeof(*index), h);
	return tags_len ? kf_host_hash(tags, tags_len, h) : h;
}

/* The tags section's offset and length, from the header. */
static uint64_t kf_snap_tags_off(const struct kf_snap_header *h)
{
	return KF_ALIGN_UP(h->index_off + h->total_pages * sizeof(struct kf_snap_page), 8);
}

static uint64_t kf_snap_tags_len(const struct kf_snap_header *h)
{
	return h->flags & KF_SNAP_F_MTE_TAGS ? h->total_pages * KF_SNAP_TAG_BYTES : 0;
}

_Static_assert(KF_SNAP_TAG_BYTES == KF_MTE_PACKED_PER_PAGE, "a page's packed tags");

#define KF_SNAP_TAG_CHUNK 256	/* pages whose tags are read from KVM at once */

/* Every region's tags, packed into tags (total_pages x KF_SNAP_TAG_BYTES). */
static int kf_snap_save_tags(struct kf_vm *vm, const struct kf_snap_region *regions,
			     unsigned int nr, uint8_t *tags)
{
	static const uint64_t chunk = KF_SNAP_TAG_CHUNK * KF_PAGE_SIZE;
	uint8_t *buf = malloc(KF_SNAP_TAG_CHUNK * KF_MTE_TAGS_PER_PAGE);
	unsigned int i;
	int ret = buf ? 0 : kf_fail(ENOMEM, "out of memory for allocation tags");

	for (i = 0; !ret && i < nr; i++) {
		uint64_t off, len;

		for (off = 0; !ret && off < regions[i].size; off += len) {
			len = regions[i].size - off < chunk ? regions[i].size - off : chunk;
			ret = kf_arch_copy_tags(vm, regions[i].gpa + off, len, buf, false);
			if (!ret)
				kf_mte_pack_tags(tags + (regions[i].first_page +
							  off / KF_PAGE_SIZE) * KF_SNAP_TAG_BYTES,
						  buf, len / KF_MTE_GRANULE);
		}
	}
	free(buf);
	return ret;
}

/* ------------------------------------------------------------------ save */

int kf_pwrite_full(int fd, const void *buf, size_t len, uint64_t off,
		   const char *path)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return kf_fail_errno(n < 0 ? errno : EIO, "write %s", path);
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

/*
 * The new snapshot is written beside the old one, private (0600: it holds
 * guest memory), and renamed over it only once it is on disk: a crash or
 * a failed write leaves the old snapshot whole.
 */
int kf_snap_create_tmp(const char *path, char **tmpp)
{
	char *tmp;
	int fd;

	if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
		return kf_fail(ENOMEM, "out of memory");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		int ret = kf_fail_errno(errno, "create a temporary file beside %s",
					path);

		free(tmp);
		return ret;
	}
	*tmpp = tmp;
	return fd;
}

static int kf_snap_fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, ret = 0;

	if (!copy)
		return kf_fail(ENOMEM, "out of memory");
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd))
		ret = kf_fail_errno(errno, "fsync the directory of %s", path);
	if (fd >= 0)
		close(fd);
	free(copy);
	return ret;
}

/* fsync, close and rename tmp over path; closes fd in every case. */
int kf_snap_commit(int fd, const char *tmp, const char *path)
{
	int ret = 0;

	if (fsync(fd))
		ret = kf_fail_errno(errno, "fsync %s", tmp);
	if (close(fd) && !ret)
		ret = kf_fail_errno(errno, "close %s", tmp);
	if (ret)
		return ret;
	if (rename(tmp, path))
		return kf_fail_errno(errno, "rename %s to %s", tmp, path);
	return kf_snap_fsync_dir(path);
}

int kf_snapshot_save(struct kf_vm *vm, struct kf_vcpu **vcpus,
		     unsigned int nr_vcpus, const uint64_t *app_data,
		     const char *path, uint64_t *bytes)
{
	struct kf_snap_header h = { .magic = KF_SNAP_MAGIC };
	struct kf_snap_region regions[KF_SNAP_MAX_REGIONS];
	struct kf_snap_page *index = NULL;
	char *vsec = NULL, *tmp = NULL, *tmppath = NULL;
	uint8_t *tags = NULL;
	uint64_t meta, p, off, tags_len;
	unsigned int i, nr = 0;
	int fd = -1, ret;

	if (!nr_vcpus || nr_vcpus > KF_MAX_VCPUS)
		return kf_fail(EINVAL, "snapshot: %u vCPUs", nr_vcpus);
	ret = kf_vm_check_no_private(vm, "snapshot");
	if (ret)
		return ret;
	memset(regions, 0, sizeof(regions));
	for (i = 0; i < KF_MAX_SLOTS; i++) {
		const struct kf_memslot *ms = kf_vm_slot(vm, i);

		if (!ms)
			continue;
		if (nr == KF_SNAP_MAX_REGIONS)
			return kf_fail(ENOSPC, "snapshot: more than %d memslots",
				       KF_SNAP_MAX_REGIONS);
		regions[nr].gpa = ms->gpa;
		regions[nr].size = ms->size;
		regions[nr].slot_flags = ms->flags & ~(KVM_MEM_LOG_DIRTY_PAGES |
						       KVM_MEM_EXIT_ON_MISSING);
		regions[nr].first_page = h.total_pages;
		h.total_pages += ms->size / KF_PAGE_SIZE;
		nr++;
	}

	/* vCPU states */
	h.vcpu_len = 0;
	for (i = 0; i < nr_vcpus; i++) {
		struct kf_snap_vcpu v = { .id = i };
		void *blob;
		size_t len;
		char *n;

		if (!vcpus[i] || kf_vcpu_id(vcpus[i]) != i) {
			ret = kf_fail(EINVAL, "snapshot: vCPU %u missing", i);
			goto out;
		}
		ret = kf_vcpu_state_save(vcpus[i], &blob, &len);
		if (ret)
			goto out;
		v.len = (uint32_t)len;
		n = realloc(vsec, h.vcpu_len + sizeof(v) + KF_ALIGN_UP(len, 8));
		if (!n) {
			free(blob);
			ret = kf_fail(ENOMEM, "out of memory");
			goto out;
		}
		vsec = n;
		memcpy(vsec + h.vcpu_len, &v, sizeof(v));
		memcpy(vsec + h.vcpu_len + sizeof(v), blob, len);
		memset(vsec + h.vcpu_len + sizeof(v) + len, 0,
		       KF_ALIGN_UP(len, 8) - len);
		h.vcpu_len += sizeof(v) + KF_ALIGN_UP(len, 8);
		free(blob);
	}

	memcpy(h.magic, KF_SNAP_MAGIC, 8);
	h.version = kf_vm_mte(vm) ? KF_SNAP_VERSION_TAGS : KF_SNAP_VERSION;
	h.header_size = KF_SNAP_HEADER_SIZE;
	h.page_size = KF_PAGE_SIZE;
	h.nr_vcpus = nr_vcpus;
	h.nr_regions = nr;
	h.flags = kf_vm_mte(vm) ? KF_SNAP_F_MTE_TAGS : 0;
	h.image_id = kf_mig_image_id();
	h.created_realtime_ns = kf_mig_realtime_ns();
	h.region_off = KF_SNAP_HEADER_SIZE;
	h.vcpu_off = h.region_off + nr * sizeof(regions[0]);
	h.index_off = KF_ALIGN_UP(h.vcpu_off + h.vcpu_len, 8);
	tags_len = kf_snap_tags_len(&h);
	h.data_off = KF_ALIGN_UP(kf_snap_tags_off(&h) + tags_len, KF_PAGE_SIZE);
	h.file_size = h.data_off + h.total_pages * KF_PAGE_SIZE;
	if (app_data)
		memcpy(h.app_data, app_data, sizeof(h.app_data));

	index = calloc(h.total_pages, sizeof(*index));
	if (!index) {
		ret = kf_fail(ENOMEM, "out of memory for the page index");
		goto out;
	}
	if (tags_len) {
		tags = malloc(tags_len);
		ret = tags ? kf_snap_save_tags(vm, regions, nr, tags) :
			     kf_fail(ENOMEM, "out of memory for allocation tags");
		if (ret)
			goto out;
	}
	fd = kf_snap_create_tmp(path, &tmppath);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	if (ftruncate(fd, h.file_size)) {
		ret = kf_fail_errno(errno, "size %s", path);
		goto out;
	}
	for (i = 0, p = 0; i < nr; i++) {
		const char *hva = kf_vm_gpa_to_hva(vm, regions[i].gpa);
		uint64_t j, n = regions[i].size / KF_PAGE_SIZE;

		for (j = 0; j < n; j++, p++) {
			const char *page = hva + j * KF_PAGE_SIZE;
			uint64_t gpa = regions[i].gpa + j * KF_PAGE_SIZE;

			index[p].hash = kf_mig_page_hash(gpa, page);
			if (kf_page_is_zero(page)) {
				index[p].kind = KF_SNAP_PAGE_ZERO;
				continue;
			}
			ret = kf_pwrite_full(fd, page, KF_PAGE_SIZE,
					     h.data_off + p * KF_PAGE_SIZE, path);
			if (ret)
				goto out;
		}
	}

	meta = kf_snap_meta_hash(regions, nr, vsec, h.vcpu_len, index,
				 h.total_pages, tags, tags_len);
	h.meta_hash = meta;
	h.header_hash = kf_snap_header_hash(&h);

	tmp = calloc(1, KF_SNAP_HEADER_SIZE);
	if (!tmp) {
		ret = kf_fail(ENOMEM, "out of memory");
		goto out;
	}
	memcpy(tmp, &h, sizeof(h));
	off = 0;
	if ((ret = kf_pwrite_full(fd, tmp, KF_SNAP_HEADER_SIZE, off, path)) ||
	    (ret = kf_pwrite_full(fd, regions, nr * sizeof(regions[0]),
				  h.region_off, path)) ||
	    (ret = kf_pwrite_full(fd, vsec, h.vcpu_len, h.vcpu_off, path)) ||
	    (ret = kf_pwrite_full(fd, index, h.total_pages * sizeof(*index),
				  h.index_off, path)) ||
	    (ret = kf_pwrite_full(fd, tags, tags_len, kf_snap_tags_off(&h), path)))
		goto out;
	ret = kf_snap_commit(fd, tmppath, path);
	fd = -1;
	if (ret)
		goto out;
	if (bytes)
		*bytes = h.file_size;
out:
	if (fd >= 0)
		close(fd);
	if (ret && tmppath)
		unlink(tmppath);
	free(tmppath);
	free(tmp);
	free(index);
	free(tags);
	free(vsec);
	return ret;
}

/* ------------------------------------------------------------------ open */

static int kf_snap_read(struct kf_snapshot *s, void *buf, uint64_t len,
			uint64_t off, const char *what)
{
	char *p = buf;

	if (off > s->size || len > s->size - off)
		return kf_fail(EIO, "snapshot is truncated: %s at [%llu, +%llu) lies past its end (%llu bytes)",
			       what, (unsigned long long)off,
			       (unsigned long long)len,
			       (unsigned long long)s->size);
	if (s->fd < 0) {
		memcpy(buf, s->mem + off, len);
		return 0;
	}
	while (len) {
		ssize_t n = pread(s->fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kf_fail_errno(errno, "snapshot: reading %s", what);
		if (n == 0)
			return kf_fail(EIO, "snapshot is truncated: %s ends early",
				       what);
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

static int kf_snap_check(struct kf_snapshot *s)
{
	struct kf_snap_header *h = &s->hdr;
	uint64_t pages = 0, meta, off, end;
	unsigned int i;
	int ret;

	if (s->size < sizeof(*h))
		return kf_fail(EINVAL, "not a snapshot: %llu bytes is too short for a header",
			       (unsigned long long)s->size);
	ret = kf_snap_read(s, h, sizeof(*h), 0, "the header");
	if (ret)
		return ret;
	if (memcmp(h->magic, KF_SNAP_MAGIC, 8))
		return kf_fail(EINVAL, "not a kvmfault snapshot (bad magic)");
	if (h->version != KF_SNAP_VERSION && h->version != KF_SNAP_VERSION_TAGS)
		return kf_fail(EPROTO, "snapshot format version %u is not supported: this program reads versions %u and %u only (version 2 changed the checksums to XXH3, 3 added allocation tags)",
			       h->version, KF_SNAP_VERSION, KF_SNAP_VERSION_TAGS);
	if (kf_snap_header_hash(h) != h->header_hash)
		return kf_fail(EBADMSG, "snapshot header is corrupted (checksum mismatch)");
	if (h->header_size != KF_SNAP_HEADER_SIZE || h->page_size != KF_PAGE_SIZE)
		return kf_fail(EINVAL, "snapshot: unsupported header or page size");
	if (h->flags & ~KF_SNAP_F_MTE_TAGS)
		return kf_fail(EINVAL, "snapshot: unknown header flags 0x%x",
			       h->flags & ~KF_SNAP_F_MTE_TAGS);
	if (!(h->flags & KF_SNAP_F_MTE_TAGS) != (h->version == KF_SNAP_VERSION))
		return kf_fail(EINVAL, "snapshot: version %u with%s allocation tags",
			       h->version, h->flags & KF_SNAP_F_MTE_TAGS ? "" : "out");
	if (!h->nr_vcpus || h->nr_vcpus > KF_MAX_VCPUS ||
	    !h->nr_regions || h->nr_regions > KF_SNAP_MAX_REGIONS)
		return kf_fail(EINVAL, "snapshot: %u vCPUs, %u regions is out of range",
			       h->nr_vcpus, h->nr_regions);
	if (h->file_size != s->size)
		return kf_fail(EIO, "snapshot is truncated or padded: %llu bytes, its header says %llu",
			       (unsigned long long)s->size,
			       (unsigned long long)h->file_size);
	/* Sections in order, inside the file, without overflow. */
	if (h->region_off != KF_SNAP_HEADER_SIZE ||
	    h->vcpu_off != h->region_off + h->nr_regions * sizeof(struct kf_snap_region) ||
	    h->vcpu_len > KF_SNAP_MAX_VCPU_LEN ||
	    h->index_off != KF_ALIGN_UP(h->vcpu_off + h->vcpu_len, 8) ||
	    h->total_pages > s->size / KF_PAGE_SIZE ||
	    h->data_off != KF_ALIGN_UP(kf_snap_tags_off(h) + kf_snap_tags_len(h),
				       KF_PAGE_SIZE) ||
	    h->data_off + h->total_pages * KF_PAGE_SIZE != h->file_size)
		return kf_fail(EINVAL, "snapshot: section offsets are inconsistent");

	s->regions = calloc(h->nr_regions, sizeof(*s->regions));
	s->vcpus = malloc(h->vcpu_len ? h->vcpu_len : 1);
	s->index = calloc(h->total_pages ? h->total_pages : 1, sizeof(*s->index));
	s->tags = malloc(kf_snap_tags_len(h) ? kf_snap_tags_len(h) : 1);
	if (!s->regions || !s->vcpus || !s->index || !s->tags)
		return kf_fail(ENOMEM, "out of memory for snapshot metadata");
	if ((ret = kf_snap_read(s, s->regions, h->nr_regions * sizeof(*s->regions),
				h->region_off, "the region table")) ||
	    (ret = kf_snap_read(s, s->vcpus, h->vcpu_len, h->vcpu_off,
				"the vCPU states")) ||
	    (ret = kf_snap_read(s, s->index, h->total_pages * sizeof(*s->index),
				h->index_off, "the page index")) ||
	    (ret = kf_snap_read(s, s->tags, kf_snap_tags_len(h), kf_snap_tags_off(h),
				"the allocation tags")))
		return ret;
	meta = kf_snap_meta_hash(s->regions, h->nr_regions, s->vcpus,
				 h->vcpu_len, s->index, h->total_pages, s->tags,
				 kf_snap_tags_len(h));
	if (meta != h->meta_hash)
		return kf_fail(EBADMSG, "snapshot metadata (regions, vCPU state, page index or allocation tags) is corrupted (checksum mismatch)");

	for (i = 0, end = 0; i < h->nr_regions; i++) {
		const struct kf_snap_region *r = &s->regions[i];

		if (!r->size || !KF_IS_ALIGNED(r->gpa, KF_PAGE_SIZE) ||
		    !KF_IS_ALIGNED(r->size, KF_PAGE_SIZE) || r->gpa < end ||
		    r->gpa + r->size < r->gpa || r->first_page != pages ||
		    r->size / KF_PAGE_SIZE > h->total_pages - pages)
			return kf_fail(EINVAL, "snapshot: region %u is inconsistent", i);
		pages += r->size / KF_PAGE_SIZE;
		end = r->gpa + r->size;
	}
	if (pages != h->total_pages)
		return kf_fail(EINVAL, "snapshot: regions hold %llu pages, header says %llu",
			       (unsigned long long)pages,
			       (unsigned long long)h->total_pages);
	for (i = 0; i < h->total_pages; i++)
		if (s->index[i].kind > KF_SNAP_PAGE_ZERO || s->index[i].reserved)
			return kf_fail(EINVAL, "snapshot: page %u has an unknown kind", i);
	for (i = 0, off = 0; i < h->nr_vcpus; i++) {
		struct kf_snap_vcpu v;
		unsigned int id;

		if (h->vcpu_len - off < sizeof(v))
			return kf_fail(EINVAL, "snapshot: vCPU section truncated");
		memcpy(&v, s->vcpus + off, sizeof(v));
		off += sizeof(v);
		if (v.id >= h->nr_vcpus || s->vcpu_blob[v.id] ||
		    KF_ALIGN_UP((uint64_t)v.len, 8) > h->vcpu_len - off)
			return kf_fail(EINVAL, "snapshot: vCPU entry %u is inconsistent", i);
		ret = kf_vcpu_state_check(s->vcpus + off, v.len, &id);
		if (ret)
			return ret;
		if (id != v.id)
			return kf_fail(EINVAL, "snapshot: vCPU entry %u holds the state of vCPU %u",
				       v.id, id);
		s->vcpu_blob[v.id] = s->vcpus + off;
		s->vcpu_len[v.id] = v.len;
		off += KF_ALIGN_UP((uint64_t)v.len, 8);
	}
	if (off != h->vcpu_len)
		return kf_fail(EINVAL, "snapshot: vCPU section has trailing bytes");
	return 0;
}

static int kf_snap_open_common(struct kf_snapshot *s, struct kf_snapshot **snapp)
{
	int ret = kf_snap_check(s);

	if (!ret)
		ret = kf_snap_ws_new(&s->ws);

	if (ret) {
		kf_snapshot_close(s);
		return ret;
	}
	*snapp = s;
	return 0;
}

int kf_snapshot_open(const char *path, struct kf_snapshot **snapp)
{
	struct kf_snapshot *s;
	struct stat st;

	*snapp = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return kf_fail(ENOMEM, "out of memory");
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		int err = errno;

		free(s);
		return kf_fail_errno(err, "open snapshot %s", path);
	}
	if (fstat(s->fd, &st)) {
		int err = errno;

		kf_snapshot_close(s);
		return kf_fail_errno(err, "stat %s", path);
	}
	s->size = st.st_size;
	return kf_snap_open_common(s, snapp);
}

int kf_snapshot_open_mem(const void *buf, size_t len, struct kf_snapshot **snapp)
{
	struct kf_snapshot *s;

	*snapp = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return kf_fail(ENOMEM, "out of memory");
	s->fd = -1;
	s->mem = buf;
	s->mem_len = len;
	s->size = len;
	return kf_snap_open_common(s, snapp);
}

void kf_snapshot_close(struct kf_snapshot *snap)
{
	if (!snap)
		return;
	if (snap->fd >= 0)
		close(snap->fd);
	free(snap->regions);
	free(snap->vcpus);
	free(snap->index);
	free(snap->tags);
	kf_snap_ws_free(snap->ws);
	free(snap);
}

struct kf_snap_ws *kf_snapshot_ws(struct kf_snapshot *snap)
{
	return snap->ws;
}

const struct kf_snap_header *kf_snapshot_header(const struct kf_snapshot *snap)
{
	return &snap->hdr;
}

const struct kf_snap_region *kf_snapshot_region(const struct kf_snapshot *snap,
						unsigned int i)
{
	return i < snap->hdr.nr_regions ? &snap->regions[i] : NULL;
}

int kf_snapshot_vcpu_state(const struct kf_snapshot *snap, unsigned int id,
			   const void **blobp, size_t *lenp)
{
	if (id >= snap->hdr.nr_vcpus || !snap->vcpu_blob[id])
		return kf_fail(ENOENT, "snapshot holds no vCPU %u", id);
	*blobp = snap->vcpu_blob[id];
	*lenp = snap->vcpu_len[id];
	return 0;
}

int64_t kf_snap_page_index(const struct kf_snapshot *snap, uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < snap->hdr.nr_regions; i++) {
		const struct kf_snap_region *r = &snap->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return (int64_t)(r->first_page + (gpa - r->gpa) / KF_PAGE_SIZE);
	}
	return -1;
}

int kf_snapshot_read_page(struct kf_snapshot *snap, uint64_t gpa, void *buf)
{
	const struct kf_snap_page *pg;
	int64_t idx = kf_snap_page_index(snap, gpa);
	int ret;

	if (idx < 0 || !KF_IS_ALIGNED(gpa, KF_PAGE_SIZE))
		return kf_fail(ERANGE, "snapshot holds no page at 0x%llx",
			       (unsigned long long)gpa);
	pg = &snap->index[idx];
	if (pg->kind == KF_SNAP_PAGE_ZERO) {
		memset(buf, 0, KF_PAGE_SIZE);
	} else {
		ret = kf_snap_read(snap, buf, KF_PAGE_SIZE,
				   snap->hdr.data_off + idx * KF_PAGE_SIZE,
				   "a guest page");
		if (ret)
			return ret;
	}
	if (kf_mig_page_hash(gpa, buf) != pg->hash) {
		memset(buf, 0, KF_PAGE_SIZE);
		return kf_fail(EBADMSG, "snapshot page at gpa 0x%llx (file offset %llu) is corrupted: checksum mismatch",
			       (unsigned long long)gpa,
			       (unsigned long long)(snap->hdr.data_off +
						    idx * KF_PAGE_SIZE));
	}
	return 0;
}

int kf_snapshot_read_tags(struct kf_snapshot *snap, uint64_t gpa, void *tags,
			  size_t len)
{
	uint64_t off;

	if (!(snap->hdr.flags & KF_SNAP_F_MTE_TAGS))
		return kf_fail(ENODATA, "snapshot holds no allocation tags (the VM had no MTE)");
	if (!KF_IS_ALIGNED(gpa, KF_PAGE_SIZE) || !KF_IS_ALIGNED(len, KF_PAGE_SIZE))
		return kf_fail(EINVAL, "snapshot tags: [0x%llx, +0x%zx) is not whole pages",
			       (unsigned long long)gpa, len);
	for (off = 0; off < len; off += KF_PAGE_SIZE) {
		int64_t idx = kf_snap_page_index(snap, gpa + off);

		if (idx < 0)
			return kf_fail(ERANGE, "snapshot holds no page at 0x%llx",
				       (unsigned long long)(gpa + off));
		kf_mte_unpack_tags((uint8_t *)tags + off / KF_MTE_GRANULE,
				    snap->tags + idx * KF_SNAP_TAG_BYTES,
				    KF_MTE_TAGS_PER_PAGE);
	}
	return 0;
}

int kf_snapshot_load_region(struct kf_snapshot *snap, unsigned int i, void *hva)
{
	const struct kf_snap_region *r = kf_snapshot_region(snap, i);
	uint64_t off;
	int ret;

	if (!r)
		return kf_fail(ENOENT, "snapshot has no region %u", i);
	for (off = 0; off < r->size; off += KF_PAGE_SIZE) {
		ret = kf_snapshot_read_page(snap, r->gpa + off, (char *)hva + off);
		if (ret)
			return ret;
	}
	return 0;
}

/* ------------------------------------------------------------ page source */

static int kf_snapsrc_read(struct kf_pagesrc *src, uint64_t gpa, void *buf,
			   size_t len)
{
	size_t off;
	int ret = kf_pagesrc_check_range(src, gpa, len);

	if (ret)
		return ret;
	if (!KF_IS_ALIGNED(gpa, KF_PAGE_SIZE) || !KF_IS_ALIGNED(len, KF_PAGE_SIZE))
		return kf_fail(EINVAL, "snapshot source: unaligned read");
	for (off = 0; off < len; off += KF_PAGE_SIZE) {
		ret = kf_snapshot_read_page(src->priv, gpa + off, (char *)buf + off);
		if (ret)
			return ret;
	}
	return 0;
}

/* A fault's read: the working set's record sees it. */
static int kf_snapsrc_demand_read(struct kf_pagesrc *src, uint64_t gpa,
				  void *buf, size_t len)
{
	int ret = kf_snapsrc_read(src, gpa, buf, len);

	if (!ret)
		kf_snap_ws_note(src->priv, gpa, len);
	return ret;
}

static int kf_snapsrc_read_tagged(struct kf_pagesrc *src, uint64_t gpa,
				  void *buf, void *tags, size_t len)
{
	int ret = kf_snapsrc_read(src, gpa, buf, len);

	if (!ret)
		ret = kf_snapshot_read_tags(src->priv, gpa, tags, len);
	if (!ret)
		kf_snap_ws_note(src->priv, gpa, len);
	return ret;
}

static void kf_snapsrc_destroy(struct kf_pagesrc *src)
{
	free(src);
}

static const struct kf_pagesrc_ops kf_snapsrc_ops = {
	.read = kf_snapsrc_demand_read,
	.read_tagged = kf_snapsrc_read_tagged,
	.destroy = kf_snapsrc_destroy,
};

/* The prefetching source: a struct kf_pagesrc first, so src->priv works. */
struct kf_snap_prefetch {
	struct kf_pagesrc src;
	struct kf_snapshot *snap;
	uint64_t *order;	/* the working set's pages of this region */
	uint64_t order_len;
	kf_pagesrc_sink_fn sink;
	void *opaque;
	pthread_t thread;
	bool started;
	volatile int stop;
};

#define KF_SNAP_PREFETCH_RUN 64	/* pages, or one unit when units are larger */

/* What the prefetch works in: the engine's push unit (whole host pages). */
static uint64_t kf_snap_unit(const struct kf_snap_prefetch *pf)
{
	return KF_MAX(pf->src.push_unit, KF_PAGE_SIZE);
}

static uint64_t kf_snap_run_units(const struct kf_snap_prefetch *pf)
{
	return KF_MAX(KF_SNAP_PREFETCH_RUN * KF_PAGE_SIZE / kf_snap_unit(pf), 1ULL);
}

/* Read and install units [u, u + n) of the region (inside it); mark them
 * done.  buf: a run's data, and its tags after them. */
static int kf_snap_prefetch_run(struct kf_snap_prefetch *pf, char *buf,
				uint8_t *done, uint64_t u, uint64_t n)
{
	uint64_t unit = kf_snap_unit(pf), len = n * unit;
	uint64_t gpa = pf->src.base + u * unit;
	char *tags = NULL;
	int ret = kf_snapsrc_read(&pf->src, gpa, buf, len);

	if (!ret && pf->src.flags & KF_PAGESRC_TAGS) {
		tags = buf + kf_snap_run_units(pf) * unit;
		ret = kf_snapshot_read_tags(pf->snap, gpa, tags, len);
	}
	if (!ret)
		ret = pf->sink(pf->opaque, gpa, buf, tags, len);
	if (!ret)
		memset(done + u, 1, n);
	return ret;
}

static bool kf_snap_prefetch_stopped(struct kf_snap_prefetch *pf)
{
	return __atomic_load_n(&pf->stop, __ATOMIC_ACQUIRE);
}

/* The working set's units of this region first, in its order, runs of
 * consecutive units together. */
static int kf_snap_prefetch_ws(struct kf_snap_prefetch *pf, char *buf,
			       uint8_t *done)
{
	uint64_t per = kf_snap_unit(pf) / KF_PAGE_SIZE, max = kf_snap_run_units(pf);
	uint64_t i = 0, nunits = pf->src.size / kf_snap_unit(pf);
	const uint64_t *order = pf->order;
	int ret = 0;

	/* Every entry is a page of this region (kf_snap_prefetch_order()). */
	while (!ret && i < pf->order_len && !kf_snap_prefetch_stopped(pf)) {
		uint64_t u = order[i] / per, n = 1;

		if (done[u]) {
			i++;
			continue;
		}
		/* The entries of the unit's pages and of the next units. */
		while (i + 1 < pf->order_len && order[i + 1] / per == u + n - 1)
			i++;
		while (i + 1 < pf->order_len && n < max && u + n < nunits &&
		       order[i + 1] / per == u + n && !done[u + n]) {
			n++;
			while (i + 1 < pf->order_len && order[i + 1] / per == u + n - 1)
				i++;
		}
		ret = kf_snap_prefetch_run(pf, buf, done, u, n);
		i++;
	}
	return ret;
}

static void *kf_snap_prefetch_thread(void *arg)
{
	struct kf_snap_prefetch *pf = arg;
	uint64_t unit = kf_snap_unit(pf), max = kf_snap_run_units(pf);
	uint64_t u = 0, nunits = pf->src.size / unit;
	char *buf = aligned_alloc(KF_PAGE_SIZE, max * unit * (KF_MTE_GRANULE + 1) /
				  KF_MTE_GRANULE);
	uint8_t *done = calloc(nunits, 1);
	int ret = buf && done ? 0 : -ENOMEM;

	/* A failed read or install ends the prefetch, which is only a hint:
	 * faults read (and report) every page themselves. */
	if (!ret)
		ret = kf_snap_prefetch_ws(pf, buf, done);
	while (!ret && u < nunits && !kf_snap_prefetch_stopped(pf)) {
		uint64_t n = 0;

		while (u < nunits && done[u])
			u++;
		while (u + n < nunits && n < max && !done[u + n])
			n++;
		if (n)
			ret = kf_snap_prefetch_run(pf, buf, done, u, n);
		u += n;
	}
	free(done);
	free(buf);
	return NULL;
}

static int kf_snap_prefetch_start(struct kf_pagesrc *src, kf_pagesrc_sink_fn sink,
				  void *opaque)
{
	struct kf_snap_prefetch *pf = (struct kf_snap_prefetch *)src;
	int ret;

	if (pf->started)
		return kf_fail(EBUSY, "snapshot prefetch: started already");
	pf->sink = sink;
	pf->opaque = opaque;
	pf->stop = 0;
	ret = pthread_create(&pf->thread, NULL, kf_snap_prefetch_thread, pf);
	if (ret)
		return kf_fail(ret, "snapshot prefetch: no thread");
	pf->started = true;
	return 0;
}

static void kf_snap_prefetch_stop(struct kf_pagesrc *src)
{
	struct kf_snap_prefetch *pf = (struct kf_snap_prefetch *)src;

	if (!pf->started)
		return;
	__atomic_store_n(&pf->stop, 1, __ATOMIC_RELEASE);
	pthread_join(pf->thread, NULL);
	pf->started = false;
}

static void kf_snap_prefetch_destroy(struct kf_pagesrc *src)
{
	kf_snap_prefetch_stop(src);
	free(((struct kf_snap_prefetch *)src)->order);
	free(src);
}

static const struct kf_pagesrc_ops kf_snap_prefetch_ops = {
	.read = kf_snapsrc_demand_read,
	.read_tagged = kf_snapsrc_read_tagged,
	.start_push = kf_snap_prefetch_start,
	.stop_push = kf_snap_prefetch_stop,
	.destroy = kf_snap_prefetch_destroy,
};

static int kf_snapsrc_new(struct kf_snapshot *snap, unsigned int i, bool prefetch,
			  struct kf_pagesrc **srcp)
{
	const struct kf_snap_region *r = kf_snapshot_region(snap, i);
	struct kf_snap_prefetch *pf;

	*srcp = NULL;
	if (!r)
		return kf_fail(ENOENT, "snapshot has no region %u", i);
	pf = calloc(1, sizeof(*pf));
	if (!pf)
		return kf_fail(ENOMEM, "out of memory");
	pf->snap = snap;
	if (prefetch && kf_snap_ws_region_order(snap->ws, r->gpa, r->size, &pf->order,
						&pf->order_len)) {
		free(pf);
		return kf_fail(ENOMEM, "out of memory for the working set of region %u", i);
	}
	pf->src.ops = prefetch ? &kf_snap_prefetch_ops : &kf_snapsrc_ops;
	pf->src.kind = "snapshot";
	pf->src.base = r->gpa;
	pf->src.size = r->size;
	pf->src.priv = snap;
	if (snap->hdr.flags & KF_SNAP_F_MTE_TAGS)
		pf->src.flags |= KF_PAGESRC_TAGS;
	*srcp = &pf->src;
	return 0;
}

int kf_snapshot_pagesrc(struct kf_snapshot *snap, unsigned int i,
			struct kf_pagesrc **srcp)
{
	return kf_snapsrc_new(snap, i, false, srcp);
}

int kf_snapshot_pagesrc_prefetch(struct kf_snapshot *snap, unsigned int i,
				 struct kf_pagesrc **srcp)
{
	return kf_snapsrc_new(snap, i, true, srcp);
}
