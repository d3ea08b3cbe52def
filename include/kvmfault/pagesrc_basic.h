/* SPDX-License-Identifier: MIT */
/*
 * The basic page sources: zero pages, an image in memory, a raw image file.
 * Each covers [base, base + size) of guest physical memory; reading outside
 * it fails with ERANGE.  Free a source with kf_pagesrc_destroy().
 */
#ifndef KVMFAULT_PAGESRC_BASIC_H
#define KVMFAULT_PAGESRC_BASIC_H

#include <stdint.h>

#include <kvmfault/pagesrc.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

/* Every page is zeros. */
int kf_pagesrc_zero_create(uint64_t base, uint64_t size,
			   struct kf_pagesrc **srcp);

/* The bytes at data (size bytes, borrowed: keep them until destroy). */
int kf_pagesrc_memory_create(uint64_t base, const void *data, uint64_t size,
			     struct kf_pagesrc **srcp);

/*
 * A raw image file: byte 0 of the file is guest physical address base.
 * The file's size must be a multiple of the page size.  Reads use pread();
 * a read past the end of the file (it shrank) is a short read, EIO.
 */
int kf_pagesrc_rawfile_open(const char *path, uint64_t base,
			    struct kf_pagesrc **srcp);

/* Whether [gpa, gpa + len) lies inside the source; a message if not. */
int kf_pagesrc_check_range(const struct kf_pagesrc *src, uint64_t gpa,
			   uint64_t len);

KF_API_END

#endif
