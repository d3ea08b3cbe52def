// SPDX-License-Identifier: MIT
/* Whole post-copy migrations of the workload VM: source and destination. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kvmfault/vm_engine.h>
#include <kvmfault/error.h>
#include <kvmfault/migration.h>
#include <kvmfault/private_mem.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/remote.h>
#include <kvmfault/vcpu_state.h>

#include "../vm_internal.h"

static int kf_report_fail(struct kf_mig_report *rep, int ret)
{
	if (rep && !rep->error[0])
		snprintf(rep->error, sizeof(rep->error), "%s", kf_error());
	return ret;
}

/* ----------------------------------------------------------------- source */

/* An MTE VM's data regions go with their allocation tags (the system slot,
 * mapped untagged in the guest, without). */
static bool kf_src_tagged(struct kf_vm *vm, const struct kf_memslot *ms)
{
	return kf_vm_mte(vm) && ms->slot != KF_SYSTEM_SLOT;
}

/* The tags of guest memory, for the runner and the page server (opaque: the VM). */
static int kf_src_read_tags(void *opaque, uint64_t gpa, uint64_t len, uint8_t *tags)
{
	return kf_arch_copy_tags(opaque, gpa, len, tags, false);
}

/*
 * Send n pages of ms from page p.  A running guest may retag a page after
 * its tags were read: that store dirties the page, which the next round
 * sends again, as it does for data.
 */
static int kf_src_send(struct kf_vm *vm, struct kf_mig_conn *c,
		       const struct kf_memslot *ms, uint64_t p, uint64_t n,
		       enum kf_mig_page_cause cause)
{
	return kf_mig_send_pages_read_tags(c, ms->gpa + p * KF_PAGE_SIZE,
					   (const char *)ms->hva + p * KF_PAGE_SIZE,
					   n, cause,
					   kf_src_tagged(vm, ms) ? kf_src_read_tags : NULL,
					   vm);
}

static int kf_src_send_dirty(struct kf_vm *vm, struct kf_page_server *srv,
			     struct kf_mig_conn *c, const struct kf_memslot *ms,
			     const uint64_t *bm, enum kf_mig_page_cause cause,
			     uint64_t *sent)
{
	uint64_t p = 0, n = ms->size / KF_PAGE_SIZE;
	int ret;

	while (p < n) {
		uint64_t e;

		if (!(bm[p / 64] & (1ULL << (p % 64)))) {
			p++;
			continue;
		}
		for (e = p; e < n && (bm[e / 64] & (1ULL << (e % 64))); e++)
			;
		ret = kf_src_send(vm, c, ms, p, e - p, cause);
		if (ret)
			return ret;
		kf_page_server_count(srv, cause, e - p);
		*sent += e - p;
		p = e;
	}
	return 0;
}

static void kf_source_refused(void *opaque, const char *why)
{
	(void)opaque;
	fprintf(stderr, "kvmfault migrate source: refused a connection: %s\n", why);
}

static void kf_source_log(void *opaque, const char *msg)
{
	(void)opaque;
	fprintf(stderr, "kvmfault page server: %s\n", msg);
}

static void kf_dest_log(void *opaque, const char *msg)
{
	(void)opaque;
	fprintf(stderr, "kvmfault remote: %s\n", msg);
}

int kf_mig_source_run(struct kf_vm *vm, struct kf_vcpu **vcpus,
		      unsigned int nr_vcpus,
		      const struct kf_mig_source_config *cfg,
		      struct kf_mig_report *rep)
{
	struct kf_page_server_region regs[KF_MIG_MAX_REGIONS];
	const struct kf_memslot *slots[KF_MIG_MAX_REGIONS];
	uint64_t *bitmaps[KF_MIG_MAX_REGIONS] = { 0 };
	struct kf_page_server_config pc = {
		.regions = regs,
		.nr_vcpus = nr_vcpus,
		.tls = cfg->tls,
		.plain = cfg->plain,
		.on_refused = cfg->quiet ? NULL : kf_source_refused,
		.log = cfg->quiet ? NULL : kf_source_log,
		.no_push = cfg->no_push,
		.recover_timeout_ms = cfg->recover_timeout_ms,
		.drop_after_pages = cfg->drop_after_pages,
		.read_tags = kf_src_read_tags,
		.mte = kf_vm_mte(vm),
		.opaque = vm,
	};
	struct kf_mig_switchover sw = { 0 };
	struct kf_page_server *srv = NULL;
	struct kf_mig_conn *c;
	struct kf_mig_stats st;
	uint64_t t0, precopy_pages = 0;
	unsigned int i, n = 0, round, sys = KF_MIG_MAX_REGIONS;
	int ret;

	memset(rep, 0, sizeof(*rep));
	rep->nr_vcpus = nr_vcpus;
	rep->tls = cfg->tls;
	ret = kf_vm_check_no_private(vm, "migration");
	if (ret)
		return ret;
	for (i = 0; i < KF_MAX_SLOTS; i++) {
		const struct kf_memslot *ms = kf_vm_slot(vm, i);

		if (!ms)
			continue;
		if (n == KF_MIG_MAX_REGIONS)
			return kf_report_fail(rep, kf_fail(ENOSPC, "migration: too many memslots"));
		if (cfg->precopy_rounds && i != KF_SYSTEM_SLOT &&
		    !(ms->flags & KVM_MEM_LOG_DIRTY_PAGES))
			return kf_report_fail(rep, kf_fail(EINVAL, "migration: pre-copy needs dirty logging on slot %u", i));
		regs[n] = (struct kf_page_server_region){
			.gpa = ms->gpa, .size = ms->size, .hva = ms->hva,
			.slot_flags = ms->flags & ~(KVM_MEM_LOG_DIRTY_PAGES |
						    KVM_MEM_EXIT_ON_MISSING),
			.eager = i == KF_SYSTEM_SLOT,
			.tags = kf_src_tagged(vm, ms),
		};
		if (i != KF_SYSTEM_SLOT)
			rep->guest_bytes += ms->size;
		slots[n++] = ms;
	}
	pc.nr_regions = n;
	ret = kf_page_server_create(&pc, cfg->listen_fd, &srv);
	if (ret)
		return kf_report_fail(rep, ret);
	ret = kf_page_server_accept(srv, cfg->accept_timeout_ms > 0 ?
				    cfg->accept_timeout_ms : 60000);
	if (ret)
		goto out;
	c = kf_page_server_main(srv);
	t0 = kf_mig_now_ns();

	/*
	 * The system slot (program image, page tables, stacks) goes whole
	 * while the guest runs, with dirty logging on; the blackout then
	 * carries only the pages of it written since.
	 */
	for (i = 0; i < n; i++) {
		const struct kf_memslot *ms = slots[i];
		uint64_t np = ms->size / KF_PAGE_SIZE;

		if (ms->slot != KF_SYSTEM_SLOT)
			continue;
		sys = i;
		rep->system_pages = np;
		bitmaps[i] = calloc((np + 63) / 64, 8);
		if (!bitmaps[i]) {
			ret = kf_fail(ENOMEM, "out of memory");
			goto out;
		}
		ret = kf_vm_set_region_flags(vm, ms->slot, ms->flags | KVM_MEM_LOG_DIRTY_PAGES);
		if (!ret)
			ret = kf_mig_send_pages(c, ms->gpa, ms->hva, np, KF_MIG_CAUSE_PRECOPY);
		if (ret)
			goto out;
		kf_page_server_count(srv, KF_MIG_CAUSE_PRECOPY, np);
		kf_page_server_mark_sent(srv, ms->gpa, np);
	}

	/* Pre-copy: everything once, then what the guest dirtied meanwhile. */
	for (i = 0; i < n && cfg->precopy_rounds; i++) {
		if (slots[i]->slot == KF_SYSTEM_SLOT)
			continue;
		bitmaps[i] = calloc((slots[i]->size / KF_PAGE_SIZE + 63) / 64, 8);
		if (!bitmaps[i]) {
			ret = kf_fail(ENOMEM, "out of memory");
			goto out;
		}
		ret = kf_vm_get_dirty_log(vm, slots[i]->slot, bitmaps[i]);
		if (ret)
			goto out;
	}
	for (round = 1; round <= cfg->precopy_rounds; round++) {
		uint64_t sent = 0;

		for (i = 0; i < n; i++) {
			const struct kf_memslot *ms = slots[i];

			if (ms->slot == KF_SYSTEM_SLOT)
				continue;
			if (round == 1) {
				uint64_t np = ms->size / KF_PAGE_SIZE;

				ret = kf_src_send(vm, c, ms, 0, np, KF_MIG_CAUSE_PRECOPY);
				kf_page_server_count(srv, KF_MIG_CAUSE_PRECOPY, np);
				sent += np;
			} else {
				ret = kf_vm_get_dirty_log(vm, ms->slot, bitmaps[i]);
				if (!ret)
					ret = kf_src_send_dirty(vm, srv, c, ms, bitmaps[i],
								KF_MIG_CAUSE_PRECOPY,
								&sent);
			}
			if (ret)
				goto out;
		}
		precopy_pages += sent;
		if (!cfg->quiet)
			fprintf(stderr, "kvmfault-migrate: pre-copy round %u: %" PRIu64 " pages\n",
				round, sent);
	}

	/* The destination holds all that was sent: the blackout carries
	 * only what follows. */
	ret = kf_page_server_sync(srv);
	if (ret)
		goto out;

	/* Stop and copy: vCPUs, what is dirty is dropped at the destination. */
	for (i = 0; i < nr_vcpus; i++)
		kf_vcpu_stop(vcpus[i]);
	kf_page_server_mark_stopped(srv);
	sw.stop_realtime_ns = kf_mig_realtime_ns();
	for (i = 0; i < nr_vcpus; i++) {
		int r = kf_vcpu_join(vcpus[i]);

		if (r && r != -EINTR) {
			ret = r;
			goto out;
		}
	}
	for (i = 0; i < n; i++) {
		const struct kf_memslot *ms = slots[i];
		uint64_t p, np = ms->size / KF_PAGE_SIZE;

		if (ms->slot == KF_SYSTEM_SLOT || !cfg->precopy_rounds)
			continue;
		ret = kf_vm_get_dirty_log(vm, ms->slot, bitmaps[i]);
		if (ret)
			goto out;
		for (p = 0; p < np;) {
			struct kf_mig_range rg;
			uint64_t e;

			if (!(bitmaps[i][p / 64] & (1ULL << (p % 64)))) {
				kf_page_server_mark_sent(srv, ms->gpa + p * KF_PAGE_SIZE, 1);
				p++;
				continue;
			}
			for (e = p; e < np && (bitmaps[i][e / 64] & (1ULL << (e % 64))); e++)
				;
			rg.gpa = ms->gpa + p * KF_PAGE_SIZE;
			rg.npages = e - p;
			ret = kf_mig_send(c, KF_MIG_DISCARD, &rg, sizeof(rg), NULL, 0,
					  NULL, 0);
			if (ret)
				goto out;
			p = e;
		}
	}
	for (i = 0; i < nr_vcpus; i++) {
		struct kf_mig_vcpu_hdr vh = { .id = i };
		void *blob;
		size_t len;

		ret = kf_vcpu_state_save(vcpus[i], &blob, &len);
		if (ret)
			goto out;
		vh.len = (uint32_t)len;
		ret = kf_mig_send(c, KF_MIG_VCPU, &vh, sizeof(vh), blob, len, NULL, 0);
		free(blob);
		if (ret)
			goto out;
	}
	if (sys < n) {
		uint64_t resent = 0;

		ret = kf_vm_get_dirty_log(vm, slots[sys]->slot, bitmaps[sys]);
		if (!ret)
			ret = kf_src_send_dirty(vm, srv, c, slots[sys], bitmaps[sys],
						KF_MIG_CAUSE_STOPCOPY, &resent);
		if (ret)
			goto out;
	}
	for (i = 0; i < n; i++)
		if (slots[i]->slot != KF_SYSTEM_SLOT)
			sw.total_pages += slots[i]->size / KF_PAGE_SIZE;
	sw.precopy_pages = precopy_pages;
	sw.precopy_rounds = cfg->precopy_rounds;
	ret = kf_mig_send(c, KF_MIG_SWITCHOVER, &sw, sizeof(sw), NULL, 0, NULL, 0);
	if (ret)
		goto out;
	if (!cfg->quiet)
		fprintf(stderr, "kvmfault-migrate: switched over; serving post-copy\n");
	ret = kf_page_server_postcopy(srv);
	kf_page_server_stats(srv, &st);
	memcpy(rep->pages_by_cause, st.pages_by_cause, sizeof(rep->pages_by_cause));
	rep->downtime_ns = st.downtime_ns;
	rep->reconnects = st.reconnects;
	rep->precopy_rounds = cfg->precopy_rounds;
	rep->total_ns = kf_mig_now_ns() - t0;
	rep->ok = !ret;
out:
	for (i = 0; i < n; i++)
		free(bitmaps[i]);
	if (ret) {
		kf_report_fail(rep, ret);
		if (srv && kf_page_server_main(srv))
			kf_mig_send_text(kf_page_server_main(srv), KF_MIG_ERROR,
					 rep->error);
	}
	kf_page_server_destroy(srv);
	return ret;
}

/* ------------------------------------------------------------ destination */

struct kf_dest_ctx {
	unsigned int verified;
	uint64_t verified_pages;
};

static int kf_dest_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	struct kf_dest_ctx *ctx = kf_vcpu_opaque(vcpu);

	kf_workload_idle(uc);
	if (uc->args[0] == KF_WL_STAGE_VERIFIED && ctx) {
		__atomic_fetch_add(&ctx->verified, 1, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&ctx->verified_pages, uc->args[1], __ATOMIC_SEQ_CST);
	}
	return 0;
}

/* Write passes of every vCPU of the workload so far. */
/* How long the destination waits for guest progress after the switch. */
#define KF_DEST_PROGRESS_TIMEOUT_NS (30ULL * 1000000000ULL)

static uint64_t kf_dest_iterations(struct kf_vm *vm, unsigned int nv)
{
	struct kf_workload_ctl *ctl = kf_workload_ctl(vm);
	uint64_t n = 0;
	unsigned int i;

	for (i = 0; ctl && i < nv && i < KF_MAX_VCPUS; i++)
		n += ctl->iterations[i];
	return n;
}

static void kf_progress(uint64_t held, uint64_t total, bool final)
{
	int width = 40, fill = total ? (int)(held * width / total) : width;

	fprintf(stderr, "\r  post-copy [%.*s%*s] %3d%% %" PRIu64 "/%" PRIu64 " pages%s",
		fill, "########################################", width - fill, "",
		total ? (int)(held * 100 / total) : 100, held, total,
		final ? "\n" : "");
	fflush(stderr);
}

int kf_mig_dest_run(const struct kf_mig_dest_config *cfg,
		    struct kf_mig_report *rep)
{
	struct kf_remote_config rc = {
		.addr = cfg->addr,
		.tls = cfg->tls,
		.plain = cfg->plain,
		.connect_timeout_ms = cfg->connect_timeout_ms,
		.recover_timeout_ms = cfg->recover_timeout_ms,
		.push_streams = cfg->push_streams,
		.log = cfg->quiet ? NULL : kf_dest_log,
	};
	struct kf_engine_config ec = { .backend = (enum kf_backend)cfg->backend };
	struct kf_vcpu_ops ops = {
		.memory_fault = kf_engine_memory_fault,
		.interrupted = kf_engine_interrupted,
		.sync = kf_dest_sync,
	};
	struct kf_vcpu *vcpus[KF_MAX_VCPUS] = { 0 };
	struct kf_pagesrc *srcs[KF_MIG_MAX_REGIONS] = { 0 };
	struct kf_dest_ctx ctx = { 0 };
	struct kf_mig_switchover sw;
	struct kf_remote_stats rst;
	struct kf_engine *e = NULL;
	struct kf_remote *r = NULL;
	struct kf_vm *vm = NULL;
	uint64_t t0 = kf_mig_now_ns(), t_setup, t_resume, t_switch, held = 0, total = 0;
	uint64_t iter_at_switch, uffd_faults_at_switch;
	unsigned int i, nv;
	bool started = false, dropped = false, minor;
	int ret;

	memset(rep, 0, sizeof(*rep));
	rep->tls = cfg->tls;
	rep->push_streams = cfg->push_streams;
	minor = ec.backend == KF_BACKEND_UFFD_MINOR;
	ret = kf_remote_connect(&rc, &r);
	if (ret)
		return kf_report_fail(rep, ret);
	t_setup = kf_mig_now_ns();
	nv = kf_remote_nr_vcpus(r);
	rep->nr_vcpus = nv;
	ret = kf_vm_create(&vm);
	if (ret)
		goto out;
	/* Tagged regions: the engine tags each page in a memfd's page cache
	 * before the guest maps it. */
	if (kf_remote_mte(r)) {
		ret = kf_vm_enable_mte(vm);
		if (ret)
			goto out;
	}
	for (i = 0; i < kf_remote_nr_regions(r); i++) {
		const struct kf_mig_region *mr = kf_remote_region(r, i);
		struct kf_region reg = {
			.gpa = mr->gpa, .size = mr->size,
			.flags = mr->slot_flags & ~KVM_MEM_EXIT_ON_MISSING,
			.backing = minor || kf_remote_region_tags(r, i) ?
				   KF_BACKING_MEMFD : KF_BACKING_ANON,
			.guest_memfd = -1,
		};
		const struct kf_memslot *ms = kf_vm_find_slot(vm, mr->gpa);

		if (ms && ms->slot == KF_SYSTEM_SLOT) {
			ret = kf_vm_check_system_slot(ms, mr->gpa, mr->size, EPROTO,
						      "migration: the source's");
			if (ret)
				goto out;
			ret = kf_remote_set_eager(r, i, ms->hva);
			rep->system_pages = mr->size / KF_PAGE_SIZE;
		} else {
			ret = kf_vm_add_region(vm, &reg, NULL);
			rep->guest_bytes += mr->size;
		}
		if (ret)
			goto out;
	}
	ret = kf_workload_add_vcpus(vm, nv, vcpus);
	if (ret)
		goto out;
	ret = kf_remote_wait_switchover(r, &sw);
	if (ret)
		goto out;
	rep->precopy_rounds = sw.precopy_rounds;
	for (i = 0; i < nv; i++) {
		const void *blob;
		size_t len;

		ret = kf_remote_vcpu_state(r, i, &blob, &len);
		if (!ret)
			ret = kf_vcpu_state_restore(vcpus[i], blob, len);
		if (ret)
			goto out;
		kf_vcpu_set_opaque(vcpus[i], &ctx);
	}
	ret = kf_engine_create(vm, &ec, &e);
	if (ret)
		goto out;
	for (i = 0; i < kf_remote_nr_regions(r); i++) {
		const struct kf_mig_region *mr = kf_remote_region(r, i);
		const struct kf_memslot *ms = kf_vm_find_slot(vm, mr->gpa);

		if (ms->slot == KF_SYSTEM_SLOT)
			continue;
		ret = kf_remote_pagesrc(r, i, &srcs[i]);
		if (!ret)
			ret = kf_engine_add_region(e, ms->slot, srcs[i]);
		if (ret)
			goto out;
		rep->backend = kf_backend_name(kf_engine_region_backend(e, ms->slot));
	}
	ret = kf_remote_start(r);
	if (!ret)
		ret = kf_engine_start(e);
	if (ret)
		goto out;
	for (i = 0; i < nv; i++) {
		ret = kf_vcpu_start(vcpus[i], &ops);
		if (ret)
			goto out;
	}
	started = true;
	t_resume = kf_mig_now_ns();
	rep->downtime_ns = kf_mig_realtime_ns() - sw.stop_realtime_ns;
	kf_remote_resumed(r);
	if (cfg->on_resumed)
		cfg->on_resumed(cfg->opaque);

	/* Post-copy: until every page is here. */
	for (;;) {
		const char *err;

		kf_remote_progress(r, &held, &total);
		if (cfg->progress)
			kf_progress(held, total, false);
		if (held >= total)
			break;
		if ((err = kf_remote_error(r)) || (err = kf_engine_error(e))) {
			ret = kf_fail(ENOTCONN, "%s", err);
			goto out;
		}
		if (cfg->drop_after_ms && !dropped &&
		    kf_mig_now_ns() - t_resume >= cfg->drop_after_ms * 1000000ULL) {
			dropped = true;
			kf_remote_drop(r);
		}
		usleep(10000);
	}
	/*
	 * Every page is here; once the engine has installed them all it lets
	 * go of the regions while the guest runs on: plain faults from now.
	 */
	for (;;) {
		bool busy = false;

		for (i = 0; i < kf_remote_nr_regions(r); i++) {
			const struct kf_memslot *ms = kf_vm_find_slot(vm, kf_remote_region(r, i)->gpa);

			if (ms->slot == KF_SYSTEM_SLOT)
				continue;
			ret = kf_engine_region_complete(e, ms->slot);
			if (ret == -EBUSY) {
				kf_error_forget();	/* not yet: poll on */
				busy = true;
			}
			else if (ret)
				goto out;
		}
		ret = 0;
		if (!busy)
			break;
		if (kf_engine_error(e)) {
			ret = kf_fail(EIO, "%s", kf_engine_error(e));
			goto out;
		}
		usleep(1000);
	}
	t_switch = kf_mig_now_ns();
	rep->switched = true;
	rep->switch_ns = t_switch - t_resume;
	{
		struct kf_engine_summary es;

		kf_engine_summary(e, &es);
		uffd_faults_at_switch = es.uffd_faults;
	}
	iter_at_switch = kf_dest_iterations(vm, nv);
	rep->uffd_unregistered = true;
	for (i = 0; i < kf_remote_nr_regions(r); i++) {
		const struct kf_memslot *ms = kf_vm_find_slot(vm, kf_remote_region(r, i)->gpa);

		if (ms->slot != KF_SYSTEM_SLOT &&
		    kf_engine_region_uffd_registered(e, ms->slot) != 0)
			rep->uffd_unregistered = false;
	}
	ret = kf_remote_wait_complete(r);
	if (cfg->progress)
		kf_progress(held, total, true);
	if (ret)
		goto out;
	rep->migration_ns = kf_mig_now_ns() - t_setup;
	rep->postcopy_ns = kf_mig_now_ns() - t_resume;
	/* Run on for the times asked, and until the guest has made progress
	 * past the switch: a slow host (QEMU TCG) may need longer for that. */
	while (kf_mig_now_ns() - t_resume < cfg->run_ms * 1000000ULL ||
	       kf_mig_now_ns() - t_switch < cfg->run_after_switch_ms * 1000000ULL ||
	       (cfg->run_after_switch_ms &&
		kf_dest_iterations(vm, nv) == iter_at_switch &&
		kf_mig_now_ns() - t_switch < KF_DEST_PROGRESS_TIMEOUT_NS))
		usleep(5000);
	rep->run_after_switch_ns = kf_mig_now_ns() - t_switch;
	rep->iterations_after_switch = kf_dest_iterations(vm, nv) - iter_at_switch;
	{
		struct kf_engine_summary es;

		kf_engine_summary(e, &es);
		rep->uffd_faults_after_switch = es.uffd_faults - uffd_faults_at_switch;
	}

	/* The guest checks every page it wrote, inside the guest. */
	kf_workload_stop(vm);
	for (i = 0; i < nv; i++) {
		int r2 = kf_vcpu_join(vcpus[i]);

		if (r2 && !ret)
			ret = r2;
	}
	started = false;
	if (ret)
		goto out;
	if (ctx.verified != nv) {
		ret = kf_fail(EIO, "migration: %u of %u vCPUs verified their pages",
			      ctx.verified, nv);
		goto out;
	}
	rep->verified_pages = ctx.verified_pages;
	rep->ok = true;
out:
	if (ret)
		kf_report_fail(rep, ret);
	if (started) {
		for (i = 0; i < nv; i++)
			kf_vcpu_stop(vcpus[i]);
		for (i = 0; i < nv; i++)
			kf_vcpu_join(vcpus[i]);
	}
	if (e) {
		kf_engine_summary(e, &rep->engine);
		if (!rep->backend)
			rep->backend = rep->engine.backend;
	}
	if (r) {
		kf_remote_stats(r, &rst);
		memcpy(rep->pages_by_cause, rst.pages_by_cause,
		       sizeof(rep->pages_by_cause));
		rep->push_stream_pages = rst.push_stream_pages;
		rep->push_threads_lowered = rst.push_threads_lowered;
		rep->reconnects = rst.reconnects;
		rep->requests = rst.requests;
		rep->req_messages = rst.req_messages;
		if (ret && kf_remote_error(r) && !strstr(rep->error, "gone"))
			snprintf(rep->error, sizeof(rep->error), "%s", kf_remote_error(r));
	}
	rep->total_ns = kf_mig_now_ns() - t0;
	/* The remote's receivers push into the engine: detach them first.
	 * Every page is here: the engine lets go (uffd unregistered, the
	 * exit-on-missing flag cleared) before the VM goes. */
	for (i = 0; i < KF_MIG_MAX_REGIONS; i++)
		kf_pagesrc_stop_push(srcs[i]);
	kf_engine_destroy(e);
	for (i = 0; i < KF_MIG_MAX_REGIONS; i++)
		kf_pagesrc_destroy(srcs[i]);
	kf_remote_destroy(r);
	kf_vm_destroy(vm);
	return ret;
}

/* ---------------------------------------------------------------- reports */

static double kf_ms(uint64_t ns)
{
	return ns / 1e6;
}

void kf_mig_report_text(FILE *f, const struct kf_mig_report *rep)
{
	unsigned int i;

	fprintf(f, "migration: %s\n", rep->ok ? "SUCCESS: every page verified inside the guest" : "FAILED");
	if (!rep->ok && rep->error[0])
		fprintf(f, "  error:              %s\n", rep->error);
	fprintf(f, "  backend:            %s\n", rep->backend ? rep->backend : "-");
	fprintf(f, "  channel:            %s\n", rep->tls ? "TLS 1.3" : "plain TCP");
	fprintf(f, "  push streams:       %u%s\n", rep->push_streams,
		rep->push_streams ? "" : " (the push shares the main connection)");
	fprintf(f, "  vCPUs:              %u\n", rep->nr_vcpus);
	fprintf(f, "  guest data:         %.1f MiB\n", rep->guest_bytes / 1048576.0);
	fprintf(f, "  pre-copy rounds:    %u\n", rep->precopy_rounds);
	fprintf(f, "  downtime:           %.2f ms\n", kf_ms(rep->downtime_ns));
	fprintf(f, "  post-copy phase:    %.2f ms\n", kf_ms(rep->postcopy_ns));
	fprintf(f, "  migration:          %.2f ms (SETUP to every page here)\n", kf_ms(rep->migration_ns));
	fprintf(f, "  total time:         %.2f ms (destination start to guest verified)\n", kf_ms(rep->total_ns));
	if (rep->link.raw_bps > 0)
		fprintf(f, "  link:               %.0f MB/s raw, %.0f MB/s plain, %.0f MB/s TLS; migration %.2fx guest memory / raw link\n",
			rep->link.raw_bps / 1e6, rep->link.plain_bps / 1e6,
			rep->link.tls_bps / 1e6,
			kf_ms(rep->migration_ns) / (rep->guest_bytes / rep->link.raw_bps * 1e3));
	fprintf(f, "  pages by pre-copy:  %" PRIu64 " (of which the system slot %" PRIu64 ")\n",
		rep->pages_by_cause[KF_MIG_CAUSE_PRECOPY], rep->system_pages);
	fprintf(f, "  pages by stop-copy: %" PRIu64 " (system slot pages written since)\n",
		rep->pages_by_cause[KF_MIG_CAUSE_STOPCOPY]);
	fprintf(f, "  pages by demand:    %" PRIu64 " (%" PRIu64 " requests in %" PRIu64 " messages)\n",
		rep->pages_by_cause[KF_MIG_CAUSE_DEMAND], rep->requests, rep->req_messages);
	fprintf(f, "  pages by push:      %" PRIu64 " (%" PRIu64 " on push streams, received by %" PRIu64 " threads at lower priority)\n",
		rep->pages_by_cause[KF_MIG_CAUSE_PUSH], rep->push_stream_pages,
		rep->push_threads_lowered);
	fprintf(f, "  reconnects:         %" PRIu64 "\n", rep->reconnects);
	if (rep->switched)
		fprintf(f, "  switch-off:         normal faulting at %.2f ms after resume (uffd %s); guest ran %.2f ms more, %" PRIu64 " write passes, %" PRIu64 " userfaults\n",
			kf_ms(rep->switch_ns),
			rep->uffd_unregistered ? "unregistered" : "STILL REGISTERED",
			kf_ms(rep->run_after_switch_ns), rep->iterations_after_switch,
			rep->uffd_faults_after_switch);
	if (rep->verified_pages)
		fprintf(f, "  verified pages:     %" PRIu64 "\n", rep->verified_pages);
	if (rep->engine.nr_vcpus) {
		fprintf(f, "  fault latency per vCPU (us):   faults     p50     p90     p99     max\n");
		for (i = 0; i < rep->engine.nr_vcpus; i++) {
			const struct kf_fault_summary *s = &rep->engine.vcpu[i];

			fprintf(f, "    vCPU %-3u                   %8" PRIu64 " %7.1f %7.1f %7.1f %7.1f\n",
				i, s->faults, s->p50_ns / 1e3, s->p90_ns / 1e3,
				s->p99_ns / 1e3, s->max_ns / 1e3);
		}
		fprintf(f, "    other (host threads)       %8" PRIu64 "\n",
			rep->engine.other.faults);
	}
}

static void kf_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

void kf_mig_report_json(FILE *f, const struct kf_mig_report *rep)
{
	unsigned int i;

	fprintf(f, "{\"ok\": %s, \"error\": ", rep->ok ? "true" : "false");
	kf_json_str(f, rep->error);
	fprintf(f, ", \"backend\": ");
	kf_json_str(f, rep->backend ? rep->backend : "");
	fprintf(f, ", \"tls\": %s, \"push_streams\": %u, \"system_pages\": %" PRIu64,
		rep->tls ? "true" : "false", rep->push_streams, rep->system_pages);
	fprintf(f, ", \"migration_ms\": %.3f", kf_ms(rep->migration_ns));
	if (rep->link.raw_bps > 0)
		fprintf(f, ", \"link_mbps\": {\"raw\": %.0f, \"plain\": %.0f, \"tls\": %.0f}",
			rep->link.raw_bps / 1e6, rep->link.plain_bps / 1e6,
			rep->link.tls_bps / 1e6);
	fprintf(f, ", \"vcpus\": %u, \"guest_bytes\": %" PRIu64
		", \"precopy_rounds\": %u, \"downtime_ms\": %.3f, \"postcopy_ms\": %.3f"
		", \"total_ms\": %.3f, \"pages\": {\"precopy\": %" PRIu64
		", \"stopcopy\": %" PRIu64 ", \"demand\": %" PRIu64 ", \"push\": %" PRIu64
		"}, \"requests\": %" PRIu64 ", \"req_messages\": %" PRIu64
		", \"reconnects\": %" PRIu64 ", \"verified_pages\": %" PRIu64
		", \"switched\": %s, \"switch_ms\": %.3f, \"uffd_unregistered\": %s"
		", \"run_after_switch_ms\": %.3f, \"iterations_after_switch\": %" PRIu64
		", \"uffd_faults_after_switch\": %" PRIu64
		", \"fault_latency_us\": [",
		rep->nr_vcpus, rep->guest_bytes, rep->precopy_rounds,
		kf_ms(rep->downtime_ns), kf_ms(rep->postcopy_ns), kf_ms(rep->total_ns),
		rep->pages_by_cause[KF_MIG_CAUSE_PRECOPY],
		rep->pages_by_cause[KF_MIG_CAUSE_STOPCOPY],
		rep->pages_by_cause[KF_MIG_CAUSE_DEMAND],
		rep->pages_by_cause[KF_MIG_CAUSE_PUSH], rep->requests,
		rep->req_messages, rep->reconnects, rep->verified_pages,
		rep->switched ? "true" : "false", kf_ms(rep->switch_ns),
		rep->uffd_unregistered ? "true" : "false",
		kf_ms(rep->run_after_switch_ns), rep->iterations_after_switch,
		rep->uffd_faults_after_switch);
	for (i = 0; i < rep->engine.nr_vcpus; i++) {
		const struct kf_fault_summary *s = &rep->engine.vcpu[i];

		fprintf(f, "%s{\"vcpu\": %u, \"faults\": %" PRIu64 ", \"p50\": %.2f, \"p90\": %.2f, \"p99\": %.2f, \"max\": %.2f}",
			i ? ", " : "", i, s->faults, s->p50_ns / 1e3,
			s->p90_ns / 1e3, s->p99_ns / 1e3, s->max_ns / 1e3);
	}
	fprintf(f, "]}\n");
}
