// SPDX-License-Identifier: MIT
/*
 * Snapshots: save a running workload (vCPU state and memory), restore it
 * eagerly, lazily (the fault engine pages memory in from the file) and
 * lazily with prefetch (a thread reads the rest in the background: before
 * any vCPU runs it alone installs every page) and let the guest verify
 * every page; then corrupt a page (eager restore refuses, lazy restore
 * with or without prefetch stops the guest before it sees the page),
 * truncate the file and damage its header (both refused at open).  Working
 * sets: the order of first reads is recorded, saved and loaded, a
 * prefetch follows it before file order, and damaged or foreign working
 * set files are refused.
 */
#include <fcntl.h>
#include <sys/stat.h>
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

#define DATA_GPA (1ULL << 30)
#define EXTRA_PAGES 64

/*
 * The workload's data region at DATA_GPA (region 1 of the snapshot) and,
 * right after it, an extra region of EXTRA_PAGES that the guest never
 * touches (region 2): a working set may run from one into the other.
 */
static void save(const char *path)
{
	static const struct kf_vcpu_ops ops = { .sync = on_sync };
	struct kf_workload_cfg wc = { .nr_vcpus = nr_vcpus, .pages_per_vcpu = pages,
				      .gpa = DATA_GPA };
	struct kf_region extra = {
		.gpa = DATA_GPA + kf_workload_region_size(&wc),
		.size = EXTRA_PAGES * KF_PAGE_SIZE, .backing = KF_BACKING_ANON,
		.guest_memfd = -1,
	};
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpus[KF_MAX_VCPUS];
	struct kf_vm *vm;
	uint64_t bytes;
	unsigned int i;

	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_workload_setup(vm, &wc, KF_BACKING_ANON, 0, NULL, vcpus));
	TEST_OK(kf_vm_add_region(vm, &extra, &ms));
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
enum mode { EAGER, LAZY, PREFETCH, PREFETCH_FIRST, PREFETCH_WS, LAZY_RECORD };

static const char *ws_path;	/* PREFETCH_WS loads it, LAZY_RECORD saves it */
static uint64_t ws_recorded;	/* LAZY_RECORD: pages recorded */

/* With prefetch and no vCPU running, only the prefetch installs pages. */
static void wait_prefetched(struct kf_snapshot_restore *rs)
{
	uint64_t want = 0, t0 = kf_mig_now_ns();
	struct kf_engine_summary es;
	unsigned int i;

	for (i = 0; i < KF_SNAP_MAX_REGIONS; i++)
		if (rs->srcs[i])
			want += rs->srcs[i]->size / (uint64_t)getpagesize();
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
					  .prefetch = mode >= PREFETCH && mode != LAZY_RECORD,
					  .backend = KF_BACKEND_AUTO };
	struct kf_snapshot *snap;
	unsigned int i;
	int ret, first = 0;

	err[0] = '\0';
	ret = kf_snapshot_open(path, &snap);
	if (!ret && mode == PREFETCH_WS)
		ret = kf_snapshot_ws_load(snap, ws_path);
	if (!ret && mode == LAZY_RECORD)
		ret = kf_snapshot_ws_record(snap);
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
	if (!first && mode == LAZY_RECORD) {
		uint64_t loaded;

		kf_snapshot_ws_count(snap, &ws_recorded, &loaded);
		TEST_OK(kf_snapshot_ws_save(snap, ws_path));
	}
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

/* What a prefetching source pushed, in order. */
struct pushes {
	struct kf_snapshot *snap;
	uint64_t gpa[4096], len[4096];
	unsigned int n;
	uint64_t bytes;
};

static int record_push(void *opaque, uint64_t gpa, const void *data,
		       const void *tags, size_t len)
{
	static char page[KF_PAGE_SIZE];
	struct pushes *p = opaque;
	size_t off;

	TEST_ASSERT(p->n < KF_ARRAY_SIZE(p->gpa), "too many pushes");
	TEST_ASSERT(!tags, "a snapshot without allocation tags pushes none");
	for (off = 0; off < len; off += KF_PAGE_SIZE) {
		TEST_OK(kf_snapshot_read_page(p->snap, gpa + off, page));
		TEST_ASSERT(!memcmp(page, (const char *)data + off, KF_PAGE_SIZE),
			    "pushed page 0x%llx differs from the snapshot's",
			    (unsigned long long)(gpa + off));
	}
	p->gpa[p->n] = gpa;
	p->len[p->n++] = len;
	__atomic_add_fetch(&p->bytes, len, __ATOMIC_SEQ_CST);
	return 0;
}

/*
 * Record reads of data pages 7, 3, 3, 12, 13, then the data region's last
 * page and the first two of the extra region right after it (one run of
 * addresses across two regions), and save them to ws.
 */
static void record_ws(const char *path, const char *ws)
{
	static const unsigned int order[] = { 7, 3, 3, 12, 13 };
	static char page[2 * KF_PAGE_SIZE];
	struct kf_snapshot *snap;
	struct kf_pagesrc *src, *extra;
	uint64_t recorded, loaded;
	struct stat st;
	unsigned int i;

	TEST_OK(kf_snapshot_open(path, &snap));
	TEST_ASSERT_EQ(kf_snapshot_ws_save(snap, ws), -EINVAL);
	TEST_OK(kf_snapshot_ws_record(snap));
	TEST_OK(kf_snapshot_pagesrc(snap, 1, &src));
	TEST_OK(kf_snapshot_pagesrc(snap, 2, &extra));
	TEST_ASSERT_EQ(extra->base, src->base + src->size);
	for (i = 0; i < KF_ARRAY_SIZE(order); i++)
		TEST_OK(kf_pagesrc_read(src, src->base + order[i] * KF_PAGE_SIZE,
					page, KF_PAGE_SIZE));
	TEST_OK(kf_pagesrc_read(src, src->base + src->size - KF_PAGE_SIZE, page,
				KF_PAGE_SIZE));
	TEST_OK(kf_pagesrc_read(extra, extra->base, page, 2 * KF_PAGE_SIZE));
	kf_snapshot_ws_count(snap, &recorded, &loaded);
	TEST_ASSERT_EQ(recorded, 7);
	TEST_ASSERT_EQ(loaded, 0);
	TEST_OK(kf_snapshot_ws_save(snap, ws));
	TEST_ASSERT(!stat(ws, &st), "stat %s: %m", ws);
	TEST_ASSERT_EQ(st.st_mode & 0777, 0600);
	TEST_ASSERT_EQ((uint64_t)st.st_size, sizeof(struct kf_snap_ws_header) + 7 * 8);
	kf_pagesrc_destroy(extra);
	kf_pagesrc_destroy(src);
	kf_snapshot_close(snap);
}

/* Write a working set file for path's snapshot, with a valid checksum. */
static void write_ws(const char *path, const char *ws, const uint64_t *gpas,
		     uint64_t n)
{
	struct kf_snap_ws_header wh = { .magic = KF_SNAP_WS_MAGIC,
					.version = KF_SNAP_WS_VERSION,
					.nr_pages = n };
	struct kf_snapshot *snap;
	int fd;

	TEST_OK(kf_snapshot_open(path, &snap));
	wh.snapshot_hash = kf_snapshot_header(snap)->header_hash;
	kf_snapshot_close(snap);
	wh.hash = kf_host_hash(gpas, n * sizeof(*gpas), kf_host_hash(&wh, sizeof(wh), 0));
	fd = open(ws, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	TEST_ASSERT(fd >= 0, "open %s: %m", ws);
	TEST_ASSERT(write(fd, &wh, sizeof(wh)) == sizeof(wh), "write");
	TEST_ASSERT(write(fd, gpas, n * sizeof(*gpas)) == (ssize_t)(n * sizeof(*gpas)), "write");
	close(fd);
}

/*
 * A prefetch of the data region with ws loaded: 7, 3, 12-13 and its last
 * page (the run stops at the region's end), then the rest in file order.
 * Another working set loaded after the source was made changes nothing
 * for it.
 */
static void prefetch_order(const char *path, const char *ws, const char *other)
{
	static struct pushes p;
	struct kf_pagesrc *src;
	uint64_t next = 0, npages, recorded, loaded, t0;
	unsigned int i;

	TEST_OK(kf_snapshot_open(path, &p.snap));
	TEST_OK(kf_snapshot_ws_load(p.snap, ws));
	kf_snapshot_ws_count(p.snap, &recorded, &loaded);
	TEST_ASSERT_EQ(loaded, 7);
	TEST_OK(kf_snapshot_pagesrc_prefetch(p.snap, 1, &src));
	TEST_OK(kf_snapshot_ws_load(p.snap, other));
	npages = src->size / KF_PAGE_SIZE;
	TEST_ASSERT(npages > 14, "a data region of %llu pages", (unsigned long long)npages);
	TEST_OK(src->ops->start_push(src, record_push, &p));
	t0 = kf_mig_now_ns();
	while (__atomic_load_n(&p.bytes, __ATOMIC_SEQ_CST) < src->size) {
		TEST_ASSERT(kf_mig_now_ns() - t0 < 60000000000ULL,
			    "prefetch stalled at %llu of %llu bytes",
			    (unsigned long long)p.bytes, (unsigned long long)src->size);
		usleep(1000);
	}
	kf_pagesrc_stop_push(src);
	TEST_ASSERT_EQ(p.bytes, src->size);
	TEST_ASSERT(p.n > 4, "%u pushes", p.n);
	TEST_ASSERT_EQ(p.gpa[0], src->base + 7 * KF_PAGE_SIZE);
	TEST_ASSERT_EQ(p.len[0], KF_PAGE_SIZE);
	TEST_ASSERT_EQ(p.gpa[1], src->base + 3 * KF_PAGE_SIZE);
	TEST_ASSERT_EQ(p.len[1], KF_PAGE_SIZE);
	TEST_ASSERT_EQ(p.gpa[2], src->base + 12 * KF_PAGE_SIZE);
	TEST_ASSERT_EQ(p.len[2], 2 * KF_PAGE_SIZE);
	TEST_ASSERT_EQ(p.gpa[3], src->base + src->size - KF_PAGE_SIZE);
	TEST_ASSERT_EQ(p.len[3], KF_PAGE_SIZE);
	/* Then every other page once, ascending. */
	for (i = 4; i < p.n; i++) {
		uint64_t first = (p.gpa[i] - src->base) / KF_PAGE_SIZE;

		while (next == 3 || next == 7 || next == 12 || next == 13)
			next++;
		TEST_ASSERT_EQ(first, next);
		next += p.len[i] / KF_PAGE_SIZE;
	}
	TEST_ASSERT_EQ(next, npages - 1);
	printf("  working set prefetch: pages 7, 3, 12-13 and the last first, then %u runs in file order\n",
	       p.n - 4);
	kf_pagesrc_destroy(src);
	kf_snapshot_close(p.snap);
}

static void expect_ws_refused(const char *path, const char *ws, int err,
			      const char *needle)
{
	struct kf_snapshot *snap;
	int ret;

	TEST_OK(kf_snapshot_open(path, &snap));
	ret = kf_snapshot_ws_load(snap, ws);
	TEST_ASSERT(ret == -err && strstr(kf_error(), needle),
		    "working set load: %d \"%s\", expected %d \"%s\"", ret,
		    kf_error(), -err, needle);
	printf("  refused: \"%s\"\n", kf_error());
	kf_snapshot_close(snap);
}

static void test_working_set(const char *dir, const char *path)
{
	char ws[256], bad[256], other[256];
	struct kf_snapshot *snap;
	uint64_t gpa;
	struct stat st;
	char err[1024];

	snprintf(ws, sizeof(ws), "%s/guest.ws", dir);
	snprintf(bad, sizeof(bad), "%s/bad.ws", dir);
	snprintf(other, sizeof(other), "%s/other.snap", dir);
	record_ws(path, ws);
	TEST_OK(kf_snapshot_open(path, &snap));
	gpa = kf_snapshot_region(snap, 1)->gpa + 20 * KF_PAGE_SIZE;
	kf_snapshot_close(snap);
	write_ws(path, bad, &gpa, 1);
	prefetch_order(path, ws, bad);
	/* Recorded at a lazy restore: every page the guest verified. */
	ws_path = ws;
	TEST_ASSERT(!restore(path, LAZY_RECORD, err, sizeof(err)), "recording restore: %s", err);
	TEST_ASSERT(ws_recorded >= nr_vcpus * pages, "recorded %llu pages, the guest verified %llu",
		    (unsigned long long)ws_recorded, (unsigned long long)(nr_vcpus * pages));
	TEST_ASSERT(!restore(path, PREFETCH_WS, err, sizeof(err)), "working set restore: %s", err);
	printf("  working set of %llu pages recorded at a lazy restore; restore prefetching it: guest verified %u x %llu pages\n",
	       (unsigned long long)ws_recorded, nr_vcpus, (unsigned long long)pages);

	copy_file(ws, bad);
	poke(bad, sizeof(struct kf_snap_ws_header) + 1, 0x10);
	expect_ws_refused(path, bad, EBADMSG, "checksum");
	TEST_ASSERT(!stat(ws, &st), "stat");
	copy_file(ws, bad);
	TEST_ASSERT(!truncate(bad, st.st_size - 1), "truncate");
	expect_ws_refused(path, bad, EBADMSG, "do not fit");
	expect_ws_refused(path, path, EBADMSG, "no working set file");
	TEST_OK(kf_snapshot_open(path, &snap));
	gpa = kf_snapshot_region(snap, 2)->gpa + kf_snapshot_region(snap, 2)->size;
	kf_snapshot_close(snap);
	gpa += 1ULL << 30;	/* in no region */
	write_ws(path, bad, &gpa, 1);
	expect_ws_refused(path, bad, EBADMSG, "no page of the snapshot");
	save(other);
	expect_ws_refused(other, ws, EINVAL, "another snapshot");
	unlink(other);
	unlink(bad);
	unlink(ws);
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

	test_working_set(dir, path);

	unlink(path);
	unlink(bad);
	rmdir(dir);
	TEST_PASS("snapshot save, eager, lazy, prefetch and working set restore, corruption and truncation detected");
}
