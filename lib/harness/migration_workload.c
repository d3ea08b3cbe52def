// SPDX-License-Identifier: MIT
/*
 * The migration workload (see lib/harness/include/kvmfault/migration_run.h).  Guest code:
 * calls only inline helpers and KF_GUEST functions.
 *
 * Region layout: one span a vCPU, each span csum_pages of checksums (one
 * 64-bit checksum a page) and then pages_per_vcpu data pages.  In an MTE
 * VM every write pass also gives the page a new allocation tag, which its
 * checksum covers, and one pass in four changes the tag only.
 */
#include <string.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/guest.h>
#include <kvmfault/migration.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/test_guest.h>
#include <kvmfault/vcpu.h>

/* In slot 0, like all of the program's data: it migrates with the guest. */
struct kf_workload_ctl kf_workload_guest_ctl;

KF_GUEST_INLINE uint64_t kf_wl_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

/* Fill the page from seed (and tag it, with MTE): its checksum. */
KF_GUEST_INLINE uint64_t kf_wl_fill(volatile uint64_t *page, uint64_t seed,
				    bool mte)
{
	uint64_t i, s = seed | 1, tag = 0;

	for (i = 0; i < KF_PAGE_SIZE / 8; i++)
		page[i] = kf_wl_rand(&s);
	if (mte) {
		tag = (seed ^ seed >> 20) & 0xf;
		kt_guest_tag_page(page, tag);
	}
	return kf_hash((const void *)page, KF_PAGE_SIZE) ^ tag;
}

/* The checksum of the page as it is: its bytes, and with MTE its tag,
 * which every 17th granule must hold (~0 when they differ). */
KF_GUEST_INLINE uint64_t kf_wl_csum(const char *page, bool mte)
{
	uint64_t i, tag = mte ? kt_guest_tag(page) : 0;

	for (i = 17; mte && i < KF_PAGE_SIZE / 16; i += 17)
		if (kt_guest_tag(page + i * 16) != tag)
			return ~0ULL;
	return kf_hash(page, KF_PAGE_SIZE) ^ tag;
}

KF_GUEST void kf_workload_guest(uint64_t arg)
{
	struct kf_workload_ctl *ctl = &kf_workload_guest_ctl;
	uint64_t id = kf_guest_vcpu_id();
	uint64_t span = (ctl->csum_pages + ctl->pages_per_vcpu) * KF_PAGE_SIZE;
	char *base = (char *)(ctl->gpa + id * span);
	volatile uint64_t *csum = (volatile uint64_t *)base;
	char *data = base + ctl->csum_pages * KF_PAGE_SIZE;
	uint64_t n = ctl->pages_per_vcpu, hot = n / 4 ? n / 4 : 1;
	uint64_t p, iter = 0, rnd = 0x2545f4914f6cdd1dULL ^ (id << 32) ^ arg;
	bool mte = ctl->mte;

	(void)arg;
	for (p = 0; p < n; p++) {
		volatile uint64_t *page = (volatile uint64_t *)(data + p * KF_PAGE_SIZE);

		csum[p] = kf_wl_fill(page, (id << 48) ^ (p << 20) ^ 1, mte);
	}
	GUEST_SYNC_ARGS(KF_WL_STAGE_FILLED, n, 0, 0);

	while (!ctl->stop) {
		uint64_t r = kf_wl_rand(&rnd);
		/* Three writes in four go to the hot quarter. */
		uint64_t pg = (r & 3) ? (r >> 8) % hot : (r >> 8) % n;
		volatile uint64_t *page = (volatile uint64_t *)(data + pg * KF_PAGE_SIZE);

		iter++;
		if (mte && !(r >> 4 & 3)) {
			/* One pass in four only retags the page: a tag store
			 * must dirty it as a data store does. */
			uint64_t tag = (r >> 40 ^ iter) & 0xf;

			kt_guest_tag_page(page, tag);
			csum[pg] = kf_hash((const void *)page, KF_PAGE_SIZE) ^ tag;
		} else {
			csum[pg] = kf_wl_fill(page, (id << 48) ^ (pg << 20) ^ (iter << 1) ^ r,
					      mte);
		}
		ctl->iterations[id] = iter;
		if (ctl->idle_us)
			GUEST_SYNC_ARGS(KF_WL_STAGE_IDLE, ctl->idle_us, 0, 0);
	}

	for (p = 0; p < n; p++)
		GUEST_ASSERT_EQ(kf_wl_csum(data + p * KF_PAGE_SIZE, mte), csum[p]);
	GUEST_SYNC_ARGS(KF_WL_STAGE_VERIFIED, n, iter, 0);
}

static uint64_t kf_wl_csum_pages(uint64_t pages)
{
	return (pages * 8 + KF_PAGE_SIZE - 1) / KF_PAGE_SIZE;
}

uint64_t kf_workload_region_size(const struct kf_workload_cfg *cfg)
{
	uint64_t span = kf_wl_csum_pages(cfg->pages_per_vcpu) + cfg->pages_per_vcpu;

	return KF_ALIGN_UP(span * cfg->nr_vcpus * KF_PAGE_SIZE, 2ULL << 20);
}

struct kf_workload_ctl *kf_workload_ctl(struct kf_vm *vm)
{
	return kf_vm_gpa_to_hva(vm, (uintptr_t)&kf_workload_guest_ctl);
}

int kf_workload_add_vcpus(struct kf_vm *vm, unsigned int nr_vcpus,
			  struct kf_vcpu **vcpus)
{
	unsigned int i;
	int ret;

	for (i = 0; i < nr_vcpus; i++) {
		ret = kf_vcpu_add(vm, i, kf_workload_guest, 0, &vcpus[i]);
		if (ret)
			return ret;
	}
	return 0;
}

int kf_workload_setup(struct kf_vm *vm, const struct kf_workload_cfg *cfg,
		      enum kf_backing backing, uint32_t slot_flags,
		      const struct kf_memslot **slotp, struct kf_vcpu **vcpus)
{
	struct kf_region r = {
		.gpa = cfg->gpa ? cfg->gpa : kf_vm_free_gpa(vm),
		.size = kf_workload_region_size(cfg),
		.flags = slot_flags,
		.backing = backing,
		.guest_memfd = -1,
	};
	struct kf_workload_ctl *ctl;
	int ret;

	if (!cfg->nr_vcpus || cfg->nr_vcpus > KF_MAX_VCPUS || !cfg->pages_per_vcpu)
		return kf_fail(EINVAL, "workload: %u vCPUs and %llu pages each is no workload",
			       cfg->nr_vcpus, (unsigned long long)cfg->pages_per_vcpu);
	ret = kf_vm_add_region(vm, &r, slotp);
	if (ret)
		return ret;
	ctl = kf_workload_ctl(vm);
	if (!ctl)
		return kf_fail(EFAULT, "workload control block is not in guest memory");
	memset(ctl, 0, sizeof(*ctl));
	ctl->gpa = r.gpa;
	ctl->pages_per_vcpu = cfg->pages_per_vcpu;
	ctl->csum_pages = kf_wl_csum_pages(cfg->pages_per_vcpu);
	ctl->nr_vcpus = cfg->nr_vcpus;
	ctl->idle_us = cfg->idle_us;
	ctl->mte = kf_vm_mte(vm);
	return kf_workload_add_vcpus(vm, cfg->nr_vcpus, vcpus);
}

void kf_workload_stop(struct kf_vm *vm)
{
	struct kf_workload_ctl *ctl = kf_workload_ctl(vm);

	if (ctl)
		__atomic_store_n(&ctl->stop, 1, __ATOMIC_SEQ_CST);
}

/* vCPUs that filled their working set, for kf_workload_start(). */
static unsigned int kf_wl_filled;

void kf_workload_idle(const struct kf_ucall *uc)
{
	if (uc->args[0] == KF_WL_STAGE_IDLE)
		usleep((useconds_t)KF_MIN(uc->args[1], (uint64_t)1000000));
}

static int kf_wl_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	(void)vcpu;
	kf_workload_idle(uc);
	if (uc->args[0] == KF_WL_STAGE_FILLED)
		__atomic_fetch_add(&kf_wl_filled, 1, __ATOMIC_SEQ_CST);
	return 0;
}

int kf_workload_start(struct kf_vcpu **vcpus, unsigned int nr_vcpus)
{
	static const struct kf_vcpu_ops ops = { .sync = kf_wl_sync };
	unsigned int i;
	int ret;

	__atomic_store_n(&kf_wl_filled, 0, __ATOMIC_SEQ_CST);
	for (i = 0; i < nr_vcpus; i++) {
		ret = kf_vcpu_start(vcpus[i], &ops);
		if (ret)
			return ret;
	}
	while (__atomic_load_n(&kf_wl_filled, __ATOMIC_SEQ_CST) < nr_vcpus) {
		for (i = 0; i < nr_vcpus; i++)
			if (kf_vcpu_result(vcpus[i]))
				return kf_fail(EIO, "workload vCPU %u failed: %s", i,
					       kf_vcpu_errmsg(vcpus[i]));
		usleep(1000);
	}
	return 0;
}
