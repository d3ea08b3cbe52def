// SPDX-License-Identifier: MIT
/*
 * An MTE guest (kf_vm_enable_mte()): guest code at EL1 stores allocation
 * tags (STG) and loads them back (LDG); the VMM reads the same tags with
 * KVM_ARM_MTE_COPY_TAGS, sets others the guest then loads, and guest data
 * stays as written.  Enabling MTE after a vCPU exists is refused, and so
 * are a snapshot and a migration of the VM, with a message: they do not
 * carry allocation tags yet, and must never hand back a page without them.
 */
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/snapshot.h>
#include <kvmfault/test.h>

#define PAGES 2
#define GRANULE 16
#define GRANULES (KF_PAGE_SIZE / GRANULE)

/* STG x0, [x1] and LDG x0, [x1] as encoded words: the toolchain's base
 * architecture predates MTE. */
KF_GUEST_INLINE void guest_stg(uint64_t addr, uint64_t tag)
{
	register uint64_t x0 __asm__("x0") = tag << 56;
	register uint64_t x1 __asm__("x1") = addr;

	__asm__ volatile(".inst 0xd9200820" : : "r"(x0), "r"(x1) : "memory");
}

KF_GUEST_INLINE uint64_t guest_ldg(uint64_t addr)
{
	register uint64_t x0 __asm__("x0") = addr;
	register uint64_t x1 __asm__("x1") = addr;

	__asm__ volatile(".inst 0xd9600020" : "+r"(x0) : "r"(x1) : "memory");
	return x0 >> 56 & 0xf;
}

/*
 * One tag a page: under QEMU 7.2's software CPU, the rig's, a tag load
 * returns the tag of granule 14 or 15 of its page, whichever has the
 * parity of its own (from guest code and from KVM_ARM_MTE_COPY_TAGS
 * alike; found with this test), so tags that differ within a page cannot
 * be checked there.
 */
#define GUEST_TAG 0x5
#define VMM_TAG 0x9

static KF_GUEST void guest_tags(uint64_t base)
{
	volatile uint64_t *data = (volatile uint64_t *)base;
	uint64_t i, page1 = base + KF_PAGE_SIZE;

	*data = 0x6d7465;
	for (i = 0; i < GRANULES; i++)
		guest_stg(base + i * GRANULE, GUEST_TAG);
	for (i = 0; i < GRANULES; i += 17)
		GUEST_ASSERT_EQ(guest_ldg(base + i * GRANULE), GUEST_TAG);
	/* STG sets the tag only: the data stays. */
	GUEST_ASSERT_EQ(*data, 0x6d7465);
	GUEST_SYNC(1);
	/* The VMM tagged page 1. */
	for (i = 0; i < GRANULES; i += 17)
		GUEST_ASSERT_EQ(guest_ldg(page1 + i * GRANULE), VMM_TAG);
}

static uint64_t region_gpa;

static int copy_tags(struct kf_vm *vm, uint64_t gpa, uint8_t *tags,
		     uint64_t flags)
{
	struct kvm_arm_copy_mte_tags copy = {
		.guest_ipa = gpa,
		.length = KF_PAGE_SIZE,
		.addr = tags,
		.flags = flags,
	};

	return ioctl(kf_vm_fd(vm), KVM_ARM_MTE_COPY_TAGS, &copy);
}

static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	struct kf_vm *vm = kf_vcpu_vm(vcpu);
	uint8_t tags[GRANULES];
	unsigned int i;

	TEST_ASSERT_EQ(uc->args[0], 1);
	memset(tags, 0xff, sizeof(tags));
	TEST_ASSERT_EQ(copy_tags(vm, region_gpa, tags, KVM_ARM_TAGS_FROM_GUEST),
		       KF_PAGE_SIZE);
	for (i = 0; i < GRANULES; i++)
		TEST_ASSERT_EQ(tags[i], GUEST_TAG);
	memset(tags, VMM_TAG, sizeof(tags));
	TEST_ASSERT_EQ(copy_tags(vm, region_gpa + KF_PAGE_SIZE, tags, 0),
		       KF_PAGE_SIZE);
	return 0;
}

static void expect_refused(int ret, const char *what)
{
	TEST_ASSERT_EQ(ret, -EOPNOTSUPP);
	TEST_ASSERT(strstr(kf_error(), "MTE") && strstr(kf_error(), "refused"),
		    "%s: the message says why: %s", what, kf_error());
	printf("%s: %s\n", what, kf_error());
}

int main(void)
{
	struct kf_region r = { .size = PAGES * KF_PAGE_SIZE,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	struct kf_vcpu_ops ops = { .sync = on_sync };
	struct kf_mig_source_config mcfg = { 0 };
	struct kf_mig_report rep;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	char path[] = "/tmp/kf-mte-snap.XXXXXX";
	int fd, ret;

	kf_test_require_kvm();
	TEST_OK(kf_vm_create(&vm));
	ret = kf_vm_enable_mte(vm);
	if (ret == -EOPNOTSUPP)
		kf_test_skip("%s", kf_error());
	TEST_OK(ret);
	TEST_ASSERT(kf_vm_mte(vm), "kf_vm_mte() after enabling");
	TEST_OK(kf_vm_enable_mte(vm));	/* again: a no-op */
	r.gpa = region_gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, NULL));
	TEST_OK(kf_vcpu_add(vm, 0, guest_tags, r.gpa, &vcpu));
	TEST_ASSERT_EQ(kf_vm_enable_mte(vm), -EBUSY);
	TEST_OK(kf_vcpu_run(vcpu, &ops));
	TEST_ASSERT_EQ(kf_test_counters(vcpu).nr_ucalls, 2);	/* SYNC, DONE */

	fd = mkstemp(path);
	TEST_ASSERT(fd >= 0, "mkstemp: %m");
	close(fd);
	expect_refused(kf_snapshot_save(vm, &vcpu, 1, NULL, path, NULL),
		       "snapshot");
	unlink(path);
	expect_refused(kf_mig_source_run(vm, &vcpu, 1, &mcfg, &rep),
		       "migration");
	kf_vm_destroy(vm);
	TEST_PASS("MTE guest: tags stored and loaded at EL1, read and set by the VMM; snapshot and migration refused");
}
