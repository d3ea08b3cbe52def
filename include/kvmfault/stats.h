/* SPDX-License-Identifier: MIT */
/*
 * Fault statistics: counts, bytes and a latency histogram per vCPU.
 *
 * The histogram is log-linear: exact below 32 ns, then 16 sub-buckets per
 * power of two (about 6% resolution), so recording is a few instructions
 * and one relaxed atomic add, and percentiles come out of the buckets.
 * Writers use atomics; readers take a snapshot (kf_fault_stats_snapshot())
 * and may read it while faults are still being counted.
 */
#ifndef KVMFAULT_STATS_H
#define KVMFAULT_STATS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <kvmfault/limits.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

#define KF_HIST_BUCKETS 1024

struct kf_latency_hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t buckets[KF_HIST_BUCKETS];
};

/* What one vCPU (or the engine's other clients) cost the engine. */
struct kf_fault_stats {
	uint64_t faults;	/* faults resolved by installing a page */
	uint64_t bytes;		/* bytes installed for those faults */
	uint64_t zero_pages;	/* of which were zero pages */
	uint64_t spurious;	/* faults on pages already installed/busy */
	uint64_t errors;	/* faults that failed */
	/* Service latency: fault seen by the engine -> page installed. */
	struct kf_latency_hist latency;
	/* Wall time of the vCPU's run, when the caller reports it. */
	uint64_t run_ns;
};

/* Record one latency (thread safe, lock free). */
void kf_hist_add(struct kf_latency_hist *h, uint64_t ns);
/* Add src into dst (not atomic: dst is a private copy). */
void kf_hist_merge(struct kf_latency_hist *dst, const struct kf_latency_hist *src);
/* The p-th percentile (0 < p <= 100) in ns; 0 for an empty histogram. */
uint64_t kf_hist_percentile(const struct kf_latency_hist *h, double p);
/* Bucket index of a value, and the value a bucket stands for. */
unsigned int kf_hist_bucket(uint64_t ns);
uint64_t kf_hist_bucket_value(unsigned int bucket);

/* A consistent-enough copy of live stats (each field read atomically). */
void kf_fault_stats_snapshot(struct kf_fault_stats *dst,
			     const struct kf_fault_stats *src);
void kf_fault_stats_merge(struct kf_fault_stats *dst,
			  const struct kf_fault_stats *src);

/* Pages per second over run_ns (0 when no time was recorded). */
double kf_fault_stats_rate(const struct kf_fault_stats *s);

/* The numbers of a struct kf_fault_stats, without its histogram (88 bytes). */
struct kf_fault_summary {
	uint64_t faults, bytes, zero_pages, spurious, errors;
	uint64_t latency_count, latency_sum_ns;
	uint64_t p50_ns, p90_ns, p99_ns, max_ns;
};

/* Summarize live or copied stats (each field read atomically). */
void kf_fault_stats_summarize(const struct kf_fault_stats *s,
			      struct kf_fault_summary *out);

/* Everything the engine counted. */
struct kf_engine_stats {
	const char *backend;		/* "exit", "uffd-missing", "uffd-minor" */
	unsigned int nr_vcpus;		/* entries of vcpu[] in use */
	struct kf_fault_stats vcpu[KF_MAX_VCPUS];
	struct kf_fault_stats other;	/* host threads, KVM outside vCPUs */
	struct kf_fault_stats total;	/* the sum of all of the above */
	uint64_t pushed_pages;		/* pages a source pushed unasked */
	uint64_t push_races;		/* pushes that found the page there */
	uint64_t exit_faults;		/* faults seen as KVM exits */
	uint64_t uffd_faults;		/* faults seen through userfaultfd */
};

/*
 * What the engine counted, without histograms: about 6 KB where struct
 * kf_engine_stats is 545 KB.  Read with kf_engine_summary().
 */
struct kf_engine_summary {
	const char *backend;
	unsigned int nr_vcpus;
	struct kf_fault_summary vcpu[KF_MAX_VCPUS];
	struct kf_fault_summary other;
	struct kf_fault_summary total;
	uint64_t installed_pages;	/* by faults and pushes */
	uint64_t pushed_pages;
	uint64_t push_races;
	uint64_t exit_faults;
	uint64_t uffd_faults;
};

/* CSV: a header line, then one line per vCPU and one "total" line. */
void kf_engine_stats_csv(FILE *f, const struct kf_engine_stats *s, bool header);
/* JSON: one object. */
void kf_engine_stats_json(FILE *f, const struct kf_engine_stats *s);

KF_API_END

#endif
