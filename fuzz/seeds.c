// SPDX-License-Identifier: MIT
/*
 * Seed corpus for the fuzzers: a valid migration stream (HELLO, SETUP,
 * PAGES with data and zero pages, untagged and tagged, DISCARD, REQ, RECEIVED, SWITCHOVER,
 * ERROR) and a small valid snapshot built in memory (no KVM needed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kvmfault/migration.h>
#include <kvmfault/snapshot.h>

static void put(FILE *f, uint16_t type, const void *p, size_t len)
{
	struct kf_mig_hdr h = { .magic = KF_MIG_MAGIC, .type = type, .len = (uint32_t)len };

	fwrite(&h, sizeof(h), 1, f);
	fwrite(p, len, 1, f);
}

static void stream(const char *dir)
{
	char path[512], buf[65536];
	struct kf_mig_conn *c;
	int sv[2];
	ssize_t n;
	FILE *f;

	snprintf(path, sizeof(path), "%s/stream", dir);
	f = fopen(path, "w");
	if (!f || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || kf_mig_conn_new(sv[0], &c))
		exit(1);
	{
		struct kf_mig_hello h = { .version = KF_MIG_VERSION, .channel = 1, .session = 7 };
		struct {
			struct kf_mig_setup s;
			struct kf_mig_region r;
		} s = { { .nr_vcpus = 1, .nr_regions = 1, .page_size = 4096 },
			{ .gpa = 1ULL << 30, .size = 8192 } };
		struct kf_mig_range rg = { .gpa = 1ULL << 30, .npages = 1 };
		struct { struct kf_mig_req_hdr h; uint64_t g[2]; } rq =
			{ { .count = 2 }, { 1ULL << 30, (1ULL << 30) + 4096 } };
		struct { struct kf_mig_received_hdr h; uint64_t bm; } rc =
			{ { .region = 0, .nbits = 2 }, 1 };
		struct kf_mig_switchover sw = { .total_pages = 2 };
		static char pages[8192];
		static uint8_t tags[2 * 256];

		struct kf_mig_hello push = { .version = KF_MIG_VERSION,
					     .channel = KF_MIG_CH_PUSH, .session = 7,
					     .push_streams = 2, .push_index = 1 };

		put(f, KF_MIG_HELLO, &h, sizeof(h));
		put(f, KF_MIG_HELLO, &push, sizeof(push));
		put(f, KF_MIG_SETUP, &s, sizeof(s));
		memset(pages, 0x5a, 4096);
		memset(tags, 0x3, sizeof(tags));
		kf_mig_send_pages(c, 1ULL << 30, pages, 2, KF_MIG_CAUSE_PRECOPY);
		n = read(sv[1], buf, sizeof(buf));
		if (n > 0)
			fwrite(buf, n, 1, f);
		kf_mig_send_tagged_pages(c, 1ULL << 30, pages, tags, 2, KF_MIG_CAUSE_PUSH);
		n = read(sv[1], buf, sizeof(buf));
		if (n > 0)
			fwrite(buf, n, 1, f);
		put(f, KF_MIG_DISCARD, &rg, sizeof(rg));
		put(f, KF_MIG_REQ, &rq, sizeof(rq));
		put(f, KF_MIG_RECEIVED, &rc, sizeof(rc));
		put(f, KF_MIG_SYNC, &sw.total_pages, sizeof(sw.total_pages));
		put(f, KF_MIG_SWITCHOVER, &sw, sizeof(sw));
		put(f, KF_MIG_ERROR, "boom", 4);
		put(f, KF_MIG_COMPLETE, NULL, 0);
	}
	fclose(f);
	kf_mig_conn_free(c);
	close(sv[1]);
}

static void snapshot(const char *dir)
{
	/* header, one region of two pages (one data, one zero), no vCPU
	 * section is invalid (a snapshot needs a vCPU), so this seed is a
	 * near-miss the fuzzer mutates from; the parser must refuse it. */
	static char file[4096 + 4096 + 8192];
	struct kf_snap_header h = { .magic = KF_SNAP_MAGIC };
	struct kf_snap_region r = { .gpa = 1ULL << 30, .size = 8192 };
	struct kf_snap_page idx[2];
	char path[512];
	FILE *f;

	memcpy(h.magic, KF_SNAP_MAGIC, 8);
	h.version = KF_SNAP_VERSION;
	h.header_size = 4096;
	h.page_size = 4096;
	h.nr_vcpus = 1;
	h.nr_regions = 1;
	h.region_off = 4096;
	h.vcpu_off = 4096 + sizeof(r);
	h.vcpu_len = 0;
	h.index_off = h.vcpu_off;
	h.total_pages = 2;
	h.data_off = 8192;
	h.file_size = sizeof(file);
	memset(file + 8192, 0x33, 4096);
	idx[0] = (struct kf_snap_page){ kf_mig_page_hash(r.gpa, file + 8192), 0, 0 };
	memset(file + 12288, 0, 4096);
	idx[1] = (struct kf_snap_page){ kf_mig_page_hash(r.gpa + 4096, file + 12288), 1, 0 };
	/* no vCPU section: it hashes as empty */
	h.meta_hash = kf_host_hash(idx, sizeof(idx),
				   kf_host_hash(NULL, 0, kf_host_hash(&r, sizeof(r), 0)));
	h.header_hash = 0;
	{
		struct kf_snap_header c = h;

		h.header_hash = kf_host_hash(&c, sizeof(c), 0);
	}
	memcpy(file, &h, sizeof(h));
	memcpy(file + 4096, &r, sizeof(r));
	memcpy(file + h.index_off, idx, sizeof(idx));
	snprintf(path, sizeof(path), "%s/snapshot", dir);
	f = fopen(path, "w");
	if (!f)
		exit(1);
	fwrite(file, sizeof(file), 1, f);
	fclose(f);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: seeds STREAM-DIR SNAPSHOT-DIR\n");
		return 2;
	}
	stream(argv[1]);
	snapshot(argv[2]);
	return 0;
}
