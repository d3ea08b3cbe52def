/* SPDX-License-Identifier: MIT */
/*
 * The raw userfaultfd baseline loop that kvmfault bench compares the fault
 * engine against (lib/harness/, not installed).
 */
#ifndef KVMFAULT_UFFD_RAW_H
#define KVMFAULT_UFFD_RAW_H

#include <stdbool.h>
#include <stdint.h>

#include <kvmfault/uffd.h>

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

#endif
