// SPDX-License-Identifier: GPL-2.0
/*
 * The guest workload of the QEMU phase: fill a buffer with a pattern that
 * names each word and the round, and in the next round check every word
 * before writing the next pattern.  A page that a migration lost, or
 * brought back stale, shows up as "MEMCHECK FAIL".
 *
 * usage: memcheck MIB ROUNDS
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t pattern(uint64_t i, uint64_t round)
{
	return (i * 0x9e3779b97f4a7c15ULL) ^ (round << 48) ^ 0x6d656d636865636bULL;
}

int main(int argc, char **argv)
{
	uint64_t words, round, rounds, i;
	volatile uint64_t *buf;
	size_t bytes;

	if (argc != 3) {
		fprintf(stderr, "usage: memcheck MIB ROUNDS\n");
		return 2;
	}
	bytes = strtoull(argv[1], NULL, 0) << 20;
	rounds = strtoull(argv[2], NULL, 0);
	words = bytes / 8;
	buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED) {
		perror("MEMCHECK FAIL mmap");
		return 1;
	}
	for (round = 0; round < rounds; round++) {
		for (i = 0; i < words; i++) {
			if (round && buf[i] != pattern(i, round - 1)) {
				printf("MEMCHECK FAIL round %llu word %llu (page %llu): 0x%llx, want 0x%llx\n",
				       (unsigned long long)round,
				       (unsigned long long)i,
				       (unsigned long long)(i * 8 / 4096),
				       (unsigned long long)buf[i],
				       (unsigned long long)pattern(i, round - 1));
				fflush(stdout);
				return 1;
			}
			buf[i] = pattern(i, round);
		}
		printf("MEMCHECK ROUND %llu OK\n", (unsigned long long)round);
		fflush(stdout);
	}
	printf("MEMCHECK DONE %llu\n", (unsigned long long)rounds);
	fflush(stdout);
	return 0;
}
