// SPDX-License-Identifier: MIT
/*
 * Snapshots: save a running workload (vCPU state and memory), restore it
 * eagerly, lazily (the fault engine pages memory in from the file) and
 * lazily with prefetch (a thread reads the rest in the background: before
 * any vCPU runs it alone installs every page) and let the guest verify
 * every page; then corrupt a page (eager restore refuses, lazy restore
 * with or without prefetch stops the guest before it sees the page),
 * truncate the file and damage its header (both refused at open).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kvmfault/vm_engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/snapshot.h>
#include <kvmfault/test.h>

static unsigned int filled, verified;
static unsigned int nr_vcpus = 2;
static uint64_t pages = 128;

static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	(void)vcpu;
	if (uc->args[0] == KF_WL_STAGE_FILLED)
		__atomic_fetch_add(&filled, 1, __ATOMIC_SEQ_CST);
	if (uc->args[0] == KF_WL_STAGE_VERIFIED) {
		TEST_ASSERT_EQ(uc->args[1], pages);
		__atomic_fetch_add(&verified, 1, __ATOMIC_SEQ_CST);
	}
	return 0;
}

static void save(const char *path)
{
	static const struct kf_vcpu_ops ops = { .sync = on_sync };
	struct kf_workload_cfg wc = { .nr_vcpus = nr_vcpus, .pages_per_vcpu = pages };
	struct kf_vcpu *vcpus[KF_MAX_VCPUS];
	struct kf_vm *vm;
	uint64_t bytes;
	unsigned int i;

	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_workload_setup(vm, &wc, KF_BACKING_ANON, 0, NULL, vcpus));
	for (i = 0; i < nr_vcpus; i++)
		TEST_OK(kf_vcpu_start(vcpus[i], &ops));
	while (__atomic_load_n(&filled, __ATOMIC_SEQ_CST) < nr_vcpus)
		usleep(1000);
	usleep(20000);
	for (i = 0; i < nr_vcpus; i++)
		kf_vcpu_stop(vcpus[i]);
	for (i = 0; i < nr_vcpus; i++)
		TEST_ASSERT_EQ(kf_vcpu_join(vcpus[i]), -EINTR);
	TEST_OK(kf_snapshot_save(vm, vcpus, nr_vcpus, NULL, path, &bytes));
	kf_vm_destroy(vm);
}

/* PREFETCH_FIRST lets the prefetch finish before the vCPUs start;
 * PREFETCH starts them at once, racing it. */
enum mode { EAGER, LAZY, PREFETCH, PREFETCH_FIRST };

/* With prefetch and no vCPU running, only the prefetch installs pages. */
static void wait_prefetched(struct kf_snapshot_restore *rs)
{
	uint64_t want = 0, t0 = kf_mig_now_ns();
	struct kf_engine_summary es;
	unsigned int i;

	for (i = 0; i < KF_SNAP_MAX_REGIONS; i++)
		if (rs->srcs[i])
			want += rs->srcs[i]->size / KF_PAGE_SIZE;
	while (kf_engine_installed_pages(rs->engine) < want) {
		TEST_ASSERT(kf_mig_now_ns() - t0 < 120000000000ULL,
			    "prefetch stalled at %llu of %llu pages",
			    (unsigned long long)kf_engine_installed_pages(rs->engine),
			    (unsigned long long)want);
		usleep(1000);
	}
	kf_engine_summary(rs->engine, &es);
	TEST_ASSERT_EQ(es.total.faults, 0);
	TEST_ASSERT_EQ(kf_engine_installed_pages(rs->engine), want);
	printf("  prefetch alone installed all %llu pages\n", (unsigned long long)want);
}

/* Restore and run to the in-guest verification: 0, or the first error. */
static int restore(const char *path, enum mode mode, char *err, size_t errlen)
{
	struct kf_vcpu_ops ops = {
		.sync = on_sync,
		.memory_fault = kf_engine_memory_fault,
		.interrupted = kf_engine_interrupted,
	};
	struct kf_snapshot_restore rs = { .lazy = mode != EAGER,
					  .prefetch = mode >= PREFETCH,
					  .backend = KF_BACKEND_AUTO };
	struct kf_snapshot *snap;
	unsigned int i;
	int ret, first = 0;

	err[0] = '\0';
	ret = kf_snapshot_open(path, &snap);
	if (!ret)
		ret = kf_snapshot_restore_vm(snap, &rs);
	if (ret) {
		snprintf(err, errlen, "%s", kf_error());
		kf_snapshot_close(snap);
		return ret;
	}
	verified = 0;
	if (mode == PREFETCH_FIRST)
		wait_prefetched(&rs);
	for (i = 0; i < rs.nr_vcpus; i++)
		TEST_OK(kf_vcpu_start(rs.vcpus[i], &ops));
	usleep(20000);
	kf_workload_stop(rs.vm);
	for (i = 0; i < rs.nr_vcpus; i++) {
		ret = kf_vcpu_join(rs.vcpus[i]);
		if (ret && !first) {
			first = ret;
			snprintf(err, errlen, "%s", kf_vcpu_errmsg(rs.vcpus[i]));
		}
	}
	if (rs.engine && kf_engine_error(rs.engine))
		snprintf(err, errlen, "%s", kf_engine_error(rs.engine));
	if (!first)
		TEST_ASSERT_EQ(verified, nr_vcpus);
	kf_snapshot_restore_free(&rs);
	kf_snapshot_close(snap);
	return first;
}

/* A copy that keeps the holes of zero pages (no external cp: busybox's
 * lacks --sparse). */
static void copy_file(const char *from, const char *to)
{
	static char buf[1 << 16];
	int in = open(from, O_RDONLY), out;
	off_t off = 0;
	ssize_t n;

	TEST_ASSERT(in >= 0, "open %s: %m", from);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	TEST_ASSERT(out >= 0, "open %s: %m", to);
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		ssize_t i;

		for (i = 0; i < n && !buf[i]; i++)
			;
		if (i < n)
			TEST_ASSERT(pwrite(out, buf, n, off) == n, "write %s: %m", to);
		off += n;
	}
	TEST_ASSERT(n == 0, "read %s: %m", from);
	TEST_ASSERT(!ftruncate(out, off), "truncate %s: %m", to);
	close(in);
	close(out);
}

static void poke(const char *path, uint64_t off, uint8_t x)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	TEST_ASSERT(fd >= 0, "open %s", path);
	TEST_ASSERT(pread(fd, &b, 1, off) == 1, "pread");
	b ^= x;
	TEST_ASSERT(pwrite(fd, &b, 1, off) == 1, "pwrite");
	close(fd);
}

int main(void)
{
	char dir[] = "/tmp/kf-snapXXXXXX", path[256], bad[256], err[1024];
	struct kf_snapshot *snap;
	uint64_t off;
	const char *env;
	int ret;

	kf_test_require_kvm();
	if ((env = getenv("KF_SNAPSHOT_PAGES")))
		pages = strtoull(env, NULL, 0);
	TEST_ASSERT(mkdtemp(dir), "mkdtemp");
	snprintf(path, sizeof(path), "%s/guest.snap", dir);
	snprintf(bad, sizeof(bad), "%s/bad.snap", dir);
	save(path);

	TEST_ASSERT(!restore(path, EAGER, err, sizeof(err)), "eager restore: %s", err);
	printf("  eager restore: guest verified %u x %llu pages\n", nr_vcpus,
	       (unsigned long long)pages);
	TEST_ASSERT(!restore(path, LAZY, err, sizeof(err)), "lazy restore: %s", err);
	printf("  lazy restore: guest verified %u x %llu pages\n", nr_vcpus,
	       (unsigned long long)pages);
	TEST_ASSERT(!restore(path, PREFETCH_FIRST, err, sizeof(err)), "prefetch restore: %s", err);
	printf("  prefetch restore: guest verified %u x %llu pages\n", nr_vcpus,
	       (unsigned long long)pages);
	TEST_ASSERT(!restore(path, PREFETCH, err, sizeof(err)), "prefetch restore: %s", err);
	printf("  prefetch racing the vCPUs: guest verified %u x %llu pages\n", nr_vcpus,
	       (unsigned long long)pages);

	/* A corrupted checksum page of the data region (region 1). */
	TEST_OK(kf_snapshot_open(path, &snap));
	off = kf_snapshot_header(snap)->data_off +
	      kf_snapshot_region(snap, 1)->first_page * KF_PAGE_SIZE + 100;
	kf_snapshot_close(snap);
	copy_file(path, bad);
	poke(bad, off, 0x40);
	ret = restore(bad, EAGER, err, sizeof(err));
	TEST_ASSERT(ret == -EBADMSG && strstr(err, "corrupted"),
		    "eager restore of a corrupted page: %d %s", ret, err);
	printf("  corrupted page, eager: \"%s\"\n", err);
	ret = restore(bad, LAZY, err, sizeof(err));
	TEST_ASSERT(ret && strstr(err, "corrupted") && !strstr(err, "guest assertion"),
		    "lazy restore of a corrupted page: %d %s", ret, err);
	printf("  corrupted page, lazy: \"%s\"\n", err);
	ret = restore(bad, PREFETCH, err, sizeof(err));
	TEST_ASSERT(ret && strstr(err, "corrupted") && !strstr(err, "guest assertion"),
		    "prefetch restore of a corrupted page: %d %s", ret, err);
	printf("  corrupted page, prefetch: \"%s\"\n", err);

	/* Truncated. */
	copy_file(path, bad);
	TEST_ASSERT(!truncate(bad, off), "truncate");
	ret = kf_snapshot_open(bad, &snap);
	TEST_ASSERT(ret == -EIO && strstr(kf_error(), "truncated"), "truncated: %s",
		    kf_error());
	printf("  truncated: \"%s\"\n", kf_error());

	/* Damaged header and damaged page index. */
	copy_file(path, bad);
	poke(bad, 40, 1);
	ret = kf_snapshot_open(bad, &snap);
	TEST_ASSERT(ret == -EBADMSG && strstr(kf_error(), "header"), "header: %s",
		    kf_error());
	copy_file(path, bad);
	TEST_OK(kf_snapshot_open(path, &snap));
	off = kf_snapshot_header(snap)->index_off + 3;
	kf_snapshot_close(snap);
	poke(bad, off, 1);
	ret = kf_snapshot_open(bad, &snap);
	TEST_ASSERT(ret == -EBADMSG && strstr(kf_error(), "metadata"), "index: %s",
		    kf_error());

	unlink(path);
	unlink(bad);
	rmdir(dir);
	TEST_PASS("snapshot save, eager, lazy and prefetch restore, corruption and truncation detected");
}
