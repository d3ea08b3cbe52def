/* SPDX-License-Identifier: MIT */
#ifndef KVMFAULT_COMPILER_H
#define KVMFAULT_COMPILER_H

/*
 * Code that runs in the guest: no sanitizer instrumentation and no stack
 * protector, since both touch memory that exists only in the host process.
 * KF_GUEST marks guest functions; KF_GUEST_INLINE marks helpers shared by
 * guest and host code (the attributes must match for inlining).
 */
#define KF_GUEST_ATTRS no_sanitize("address", "undefined"), no_stack_protector
#define KF_GUEST __attribute__((KF_GUEST_ATTRS, noinline, used))
#define KF_GUEST_INLINE static inline __attribute__((KF_GUEST_ATTRS, always_inline))

/*
 * The public API: declarations between KF_API_BEGIN and KF_API_END are
 * exported from libkvmfault.so (built with -fvisibility=hidden; the list
 * of exported symbols is lib/kvmfault.api).  Everything else stays inside
 * the library.
 */
#define KF_API_BEGIN _Pragma("GCC visibility push(default)")
#define KF_API_END _Pragma("GCC visibility pop")

#define KF_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KF_ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define KF_ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define KF_IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a) - 1)) == 0)
#define KF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KF_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
