// SPDX-License-Identifier: MIT
/*
 * kvmfault run: boot a guest workload on this machine's KVM and say what it
 * did.  Each vCPU writes its share of guest memory at CPL3, checksums it
 * inside the guest, and reports; the host checks every checksum.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kvmfault/kvmfault.h>

#include "builtin.h"

struct vcpu_report {
	uint64_t pages;
	uint64_t hash;
};

static struct vcpu_report reports[KF_MAX_VCPUS];
static uint64_t per_vcpu_bytes;

static KF_GUEST void guest_workload(uint64_t base)
{
	uint64_t id = kf_guest_vcpu_id();
	uint64_t start = base + id * per_vcpu_bytes;
	uint64_t off, i, h = KF_HASH_SEED;

	for (off = 0; off < per_vcpu_bytes; off += KF_PAGE_SIZE) {
		volatile uint64_t *p = (volatile uint64_t *)(start + off);

		for (i = 0; i < KF_PAGE_SIZE / 8; i++)
			p[i] = (start + off) ^ (i * 0x9e3779b97f4a7c15ULL);
		h = kf_hash_continue(h, (const void *)p, KF_PAGE_SIZE);
	}
	GUEST_SYNC_ARGS(1, per_vcpu_bytes / KF_PAGE_SIZE, h, 0);
}

static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	reports[kf_vcpu_id(vcpu)].pages = uc->args[1];
	reports[kf_vcpu_id(vcpu)].hash = uc->args[2];
	return 0;
}

static uint64_t host_hash(struct kf_vm *vm, uint64_t start)
{
	return kf_hash(kf_vm_gpa_to_hva(vm, start), per_vcpu_bytes);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvmfault run [-v VCPUS] [-m MIB_PER_VCPU]\n"
		"  Boot a guest on this machine's KVM: each vCPU writes and checksums\n"
		"  its memory at CPL3; the host verifies every checksum.\n"
		"  -v VCPUS         vCPUs, 1..%d (2)\n"
		"  -m MIB_PER_VCPU  guest memory each vCPU writes, 1..4096 MiB (16)\n",
		KF_MAX_VCPUS);
}

int cmd_run(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vcpus", 1, NULL, 'v' }, { "mib", 1, NULL, 'm' },
		{ "help", 0, NULL, 'h' }, { 0 },
	};
	struct kf_vcpu_ops ops = { .sync = on_sync };
	struct kf_region r = { .backing = KF_BACKING_ANON };
	unsigned int nr_vcpus = 2, i, bad = 0;
	unsigned int mib = 16;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	double t0, t1;
	int c;

	while ((c = getopt_long(argc, argv, "v:m:h", lo, NULL)) != -1) {
		switch (c) {
		case 'v':
			if (tool_uint("run", "-v", optarg, 1, KF_MAX_VCPUS, &nr_vcpus))
				return 2;
			break;
		case 'm':
			if (tool_uint("run", "-m", optarg, 1, 4096, &mib))
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvmfault run: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	per_vcpu_bytes = (uint64_t)mib << 20;

	if (kf_vm_create(&vm)) {
		fprintf(stderr, "kvmfault run: %s\n", kf_error());
		return 1;
	}
	r.gpa = kf_vm_free_gpa(vm);
	r.size = nr_vcpus * per_vcpu_bytes;
	if (kf_vm_add_region(vm, &r, NULL) ||
	    KF_SYNC_GLOBAL_TO_GUEST(vm, per_vcpu_bytes)) {
		fprintf(stderr, "kvmfault run: %s\n", kf_error());
		return 1;
	}
	for (i = 0; i < nr_vcpus; i++) {
		if (kf_vcpu_add(vm, i, guest_workload, r.gpa, &vcpu)) {
			fprintf(stderr, "kvmfault run: %s\n", kf_error());
			return 1;
		}
	}
	printf("kvmfault run: %u vCPUs, %u MiB each, guest code at CPL3 in long mode\n",
	       nr_vcpus, mib);
	t0 = now();
	if (kf_vm_run_all(vm, &ops)) {
		fprintf(stderr, "kvmfault run: %s\n", kf_error());
		return 1;
	}
	t1 = now();
	for (i = 0; i < nr_vcpus; i++) {
		uint64_t expect = host_hash(vm, r.gpa + i * per_vcpu_bytes);
		bool ok = expect == reports[i].hash;
		struct kf_vcpu_counters n = { 0 };

		kf_vcpu_counters(kf_vm_vcpu(vm, i), &n, sizeof(n));
		bad += !ok;
		printf("  vCPU %u: wrote %llu pages, guest checksum %016llx, host %016llx: %s, %llu exits\n",
		       i, (unsigned long long)reports[i].pages,
		       (unsigned long long)reports[i].hash,
		       (unsigned long long)expect, ok ? "match" : "MISMATCH",
		       (unsigned long long)n.nr_exits);
	}
	printf("kvmfault run: %.1f MiB in %.3f s (%.0f MiB/s, first touch of fresh memory included): %s\n",
	       (double)r.size / (1 << 20), t1 - t0, r.size / (1 << 20) / (t1 - t0),
	       bad ? "FAILED" : "ok");
	kf_vm_destroy(vm);
	return bad ? 1 : 0;
}
