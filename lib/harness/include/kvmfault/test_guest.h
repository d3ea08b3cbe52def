/* SPDX-License-Identifier: MIT */
/*
 * Guest-side helpers for tests, one definition an architecture: what a
 * test's guest code needs beyond <kvmfault/guest.h>.
 *
 *   kt_guest_relax()         a spin-loop hint (PAUSE, YIELD)
 *   kt_guest_write_keep(p)   a write access that keeps *p: an atomic
 *                            read-modify-write on x86, an exclusive
 *                            load/store pair on arm64 (whose fault is the
 *                            load's, a read)
 *   kt_guest_mmio_write(p, v) a store KVM can emulate as MMIO: on arm64
 *                            one from a general-purpose register (a
 *                            compiler may store through a SIMD register,
 *                            whose abort has no syndrome: KVM_RUN fails
 *                            with ENOSYS)
 *   kt_guest_undefined()     an undefined instruction (UD2, UDF)
 *   kt_guest_privilege()     the privilege guest code runs at (CPL, EL)
 *   kt_guest_tag_page(p, t)  MTE (arm64, kf_vm_enable_mte()): give the
 *                            page at p allocation tag t in every granule
 *                            (STG); kt_guest_tag(p) loads p's (LDG).
 *                            Without MTE (x86) they do nothing / read 0
 *   KT_GUEST_PRIVILEGE       what the library runs it at
 *   kt_return_imm(code, imm) host side: write a guest function that
 *                            returns imm; its length in bytes
 */
#ifndef KVMFAULT_TEST_GUEST_H
#define KVMFAULT_TEST_GUEST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <kvmfault/compiler.h>

#if defined(__x86_64__)
#define KT_GUEST_PRIVILEGE 3	/* CPL3 */

KF_GUEST_INLINE void kt_guest_relax(void)
{
	__asm__ volatile("pause");
}

KF_GUEST_INLINE void kt_guest_write_keep(volatile uint64_t *p)
{
	__asm__ volatile("lock addq $0, %0" : "+m"(*p) : : "memory");
}

KF_GUEST_INLINE void kt_guest_mmio_write(volatile uint64_t *p, uint64_t v)
{
	*p = v;
}

KF_GUEST_INLINE void kt_guest_undefined(void)
{
	__asm__ volatile("ud2");
}

/* mov $imm, %rax; ret */
static inline size_t kt_return_imm(uint8_t *code, uint64_t imm)
{
	code[0] = 0x48;
	code[1] = 0xb8;
	memcpy(&code[2], &imm, 8);
	code[10] = 0xc3;
	return 11;
}

KF_GUEST_INLINE uint64_t kt_guest_privilege(void)
{
	uint64_t cs;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return cs & 3;
}

KF_GUEST_INLINE void kt_guest_tag_page(volatile void *page, uint64_t tag)
{
	(void)page;
	(void)tag;
}

KF_GUEST_INLINE uint64_t kt_guest_tag(const volatile void *p)
{
	(void)p;
	return 0;
}
#elif defined(__aarch64__)
#define KT_GUEST_PRIVILEGE 1	/* EL1 */

KF_GUEST_INLINE void kt_guest_relax(void)
{
	__asm__ volatile("yield");
}

KF_GUEST_INLINE void kt_guest_write_keep(volatile uint64_t *p)
{
	uint64_t v;
	uint32_t failed;

	__asm__ volatile("1: ldxr %0, [%2]\n"
			 "   stxr %w1, %0, [%2]\n"
			 "   cbnz %w1, 1b"
			 : "=&r"(v), "=&r"(failed) : "r"(p) : "memory");
}

KF_GUEST_INLINE void kt_guest_mmio_write(volatile uint64_t *p, uint64_t v)
{
	__asm__ volatile("str %1, [%0]" : : "r"(p), "r"(v) : "memory");
}

KF_GUEST_INLINE void kt_guest_undefined(void)
{
	__asm__ volatile("udf #0");
}

/* movz x0, #imm[15:0]; movk x0, #imm[31:16], lsl #16; ... ; ret */
static inline size_t kt_return_imm(uint8_t *code, uint64_t imm)
{
	uint32_t insn[5];
	unsigned int i;

	for (i = 0; i < 4; i++)
		insn[i] = (i ? 0xf2800000u : 0xd2800000u) | i << 21 |
			  (uint32_t)(imm >> (16 * i) & 0xffff) << 5;
	insn[4] = 0xd65f03c0u;
	memcpy(code, insn, sizeof(insn));
	return sizeof(insn);
}

KF_GUEST_INLINE uint64_t kt_guest_privilege(void)
{
	uint64_t el;

	__asm__ volatile("mrs %0, CurrentEL" : "=r"(el));
	return el >> 2 & 3;
}

/* STG x0, [x1] and LDG x0, [x1] as encoded words: the toolchain's base
 * architecture predates MTE.  The tag is bits 59:56 of x0. */
KF_GUEST_INLINE void kt_guest_tag_page(volatile void *page, uint64_t tag)
{
	uintptr_t p = (uintptr_t)page, end = p + 4096;

	for (; p < end; p += 16) {
		register uint64_t x0 __asm__("x0") = tag << 56;
		register uint64_t x1 __asm__("x1") = p;

		__asm__ volatile(".inst 0xd9200820" : : "r"(x0), "r"(x1) : "memory");
	}
}

KF_GUEST_INLINE uint64_t kt_guest_tag(const volatile void *p)
{
	register uint64_t x0 __asm__("x0") = (uintptr_t)p;
	register uint64_t x1 __asm__("x1") = (uintptr_t)p;

	__asm__ volatile(".inst 0xd9600020" : "+r"(x0) : "r"(x1) : "memory");
	return x0 >> 56 & 0xf;
}
#else
#error "kvmfault tests: no guest helpers for this architecture"
#endif

#endif
