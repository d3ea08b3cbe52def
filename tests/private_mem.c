// SPDX-License-Identifier: MIT
/*
 * Private memory through the library (<kvmfault/private_mem.h>), in a
 * software-protected VM (KVM_X86_SW_PROTECTED_VM, Linux 6.12 in the rig):
 *
 * - explicit conversions (KVM_HC_MAP_GPA_RANGE from the guest) in both
 *   directions, with what the guest reads after each: a page that changes
 *   state reads as zero, a page already in the requested state keeps its
 *   data, the host never sees private data;
 * - a range spanning two slots; bad requests (unaligned, empty, into a
 *   hole, private without a guest_memfd, unknown attributes) and a policy
 *   refusal fail in the guest with nothing converted;
 * - two vCPUs converting the same and adjacent ranges at once;
 * - private_mem_kvm_exits_test's two cases (a private access to a slot
 *   without guest_memfd, to a private page whose memslot is gone) with its
 *   assertions on the decoded exit, and the vCPU loop stopping with a
 *   clear message instead of looping;
 * - a missing shared page still goes to the demand-paging handler;
 * - snapshots refuse the VM.
 */
#include <linux/kvm_para.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kvmfault/migration_run.h>
#include <kvmfault/private_mem.h>
#include <kvmfault/snapshot.h>

#include "kernel_common.h"

#define SLOT_A_PAGES 8
#define SLOT_B_PAGES 8
#define RACE_ROUNDS 100

static struct {
	uint64_t a, b, c;	/* slot A, B (adjacent; guest_memfd), C (none) */
	uint64_t deny_gpa;	/* the policy refuses conversions touching it */
	unsigned int allowed, refused;
	pthread_mutex_t lock;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Pages [gpa, +pages) at a stage (kernel_common.h; stage 0 is zero). */
static KF_GUEST void fill(uint64_t gpa, uint64_t pages, uint64_t stage)
{
	uint64_t i;

	for (i = 0; i < pages; i++)
		kt_stage_fill(gpa + i * KF_PAGE_SIZE, gpa + i * KF_PAGE_SIZE, stage);
}

static KF_GUEST void check(uint64_t gpa, uint64_t pages, uint64_t stage)
{
	uint64_t i;

	for (i = 0; i < pages; i++)
		kt_stage_check(gpa + i * KF_PAGE_SIZE, gpa + i * KF_PAGE_SIZE, stage);
}

static KF_GUEST void convert(uint64_t gpa, uint64_t pages, bool to_private)
{
	GUEST_ASSERT_EQ(kf_guest_map_gpa_range(gpa, pages, to_private), 0);
}

static KF_GUEST void guest_explicit(uint64_t unused)
{
	uint64_t a = g.a, b = g.b, pg = KF_PAGE_SIZE;
	int64_t einval = -KVM_EINVAL;

	(void)unused;
	/* Shared at first: the host sees what the guest writes. */
	fill(a, 4, 1);
	GUEST_SYNC(1);
	/* To private: fresh (zero) private pages; the host sees none of 2. */
	convert(a, 4, true);
	check(a, 4, 0);
	fill(a, 4, 2);
	check(a, 4, 2);
	GUEST_SYNC(2);
	/* Back to shared: the shared pages were released, so zero; then the
	 * host's writes show through. */
	convert(a, 4, false);
	check(a, 4, 0);
	GUEST_SYNC(3);
	check(a, 4, 3);
	/* Part of a range: pages 1-2 change and read zero, 0 and 3 keep. */
	convert(a + pg, 2, true);
	check(a, 1, 3);
	check(a + pg, 2, 0);
	check(a + 3 * pg, 1, 3);
	fill(a + pg, 2, 4);
	/* Already private: kept. */
	convert(a + pg, 1, true);
	check(a + pg, 2, 4);
	/* A range spanning slots A and B. */
	fill(b - 2 * pg, 4, 5);
	convert(b - 2 * pg, 4, true);
	check(b - 2 * pg, 4, 0);
	fill(b - 2 * pg, 4, 6);

	/* Bad requests change nothing. */
	GUEST_ASSERT_EQ(kf_guest_map_gpa_range(a + 1, 1, false), einval);
	GUEST_ASSERT_EQ(kf_guest_map_gpa_range(a, 0, false), einval);
	GUEST_ASSERT_EQ(kf_guest_map_gpa_range(b + (SLOT_B_PAGES - 1) * pg, 2,
					       false), einval);
	GUEST_ASSERT_EQ(kf_guest_map_gpa_range(g.c, 1, true), einval);
	GUEST_ASSERT_EQ(kf_arch_guest_hypercall(KVM_HC_MAP_GPA_RANGE, a, 1,
						1 << 8), einval);
	GUEST_ASSERT_EQ(kf_guest_map_gpa_range(g.deny_gpa, 1, true), -EPERM);
	check(a, 1, 3);
	check(a + pg, 2, 4);
	check(b - 2 * pg, 4, 6);
	GUEST_SYNC(7);
}

static int policy(void *opaque, const struct kf_conversion *c)
{
	int ret = 0;

	TEST_ASSERT(opaque == &g, "policy opaque %p", opaque);
	TEST_ASSERT_EQ(c->cause, KF_CONVERSION_EXPLICIT);
	pthread_mutex_lock(&g.lock);
	if (g.deny_gpa >= c->gpa && g.deny_gpa - c->gpa < c->size) {
		g.refused++;
		ret = -EPERM;
	} else {
		g.allowed++;
	}
	pthread_mutex_unlock(&g.lock);
	return ret;
}

static uint8_t *hva(struct kf_vm *vm, uint64_t gpa)
{
	return kf_vm_gpa_to_hva(vm, gpa);
}

static void host_check(struct kf_vm *vm, uint64_t gpa, uint64_t pages,
		       uint64_t stage)
{
	const uint64_t *p = (const uint64_t *)hva(vm, gpa);
	uint64_t i;

	for (i = 0; i < pages * KF_PAGE_SIZE / 8; i++)
		TEST_ASSERT_EQ(p[i], kt_stage_word(gpa + i / 512 * KF_PAGE_SIZE,
						   stage, i % 512));
}

static int explicit_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	struct kf_vm *vm = kf_vcpu_vm(vcpu);
	uint64_t i;

	switch (uc->args[0]) {
	case 1:
		host_check(vm, g.a, 4, 1);
		TEST_ASSERT(!kf_vm_page_is_private(vm, g.a), "page shared");
		break;
	case 2:
		for (i = 0; i < 4; i++)
			TEST_ASSERT(kf_vm_page_is_private(vm, g.a + i * KF_PAGE_SIZE),
				    "page %llu private", (unsigned long long)i);
		host_check(vm, g.a, 4, 0);	/* released, never stage 2 */
		break;
	case 3:
		TEST_ASSERT(!kf_vm_page_is_private(vm, g.a), "page shared");
		/* The guest saw zero; now the host writes stage 3. */
		for (i = 0; i < 4; i++) {
			uint64_t *p = (uint64_t *)hva(vm, g.a + i * KF_PAGE_SIZE);
			unsigned int w;

			for (w = 0; w < 512; w++)
				p[w] = kt_stage_word(g.a + i * KF_PAGE_SIZE, 3, w);
		}
		break;
	case 7:
		TEST_ASSERT(!kf_vm_page_is_private(vm, g.a), "page 0 shared");
		TEST_ASSERT(kf_vm_page_is_private(vm, g.a + KF_PAGE_SIZE),
			    "page 1 private");
		TEST_ASSERT(kf_vm_page_is_private(vm, g.b), "B's first page private");
		TEST_ASSERT(!kf_vm_page_is_private(vm, g.b + 2 * KF_PAGE_SIZE),
			    "B's third page shared");
		TEST_ASSERT(!kf_vm_page_is_private(vm, g.deny_gpa),
			    "the refused page stays shared");
		break;
	default:
		TEST_ASSERT(0, "unexpected stage %llu",
			    (unsigned long long)uc->args[0]);
	}
	return 0;
}

static void add_slots(struct kf_vm *vm)
{
	struct kf_region r = {
		.flags = KVM_MEM_GUEST_MEMFD, .backing = KF_BACKING_MEMFD,
		.guest_memfd = -1,
	};

	r.gpa = g.a = kf_vm_free_gpa(vm);
	r.size = SLOT_A_PAGES * KF_PAGE_SIZE;
	TEST_OK(kf_vm_add_region(vm, &r, NULL));
	r.gpa = g.b = g.a + r.size;
	r.size = SLOT_B_PAGES * KF_PAGE_SIZE;
	r.backing = KF_BACKING_ANON;
	TEST_OK(kf_vm_add_region(vm, &r, NULL));
	/* C after a hole of 2 MiB, without guest_memfd. */
	r.gpa = g.c = KF_ALIGN_UP(g.b + r.size, 2ULL << 20) + (2ULL << 20);
	r.flags = 0;
	TEST_OK(kf_vm_add_region(vm, &r, NULL));
}

static void test_explicit(void)
{
	struct kf_vcpu_ops ops = { .sync = explicit_sync };
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;

	TEST_OK(kf_vm_create_type(&vm, KF_VM_TYPE_SW_PROTECTED));
	add_slots(vm);
	g.deny_gpa = g.a + 5 * KF_PAGE_SIZE;	/* used by nothing else */
	TEST_OK(KF_SYNC_GLOBAL_TO_GUEST(vm, g));
	TEST_OK(kf_vm_enable_conversions(vm, policy, &g));
	TEST_OK(kf_vcpu_add(vm, 0, guest_explicit, 0, &vcpu));
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "run: %s", kf_vcpu_errmsg(vcpu));
	TEST_ASSERT_EQ(g.refused, 1);
	TEST_ASSERT_EQ(g.allowed, 5);
	printf("explicit: 5 conversions allowed, 1 refused by the policy, 5 bad requests refused\n");
	kf_vm_destroy(vm);
}

/*
 * Two vCPUs: both flip one shared range and each flips a page of its own
 * next to it, checking its own page's data every round.
 */
static KF_GUEST void guest_race(uint64_t id)
{
	uint64_t shared = g.a, own = g.a + (1 + id) * KF_PAGE_SIZE;
	uint64_t r;

	for (r = 1; r <= RACE_ROUNDS; r++) {
		convert(shared, 1, r & 1);
		convert(own, 1, true);
		check(own, 1, 0);
		fill(own, 1, r);
		convert(shared, 1, !(r & 1));
		check(own, 1, r);
		convert(own, 1, false);
		check(own, 1, 0);
	}
}

static void test_race(void)
{
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	unsigned int i;

	TEST_OK(kf_vm_create_type(&vm, KF_VM_TYPE_SW_PROTECTED));
	if (kf_vm_max_vcpus(vm) < 2) {
		kf_vm_destroy(vm);
		printf("race: skipped, one vCPU only\n");
		return;
	}
	add_slots(vm);
	TEST_OK(KF_SYNC_GLOBAL_TO_GUEST(vm, g));
	TEST_OK(kf_vm_enable_conversions(vm, NULL, NULL));
	for (i = 0; i < 2; i++)
		TEST_OK(kf_vcpu_add(vm, i, guest_race, i, &vcpu));
	TEST_OK(kf_vm_run_all(vm, NULL));
	for (i = 0; i < 2; i++)
		TEST_ASSERT(!kf_vm_page_is_private(vm, g.a + (1 + i) * KF_PAGE_SIZE),
			    "vCPU %u's page ends shared", i);
	printf("race: 2 vCPUs, %d rounds of 4 conversions each\n", RACE_ROUNDS);
	kf_vm_destroy(vm);
}

static KF_GUEST void guest_read(uint64_t gpa)
{
	GUEST_ASSERT_EQ(*(volatile uint64_t *)gpa, kt_pattern(gpa, 0));
}

/* private_mem_kvm_exits_test's assertions on an exit, decoded. */
static void assert_upstream_exit(struct kf_vcpu *vcpu, uint64_t gpa)
{
	struct kf_exit exit;
	char buf[160];

	kf_vcpu_run_once(vcpu, &exit);
	TEST_ASSERT(exit.kind == KF_EXIT_MEMORY_FAULT, "%s",
		    kf_exit_str(&exit, buf, sizeof(buf)));
	TEST_ASSERT_EQ(exit.err, EFAULT);
	TEST_ASSERT_EQ(exit.fault.gpa, gpa);
	TEST_ASSERT_EQ(exit.fault.size, KF_PAGE_SIZE);
	TEST_ASSERT(exit.fault.private_mem, "PRIVATE flag: %s",
		    kf_exit_str(&exit, buf, sizeof(buf)));
	/* Upstream's flags exactly, besides the access flag we enabled. */
	TEST_ASSERT_EQ(exit.fault.raw_flags & ~(uint64_t)(KVM_MEMORY_EXIT_FLAG_READ |
							  KVM_MEMORY_EXIT_FLAG_WRITE |
							  KVM_MEMORY_EXIT_FLAG_EXEC),
		       KVM_MEMORY_EXIT_FLAG_PRIVATE);
}

/*
 * Upstream's other case: a private page whose memslot is gone (deleted
 * behind the library's back, which itself would make the range shared
 * first).
 */
static void test_private_slot_deleted(void)
{
	struct kvm_userspace_memory_region2 gone = { .flags = KVM_MEM_GUEST_MEMFD };
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;

	TEST_OK(kf_vm_create_type(&vm, KF_VM_TYPE_SW_PROTECTED));
	add_slots(vm);
	TEST_OK(kf_vm_convert(vm, g.a, KF_PAGE_SIZE, true));
	ms = kf_vm_find_slot(vm, g.a);
	gone.slot = ms->slot;
	gone.guest_phys_addr = ms->gpa;
	TEST_ASSERT(!ioctl(kf_vm_fd(vm), KVM_SET_USER_MEMORY_REGION2, &gone),
		    "delete memslot %u: %m", ms->slot);
	TEST_OK(kf_vcpu_add(vm, 0, guest_read, g.a, &vcpu));
	assert_upstream_exit(vcpu, g.a);
	printf("private page, memslot deleted: upstream's exit\n");
	kf_vm_destroy(vm);
}

/*
 * A private access to a slot without guest_memfd: the page's attribute is
 * set behind the library's back, so the record says shared.
 */
static void test_misconfigured(void)
{
	struct kvm_memory_attributes attrs = {
		.size = KF_PAGE_SIZE, .attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE,
	};
	struct kf_vcpu_ops ops = { 0 };
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	int ret;

	TEST_OK(kf_vm_create_type(&vm, KF_VM_TYPE_SW_PROTECTED));
	add_slots(vm);
	attrs.address = g.c;
	TEST_ASSERT(!ioctl(kf_vm_fd(vm), KVM_SET_MEMORY_ATTRIBUTES, &attrs),
		    "KVM_SET_MEMORY_ATTRIBUTES: %m");
	TEST_OK(kf_vcpu_add(vm, 0, guest_read, g.c, &vcpu));
	assert_upstream_exit(vcpu, g.c);
	/* The loop stops with a message instead of retrying for ever. */
	TEST_OK(kf_vm_enable_conversions(vm, NULL, NULL));
	ret = kf_vcpu_run(vcpu, &ops);
	TEST_ASSERT_EQ(ret, -EFAULT);
	TEST_ASSERT(strstr(kf_vcpu_errmsg(vcpu), "which no guest_memfd slot backs"),
		    "message: %s", kf_vcpu_errmsg(vcpu));
	printf("misconfigured slot: %s\n", kf_vcpu_errmsg(vcpu));
	kf_vm_destroy(vm);
}

/* The shared side of a guest_memfd slot demand-pages as ever. */
static int install(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	uint8_t page[KF_PAGE_SIZE] __attribute__((aligned(4096)));
	int *uffd = kf_vcpu_opaque(vcpu);

	TEST_ASSERT(!f->private_mem, "a shared fault");
	kt_fill_page(page, f->gpa);
	kt_uffd_copy(*uffd,
		     hva(kf_vcpu_vm(vcpu), KF_ALIGN_DOWN(f->gpa, KF_PAGE_SIZE)),
		     page);
	return 0;
}

static void test_shared_demand_paging(void)
{
	struct kf_vcpu_ops ops = { .memory_fault = install };
	struct kf_region r = {
		.flags = KVM_MEM_GUEST_MEMFD | KVM_MEM_EXIT_ON_MISSING,
		.backing = KF_BACKING_ANON, .guest_memfd = -1,
		.size = 2ULL << 20,
	};
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	int uffd;

	TEST_OK(kf_vm_create_type(&vm, KF_VM_TYPE_SW_PROTECTED));
	if (kf_check_cap(kf_vm_fd(vm), KVM_CAP_EXIT_ON_MISSING) <= 0) {
		printf("shared demand paging: skipped, no KVM_CAP_EXIT_ON_MISSING\n");
		kf_vm_destroy(vm);
		return;
	}
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	uffd = kt_uffd_open(0);
	kt_uffd_register(uffd, ms->hva, ms->size, UFFDIO_REGISTER_MODE_MISSING);
	TEST_OK(kf_vm_enable_conversions(vm, NULL, NULL));
	TEST_OK(kf_vcpu_add(vm, 0, guest_read, r.gpa + KF_PAGE_SIZE, &vcpu));
	kf_vcpu_set_opaque(vcpu, &uffd);
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "run: %s", kf_vcpu_errmsg(vcpu));
	TEST_ASSERT_EQ(kf_test_counters(vcpu).nr_memory_faults, 1);
	printf("shared demand paging: 1 missing-page exit served by the handler\n");
	close(uffd);
	kf_vm_destroy(vm);
}

/* Removing a slot leaves no private attribute behind at its addresses. */
static void test_remove_readd(void)
{
	struct kf_region plain = { .size = SLOT_A_PAGES * KF_PAGE_SIZE,
				   .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	unsigned int slot;

	TEST_OK(kf_vm_create_type(&vm, KF_VM_TYPE_SW_PROTECTED));
	add_slots(vm);
	TEST_ASSERT_EQ(kf_vm_convert(vm, g.a + 1, KF_PAGE_SIZE, true), -EINVAL);
	TEST_ASSERT_EQ(kf_vm_convert(vm, g.a, 0, true), -EINVAL);
	TEST_ASSERT_EQ(kf_vm_convert(vm, g.c, KF_PAGE_SIZE, true), -EINVAL);
	TEST_OK(kf_vm_convert(vm, g.a, 2 * KF_PAGE_SIZE, true));
	TEST_ASSERT(kf_vm_page_is_private(vm, g.a), "converted by the VMM");
	slot = kf_vm_find_slot(vm, g.a)->slot;
	TEST_OK(kf_vm_remove_region(vm, slot));
	plain.gpa = g.a;
	TEST_OK(kf_vm_add_region(vm, &plain, &ms));
	kt_fill_page(ms->hva, g.a);
	TEST_OK(kf_vcpu_add(vm, 0, guest_read, g.a, &vcpu));
	if (kf_vcpu_run(vcpu, NULL))
		kf_test_fail(__FILE__, __LINE__, "run: %s", kf_vcpu_errmsg(vcpu));
	printf("remove and re-add: the old private attribute is gone\n");
	kf_vm_destroy(vm);
}

static void test_snapshot_refused(void)
{
	char path[] = "/tmp/kvmfault-private-XXXXXX";
	struct kf_mig_source_config mig = { .listen_fd = -1, .plain = true };
	struct kf_mig_report rep;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	uint64_t bytes = 0;
	int fd;

	TEST_OK(kf_vm_create_type(&vm, KF_VM_TYPE_SW_PROTECTED));
	add_slots(vm);
	TEST_OK(kf_vcpu_add(vm, 0, guest_read, g.a, &vcpu));
	fd = mkstemp(path);
	TEST_ASSERT(fd >= 0, "mkstemp: %m");
	close(fd);
	unlink(path);
	TEST_ASSERT_EQ(kf_snapshot_save(vm, &vcpu, 1, NULL, path, &bytes),
		       -EOPNOTSUPP);
	TEST_ASSERT(strstr(kf_error(), "snapshot refused") &&
		    strstr(kf_error(), "guest_memfd"), "message: %s", kf_error());
	TEST_ASSERT(access(path, F_OK) && errno == ENOENT, "%s was written", path);
	printf("snapshot: %s\n", kf_error());
	TEST_ASSERT_EQ(kf_mig_source_run(vm, &vcpu, 1, &mig, &rep), -EOPNOTSUPP);
	TEST_ASSERT(strstr(kf_error(), "migration refused"), "message: %s",
		    kf_error());
	printf("migration: %s\n", kf_error());
	kf_vm_destroy(vm);
}

int main(void)
{
	kt_require_sw_protected_vm();
	test_explicit();
	test_race();
	test_misconfigured();
	test_private_slot_deleted();
	test_shared_demand_paging();
	test_remove_readd();
	test_snapshot_refused();
	TEST_PASS("explicit conversions both ways, bad requests, policy, 2 vCPUs racing, misconfigured slot, shared demand paging, snapshot refused");
}
