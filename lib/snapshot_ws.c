// SPDX-License-Identifier: MIT
/*
 * A snapshot's working set: the order in which a lazily restored guest
 * first touched its pages, recorded at one restore and saved beside the
 * snapshot, so that later restores prefetch those pages first, in that
 * order (as the REAP and FaaSnap papers do for serverless snapshots).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/hash.h>
#include <kvmfault/snapshot.h>

#include "internal.h"

struct kf_snap_ws {
	pthread_mutex_t lock;
	bool recording;
	uint8_t *seen;		/* per snapshot page: recorded already */
	uint64_t *recorded;	/* guest addresses, first touch order */
	uint64_t nr_recorded, cap;
	uint64_t *loaded;	/* the order later prefetches follow */
	uint64_t nr_loaded;
};

void kf_snap_ws_free(struct kf_snap_ws *ws)
{
	if (!ws)
		return;
	pthread_mutex_destroy(&ws->lock);
	free(ws->seen);
	free(ws->recorded);
	free(ws->loaded);
	free(ws);
}

int kf_snap_ws_new(struct kf_snap_ws **wsp)
{
	*wsp = calloc(1, sizeof(**wsp));
	if (!*wsp)
		return kf_fail(ENOMEM, "out of memory");
	pthread_mutex_init(&(*wsp)->lock, NULL);
	return 0;
}

int kf_snapshot_ws_record(struct kf_snapshot *snap)
{
	const struct kf_snap_header *h = kf_snapshot_header(snap);
	struct kf_snap_ws *ws = kf_snapshot_ws(snap);
	bool ok;

	pthread_mutex_lock(&ws->lock);
	if (!ws->seen)
		ws->seen = calloc(h->total_pages ? h->total_pages : 1, 1);
	ok = ws->seen != NULL;
	__atomic_store_n(&ws->recording, ok, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ws->lock);
	return ok ? 0 : kf_fail(ENOMEM, "out of memory for the working set of %llu pages",
				(unsigned long long)h->total_pages);
}

void kf_snap_ws_note(struct kf_snapshot *snap, uint64_t gpa, size_t len)
{
	struct kf_snap_ws *ws = kf_snapshot_ws(snap);
	uint64_t end = gpa + len;

	if (!__atomic_load_n(&ws->recording, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&ws->lock);
	for (gpa &= ~(uint64_t)(KF_PAGE_SIZE - 1); gpa < end; gpa += KF_PAGE_SIZE) {
		int64_t idx = kf_snap_page_index(snap, gpa);

		if (idx < 0 || ws->seen[idx])
			continue;
		if (ws->nr_recorded == ws->cap) {
			uint64_t cap = ws->cap ? ws->cap * 2 : 1024;
			uint64_t *p = realloc(ws->recorded, cap * sizeof(*p));

			if (!p)
				break;	/* a shorter working set, still valid */
			ws->recorded = p;
			ws->cap = cap;
		}
		ws->seen[idx] = 1;
		ws->recorded[ws->nr_recorded++] = gpa;
	}
	pthread_mutex_unlock(&ws->lock);
}

void kf_snapshot_ws_count(struct kf_snapshot *snap, uint64_t *recorded,
			  uint64_t *loaded)
{
	struct kf_snap_ws *ws = kf_snapshot_ws(snap);

	pthread_mutex_lock(&ws->lock);
	*recorded = ws->nr_recorded;
	*loaded = ws->nr_loaded;
	pthread_mutex_unlock(&ws->lock);
}

static uint64_t kf_snap_ws_hash(const struct kf_snap_ws_header *wh,
				const uint64_t *gpas)
{
	struct kf_snap_ws_header c = *wh;

	c.hash = 0;
	return kf_host_hash(gpas, wh->nr_pages * sizeof(*gpas),
			    kf_host_hash(&c, sizeof(c), 0));
}

int kf_snapshot_ws_save(struct kf_snapshot *snap, const char *path)
{
	struct kf_snap_ws_header wh = {
		.magic = KF_SNAP_WS_MAGIC,
		.version = KF_SNAP_WS_VERSION,
		.snapshot_hash = kf_snapshot_header(snap)->header_hash,
	};
	struct kf_snap_ws *ws = kf_snapshot_ws(snap);
	uint64_t *gpas = NULL;
	char *tmp;
	int fd, ret;

	pthread_mutex_lock(&ws->lock);
	if (!ws->seen) {
		pthread_mutex_unlock(&ws->lock);
		return kf_fail(EINVAL, "working set: nothing was recorded (kf_snapshot_ws_record() before the restore)");
	}
	wh.nr_pages = ws->nr_recorded;
	if (wh.nr_pages) {
		gpas = malloc(wh.nr_pages * sizeof(*gpas));
		if (gpas)
			memcpy(gpas, ws->recorded, wh.nr_pages * sizeof(*gpas));
	}
	pthread_mutex_unlock(&ws->lock);
	if (wh.nr_pages && !gpas)
		return kf_fail(ENOMEM, "out of memory");
	wh.hash = kf_snap_ws_hash(&wh, gpas);
	fd = kf_snap_create_tmp(path, &tmp);
	if (fd < 0) {
		free(gpas);
		return fd;
	}
	ret = kf_pwrite_full(fd, &wh, sizeof(wh), 0, tmp);
	if (!ret && wh.nr_pages)
		ret = kf_pwrite_full(fd, gpas, wh.nr_pages * sizeof(*gpas), sizeof(wh), tmp);
	if (ret)
		close(fd);
	else
		ret = kf_snap_commit(fd, tmp, path);
	if (ret)
		unlink(tmp);
	free(tmp);
	free(gpas);
	return ret;
}

static int kf_snap_ws_read(int fd, const char *path, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kf_fail_errno(errno, "read %s", path);
		if (!n)
			return kf_fail(EBADMSG, "working set %s is truncated", path);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Every address page aligned and in the snapshot's guest memory. */
static int kf_snap_ws_check(struct kf_snapshot *snap, const char *path,
			    const uint64_t *gpas, uint64_t n)
{
	uint64_t i;

	for (i = 0; i < n; i++)
		if (gpas[i] % KF_PAGE_SIZE || kf_snap_page_index(snap, gpas[i]) < 0)
			return kf_fail(EBADMSG, "working set %s: entry %llu (0x%llx) is no page of the snapshot",
				       path, (unsigned long long)i,
				       (unsigned long long)gpas[i]);
	return 0;
}

int kf_snapshot_ws_load(struct kf_snapshot *snap, const char *path)
{
	const struct kf_snap_header *h = kf_snapshot_header(snap);
	struct kf_snap_ws *ws = kf_snapshot_ws(snap);
	struct kf_snap_ws_header wh;
	uint64_t *gpas = NULL;
	struct stat st;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kf_fail_errno(errno, "open %s", path);
	if (fstat(fd, &st))
		ret = kf_fail_errno(errno, "stat %s", path);
	else
		ret = kf_snap_ws_read(fd, path, &wh, sizeof(wh));
	if (!ret && memcmp(wh.magic, KF_SNAP_WS_MAGIC, sizeof(wh.magic)))
		ret = kf_fail(EBADMSG, "%s is no working set file", path);
	else if (!ret && wh.version != KF_SNAP_WS_VERSION)
		ret = kf_fail(EBADMSG, "working set %s has version %u, this program reads %u",
			      path, wh.version, KF_SNAP_WS_VERSION);
	else if (!ret && wh.snapshot_hash != h->header_hash)
		ret = kf_fail(EINVAL, "working set %s was recorded for another snapshot",
			      path);
	else if (!ret && (wh.nr_pages > h->total_pages ||
			  (uint64_t)st.st_size != sizeof(wh) + wh.nr_pages * sizeof(*gpas)))
		ret = kf_fail(EBADMSG, "working set %s: %llu pages do not fit its size or the snapshot",
			      path, (unsigned long long)wh.nr_pages);
	if (!ret && wh.nr_pages) {
		gpas = malloc(wh.nr_pages * sizeof(*gpas));
		ret = gpas ? kf_snap_ws_read(fd, path, gpas, wh.nr_pages * sizeof(*gpas)) :
			     kf_fail(ENOMEM, "out of memory");
	}
	close(fd);
	if (!ret && kf_snap_ws_hash(&wh, gpas) != wh.hash)
		ret = kf_fail(EBADMSG, "working set %s: checksum mismatch", path);
	if (!ret)
		ret = kf_snap_ws_check(snap, path, gpas, wh.nr_pages);
	if (ret) {
		free(gpas);
		return ret;
	}
	pthread_mutex_lock(&ws->lock);
	free(ws->loaded);
	ws->loaded = gpas;
	ws->nr_loaded = wh.nr_pages;
	pthread_mutex_unlock(&ws->lock);
	return 0;
}

int kf_snap_ws_region_order(struct kf_snap_ws *ws, uint64_t base, uint64_t size,
			    uint64_t **order, uint64_t *len)
{
	uint64_t i, n = 0, *out = NULL;
	int ret = 0;

	pthread_mutex_lock(&ws->lock);
	for (i = 0; i < ws->nr_loaded; i++)
		n += ws->loaded[i] >= base && ws->loaded[i] - base < size;
	if (n) {
		out = malloc(n * sizeof(*out));
		ret = out ? 0 : -ENOMEM;
	}
	for (i = 0, n = 0; out && i < ws->nr_loaded; i++)
		if (ws->loaded[i] >= base && ws->loaded[i] - base < size)
			out[n++] = (ws->loaded[i] - base) / KF_PAGE_SIZE;
	pthread_mutex_unlock(&ws->lock);
	*order = out;
	*len = n;
	return ret;
}
