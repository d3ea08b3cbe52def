// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the migration stream parser: parse frames one
 * after another as a receiver would, check every page of a PAGES batch
 * against its checksum and validate vCPU state blobs.  Any crash,
 * sanitizer report or hang is a bug; errors are the expected outcome.
 */
#include <stddef.h>
#include <stdint.h>

#include <kvmfault/migration.h>
#include <kvmfault/vcpu_state.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t page[KF_PAGE_SIZE], tags[KF_PAGE_SIZE / 16];
	struct kf_mig_msg msg;
	size_t used;

	while (size) {
		if (kf_mig_parse_frame(data, size, &used, &msg))
			break;
		if (msg.hdr.type == KF_MIG_PAGES) {
			kf_mig_pages_verify(&msg);
			for (uint32_t i = 0; i < msg.u.pages.h.count; i++) {
				kf_mig_page_get(&msg, i, page);
				kf_mig_page_tags(&msg, i, tags);
			}
		}
		if (msg.hdr.type == KF_MIG_VCPU)
			kf_vcpu_state_check(msg.u.vcpu.blob, msg.u.vcpu.len, NULL);
		if (msg.hdr.type == KF_MIG_RECEIVED) {
			uint64_t n = 0;

			for (uint64_t w = 0; w < (msg.u.received.h.nbits + 63) / 64; w++) {
				uint64_t x;

				__builtin_memcpy(&x, &msg.u.received.bitmap[w], 8);
				n += __builtin_popcountll(x);
			}
			(void)n;
		}
		data += used;
		size -= used;
	}
	return 0;
}
