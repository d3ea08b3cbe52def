/* SPDX-License-Identifier: MIT */
/*
 * Thin userfaultfd helpers, and the raw baseline loop the benchmark compares
 * the fault engine against.
 */
#ifndef KVMFAULT_UFFD_H
#define KVMFAULT_UFFD_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/userfaultfd.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

/* Newer than the 6.1 headers Debian 12 ships. */
#ifndef UFFD_FEATURE_EXACT_ADDRESS
#define UFFD_FEATURE_EXACT_ADDRESS (1 << 11)
#endif

/*
 * Open a userfaultfd (non-blocking, close-on-exec) and negotiate features:
 * every bit of need must be offered (else EOPNOTSUPP naming what is missing).
 * *have (may be NULL) gets what the kernel offers.  Returns the fd or -errno.
 */
int kf_uffd_open(uint64_t need, uint64_t *have);

/* What the kernel offers (probed once on a throw-away fd; 0 if none). */
uint64_t kf_uffd_features(void);

/* Register [addr, addr + len) with mode UFFDIO_REGISTER_MODE_*. */
int kf_uffd_register(int uffd, void *addr, uint64_t len, uint64_t mode);
int kf_uffd_unregister(int uffd, void *addr, uint64_t len);

/*
 * Install a page, retrying EAGAIN.  Returns 0, -EEXIST when something is
 * mapped there already, or another -errno with a message.
 */
int kf_uffd_copy(int uffd, void *dst, const void *src, uint64_t len);
int kf_uffd_zeropage(int uffd, void *dst, uint64_t len);
int kf_uffd_continue(int uffd, void *dst, uint64_t len);
int kf_uffd_wake(int uffd, void *dst, uint64_t len);

/*
 * The raw baseline: the minimal userfaultfd loop of the KVM selftests'
 * demand_paging_test, with nothing around it.  nr_uffds parts of
 * [hva, hva + size), one uffd and `handlers` threads each; every fault is
 * resolved from image (size bytes) with UFFDIO_COPY (missing), or with a
 * copy into the page cache through a second mapping of memfd and
 * UFFDIO_CONTINUE (minor; the memfd range must hold no pages yet).
 */
struct kf_uffd_raw_config {
	void *hva;
	uint64_t size;
	const void *image;
	bool minor;
	int memfd;		/* minor only */
	unsigned int nr_uffds;	/* 0 or 1: one shared uffd */
	unsigned int handlers;	/* threads per uffd, 0 means 1 */
	bool pin;		/* uffd i's threads on CPU i mod nproc */
};

struct kf_uffd_raw;

int kf_uffd_raw_start(const struct kf_uffd_raw_config *cfg,
		      struct kf_uffd_raw **rawp);
/* Faults resolved so far. */
uint64_t kf_uffd_raw_faults(struct kf_uffd_raw *raw);
/* Stop the threads, unregister and free; returns the first error or 0. */
int kf_uffd_raw_stop(struct kf_uffd_raw *raw);

KF_API_END

#endif
