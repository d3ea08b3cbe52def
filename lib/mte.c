// SPDX-License-Identifier: MIT
/*
 * arm64 MTE allocation tags written from the host: the fault engine tags a
 * page in the page cache, through a PROT_MTE mapping, before the guest can
 * map it.
 */
#include <errno.h>
#include <stdint.h>

#include <kvmfault/error.h>
#include <kvmfault/pagesrc.h>

#include "internal.h"

#ifdef __aarch64__

/* STG x0, [x1]: the tag in bits 59:56 of x0 goes to x1's granule.  As an
 * encoded word: the toolchain's base architecture predates MTE. */
static inline void kf_stg(uintptr_t addr, uint64_t tag)
{
	register uint64_t x0 __asm__("x0") = tag << 56;
	register uint64_t x1 __asm__("x1") = addr;

	__asm__ volatile(".inst 0xd9200820" : : "r"(x0), "r"(x1) : "memory");
}

int kf_mte_store_tags(void *addr, const uint8_t *tags, size_t len)
{
	uintptr_t p = (uintptr_t)addr;
	size_t i;

	if (p % KF_MTE_GRANULE || len % KF_MTE_GRANULE)
		return kf_fail(EINVAL, "allocation tags: [%p, +%zu) is not granule aligned",
			       addr, len);
	for (i = 0; i < len / KF_MTE_GRANULE; i++)
		kf_stg(p + i * KF_MTE_GRANULE, tags[i] & 0xf);
	return 0;
}

#else

int kf_mte_store_tags(void *addr, const uint8_t *tags, size_t len)
{
	(void)addr;
	(void)tags;
	(void)len;
	return kf_fail(EOPNOTSUPP, "allocation tags are arm64 MTE: this host is not arm64");
}

#endif
