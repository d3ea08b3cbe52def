// SPDX-License-Identifier: MIT
#include <inttypes.h>
#include <string.h>

#include <kvmfault/compiler.h>
#include <kvmfault/stats.h>

#define KF_HIST_LINEAR 32	/* exact buckets below this many ns */
#define KF_HIST_SUB 16		/* sub-buckets per power of two above */

unsigned int kf_hist_bucket(uint64_t ns)
{
	unsigned int e;

	if (ns < KF_HIST_LINEAR)
		return ns;
	e = 63 - __builtin_clzll(ns);			/* >= 5 */
	return KF_HIST_LINEAR + (e - 5) * KF_HIST_SUB +
	       ((ns >> (e - 4)) & (KF_HIST_SUB - 1));
}

uint64_t kf_hist_bucket_value(unsigned int b)
{
	unsigned int k, e;
	uint64_t width;

	if (b < KF_HIST_LINEAR)
		return b;
	k = b - KF_HIST_LINEAR;
	e = k / KF_HIST_SUB + 5;
	width = 1ULL << (e - 4);
	return (uint64_t)(KF_HIST_SUB + k % KF_HIST_SUB) * width + width / 2;
}

void kf_hist_add(struct kf_latency_hist *h, uint64_t ns)
{
	uint64_t max = __atomic_load_n(&h->max_ns, __ATOMIC_RELAXED);

	__atomic_fetch_add(&h->buckets[kf_hist_bucket(ns)], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum_ns, ns, __ATOMIC_RELAXED);
	while (ns > max &&
	       !__atomic_compare_exchange_n(&h->max_ns, &max, ns, true,
					    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

void kf_hist_merge(struct kf_latency_hist *dst, const struct kf_latency_hist *src)
{
	unsigned int i;

	/* src may be live: relaxed loads. */
	dst->count += __atomic_load_n(&src->count, __ATOMIC_RELAXED);
	dst->sum_ns += __atomic_load_n(&src->sum_ns, __ATOMIC_RELAXED);
	dst->max_ns = KF_MAX(dst->max_ns,
			     __atomic_load_n(&src->max_ns, __ATOMIC_RELAXED));
	for (i = 0; i < KF_HIST_BUCKETS; i++)
		dst->buckets[i] += __atomic_load_n(&src->buckets[i],
						   __ATOMIC_RELAXED);
}

uint64_t kf_hist_percentile(const struct kf_latency_hist *h, double p)
{
	uint64_t total = 0, want, seen = 0;
	unsigned int i;

	uint64_t max = __atomic_load_n(&h->max_ns, __ATOMIC_RELAXED);

	/* Relaxed loads: h may be live, still counting. */
	for (i = 0; i < KF_HIST_BUCKETS; i++)
		total += __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
	if (!total)
		return 0;
	if (p >= 100.0)
		return max;
	want = (uint64_t)(p / 100.0 * (double)total + 0.5);
	if (want < 1)
		want = 1;
	for (i = 0; i < KF_HIST_BUCKETS; i++) {
		seen += __atomic_load_n(&h->buckets[i], __ATOMIC_RELAXED);
		if (seen >= want)
			return KF_MIN(kf_hist_bucket_value(i), max);
	}
	return max;
}

void kf_fault_stats_summarize(const struct kf_fault_stats *s,
			      struct kf_fault_summary *out)
{
	out->faults = __atomic_load_n(&s->faults, __ATOMIC_RELAXED);
	out->bytes = __atomic_load_n(&s->bytes, __ATOMIC_RELAXED);
	out->zero_pages = __atomic_load_n(&s->zero_pages, __ATOMIC_RELAXED);
	out->spurious = __atomic_load_n(&s->spurious, __ATOMIC_RELAXED);
	out->errors = __atomic_load_n(&s->errors, __ATOMIC_RELAXED);
	out->latency_count = __atomic_load_n(&s->latency.count, __ATOMIC_RELAXED);
	out->latency_sum_ns = __atomic_load_n(&s->latency.sum_ns, __ATOMIC_RELAXED);
	out->p50_ns = kf_hist_percentile(&s->latency, 50);
	out->p90_ns = kf_hist_percentile(&s->latency, 90);
	out->p99_ns = kf_hist_percentile(&s->latency, 99);
	out->max_ns = __atomic_load_n(&s->latency.max_ns, __ATOMIC_RELAXED);
}

static uint64_t kf_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void kf_fault_stats_snapshot(struct kf_fault_stats *dst,
			     const struct kf_fault_stats *src)
{
	unsigned int i;

	dst->faults = kf_load(&src->faults);
	dst->bytes = kf_load(&src->bytes);
	dst->zero_pages = kf_load(&src->zero_pages);
	dst->spurious = kf_load(&src->spurious);
	dst->errors = kf_load(&src->errors);
	dst->run_ns = kf_load(&src->run_ns);
	dst->latency.count = kf_load(&src->latency.count);
	dst->latency.sum_ns = kf_load(&src->latency.sum_ns);
	dst->latency.max_ns = kf_load(&src->latency.max_ns);
	for (i = 0; i < KF_HIST_BUCKETS; i++)
		dst->latency.buckets[i] = kf_load(&src->latency.buckets[i]);
}

void kf_fault_stats_merge(struct kf_fault_stats *dst,
			  const struct kf_fault_stats *src)
{
	dst->faults += src->faults;
	dst->bytes += src->bytes;
	dst->zero_pages += src->zero_pages;
	dst->spurious += src->spurious;
	dst->errors += src->errors;
	dst->run_ns = KF_MAX(dst->run_ns, src->run_ns);
	kf_hist_merge(&dst->latency, &src->latency);
}

double kf_fault_stats_rate(const struct kf_fault_stats *s)
{
	return s->run_ns ? (double)s->faults * 1e9 / (double)s->run_ns : 0.0;
}

static void kf_stats_csv_line(FILE *f, const char *backend, const char *who,
			      const struct kf_fault_stats *s)
{
	const struct kf_latency_hist *h = &s->latency;

	fprintf(f, "%s,%s,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		",%.1f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%.0f\n",
		backend, who, s->faults, s->bytes, s->zero_pages, s->spurious,
		s->errors, h->count ? (double)h->sum_ns / (double)h->count : 0.0,
		kf_hist_percentile(h, 50), kf_hist_percentile(h, 99), h->max_ns,
		s->run_ns, kf_fault_stats_rate(s));
}

void kf_engine_stats_csv(FILE *f, const struct kf_engine_stats *s, bool header)
{
	const char *b = s->backend ? s->backend : "?";
	char who[16];
	unsigned int i;

	if (header)
		fprintf(f, "backend,vcpu,faults,bytes,zero_pages,spurious,errors,lat_mean_ns,lat_p50_ns,lat_p99_ns,lat_max_ns,run_ns,pages_per_s\n");
	for (i = 0; i < s->nr_vcpus; i++) {
		snprintf(who, sizeof(who), "%u", i);
		kf_stats_csv_line(f, b, who, &s->vcpu[i]);
	}
	kf_stats_csv_line(f, b, "other", &s->other);
	kf_stats_csv_line(f, b, "total", &s->total);
}

static void kf_stats_json_one(FILE *f, const struct kf_fault_stats *s)
{
	const struct kf_latency_hist *h = &s->latency;

	fprintf(f, "{\"faults\": %" PRIu64 ", \"bytes\": %" PRIu64
		", \"zero_pages\": %" PRIu64 ", \"spurious\": %" PRIu64
		", \"errors\": %" PRIu64 ", \"latency_ns\": {\"mean\": %.1f, \"p50\": %"
		PRIu64 ", \"p99\": %" PRIu64 ", \"max\": %" PRIu64
		"}, \"run_ns\": %" PRIu64 ", \"pages_per_s\": %.0f}",
		s->faults, s->bytes, s->zero_pages, s->spurious, s->errors,
		h->count ? (double)h->sum_ns / (double)h->count : 0.0,
		kf_hist_percentile(h, 50), kf_hist_percentile(h, 99), h->max_ns,
		s->run_ns, kf_fault_stats_rate(s));
}

void kf_engine_stats_json(FILE *f, const struct kf_engine_stats *s)
{
	unsigned int i;

	fprintf(f, "{\"backend\": \"%s\", \"pushed_pages\": %" PRIu64
		", \"push_races\": %" PRIu64 ", \"exit_faults\": %" PRIu64
		", \"uffd_faults\": %" PRIu64 ", \"vcpus\": [",
		s->backend ? s->backend : "?", s->pushed_pages, s->push_races,
		s->exit_faults, s->uffd_faults);
	for (i = 0; i < s->nr_vcpus; i++) {
		if (i)
			fputs(", ", f);
		kf_stats_json_one(f, &s->vcpu[i]);
	}
	fputs("], \"other\": ", f);
	kf_stats_json_one(f, &s->other);
	fputs(", \"total\": ", f);
	kf_stats_json_one(f, &s->total);
	fputs("}\n", f);
}
