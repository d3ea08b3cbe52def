// SPDX-License-Identifier: MIT
/*
 * A guest exception reaches the host decoded (x86: vector, RIP, error code
 * and, for a page fault, the address; arm64: exception class, PC, ESR and
 * FAR); on several vCPUs at once each reports its own (every vCPU has its
 * own exception stack).
 */
#include <string.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

#define BAD_ADDR 0x10ULL	/* page 0 is never mapped */
#if defined(__x86_64__)
#define FAULT_ADDRESS "address"
#else
#define FAULT_ADDRESS "FAR"
#endif

static KF_GUEST void guest_null_read(uint64_t arg)
{
	GUEST_SYNC(1);
	(void)*(volatile uint64_t *)(BAD_ADDR + arg * 8);
}

static KF_GUEST void guest_ud(uint64_t arg)
{
	(void)arg;
	kt_guest_undefined();
}

static void expect_exception(void (*fn)(uint64_t), unsigned int nr_vcpus,
			     const char *const *needles)
{
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	unsigned int i;

	TEST_OK(kf_vm_create(&vm));
	for (i = 0; i < nr_vcpus; i++)
		TEST_OK(kf_vcpu_add(vm, i, fn, i, &vcpu));
	for (i = 0; i < nr_vcpus; i++)
		TEST_OK(kf_vcpu_start(kf_vm_vcpu(vm, i), NULL));
	for (i = 0; i < nr_vcpus; i++) {
		const char *const *n;
		const char *msg;
		char addr[64];

		vcpu = kf_vm_vcpu(vm, i);
		TEST_ASSERT_EQ(kf_vcpu_join(vcpu), -EFAULT);
		msg = kf_vcpu_errmsg(vcpu);
		for (n = needles; *n; n++)
			TEST_ASSERT(strstr(msg, *n), "'%s' missing from: %s", *n, msg);
		if (fn == guest_null_read) {
			/* each vCPU faulted on its own address */
			snprintf(addr, sizeof(addr), "%s 0x%llx",
				 FAULT_ADDRESS, BAD_ADDR + i * 8);
			TEST_ASSERT(strstr(msg, addr), "'%s' missing from: %s",
				    addr, msg);
		}
#if defined(__aarch64__)
		if (fn == guest_null_read) {
			const char *e = strstr(msg, "ESR 0x");
			unsigned long long esr = e ? strtoull(e + 4, NULL, 16) : 0;

			TEST_ASSERT(e, "ESR missing from: %s", msg);
			TEST_ASSERT_EQ(esr & 0x3f, 0x07);	/* DFSC */
			TEST_ASSERT_EQ(esr & (1 << 6), 0);	/* WnR */
		}
#endif
		printf("%s\n", msg);
	}
	kf_vm_destroy(vm);
}

int main(void)
{
	kf_test_require_kvm();
#if defined(__x86_64__)
	/* user-mode read of a not-present page: error code U=1, P=0, W=0 */
	expect_exception(guest_null_read, 1, (const char *const[]){
		"guest exception #PF (vector 14)", "error code 0x4", NULL });
	expect_exception(guest_null_read, 4, (const char *const[]){
		"#PF", NULL });
	expect_exception(guest_ud, 1, (const char *const[]){
		"guest exception #UD (vector 6)", NULL });
#else
	/* an EL1 read of an unmapped page: a data abort from the current EL
	 * (EC 0x25, synchronous vector +0x200), a level 3 translation fault
	 * (ESR: DFSC 0x07, WnR clear; other ISS bits are the CPU's) */
	expect_exception(guest_null_read, 1, (const char *const[]){
		"guest exception data abort (EC 0x25, vector +0x200)", NULL });
	expect_exception(guest_null_read, 4, (const char *const[]){
		"data abort", NULL });
	expect_exception(guest_ud, 1, (const char *const[]){
		"guest exception unknown reason (EC 0x00, vector +0x200)", NULL });
#endif
	TEST_PASS("guest exceptions decoded, one exception stack a vCPU");
}
