// SPDX-License-Identifier: MIT
/*
 * An MTE guest (kf_vm_enable_mte()): guest code at EL1 stores allocation
 * tags (STG) and loads them back (LDG); the VMM reads the same tags with
 * KVM_ARM_MTE_COPY_TAGS, sets others the guest then loads, and guest data
 * stays as written.  Enabling MTE after a vCPU exists is refused.
 *
 * Tags through snapshots: the guest tags its pages (one with zero data),
 * the VMM saves a snapshot, and the guest goes on in VMs restored eagerly
 * and lazily (exit and uffd-minor backends, with and without prefetch),
 * where it checks every page's data and tags before touching anything
 * else; a read-only region (no tags: KVM refuses to write them there)
 * comes back too.  A damaged tags section is refused at open, and a tagged source
 * on anonymous memory is refused by the engine.  (Tags through migration:
 * tests/migrate_postcopy.c.)
 */
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/snapshot.h>
#include <kvmfault/vm_engine.h>
#include <kvmfault/test.h>
#include <kvmfault/test_guest.h>

#define PAGES 8
#define GRANULE 16
#define GRANULES (KF_PAGE_SIZE / GRANULE)
#define ZERO_PAGE (PAGES - 1)	/* zero data, a tag all the same */
/* Regions are whole host pages (4, 16 or 64 KiB). */
#define HOST_PAGE ((uint64_t)getpagesize())
#define REGION_SIZE KF_ALIGN_UP(PAGES * KF_PAGE_SIZE, HOST_PAGE)

/*
 * One tag a page: under QEMU 7.2's software CPU, the rig's, a tag load
 * returns the tag of granule 14 or 15 of its page, whichever has the
 * parity of its own (from guest code and from KVM_ARM_MTE_COPY_TAGS
 * alike; found with this test), so tags that differ within a page cannot
 * be checked there.
 */
#define GUEST_TAG 0x5
#define VMM_TAG 0x9

KF_GUEST_INLINE uint64_t page_tag(uint64_t page)
{
	return page == 0 ? GUEST_TAG : page == 1 ? VMM_TAG : (page * 3 + 1) & 0xf;
}

KF_GUEST_INLINE uint64_t page_word(uint64_t page)
{
	return page == ZERO_PAGE ? 0 : 0x6d746500 + page;
}

/* Every page's first word and every 17th granule's tag. */
KF_GUEST_INLINE void guest_check_pages(uint64_t base)
{
	uint64_t p, i;

	for (p = 0; p < PAGES; p++) {
		uint64_t page = base + p * KF_PAGE_SIZE;

		GUEST_ASSERT_EQ(*(volatile uint64_t *)page, page_word(p));
		for (i = 0; i < GRANULES; i += 17)
			GUEST_ASSERT_EQ(kt_guest_tag((void *)(page + i * GRANULE)), page_tag(p));
	}
}

static KF_GUEST void guest_tags(uint64_t base)
{
	uint64_t p;

	*(volatile uint64_t *)base = page_word(0);
	kt_guest_tag_page((void *)base, GUEST_TAG);
	/* STG sets the tag only: the data stays. */
	GUEST_ASSERT_EQ(*(volatile uint64_t *)base, page_word(0));
	GUEST_SYNC(1);
	/* The VMM tagged page 1 (and wrote its word). */
	for (p = 2; p < PAGES; p++) {
		*(volatile uint64_t *)(base + p * KF_PAGE_SIZE) = page_word(p);
		kt_guest_tag_page((void *)(base + p * KF_PAGE_SIZE), page_tag(p));
	}
	guest_check_pages(base);
	GUEST_SYNC(2);
	/* In every restored VM: before anything else touches the pages. */
	guest_check_pages(base);
}

static uint64_t region_gpa;

#define RO_OFFSET (2ULL << 20)	/* the read-only region, after the data */
#define RO_WORD 0x726f6e6c79ULL

/* KVM_ARM_MTE_COPY_TAGS of the host page (4, 16 or 64 KiB) holding gpa. */
static int copy_tags(struct kf_vm *vm, uint64_t gpa, uint8_t *tags,
		     uint64_t flags)
{
	struct kvm_arm_copy_mte_tags copy = {
		.guest_ipa = KF_ALIGN_DOWN(gpa, HOST_PAGE),
		.length = HOST_PAGE,
		.addr = tags,
		.flags = flags,
	};

	return ioctl(kf_vm_fd(vm), KVM_ARM_MTE_COPY_TAGS, &copy);
}

/* SYNC 1: read page 0's tags, tag page 1; SYNC 2: stop, to be saved. */
static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	static uint8_t tags[65536 / GRANULE];
	struct kf_vm *vm = kf_vcpu_vm(vcpu);
	uint64_t page1 = region_gpa + KF_PAGE_SIZE;
	uint8_t *own;
	unsigned int i;

	if (uc->args[0] == 2)
		return -ECANCELED;
	TEST_ASSERT_EQ(uc->args[0], 1);
	memset(tags, 0xff, sizeof(tags));
	TEST_ASSERT_EQ(copy_tags(vm, region_gpa, tags, KVM_ARM_TAGS_FROM_GUEST),
		       (int)HOST_PAGE);
	for (i = 0; i < GRANULES; i++)
		TEST_ASSERT_EQ(tags[i], GUEST_TAG);
	/* Page 1's tags, in its host page (the same as page 0's above 4 KiB). */
	TEST_ASSERT_EQ(copy_tags(vm, page1, tags, KVM_ARM_TAGS_FROM_GUEST),
		       (int)HOST_PAGE);
	own = tags + (page1 - KF_ALIGN_DOWN(page1, HOST_PAGE)) / GRANULE;
	memset(own, VMM_TAG, GRANULES);
	TEST_ASSERT_EQ(copy_tags(vm, page1, tags, 0), (int)HOST_PAGE);
	*(uint64_t *)kf_vm_gpa_to_hva(vm, page1) = 0x6d746501;
	return 0;
}

static void save(const char *path)
{
	struct kf_region r = { .size = REGION_SIZE,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	struct kf_region ro = { .size = HOST_PAGE, .flags = KVM_MEM_READONLY,
				.backing = KF_BACKING_ANON, .guest_memfd = -1 };
	struct kf_vcpu_ops ops = { .sync = on_sync };
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	int ret;

	TEST_OK(kf_vm_create(&vm));
	ret = kf_vm_enable_mte(vm);
	if (ret == -EOPNOTSUPP)
		kf_test_skip("%s", kf_error());
	TEST_OK(ret);
	TEST_ASSERT(kf_vm_mte(vm), "kf_vm_mte() after enabling");
	TEST_OK(kf_vm_enable_mte(vm));	/* again: a no-op */
	r.gpa = region_gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, NULL));
	ro.gpa = region_gpa + RO_OFFSET;
	TEST_OK(kf_vm_add_region(vm, &ro, &ms));
	*(uint64_t *)ms->hva = RO_WORD;
	TEST_OK(kf_vcpu_add(vm, 0, guest_tags, r.gpa, &vcpu));
	TEST_ASSERT_EQ(kf_vm_enable_mte(vm), -EBUSY);
	TEST_ASSERT_EQ(kf_vcpu_run(vcpu, &ops), -ECANCELED);
	TEST_ASSERT_EQ(kf_test_counters(vcpu).nr_ucalls, 2);	/* SYNC 1, 2 */
	TEST_OK(kf_snapshot_save(vm, &vcpu, 1, NULL, path, NULL));
	kf_vm_destroy(vm);
}

static int on_restored_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	(void)vcpu;
	TEST_ASSERT(false, "a restored guest made SYNC %llu",
		    (unsigned long long)uc->args[0]);
	return -EINVAL;
}

/* Restore and let the guest check every page's data and tags. */
static void restore(const char *path, bool lazy, enum kf_backend backend,
		    bool prefetch)
{
	struct kf_vcpu_ops ops = {
		.sync = on_restored_sync,
		.memory_fault = kf_engine_memory_fault,
		.interrupted = kf_engine_interrupted,
	};
	struct kf_snapshot_restore rs = { .lazy = lazy, .prefetch = prefetch,
					  .backend = backend };
	const char *name = lazy ? kf_backend_name(backend) : "eager";
	struct kf_snapshot *snap;
	uint8_t tags[GRANULES];

	TEST_OK(kf_snapshot_open(path, &snap));
	TEST_ASSERT(kf_snapshot_header(snap)->flags & KF_SNAP_F_MTE_TAGS,
		    "the snapshot of an MTE VM holds tags");
	TEST_ASSERT_EQ(kf_snapshot_header(snap)->version, KF_SNAP_VERSION_TAGS);
	TEST_OK(kf_snapshot_read_tags(snap, region_gpa + 3 * KF_PAGE_SIZE, tags,
				      KF_PAGE_SIZE));
	TEST_ASSERT_EQ(tags[0], (3 * 3 + 1) & 0xf);
	TEST_ASSERT_EQ(tags[GRANULES - 1], (3 * 3 + 1) & 0xf);
	if (lazy && backend == KF_BACKEND_EXIT && kf_backend_available(backend, true)) {
		printf("not run: %s%s: %s\n", name, prefetch ? "+prefetch" : "", kf_error());
		kf_snapshot_close(snap);
		return;
	}
	TEST_OK(kf_snapshot_restore_vm(snap, &rs));
	TEST_ASSERT(kf_vm_mte(rs.vm), "the restored VM has MTE");
	if (lazy)
		printf("%s%s: region backend %s\n", name, prefetch ? "+prefetch" : "",
		       kf_backend_name(kf_engine_region_backend(rs.engine,
				kf_vm_find_slot(rs.vm, region_gpa)->slot)));
	TEST_OK(kf_vcpu_run(rs.vcpus[0], &ops));
	TEST_ASSERT_EQ(kf_test_counters(rs.vcpus[0]).nr_ucalls, 1);	/* DONE */
	TEST_ASSERT_EQ(*(volatile uint64_t *)kf_vm_gpa_to_hva(rs.vm, region_gpa + RO_OFFSET),
		       RO_WORD);
	if (lazy && !prefetch)
		TEST_ASSERT(kf_engine_installed_pages(rs.engine) >= REGION_SIZE / HOST_PAGE,
			    "the guest's pages came through the engine: %llu",
			    (unsigned long long)kf_engine_installed_pages(rs.engine));
	kf_snapshot_restore_free(&rs);
	kf_snapshot_close(snap);
	printf("%s%s restore: %d pages, data and tags as saved\n", name,
	       prefetch ? "+prefetch" : "", PAGES);
}

/* A tagged source on anonymous memory: refused, the pages stay missing. */
static void anon_refused(const char *path)
{
	struct kf_region r = { .size = REGION_SIZE,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	struct kf_engine_config cfg = { .backend = KF_BACKEND_AUTO };
	const struct kf_memslot *ms;
	struct kf_snapshot *snap;
	struct kf_pagesrc *src;
	struct kf_engine *e;
	unsigned int i;
	struct kf_vm *vm;

	TEST_OK(kf_snapshot_open(path, &snap));
	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_vm_enable_mte(vm));
	r.gpa = region_gpa;
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	for (i = 0; kf_snapshot_region(snap, i)->gpa != region_gpa; i++)
		;
	TEST_OK(kf_snapshot_pagesrc(snap, i, &src));
	TEST_ASSERT(src->flags & KF_PAGESRC_TAGS, "the source carries tags");
	TEST_OK(kf_engine_create(vm, &cfg, &e));
	TEST_ASSERT_EQ(kf_engine_add_region(e, ms->slot, src), -EOPNOTSUPP);
	TEST_ASSERT(strstr(kf_error(), "allocation tags") && strstr(kf_error(), "memfd"),
		    "the message says why: %s", kf_error());
	printf("anonymous region: %s\n", kf_error());
	kf_engine_destroy(e);
	kf_pagesrc_destroy(src);
	kf_vm_destroy(vm);
	kf_snapshot_close(snap);
}

/* Flip one bit of the tags section: the metadata checksum refuses it. */
static void damaged_tags_refused(const char *path)
{
	struct kf_snapshot *snap;
	struct kf_snap_header h;
	uint64_t off;
	uint8_t b;
	int fd;

	TEST_OK(kf_snapshot_open(path, &snap));
	h = *kf_snapshot_header(snap);
	kf_snapshot_close(snap);
	off = KF_ALIGN_UP(h.index_off + h.total_pages * sizeof(struct kf_snap_page), 8) +
	      (h.total_pages - 1) * KF_SNAP_TAG_BYTES;
	fd = open(path, O_RDWR);
	TEST_ASSERT(fd >= 0, "open %s: %m", path);
	TEST_ASSERT(pread(fd, &b, 1, off) == 1, "read: %m");
	b ^= 0x10;
	TEST_ASSERT(pwrite(fd, &b, 1, off) == 1, "write: %m");
	close(fd);
	TEST_ASSERT_EQ(kf_snapshot_open(path, &snap), -EBADMSG);
	TEST_ASSERT(strstr(kf_error(), "allocation tags"), "message: %s", kf_error());
	printf("damaged tags: %s\n", kf_error());
}

int main(void)
{
	char path[] = "/tmp/kf-mte-snap.XXXXXX";
	int fd;

	kf_test_require_kvm();
	fd = mkstemp(path);
	TEST_ASSERT(fd >= 0, "mkstemp: %m");
	close(fd);
	save(path);
	restore(path, false, KF_BACKEND_AUTO, false);
	restore(path, true, KF_BACKEND_EXIT, false);
	restore(path, true, KF_BACKEND_EXIT, true);
	restore(path, true, KF_BACKEND_UFFD_MINOR, false);
	restore(path, true, KF_BACKEND_UFFD_MINOR, true);
	anon_refused(path);
	damaged_tags_refused(path);
	unlink(path);
	TEST_PASS("MTE guest: tags stored, loaded and set by the VMM, and restored with the data eagerly and lazily from a snapshot");
}
