/* SPDX-License-Identifier: MIT */
/*
 * The fault engine: demand paging of guest memory from page sources, with
 * whichever delivery mechanism the kernel has.
 *
 *   kf_engine_create(vm, &cfg, &e);
 *   kf_engine_add_region(e, slot, src);     one page source per memslot
 *   kf_engine_start(e);                     handler threads, source pushes
 *   kf_vm_run_all(vm, kf_engine_vcpu_ops()); or your ops with
 *                                           .memory_fault = kf_engine_memory_fault
 *                                           .interrupted = kf_engine_interrupted
 *   kf_engine_stats(e, &stats);
 *   kf_engine_destroy(e);                   (sources stay the caller's:
 *                                           destroy them after the engine)
 *
 * Backends (per region; AUTO picks the first that fits):
 *   exit          KVM_MEM_EXIT_ON_MISSING (kvmfault kernel series): the vCPU
 *                 thread gets KVM_EXIT_MEMORY_FAULT, fetches the page and
 *                 installs it itself, then re-enters.  Needs
 *                 KVM_CAP_EXIT_ON_MISSING; ANON or MEMFD slots.
 *   uffd-minor    memfd (shmem) slots: the page is written once into the page
 *                 cache through a second mapping, then mapped with
 *                 UFFDIO_CONTINUE; guest memory is never held twice.
 *   uffd-missing  anonymous (or user) memory: UFFDIO_COPY / UFFDIO_ZEROPAGE.
 * The exit backend registers the slot with userfaultfd too: it installs
 * with UFFDIO_COPY / UFFDIO_CONTINUE from the vCPU thread, so the guest
 * never sees a half-written page, and a handler thread serves the faults
 * KVM takes outside a vCPU (or while the slot flag is off).
 *
 * Every page is installed exactly once: a per-page state (missing, busy,
 * installed, failed) is claimed with one compare-and-swap, whoever comes
 * first (a vCPU, a handler thread, a pushing source) installs, the rest
 * wait for it or let userfaultfd wake them.  A source error marks the page
 * failed, stops every vCPU of the VM and is reported by kf_engine_error();
 * the guest never sees a page the source did not give (a failed page is
 * made inaccessible, so a vCPU waiting on it leaves KVM_RUN with EFAULT).
 */
#ifndef KVMFAULT_ENGINE_H
#define KVMFAULT_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include <kvmfault/pagesrc.h>
#include <kvmfault/stats.h>
#include <kvmfault/vcpu.h>
#include <kvmfault/vm.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

enum kf_backend {
	KF_BACKEND_AUTO,
	KF_BACKEND_EXIT,
	KF_BACKEND_UFFD_MISSING,
	KF_BACKEND_UFFD_MINOR,
};

struct kf_engine_config {
	enum kf_backend backend;	/* AUTO or forced */
	/*
	 * userfaultfds per region: 0 or 1 is one shared uffd; N splits each
	 * region into N equal parts with a uffd each (one per vCPU when vCPU
	 * i works on part i, as in the selftests' demand_paging_test).
	 */
	unsigned int nr_uffds;
	unsigned int handler_threads;	/* threads per uffd; 0 means 1 */
	bool no_zeropage;	/* zero sources: copy zeros, not UFFDIO_ZEROPAGE */
	bool no_latency;	/* do not time faults (no clock reads) */
	/*
	 * Pin the handler threads of uffd i to CPU i mod nproc (with one uffd
	 * per vCPU and vCPU i pinned to the same CPU, a fault never crosses
	 * CPUs).
	 */
	bool pin_handlers;
};

const char *kf_backend_name(enum kf_backend b);
/* "auto", "exit", "uffd-missing", "uffd-minor"; -EINVAL with a message. */
int kf_backend_parse(const char *name, enum kf_backend *b);
/*
 * Whether backend b can serve a slot of this kind here (memfd: a MEMFD
 * slot, else anonymous memory): 0, or -errno with a message saying why not.
 */
int kf_backend_available(enum kf_backend b, bool memfd);

struct kf_engine;

int kf_engine_create(struct kf_vm *vm, const struct kf_engine_config *cfg,
		     struct kf_engine **ep);
/*
 * Serve memslot slot from src (borrowed; it must cover the slot).  The slot
 * must hold no pages yet (fresh ANON or MEMFD memory).  Call before
 * kf_engine_start().
 */
int kf_engine_add_region(struct kf_engine *e, uint32_t slot,
			 struct kf_pagesrc *src);
/* The backend a region got. */
enum kf_backend kf_engine_region_backend(struct kf_engine *e, uint32_t slot);
/* Start handler threads and sources that push. */
int kf_engine_start(struct kf_engine *e);
/* Stop handler threads (faults then wait until destroy). */
void kf_engine_stop(struct kf_engine *e);
/*
 * Detach pushing sources (kf_pagesrc_stop_push(): no source thread calls
 * into the engine after this), stop, unregister, free.  The VM and the
 * sources stay; a pushing source without stop_push must be stopped by its
 * owner before this.
 */
void kf_engine_destroy(struct kf_engine *e);

/* vCPU hooks: resolve an exit-backend fault on the vCPU thread; report an
 * engine failure when the vCPU was stopped for it. */
int kf_engine_memory_fault(struct kf_vcpu *vcpu,
			   const struct kf_memory_fault *fault);
int kf_engine_interrupted(struct kf_vcpu *vcpu);
/* Static ops with just those two hooks. */
const struct kf_vcpu_ops *kf_engine_vcpu_ops(void);

/* Install [gpa, gpa + len) now if missing (host-side prefetch). */
int kf_engine_fetch(struct kf_engine *e, uint64_t gpa, uint64_t len);
/* Whether the page holding gpa is installed. */
bool kf_engine_page_installed(struct kf_engine *e, uint64_t gpa);
/* Pages installed so far, over all regions. */
uint64_t kf_engine_installed_pages(struct kf_engine *e);

/*
 * Switch-off: every page of slot's region is installed, so the region no
 * longer needs the engine.  While vCPUs keep running, this clears
 * KVM_MEM_EXIT_ON_MISSING (exit backend, a flags-only memslot update) and
 * UFFDIO_UNREGISTERs the region (every backend); once every region is
 * complete the handler threads exit.  Later accesses are plain faults with
 * no userfaultfd or exit cost.  A vCPU exit already in flight for one of
 * these pages is still served (the page is populated, the vCPU re-enters).
 * 0 (switched now or before), -EBUSY when pages are still missing (nothing
 * changed), or -errno with a message.  Call from a host thread, not from a
 * vCPU hook or a page source.
 */
int kf_engine_region_complete(struct kf_engine *e, uint32_t slot);
/* Whether kf_engine_region_complete() switched slot's region off. */
bool kf_engine_region_is_complete(struct kf_engine *e, uint32_t slot);
/* When it did (CLOCK_MONOTONIC ns), or 0. */
uint64_t kf_engine_region_complete_ns(struct kf_engine *e, uint32_t slot);
/*
 * Whether the kernel has slot's memory registered with userfaultfd, read
 * from /proc/self/smaps (VmFlags um/ui) for the region's first page:
 * 1, 0, or -errno with a message.
 */
int kf_engine_region_uffd_registered(struct kf_engine *e, uint32_t slot);

/* The first failure's message, or NULL while all is well. */
const char *kf_engine_error(struct kf_engine *e);

/*
 * A copy of the statistics, histograms included (545 KB: keep it off the
 * stack; vCPU run_ns stays 0: the caller's).
 */
void kf_engine_stats(struct kf_engine *e, struct kf_engine_stats *s);
/* The numbers without the histograms, read in place (no big copy). */
void kf_engine_summary(struct kf_engine *e, struct kf_engine_summary *s);

KF_API_END

#endif
