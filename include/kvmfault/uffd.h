/* SPDX-License-Identifier: MIT */
/*
 * Thin userfaultfd helpers.  (The raw baseline loop the benchmark compares
 * the fault engine against is the harness's: <kvmfault/uffd_raw.h>.)
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

KF_API_END

#endif
