// SPDX-License-Identifier: MIT
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <kvmfault/compiler.h>
#include <kvmfault/error.h>
#include <kvmfault/hash.h>
#include <kvmfault/kvm.h>
#include <kvmfault/poison.h>
#include <kvmfault/ucall.h>
#include <kvmfault/x86/guest.h>
#include <kvmfault/x86/processor.h>

#include "../vm_internal.h"
#include "../vm_objects.h"

/*
 * System slot (slot 0) layout, guest physical:
 *   [0, image end)          the program image, at its link addresses
 *   sys (2 MiB aligned):    GDT page, code page (return trampoline and
 *                           exception stubs), IDT page, one TSS a vCPU
 *                           sharing one I/O bitmap, page-table pool, one
 *                           area a vCPU
 */
/*
 * Each vCPU has a TSS of its own (its own RSP0 stack for exceptions); all of
 * them point at one I/O bitmap placed after the last TSS, which allows
 * every port.
 */
#define KF_X86_TSS_SIZE 0x68
#define KF_X86_IOMAP_SIZE (65536 / 8 + 1)
#define KF_X86_GDT_TSS0 5	/* GDT index of vCPU 0's TSS descriptor */
#define KF_X86_EXC_STUBS_OFFSET 0x100	/* in the code page */
#define KF_X86_HYPERCALL_OFFSET 0x400	/* in the code page */
#define KF_X86_IDT_ENTRIES (KF_X86_HYPERCALL_VECTOR + 1)

struct kf_x86_vm {
	uint64_t sys_gpa;
	uint64_t gdt_gpa;
	uint64_t tramp_gpa;
	uint64_t idt_gpa;
	uint64_t tss_gpa;	/* vCPU i's TSS at tss_gpa + i * KF_X86_TSS_SIZE */
	uint64_t iomap_gpa;
	uint64_t pt_gpa;	/* pool start; the PML4 is its first page */
	unsigned int pt_used;
	uint64_t vcpu_gpa;
	uint64_t sys_end;
	uint64_t max_gpa;
	struct kvm_cpuid2 *cpuid;
	uint64_t sys_digest;	/* GDT, code and IDT pages as written */
	uint64_t tss_digest;	/* the TSSs and their I/O bitmap, as of the last vCPU added */
	uint64_t pt_digest;	/* page tables as written, A/D bits aside */
};

/*
 * When a guest function returns it lands here: a DONE ucall, forever.
 * Position independent, copied into the system slot (the library itself
 * may be a shared object, which the guest does not map).
 */
_Static_assert(offsetof(struct kf_guest_vcpu, ucall) == 32, "trampoline offset");
_Static_assert(offsetof(struct kf_ucall, cmd) == 0, "trampoline offset");
__asm__(".pushsection .rodata\n"
	".globl kf_x86_return_code\n"
	".hidden kf_x86_return_code\n"
	"kf_x86_return_code:\n"
	"1: mov %gs:0, %rax\n"
	"   movq $2, 32(%rax)\n"	/* KF_UCALL_DONE */
	"   mov $0x4b46, %dx\n"	/* KF_ARCH_UCALL_PORT */
	"   out %al, %dx\n"
	"   jmp 1b\n"
	".globl kf_x86_return_end\n"
	".hidden kf_x86_return_end\n"
	"kf_x86_return_end:\n"
	".popsection\n");
extern const char kf_x86_return_code[], kf_x86_return_end[];

/*
 * Exception stubs, 16 bytes a vector, for vectors 0-31.  At CPL0 on the
 * vCPU's own RSP0 stack they put vector, error code, RIP and CR2 in the
 * vCPU's ucall as KF_UCALL_EXCEPTION and report it, forever.  Position
 * independent, copied into the system slot like the trampoline.
 */
_Static_assert(KF_UCALL_EXCEPTION == 5, "exception stubs");
__asm__(".pushsection .rodata\n"
	".macro kf_exc_stub vec, err\n"
	"  .balign 16\n"
	"  .if \\err == 0\n"
	"    pushq $0\n"
	"  .endif\n"
	"  pushq $\\vec\n"
	"  jmp 2f\n"
	".endm\n"
	".globl kf_x86_exc_code\n"
	".hidden kf_x86_exc_code\n"
	".balign 16\n"
	"kf_x86_exc_code:\n"
	"  kf_exc_stub 0, 0\n  kf_exc_stub 1, 0\n  kf_exc_stub 2, 0\n"
	"  kf_exc_stub 3, 0\n  kf_exc_stub 4, 0\n  kf_exc_stub 5, 0\n"
	"  kf_exc_stub 6, 0\n  kf_exc_stub 7, 0\n  kf_exc_stub 8, 1\n"
	"  kf_exc_stub 9, 0\n  kf_exc_stub 10, 1\n kf_exc_stub 11, 1\n"
	"  kf_exc_stub 12, 1\n kf_exc_stub 13, 1\n kf_exc_stub 14, 1\n"
	"  kf_exc_stub 15, 0\n kf_exc_stub 16, 0\n kf_exc_stub 17, 1\n"
	"  kf_exc_stub 18, 0\n kf_exc_stub 19, 0\n kf_exc_stub 20, 0\n"
	"  kf_exc_stub 21, 1\n kf_exc_stub 22, 0\n kf_exc_stub 23, 0\n"
	"  kf_exc_stub 24, 0\n kf_exc_stub 25, 0\n kf_exc_stub 26, 0\n"
	"  kf_exc_stub 27, 0\n kf_exc_stub 28, 0\n kf_exc_stub 29, 1\n"
	"  kf_exc_stub 30, 1\n kf_exc_stub 31, 0\n"
	"2: mov %gs:0, %rax\n"
	"   popq 40(%rax)\n"		/* args[0]: vector */
	"   popq 48(%rax)\n"		/* args[1]: error code */
	"   mov (%rsp), %rcx\n"
	"   mov %rcx, 56(%rax)\n"	/* args[2]: RIP */
	"   mov %cr2, %rcx\n"
	"   mov %rcx, 64(%rax)\n"	/* args[3]: CR2 */
	"   movq $5, 32(%rax)\n"	/* cmd: KF_UCALL_EXCEPTION */
	"   mov $0x4b46, %dx\n"
	"3: out %al, %dx\n"
	"   jmp 3b\n"
	".purgem kf_exc_stub\n"
	".globl kf_x86_exc_end\n"
	".hidden kf_x86_exc_end\n"
	"kf_x86_exc_end:\n"
	".popsection\n");
extern const char kf_x86_exc_code[], kf_x86_exc_end[];
_Static_assert(KF_UCALL_DONE == 2 && KF_ARCH_UCALL_PORT == 0x4b46, "trampoline");

static struct kf_x86_vm *kf_x86(struct kf_vm *vm)
{
	return vm->arch;
}

static void *kf_x86_hva(struct kf_vm *vm, uint64_t gpa)
{
	return kf_vm_gpa_to_hva(vm, gpa);
}

static int kf_x86_get_cpuid(struct kf_vm *vm, struct kf_x86_vm *x)
{
	int nent = 64;

	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) +
					      nent * sizeof(c->entries[0]));

		if (!c)
			return kf_fail(ENOMEM, "out of memory for CPUID");
		c->nent = nent;
		if (!ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c)) {
			x->cpuid = c;
			return 0;
		}
		free(c);
		if (errno != E2BIG || nent >= 4096)
			return kf_fail_errno(errno, "KVM_GET_SUPPORTED_CPUID");
		nent *= 2;
	}
}

static uint64_t kf_x86_phys_limit(const struct kvm_cpuid2 *c)
{
	uint32_t i;

	for (i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0x80000008)
			return KF_MIN(1ULL << (c->entries[i].eax & 0xff),
				      KF_X86_MAX_GPA);
	return 1ULL << 36;
}

static uint64_t kf_x86_pt_alloc(struct kf_vm *vm)
{
	struct kf_x86_vm *x = kf_x86(vm);
	uint64_t gpa;

	if (x->pt_used >= KF_X86_PT_POOL_PAGES)
		return 0;
	gpa = x->pt_gpa + x->pt_used++ * KF_PAGE_SIZE;
	memset(kf_x86_hva(vm, gpa), 0, KF_PAGE_SIZE);
	return gpa;
}

/* The next-level table behind entry *e, made when absent; 0 when full. */
static uint64_t *kf_x86_next_table(struct kf_vm *vm, uint64_t *e)
{
	if (!(*e & KF_X86_PTE_PRESENT)) {
		uint64_t gpa = kf_x86_pt_alloc(vm);

		if (!gpa)
			return NULL;
		*e = gpa | KF_X86_PTE_PRESENT | KF_X86_PTE_WRITE | KF_X86_PTE_USER;
	}
	return kf_x86_hva(vm, *e & KF_X86_PTE_ADDR);
}

static uint64_t *kf_x86_pd_entry(struct kf_vm *vm, uint64_t gpa)
{
	uint64_t *pml4 = kf_x86_hva(vm, kf_x86(vm)->pt_gpa);
	uint64_t *pdpt, *pd;

	pdpt = kf_x86_next_table(vm, &pml4[(gpa >> 39) & 511]);
	pd = pdpt ? kf_x86_next_table(vm, &pdpt[(gpa >> 30) & 511]) : NULL;
	return pd ? &pd[(gpa >> 21) & 511] : NULL;
}

/* The first 2 MiB through 4 KiB pages, leaving page 0 unmapped. */
static int kf_x86_map_low(struct kf_vm *vm, uint64_t *pde)
{
	uint64_t pt_gpa = kf_x86_pt_alloc(vm);
	uint64_t *pt;
	int i;

	if (!pt_gpa)
		return kf_fail(ENOSPC, "guest page-table pool is full");
	pt = kf_x86_hva(vm, pt_gpa);
	for (i = 1; i < 512; i++)
		pt[i] = (uint64_t)i * KF_PAGE_SIZE | KF_X86_PTE_PRESENT |
			KF_X86_PTE_WRITE | KF_X86_PTE_USER;
	*pde = pt_gpa | KF_X86_PTE_PRESENT | KF_X86_PTE_WRITE | KF_X86_PTE_USER;
	return 0;
}

/*
 * Digests of what the library wrote into the system slot, compared when a
 * vCPU shuts down: they tell a damaged slot (a stray host write) from a
 * guest that went wrong by itself.  The CPU sets Accessed and Dirty bits
 * in page-table entries, so those bits are left out.
 */
static uint64_t kf_x86_sys_digest(struct kf_vm *vm)
{
	struct kf_x86_vm *x = kf_x86(vm);

	return kf_hash(kf_x86_hva(vm, x->gdt_gpa), x->tss_gpa - x->gdt_gpa);
}

static uint64_t kf_x86_tss_digest(struct kf_vm *vm)
{
	struct kf_x86_vm *x = kf_x86(vm);

	return kf_hash(kf_x86_hva(vm, x->tss_gpa),
		       x->iomap_gpa + KF_X86_IOMAP_SIZE - x->tss_gpa);
}

static uint64_t kf_x86_pt_digest(struct kf_vm *vm)
{
	struct kf_x86_vm *x = kf_x86(vm);
	const uint64_t *e = kf_x86_hva(vm, x->pt_gpa);
	uint64_t i, n = (uint64_t)x->pt_used * KF_PAGE_SIZE / 8, h = KF_HASH_SEED;

	for (i = 0; i < n; i++) {
		uint64_t v = e[i] & ~(KF_X86_PTE_ACCESSED | KF_X86_PTE_DIRTY);

		h = kf_hash_continue(h, &v, sizeof(v));
	}
	return h;
}

int kf_arch_map_region(struct kf_vm *vm, uint64_t gpa, uint64_t size)
{
	uint64_t a = KF_ALIGN_DOWN(gpa, KF_X86_LARGE_PAGE);
	uint64_t end = KF_ALIGN_UP(gpa + size, KF_X86_LARGE_PAGE);

	for (; a < end; a += KF_X86_LARGE_PAGE) {
		uint64_t *pde = kf_x86_pd_entry(vm, a);

		if (!pde)
			return kf_fail(ENOSPC, "guest page-table pool is full mapping 0x%llx",
				       (unsigned long long)a);
		if (*pde & KF_X86_PTE_PRESENT)
			continue;
		if (a == 0) {
			int ret = kf_x86_map_low(vm, pde);

			if (ret)
				return ret;
			continue;
		}
		*pde = a | KF_X86_PTE_PRESENT | KF_X86_PTE_WRITE |
		       KF_X86_PTE_USER | KF_X86_PTE_LARGE;
	}
	kf_x86(vm)->pt_digest = kf_x86_pt_digest(vm);
	return 0;
}

static uint64_t kf_x86_gdt_entry(uint32_t base, uint32_t limit, uint8_t access,
				 uint8_t flags)
{
	return (limit & 0xffffULL) | ((base & 0xffffffULL) << 16) |
	       ((uint64_t)access << 40) | (((limit >> 16) & 0xfULL) << 48) |
	       ((uint64_t)(flags & 0xf) << 52) | ((uint64_t)(base >> 24) << 56);
}

static void kf_x86_setup_gdt(struct kf_vm *vm)
{
	struct kf_x86_vm *x = kf_x86(vm);
	uint64_t *gdt = kf_x86_hva(vm, x->gdt_gpa);
	uint8_t *iomap = kf_x86_hva(vm, x->iomap_gpa);
	unsigned int i;

	gdt[0] = 0;
	gdt[1] = kf_x86_gdt_entry(0, 0xfffff, 0x9b, 0xa);	/* kernel code, L */
	gdt[2] = kf_x86_gdt_entry(0, 0xfffff, 0x93, 0xc);	/* kernel data */
	gdt[3] = kf_x86_gdt_entry(0, 0xfffff, 0xfb, 0xa);	/* user code, L */
	gdt[4] = kf_x86_gdt_entry(0, 0xfffff, 0xf3, 0xc);	/* user data */
	for (i = 0; i < vm->max_vcpus; i++) {
		uint64_t base = x->tss_gpa + i * KF_X86_TSS_SIZE;
		uint8_t *tss = kf_x86_hva(vm, base);
		uint32_t limit = x->iomap_gpa + KF_X86_IOMAP_SIZE - 1 - base;

		gdt[KF_X86_GDT_TSS0 + 2 * i] =
			kf_x86_gdt_entry((uint32_t)base, limit, 0x89, 0);
		gdt[KF_X86_GDT_TSS0 + 2 * i + 1] = base >> 32;
		*(uint16_t *)(tss + 0x66) = x->iomap_gpa - base;
	}
	/*
	 * The bitmap allows every port, besides IOPL=3: some KVMs
	 * (pagetable-based ones among them) run user mode with IOPL=0.
	 */
	memset(iomap, 0, KF_X86_IOMAP_SIZE - 1);
	iomap[KF_X86_IOMAP_SIZE - 1] = 0xff;	/* the bitmap's terminator */
}

static void kf_x86_set_gate(uint64_t *idt, unsigned int vector,
			    uint64_t handler, unsigned int dpl)
{
	idt[2 * vector] = (handler & 0xffff) |
			  ((uint64_t)KF_X86_SEL_KERNEL_CS << 16) |
			  ((0x8eULL | dpl << 5) << 40) |	/* present interrupt gate */
			  ((handler >> 16 & 0xffff) << 48);
	idt[2 * vector + 1] = handler >> 32;
}

/*
 * KVM takes hypercalls only from CPL0, and guest code runs at CPL3: a gate
 * user code may call leads to this stub, the vendor's hypercall instruction
 * (VMMCALL on AMD, VMCALL on Intel) and IRETQ.  Registers are KVM's
 * hypercall ABI: nr in RAX, arguments in RBX, RCX, RDX, RSI; RAX returns.
 */
static void kf_x86_setup_hypercall(struct kf_vm *vm, uint64_t *idt)
{
	static const uint8_t vmcall[] = { 0x0f, 0x01, 0xc1, 0x48, 0xcf };
	static const uint8_t vmmcall[] = { 0x0f, 0x01, 0xd9, 0x48, 0xcf };
	struct kf_x86_vm *x = kf_x86(vm);
	uint64_t stub = x->tramp_gpa + KF_X86_HYPERCALL_OFFSET;
	bool amd = false;
	uint32_t i;

	for (i = 0; i < x->cpuid->nent; i++)
		if (x->cpuid->entries[i].function == 0)
			amd = x->cpuid->entries[i].ebx == 0x68747541 ||	/* "Auth" */
			      x->cpuid->entries[i].ebx == 0x6f677948;	/* "Hygo" */
	memcpy(kf_x86_hva(vm, stub), amd ? vmmcall : vmcall, sizeof(vmcall));
	kf_x86_set_gate(idt, KF_X86_HYPERCALL_VECTOR, stub, 3);
}

/* Interrupt gates for vectors 0-31 to the stubs, at CPL0; the hypercall
 * gate for CPL3. */
static void kf_x86_setup_idt(struct kf_vm *vm)
{
	struct kf_x86_vm *x = kf_x86(vm);
	uint64_t *idt = kf_x86_hva(vm, x->idt_gpa);
	uint64_t stubs = x->tramp_gpa + KF_X86_EXC_STUBS_OFFSET;
	unsigned int v;

	_Static_assert(KF_X86_EXC_STUBS_OFFSET + 32 * 16 + 64 <=
		       KF_X86_HYPERCALL_OFFSET, "exception stubs overlap");
	memcpy(kf_x86_hva(vm, stubs), kf_x86_exc_code,
	       kf_x86_exc_end - kf_x86_exc_code);
	for (v = 0; v < 32; v++)
		kf_x86_set_gate(idt, v, stubs + 16 * v, 0);
	kf_x86_setup_hypercall(vm, idt);
}

int kf_arch_vm_init(struct kf_vm *vm)
{
	struct kf_x86_vm *x;
	struct kf_region sys = { .backing = KF_BACKING_ANON };
	uint64_t start, end;
	int ret;

	ret = kf_image_extent(&start, &end);
	if (ret)
		return ret;
	x = calloc(1, sizeof(*x));
	if (!x)
		return kf_fail(ENOMEM, "out of memory");
	vm->arch = x;
	ret = kf_x86_get_cpuid(vm, x);
	if (ret)
		return ret;
	x->max_gpa = kf_x86_phys_limit(x->cpuid);

	x->sys_gpa = KF_ALIGN_UP(end, KF_X86_LARGE_PAGE);
	x->gdt_gpa = x->sys_gpa;
	x->tramp_gpa = x->gdt_gpa + KF_PAGE_SIZE;
	x->idt_gpa = x->tramp_gpa + KF_PAGE_SIZE;
	x->tss_gpa = x->idt_gpa + KF_PAGE_SIZE;
	x->iomap_gpa = x->tss_gpa + vm->max_vcpus * KF_X86_TSS_SIZE;
	x->pt_gpa = KF_ALIGN_UP(x->iomap_gpa + KF_X86_IOMAP_SIZE, KF_PAGE_SIZE);
	x->vcpu_gpa = x->pt_gpa + KF_X86_PT_POOL_PAGES * KF_PAGE_SIZE;
	x->sys_end = KF_ALIGN_UP(x->vcpu_gpa + vm->max_vcpus * KF_X86_VCPU_AREA,
				 KF_X86_LARGE_PAGE);

	sys.size = x->sys_end;
	x->pt_used = 1;		/* the PML4; fresh anonymous memory is zero */
	ret = kf_vm_add_region(vm, &sys, NULL);
	if (ret)
		return ret;
	ret = kf_image_copy(vm);
	if (ret)
		return ret;
	kf_x86_setup_gdt(vm);
	kf_x86_setup_idt(vm);
	memcpy(kf_x86_hva(vm, x->tramp_gpa), kf_x86_return_code,
	       kf_x86_return_end - kf_x86_return_code);
	x->sys_digest = kf_x86_sys_digest(vm);
	return 0;
}

void kf_arch_vm_free(struct kf_vm *vm)
{
	struct kf_x86_vm *x = vm->arch;

	if (!x)
		return;
	free(x->cpuid);
	free(x);
	vm->arch = NULL;
}

int kf_arch_vm_type(struct kf_vm *vm, unsigned int phys_bits,
		    unsigned long *kvm_type)
{
	if (phys_bits)
		return kf_fail(EOPNOTSUPP, "x86 VMs have the host's physical address width: no %u-bit VM",
			       phys_bits);
	*kvm_type = vm->type;
	return 0;
}

uint64_t kf_arch_max_gpa(struct kf_vm *vm)
{
	struct kf_x86_vm *x = vm->arch;

	return x ? x->max_gpa : KF_X86_MAX_GPA;
}

uint64_t kf_arch_free_gpa(struct kf_vm *vm)
{
	/* Test memory starts at 1 GiB, clear of the system slot. */
	return KF_MAX(1ULL << 30, KF_ALIGN_UP(kf_x86(vm)->sys_end, 1ULL << 30));
}

static void kf_x86_seg(struct kvm_segment *s, uint16_t sel, uint8_t type,
		       bool code)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = sel & 3;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

static int kf_x86_setup_sregs(struct kf_vcpu *vcpu, uint64_t area_gpa)
{
	struct kf_x86_vm *x = kf_x86(vcpu->vm);
	struct kvm_sregs sr;

	if (ioctl(vcpu->fd, KVM_GET_SREGS, &sr))
		return kf_fail_errno(errno, "KVM_GET_SREGS");
	sr.cr0 = KF_X86_CR0_PE | KF_X86_CR0_MP | KF_X86_CR0_ET | KF_X86_CR0_NE |
		 KF_X86_CR0_WP | KF_X86_CR0_PG;
	sr.cr3 = x->pt_gpa;
	sr.cr4 = KF_X86_CR4_PAE | KF_X86_CR4_OSFXSR | KF_X86_CR4_OSXMMEXCPT;
	if (vcpu->vm->poison_policy == KF_POISON_INJECT_MCE)
		sr.cr4 |= KF_X86_CR4_MCE;
	sr.efer = KF_X86_EFER_LME | KF_X86_EFER_LMA;

	kf_x86_seg(&sr.cs, KF_X86_SEL_USER_CS, 11, true);
	kf_x86_seg(&sr.ss, KF_X86_SEL_USER_DS, 3, false);
	kf_x86_seg(&sr.ds, KF_X86_SEL_USER_DS, 3, false);
	kf_x86_seg(&sr.es, KF_X86_SEL_USER_DS, 3, false);
	kf_x86_seg(&sr.fs, KF_X86_SEL_USER_DS, 3, false);
	kf_x86_seg(&sr.gs, KF_X86_SEL_USER_DS, 3, false);
	sr.gs.base = area_gpa;

	memset(&sr.tr, 0, sizeof(sr.tr));
	sr.tr.base = x->tss_gpa + vcpu->id * KF_X86_TSS_SIZE;
	sr.tr.limit = x->iomap_gpa + KF_X86_IOMAP_SIZE - 1 - sr.tr.base;
	sr.tr.selector = (KF_X86_GDT_TSS0 + 2 * vcpu->id) * 8;
	sr.tr.type = 11;
	sr.tr.present = 1;

	memset(&sr.ldt, 0, sizeof(sr.ldt));
	sr.ldt.type = 2;
	sr.ldt.present = 1;
	sr.ldt.unusable = 1;

	sr.gdt.base = x->gdt_gpa;
	sr.gdt.limit = (KF_X86_GDT_TSS0 + 2 * vcpu->vm->max_vcpus) * 8 - 1;
	sr.idt.base = x->idt_gpa;
	sr.idt.limit = KF_X86_IDT_ENTRIES * 16 - 1;
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &sr))
		return kf_fail_errno(errno, "KVM_SET_SREGS (long mode, CPL3)");
	return 0;
}

/* Machine-check banks for a VM that injects machine checks. */
static int kf_x86_setup_mce(struct kf_vcpu *vcpu)
{
	uint64_t supported = 0, cap;
	long banks;

	if (vcpu->vm->poison_policy != KF_POISON_INJECT_MCE)
		return 0;
	if (ioctl(vcpu->vm->kvm_fd, KVM_X86_GET_MCE_CAP_SUPPORTED, &supported))
		return kf_fail_errno(errno, "KVM_X86_GET_MCE_CAP_SUPPORTED");
	/* KVM_CAP_MCE says how many banks KVM emulates. */
	banks = kf_check_cap(vcpu->vm->kvm_fd, KVM_CAP_MCE);
	if (banks < KF_X86_MCE_BANK + 1)
		return kf_fail(EOPNOTSUPP, "KVM offers %ld machine-check banks, %d needed",
			       banks, KF_X86_MCE_BANK + 1);
	cap = (supported & (KF_X86_MCG_CTL_P | KF_X86_MCG_SER_P)) |
	      KF_MIN((uint64_t)banks, 10ULL);
	if (ioctl(vcpu->fd, KVM_X86_SETUP_MCE, &cap))
		return kf_fail_errno(errno, "KVM_X86_SETUP_MCE(0x%llx)",
				     (unsigned long long)cap);
	return 0;
}

int kf_arch_check_region(struct kf_vm *vm, uint64_t gpa, uint64_t size)
{
	(void)vm;
	(void)gpa;
	(void)size;
	return 0;
}

int kf_arch_enable_mte(struct kf_vm *vm)
{
	(void)vm;
	return kf_fail(EOPNOTSUPP, "MTE is an arm64 feature");
}

int kf_arch_copy_tags(struct kf_vm *vm, uint64_t gpa, uint64_t len,
		      uint8_t *tags, bool to_guest)
{
	(void)vm;
	(void)gpa;
	(void)len;
	(void)tags;
	(void)to_guest;
	return kf_fail(EOPNOTSUPP, "allocation tags are an arm64 MTE feature");
}

int kf_arch_check_inject_mce(struct kf_vm *vm)
{
	if (kf_check_cap(vm->kvm_fd, KVM_CAP_MCE) <= 0)
		return kf_fail(EOPNOTSUPP, "this KVM cannot inject machine checks (KVM_CAP_MCE)");
	return 0;
}

/*
 * An uncorrected, action-required data-load error (SRAR) at a physical
 * address, as a machine would report a poisoned page the CPU consumed.
 */
int kf_arch_inject_mce(struct kf_vcpu *vcpu, uint64_t gpa)
{
	struct kvm_x86_mce mce = {
		.status = KF_X86_MCI_STATUS_VAL | KF_X86_MCI_STATUS_UC |
			  KF_X86_MCI_STATUS_EN | KF_X86_MCI_STATUS_MISCV |
			  KF_X86_MCI_STATUS_ADDRV | KF_X86_MCI_STATUS_S |
			  KF_X86_MCI_STATUS_AR | KF_X86_MCACOD_DATA_LOAD,
		.addr = gpa,
		.misc = KF_X86_MCI_MISC_PHYS_ADDR | 12,	/* lsb: 4 KiB */
		.mcg_status = KF_X86_MCG_STATUS_MCIP | KF_X86_MCG_STATUS_EIPV,
		.bank = KF_X86_MCE_BANK,
	};

	if (ioctl(vcpu->fd, KVM_X86_SET_MCE, &mce))
		return kf_fail_errno(errno, "KVM_X86_SET_MCE for poisoned guest memory at 0x%llx",
				     (unsigned long long)gpa);
	return 0;
}

int kf_arch_vcpu_init(struct kf_vcpu *vcpu, void (*guest_fn)(uint64_t),
		      uint64_t arg)
{
	struct kf_vm *vm = vcpu->vm;
	struct kf_x86_vm *x = kf_x86(vm);
	uint64_t base = x->vcpu_gpa + vcpu->id * KF_X86_VCPU_AREA;
	uint64_t area_gpa = base + KF_X86_VCPU_STACK;
	uint64_t stack_top = area_gpa;
	struct kf_guest_vcpu *area = kf_x86_hva(vm, area_gpa);
	struct kvm_regs regs = { 0 };
	uint64_t rsp0;
	int ret;

	if (ioctl(vcpu->fd, KVM_SET_CPUID2, x->cpuid))
		return kf_fail_errno(errno, "KVM_SET_CPUID2");
	ret = kf_x86_setup_sregs(vcpu, area_gpa);
	if (!ret)
		ret = kf_x86_setup_mce(vcpu);
	if (ret)
		return ret;

	/* Exceptions run on the rest of the area's page, below its end;
	 * RSP0 sits at byte 4 of the TSS, unaligned. */
	rsp0 = area_gpa + KF_PAGE_SIZE;
	memcpy((char *)kf_x86_hva(vm, x->tss_gpa + vcpu->id * KF_X86_TSS_SIZE) + 4,
	       &rsp0, sizeof(rsp0));
	x->tss_digest = kf_x86_tss_digest(vm);
	memset(area, 0, sizeof(*area));
	area->self = (struct kf_guest_vcpu *)(uintptr_t)area_gpa;
	area->id = vcpu->id;
	vcpu->arch = area;

	/* A return from guest_fn lands on the DONE trampoline. */
	*(uint64_t *)kf_x86_hva(vm, stack_top - 8) = x->tramp_gpa;
	regs.rsp = stack_top - 8;
	regs.rip = (uintptr_t)guest_fn;
	regs.rdi = arg;
	regs.rflags = KF_X86_RFLAGS_FIXED | KF_X86_RFLAGS_IOPL3;
	if (ioctl(vcpu->fd, KVM_SET_REGS, &regs))
		return kf_fail_errno(errno, "KVM_SET_REGS");
	return 0;
}

void kf_arch_vcpu_free(struct kf_vcpu *vcpu)
{
	vcpu->arch = NULL;
}

struct kf_ucall *kf_arch_ucall(struct kf_vcpu *vcpu, const struct kf_exit *exit)
{
	struct kf_guest_vcpu *area = vcpu->arch;
	const struct kvm_run *run = vcpu->run;

	if (exit->kind != KF_EXIT_REASON || exit->reason != KVM_EXIT_IO ||
	    run->io.port != KF_ARCH_UCALL_PORT || run->io.direction != KVM_EXIT_IO_OUT)
		return NULL;
	area->nr_vcpus = vcpu->vm->nr_vcpus;
	return &area->ucall;
}

void kf_arch_describe(struct kf_vcpu *vcpu, char *buf, size_t len)
{
	struct kf_x86_vm *x = kf_x86(vcpu->vm);
	struct kvm_regs regs;

	if (ioctl(vcpu->fd, KVM_GET_REGS, &regs)) {
		snprintf(buf, len, "registers unreadable");
		return;
	}
	snprintf(buf, len, "rip 0x%llx rsp 0x%llx; system slot: GDT/IDT/stubs %s, TSS %s, page tables %s",
		 (unsigned long long)regs.rip, (unsigned long long)regs.rsp,
		 kf_x86_sys_digest(vcpu->vm) == x->sys_digest ? "as written" : "CHANGED",
		 kf_x86_tss_digest(vcpu->vm) == x->tss_digest ? "as written" : "CHANGED",
		 kf_x86_pt_digest(vcpu->vm) == x->pt_digest ? "as written" : "CHANGED");
}

static const char *const kf_x86_exception_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#09",
	"#TS", "#NP", "#SS", "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM",
	"#VE", "#CP", "#22", "#23", "#24", "#25", "#26", "#27", "#HV", "#VC",
	"#SX", "#31",
};

void kf_arch_exception_str(const struct kf_ucall *uc, char *buf, size_t len)
{
	uint64_t vec = uc->args[0];

	snprintf(buf, len, "%s (vector %llu) at rip 0x%llx, error code 0x%llx%s0x%llx",
		 vec < 32 ? kf_x86_exception_names[vec] : "?",
		 (unsigned long long)vec, (unsigned long long)uc->args[2],
		 (unsigned long long)uc->args[1],
		 vec == 14 ? ", address " : ", cr2 ",
		 (unsigned long long)uc->args[3]);
}

void kf_arch_raw_copy(void *dst, const void *src, size_t len)
{
	__asm__ volatile("rep movsb"
			 : "+D"(dst), "+S"(src), "+c"(len) : : "memory");
}
