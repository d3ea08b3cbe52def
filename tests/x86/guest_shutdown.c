// SPDX-License-Identifier: MIT
/*
 * A guest that shuts down (triple fault) is reported with whether the
 * system slot still holds what the library wrote: a guest that wipes its
 * IDT and then faults says "GDT/IDT/stubs CHANGED"; one that only points
 * its exception stack (TSS RSP0) at a non-canonical address and faults
 * says "TSS CHANGED" with the GDT/IDT/stubs and page tables "as written".
 * Both guests run at CPL3 and find their tables with SIDT/SGDT/STR (no
 * UMIP), as the library maps the whole system slot user-writable.
 */
#include <string.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

struct __attribute__((packed)) table_reg {
	uint16_t limit;
	uint64_t base;
};

static KF_GUEST void guest_wipe_idt(uint64_t arg)
{
	struct table_reg idtr;
	volatile uint64_t *idt;
	unsigned int i;

	(void)arg;
	__asm__ volatile("sidt %0" : "=m"(idtr));
	idt = (volatile uint64_t *)idtr.base;
	for (i = 0; i < (idtr.limit + 1u) / 8; i++)
		idt[i] = 0;
	__asm__ volatile("ud2");
}

static KF_GUEST void guest_bad_rsp0(uint64_t arg)
{
	struct table_reg gdtr;
	uint16_t tr;
	const volatile uint64_t *desc;
	uint64_t tss;

	(void)arg;
	__asm__ volatile("sgdt %0" : "=m"(gdtr));
	__asm__ volatile("str %0" : "=r"(tr));
	desc = (const volatile uint64_t *)(gdtr.base + (tr & ~7u));
	tss = ((desc[0] >> 16) & 0xffffff) | ((desc[0] >> 56) << 24) |
	      (desc[1] << 32);
	/* RSP0 sits at byte 4 of the TSS: make it non-canonical */
	*(volatile uint32_t *)(tss + 4) = 0;
	*(volatile uint32_t *)(tss + 8) = 0x80000000u;
	__asm__ volatile("ud2");
}

static void expect_shutdown(void (*fn)(uint64_t), const char *needle)
{
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	const char *msg;

	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_vcpu_add(vm, 0, fn, 0, &vcpu));
	TEST_ASSERT(kf_vcpu_run(vcpu, NULL) < 0, "the guest did not fail");
	msg = kf_vcpu_errmsg(vcpu);
	printf("%s\n", msg);
	TEST_ASSERT(strstr(msg, "SHUTDOWN"), "no SHUTDOWN in: %s", msg);
	TEST_ASSERT(strstr(msg, needle), "'%s' missing from: %s", needle, msg);
	kf_vm_destroy(vm);
}

int main(void)
{
	kf_test_require_kvm();
	expect_shutdown(guest_wipe_idt, "GDT/IDT/stubs CHANGED");
	expect_shutdown(guest_bad_rsp0,
			"GDT/IDT/stubs as written, TSS CHANGED, page tables as written");
	TEST_PASS("a triple fault says whether the system slot is as the library wrote it");
}
