// SPDX-License-Identifier: MIT
/*
 * What the fault path and the statistics cost the caller: a memory fault
 * that its handler resolves is not described in text (kf_exit_str() costs
 * more than the rest of the dispatch), the migration report fits on a
 * stack, and the engine's numbers are readable without a 545 KB copy and
 * agree with the full statistics.
 *
 * The test interposes snprintf to count the memory fault descriptions.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kvmfault/vm_engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/test.h>
#include <kvmfault/uffd.h>

#include "orphan_slot.h"

#define REGION_SIZE (2ULL << 20)
#define NR_FAULTS 1000

static unsigned int descriptions;

int snprintf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!strncmp(fmt, "memory fault", 12))
		__atomic_fetch_add(&descriptions, 1, __ATOMIC_RELAXED);
	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n;
}

static KF_GUEST void guest_write(uint64_t addr)
{
	*(volatile uint64_t *)addr = 5;
}

static unsigned int handled;

static int ignore_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	(void)vcpu;
	(void)f;
	handled++;
	return 0;
}


/* Faults the handler "resolves" cost no text; only the final failure. */
static void test_no_description_per_fault(void)
{
	struct kf_vcpu_ops ops = { .memory_fault = ignore_fault };
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	uint64_t gpa;

	TEST_OK(kf_vm_create(&vm));
	gpa = kf_vm_free_gpa(vm);
	if (add_orphaned_guest_memfd_slot(vm, gpa, REGION_SIZE)) {
		printf("  descriptions: not tested, no guest_memfd with MMAP and INIT_SHARED here\n");
		kf_vm_destroy(vm);
		return;
	}
	TEST_OK(kf_vcpu_add(vm, 0, guest_write, gpa, &vcpu));
	TEST_OK(kf_vcpu_set_max_repeated_faults(vcpu, NR_FAULTS));
	descriptions = 0;
	TEST_ASSERT_EQ(kf_vcpu_run(vcpu, &ops), -ELOOP);
	TEST_ASSERT_EQ(handled, NR_FAULTS);
	printf("  %u faults handled, %u described\n", handled, descriptions);
	TEST_ASSERT(descriptions <= 1,
		    "%u memory fault descriptions for %u handled faults",
		    descriptions, handled);
	TEST_ASSERT(strstr(kf_vcpu_errmsg(vcpu), "memory fault"), "%s",
		    kf_vcpu_errmsg(vcpu));
	kf_vm_destroy(vm);
}

/* The summary agrees with the full copy, without being one. */
static void test_summary(void)
{
	struct kf_engine_summary *sum = malloc(sizeof(*sum));
	struct kf_engine_stats *full = malloc(sizeof(*full));
	struct kf_region r = { .size = REGION_SIZE, .backing = KF_BACKING_ANON,
			       .guest_memfd = -1 };
	struct kf_pagesrc *src;
	const struct kf_memslot *ms;
	struct kf_engine *e;
	struct kf_vm *vm;

	printf("  struct kf_mig_report %zu bytes, kf_engine_summary %zu, kf_engine_stats %zu\n",
	       sizeof(struct kf_mig_report), sizeof(*sum), sizeof(*full));
	TEST_ASSERT(sizeof(struct kf_mig_report) <= 16384,
		    "struct kf_mig_report is %zu bytes: too large for a stack",
		    sizeof(struct kf_mig_report));
	TEST_ASSERT(sum && full, "malloc");
	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	TEST_OK(kf_pagesrc_zero_create(ms->gpa, ms->size, &src));
	TEST_OK(kf_engine_create(vm, NULL, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, src));
	TEST_OK(kf_engine_fetch(e, ms->gpa, ms->size / 2));
	kf_engine_summary(e, sum);
	kf_engine_stats(e, full);
	TEST_ASSERT_EQ(sum->other.faults, REGION_SIZE / 2 / KF_PAGE_SIZE);
	TEST_ASSERT_EQ(sum->total.faults, full->total.faults);
	TEST_ASSERT_EQ(sum->total.bytes, full->total.bytes);
	TEST_ASSERT_EQ(sum->installed_pages, kf_engine_installed_pages(e));
	TEST_ASSERT_EQ(sum->other.latency_count, full->other.latency.count);
	TEST_ASSERT_EQ(sum->total.p50_ns, kf_hist_percentile(&full->total.latency, 50));
	TEST_ASSERT_EQ(sum->total.p99_ns, kf_hist_percentile(&full->total.latency, 99));
	TEST_ASSERT_EQ(sum->total.max_ns, full->total.latency.max_ns);
	TEST_ASSERT(sum->total.p50_ns <= sum->total.p99_ns &&
		    sum->total.p99_ns <= sum->total.max_ns, "percentiles out of order");
	kf_engine_destroy(e);
	kf_pagesrc_destroy(src);
	kf_vm_destroy(vm);
	free(sum);
	free(full);
}

int main(void)
{
	kf_test_require_kvm();
	if (!kf_uffd_features())
		kf_test_skip("userfaultfd is not available here");
	test_no_description_per_fault();
	test_summary();
	TEST_PASS("no text per fault; the numbers without a 545 KB copy");
}
