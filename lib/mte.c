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

void kf_mte_pack_tags(uint8_t *packed, const uint8_t *tags, size_t nr)
{
	size_t i;

	for (i = 0; i < nr / 2; i++)
		packed[i] = (tags[2 * i] & 0xf) | (tags[2 * i + 1] & 0xf) << 4;
}

void kf_mte_unpack_tags(uint8_t *tags, const uint8_t *packed, size_t nr)
{
	size_t i;

	for (i = 0; i < nr / 2; i++) {
		tags[2 * i] = packed[i] & 0xf;
		tags[2 * i + 1] = packed[i] >> 4;
	}
}

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
