// SPDX-License-Identifier: MIT
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <kvmfault/arm64/guest.h>
#include <kvmfault/arm64/processor.h>
#include <kvmfault/compiler.h>
#include <kvmfault/error.h>
#include <kvmfault/hash.h>
#include <kvmfault/kvm.h>
#include <kvmfault/pagesrc.h>
#include <kvmfault/poison.h>
#include <kvmfault/ucall.h>

#include "../vm_internal.h"
#include "../vm_objects.h"
#include "arm64.h"

/*
 * System slot (slot 0) layout, guest physical:
 *   [0, image end)          the program image, at its link addresses
 *   sys (2 MiB aligned):    vector table (2 KiB), code page (the return
 *                           trampoline), page-table pool, one area a vCPU
 */
#define KF_ARM64_VECTORS_SIZE 0x800

struct kf_arm64_vm {
	uint64_t vectors_gpa;	/* the system area's start */
	uint64_t tramp_gpa;
	uint64_t pt_gpa;	/* pool start; the level-0 table is its first page */
	unsigned int pt_used;
	uint64_t vcpu_gpa;
	struct kvm_vcpu_init init;	/* the preferred target */
	uint64_t sys_digest;	/* vectors and code as written */
	uint64_t pt_digest;	/* page tables as written */
};

_Static_assert(offsetof(struct kf_guest_vcpu, ucall) == 32, "vector offsets");
_Static_assert(offsetof(struct kf_ucall, cmd) == 0, "vector offsets");
_Static_assert(offsetof(struct kf_ucall, args) == 8, "vector offsets");
_Static_assert(KF_UCALL_EXCEPTION == 5 && KF_UCALL_DONE == 2, "vector stubs");
_Static_assert(KF_ARCH_UCALL_GPA == 0x3fe00000ULL, "vector stubs");

/*
 * When a guest function returns it lands here (its link register): a DONE
 * ucall, forever.  Position independent, copied into the system slot.
 */
__asm__(".pushsection .rodata\n"
	".balign 4\n"
	".globl kf_arm64_return_code\n"
	".hidden kf_arm64_return_code\n"
	"kf_arm64_return_code:\n"
	"1: mrs x0, tpidr_el1\n"
	"   mov x1, #2\n"			/* KF_UCALL_DONE */
	"   str x1, [x0, #32]\n"
	"   movz x1, #0x3fe0, lsl #16\n"	/* KF_ARCH_UCALL_GPA */
	"   str xzr, [x1]\n"
	"   b 1b\n"
	".globl kf_arm64_return_end\n"
	".hidden kf_arm64_return_end\n"
	"kf_arm64_return_end:\n"
	".popsection\n");
extern const char kf_arm64_return_code[], kf_arm64_return_end[];

/*
 * The vector table: 16 entries of 0x80 bytes.  Each puts its offset,
 * ESR_EL1, ELR_EL1 and FAR_EL1 in the vCPU's ucall as KF_UCALL_EXCEPTION
 * and reports it, forever.  No stack is used: a fault on the stack itself
 * is reported too.
 */
__asm__(".pushsection .rodata\n"
	".macro kf_vector off\n"
	"  .balign 0x80\n"
	"  mrs x0, tpidr_el1\n"
	"  mov x1, #\\off\n"
	"  str x1, [x0, #40]\n"		/* args[0]: vector offset */
	"  mrs x1, esr_el1\n"
	"  str x1, [x0, #48]\n"		/* args[1]: ESR */
	"  mrs x1, elr_el1\n"
	"  str x1, [x0, #56]\n"		/* args[2]: ELR */
	"  mrs x1, far_el1\n"
	"  str x1, [x0, #64]\n"		/* args[3]: FAR */
	"  mov x1, #5\n"		/* KF_UCALL_EXCEPTION */
	"  str x1, [x0, #32]\n"
	"  movz x1, #0x3fe0, lsl #16\n"
	"1: str xzr, [x1]\n"
	"  b 1b\n"
	".endm\n"
	".balign 0x800\n"
	".globl kf_arm64_vectors\n"
	".hidden kf_arm64_vectors\n"
	"kf_arm64_vectors:\n"
	"  kf_vector 0x000\n kf_vector 0x080\n kf_vector 0x100\n kf_vector 0x180\n"
	"  kf_vector 0x200\n kf_vector 0x280\n kf_vector 0x300\n kf_vector 0x380\n"
	"  kf_vector 0x400\n kf_vector 0x480\n kf_vector 0x500\n kf_vector 0x580\n"
	"  kf_vector 0x600\n kf_vector 0x680\n kf_vector 0x700\n kf_vector 0x780\n"
	".purgem kf_vector\n"
	".globl kf_arm64_vectors_end\n"
	".hidden kf_arm64_vectors_end\n"
	"kf_arm64_vectors_end:\n"
	".popsection\n");
extern const char kf_arm64_vectors[], kf_arm64_vectors_end[];

static struct kf_arm64_vm *kf_arm64(struct kf_vm *vm)
{
	return vm->arch;
}

static void *kf_arm64_hva(struct kf_vm *vm, uint64_t gpa)
{
	return kf_vm_gpa_to_hva(vm, gpa);
}

static uint64_t kf_arm64_pt_alloc(struct kf_vm *vm)
{
	struct kf_arm64_vm *a = kf_arm64(vm);
	uint64_t gpa;

	if (a->pt_used >= KF_ARM64_PT_POOL_PAGES)
		return 0;
	gpa = a->pt_gpa + a->pt_used++ * KF_PAGE_SIZE;
	memset(kf_arm64_hva(vm, gpa), 0, KF_PAGE_SIZE);
	return gpa;
}

/* The next-level table behind entry *e, made when absent; NULL when full. */
static uint64_t *kf_arm64_next_table(struct kf_vm *vm, uint64_t *e)
{
	if (!(*e & KF_ARM64_PTE_VALID)) {
		uint64_t gpa = kf_arm64_pt_alloc(vm);

		if (!gpa)
			return NULL;
		*e = gpa | KF_ARM64_PTE_VALID | KF_ARM64_PTE_TABLE;
	}
	return kf_arm64_hva(vm, *e & KF_ARM64_PTE_ADDR);
}

/* The level-2 entry (a 2 MiB block) of gpa. */
static uint64_t *kf_arm64_l2_entry(struct kf_vm *vm, uint64_t gpa)
{
	uint64_t *l0 = kf_arm64_hva(vm, kf_arm64(vm)->pt_gpa);
	uint64_t *l1, *l2;

	l1 = kf_arm64_next_table(vm, &l0[(gpa >> 39) & 511]);
	l2 = l1 ? kf_arm64_next_table(vm, &l1[(gpa >> 30) & 511]) : NULL;
	return l2 ? &l2[(gpa >> 21) & 511] : NULL;
}

static uint64_t kf_arm64_leaf_attrs(unsigned int attr)
{
	uint64_t d = KF_ARM64_PTE_VALID | KF_ARM64_PTE_AF |
		     KF_ARM64_PTE_SH_INNER | KF_ARM64_PTE_ATTR(attr);

	if (attr == KF_ARM64_ATTR_DEVICE)
		d |= KF_ARM64_PTE_PXN | KF_ARM64_PTE_UXN;
	return d;
}

/* The first 2 MiB through 4 KiB pages, leaving page 0 unmapped. */
static int kf_arm64_map_low(struct kf_vm *vm, uint64_t *l2e)
{
	uint64_t pt_gpa = kf_arm64_pt_alloc(vm);
	uint64_t *pt;
	int i;

	if (!pt_gpa)
		return kf_fail(ENOSPC, "guest page-table pool is full");
	pt = kf_arm64_hva(vm, pt_gpa);
	for (i = 1; i < 512; i++)
		pt[i] = (uint64_t)i * KF_PAGE_SIZE | KF_ARM64_PTE_TABLE |
			kf_arm64_leaf_attrs(KF_ARM64_ATTR_NORMAL);
	*l2e = pt_gpa | KF_ARM64_PTE_VALID | KF_ARM64_PTE_TABLE;
	return 0;
}

static int kf_arm64_map_block(struct kf_vm *vm, uint64_t gpa, unsigned int attr)
{
	uint64_t *l2e = kf_arm64_l2_entry(vm, gpa);

	if (!l2e)
		return kf_fail(ENOSPC, "guest page-table pool is full mapping 0x%llx",
			       (unsigned long long)gpa);
	if (*l2e & KF_ARM64_PTE_VALID)
		return 0;
	if (gpa == 0)
		return kf_arm64_map_low(vm, l2e);
	*l2e = gpa | kf_arm64_leaf_attrs(attr);	/* a block: bit 1 clear */
	return 0;
}

/*
 * Digests of what the library wrote into the system slot, compared when a
 * vCPU stops unexpectedly: a damaged slot (a stray host write) or a guest
 * that went wrong by itself.  The walker sets no bits here (AF is set in
 * every leaf and no leaf uses hardware dirty state).
 */
static uint64_t kf_arm64_sys_digest(struct kf_vm *vm)
{
	struct kf_arm64_vm *a = kf_arm64(vm);

	return kf_hash(kf_arm64_hva(vm, a->vectors_gpa),
		       a->tramp_gpa + KF_PAGE_SIZE - a->vectors_gpa);
}

static uint64_t kf_arm64_pt_digest(struct kf_vm *vm)
{
	struct kf_arm64_vm *a = kf_arm64(vm);

	return kf_hash(kf_arm64_hva(vm, a->pt_gpa),
		       (uint64_t)a->pt_used * KF_PAGE_SIZE);
}

int kf_arch_map_region(struct kf_vm *vm, uint64_t gpa, uint64_t size)
{
	uint64_t b = KF_ALIGN_DOWN(gpa, KF_ARM64_BLOCK);
	uint64_t end = KF_ALIGN_UP(gpa + size, KF_ARM64_BLOCK);
	int ret = 0;

	/* With MTE, regions are tagged memory; the system slot is not. */
	for (; b < end && !ret; b += KF_ARM64_BLOCK)
		ret = kf_arm64_map_block(vm, b, vm->mte ? KF_ARM64_ATTR_TAGGED :
						   KF_ARM64_ATTR_NORMAL);
	/* Entries only go from invalid to valid (no break-before-make); make
	 * them visible before the caller tells a running guest. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	kf_arm64(vm)->pt_digest = kf_arm64_pt_digest(vm);
	return ret;
}

/*
 * Guest and host read one counter (kf_guest_cycles(), kf_host_cycles())
 * when the VM's counter offset is 0; KVM otherwise starts the guest's
 * virtual counter near 0.
 */
static int kf_arm64_zero_counter_offset(struct kf_vm *vm)
{
	struct kf_arm64_counter_offset off = { 0 };

	if (kf_check_cap(vm->fd, KF_ARM64_CAP_COUNTER_OFFSET) <= 0)
		return 0;
	if (ioctl(vm->fd, KF_ARM64_SET_COUNTER_OFFSET, &off))
		return kf_fail_errno(errno, "KVM_ARM_SET_COUNTER_OFFSET(0)");
	return 0;
}

int kf_arch_vm_init(struct kf_vm *vm)
{
	struct kf_arm64_vm *a;
	struct kf_region sys = { .backing = KF_BACKING_ANON };
	uint64_t start, end;
	int ret;

	ret = kf_image_extent(&start, &end);
	if (ret)
		return ret;
	a = calloc(1, sizeof(*a));
	if (!a)
		return kf_fail(ENOMEM, "out of memory");
	vm->arch = a;
	if (ioctl(vm->fd, KVM_ARM_PREFERRED_TARGET, &a->init))
		return kf_fail_errno(errno, "KVM_ARM_PREFERRED_TARGET");
	ret = kf_arm64_zero_counter_offset(vm);
	if (ret)
		return ret;

	a->vectors_gpa = KF_ALIGN_UP(end, KF_ARM64_BLOCK);
	a->tramp_gpa = a->vectors_gpa + KF_PAGE_SIZE;
	a->pt_gpa = a->tramp_gpa + KF_PAGE_SIZE;
	a->vcpu_gpa = a->pt_gpa + KF_ARM64_PT_POOL_PAGES * KF_PAGE_SIZE;
	sys.size = KF_ALIGN_UP(a->vcpu_gpa + vm->max_vcpus * KF_ARM64_VCPU_AREA,
			       KF_ARM64_BLOCK);
	if (sys.size > KF_ARCH_UCALL_GPA)
		return kf_fail(ENOSPC, "the program image (up to 0x%llx) leaves no room for the system slot below the ucall block at 0x%llx",
			       (unsigned long long)end, KF_ARCH_UCALL_GPA);

	a->pt_used = 1;		/* the level-0 table; fresh anonymous memory is zero */
	ret = kf_vm_add_region(vm, &sys, NULL);
	if (!ret)
		ret = kf_arm64_map_block(vm, KF_ARCH_UCALL_GPA, KF_ARM64_ATTR_DEVICE);
	if (!ret)
		ret = kf_image_copy(vm);
	if (ret)
		return ret;
	_Static_assert(KF_ARM64_VECTORS_SIZE <= KF_PAGE_SIZE, "vectors");
	memcpy(kf_arm64_hva(vm, a->vectors_gpa), kf_arm64_vectors,
	       kf_arm64_vectors_end - kf_arm64_vectors);
	memcpy(kf_arm64_hva(vm, a->tramp_gpa), kf_arm64_return_code,
	       kf_arm64_return_end - kf_arm64_return_code);
	a->sys_digest = kf_arm64_sys_digest(vm);
	a->pt_digest = kf_arm64_pt_digest(vm);
	return 0;
}

void kf_arch_vm_free(struct kf_vm *vm)
{
	free(vm->arch);
	vm->arch = NULL;
}

/*
 * The VM's IPA size: KVM's default of 40 bits (3 levels of stage-2 tables)
 * unless asked for another, capped at what KVM allows, which a host below
 * 40 bits needs (KVM refuses its default there).  Without
 * KVM_CAP_ARM_VM_IPA_SIZE every VM has 40 bits.
 */
int kf_arch_vm_type(struct kf_vm *vm, unsigned int phys_bits,
		    unsigned long *kvm_type)
{
	int limit = kf_check_cap(vm->kvm_fd, KVM_CAP_ARM_VM_IPA_SIZE);

	*kvm_type = vm->type;
	if (limit <= 0) {
		if (phys_bits && phys_bits != KF_ARM64_DEFAULT_IPA_BITS)
			return kf_fail(EOPNOTSUPP, "this KVM makes %u-bit VMs only (no KVM_CAP_ARM_VM_IPA_SIZE): no %u-bit VM",
				       KF_ARM64_DEFAULT_IPA_BITS, phys_bits);
		vm->phys_bits = KF_ARM64_DEFAULT_IPA_BITS;
		return 0;
	}
	if (phys_bits && (phys_bits < 32 || phys_bits > (unsigned int)limit ||
			  phys_bits > KF_ARM64_VA_BITS))
		return kf_fail(EINVAL, "a %u-bit VM: this KVM allows 32 to %d bits, the library's identity map %u",
			       phys_bits, limit, KF_ARM64_VA_BITS);
	vm->phys_bits = phys_bits ? phys_bits :
			KF_MIN((unsigned int)limit, (unsigned int)KF_ARM64_DEFAULT_IPA_BITS);
	*kvm_type |= KVM_VM_TYPE_ARM_IPA_SIZE(vm->phys_bits);
	return 0;
}

uint64_t kf_arch_max_gpa(struct kf_vm *vm)
{
	return 1ULL << vm->phys_bits;
}

uint64_t kf_arch_free_gpa(struct kf_vm *vm)
{
	/* Test memory starts at 1 GiB, just above the ucall block, which
	 * kf_arch_vm_init() keeps above the system slot. */
	(void)vm;
	_Static_assert(KF_ARCH_UCALL_GPA + KF_ARM64_BLOCK == 1ULL << 30, "free gpa");
	return 1ULL << 30;
}

static int kf_arm64_set_reg(struct kf_vcpu *vcpu, uint64_t id, uint64_t val,
			    const char *name)
{
	struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)&val };

	if (ioctl(vcpu->fd, KVM_SET_ONE_REG, &reg))
		return kf_fail_errno(errno, "vCPU %u: KVM_SET_ONE_REG(%s)",
				     vcpu->id, name);
	return 0;
}

static int kf_arm64_get_reg(struct kf_vcpu *vcpu, uint64_t id, uint64_t *val)
{
	struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)val };

	return ioctl(vcpu->fd, KVM_GET_ONE_REG, &reg) ? -errno : 0;
}

/* TCR_EL1.IPS: the smallest physical address size holding the IPA. */
static uint64_t kf_arm64_tcr_ips(struct kf_vm *vm)
{
	static const unsigned int bits[] = { 32, 36, 40, 42, 44, 48 };
	uint64_t max = kf_arch_max_gpa(vm), i;

	for (i = 0; i < KF_ARRAY_SIZE(bits) - 1 && 1ULL << bits[i] < max; i++)
		;
	return i;
}

/* EL1 with the MMU on, the identity map and the vector table. */
static int kf_arm64_setup_el1(struct kf_vcpu *vcpu, uint64_t area_gpa)
{
	struct kf_arm64_vm *a = kf_arm64(vcpu->vm);
	const struct {
		uint64_t id, val;
		const char *name;
	} regs[] = {
		{ KF_ARM64_MAIR_EL1, KF_ARM64_MAIR, "MAIR_EL1" },
		{ KF_ARM64_TCR_EL1, KF_ARM64_TCR_T0SZ(KF_ARM64_VA_BITS) |
			KF_ARM64_TCR_IRGN0_WB | KF_ARM64_TCR_ORGN0_WB |
			KF_ARM64_TCR_SH0_INNER | KF_ARM64_TCR_TG0_4K |
			KF_ARM64_TCR_EPD1 | KF_ARM64_TCR_TBI0 |
			kf_arm64_tcr_ips(vcpu->vm) << KF_ARM64_TCR_IPS_SHIFT, "TCR_EL1" },
		{ KF_ARM64_TTBR0_EL1, a->pt_gpa, "TTBR0_EL1" },
		{ KF_ARM64_VBAR_EL1, a->vectors_gpa, "VBAR_EL1" },
		{ KF_ARM64_CPACR_EL1, KF_ARM64_CPACR_FPEN, "CPACR_EL1" },
		{ KF_ARM64_TPIDR_EL1, area_gpa, "TPIDR_EL1" },
		{ KF_ARM64_SCTLR_EL1, KF_ARM64_SCTLR_RES1 | KF_ARM64_SCTLR_M |
			KF_ARM64_SCTLR_C | KF_ARM64_SCTLR_I |
			(vcpu->vm->mte ? KF_ARM64_SCTLR_ATA : 0), "SCTLR_EL1" },
	};
	unsigned int i;
	int ret = 0;

	for (i = 0; i < KF_ARRAY_SIZE(regs) && !ret; i++)
		ret = kf_arm64_set_reg(vcpu, regs[i].id, regs[i].val, regs[i].name);
	return ret;
}

/*
 * KVM checks that a memslot's memory allows MTE when the slot is made,
 * and only once MTE is on: regions added before would fail at run time.
 */
int kf_arch_enable_mte(struct kf_vm *vm)
{
	struct kvm_enable_cap cap = { .cap = KVM_CAP_ARM_MTE };
	unsigned int i;

	for (i = 1; i < KF_MAX_SLOTS; i++)
		if (vm->slots[i].used)
			return kf_fail(EBUSY, "enable MTE before adding regions (slot %u exists)", i);
	if (kf_check_cap(vm->fd, KVM_CAP_ARM_MTE) <= 0)
		return kf_fail(EOPNOTSUPP, "this KVM offers no MTE (KVM_CAP_ARM_MTE): no MTE in the host CPU or kernel");
	if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap))
		return kf_fail_errno(errno, "KVM_ENABLE_CAP(KVM_CAP_ARM_MTE)");
	vm->mte = true;
	return 0;
}

/* KVM_ARM_MTE_COPY_TAGS of whole host pages. */
static int kf_arm64_copy_tags(struct kf_vm *vm, uint64_t gpa, uint64_t len,
			      uint8_t *tags, bool to_guest)
{
	uint64_t done = 0;

	/* KVM may copy less than asked (a page it cannot map stops it);
	 * ioctl() returns an int: ask for at most 1 GiB at a time. */
	while (done < len) {
		struct kvm_arm_copy_mte_tags copy = {
			.guest_ipa = gpa + done,
			.length = KF_MIN(len - done, 1ULL << 30),
			.addr = tags + done / KF_MTE_GRANULE,
			.flags = to_guest ? 0 : KVM_ARM_TAGS_FROM_GUEST,
		};
		int n = ioctl(vm->fd, KVM_ARM_MTE_COPY_TAGS, &copy);

		if (n < 0)
			return kf_fail_errno(errno, "KVM_ARM_MTE_COPY_TAGS %s guest at 0x%llx",
					     to_guest ? "to the" : "from the",
					     (unsigned long long)(gpa + done));
		if (n == 0 || n % KF_PAGE_SIZE)
			return kf_fail(EIO, "KVM_ARM_MTE_COPY_TAGS at 0x%llx copied %d bytes",
				       (unsigned long long)(gpa + done), n);
		done += n;
	}
	return 0;
}

/*
 * KVM copies whole host pages: a range of smaller pages goes through the
 * host pages around it (written back whole, with their other tags as
 * they were: the callers' vCPUs are stopped).
 */
int kf_arch_copy_tags(struct kf_vm *vm, uint64_t gpa, uint64_t len,
		      uint8_t *tags, bool to_guest)
{
	uint64_t hps = kf_host_page_size(), start = KF_ALIGN_DOWN(gpa, hps);
	uint64_t span = KF_ALIGN_UP(gpa + len, hps) - start;
	uint8_t *buf;
	int ret;

	if (!vm->mte)
		return kf_fail(EINVAL, "allocation tags: the VM has no MTE");
	if (start == gpa && span == len)
		return kf_arm64_copy_tags(vm, gpa, len, tags, to_guest);
	buf = malloc(span / KF_MTE_GRANULE);
	if (!buf)
		return kf_fail(ENOMEM, "out of memory for allocation tags");
	ret = kf_arm64_copy_tags(vm, start, span, buf, false);
	if (!ret && to_guest) {
		memcpy(buf + (gpa - start) / KF_MTE_GRANULE, tags, len / KF_MTE_GRANULE);
		ret = kf_arm64_copy_tags(vm, start, span, buf, true);
	} else if (!ret) {
		memcpy(tags, buf + (gpa - start) / KF_MTE_GRANULE, len / KF_MTE_GRANULE);
	}
	free(buf);
	return ret;
}

int kf_arch_check_region(struct kf_vm *vm, uint64_t gpa, uint64_t size)
{
	(void)vm;
	if (gpa < KF_ARCH_UCALL_GPA + KF_ARM64_BLOCK && gpa + size > KF_ARCH_UCALL_GPA)
		return kf_fail(EINVAL, "region [0x%llx, +0x%llx) overlaps the ucall block [0x%llx, +0x%llx)",
			       (unsigned long long)gpa, (unsigned long long)size,
			       KF_ARCH_UCALL_GPA, KF_ARM64_BLOCK);
	return 0;
}

int kf_arch_check_inject_mce(struct kf_vm *vm)
{
	if (kf_check_cap(vm->fd, KVM_CAP_ARM_INJECT_EXT_DABT) <= 0)
		return kf_fail(EOPNOTSUPP, "this KVM cannot inject external aborts (KVM_CAP_ARM_INJECT_EXT_DABT)");
	return 0;
}

/*
 * A synchronous external abort on the access that hit poisoned memory,
 * as a machine reports one the CPU consumed.  KVM injects a data abort at
 * the faulting address of the vCPU's last stage-2 abort, which is the
 * poisoned access on both paths that get here (SIGBUS inside KVM_RUN, an
 * EHWPOISON exit): gpa only names it in messages.  A poisoned instruction
 * fetch or table walk is reported as a data abort too.
 */
int kf_arch_inject_mce(struct kf_vcpu *vcpu, uint64_t gpa)
{
	struct kvm_vcpu_events ev;

	memset(&ev, 0, sizeof(ev));
	ev.exception.ext_dabt_pending = 1;
	if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev))
		return kf_fail_errno(errno, "KVM_SET_VCPU_EVENTS (external abort) for poisoned guest memory at 0x%llx",
				     (unsigned long long)gpa);
	return 0;
}

int kf_arch_vcpu_init(struct kf_vcpu *vcpu, void (*guest_fn)(uint64_t),
		      uint64_t arg)
{
	struct kf_vm *vm = vcpu->vm;
	struct kf_arm64_vm *a = kf_arm64(vm);
	uint64_t base = a->vcpu_gpa + vcpu->id * KF_ARM64_VCPU_AREA;
	uint64_t area_gpa = base + KF_ARM64_VCPU_STACK;
	struct kf_guest_vcpu *area = kf_arm64_hva(vm, area_gpa);
	struct kvm_vcpu_init init = a->init;
	int ret;

	if (ioctl(vcpu->fd, KVM_ARM_VCPU_INIT, &init))
		return kf_fail_errno(errno, "vCPU %u: KVM_ARM_VCPU_INIT (target %u)",
				     vcpu->id, init.target);
	ret = kf_arm64_setup_el1(vcpu, area_gpa);
	if (ret)
		return ret;
	memset(area, 0, sizeof(*area));
	area->self = (struct kf_guest_vcpu *)(uintptr_t)area_gpa;
	area->id = vcpu->id;
	vcpu->arch = area;

	/* A return from guest_fn lands on the DONE trampoline. */
	if ((ret = kf_arm64_set_reg(vcpu, KF_ARM64_CORE_REG(regs.regs[30]),
				    a->tramp_gpa, "X30")) ||
	    (ret = kf_arm64_set_reg(vcpu, KF_ARM64_CORE_REG(regs.regs[0]),
				    arg, "X0")) ||
	    (ret = kf_arm64_set_reg(vcpu, KF_ARM64_CORE_REG(sp_el1),
				    area_gpa, "SP_EL1")) ||
	    (ret = kf_arm64_set_reg(vcpu, KF_ARM64_CORE_REG(regs.pstate),
				    KF_ARM64_PSTATE_EL1H_DAIF, "PSTATE")))
		return ret;
	return kf_arm64_set_reg(vcpu, KF_ARM64_CORE_REG(regs.pc),
				(uintptr_t)guest_fn, "PC");
}

void kf_arch_vcpu_free(struct kf_vcpu *vcpu)
{
	vcpu->arch = NULL;
}

struct kf_ucall *kf_arch_ucall(struct kf_vcpu *vcpu, const struct kf_exit *exit)
{
	struct kf_guest_vcpu *area = vcpu->arch;
	const struct kvm_run *run = vcpu->run;

	if (exit->kind != KF_EXIT_REASON || exit->reason != KVM_EXIT_MMIO ||
	    run->mmio.phys_addr != KF_ARCH_UCALL_GPA || !run->mmio.is_write)
		return NULL;
	area->nr_vcpus = vcpu->vm->nr_vcpus;
	return &area->ucall;
}

void kf_arch_describe(struct kf_vcpu *vcpu, char *buf, size_t len)
{
	struct kf_arm64_vm *a = kf_arm64(vcpu->vm);
	uint64_t pc = 0, sp = 0;

	if (kf_arm64_get_reg(vcpu, KF_ARM64_CORE_REG(regs.pc), &pc) ||
	    kf_arm64_get_reg(vcpu, KF_ARM64_CORE_REG(sp_el1), &sp)) {
		snprintf(buf, len, "registers unreadable");
		return;
	}
	snprintf(buf, len, "pc 0x%llx sp 0x%llx; system slot: vectors/code %s, page tables %s",
		 (unsigned long long)pc, (unsigned long long)sp,
		 kf_arm64_sys_digest(vcpu->vm) == a->sys_digest ? "as written" : "CHANGED",
		 kf_arm64_pt_digest(vcpu->vm) == a->pt_digest ? "as written" : "CHANGED");
}

/* The exception classes a guest of this library can take. */
static const char *kf_arm64_ec_name(unsigned int ec)
{
	switch (ec) {
	case 0x00: return "unknown reason";
	case 0x01: return "WFI/WFE";
	case 0x07: return "FP/SIMD access";
	case 0x0e: return "illegal execution state";
	case 0x15: return "SVC";
	case 0x18: return "system register access";
	case 0x20: return "instruction abort, lower EL";
	case 0x21: return "instruction abort";
	case 0x22: return "PC alignment";
	case 0x24: return "data abort, lower EL";
	case 0x25: return "data abort";
	case 0x26: return "SP alignment";
	case 0x2f: return "SError";
	case 0x3c: return "BRK";
	default: return "exception";
	}
}

void kf_arch_exception_str(const struct kf_ucall *uc, char *buf, size_t len)
{
	uint64_t esr = uc->args[1];
	unsigned int ec = KF_ARM64_ESR_EC(esr);

	snprintf(buf, len, "%s (EC 0x%02x, vector +0x%llx) at pc 0x%llx, ESR 0x%llx, FAR 0x%llx",
		 kf_arm64_ec_name(ec), ec, (unsigned long long)uc->args[0],
		 (unsigned long long)uc->args[2], (unsigned long long)esr,
		 (unsigned long long)uc->args[3]);
}

void kf_arch_raw_copy(void *dst, const void *src, size_t len)
{
	uint8_t *d = dst;
	const uint8_t *s = src;

	for (; len >= 16; len -= 16)
		__asm__ volatile("ldp x9, x10, [%1], #16\n\tstp x9, x10, [%0], #16"
				 : "+r"(d), "+r"(s) : : "x9", "x10", "memory");
	for (; len; len--)
		__asm__ volatile("ldrb w9, [%1], #1\n\tstrb w9, [%0], #1"
				 : "+r"(d), "+r"(s) : : "w9", "memory");
}
