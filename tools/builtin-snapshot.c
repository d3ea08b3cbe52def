// SPDX-License-Identifier: MIT
/*
 * kvmfault snapshot: save a running guest to a snapshot file, and restore
 * it eagerly or lazily (pages come from the file on demand).
 *
 *   kvmfault snapshot save FILE [--vcpus N] [--pages N] [--run-ms MS]
 *   kvmfault snapshot restore FILE [--mode eager|lazy|prefetch|ws|both|all]
 *                     [--ws WSFILE] [--run-ms MS] [--backend B] [--json]
 *
 * The guest is the migration workload: each vCPU writes pages and keeps
 * their checksums in guest memory; after a restore it re-checks every page
 * inside the guest.  Guest code lives in the program image, so a snapshot
 * is restored by the same binary (kvmfault restore is this command).
 */
#include <getopt.h>
#include <limits.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kvmfault/vm_engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/snapshot.h>

#include "builtin.h"

static unsigned int filled, verified;
static uint64_t verified_pages;

static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	(void)vcpu;
	if (uc->args[0] == KF_WL_STAGE_FILLED)
		__atomic_fetch_add(&filled, 1, __ATOMIC_SEQ_CST);
	if (uc->args[0] == KF_WL_STAGE_VERIFIED) {
		__atomic_fetch_add(&verified, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&verified_pages, uc->args[1], __ATOMIC_SEQ_CST);
	}
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvmfault snapshot save FILE [--vcpus N] [--pages N] [--run-ms MS]\n"
		"       kvmfault snapshot restore FILE [--mode eager|lazy|prefetch|ws|both|all]\n"
		"                         [--ws WSFILE] [--run-ms MS]\n"
		"                         [--backend auto|exit|uffd-missing|uffd-minor] [--json]\n"
		"lazy pages guest memory in from the file on demand; prefetch does too\n"
		"and reads the rest in the background, in file order; ws prefetches the\n"
		"working set in WSFILE first, in the order the guest first touched it.\n"
		"A lazy restore with --ws records that order into WSFILE (mode 0600).\n"
		"both is eager and lazy; all is eager, lazy, prefetch and, with --ws, ws.\n"
		"Restore reports the time to the first guest instruction and the time\n"
		"until the workload has verified every page; it exits 0 only then.\n");
}

static int do_save(const char *path, unsigned int nv, uint64_t pages, int run_ms)
{
	static const struct kf_vcpu_ops ops = { .sync = on_sync };
	struct kf_workload_cfg wc = { .nr_vcpus = nv, .pages_per_vcpu = pages };
	struct kf_vcpu *vcpus[KF_MAX_VCPUS];
	struct kf_vm *vm;
	uint64_t bytes, t0;
	unsigned int i;
	int ret;

	ret = kf_vm_create(&vm);
	if (!ret)
		ret = kf_workload_setup(vm, &wc, KF_BACKING_ANON, 0, NULL, vcpus);
	for (i = 0; !ret && i < nv; i++)
		ret = kf_vcpu_start(vcpus[i], &ops);
	if (ret)
		goto fail;
	while (__atomic_load_n(&filled, __ATOMIC_SEQ_CST) < nv)
		usleep(1000);
	usleep(run_ms * 1000);
	t0 = kf_mig_now_ns();
	for (i = 0; i < nv; i++)
		kf_vcpu_stop(vcpus[i]);
	for (i = 0; i < nv; i++) {
		ret = kf_vcpu_join(vcpus[i]);
		if (ret && ret != -EINTR)
			goto fail;
	}
	ret = kf_snapshot_save(vm, vcpus, nv, NULL, path, &bytes);
	if (ret)
		goto fail;
	printf("saved %s: %u vCPUs, %.1f MiB of guest memory, file %.1f MiB, in %.1f ms\n",
	       path, nv, (kf_workload_region_size(&wc)) / 1048576.0,
	       bytes / 1048576.0, (kf_mig_now_ns() - t0) / 1e6);
	kf_vm_destroy(vm);
	return 0;
fail:
	fprintf(stderr, "kvmfault snapshot save: %s\n", kf_error());
	kf_vm_destroy(vm);
	return 1;
}

enum restore_mode { R_EAGER, R_LAZY, R_PREFETCH, R_WS };

static const char *const mode_name[] = {
	[R_EAGER] = "eager", [R_LAZY] = "lazy", [R_PREFETCH] = "prefetch",
	[R_WS] = "ws",
};

struct result {
	const char *mode;
	const char *backend;
	double first_ms, done_ms;
	uint64_t eager_pages, faults;
	uint64_t ws_pages;		/* recorded (lazy) or loaded (ws) */
	char error[1024];
};

/* Before the restore: load or start recording the working set. */
static int ws_before(struct kf_snapshot *snap, enum restore_mode m,
		     const char *ws)
{
	if (m == R_WS)
		return kf_snapshot_ws_load(snap, ws);
	if (m == R_LAZY && ws)
		return kf_snapshot_ws_record(snap);
	return 0;
}

static int do_restore_one(const char *path, enum restore_mode m, const char *ws,
			  int backend, int run_ms, struct result *res)
{
	bool lazy = m != R_EAGER, prefetch = m == R_PREFETCH || m == R_WS;
	struct kf_vcpu_ops ops = {
		.sync = on_sync,
		.memory_fault = kf_engine_memory_fault,
		.interrupted = kf_engine_interrupted,
	};
	struct kf_snapshot_restore rs = { .lazy = lazy, .prefetch = prefetch,
					  .backend = backend };
	struct kf_snapshot *snap = NULL;
	struct kf_engine_summary es;
	uint64_t t0 = kf_mig_now_ns(), recorded, loaded;
	unsigned int i;
	int ret, first = 0;

	memset(res, 0, sizeof(*res));
	res->mode = mode_name[m];
	verified = 0;
	verified_pages = 0;
	ret = kf_snapshot_open(path, &snap);
	if (!ret)
		ret = ws_before(snap, m, ws);
	if (!ret)
		ret = kf_snapshot_restore_vm(snap, &rs);
	for (i = 0; !ret && i < rs.nr_vcpus; i++)
		ret = kf_vcpu_start(rs.vcpus[i], &ops);
	if (ret) {
		snprintf(res->error, sizeof(res->error), "%s", kf_error());
		kf_snapshot_restore_free(&rs);
		kf_snapshot_close(snap);
		return ret;
	}
	res->first_ms = (kf_mig_now_ns() - t0) / 1e6;
	usleep(run_ms * 1000);
	kf_workload_stop(rs.vm);
	for (i = 0; i < rs.nr_vcpus; i++) {
		ret = kf_vcpu_join(rs.vcpus[i]);
		if (ret && !first) {
			first = ret;
			snprintf(res->error, sizeof(res->error), "%s",
				 kf_vcpu_errmsg(rs.vcpus[i]));
		}
	}
	res->done_ms = (kf_mig_now_ns() - t0) / 1e6;
	if (rs.engine) {
		if (kf_engine_error(rs.engine))
			snprintf(res->error, sizeof(res->error), "%s",
				 kf_engine_error(rs.engine));
		kf_engine_summary(rs.engine, &es);
		res->faults = es.total.faults;
		res->backend = es.backend;
	}
	res->eager_pages = rs.eager_pages;
	if (!first && verified != rs.nr_vcpus) {
		first = -EIO;
		snprintf(res->error, sizeof(res->error), "%u of %u vCPUs verified",
			 verified, rs.nr_vcpus);
	}
	kf_snapshot_restore_free(&rs);
	kf_snapshot_ws_count(snap, &recorded, &loaded);
	res->ws_pages = m == R_WS ? loaded : recorded;
	if (m == R_LAZY && ws && !first) {
		first = kf_snapshot_ws_save(snap, ws);
		if (first)
			snprintf(res->error, sizeof(res->error), "%s", kf_error());
	}
	kf_snapshot_close(snap);
	return first;
}

static int do_restore(const char *path, const char *mode, const char *ws,
		      int backend, int run_ms, bool json)
{
	bool all = !strcmp(mode, "all"), both = !strcmp(mode, "both");
	struct result res[4];
	int n = 0, i, ret = 0;

	if (all || both || !strcmp(mode, "eager"))
		ret |= do_restore_one(path, R_EAGER, ws, backend, run_ms, &res[n++]) != 0;
	if (all || both || !strcmp(mode, "lazy"))
		ret |= do_restore_one(path, R_LAZY, ws, backend, run_ms, &res[n++]) != 0;
	if (all || !strcmp(mode, "prefetch"))
		ret |= do_restore_one(path, R_PREFETCH, ws, backend, run_ms, &res[n++]) != 0;
	if ((all && ws) || !strcmp(mode, "ws"))
		ret |= do_restore_one(path, R_WS, ws, backend, run_ms, &res[n++]) != 0;
	for (i = 0; i < n; i++) {
		if (json) {
			printf("{\"mode\": \"%s\", \"ok\": %s, \"first_instruction_ms\": %.3f, \"workload_done_ms\": %.3f, \"eager_pages\": %" PRIu64 ", \"demand_faults\": %" PRIu64 ", \"working_set_pages\": %" PRIu64 ", \"backend\": \"%s\"}\n",
			       res[i].mode, res[i].error[0] ? "false" : "true",
			       res[i].first_ms, res[i].done_ms, res[i].eager_pages,
			       res[i].faults, res[i].ws_pages,
			       res[i].backend ? res[i].backend : "");
		} else {
			printf("restore %-8s: %s; first guest instruction after %.2f ms, workload verified every page after %.2f ms (%" PRIu64 " pages copied up front, %" PRIu64 " demand faults%s%s",
			       res[i].mode, res[i].error[0] ? "FAILED" : "ok",
			       res[i].first_ms, res[i].done_ms, res[i].eager_pages,
			       res[i].faults, res[i].backend ? ", backend " : "",
			       res[i].backend ? res[i].backend : "");
			if (res[i].ws_pages)
				printf(", working set of %" PRIu64 " pages %s", res[i].ws_pages,
				       !strcmp(res[i].mode, "ws") ? "prefetched first" : "recorded");
			printf(")\n");
		}
		if (res[i].error[0])
			fprintf(stderr, "kvmfault snapshot restore (%s): %s\n",
				res[i].mode, res[i].error);
	}
	return ret;
}

int cmd_snapshot(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vcpus", 1, NULL, 'v' }, { "pages", 1, NULL, 'p' },
		{ "run-ms", 1, NULL, 'r' }, { "mode", 1, NULL, 'm' },
		{ "backend", 1, NULL, 'b' }, { "json", 0, NULL, 'j' },
		{ "ws", 1, NULL, 'w' },
		{ "help", 0, NULL, 'h' }, { 0 },
	};
	const char *cmd, *path, *mode = "both", *backend = "auto", *ws = NULL;
	unsigned int nv = 2;
	uint64_t pages = 512;
	int run_ms = 50, c;
	bool json = false;
	enum kf_backend b;

	if (argc < 3) {
		usage(argc > 1 && !strcmp(argv[1], "--help") ? stdout : stderr);
		return argc > 1 && !strcmp(argv[1], "--help") ? 0 : 2;
	}
	cmd = argv[1];
	path = argv[2];
	optind = 3;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'v':
			if (tool_uint("snapshot", "--vcpus", optarg, 1,
				      KF_MAX_VCPUS, &nv))
				return 2;
			break;
		case 'p':
			if (tool_u64("snapshot", "--pages", optarg, 1,
				     UINT32_MAX, &pages))
				return 2;
			break;
		case 'r':
			if (tool_int("snapshot", "--run-ms", optarg, 0, INT_MAX,
				     &run_ms))
				return 2;
			break;
		case 'm': mode = optarg; break;
		case 'b': backend = optarg; break;
		case 'w': ws = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kvmfault snapshot: unexpected argument '%s'\n",
			argv[optind]);
		return 2;
	}
	if (strcmp(cmd, "save") && strcmp(cmd, "restore")) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "restore")) {
		if (strcmp(mode, "eager") && strcmp(mode, "lazy") && strcmp(mode, "prefetch") &&
		    strcmp(mode, "ws") && strcmp(mode, "both") && strcmp(mode, "all")) {
			fprintf(stderr, "kvmfault snapshot: --mode eager, lazy, prefetch, ws, both (eager and lazy) or all\n");
			return 2;
		}
		if (!strcmp(mode, "ws") && !ws) {
			fprintf(stderr, "kvmfault snapshot: --mode ws needs --ws WSFILE (recorded by a lazy restore with --ws)\n");
			return 2;
		}
		if (kf_backend_parse(backend, &b)) {
			fprintf(stderr, "kvmfault snapshot: %s\n", kf_error());
			return 2;
		}
	}
	if (kf_kvm_unavailable_reason()) {
		fprintf(stderr, "kvmfault snapshot: %s\n", kf_kvm_unavailable_reason());
		return 1;
	}
	if (!strcmp(cmd, "save"))
		return do_save(path, nv, pages, run_ms);
	return do_restore(path, mode, ws, b, run_ms, json);
}
