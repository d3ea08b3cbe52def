/* SPDX-License-Identifier: MIT */
/*
 * kf_hash(): the page checksum that guests and hosts both compute: the
 * guest checks the bytes it sees against what the host installed.  64-bit
 * FNV-1a over words, with a xor-shift in each round so that high bits reach
 * the low ones.  Guest code calls no library, so it keeps this one.
 *
 * kf_host_hash(): the host's checksum (XXH3 from libxxhash, several times
 * faster): the page and metadata checksums of the migration stream and of
 * snapshot files (format version 2 on).  Host code only.
 */
#ifndef KVMFAULT_HASH_H
#define KVMFAULT_HASH_H

#include <stddef.h>
#include <stdint.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

#define KF_HASH_SEED 0xcbf29ce484222325ULL

KF_GUEST_INLINE uint64_t kf_hash_continue(uint64_t h, const void *buf,
					  size_t len)
{
	const volatile uint64_t *p = buf;
	size_t i;

	for (i = 0; i < len / 8; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return h;
}

/* len is a multiple of 8. */
KF_GUEST_INLINE uint64_t kf_hash(const void *buf, size_t len)
{
	return kf_hash_continue(KF_HASH_SEED, buf, len);
}

uint64_t kf_host_hash(const void *buf, size_t len, uint64_t seed);

KF_API_END

#endif
