// SPDX-License-Identifier: MIT
/* The basic page sources: zero, memory, raw file. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/limits.h>

#include "internal.h"

int kf_pagesrc_check_range(const struct kf_pagesrc *src, uint64_t gpa,
			   uint64_t len)
{
	if (gpa < src->base || len > src->size || gpa - src->base > src->size - len)
		return kf_fail(ERANGE, "%s source: [0x%llx, +0x%llx) lies outside the source [0x%llx, +0x%llx)",
			       src->kind, (unsigned long long)gpa,
			       (unsigned long long)len,
			       (unsigned long long)src->base,
			       (unsigned long long)src->size);
	return 0;
}

static struct kf_pagesrc *kf_pagesrc_alloc(const struct kf_pagesrc_ops *ops,
					   const char *kind, uint64_t base,
					   uint64_t size)
{
	struct kf_pagesrc *src = calloc(1, sizeof(*src));

	if (!src) {
		kf_fail(ENOMEM, "out of memory for a %s page source", kind);
		return NULL;
	}
	src->ops = ops;
	src->kind = kind;
	src->base = base;
	src->size = size;
	return src;
}

static int kf_check_geometry(const char *kind, uint64_t base, uint64_t size)
{
	if (!size || base % KF_PAGE_SIZE || size % KF_PAGE_SIZE)
		return kf_fail(EINVAL, "%s source [0x%llx, +0x%llx): base and size must be non-zero page multiples",
			       kind, (unsigned long long)base,
			       (unsigned long long)size);
	return 0;
}

/* --- zero --- */

static int kf_zero_read(struct kf_pagesrc *src, uint64_t gpa, void *buf,
			size_t len)
{
	int ret = kf_pagesrc_check_range(src, gpa, len);

	if (ret)
		return ret;
	memset(buf, 0, len);
	return 0;
}

static void kf_plain_destroy(struct kf_pagesrc *src)
{
	free(src);
}

static const struct kf_pagesrc_ops kf_zero_ops = {
	.read = kf_zero_read,
	.destroy = kf_plain_destroy,
};

int kf_pagesrc_zero_create(uint64_t base, uint64_t size,
			   struct kf_pagesrc **srcp)
{
	struct kf_pagesrc *src;
	int ret;

	*srcp = NULL;
	ret = kf_check_geometry("zero", base, size);
	if (ret)
		return ret;
	src = kf_pagesrc_alloc(&kf_zero_ops, "zero", base, size);
	if (!src)
		return -ENOMEM;
	src->flags = KF_PAGESRC_ZERO;
	*srcp = src;
	return 0;
}

/* --- memory --- */

static int kf_memory_read(struct kf_pagesrc *src, uint64_t gpa, void *buf,
			  size_t len)
{
	int ret = kf_pagesrc_check_range(src, gpa, len);

	if (ret)
		return ret;
	memcpy(buf, (const char *)src->priv + (gpa - src->base), len);
	return 0;
}

static const struct kf_pagesrc_ops kf_memory_ops = {
	.read = kf_memory_read,
	.destroy = kf_plain_destroy,
};

int kf_pagesrc_memory_create(uint64_t base, const void *data, uint64_t size,
			     struct kf_pagesrc **srcp)
{
	struct kf_pagesrc *src;
	int ret;

	*srcp = NULL;
	if (!data)
		return kf_fail(EINVAL, "memory source: no data");
	ret = kf_check_geometry("memory", base, size);
	if (ret)
		return ret;
	src = kf_pagesrc_alloc(&kf_memory_ops, "memory", base, size);
	if (!src)
		return -ENOMEM;
	src->priv = (void *)data;
	*srcp = src;
	return 0;
}

/* --- raw file --- */

struct kf_rawfile {
	int fd;
	char path[256];
};

static int kf_rawfile_read(struct kf_pagesrc *src, uint64_t gpa, void *buf,
			   size_t len)
{
	struct kf_rawfile *rf = src->priv;
	uint64_t off = gpa - src->base;
	size_t done = 0;
	int ret = kf_pagesrc_check_range(src, gpa, len);

	if (ret)
		return ret;
	while (done < len) {
		ssize_t n = pread(rf->fd, (char *)buf + done, len - done,
				  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kf_fail_errno(errno, "file source %s: read at offset 0x%llx",
					     rf->path,
					     (unsigned long long)(off + done));
		if (n == 0)
			return kf_fail(EIO, "file source %s: short read at offset 0x%llx (%zu of %zu bytes): the file ends early",
				       rf->path, (unsigned long long)(off + done),
				       done, len);
		done += n;
	}
	return 0;
}

static void kf_rawfile_destroy(struct kf_pagesrc *src)
{
	struct kf_rawfile *rf = src->priv;

	close(rf->fd);
	free(rf);
	free(src);
}

static const struct kf_pagesrc_ops kf_rawfile_ops = {
	.read = kf_rawfile_read,
	.destroy = kf_rawfile_destroy,
};

int kf_pagesrc_rawfile_open(const char *path, uint64_t base,
			    struct kf_pagesrc **srcp)
{
	struct kf_rawfile *rf;
	struct kf_pagesrc *src;
	struct stat st;
	int fd, ret;

	*srcp = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kf_fail_errno(errno, "file source: open %s", path);
	if (fstat(fd, &st)) {
		ret = kf_fail_errno(errno, "file source: stat %s", path);
		goto fail;
	}
	ret = kf_check_geometry("file", base, (uint64_t)st.st_size);
	if (ret)
		goto fail;
	rf = calloc(1, sizeof(*rf));
	src = rf ? kf_pagesrc_alloc(&kf_rawfile_ops, "file", base, st.st_size) : NULL;
	if (!src) {
		free(rf);
		ret = -ENOMEM;
		goto fail;
	}
	rf->fd = fd;
	snprintf(rf->path, sizeof(rf->path), "%s", path);
	src->priv = rf;
	*srcp = src;
	return 0;
fail:
	close(fd);
	return ret;
}

uint8_t kf_zero_pages[KF_ZERO_PAGES * 4096] __attribute__((aligned(4096)));

bool kf_page_is_zero(const void *page)
{
	const uint64_t *p = page;
	size_t i;

	for (i = 0; i < KF_PAGE_SIZE / 8; i++)
		if (p[i])
			return false;
	return true;
}
