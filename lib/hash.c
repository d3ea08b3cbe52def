// SPDX-License-Identifier: MIT
#include <xxhash.h>

#include <kvmfault/hash.h>

uint64_t kf_host_hash(const void *buf, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(buf, len, seed);
}
