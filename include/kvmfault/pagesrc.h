/* SPDX-License-Identifier: MIT */
/*
 * Page sources: where the contents of missing guest pages come from (zero
 * pages, an image in memory, a snapshot or raw file, a remote migration
 * source).  The fault engine asks a source for pages; a source that can
 * push pages unasked (a migration source sending the rest in the
 * background) hands them to the sink the engine registered.
 *
 * Addresses are guest physical.  A source covers [base, base + size).
 * Every operation may be called from several threads at once.  Errors are
 * a negative errno with a message from kf_fail(): a short read, a lost
 * connection, a bad checksum or a page outside the source must be reported,
 * never turned into a wrong page.
 */
#ifndef KVMFAULT_PAGESRC_H
#define KVMFAULT_PAGESRC_H

#include <stddef.h>
#include <stdint.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

struct kf_pagesrc;

/*
 * Called by a source for pages it pushes unasked; returns 0 or -errno.
 * tags: the pages' allocation tags (KF_PAGESRC_TAGS sources), else NULL.
 */
typedef int (*kf_pagesrc_sink_fn)(void *opaque, uint64_t gpa,
				  const void *data, const void *tags,
				  size_t len);

struct kf_pagesrc_ops {
	/* Read len bytes (whole pages) at gpa into buf, blocking. */
	int (*read)(struct kf_pagesrc *src, uint64_t gpa, void *buf, size_t len);
	/* Optional: ask for pages early, without waiting (a prefetch hint). */
	int (*prefetch)(struct kf_pagesrc *src, uint64_t gpa, size_t len);
	/* Optional: start pushing pages to sink in the background. */
	int (*start_push)(struct kf_pagesrc *src, kf_pagesrc_sink_fn sink,
			  void *opaque);
	/*
	 * With start_push: detach from the sink.  Returns once no call into
	 * the sink is in flight and none will follow; calling it again, or
	 * without start_push, does nothing.  kf_engine_destroy() calls it
	 * before it frees anything; destroy() must do it too.
	 */
	void (*stop_push)(struct kf_pagesrc *src);
	void (*destroy)(struct kf_pagesrc *src);
	/*
	 * KF_PAGESRC_TAGS sources: read() and the pages' allocation tags at
	 * once, len / KF_MTE_GRANULE bytes into tags.
	 */
	int (*read_tagged)(struct kf_pagesrc *src, uint64_t gpa, void *buf,
			   void *tags, size_t len);
};

struct kf_pagesrc {
	const struct kf_pagesrc_ops *ops;
	const char *kind;	/* "zero", "memory", "file", "remote", ... */
	uint64_t base;		/* first guest physical address covered */
	uint64_t size;		/* bytes covered */
	void *priv;
	uint32_t flags;		/* KF_PAGESRC_* */
	/*
	 * Set by the engine when it takes the source (the region's page
	 * size: the host's, or a huge page's): pushes come in whole units of
	 * it, aligned to it; the engine leaves a part of one to the faults.
	 */
	uint64_t push_unit;
};

/*
 * Every page reads as zeros: the engine may install zero pages without
 * reading (UFFDIO_ZEROPAGE).  A hint: read() must still work.
 */
#define KF_PAGESRC_ZERO (1u << 0)
/*
 * The pages carry arm64 MTE allocation tags, which the engine installs with
 * the data (read_tagged(), and every push passes them): one byte per
 * KF_MTE_GRANULE bytes of data, the tag in its low 4 bits, as
 * KVM_ARM_MTE_COPY_TAGS has them.  The engine serves such a source only on
 * a memfd region, whose page cache it tags before the guest can map a page;
 * it writes there through a PROT_MTE mapping with untagged pointers, so
 * the threads that install pages (vCPUs, handlers, pushers) must run with
 * tag check faults off (PR_MTE_TCF_NONE, Linux's default).
 */
#define KF_PAGESRC_TAGS (1u << 1)
#define KF_MTE_GRANULE 16

static inline int kf_pagesrc_read(struct kf_pagesrc *src, uint64_t gpa,
				  void *buf, size_t len)
{
	return src->ops->read(src, gpa, buf, len);
}

/* Stop a source's pushes before the sink's owner (the engine) goes. */
static inline void kf_pagesrc_stop_push(struct kf_pagesrc *src)
{
	if (src && src->ops->stop_push)
		src->ops->stop_push(src);
}

static inline void kf_pagesrc_destroy(struct kf_pagesrc *src)
{
	if (src)
		src->ops->destroy(src);
}

KF_API_END

#endif
