// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <kvmfault/kvm.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/test.h>

void kf_test_skip(const char *fmt, ...)
{
	va_list ap;

	printf("SKIP: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(KF_TEST_SKIP);
}

void kf_test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "FAIL at %s:%d: ", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(1);
}

void kf_test_require_kvm(void)
{
	const char *why = kf_kvm_unavailable_reason();

	if (why)
		kf_test_skip("%s", why);
}

void kf_test_require_cap(long cap, const char *name)
{
	kf_test_require_kvm();
	if (!kf_kvm_has_cap(cap))
		kf_test_skip("this kernel lacks %s (%ld)", name, cap);
}

struct kf_vcpu_counters kf_test_counters(const struct kf_vcpu *vcpu)
{
	struct kf_vcpu_counters c;

	if (kf_vcpu_counters(vcpu, &c, sizeof(c)))
		kf_test_fail(__FILE__, __LINE__, "vCPU counters: %s", kf_error());
	return c;
}

void kf_test_psk_pair(struct kf_mig_tls **server, struct kf_mig_tls **client)
{
	if (kf_mig_psk_pair("kvmfault-test", server, client))
		kf_test_fail(__FILE__, __LINE__, "a test key: %s", kf_error());
}
