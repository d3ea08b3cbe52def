// SPDX-License-Identifier: MIT
/*
 * The fault engine.  See include/kvmfault/engine.h for the model.
 *
 * Hot path, per fault: one compare-and-swap on the page's state byte, a
 * source read into a per-thread bounce buffer (or straight into the page
 * cache for memfd slots), one UFFDIO_* ioctl, and relaxed atomic adds on
 * the faulting vCPU's own counters.  No locks, no allocation.
 */
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <kvmfault/compiler.h>
#include <kvmfault/engine.h>
#include <kvmfault/error.h>
#include <kvmfault/kvm.h>
#include <kvmfault/uffd.h>

#include "internal.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define KF_MAX_UFFDS KF_MAX_VCPUS
#define KF_MAX_REGIONS KF_MAX_SLOTS
#define KF_MSG_BATCH 16

enum { KF_PG_MISSING, KF_PG_BUSY, KF_PG_INSTALLED, KF_PG_FAILED };

struct kf_engine;

struct kf_engine_region {
	struct kf_engine *e;
	uint32_t slot;
	uint32_t old_flags;	/* slot flags before the engine came */
	uint32_t flags;		/* slot flags now (under complete_lock) */
	uint64_t gpa;
	uint64_t size;
	uint64_t psize;		/* host page size */
	uint64_t pages;
	char *hva;
	char *alias;		/* memfd slots: the page-cache view */
	int memfd;
	uint64_t memfd_off;	/* where the region starts in the memfd */
	enum kf_backend backend;
	struct kf_pagesrc *src;
	bool pushing;		/* src->ops->start_push() succeeded */
	bool zero;		/* the source is all zeros */
	bool tags;		/* the source carries MTE tags (alias is PROT_MTE) */
	uint8_t *state;		/* KF_PG_* per page, padded to whole words */
	unsigned int waiters;	/* threads in kf_pg_wait() */
	bool complete;		/* switched off: unregistered, flag cleared */
	uint64_t complete_ns;	/* when (CLOCK_MONOTONIC) */
};

/*
 * What one vCPU (or all host threads, or all pushes) counted: written by
 * that vCPU only, on lines of its own, summed when read.
 */
struct kf_engine_slot {
	struct kf_fault_stats st;
	uint64_t installed;	/* pages this slot installed */
	uint64_t exit_faults;
	uint64_t uffd_faults;
	uint64_t region_installed[KF_MAX_REGIONS];
} __attribute__((aligned(64)));

#define KF_SLOT_OTHER KF_MAX_VCPUS	/* host threads, KVM outside vCPUs */
#define KF_SLOT_PUSH (KF_MAX_VCPUS + 1)	/* pushing sources */
#define KF_NR_SLOTS (KF_MAX_VCPUS + 2)

struct kf_engine_handler {
	struct kf_engine *e;
	unsigned int uffd;	/* index into e->uffd[] */
	pthread_t thread;
	bool started;
};

struct kf_engine {
	struct kf_engine_host host;
	unsigned int vcpus_seen;	/* highest vCPU index that faulted + 1 */
	struct kf_engine_config cfg;
	unsigned int nr_uffds;
	int uffd[KF_MAX_UFFDS];
	uint64_t uffd_features;
	int stopfd;
	bool started;
	pthread_mutex_t complete_lock;	/* kf_engine_region_complete() */

	unsigned int nr_regions;
	struct kf_engine_region regions[KF_MAX_REGIONS];

	unsigned int nr_handlers;
	struct kf_engine_handler *handlers;

	struct kf_engine_slot slots[KF_NR_SLOTS];
	uint64_t push_races;

	/* the first failure: errmsg is written before error is published */
	int failing;		/* claimed by the first kf_engine_fail() */
	int error;
	char errmsg[512];
};

static __thread uint8_t kf_bounce[KF_PAGE_SIZE] __attribute__((aligned(64)));
#define KF_MAX_TAGGED_PAGE (64ULL << 10)
static __thread uint8_t kf_tag_bounce[KF_MAX_TAGGED_PAGE / KF_MTE_GRANULE];

/* A bigger bounce buffer for pages above KF_PAGE_SIZE (hugetlb), one a
 * thread, made on first use and freed when the thread exits. */
static pthread_key_t kf_big_bounce_key;
static pthread_once_t kf_big_bounce_once = PTHREAD_ONCE_INIT;
static __thread void *kf_big_bounce;
static __thread uint64_t kf_big_bounce_size;

static void kf_big_bounce_init(void)
{
	pthread_key_create(&kf_big_bounce_key, free);
}

static void *kf_bounce_buf(uint64_t size)
{
	void *p;

	if (size <= KF_PAGE_SIZE)
		return kf_bounce;
	if (kf_big_bounce_size >= size)
		return kf_big_bounce;
	pthread_once(&kf_big_bounce_once, kf_big_bounce_init);
	if (posix_memalign(&p, KF_PAGE_SIZE, size)) {
		kf_fail(ENOMEM, "fault engine: a bounce buffer of %llu bytes",
			(unsigned long long)size);
		return NULL;
	}
	free(kf_big_bounce);
	kf_big_bounce = p;
	kf_big_bounce_size = size;
	pthread_setspecific(kf_big_bounce_key, p);
	return p;
}

const struct kf_engine_host *kf_engine_host(struct kf_engine *e)
{
	return &e->host;
}

bool kf_engine_serves(struct kf_engine *e, uint32_t slot)
{
	unsigned int i;

	for (i = 0; e && i < e->nr_regions; i++)
		if (e->regions[i].slot == slot)
			return true;
	return false;
}

/* --- backends --- */

static const char *const kf_backend_names[] = {
	[KF_BACKEND_AUTO] = "auto",
	[KF_BACKEND_EXIT] = "exit",
	[KF_BACKEND_UFFD_MISSING] = "uffd-missing",
	[KF_BACKEND_UFFD_MINOR] = "uffd-minor",
};

const char *kf_backend_name(enum kf_backend b)
{
	return (unsigned int)b < KF_ARRAY_SIZE(kf_backend_names) ?
	       kf_backend_names[b] : "?";
}

int kf_backend_parse(const char *name, enum kf_backend *b)
{
	unsigned int i;

	for (i = 0; i < KF_ARRAY_SIZE(kf_backend_names); i++) {
		if (!strcmp(name, kf_backend_names[i])) {
			*b = i;
			return 0;
		}
	}
	return kf_fail(EINVAL, "unknown backend '%s': use auto, exit, uffd-missing or uffd-minor",
		       name);
}

static uint64_t kf_backend_features(enum kf_backend b, bool memfd)
{
	if (!memfd)
		return 0;
	if (b == KF_BACKEND_UFFD_MISSING)
		return UFFD_FEATURE_MISSING_SHMEM;
	return UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM;
}

int kf_backend_available(enum kf_backend b, bool memfd)
{
	uint64_t need = kf_backend_features(b, memfd), have;
	const char *why;

	have = kf_uffd_features();
	if (!have)
		return kf_fail(EOPNOTSUPP, "userfaultfd is not available here");
	switch (b) {
	case KF_BACKEND_AUTO:
		return 0;
	case KF_BACKEND_EXIT:
		why = kf_kvm_unavailable_reason();
		if (why)
			return kf_fail(ENODEV, "%s", why);
		if (!kf_kvm_has_cap(KVM_CAP_EXIT_ON_MISSING))
			return kf_fail(EOPNOTSUPP, "backend exit needs KVM_CAP_EXIT_ON_MISSING (%d), which this kernel lacks (the kvmfault kernel series adds it)",
				       KVM_CAP_EXIT_ON_MISSING);
		break;
	case KF_BACKEND_UFFD_MINOR:
		if (!memfd)
			return kf_fail(EINVAL, "backend uffd-minor needs a memfd (shmem) slot, not anonymous memory");
		break;
	case KF_BACKEND_UFFD_MISSING:
		break;
	default:
		return kf_fail(EINVAL, "unknown backend %d", b);
	}
	if (need & ~have)
		return kf_fail(EOPNOTSUPP, "backend %s on %s memory needs userfaultfd features 0x%llx; the kernel offers 0x%llx",
			       kf_backend_name(b), memfd ? "memfd" : "anonymous",
			       (unsigned long long)need, (unsigned long long)have);
	return 0;
}

/* --- failures --- */

static void kf_engine_fail(struct kf_engine *e, int err, const char *msg)
{
	int zero = 0;

	if (!__atomic_compare_exchange_n(&e->failing, &zero, 1, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	snprintf(e->errmsg, sizeof(e->errmsg), "%s", msg);
	__atomic_store_n(&e->error, err ? err : EIO, __ATOMIC_SEQ_CST);
	/* Stop the VM: every vCPU leaves KVM_RUN. */
	if (e->host.stop_vcpus)
		e->host.stop_vcpus(e->host.opaque);
}

/* The published error (its message complete), or 0. */
static int kf_engine_err(struct kf_engine *e)
{
	return __atomic_load_n(&e->error, __ATOMIC_ACQUIRE);
}

const char *kf_engine_error(struct kf_engine *e)
{
	return kf_engine_err(e) ? e->errmsg : NULL;
}

/* --- installing pages --- */

static uint64_t kf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static struct kf_engine_region *kf_region_by_gpa(struct kf_engine *e,
						 uint64_t gpa)
{
	unsigned int i;

	for (i = 0; i < e->nr_regions; i++) {
		struct kf_engine_region *r = &e->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r;
	}
	return NULL;
}

static struct kf_engine_region *kf_region_by_hva(struct kf_engine *e,
						 uint64_t hva)
{
	unsigned int i;

	for (i = 0; i < e->nr_regions; i++) {
		struct kf_engine_region *r = &e->regions[i];

		if (hva >= (uintptr_t)r->hva && hva - (uintptr_t)r->hva < r->size)
			return r;
	}
	return NULL;
}

/* The uffd whose part of region r holds page idx. */
static int kf_region_uffd(struct kf_engine_region *r, uint64_t idx)
{
	struct kf_engine *e = r->e;
	unsigned int n = e->nr_uffds, i = idx * n / r->pages;

	while (i + 1 < n && r->pages * (i + 1) / n <= idx)
		i++;
	while (i > 0 && r->pages * i / n > idx)
		i--;
	return e->uffd[i];
}

static uint8_t kf_pg_load(struct kf_engine_region *r, uint64_t idx)
{
	return __atomic_load_n(&r->state[idx], __ATOMIC_ACQUIRE);
}

static bool kf_pg_claim(struct kf_engine_region *r, uint64_t idx)
{
	uint8_t missing = KF_PG_MISSING;

	return __atomic_compare_exchange_n(&r->state[idx], &missing, KF_PG_BUSY,
					   false, __ATOMIC_ACQ_REL,
					   __ATOMIC_ACQUIRE);
}

static uint32_t *kf_pg_word(struct kf_engine_region *r, uint64_t idx)
{
	return (uint32_t *)(r->state + KF_ALIGN_DOWN(idx, 4));
}

/*
 * Leave BUSY (to INSTALLED or FAILED) and wake the threads sleeping on the
 * page's state word.  Sequentially consistent with kf_pg_wait(): either
 * the installer sees the waiter counted, or the waiter's FUTEX_WAIT sees
 * the new state.
 */
static void kf_pg_publish(struct kf_engine_region *r, uint64_t idx,
			  uint8_t state)
{
	__atomic_store_n(&r->state[idx], state, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->waiters, __ATOMIC_SEQ_CST))
		syscall(SYS_futex, kf_pg_word(r, idx), FUTEX_WAKE_PRIVATE,
			INT_MAX, NULL, NULL, 0);
}

/* Sleep while the page is BUSY (the timeout only bounds a lost wake-up). */
static void kf_pg_wait(struct kf_engine_region *r, uint64_t idx)
{
	struct timespec ts = { .tv_sec = 1 };
	uint32_t *word = kf_pg_word(r, idx);
	uint32_t seen;

	__atomic_fetch_add(&r->waiters, 1, __ATOMIC_SEQ_CST);
	seen = __atomic_load_n(word, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&r->state[idx], __ATOMIC_SEQ_CST) == KF_PG_BUSY)
		syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
	__atomic_fetch_sub(&r->waiters, 1, __ATOMIC_SEQ_CST);
}

/*
 * Put the page's bytes in place and map it, for a page this thread claimed.
 * data: the bytes (a push), or NULL to read the source; tags: a push's
 * allocation tags (tagged regions, which read both from the source).
 */
static int kf_install(struct kf_engine_region *r, uint64_t idx, bool write,
		      const void *data, const void *tags, bool *zero)
{
	uint64_t ps = r->psize, off = idx * ps, gpa = r->gpa + off;
	char *dst = r->hva + off;
	int uffd = kf_region_uffd(r, idx), ret;
	void *buf;

	*zero = false;
	if (r->alias) {
		/* memfd, minor faults: write the page cache once, map it. */
		if (data) {
			memcpy(r->alias + off, data, ps);
		} else if (r->zero) {
			*zero = true;
			if (fallocate(r->memfd, 0, r->memfd_off + off, ps))
				memset(r->alias + off, 0, ps);
		} else if (r->tags) {
			ret = r->src->ops->read_tagged(r->src, gpa, r->alias + off,
						       kf_tag_bounce, ps);
			if (ret)
				return ret;
			tags = kf_tag_bounce;
		} else {
			ret = kf_pagesrc_read(r->src, gpa, r->alias + off, ps);
			if (ret)
				return ret;
		}
		/* Tagged before it is mapped: no vCPU sees it untagged. */
		if (r->tags) {
			ret = kf_mte_store_tags(r->alias + off, tags, ps);
			if (ret)
				return ret;
		}
		ret = kf_uffd_continue(uffd, dst, ps);
	} else if (data) {
		ret = kf_uffd_copy(uffd, dst, data, ps);
	} else if (r->zero) {
		*zero = true;
		/* The exit backend's KVM treats the shared zero page as not
		 * mapped (it exits for it): give it a page of its own.
		 * (UFFDIO_ZEROPAGE has no huge pages.) */
		if (ps > kf_host_page_size() || write || r->e->cfg.no_zeropage ||
		    r->backend == KF_BACKEND_EXIT) {
			const void *zeros = kf_zero_page;

			if (ps > sizeof(kf_zero_pages)) {
				buf = kf_bounce_buf(ps);
				if (!buf)
					return -ENOMEM;
				memset(buf, 0, ps);
				zeros = buf;
			}
			ret = kf_uffd_copy(uffd, dst, zeros, ps);
		} else {
			ret = kf_uffd_zeropage(uffd, dst, ps);
		}
	} else {
		buf = kf_bounce_buf(ps);
		if (!buf)
			return -ENOMEM;
		ret = kf_pagesrc_read(r->src, gpa, buf, ps);
		if (ret)
			return ret;
		ret = kf_uffd_copy(uffd, dst, buf, ps);
	}
	/* EEXIST (no message): mapped already, by nobody the engine knows;
	 * keep it. */
	return ret == -EEXIST ? 0 : ret;
}

/* A page whose source failed: make it inaccessible and wake its waiters,
 * who then leave KVM_RUN with EFAULT instead of seeing wrong bytes. */
static int kf_fail_page(struct kf_engine_region *r, uint64_t idx, int err)
{
	struct kf_engine *e = r->e;
	char *dst = r->hva + idx * r->psize;
	char msg[512], why[128] = "";
	int ret = 0;

	/* Without it a woken waiter faults again and nobody answers. */
	if (mprotect(dst, r->psize, PROT_NONE)) {
		ret = -errno;
		snprintf(why, sizeof(why), "the page cannot be made inaccessible (mprotect: %s), threads touching it may block; ",
			 strerror(-ret));
	}
	snprintf(msg, sizeof(msg), "%spage source %s failed for gpa 0x%llx (slot %u): %s",
		 why, r->src->kind,
		 (unsigned long long)(r->gpa + idx * r->psize), r->slot,
		 kf_error());
	kf_pg_publish(r, idx, KF_PG_FAILED);
	kf_engine_fail(e, err, msg);
	if (ret)
		return kf_fail(-ret, "%s", msg);
	ret = kf_uffd_wake(kf_region_uffd(r, idx), dst, r->psize);
	if (ret)
		return kf_fail(-ret, "%s; %s", msg, kf_error());
	return 0;
}

static int kf_page_failed(struct kf_engine_region *r, uint64_t idx)
{
	struct kf_engine *e = r->e;
	int err = kf_engine_err(e);

	return kf_fail(err ? err : EIO, "gpa 0x%llx: %s",
		       (unsigned long long)(r->gpa + idx * r->psize),
		       err ? e->errmsg : "the page source failed");
}

/* Counted after the page's state became INSTALLED (see region_complete). */
static void kf_count_install(struct kf_engine_region *r,
			     struct kf_engine_slot *sl)
{
	__atomic_fetch_add(&sl->region_installed[r - r->e->regions], 1,
			   __ATOMIC_RELEASE);
	__atomic_fetch_add(&sl->installed, 1, __ATOMIC_RELAXED);
}

static uint64_t kf_region_installed(struct kf_engine_region *r)
{
	uint64_t n = 0;
	unsigned int i;

	for (i = 0; i < KF_NR_SLOTS; i++)
		n += __atomic_load_n(&r->e->slots[i].region_installed[r - r->e->regions],
				     __ATOMIC_ACQUIRE);
	return n;
}

enum kf_who {
	KF_WHO_UFFD,	/* a handler thread: never waits */
	KF_WHO_VCPU,	/* the faulting vCPU: waits, then makes it mapped */
	KF_WHO_HOST,	/* a host-side fetch: waits for a busy page */
};

/* A page fault was seen: install the page if nobody has. */
static int kf_resolve(struct kf_engine_region *r, uint64_t idx, bool write,
		      struct kf_engine_slot *sl, uint64_t t0, enum kf_who who)
{
	struct kf_fault_stats *st = &sl->st;
	char *dst = r->hva + idx * r->psize;
	bool zero;
	int ret;

	for (;;) {
		uint8_t s = kf_pg_load(r, idx);

		if (s == KF_PG_MISSING && kf_pg_claim(r, idx)) {
			ret = kf_install(r, idx, write, NULL, NULL, &zero);
			if (ret) {
				__atomic_fetch_add(&st->errors, 1, __ATOMIC_RELAXED);
				ret = kf_fail_page(r, idx, -ret);
				return ret ? ret : kf_page_failed(r, idx);
			}
			kf_pg_publish(r, idx, KF_PG_INSTALLED);
			kf_count_install(r, sl);
			__atomic_fetch_add(&st->faults, 1, __ATOMIC_RELAXED);
			__atomic_fetch_add(&st->bytes, r->psize, __ATOMIC_RELAXED);
			if (zero)
				__atomic_fetch_add(&st->zero_pages, 1, __ATOMIC_RELAXED);
			if (t0)
				kf_hist_add(&st->latency, kf_now_ns() - t0);
			return 0;
		}
		if (s == KF_PG_MISSING)
			continue;	/* lost the race: look again */
		if (s == KF_PG_FAILED)
			return kf_page_failed(r, idx);
		if (s == KF_PG_BUSY) {
			/* Someone else installs it; their UFFDIO_* wakes
			 * userfaultfd waiters, a vCPU waits and re-enters. */
			if (who == KF_WHO_UFFD) {
				__atomic_fetch_add(&st->spurious, 1, __ATOMIC_RELAXED);
				return 0;
			}
			kf_pg_wait(r, idx);
			continue;
		}
		/* Installed: a fault that raced the install, or a write to a
		 * page mapped read-only (a zero page). */
		if (who == KF_WHO_HOST)
			return 0;
		__atomic_fetch_add(&st->spurious, 1, __ATOMIC_RELAXED);
		if (who == KF_WHO_UFFD)
			return kf_uffd_wake(kf_region_uffd(r, idx), dst, r->psize);
		if (r->alias && !__atomic_load_n(&r->complete, __ATOMIC_ACQUIRE)) {
			ret = kf_uffd_continue(kf_region_uffd(r, idx), dst,
					       r->psize);
			/* ENOENT: switched off meanwhile (unregistered);
			 * the page is in the page cache, populate maps it */
			if (ret == -ENOENT)
				kf_error_forget();
			if (ret == -ENOENT || ret == -EEXIST)
				ret = 0;
			if (ret)
				return ret;
		}
		/*
		 * The fault raced the install, or hit a page mapped read-only
		 * (a zero page), which KVM's exit-on-missing treats as not
		 * mapped: make it mapped and writable in this process.
		 * Kernels without madvise (tiny configs) get a write that
		 * keeps the value (atomic, so a racing guest write survives).
		 */
		(void)write;
		if (madvise(dst, r->psize, MADV_POPULATE_WRITE))
			__atomic_fetch_add((uint64_t *)dst, 0, __ATOMIC_RELAXED);
		return 0;
	}
}

/* The statistics of vCPU index vcpu (beyond them: "other"). */
static struct kf_engine_slot *kf_vcpu_slot(struct kf_engine *e, int vcpu)
{
	unsigned int seen;

	if (vcpu < 0 || vcpu >= KF_MAX_VCPUS)
		return &e->slots[KF_SLOT_OTHER];
	seen = __atomic_load_n(&e->vcpus_seen, __ATOMIC_RELAXED);
	while (seen < (unsigned int)vcpu + 1 &&
	       !__atomic_compare_exchange_n(&e->vcpus_seen, &seen, vcpu + 1,
					    true, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		;
	return &e->slots[vcpu];
}

/* --- the exit backend: the vCPU thread resolves its own fault --- */

int kf_engine_fault(struct kf_engine *e, unsigned int vcpu,
		    const struct kf_exit *exit)
{
	const struct kf_memory_fault *f = &exit->fault;
	uint64_t t0, gpa, end;
	struct kf_engine_slot *sl;
	int ret;

	if (!e)
		return kf_fail(EFAULT, "memory fault: no fault engine");
	if (exit->kind != KF_EXIT_MEMORY_FAULT) {
		char buf[160];

		return kf_fail(EFAULT, "fault engine: vCPU %u: %s is no memory fault",
			       vcpu, kf_exit_str(exit, buf, sizeof(buf)));
	}
	if (kf_engine_err(e))
		return kf_fail(e->error, "%s", e->errmsg);
	t0 = e->cfg.no_latency ? 0 : kf_now_ns();
	sl = kf_vcpu_slot(e, vcpu < KF_MAX_VCPUS ? (int)vcpu : -1);
	__atomic_fetch_add(&sl->exit_faults, 1, __ATOMIC_RELAXED);
	gpa = f->gpa;
	end = f->gpa + (f->size ? f->size : 1);
	while (gpa < end) {
		struct kf_engine_region *r = kf_region_by_gpa(e, gpa);
		uint64_t idx;

		if (!r)
			return kf_fail(EFAULT, "memory fault at gpa 0x%llx: not in any region the engine serves",
				       (unsigned long long)gpa);
		idx = (gpa - r->gpa) / r->psize;
		ret = kf_resolve(r, idx, f->access & KF_ACCESS_WRITE, sl, t0,
				 KF_WHO_VCPU);
		if (ret)
			return ret;
		gpa = r->gpa + (idx + 1) * r->psize;
	}
	return 0;
}

int kf_engine_check(struct kf_engine *e)
{
	if (e && kf_engine_err(e))
		return kf_fail(e->error, "stopped: %s", e->errmsg);
	return 0;
}

/* --- userfaultfd handler threads --- */

static void kf_handle_uffd_msg(struct kf_engine *e, const struct uffd_msg *m)
{
	uint64_t t0 = e->cfg.no_latency ? 0 : kf_now_ns();
	uint64_t addr = m->arg.pagefault.address;
	struct kf_engine_region *r = kf_region_by_hva(e, addr);
	struct kf_engine_slot *sl;

	sl = &e->slots[KF_SLOT_OTHER];
	if (e->host.vcpu_of_thread && m->arg.pagefault.feat.ptid)
		sl = kf_vcpu_slot(e, e->host.vcpu_of_thread(e->host.opaque,
					(pid_t)m->arg.pagefault.feat.ptid));
	__atomic_fetch_add(&sl->uffd_faults, 1, __ATOMIC_RELAXED);
	if (!r) {
		char msg[128];

		snprintf(msg, sizeof(msg), "userfault at %p outside every engine region",
			 (void *)(uintptr_t)addr);
		kf_engine_fail(e, EFAULT, msg);
		return;
	}
	kf_resolve(r, (addr - (uintptr_t)r->hva) / r->psize,
		   m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE, sl, t0,
		   KF_WHO_UFFD);
}

static void *kf_engine_handler(void *arg)
{
	struct kf_engine_handler *h = arg;
	struct kf_engine *e = h->e;
	int uffd = e->uffd[h->uffd];
	struct pollfd pfd[2] = {
		{ .fd = uffd, .events = POLLIN },
		{ .fd = e->stopfd, .events = POLLIN },
	};
	struct uffd_msg msgs[KF_MSG_BATCH];

	for (;;) {
		ssize_t n, i;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			kf_engine_fail(e, errno, "poll on userfaultfd failed");
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[0].revents & (POLLERR | POLLHUP)) {
			kf_engine_fail(e, EIO, "userfaultfd reported an error");
			break;
		}
		n = read(uffd, msgs, sizeof(msgs));
		if (n <= 0)
			continue;	/* EAGAIN: another handler took them */
		for (i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++)
			if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
				kf_handle_uffd_msg(e, &msgs[i]);
	}
	return NULL;
}

/* --- pushed pages --- */

/*
 * Install claimed pages [idx, idx + n) of userfaultfd uffd with one ioctl;
 * *done: how many of them, from idx, are in place.  Anything but success
 * (a page mapped meanwhile by someone else, an error) goes page by page,
 * which finds the page it was; a failed page is FAILED on return.  A memfd
 * run whose bytes are in the page cache already is only mapped then: the
 * failed UFFDIO_CONTINUE may have mapped some of it, which the guest may
 * be writing, and must not be written again.
 */
static int kf_install_run(struct kf_engine_region *r, int uffd, uint64_t idx,
			  uint64_t n, const char *data, const uint8_t *tags,
			  uint64_t *done)
{
	uint64_t ps = r->psize, len = n * ps, off = idx * ps, i;
	bool zero, in_cache = false;
	int ret;

	*done = 0;
	if (n > 1) {
		if (r->alias) {
			memcpy(r->alias + off, data, len);
			ret = r->tags ? kf_mte_store_tags(r->alias + off, tags, len) : 0;
			in_cache = !ret;
			if (!ret)
				ret = kf_uffd_continue(uffd, r->hva + off, len);
		} else {
			ret = kf_uffd_copy(uffd, r->hva + off, data, len);
		}
		if (!ret) {
			*done = n;
			return 0;
		}
		if (ret != -EEXIST)
			kf_error_forget();
	}
	for (i = 0; i < n; i++) {
		if (in_cache) {
			ret = kf_uffd_continue(uffd, r->hva + off + i * ps, ps);
			if (ret == -EEXIST)
				ret = 0;	/* mapped by the run's CONTINUE */
		} else {
			ret = kf_install(r, idx + i, true, data + i * ps,
					 tags ? tags + i * ps / KF_MTE_GRANULE : NULL,
					 &zero);
		}
		if (ret) {
			ret = kf_fail_page(r, idx + i, -ret);
			return ret ? ret : kf_page_failed(r, idx + i);
		}
		*done = i + 1;
	}
	return 0;
}

/* Pushed pages: each run the engine claims goes in with one ioctl. */
static int kf_engine_sink(void *opaque, uint64_t gpa, const void *data,
			  const void *tags, size_t len)
{
	struct kf_engine *e = opaque;
	uint64_t end = gpa + len;
	const uint8_t *t = tags;
	int ret;

	if (gpa % KF_PAGE_SIZE || len % KF_PAGE_SIZE)
		return kf_fail(EINVAL, "pushed range [0x%llx, +0x%zx) is not page aligned",
			       (unsigned long long)gpa, len);
	while (gpa < end) {
		struct kf_engine_region *r = kf_region_by_gpa(e, gpa);
		uint64_t idx, n, i, done, ps, step;
		int uffd;

		if (!r)
			return kf_fail(ERANGE, "pushed page 0x%llx is in no engine region",
				       (unsigned long long)gpa);
		if (r->tags && !t)
			return kf_fail(EINVAL, "pushed page 0x%llx comes without the allocation tags its region needs",
				       (unsigned long long)gpa);
		ps = r->psize;
		idx = (gpa - r->gpa) / ps;
		/*
		 * Whole host pages only (a source pushes in src->push_unit):
		 * a part of one is left to the faults, which read it from the
		 * source whole.
		 */
		if ((gpa - r->gpa) % ps || end - gpa < ps || !kf_pg_claim(r, idx)) {
			step = (gpa - r->gpa) % ps || end - gpa < ps ? KF_PAGE_SIZE : ps;
			if (step == ps)
				__atomic_fetch_add(&e->push_races, 1, __ATOMIC_RELAXED);
			gpa += step;
			data = (const char *)data + step;
			if (t)
				t += step / KF_MTE_GRANULE;
			continue;
		}
		uffd = kf_region_uffd(r, idx);
		for (n = 1; gpa + (n + 1) * ps <= end && idx + n < r->pages &&
			    kf_region_uffd(r, idx + n) == uffd && kf_pg_claim(r, idx + n);
		     n++)
			;
		ret = kf_install_run(r, uffd, idx, n, data, r->tags ? t : NULL, &done);
		for (i = 0; i < done; i++) {
			kf_pg_publish(r, idx + i, KF_PG_INSTALLED);
			kf_count_install(r, &e->slots[KF_SLOT_PUSH]);
		}
		if (ret) {
			/* Past the failed page: claimed, not installed.  A
			 * fault that found them BUSY waits for a wake-up that
			 * the install would have given: wake it to fault again. */
			for (i = done + 1; i < n; i++)
				kf_pg_publish(r, idx + i, KF_PG_MISSING);
			if (done + 1 < n)
				kf_uffd_wake(uffd, r->hva + (idx + done + 1) * ps,
					     (n - done - 1) * ps);
			return ret;
		}
		gpa += n * ps;
		data = (const char *)data + n * ps;
		if (t)
			t += n * ps / KF_MTE_GRANULE;
	}
	return 0;
}

/* --- lifecycle --- */

int kf_engine_new(const struct kf_engine_host *host,
		  const struct kf_engine_config *cfg, struct kf_engine **ep)
{
	static const struct kf_engine_config defaults;
	struct kf_engine *e;
	uint64_t want;
	unsigned int i;
	int ret;

	*ep = NULL;
	if (!host)
		return kf_fail(EINVAL, "fault engine: no host operations");
	if (!cfg)
		cfg = &defaults;
	if (cfg->nr_uffds > KF_MAX_UFFDS)
		return kf_fail(EINVAL, "fault engine: at most %d userfaultfds, not %u",
			       KF_MAX_UFFDS, cfg->nr_uffds);
	if (cfg->handler_threads > 64)
		return kf_fail(EINVAL, "fault engine: at most 64 handler threads per userfaultfd, not %u",
			       cfg->handler_threads);
	if ((unsigned int)cfg->backend > KF_BACKEND_UFFD_MINOR)
		return kf_fail(EINVAL, "fault engine: unknown backend %d", cfg->backend);
	if (cfg->backend != KF_BACKEND_AUTO &&
	    cfg->backend != KF_BACKEND_UFFD_MINOR) {
		ret = kf_backend_available(cfg->backend, false);
		if (ret)
			return ret;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return kf_fail(ENOMEM, "out of memory for a fault engine");
	e->host = *host;
	e->cfg = *cfg;
	e->nr_uffds = cfg->nr_uffds ? cfg->nr_uffds : 1;
	e->stopfd = -1;
	pthread_mutex_init(&e->complete_lock, NULL);
	for (i = 0; i < KF_MAX_UFFDS; i++)
		e->uffd[i] = -1;

	/* Everything the backends might use, among what the kernel offers. */
	want = UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_MISSING_SHMEM |
	       UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_MINOR_HUGETLBFS;
	e->uffd_features = kf_uffd_features() & want;
	for (i = 0; i < e->nr_uffds; i++) {
		e->uffd[i] = kf_uffd_open(e->uffd_features, NULL);
		if (e->uffd[i] < 0) {
			ret = e->uffd[i];
			goto fail;
		}
	}
	e->stopfd = eventfd(0, EFD_CLOEXEC);
	if (e->stopfd < 0) {
		ret = kf_fail_errno(errno, "fault engine: eventfd");
		goto fail;
	}
	*ep = e;
	return 0;
fail:
	for (i = 0; i < KF_MAX_UFFDS; i++)
		if (e->uffd[i] >= 0)
			close(e->uffd[i]);
	if (e->stopfd >= 0)
		close(e->stopfd);
	free(e);
	return ret;
}

/* Change region r's memslot flags through the host. */
static int kf_engine_set_flags(struct kf_engine_region *r, uint32_t flags)
{
	struct kf_engine_host *h = &r->e->host;
	const char *msg = kf_error();
	int ret;

	if (!h->set_slot_flags)
		return kf_fail(EOPNOTSUPP, "fault engine: the host cannot change slot flags");
	ret = h->set_slot_flags(h->opaque, r->slot, flags);
	if (ret > 0)
		ret = -ret;
	/* A host that failed with kf_fail() left its message: keep it. */
	if (ret && kf_error() == msg)
		return kf_fail(-ret, "fault engine: set the flags of slot %u to 0x%x: %s",
			       r->slot, flags, strerror(-ret));
	if (ret)
		return ret;
	r->flags = flags;
	return 0;
}

/*
 * A source with allocation tags: an anonymous page gets its tags only
 * after it is mapped, where a vCPU may see it untagged, so such regions
 * are memfd's whose page cache the engine tags first.
 */
static int kf_engine_check_tagged(struct kf_engine_region *r, bool memfd)
{
	if (!memfd || r->backend == KF_BACKEND_UFFD_MISSING)
		return kf_fail(EOPNOTSUPP, "fault engine: slot %u's source carries allocation tags, which need a memfd region and the exit or uffd-minor backend (backend %s, %s memory)",
			       r->slot, kf_backend_name(r->backend),
			       memfd ? "memfd" : "anonymous");
	if (r->psize != kf_host_page_size() || r->psize > KF_MAX_TAGGED_PAGE ||
	    r->zero || !r->src->ops->read_tagged)
		return kf_fail(EINVAL, "fault engine: slot %u: a tagged source needs the host's pages (no huge pages), data and read_tagged()",
			       r->slot);
	return 0;
}

static enum kf_backend kf_pick_backend(bool memfd)
{
	if (kf_kvm_has_cap(KVM_CAP_EXIT_ON_MISSING))
		return KF_BACKEND_EXIT;
	return memfd ? KF_BACKEND_UFFD_MINOR : KF_BACKEND_UFFD_MISSING;
}

int kf_engine_add_memory(struct kf_engine *e,
			 const struct kf_engine_region_desc *d,
			 struct kf_pagesrc *src)
{
	uint64_t psize = d && d->page_size ? d->page_size : kf_host_page_size();
	struct kf_engine_region *r;
	uint64_t mode, need;
	uint32_t slot;
	unsigned int i;
	bool memfd;
	int ret;

	if (!e || !d || !src)
		return kf_fail(EINVAL, "fault engine: add a region needs an engine, a region and a source");
	slot = d->slot;
	if (e->started)
		return kf_fail(EBUSY, "fault engine: add regions before kf_engine_start()");
	if (e->nr_regions == KF_MAX_REGIONS)
		return kf_fail(ENOSPC, "fault engine: at most %d regions", KF_MAX_REGIONS);
	for (i = 0; i < e->nr_regions; i++) {
		const struct kf_engine_region *o = &e->regions[i];

		if (o->slot == slot)
			return kf_fail(EEXIST, "fault engine: slot %u is served already", slot);
		if (d->gpa < o->gpa + o->size && o->gpa < d->gpa + d->size)
			return kf_fail(EEXIST, "fault engine: slot %u [0x%llx, +0x%llx) overlaps slot %u",
				       slot, (unsigned long long)d->gpa,
				       (unsigned long long)d->size, o->slot);
	}
	if (d->flags & KVM_MEM_GUEST_MEMFD)
		return kf_fail(EOPNOTSUPP, "fault engine: slot %u is a guest_memfd slot; userfaultfd cannot register guest_memfd",
			       slot);
	if (psize < kf_host_page_size() || (psize & (psize - 1)))
		return kf_fail(EINVAL, "fault engine: slot %u: page size %llu is no power of two >= the host's %llu",
			       slot, (unsigned long long)psize,
			       (unsigned long long)kf_host_page_size());
	if (!d->size || !d->hva || d->gpa % psize || d->size % psize ||
	    (uintptr_t)d->hva % psize || (d->memfd >= 0 && d->memfd_offset % psize))
		return kf_fail(EINVAL, "fault engine: slot %u [0x%llx, +0x%llx) at %p is empty or not aligned to its %llu-byte pages",
			       slot, (unsigned long long)d->gpa,
			       (unsigned long long)d->size, d->hva,
			       (unsigned long long)psize);
	if (src->base > d->gpa || src->size < d->size ||
	    d->gpa - src->base > src->size - d->size)
		return kf_fail(EINVAL, "fault engine: the %s source covers [0x%llx, +0x%llx), smaller than slot %u [0x%llx, +0x%llx)",
			       src->kind, (unsigned long long)src->base,
			       (unsigned long long)src->size, slot,
			       (unsigned long long)d->gpa,
			       (unsigned long long)d->size);
	if (d->size / psize < e->nr_uffds)
		return kf_fail(EINVAL, "fault engine: slot %u has fewer pages than userfaultfds (%u)",
			       slot, e->nr_uffds);

	memfd = d->memfd >= 0;
	r = &e->regions[e->nr_regions];
	memset(r, 0, sizeof(*r));
	r->e = e;
	r->slot = slot;
	r->old_flags = d->flags;
	r->flags = d->flags;
	r->gpa = d->gpa;
	r->size = d->size;
	r->psize = psize;
	r->pages = d->size / psize;
	r->hva = d->hva;
	r->memfd = d->memfd;
	r->memfd_off = d->memfd_offset;
	r->src = src;
	r->zero = src->flags & KF_PAGESRC_ZERO;
	r->tags = src->flags & KF_PAGESRC_TAGS;
	r->backend = e->cfg.backend == KF_BACKEND_AUTO ?
		     kf_pick_backend(memfd) : e->cfg.backend;
	ret = kf_backend_available(r->backend, memfd);
	if (!ret && r->tags)
		ret = kf_engine_check_tagged(r, memfd);
	if (!ret && r->backend == KF_BACKEND_EXIT && !e->host.set_slot_flags)
		ret = kf_fail(EOPNOTSUPP, "fault engine: backend exit needs the host's set_slot_flags operation");
	if (ret)
		return ret;
	need = kf_backend_features(r->backend, memfd);
	/* A memfd of huge pages is hugetlbfs: its minor faults are those. */
	if (memfd && psize > kf_host_page_size() && r->backend != KF_BACKEND_UFFD_MISSING)
		need = (need & ~UFFD_FEATURE_MINOR_SHMEM) | UFFD_FEATURE_MINOR_HUGETLBFS;
	if (need & ~e->uffd_features)
		return kf_fail(EOPNOTSUPP, "fault engine: userfaultfd lacks features 0x%llx",
			       (unsigned long long)(need & ~e->uffd_features));

	r->state = calloc(KF_ALIGN_UP(r->pages, 4), 1);
	if (!r->state)
		return kf_fail(ENOMEM, "fault engine: page states of slot %u", slot);
	r->alias = NULL;
	if (memfd && r->backend != KF_BACKEND_UFFD_MISSING) {
		int prot = PROT_READ | PROT_WRITE | (r->tags ? KF_PROT_MTE : 0);
		void *p = mmap(NULL, r->size, prot, MAP_SHARED, r->memfd,
			       r->memfd_off);

		if (p == MAP_FAILED) {
			ret = kf_fail_errno(errno, "fault engine: second mapping of slot %u's memfd%s",
					    slot, r->tags ? " with allocation tags (PROT_MTE)" : "");
			goto fail;
		}
		r->alias = p;
	}
	mode = UFFDIO_REGISTER_MODE_MISSING;
	if (memfd && r->backend != KF_BACKEND_UFFD_MISSING)
		mode |= UFFDIO_REGISTER_MODE_MINOR;
	for (i = 0; i < e->nr_uffds; i++) {
		uint64_t first = r->pages * i / e->nr_uffds;
		uint64_t last = r->pages * (i + 1) / e->nr_uffds;

		ret = kf_uffd_register(e->uffd[i], r->hva + first * psize,
				       (last - first) * psize, mode);
		if (ret)
			goto fail_unregister;
	}
	if (r->backend == KF_BACKEND_EXIT &&
	    !(r->flags & KVM_MEM_EXIT_ON_MISSING)) {
		ret = kf_engine_set_flags(r, r->flags | KVM_MEM_EXIT_ON_MISSING);
		if (ret)
			goto fail_unregister;
	}
	src->push_unit = psize;
	e->nr_regions++;
	return 0;
fail_unregister:
	while (i-- > 0) {
		uint64_t first = r->pages * i / e->nr_uffds;
		uint64_t last = r->pages * (i + 1) / e->nr_uffds;

		kf_uffd_unregister(e->uffd[i], r->hva + first * psize,
				   (last - first) * psize);
	}
fail:
	if (r->alias)
		munmap(r->alias, r->size);
	free(r->state);
	memset(r, 0, sizeof(*r));
	return ret;
}

enum kf_backend kf_engine_region_backend(struct kf_engine *e, uint32_t slot)
{
	unsigned int i;

	for (i = 0; i < e->nr_regions; i++)
		if (e->regions[i].slot == slot)
			return e->regions[i].backend;
	return KF_BACKEND_AUTO;
}

int kf_engine_start(struct kf_engine *e)
{
	unsigned int per = e->cfg.handler_threads ? e->cfg.handler_threads : 1;
	unsigned int i, t;
	int ret;

	if (e->started)
		return kf_fail(EBUSY, "fault engine: started already");
	e->handlers = calloc((size_t)e->nr_uffds * per, sizeof(*e->handlers));
	if (!e->handlers)
		return kf_fail(ENOMEM, "fault engine: handler threads");
	e->started = true;
	for (i = 0; i < e->nr_uffds; i++) {
		for (t = 0; t < per; t++) {
			struct kf_engine_handler *h = &e->handlers[e->nr_handlers];

			h->e = e;
			h->uffd = i;
			ret = kf_start_thread(&h->thread, kf_engine_handler, h,
					      e->cfg.pin_handlers, i);
			if (ret) {
				kf_engine_stop(e);
				return kf_fail(-ret, "fault engine: cannot start a handler thread: %s",
					       kf_error());
			}
			h->started = true;
			e->nr_handlers++;
		}
	}
	for (i = 0; i < e->nr_regions; i++) {
		struct kf_pagesrc *src = e->regions[i].src;
		unsigned int j;
		bool seen = false;

		for (j = 0; j < i; j++)
			seen |= e->regions[j].src == src;
		if (seen || !src->ops->start_push)
			continue;
		ret = src->ops->start_push(src, kf_engine_sink, e);
		if (ret) {
			kf_engine_stop(e);
			return ret;
		}
		e->regions[i].pushing = true;
	}
	return 0;
}

/* No source thread may call kf_engine_sink() once this returns. */
static void kf_engine_stop_pushes(struct kf_engine *e)
{
	unsigned int i;

	for (i = 0; i < e->nr_regions; i++) {
		struct kf_engine_region *r = &e->regions[i];

		if (r->pushing)
			kf_pagesrc_stop_push(r->src);
		r->pushing = false;
	}
}

void kf_engine_stop(struct kf_engine *e)
{
	uint64_t one = 1;
	unsigned int i;

	if (!e || !e->handlers)
		return;
	if (write(e->stopfd, &one, sizeof(one)) < 0)
		kf_engine_fail(e, errno, "fault engine: cannot signal the handlers to stop");
	for (i = 0; i < e->nr_handlers; i++)
		if (e->handlers[i].started)
			pthread_join(e->handlers[i].thread, NULL);
	free(e->handlers);
	e->handlers = NULL;
	e->nr_handlers = 0;
}

void kf_engine_destroy(struct kf_engine *e)
{
	unsigned int i;

	if (!e)
		return;
	kf_engine_stop_pushes(e);
	kf_engine_stop(e);
	for (i = 0; i < e->nr_regions; i++) {
		struct kf_engine_region *r = &e->regions[i];

		if (r->backend == KF_BACKEND_EXIT && !r->complete &&
		    (r->flags & KVM_MEM_EXIT_ON_MISSING) &&
		    !(r->old_flags & KVM_MEM_EXIT_ON_MISSING))
			kf_engine_set_flags(r, r->flags & ~KVM_MEM_EXIT_ON_MISSING);
		if (r->alias)
			munmap(r->alias, r->size);
		free(r->state);
		if (e->host.region_removed)
			e->host.region_removed(e->host.opaque, r->slot);
	}
	if (e->host.release)
		e->host.release(e->host.opaque);
	/* Closing a userfaultfd unregisters its ranges and wakes waiters. */
	for (i = 0; i < e->nr_uffds; i++)
		close(e->uffd[i]);
	close(e->stopfd);
	pthread_mutex_destroy(&e->complete_lock);
	free(e);
}

/* --- host-side helpers --- */

int kf_engine_fetch(struct kf_engine *e, uint64_t gpa, uint64_t len)
{
	uint64_t end = gpa + (len ? len : 1);
	uint64_t t0 = e->cfg.no_latency ? 0 : kf_now_ns();
	int ret;

	while (gpa < end) {
		struct kf_engine_region *r = kf_region_by_gpa(e, gpa);
		uint64_t idx;

		if (!r)
			return kf_fail(ERANGE, "fetch: gpa 0x%llx is in no engine region",
				       (unsigned long long)gpa);
		idx = (gpa - r->gpa) / r->psize;
		ret = kf_resolve(r, idx, false, &e->slots[KF_SLOT_OTHER], t0,
				 KF_WHO_HOST);
		if (ret)
			return ret;
		gpa = r->gpa + (idx + 1) * r->psize;
	}
	return 0;
}

bool kf_engine_page_installed(struct kf_engine *e, uint64_t gpa)
{
	struct kf_engine_region *r = kf_region_by_gpa(e, gpa);

	return r && kf_pg_load(r, (gpa - r->gpa) / r->psize) == KF_PG_INSTALLED;
}

uint64_t kf_engine_installed_pages(struct kf_engine *e)
{
	uint64_t n = 0;
	unsigned int i;

	for (i = 0; i < KF_NR_SLOTS; i++)
		n += __atomic_load_n(&e->slots[i].installed, __ATOMIC_RELAXED);
	return n;
}

/*
 * What kf_engine_stats() and kf_engine_summary() report alike: the backend,
 * how many vCPU slots count, and the engine-wide counters.
 */
struct kf_engine_common {
	const char *backend;
	unsigned int nr_vcpus;
	uint64_t pushed_pages, push_races, exit_faults, uffd_faults;
};

static void kf_engine_common(struct kf_engine *e, struct kf_engine_common *c)
{
	unsigned int i;

	memset(c, 0, sizeof(*c));
	c->backend = e->nr_regions ? kf_backend_name(e->regions[0].backend) :
		     kf_backend_name(e->cfg.backend);
	c->nr_vcpus = e->host.nr_vcpus ? e->host.nr_vcpus(e->host.opaque) :
		      __atomic_load_n(&e->vcpus_seen, __ATOMIC_RELAXED);
	if (c->nr_vcpus > KF_MAX_VCPUS)
		c->nr_vcpus = KF_MAX_VCPUS;
	c->pushed_pages = __atomic_load_n(&e->slots[KF_SLOT_PUSH].installed,
					  __ATOMIC_RELAXED);
	c->push_races = __atomic_load_n(&e->push_races, __ATOMIC_RELAXED);
	for (i = 0; i < KF_NR_SLOTS; i++) {
		c->exit_faults += __atomic_load_n(&e->slots[i].exit_faults,
						  __ATOMIC_RELAXED);
		c->uffd_faults += __atomic_load_n(&e->slots[i].uffd_faults,
						  __ATOMIC_RELAXED);
	}
}

void kf_engine_stats(struct kf_engine *e, struct kf_engine_stats *s)
{
	struct kf_engine_common c;
	unsigned int i;

	memset(s, 0, sizeof(*s));
	kf_engine_common(e, &c);
	s->backend = c.backend;
	s->nr_vcpus = c.nr_vcpus;
	for (i = 0; i < s->nr_vcpus; i++) {
		kf_fault_stats_snapshot(&s->vcpu[i], &e->slots[i].st);
		kf_fault_stats_merge(&s->total, &s->vcpu[i]);
	}
	kf_fault_stats_snapshot(&s->other, &e->slots[KF_SLOT_OTHER].st);
	kf_fault_stats_merge(&s->total, &s->other);
	s->pushed_pages = c.pushed_pages;
	s->push_races = c.push_races;
	s->exit_faults = c.exit_faults;
	s->uffd_faults = c.uffd_faults;
}

static void kf_summary_add(struct kf_fault_summary *t,
			   const struct kf_fault_summary *s)
{
	t->faults += s->faults;
	t->bytes += s->bytes;
	t->zero_pages += s->zero_pages;
	t->spurious += s->spurious;
	t->errors += s->errors;
	t->latency_count += s->latency_count;
	t->latency_sum_ns += s->latency_sum_ns;
	t->max_ns = KF_MAX(t->max_ns, s->max_ns);
}

void kf_engine_summary(struct kf_engine *e, struct kf_engine_summary *s)
{
	struct kf_engine_common c;
	struct kf_latency_hist *all;
	unsigned int i;

	memset(s, 0, sizeof(*s));
	kf_engine_common(e, &c);
	s->backend = c.backend;
	s->nr_vcpus = c.nr_vcpus;
	for (i = 0; i < s->nr_vcpus; i++) {
		kf_fault_stats_summarize(&e->slots[i].st, &s->vcpu[i]);
		kf_summary_add(&s->total, &s->vcpu[i]);
	}
	kf_fault_stats_summarize(&e->slots[KF_SLOT_OTHER].st, &s->other);
	kf_summary_add(&s->total, &s->other);
	/* Percentiles of all faults need the histograms merged: 8 KB. */
	all = calloc(1, sizeof(*all));
	if (all) {
		for (i = 0; i < s->nr_vcpus; i++)
			kf_hist_merge(all, &e->slots[i].st.latency);
		kf_hist_merge(all, &e->slots[KF_SLOT_OTHER].st.latency);
		s->total.p50_ns = kf_hist_percentile(all, 50);
		s->total.p90_ns = kf_hist_percentile(all, 90);
		s->total.p99_ns = kf_hist_percentile(all, 99);
		free(all);
	}
	s->installed_pages = kf_engine_installed_pages(e);
	s->pushed_pages = c.pushed_pages;
	s->push_races = c.push_races;
	s->exit_faults = c.exit_faults;
	s->uffd_faults = c.uffd_faults;
}

/* --- switch-off --- */

static struct kf_engine_region *kf_region_by_slot(struct kf_engine *e,
						  uint32_t slot)
{
	unsigned int i;

	for (i = 0; i < e->nr_regions; i++)
		if (e->regions[i].slot == slot)
			return &e->regions[i];
	return NULL;
}

int kf_engine_region_complete(struct kf_engine *e, uint32_t slot)
{
	struct kf_engine_region *r = kf_region_by_slot(e, slot);
	uint64_t have;
	unsigned int i;
	bool all = true;
	int ret = 0;

	if (!r)
		return kf_fail(ENOENT, "fault engine: slot %u is not served", slot);
	pthread_mutex_lock(&e->complete_lock);
	if (r->complete)
		goto out;
	if (kf_engine_err(e)) {
		ret = kf_fail(e->error, "fault engine: %s", e->errmsg);
		goto out;
	}
	/*
	 * The count goes up after the page's state became INSTALLED, which
	 * happens after its UFFDIO_* returned: at the full count every page
	 * is mapped, and no state leaves INSTALLED.
	 */
	have = kf_region_installed(r);
	if (have < r->pages) {
		ret = kf_fail(EBUSY, "fault engine: slot %u has %llu of %llu pages",
			      slot, (unsigned long long)have,
			      (unsigned long long)r->pages);
		goto out;
	}
	/*
	 * Exit backend first: with the flag off KVM faults normally; an exit
	 * already on its way is served by kf_resolve() (populate, re-enter).
	 */
	if (r->backend == KF_BACKEND_EXIT &&
	    r->flags & KVM_MEM_EXIT_ON_MISSING &&
	    !(r->old_flags & KVM_MEM_EXIT_ON_MISSING)) {
		ret = kf_engine_set_flags(r, r->flags & ~KVM_MEM_EXIT_ON_MISSING);
		if (ret)
			goto out;
	}
	/* Mark it before unregistering: a racing stale fault must then not
	 * use UFFDIO_CONTINUE on the range. */
	__atomic_store_n(&r->complete, true, __ATOMIC_RELEASE);
	/* Unregistering wakes any thread still queued on the range; it
	 * retries and finds the page mapped. */
	for (i = 0; i < e->nr_uffds; i++) {
		uint64_t first = r->pages * i / e->nr_uffds;
		uint64_t last = r->pages * (i + 1) / e->nr_uffds;
		int r2 = kf_uffd_unregister(e->uffd[i], r->hva + first * r->psize,
					    (last - first) * r->psize);

		if (r2 && !ret)
			ret = r2;
	}
	r->complete_ns = kf_now_ns();
	for (i = 0; i < e->nr_regions; i++)
		all &= e->regions[i].complete;
	/* Nothing can fault through userfaultfd any more: handlers go. */
	if (all && !ret)
		kf_engine_stop(e);
out:
	pthread_mutex_unlock(&e->complete_lock);
	return ret;
}

bool kf_engine_region_is_complete(struct kf_engine *e, uint32_t slot)
{
	struct kf_engine_region *r = kf_region_by_slot(e, slot);

	return r && __atomic_load_n(&r->complete, __ATOMIC_ACQUIRE);
}

uint64_t kf_engine_region_complete_ns(struct kf_engine *e, uint32_t slot)
{
	struct kf_engine_region *r = kf_region_by_slot(e, slot);

	return r && __atomic_load_n(&r->complete, __ATOMIC_ACQUIRE) ?
	       r->complete_ns : 0;
}

int kf_engine_region_uffd_registered(struct kf_engine *e, uint32_t slot)
{
	struct kf_engine_region *r = kf_region_by_slot(e, slot);
	uintptr_t hva;
	char line[512];
	bool in = false;
	int ret = -ENOENT;
	FILE *f;

	if (!r)
		return kf_fail(ENOENT, "fault engine: slot %u is not served", slot);
	hva = (uintptr_t)r->hva;
	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return kf_fail_errno(errno, "open /proc/self/smaps");
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char *v, *save;

		/* "lo-hi perms ..." headers; fields are "Name: value" */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {
			in = hva >= lo && hva < hi;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			ret = 0;
			for (v = strtok_r(line + 8, " \n", &save); v;
			     v = strtok_r(NULL, " \n", &save))
				if (!strcmp(v, "um") || !strcmp(v, "ui"))
					ret = 1;
			break;
		}
	}
	fclose(f);
	if (ret < 0)
		return kf_fail(ENOENT, "fault engine: slot %u's memory %p is not in /proc/self/smaps",
			       slot, r->hva);
	return ret;
}
