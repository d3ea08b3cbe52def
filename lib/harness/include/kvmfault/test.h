/* SPDX-License-Identifier: MIT */
/*
 * Host-side test helpers.  A test is a program: exit 0 passes, exit
 * KF_TEST_SKIP (4) skips after printing "SKIP: reason", anything else fails.
 * Assertions print what was expected and what was seen.
 */
#ifndef KVMFAULT_TEST_H
#define KVMFAULT_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <kvmfault/error.h>
#include <kvmfault/test_guest.h>
#include <kvmfault/vcpu.h>

#define KF_TEST_SKIP 4

void kf_test_skip(const char *fmt, ...) KF_PRINTF(1, 2) __attribute__((noreturn));
void kf_test_fail(const char *file, int line, const char *fmt, ...)
	KF_PRINTF(3, 4) __attribute__((noreturn));

/* A fresh random pre-shared key for a test's migration: both roles. */
struct kf_mig_tls;
void kf_test_psk_pair(struct kf_mig_tls **server, struct kf_mig_tls **client);

/* What vcpu counted (kf_vcpu_counters()); fails the test if it cannot. */
struct kf_vcpu_counters kf_test_counters(const struct kf_vcpu *vcpu);

/* Skip unless /dev/kvm opens; skip unless the system KVM has cap. */
void kf_test_require_kvm(void);
void kf_test_require_cap(long cap, const char *name);
#define TEST_REQUIRE_CAP(cap) kf_test_require_cap(cap, #cap)

#define TEST_ASSERT(cond, fmt, ...) do {				\
	if (!(cond))							\
		kf_test_fail(__FILE__, __LINE__, "%s: " fmt, #cond,	\
			     ##__VA_ARGS__);				\
} while (0)

#define TEST_ASSERT_EQ(seen, expected) do {				\
	unsigned long long __s = (unsigned long long)(seen);		\
	unsigned long long __e = (unsigned long long)(expected);	\
	if (__s != __e)							\
		kf_test_fail(__FILE__, __LINE__,			\
			     "%s == %s\n  seen     0x%llx (%lld)\n  expected 0x%llx (%lld)", \
			     #seen, #expected, __s, (long long)__s,	\
			     __e, (long long)__e);			\
} while (0)

/* A library call that must succeed; its message is printed if not. */
#define TEST_OK(call) do {						\
	int __r = (call);						\
	if (__r)							\
		kf_test_fail(__FILE__, __LINE__, "%s returned %d: %s",	\
			     #call, __r, kf_error());			\
} while (0)

#define TEST_PASS(fmt, ...) do {					\
	printf("PASS: " fmt "\n", ##__VA_ARGS__);			\
	exit(0);							\
} while (0)

#endif
