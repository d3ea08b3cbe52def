/* SPDX-License-Identifier: MIT */
/*
 * The fault engine: demand paging of guest memory from page sources, with
 * whichever delivery mechanism the kernel has.  This is the core a VMM
 * embeds: it knows nothing of how the VMM made its VM, memslots and vCPUs.
 * The VMM describes each region (memslot, guest physical range, host
 * mapping, memfd) and fills a small table of host operations; it calls
 * kf_engine_fault() from its vCPU threads when KVM_RUN returns a memory
 * fault.  No global state: every call names its engine.
 *
 *   struct kf_engine_host host = { .opaque = vmm,
 *           .set_slot_flags = ..., .stop_vcpus = ... };
 *   kf_engine_new(&host, &cfg, &e);
 *   kf_engine_add_memory(e, &desc, src);    one page source per region
 *   kf_engine_start(e);                     handler threads, source pushes
 *   ... in each vCPU thread, after KVM_RUN:
 *   kf_exit_decode(ret, errno, run, &exit);
 *   if (exit.kind == KF_EXIT_MEMORY_FAULT)
 *           ret = kf_engine_fault(e, vcpu_index, &exit);   0: re-enter
 *   kf_engine_destroy(e);                   (sources stay the caller's:
 *                                           destroy them after the engine)
 * docs/vmm-guide.md and examples/minimal-vmm.c show a whole VMM.  The VM
 * layer's adapter (<kvmfault/vm_engine.h>) fills all of this for a kf_vm.
 *
 * Backends (per region; AUTO picks the first that fits):
 *   exit          KVM_MEM_EXIT_ON_MISSING (kvmfault kernel series): the vCPU
 *                 thread gets KVM_EXIT_MEMORY_FAULT, fetches the page and
 *                 installs it itself, then re-enters.  Needs
 *                 KVM_CAP_EXIT_ON_MISSING and host->set_slot_flags.
 *   uffd-minor    memfd (shmem) regions: the page is written once into the
 *                 page cache through a second mapping, then mapped with
 *                 UFFDIO_CONTINUE; guest memory is never held twice.
 *   uffd-missing  anonymous memory: UFFDIO_COPY / UFFDIO_ZEROPAGE.
 * The exit backend registers the region with userfaultfd too: it installs
 * with UFFDIO_COPY / UFFDIO_CONTINUE from the vCPU thread, so the guest
 * never sees a half-written page, and a handler thread serves the faults
 * KVM takes outside a vCPU (or while the slot flag is off).
 *
 * Every page is installed exactly once: a per-page state (missing, busy,
 * installed, failed) is claimed with one compare-and-swap, whoever comes
 * first (a vCPU, a handler thread, a pushing source) installs, the rest
 * wait for it or let userfaultfd wake them.  A source error marks the page
 * failed, calls host->stop_vcpus and is reported by kf_engine_error();
 * the guest never sees a page the source did not give (a failed page is
 * made inaccessible, so a vCPU waiting on it leaves KVM_RUN with EFAULT).
 */
#ifndef KVMFAULT_ENGINE_H
#define KVMFAULT_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <kvmfault/exit.h>
#include <kvmfault/limits.h>
#include <kvmfault/pagesrc.h>
#include <kvmfault/stats.h>

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
 * Only the exit backend needs KVM (-ENODEV without it); the userfaultfd
 * backends need only userfaultfd.
 */
int kf_backend_available(enum kf_backend b, bool memfd);

struct kf_engine;

/*
 * What the engine asks of the VMM.  opaque is passed to every hook; the
 * hooks may be called from any thread (a vCPU's, a handler's, a pushing
 * source's) and must not call back into the engine.
 */
struct kf_engine_host {
	void *opaque;
	/*
	 * Set memslot slot's KVM_MEM_* flags (KVM_SET_USER_MEMORY_REGION with
	 * KVM_MR_FLAGS_ONLY semantics: same range, new flags).  The exit
	 * backend turns KVM_MEM_EXIT_ON_MISSING on and off with it; without it
	 * only the userfaultfd backends are available.  0 or -errno.
	 */
	int (*set_slot_flags)(void *opaque, uint32_t slot, uint32_t flags);
	/*
	 * The engine failed (a page source error): make every vCPU leave
	 * KVM_RUN (immediate_exit and a signal) and not re-enter.  Optional.
	 */
	void (*stop_vcpus)(void *opaque);
	/*
	 * The vCPU index of thread tid, or -1 for a thread that is no vCPU;
	 * userfaultfd faults are counted per vCPU with it.  Optional: without
	 * it they count as "other".
	 */
	int (*vcpu_of_thread)(void *opaque, pid_t tid);
	/* How many vCPU indexes the statistics report.  Optional: without it,
	 * up to the highest index that faulted. */
	unsigned int (*nr_vcpus)(void *opaque);
	/*
	 * The engine no longer serves memslot slot (kf_engine_destroy()): the
	 * VMM may delete the memslot now.  Optional.
	 */
	void (*region_removed)(void *opaque, uint32_t slot);
	/* Called last by kf_engine_destroy(), after every region_removed.
	 * Optional. */
	void (*release)(void *opaque);
};

/* One region of guest memory, as the VMM has it. */
struct kf_engine_region_desc {
	uint32_t slot;		/* the KVM memslot (with its address space bits) */
	uint32_t flags;		/* the memslot's KVM_MEM_* flags now */
	uint64_t gpa;		/* guest physical start */
	uint64_t size;		/* bytes; a multiple of page_size */
	void *hva;		/* the memslot's userspace_addr */
	/*
	 * Shared memory: the memfd (shmem or hugetlbfs) whose range
	 * [memfd_offset, +size) is mapped MAP_SHARED at hva; -1 for private
	 * anonymous memory.  Borrowed, not closed.
	 */
	int memfd;
	uint64_t memfd_offset;
	/* The page size of hva's mapping; 0 means the host's page size (4,
	 * 16 or 64 KiB), more for hugetlbfs. */
	uint64_t page_size;
};

/* A new engine serving nothing yet; host is copied. */
int kf_engine_new(const struct kf_engine_host *host,
		  const struct kf_engine_config *cfg, struct kf_engine **ep);
/* The host operations e was made with. */
const struct kf_engine_host *kf_engine_host(struct kf_engine *e);
/*
 * Serve region d from src (borrowed; it must cover the region).  The
 * region must hold no pages yet (fresh anonymous or memfd memory), lie in
 * no other region and not be a guest_memfd slot.  Call before
 * kf_engine_start().
 */
int kf_engine_add_memory(struct kf_engine *e,
			 const struct kf_engine_region_desc *d,
			 struct kf_pagesrc *src);
/* The backend a region got. */
enum kf_backend kf_engine_region_backend(struct kf_engine *e, uint32_t slot);
/* Whether the engine serves memslot slot. */
bool kf_engine_serves(struct kf_engine *e, uint32_t slot);
/* Start handler threads and sources that push. */
int kf_engine_start(struct kf_engine *e);
/* Stop handler threads (faults then wait until destroy). */
void kf_engine_stop(struct kf_engine *e);
/*
 * Detach pushing sources (kf_pagesrc_stop_push(): no source thread calls
 * into the engine after this), stop, unregister, turn the exit backend's
 * slot flag off again, call host->region_removed for every region and
 * host->release, free.  The VM and the sources stay; a pushing source
 * without stop_push must be stopped by its owner before this.
 */
void kf_engine_destroy(struct kf_engine *e);

/*
 * The fault entry point: vCPU vcpu (its index, < KF_MAX_VCPUS for per-vCPU
 * statistics) left KVM_RUN with exit (kf_exit_decode()).  A memory fault
 * in the engine's regions is resolved on this thread: 0 means re-enter.
 * -EFAULT with a message for a fault outside every region, for an exit
 * that is no memory fault (the VMM handles those), and the engine's error
 * once it failed.
 */
int kf_engine_fault(struct kf_engine *e, unsigned int vcpu,
		    const struct kf_exit *exit);
/*
 * 0 while all is well; the engine's failure (-errno, with its message)
 * once a page source failed: a vCPU interrupted by host->stop_vcpus
 * reports this instead of re-entering.
 */
int kf_engine_check(struct kf_engine *e);

/* Install [gpa, gpa + len) now if missing (host-side prefetch). */
int kf_engine_fetch(struct kf_engine *e, uint64_t gpa, uint64_t len);
/* Whether the page holding gpa is installed. */
bool kf_engine_page_installed(struct kf_engine *e, uint64_t gpa);
/* Pages installed so far, over all regions, each region's pages of its
 * size (the host's: 4, 16 or 64 KiB; or huge pages). */
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
