// SPDX-License-Identifier: MIT
/*
 * kvmfault bench: demand-paging throughput of the fault engine, in the
 * manner of the KVM selftests' demand_paging_test, against the raw
 * userfaultfd loop measured in the same run.
 *
 * Each vCPU walks its own range (memory per vCPU, -b) page by page, reading
 * or writing one word per page, and times every touch with the cycle
 * counter (kf_guest_cycles(): rdtsc on x86) inside the guest (end-to-end
 * fault latency, including KVM and the kernel).  The host
 * times each vCPU's walk between two SYNC ucalls.  Every configuration runs
 * -r times; the row shows the median run by total pages/s.
 */
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <kvmfault/vm_engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/remote.h>
#include <kvmfault/stats.h>
#include <kvmfault/uffd.h>
#include <kvmfault/uffd_raw.h>

#include "builtin.h"

/* ------------------------------------------------------------ the guest */

struct bench_walk {
	uint64_t gpa;
	uint64_t pages;
	uint64_t write;
	uint64_t lat_gpa;	/* cycles per touch, not demand paged */
};

static struct bench_walk bench_walks[KF_MAX_VCPUS];

static KF_GUEST void bench_guest(uint64_t v)
{
	const struct bench_walk *w = &bench_walks[v];
	volatile uint64_t *lat = (volatile uint64_t *)w->lat_gpa;
	uint64_t i;

	GUEST_SYNC_ARGS(1, v, 0, 0);
	for (i = 0; i < w->pages; i++) {
		volatile uint64_t *p = (volatile uint64_t *)(w->gpa + i * KF_PAGE_SIZE);
		uint64_t t0 = kf_guest_cycles();

		if (w->write)
			*p = i;
		else
			(void)*p;
		lat[i] = kf_guest_cycles() - t0;
	}
	GUEST_SYNC_ARGS(2, v, 0, 0);
}

/* ------------------------------------------------------------- options */

enum bench_uffd_mode { MODE_SHARED, MODE_PER_VCPU };

static struct {
	unsigned int vcpus[16], nr_vcpus;
	enum kf_backend backends[4];
	unsigned int nr_backends;
	enum bench_uffd_mode modes[2];
	unsigned int nr_modes;
	unsigned int handlers;
	uint64_t per_vcpu;
	const char *source;
	bool write;
	bool raw;
	bool memfd_exit;	/* exit backend on memfd instead of anon */
	bool pin;		/* vCPU i and its uffd's handler on CPU i mod nproc */
	bool plain;		/* -s remote over plain TCP, not TLS */
	unsigned int reps;
	const char *csv;
	const char *json;
	const char *plot;
	const char *file_dir;
} opt = {
	.handlers = 1,
	.per_vcpu = 64ULL << 20,
	.source = "memory",
	.raw = true,
	.reps = 3,
	.file_dir = "/tmp",
};

static void usage(FILE *f)
{
	fprintf(f,
"usage: kvmfault bench [options]\n"
"  -v LIST    vCPU counts, e.g. 1,2,4 (default 1,2)\n"
"  -b SIZE    memory per vCPU, K/M/G suffix (default 64M)\n"
"  -m LIST    backends: exit, uffd-missing, uffd-minor, auto\n"
"             (default: uffd-missing,uffd-minor, and exit when the kernel has it)\n"
"  -u LIST    userfaultfds: shared, per-vcpu (default shared,per-vcpu)\n"
"  -t N       handler threads per userfaultfd (default 1)\n"
"  -s SOURCE  page source: memory, file, zero, remote (default memory);\n"
"             remote: a page server thread on 127.0.0.1 serves the memory\n"
"             image, demand only (every fault is a network round trip),\n"
"             over TLS with a fresh pre-shared key\n"
"  --plain    -s remote over plain TCP instead of TLS\n"
"  -a ACCESS  read or write (default read)\n"
"  -r N       runs per configuration; the median is shown (default 3)\n"
"  -R         no raw userfaultfd baseline\n"
"  -M         exit backend on memfd memory (default anonymous)\n"
"  --pin      pin vCPU i and the handler thread(s) of uffd i (engine and\n"
"             raw loop) to CPU i mod nproc\n"
"  -d DIR     where -s file writes its image (default /tmp)\n"
"  -o FILE    write the rows as CSV\n"
"  -j FILE    write the engine's statistics (last run of each row) as JSON lines\n"
"  -p FILE    plot total pages/s against vCPUs to a PNG (gnuplot)\n"
"  -h         this help\n");
}

static int parse_list(const char *arg, int (*one)(const char *, void *),
		      void *ctx)
{
	char buf[256], *save, *tok;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (one(tok, ctx))
			return -1;
	return 0;
}

static int one_vcpus(const char *s, void *ctx)
{
	unsigned int n;

	(void)ctx;
	if (tool_uint("bench", "vCPU count (-v)", s, 1, KF_MAX_VCPUS, &n))
		return -1;
	if (opt.nr_vcpus >= KF_ARRAY_SIZE(opt.vcpus)) {
		fprintf(stderr, "kvmfault bench: at most %zu vCPU counts\n",
			KF_ARRAY_SIZE(opt.vcpus));
		return -1;
	}
	opt.vcpus[opt.nr_vcpus++] = n;
	return 0;
}

static int one_backend(const char *s, void *ctx)
{
	enum kf_backend b;

	(void)ctx;
	if (kf_backend_parse(s, &b) || opt.nr_backends >= KF_ARRAY_SIZE(opt.backends)) {
		fprintf(stderr, "kvmfault bench: %s\n", kf_error());
		return -1;
	}
	opt.backends[opt.nr_backends++] = b;
	return 0;
}

static int one_mode(const char *s, void *ctx)
{
	(void)ctx;
	if (opt.nr_modes >= 2)
		return -1;
	if (!strcmp(s, "shared"))
		opt.modes[opt.nr_modes++] = MODE_SHARED;
	else if (!strcmp(s, "per-vcpu"))
		opt.modes[opt.nr_modes++] = MODE_PER_VCPU;
	else {
		fprintf(stderr, "kvmfault bench: unknown uffd mode '%s': use shared or per-vcpu\n", s);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- timing */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static double tsc_per_ns;

static void calibrate_tsc(void)
{
	uint64_t t0 = now_ns(), c0 = kf_host_cycles(), t1, c1;

	usleep(50000);
	t1 = now_ns();
	c1 = kf_host_cycles();
	tsc_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
}

static uint64_t sync_start[KF_MAX_VCPUS], sync_end[KF_MAX_VCPUS];

static int pin_self(unsigned int i)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int cpu = i % (n > 0 ? n : 1);
	cpu_set_t set;
	int ret;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	ret = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	if (ret)
		return kf_fail(ret, "cannot pin vCPU %u to CPU %u: %s", i, cpu,
			       strerror(ret));
	return 0;
}

static int bench_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	unsigned int id = kf_vcpu_id(vcpu);
	uint64_t t;
	int ret;

	/* The first SYNC comes before the walk, on the vCPU thread. */
	if (opt.pin && uc->args[0] == 1) {
		ret = pin_self(id);
		if (ret)
			return ret;
	}
	t = now_ns();

	if (uc->args[1] != id)
		return kf_fail(EPROTO, "vCPU %u reported as %llu", id,
			       (unsigned long long)uc->args[1]);
	if (uc->args[0] == 1)
		sync_start[id] = t;
	else
		sync_end[id] = t;
	return 0;
}

/* ------------------------------------------------------------- one run */

struct result {
	double per_vcpu_rate;	/* mean over vCPUs of pages / own walk time */
	double total_rate;	/* all pages / (last end - first start) */
	uint64_t p50_ns, p99_ns, max_ns;	/* guest-measured touch latency */
	uint64_t svc_p50_ns, svc_p99_ns;	/* engine service latency */
	bool has_svc;
};

static struct kf_engine_stats estats;
static struct kf_latency_hist lat_hist;

struct config {
	enum kf_backend backend;	/* AUTO never: resolved before */
	enum bench_uffd_mode mode;
	unsigned int nr_vcpus;
	bool raw;
};

static const void *image;	/* opt.source memory/file: the bytes */
static uint64_t image_size;
static char file_path[512];

/* -s remote: a page server thread and the remote source connected to it. */
struct remote_rig {
	struct kf_page_server *srv;
	struct kf_remote *r;
	struct kf_mig_tls *tls_server, *tls_client;
	pthread_t thread;
	bool thread_started;
	int lfd;
	int srv_ret;
};

static void *remote_server_thread(void *arg)
{
	struct remote_rig *rr = arg;

	rr->srv_ret = kf_page_server_accept(rr->srv, 10000);
	if (!rr->srv_ret)
		rr->srv_ret = kf_page_server_serve(rr->srv);
	if (rr->srv_ret)
		fprintf(stderr, "kvmfault bench: page server: %s\n", kf_error());
	return NULL;
}

static int remote_open(struct remote_rig *rr, uint64_t gpa, uint64_t size,
		       struct kf_pagesrc **srcp)
{
	struct kf_page_server_region reg = { .gpa = gpa, .size = size, .hva = image };
	struct kf_page_server_config pc = {
		.regions = &reg, .nr_regions = 1,	/* no vCPU states */
		.no_push = true,	/* every page by demand: faults, not a push */
		.recover_timeout_ms = 1000,
	};
	struct kf_remote_config rc = { .connect_timeout_ms = 10000 };
	char addr[64];
	int port, ret;

	if (!opt.plain) {
		ret = kf_mig_psk_pair("kvmfault-bench", &rr->tls_server, &rr->tls_client);
		if (ret)
			return ret;
	}
	pc.tls = rr->tls_server;
	pc.plain = opt.plain;
	rc.tls = rr->tls_client;
	rc.plain = opt.plain;
	rr->lfd = kf_mig_listen("127.0.0.1:0", &port);
	if (rr->lfd < 0)
		return rr->lfd;
	ret = kf_page_server_create(&pc, rr->lfd, &rr->srv);
	if (ret)
		return ret;
	ret = pthread_create(&rr->thread, NULL, remote_server_thread, rr);
	if (ret)
		return kf_fail(ret, "cannot start the page server thread");
	rr->thread_started = true;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	rc.addr = addr;
	ret = kf_remote_connect(&rc, &rr->r);
	if (!ret)
		ret = kf_remote_wait_switchover(rr->r, NULL);
	if (!ret)
		ret = kf_remote_pagesrc(rr->r, 0, srcp);
	if (!ret)
		ret = kf_remote_start(rr->r);
	return ret;
}

/* After the engine and the source: COMPLETE (when ok), then tear down. */
static int remote_close(struct remote_rig *rr, bool ok)
{
	int ret = 0;

	if (ok && rr->r)
		ret = kf_remote_wait_complete(rr->r);
	kf_remote_destroy(rr->r);
	rr->r = NULL;
	if (rr->thread_started) {
		pthread_join(rr->thread, NULL);
		rr->thread_started = false;
		if (ok && !ret && rr->srv_ret)
			ret = kf_fail(EIO, "the page server failed");
	}
	kf_page_server_destroy(rr->srv);
	rr->srv = NULL;
	kf_mig_tls_free(rr->tls_server);
	kf_mig_tls_free(rr->tls_client);
	rr->tls_server = rr->tls_client = NULL;
	if (rr->lfd >= 0)
		close(rr->lfd);
	rr->lfd = -1;
	return ret;
}

/* A pushing source (remote) stops calling into the engine before it goes. */
static void teardown(struct kf_engine *e, struct kf_pagesrc *src,
		     struct kf_vm *vm)
{
	kf_pagesrc_stop_push(src);
	kf_engine_destroy(e);
	kf_pagesrc_destroy(src);
	kf_vm_destroy(vm);
}

static int make_source(uint64_t gpa, uint64_t size, struct kf_pagesrc **srcp)
{
	if (!strcmp(opt.source, "zero"))
		return kf_pagesrc_zero_create(gpa, size, srcp);
	if (!strcmp(opt.source, "memory"))
		return kf_pagesrc_memory_create(gpa, image, size, srcp);
	if (!strcmp(opt.source, "file"))
		return kf_pagesrc_rawfile_open(file_path, gpa, srcp);
	return kf_fail(EOPNOTSUPP, "page source '%s' is not available yet", opt.source);
}

static bool uses_memfd(enum kf_backend b)
{
	return b == KF_BACKEND_UFFD_MINOR || (b == KF_BACKEND_EXIT && opt.memfd_exit);
}

static int run_once(const struct config *c, struct result *res)
{
	uint64_t pages = opt.per_vcpu / KF_PAGE_SIZE;
	uint64_t total = pages * c->nr_vcpus, size = total * KF_PAGE_SIZE;
	unsigned int nr_uffds = c->mode == MODE_PER_VCPU ? c->nr_vcpus : 1;
	struct kf_vcpu_ops ops = { .sync = bench_sync };
	const struct kf_memslot *ms, *lat_ms;
	struct kf_pagesrc *src = NULL;
	struct kf_uffd_raw *raw = NULL;
	struct kf_engine *e = NULL;
	struct remote_rig rr = { .lfd = -1 };
	bool remote = false;
	struct kf_vm *vm;
	uint64_t first = UINT64_MAX, last = 0, i;
	double rate_sum = 0;
	unsigned int v;
	int ret;

	ret = kf_vm_create(&vm);
	if (ret)
		return ret;
	{
		struct kf_region r = {
			.gpa = kf_vm_free_gpa(vm), .size = size,
			.backing = uses_memfd(c->backend) ? KF_BACKING_MEMFD :
							      KF_BACKING_ANON,
			.guest_memfd = -1,
		};
		struct kf_region lr = {
			.gpa = KF_ALIGN_UP(r.gpa + size, 1ULL << 21),
			.size = KF_ALIGN_UP(total * 8, KF_PAGE_SIZE),
			.backing = KF_BACKING_ANON, .guest_memfd = -1,
		};

		ret = kf_vm_add_region(vm, &r, &ms);
		if (!ret)
			ret = kf_vm_add_region(vm, &lr, &lat_ms);
		if (ret)
			goto out;
		memset(lat_ms->hva, 0, lat_ms->size);	/* populate */
	}
	for (v = 0; v < c->nr_vcpus; v++) {
		struct kf_vcpu *vcpu;

		bench_walks[v] = (struct bench_walk){
			.gpa = ms->gpa + v * pages * KF_PAGE_SIZE,
			.pages = pages,
			.write = opt.write,
			.lat_gpa = lat_ms->gpa + v * pages * 8,
		};
		ret = kf_vcpu_add(vm, v, bench_guest, v, &vcpu);
		if (ret)
			goto out;
		sync_start[v] = sync_end[v] = 0;
	}
	ret = KF_SYNC_GLOBAL_TO_GUEST(vm, bench_walks);
	if (ret)
		goto out;

	if (c->raw) {
		struct kf_uffd_raw_config rc = {
			.hva = ms->hva, .size = size, .image = image,
			.minor = c->backend == KF_BACKEND_UFFD_MINOR,
			.memfd = ms->memfd, .nr_uffds = nr_uffds,
			.handlers = opt.handlers, .pin = opt.pin,
		};

		ret = kf_uffd_raw_start(&rc, &raw);
	} else {
		struct kf_engine_config ec = {
			.backend = c->backend, .nr_uffds = nr_uffds,
			.handler_threads = opt.handlers,
			.pin_handlers = opt.pin,
		};

		remote = !strcmp(opt.source, "remote");
		ret = remote ? remote_open(&rr, ms->gpa, size, &src) :
			       make_source(ms->gpa, size, &src);
		if (!ret)
			ret = kf_engine_create(vm, &ec, &e);
		if (!ret)
			ret = kf_engine_add_region(e, ms->slot, src);
		if (!ret)
			ret = kf_engine_start(e);
		ops.memory_fault = kf_engine_memory_fault;
		ops.interrupted = kf_engine_interrupted;
	}
	if (ret)
		goto out;

	ret = kf_vm_run_all(vm, &ops);
	if (ret) {
		if (e && kf_engine_error(e))
			kf_fail(-ret, "%s (engine: %s)", kf_error(), kf_engine_error(e));
		goto out;
	}

	memset(&lat_hist, 0, sizeof(lat_hist));
	for (i = 0; i < total; i++) {
		uint64_t cyc = ((uint64_t *)lat_ms->hva)[i];

		kf_hist_add(&lat_hist, (uint64_t)((double)cyc / tsc_per_ns));
	}
	for (v = 0; v < c->nr_vcpus; v++) {
		uint64_t d = sync_end[v] - sync_start[v];

		rate_sum += (double)pages * 1e9 / (double)(d ? d : 1);
		first = KF_MIN(first, sync_start[v]);
		last = KF_MAX(last, sync_end[v]);
	}
	res->per_vcpu_rate = rate_sum / c->nr_vcpus;
	res->total_rate = (double)total * 1e9 / (double)(last - first);
	res->p50_ns = kf_hist_percentile(&lat_hist, 50);
	res->p99_ns = kf_hist_percentile(&lat_hist, 99);
	res->max_ns = lat_hist.max_ns;
	res->has_svc = false;
	if (e) {
		kf_engine_stats(e, &estats);
		if (estats.total.faults != total) {
			ret = kf_fail(EPROTO, "the engine installed %llu pages, not %llu",
				      (unsigned long long)estats.total.faults,
				      (unsigned long long)total);
			goto out;
		}
		for (v = 0; v < c->nr_vcpus; v++)
			estats.vcpu[v].run_ns = sync_end[v] - sync_start[v];
		estats.total.run_ns = last - first;
		res->svc_p50_ns = kf_hist_percentile(&estats.total.latency, 50);
		res->svc_p99_ns = kf_hist_percentile(&estats.total.latency, 99);
		res->has_svc = true;
	} else if (kf_uffd_raw_faults(raw) != total) {
		ret = kf_fail(EPROTO, "the raw loop resolved %llu faults, not %llu",
			      (unsigned long long)kf_uffd_raw_faults(raw),
			      (unsigned long long)total);
	}
out:
	if (raw) {
		int r2 = kf_uffd_raw_stop(raw);

		if (!ret)
			ret = r2;
	}
	if (ret) {
		/* keep the message across the cleanup */
		char msg[600];

		snprintf(msg, sizeof(msg), "%s", kf_error());
		teardown(e, src, vm);
		if (remote)
			remote_close(&rr, false);
		return kf_fail(-ret, "%s", msg);
	}
	teardown(e, src, vm);
	if (remote)
		return remote_close(&rr, true);
	return 0;
}

static int cmp_result(const void *a, const void *b)
{
	const struct result *x = a, *y = b;

	return (x->total_rate > y->total_rate) - (x->total_rate < y->total_rate);
}

/* ------------------------------------------------------------- output */

struct row {
	struct config c;
	struct result r;
	double ratio;		/* raw rate / engine rate per vCPU (engine rows) */
};

static struct row rows[512];
static unsigned int nr_rows;
static FILE *csv, *json;

static const char *mode_name(enum bench_uffd_mode m)
{
	return m == MODE_PER_VCPU ? "per-vcpu" : "shared";
}

static void print_header(void)
{
	printf("%-12s %-8s %3s %5s %-6s %-6s %-5s %11s %11s %8s %8s %8s %8s %8s %7s\n",
	       "backend", "uffd", "thr", "vcpus", "source", "access", "impl",
	       "pages/s/vcpu", "pages/s", "p50_us", "p99_us", "max_us",
	       "svc50_us", "svc99_us", "cost");
	if (csv)
		fprintf(csv, "backend,uffd,handlers,vcpus,mem_per_vcpu,source,access,impl,pages_per_s_per_vcpu,pages_per_s,lat_p50_us,lat_p99_us,lat_max_us,svc_p50_us,svc_p99_us,engine_cost_vs_raw\n");
}

static void print_row(const struct row *w)
{
	const struct config *c = &w->c;
	const struct result *r = &w->r;
	char ratio[16] = "", svc50[16] = "-", svc99[16] = "-";

	if (w->ratio > 0)
		snprintf(ratio, sizeof(ratio), "%+.1f%%", (w->ratio - 1) * 100);
	if (r->has_svc) {
		snprintf(svc50, sizeof(svc50), "%.1f", r->svc_p50_ns / 1e3);
		snprintf(svc99, sizeof(svc99), "%.1f", r->svc_p99_ns / 1e3);
	}
	printf("%-12s %-8s %3u %5u %-6s %-6s %-5s %11.0f %11.0f %8.1f %8.1f %8.1f %8s %8s %7s\n",
	       kf_backend_name(c->backend),
	       c->backend == KF_BACKEND_EXIT ? "-" : mode_name(c->mode),
	       opt.handlers, c->nr_vcpus, c->raw ? "memory" : opt.source,
	       opt.write ? "write" : "read", c->raw ? "raw" : "engine",
	       r->per_vcpu_rate, r->total_rate, r->p50_ns / 1e3, r->p99_ns / 1e3,
	       r->max_ns / 1e3, svc50, svc99, ratio);
	fflush(stdout);
	if (csv)
		fprintf(csv, "%s,%s,%u,%u,%llu,%s,%s,%s,%.0f,%.0f,%.2f,%.2f,%.2f,%s,%s,%s\n",
			kf_backend_name(c->backend),
			c->backend == KF_BACKEND_EXIT ? "" : mode_name(c->mode),
			opt.handlers, c->nr_vcpus,
			(unsigned long long)opt.per_vcpu, c->raw ? "memory" : opt.source,
			opt.write ? "write" : "read", c->raw ? "raw" : "engine",
			r->per_vcpu_rate, r->total_rate, r->p50_ns / 1e3,
			r->p99_ns / 1e3, r->max_ns / 1e3,
			r->has_svc ? svc50 : "", r->has_svc ? svc99 : "",
			w->ratio > 0 ? ratio : "");
}

static int run_one(const struct config *c, struct result *res, unsigned int i)
{
	int ret = run_once(c, res);

	if (ret) {
		fprintf(stderr, "kvmfault bench: %s %s %u vCPUs (%s): %s\n",
			kf_backend_name(c->backend), mode_name(c->mode),
			c->nr_vcpus, c->raw ? "raw" : "engine", kf_error());
		return ret;
	}
	if (!c->raw && json) {
		fprintf(json, "{\"vcpus\": %u, \"uffd\": \"%s\", \"handlers\": %u, \"run\": %u, \"stats\": ",
			c->nr_vcpus, mode_name(c->mode), opt.handlers, i);
		kf_engine_stats_json(json, &estats);
		fputs("}\n", json);
	}
	return 0;
}

static struct row *add_row(const struct config *c, struct result *res,
			   unsigned int n)
{
	struct row *w = &rows[nr_rows++];

	qsort(res, n, sizeof(res[0]), cmp_result);
	w->c = *c;
	w->r = res[n / 2];
	return w;
}

/*
 * The engine, and with raw the raw loop, -r times each, interleaved so that
 * drifts of a shared machine hit both alike; medians by total pages/s.
 */
static int run_config(const struct config *c, bool raw)
{
	static struct result eng[32], base[32];
	unsigned int i, n = KF_MIN(opt.reps, KF_ARRAY_SIZE(eng));
	struct config rc = *c;
	struct row *we, *wr = NULL;
	int ret;

	rc.raw = true;
	if (nr_rows + 2 > KF_ARRAY_SIZE(rows))
		return kf_fail(ENOSPC, "too many rows");
	for (i = 0; i < n; i++) {
		if (raw && (ret = run_one(&rc, &base[i], i)))
			return ret;
		if ((ret = run_one(c, &eng[i], i)))
			return ret;
	}
	if (raw) {
		wr = add_row(&rc, base, n);
		wr->ratio = 0;
		print_row(wr);
	}
	we = add_row(c, eng, n);
	we->ratio = wr ? wr->r.per_vcpu_rate / we->r.per_vcpu_rate : 0;
	print_row(we);
	return 0;
}

static int plot(const char *png)
{
	FILE *g = popen("gnuplot", "w");
	unsigned int i, j, nseries = 0;
	char names[64][64];
	int ret;

	if (!g)
		return kf_fail_errno(errno, "cannot run gnuplot (apt-get install gnuplot-nox)");
	fprintf(g, "set terminal pngcairo size 900,560 noenhanced\n");
	fprintf(g, "set output '%s'\n", png);
	fprintf(g, "set title 'Demand paging, %llu MiB per vCPU, %s, %s source'\n",
		(unsigned long long)(opt.per_vcpu >> 20),
		opt.write ? "write" : "read", opt.source);
	fprintf(g, "set xlabel 'vCPUs'\nset ylabel 'pages/s (total)'\nset key left top\nset grid\n");
	fprintf(g, "set xtics 1\nset yrange [0:*]\n");
	/* one data block per (impl, backend, mode) */
	for (i = 0; i < nr_rows; i++) {
		char name[64];
		bool seen = false;

		snprintf(name, sizeof(name), "%s %s%s%s", rows[i].c.raw ? "raw" : "engine",
			 kf_backend_name(rows[i].c.backend),
			 rows[i].c.backend == KF_BACKEND_EXIT ? "" : " ",
			 rows[i].c.backend == KF_BACKEND_EXIT ? "" : mode_name(rows[i].c.mode));
		for (j = 0; j < nseries; j++)
			seen |= !strcmp(names[j], name);
		if (seen || nseries >= 64)
			continue;
		snprintf(names[nseries], sizeof(names[0]), "%s", name);
		fprintf(g, "$d%u << EOD\n", nseries);
		for (j = i; j < nr_rows; j++) {
			char n2[64];

			snprintf(n2, sizeof(n2), "%s %s%s%s", rows[j].c.raw ? "raw" : "engine",
				 kf_backend_name(rows[j].c.backend),
				 rows[j].c.backend == KF_BACKEND_EXIT ? "" : " ",
				 rows[j].c.backend == KF_BACKEND_EXIT ? "" : mode_name(rows[j].c.mode));
			if (!strcmp(n2, name))
				fprintf(g, "%u %.0f\n", rows[j].c.nr_vcpus, rows[j].r.total_rate);
		}
		fprintf(g, "EOD\n");
		nseries++;
	}
	fprintf(g, "plot ");
	for (j = 0; j < nseries; j++)
		fprintf(g, "%s$d%u using 1:2 with linespoints lw 2 title '%s'",
			j ? ", " : "", j, names[j]);
	fprintf(g, "\n");
	ret = pclose(g);
	if (ret)
		return kf_fail(EIO, "gnuplot failed (status %d)", ret);
	return 0;
}

/* ------------------------------------------------------------- main */

static int prepare_source(void)
{
	uint64_t max_vcpus = 0, i;
	unsigned int v;

	for (v = 0; v < opt.nr_vcpus; v++)
		max_vcpus = KF_MAX(max_vcpus, opt.vcpus[v]);
	image_size = max_vcpus * opt.per_vcpu;
	image = mmap(NULL, image_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (image == MAP_FAILED)
		return kf_fail_errno(errno, "image of %llu bytes",
				     (unsigned long long)image_size);
	for (i = 0; i < image_size / 8; i += 512)
		((uint64_t *)image)[i] = i * 0x9e3779b97f4a7c15ULL;
	if (!strcmp(opt.source, "file")) {
		int fd;

		snprintf(file_path, sizeof(file_path), "%s/kvmfault bench-XXXXXX",
			 opt.file_dir);
		fd = mkstemp(file_path);
		if (fd < 0)
			return kf_fail_errno(errno, "create %s", file_path);
		if (write(fd, image, image_size) != (ssize_t)image_size) {
			close(fd);
			return kf_fail(EIO, "write the image to %s", file_path);
		}
		close(fd);
	} else if (strcmp(opt.source, "memory") && strcmp(opt.source, "zero")) {
		if (!strcmp(opt.source, "remote"))
			return 0;	/* a page server of the image, per run */
		return kf_fail(EINVAL, "unknown page source '%s': use memory, file, zero or remote",
			       opt.source);
	}
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	const char *why;
	unsigned int b, m, v;
	int c, ret = 0, bad = 0;

	/* Its regions, raw loops and fault counts are in 4 KiB pages. */
	if (getpagesize() != (int)KF_PAGE_SIZE) {
		fprintf(stderr, "kvmfault bench: needs 4 KiB host pages (this host's are %d bytes)\n",
			getpagesize());
		return 1;
	}

	static const struct option longopts[] = {
		{ "pin", no_argument, NULL, 'P' },
		{ "plain", no_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};

	while (!bad && (c = getopt_long(argc, argv, "v:b:m:u:t:s:a:r:RMd:o:j:p:h",
					longopts, NULL)) != -1) {
		switch (c) {
		case 'P': opt.pin = true; break;
		case 'T': opt.plain = true; break;
		case 'v':
			if (parse_list(optarg, one_vcpus, NULL))
				return 2;
			break;
		case 'b':
			if (tool_size("bench", "-b", optarg, &opt.per_vcpu))
				return 2;
			if (opt.per_vcpu > (UINT64_MAX >> 2)) {
				fprintf(stderr, "kvmfault bench: bad -b '%s': too large\n",
					optarg);
				return 2;
			}
			opt.per_vcpu = KF_ALIGN_UP(opt.per_vcpu, KF_PAGE_SIZE);
			break;
		case 'm':
			if (parse_list(optarg, one_backend, NULL))
				return 2;
			break;
		case 'u':
			if (parse_list(optarg, one_mode, NULL))
				return 2;
			break;
		case 't':
			bad = tool_uint("bench", "-t", optarg, 1, 64, &opt.handlers);
			break;
		case 's':
			opt.source = optarg;
			break;
		case 'a':
			if (!strcmp(optarg, "write"))
				opt.write = true;
			else if (strcmp(optarg, "read")) {
				fprintf(stderr, "kvmfault bench: access is read or write\n");
				return 2;
			}
			break;
		case 'r':
			bad = tool_uint("bench", "-r", optarg, 1, 32, &opt.reps);
			break;
		case 'R': opt.raw = false; break;
		case 'M': opt.memfd_exit = true; break;
		case 'd': opt.file_dir = optarg; break;
		case 'o': opt.csv = optarg; break;
		case 'j': opt.json = optarg; break;
		case 'p': opt.plot = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (bad)
		return 2;
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	why = kf_kvm_unavailable_reason();
	if (why) {
		fprintf(stderr, "kvmfault bench: %s\n", why);
		return 1;
	}
	if (!opt.nr_vcpus) {
		opt.vcpus[opt.nr_vcpus++] = 1;
		opt.vcpus[opt.nr_vcpus++] = 2;
	}
	if (!opt.nr_backends) {
		if (!kf_backend_available(KF_BACKEND_EXIT, false))
			opt.backends[opt.nr_backends++] = KF_BACKEND_EXIT;
		opt.backends[opt.nr_backends++] = KF_BACKEND_UFFD_MISSING;
		opt.backends[opt.nr_backends++] = KF_BACKEND_UFFD_MINOR;
	}
	if (!opt.nr_modes) {
		opt.modes[opt.nr_modes++] = MODE_SHARED;
		opt.modes[opt.nr_modes++] = MODE_PER_VCPU;
	}
	for (b = 0; b < opt.nr_backends; b++) {
		enum kf_backend be = opt.backends[b];

		if (be == KF_BACKEND_AUTO) {
			be = !kf_backend_available(KF_BACKEND_EXIT, false) ?
			     KF_BACKEND_EXIT : KF_BACKEND_UFFD_MISSING;
			opt.backends[b] = be;
		}
		if (kf_backend_available(be, uses_memfd(be))) {
			fprintf(stderr, "kvmfault bench: backend %s: %s\n",
				kf_backend_name(be), kf_error());
			return 1;
		}
	}
	if (prepare_source()) {
		fprintf(stderr, "kvmfault bench: %s\n", kf_error());
		return 1;
	}
	if (opt.csv && !(csv = fopen(opt.csv, "w"))) {
		perror(opt.csv);
		return 1;
	}
	if (opt.json && !(json = fopen(opt.json, "w"))) {
		perror(opt.json);
		return 1;
	}
	calibrate_tsc();
	{
		/* warm up: the first VM of a process pays for page tables */
		struct config warm = { .backend = opt.backends[0], .nr_vcpus = 1 };
		struct result r;
		uint64_t saved = opt.per_vcpu;

		opt.per_vcpu = KF_MIN(opt.per_vcpu, 4ULL << 20);
		if (run_once(&warm, &r)) {
			fprintf(stderr, "kvmfault bench: %s\n", kf_error());
			return 1;
		}
		opt.per_vcpu = saved;
	}
	printf("# kvmfault bench: %llu MiB per vCPU, %s, %s source, %u handler thread(s) per uffd, median of %u run(s)%s\n",
	       (unsigned long long)(opt.per_vcpu >> 20), opt.write ? "write" : "read",
	       opt.source, opt.handlers, opt.reps,
	       opt.pin ? ", pinned: vCPU i and uffd i's handlers on CPU i mod nproc" : "");
	if (!strcmp(opt.source, "remote"))
		printf("# remote: engine rows fetch every page from a page server over loopback %s (network round trip included); raw rows copy from memory\n",
		       opt.plain ? "plain TCP" : "TLS");
	printf("# p50/p99/max: guest-timed touch latency; svc: engine's fault service time; cost: engine time per fault vs the raw loop\n");
	print_header();
	for (b = 0; b < opt.nr_backends && !ret; b++) {
		enum kf_backend be = opt.backends[b];

		for (m = 0; m < opt.nr_modes && !ret; m++) {
			if (be == KF_BACKEND_EXIT && m > 0)
				break;	/* no uffd on the fault path */
			for (v = 0; v < opt.nr_vcpus && !ret; v++) {
				struct config cfg = {
					.backend = be, .mode = opt.modes[m],
					.nr_vcpus = opt.vcpus[v],
				};
				ret = run_config(&cfg, opt.raw && be != KF_BACKEND_EXIT);
			}
		}
	}
	if (csv)
		fclose(csv);
	if (json)
		fclose(json);
	if (file_path[0])
		unlink(file_path);
	if (!ret && opt.plot) {
		ret = plot(opt.plot);
		if (ret)
			fprintf(stderr, "kvmfault bench: %s\n", kf_error());
		else
			printf("# plot: %s\n", opt.plot);
	}
	return ret ? 1 : 0;
}
