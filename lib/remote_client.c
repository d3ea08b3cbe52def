// SPDX-License-Identifier: MIT
/*
 * The remote page source: the destination side of post-copy (see
 * include/kvmfault/remote.h).
 *
 * Threads after kf_remote_start(): a receiver per connection (main,
 * demand and each push stream: the push's installs run in parallel), a sender
 * that batches outstanding requests into REQ messages, and a supervisor
 * that reconnects after a drop.  Locks: r->lock guards page state, waiters
 * and the request queue and is never held across a socket write or a call
 * into the engine; r->conn_lock guards the connection pointers for
 * writers.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/remote.h>

#include "internal.h"

enum kf_rc_state {
	KF_RC_SETUP,		/* before kf_remote_start() */
	KF_RC_CONNECTED,
	KF_RC_BROKEN,		/* a connection dropped; reconnecting */
	KF_RC_FAILED,		/* gave up */
	KF_RC_DONE,		/* COMPLETE sent */
};

struct kf_rc_region {
	struct kf_mig_region r;
	bool eager;
	uint64_t npages;
	uint8_t *held;		/* page is here (installed, cached, eager) */
	uint8_t *cached;	/* page waits in cache for the engine */
	char *cache;		/* region-sized, MAP_NORESERVE */
	bool tags;		/* KF_MIG_REGION_TAGS: pages come with tags */
	uint8_t *cache_tags;	/* tags: the cached pages' (one a granule) */
	void *eager_hva;
	kf_pagesrc_sink_fn sink;
	void *sink_opaque;
	unsigned int sink_calls;	/* calls into sink in flight */
	uint64_t unit_pages;		/* the sink takes whole units of these */
	struct kf_pagesrc src;
	struct kf_remote *remote;
	pthread_t flush_thread;
	bool flush_started;
};

struct kf_rc_waiter {
	uint64_t gpa;
	void *buf;
	uint8_t *tags;		/* a tags region's: the page's tags go here */
	int result;		/* 1 waiting, 0 done, < 0 failed */
	struct kf_rc_waiter *next;
};

/* A receiving thread and the connection it reads. */
struct kf_rc_rx {
	struct kf_remote *remote;
	struct kf_mig_conn *conn;
	bool push_stream;
	pthread_t thread;
};

/* Connections: main, demand, then the push streams. */
#define KF_RC_MAX_CONNS (2 + KF_MIG_MAX_PUSH_STREAMS)

struct kf_remote {
	struct kf_remote_config cfg;
	char *addr;
	uint64_t session;
	struct kf_mig_conn *main, *demand;
	struct kf_mig_conn *push[KF_MIG_MAX_PUSH_STREAMS];
	unsigned int nr_push;
	pthread_mutex_t conn_lock;

	unsigned int nr_vcpus, nr_regions;
	bool mte;			/* SETUP: the VM has MTE */
	struct kf_rc_region regions[KF_MIG_MAX_REGIONS];
	void *vcpu_blob[KF_MAX_VCPUS];
	size_t vcpu_len[KF_MAX_VCPUS];

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* waiters, state, progress */
	pthread_cond_t req_cond;	/* the sender */
	enum kf_rc_state state;
	struct kf_rc_waiter *waiters;
	uint64_t *reqq;
	unsigned int reqq_len, reqq_cap;
	uint64_t total_pages, held_pages;
	bool got_stats, stopping, completing;
	struct kf_mig_stats source_stats;
	struct kf_remote_stats st;
	char err[512];

	struct kf_rc_rx rx[KF_RC_MAX_CONNS];
	unsigned int nr_rx;		/* receivers running */
	pthread_t sender, supervisor;
	bool threads_started;
};

/* ---------------------------------------------------------------- helpers */

static struct kf_rc_region *kf_rc_find(struct kf_remote *r, uint64_t gpa,
				       uint64_t *idx)
{
	unsigned int i;

	for (i = 0; i < r->nr_regions; i++) {
		struct kf_rc_region *g = &r->regions[i];

		if (gpa >= g->r.gpa && gpa - g->r.gpa < g->r.size) {
			*idx = (gpa - g->r.gpa) / KF_PAGE_SIZE;
			return g;
		}
	}
	return NULL;
}

/* Fail for good (lock held): every waiter gets the error. */
static void kf_rc_fail_locked(struct kf_remote *r, const char *msg)
{
	struct kf_rc_waiter *w;

	if (r->state == KF_RC_FAILED || r->state == KF_RC_DONE)
		return;
	snprintf(r->err, sizeof(r->err), "%s", msg);
	r->state = KF_RC_FAILED;
	for (w = r->waiters; w; w = w->next)
		w->result = -ENOTCONN;
	r->waiters = NULL;
	pthread_cond_broadcast(&r->cond);
	pthread_cond_broadcast(&r->req_cond);
}

static void kf_rc_fail(struct kf_remote *r, const char *msg)
{
	pthread_mutex_lock(&r->lock);
	kf_rc_fail_locked(r, msg);
	pthread_mutex_unlock(&r->lock);
}

/* Wake every thread blocked on a connection. */
static void kf_rc_shutdown_conns(struct kf_remote *r)
{
	unsigned int i;

	pthread_mutex_lock(&r->conn_lock);
	kf_mig_conn_shutdown(r->main);
	kf_mig_conn_shutdown(r->demand);
	for (i = 0; i < r->nr_push; i++)
		kf_mig_conn_shutdown(r->push[i]);
	pthread_mutex_unlock(&r->conn_lock);
}

static void kf_rc_broken(struct kf_remote *r, const char *why)
{
	pthread_mutex_lock(&r->lock);
	if (r->state == KF_RC_CONNECTED && !r->got_stats && !r->completing) {
		r->state = KF_RC_BROKEN;
		kf_logf(r->cfg.log, r->cfg.opaque,
			"connection to %s lost (%s); vCPUs that need missing pages wait while it reconnects",
			r->addr, why);
		pthread_cond_broadcast(&r->cond);
		pthread_cond_broadcast(&r->req_cond);
	}
	pthread_mutex_unlock(&r->lock);
	kf_rc_shutdown_conns(r);
}

/* A call into the sink returned: kf_rc_stop_push() may be waiting. */
static void kf_rc_sink_done(struct kf_rc_region *g)
{
	struct kf_remote *r = g->remote;

	pthread_mutex_lock(&r->lock);
	if (!--g->sink_calls)
		pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

/*
 * A sink that takes whole units (host pages larger than KF_PAGE_SIZE, huge
 * pages): the units among [first, last] whose pages are all in the cache
 * now leave it (lock held), into units[]; how many.
 */
static unsigned int kf_rc_take_units(struct kf_rc_region *g, uint64_t first,
				     uint64_t last, uint64_t *units)
{
	uint64_t per = g->unit_pages, u, p;
	unsigned int n = 0;

	for (u = first; u <= last && (u + 1) * per <= g->npages; u++) {
		for (p = u * per; p < (u + 1) * per && g->cached[p]; p++)
			;
		if (p < (u + 1) * per)
			continue;
		memset(g->cached + u * per, 0, per);
		units[n++] = u;
	}
	return n;
}

/* Free the host pages wholly inside [p, p + len) of a cache: never a
 * page that also holds what other units still wait with. */
static void kf_rc_cache_release(void *p, uint64_t len)
{
	uintptr_t hps = (uintptr_t)kf_host_page_size();
	uintptr_t start = KF_ALIGN_UP((uintptr_t)p, hps);
	uintptr_t end = KF_ALIGN_DOWN((uintptr_t)p + len, hps);

	if (end > start)
		madvise((void *)start, end - start, MADV_DONTNEED);
}

/* Hand units taken from the cache to the sink, consecutive ones at once
 * (after switchover a held page is never written to the cache again). */
static int kf_rc_sink_units(struct kf_rc_region *g, kf_pagesrc_sink_fn sink,
			    void *opaque, const uint64_t *units, unsigned int n)
{
	uint64_t per = g->unit_pages;
	unsigned int i, j;
	int ret = 0;

	for (i = 0; i < n && !ret; i = j) {
		uint64_t p = units[i] * per;

		for (j = i + 1; j < n && units[j] == units[j - 1] + 1; j++)
			;
		ret = sink(opaque, g->r.gpa + p * KF_PAGE_SIZE,
			   g->cache + p * KF_PAGE_SIZE,
			   g->tags ? g->cache_tags + p * KF_MTE_TAGS_PER_PAGE : NULL,
			   (j - i) * per * KF_PAGE_SIZE);
		/* Installed (or failed for good): the cache lets go of it, so
		 * guest memory is not held twice. */
		kf_rc_cache_release(g->cache + p * KF_PAGE_SIZE,
				    (j - i) * per * KF_PAGE_SIZE);
		if (g->tags)
			kf_rc_cache_release(g->cache_tags + p * KF_MTE_TAGS_PER_PAGE,
					    (j - i) * per * KF_MTE_TAGS_PER_PAGE);
	}
	return ret;
}

/*
 * Verified pages arrived: a run of n (at most a batch) from page idx of
 * region g.  Waiters for one of them get it (their read() installs it);
 * the others go to the engine's sink in contiguous runs, to the cache
 * before the engine started, or straight to an eager region's memory.
 * tags: a tags region's, one byte a granule, KF_MTE_TAGS_PER_PAGE a page.
 */
static int kf_rc_deliver_run(struct kf_remote *r, struct kf_rc_region *g,
			     uint64_t idx, uint32_t n, const uint8_t *data,
			     const uint8_t *tags, enum kf_mig_page_cause cause,
			     bool push_stream)
{
	uint64_t gpa = g->r.gpa + idx * KF_PAGE_SIZE, filled = 0, to_sink = 0;
	uint64_t units[KF_MIG_MAX_BATCH + 2];
	unsigned int nunits;
	struct kf_rc_waiter **pw, *w;
	kf_pagesrc_sink_fn sink = NULL;
	void *opaque = NULL;
	uint32_t k;
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	r->st.pages_by_cause[cause] += n;
	if (push_stream)
		r->st.push_stream_pages += n;
	for (pw = &r->waiters; (w = *pw);) {
		if (w->gpa >= gpa && w->gpa - gpa < (uint64_t)n * KF_PAGE_SIZE) {
			k = (uint32_t)((w->gpa - gpa) / KF_PAGE_SIZE);
			memcpy(w->buf, data + (uint64_t)k * KF_PAGE_SIZE, KF_PAGE_SIZE);
			if (w->tags)
				memcpy(w->tags, tags + (uint64_t)k * KF_MTE_TAGS_PER_PAGE,
				       KF_MTE_TAGS_PER_PAGE);
			w->result = 0;
			*pw = w->next;
			filled |= 1ULL << k;
		} else {
			pw = &w->next;
		}
	}
	for (k = 0; k < n; k++) {
		const uint8_t *page = data + (uint64_t)k * KF_PAGE_SIZE;
		bool mine = filled & (1ULL << k);

		if (!g->held[idx + k]) {
			g->held[idx + k] = 1;
			if (!g->eager)
				r->held_pages++;
		} else if (!mine && (cause == KF_MIG_CAUSE_PUSH ||
				     cause == KF_MIG_CAUSE_DEMAND)) {
			continue;	/* already here: a push and a demand answer crossed */
		}
		if (mine)
			continue;
		if (g->eager) {
			if (!g->eager_hva) {
				ret = kf_fail(EPROTO, "migration: page for region %u before its memory exists",
					      g->r.id);
				break;
			}
			memcpy((char *)g->eager_hva + (idx + k) * KF_PAGE_SIZE, page,
			       KF_PAGE_SIZE);
		} else if (!g->sink || g->unit_pages > 1) {
			memcpy(g->cache + (idx + k) * KF_PAGE_SIZE, page, KF_PAGE_SIZE);
			if (g->tags)
				memcpy(g->cache_tags + (idx + k) * KF_MTE_TAGS_PER_PAGE,
				       tags + (uint64_t)k * KF_MTE_TAGS_PER_PAGE,
				       KF_MTE_TAGS_PER_PAGE);
			g->cached[idx + k] = 1;
		} else {
			to_sink |= 1ULL << k;
		}
	}
	if (filled)
		pthread_cond_broadcast(&r->cond);
	if (r->held_pages == r->total_pages)
		pthread_cond_broadcast(&r->cond);
	if (g->sink && g->unit_pages > 1 && !ret) {
		nunits = kf_rc_take_units(g, idx / g->unit_pages,
					  (idx + n - 1) / g->unit_pages, units);
		if (nunits) {
			sink = g->sink;
			opaque = g->sink_opaque;
			g->sink_calls++;
		}
		pthread_mutex_unlock(&r->lock);
		if (sink) {
			ret = kf_rc_sink_units(g, sink, opaque, units, nunits);
			kf_rc_sink_done(g);
		}
		return ret;
	}
	if (to_sink) {
		sink = g->sink;
		opaque = g->sink_opaque;
		g->sink_calls++;
	}
	pthread_mutex_unlock(&r->lock);
	if (!sink)
		return ret;
	/* One call for each contiguous run: the engine installs it at once. */
	for (k = 0; k < n && !ret;) {
		uint32_t end;

		if (!(to_sink & (1ULL << k))) {
			k++;
			continue;
		}
		for (end = k + 1; end < n && (to_sink & (1ULL << end)); end++)
			;
		ret = sink(opaque, gpa + (uint64_t)k * KF_PAGE_SIZE,
			   data + (uint64_t)k * KF_PAGE_SIZE,
			   tags ? tags + (uint64_t)k * KF_MTE_TAGS_PER_PAGE : NULL,
			   (size_t)(end - k) * KF_PAGE_SIZE);
		k = end;
	}
	kf_rc_sink_done(g);
	return ret;
}

/* A PAGES message: verified where it lies, delivered in runs. */
static int kf_rc_handle_pages(struct kf_remote *r, const struct kf_mig_msg *msg,
			      bool push_stream)
{
	static __thread uint8_t tags[KF_MIG_MAX_BATCH * KF_MTE_TAGS_PER_PAGE];
	const uint8_t *data = msg->u.pages.data;
	uint32_t count = msg->u.pages.h.count, i = 0;
	int ret;

	_Static_assert(KF_MIG_MAX_BATCH <= 64, "a batch fits a 64-bit mask");
	ret = kf_mig_pages_verify(msg);
	if (ret)
		return ret;
	while (i < count) {
		uint64_t gpa = msg->u.pages.h.gpa + (uint64_t)i * KF_PAGE_SIZE, idx;
		struct kf_mig_page_entry e;
		struct kf_rc_region *g;
		uint32_t j, k, kind;

		memcpy(&e, &msg->u.pages.entries[i], sizeof(e));
		kind = e.kind;
		g = kf_rc_find(r, gpa, &idx);
		if (!g)
			return kf_fail(EPROTO, "migration stream: page 0x%llx is in no guest memory region",
				       (unsigned long long)gpa);
		if (g->tags != !!msg->u.pages.tags)
			return kf_fail(EPROTO, "migration stream: the pages at 0x%llx come %s allocation tags, region %u has %s",
				       (unsigned long long)gpa,
				       g->tags ? "without" : "with", g->r.id,
				       g->tags ? "tags" : "none");
		/* A run of one kind, inside one region. */
		for (j = i + 1; j < count && idx + (j - i) < g->npages; j++) {
			memcpy(&e, &msg->u.pages.entries[j], sizeof(e));
			if (e.kind != kind)
				break;
		}
		for (k = i; g->tags && k < j; k++)
			kf_mig_page_tags(msg, k, tags + (k - i) * KF_MTE_TAGS_PER_PAGE);
		ret = kf_rc_deliver_run(r, g, idx, j - i,
					kind == KF_MIG_PAGE_DATA ? data : kf_zero_page,
					g->tags ? tags : NULL, msg->u.pages.h.cause,
					push_stream);
		if (ret)
			return ret;
		if (kind == KF_MIG_PAGE_DATA)
			data += (uint64_t)(j - i) * KF_PAGE_SIZE;
		i = j;
	}
	return 0;
}

/* ------------------------------------------------------------- connecting */

static int kf_rc_hello(struct kf_remote *r, uint32_t channel,
		       unsigned int push_index, bool recover,
		       struct kf_mig_conn **cp, int timeout_ms)
{
	struct kf_mig_hello h = {
		.version = KF_MIG_VERSION,
		.channel = channel,
		.session = r->session,
		.image_id = kf_mig_image_id(),
		.flags = recover ? KF_MIG_HELLO_RECOVER : 0,
		.push_streams = (uint16_t)r->nr_push,
		.push_index = (uint16_t)push_index,
	};
	uint64_t deadline = kf_mig_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct kf_mig_conn *c;
	struct kf_mig_msg msg;
	char before[512];
	int fd, ret, hello_ms;

	*cp = NULL;
	snprintf(before, sizeof(before), "%s", kf_error());
	for (bool told = false;; told = true) {
		int left = kf_ms_until(deadline);

		/* timeout 0 is one attempt: give its connect a second */
		fd = kf_mig_connect(r->addr, KF_MAX(left, 1000));
		if (fd >= 0 || kf_mig_now_ns() >= deadline)
			break;
		if (!told)
			kf_logf(r->cfg.log, r->cfg.opaque,
				"%s; retrying for up to %d ms", kf_error(),
				timeout_ms);
		usleep(20000);
	}
	if (fd < 0)
		return fd;
	kf_error_restore(before);	/* the failed attempts are handled */
	/*
	 * A source accepts when it is ready (after its guest started): the
	 * handshake and HELLO may wait as long as connecting may, and at
	 * least hello_timeout_ms.
	 */
	hello_ms = KF_MAX(kf_ms_until(deadline), r->cfg.hello_timeout_ms > 0 ?
			  r->cfg.hello_timeout_ms : KF_MIG_HELLO_TIMEOUT_MS);
	ret = kf_mig_conn_open(fd, r->cfg.tls, hello_ms, &c);
	if (ret) {
		close(fd);
		return ret;
	}
	ret = kf_mig_conn_set_timeout(c, hello_ms);
	if (!ret)
		ret = kf_mig_send(c, KF_MIG_HELLO, &h, sizeof(h), NULL, 0, NULL, 0);
	if (!ret)
		ret = kf_mig_recv(c, &msg);
	if (!ret && msg.hdr.type == KF_MIG_ERROR)
		ret = kf_fail(ECONNREFUSED, "migration source refused: %s", msg.u.text);
	else if (!ret && msg.hdr.type == KF_MIG_HELLO &&
		 msg.u.hello.version != KF_MIG_VERSION)
		ret = kf_fail(EPROTO, "migration: the source speaks protocol version %u, this destination %u only (%s)",
			      msg.u.hello.version, KF_MIG_VERSION,
			      KF_MIG_VERSION_HISTORY);
	else if (!ret && (msg.hdr.type != KF_MIG_HELLO ||
			  msg.u.hello.session != r->session ||
			  msg.u.hello.channel != channel ||
			  msg.u.hello.push_streams != h.push_streams ||
			  msg.u.hello.push_index != h.push_index))
		ret = kf_fail(EPROTO, "migration source answered HELLO with %s",
			      kf_mig_type_name(msg.hdr.type));
	if (ret) {
		kf_mig_conn_free(c);
		return ret;
	}
	ret = kf_mig_conn_set_timeout(c, 0);
	if (ret) {
		kf_mig_conn_free(c);
		return ret;
	}
	*cp = c;
	return 0;
}

int kf_remote_connect(const struct kf_remote_config *cfg, struct kf_remote **rp)
{
	struct kf_remote *r;
	struct kf_mig_msg msg;
	int ret, timeout = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
	unsigned int i;

	*rp = NULL;
	if (!cfg->addr)
		return kf_fail(EINVAL, "remote source: no address");
	ret = kf_mig_check_channel("remote source", cfg->tls, cfg->plain);
	if (ret)
		return ret;
	if (cfg->push_streams > KF_MIG_MAX_PUSH_STREAMS)
		return kf_fail(EINVAL, "remote source: %u push streams, at most %u",
			       cfg->push_streams, KF_MIG_MAX_PUSH_STREAMS);
	r = calloc(1, sizeof(*r));
	if (!r)
		return kf_fail(ENOMEM, "out of memory");
	r->cfg = *cfg;
	r->addr = strdup(cfg->addr);
	r->cfg.addr = r->addr;
	r->nr_push = cfg->push_streams;
	if (r->cfg.reconnect_ms <= 0)
		r->cfg.reconnect_ms = 100;
	if (r->cfg.recover_timeout_ms <= 0)
		r->cfg.recover_timeout_ms = 30000;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->conn_lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	pthread_cond_init(&r->req_cond, NULL);
	if (getrandom(&r->session, sizeof(r->session), 0) != sizeof(r->session))
		r->session = kf_mig_now_ns() ^ ((uint64_t)getpid() << 32);

	ret = kf_rc_hello(r, KF_MIG_CH_MAIN, 0, false, &r->main, timeout);
	if (!ret)
		ret = kf_rc_hello(r, KF_MIG_CH_DEMAND, 0, false, &r->demand, timeout);
	for (i = 0; !ret && i < r->nr_push; i++)
		ret = kf_rc_hello(r, KF_MIG_CH_PUSH, i, false, &r->push[i], timeout);
	if (!ret)
		ret = kf_mig_recv(r->main, &msg);
	if (!ret && msg.hdr.type != KF_MIG_SETUP)
		ret = kf_fail(EPROTO, "migration source sent %s instead of SETUP",
			      kf_mig_type_name(msg.hdr.type));
	if (ret) {
		kf_remote_destroy(r);
		return ret;
	}
	r->nr_vcpus = msg.u.setup.setup->nr_vcpus;
	r->nr_regions = msg.u.setup.setup->nr_regions;
	r->mte = msg.u.setup.setup->flags & KF_MIG_SETUP_MTE;
	for (i = 0; i < r->nr_regions; i++) {
		struct kf_rc_region *g = &r->regions[i];

		memcpy(&g->r, &msg.u.setup.setup->regions[i], sizeof(g->r));
		g->r.id = i;
		g->eager = !!(g->r.slot_flags & KF_MIG_REGION_EAGER);
		g->r.slot_flags &= ~KF_MIG_REGION_EAGER;
		g->tags = !!(g->r.slot_flags & KF_MIG_REGION_TAGS);
		g->r.slot_flags &= ~KF_MIG_REGION_TAGS;
		g->npages = g->r.size / KF_PAGE_SIZE;
		g->remote = r;
		if (i && g->r.gpa < r->regions[i - 1].r.gpa + r->regions[i - 1].r.size) {
			kf_remote_destroy(r);
			return kf_fail(EPROTO, "migration SETUP: regions overlap or are out of order");
		}
		g->held = calloc(g->npages, 1);
		g->cached = calloc(g->npages, 1);
		g->cache = g->eager ? NULL :
			   mmap(NULL, g->r.size, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		g->cache_tags = !g->tags ? NULL :
				mmap(NULL, g->r.size / KF_MTE_GRANULE, PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (g->cache_tags == MAP_FAILED)
			g->cache_tags = NULL;
		if (!g->held || !g->cached || g->cache == MAP_FAILED ||
		    (g->tags && !g->cache_tags)) {
			if (g->cache == MAP_FAILED)
				g->cache = NULL;
			kf_remote_destroy(r);
			return kf_fail(ENOMEM, "out of memory for region %u", i);
		}
		if (!g->eager)
			r->total_pages += g->npages;
	}
	*rp = r;
	return 0;
}

unsigned int kf_remote_nr_regions(struct kf_remote *r)
{
	return r->nr_regions;
}

const struct kf_mig_region *kf_remote_region(struct kf_remote *r, unsigned int i)
{
	return i < r->nr_regions ? &r->regions[i].r : NULL;
}

unsigned int kf_remote_nr_vcpus(struct kf_remote *r)
{
	return r->nr_vcpus;
}

bool kf_remote_mte(struct kf_remote *r)
{
	return r->mte;
}

bool kf_remote_region_tags(struct kf_remote *r, unsigned int i)
{
	return i < r->nr_regions && r->regions[i].tags;
}

int kf_remote_set_eager(struct kf_remote *r, unsigned int i, void *hva)
{
	if (i >= r->nr_regions || !r->regions[i].eager)
		return kf_fail(EINVAL, "region %u is not sent eagerly", i);
	r->regions[i].eager_hva = hva;
	return 0;
}

int kf_remote_wait_switchover(struct kf_remote *r, struct kf_mig_switchover *sw)
{
	struct kf_mig_msg msg;
	unsigned int i;
	int ret;

	for (;;) {
		ret = kf_mig_recv(r->main, &msg);
		if (ret)
			return ret;
		switch (msg.hdr.type) {
		case KF_MIG_PAGES:
			ret = kf_rc_handle_pages(r, &msg, false);
			break;
		case KF_MIG_SYNC:
			ret = kf_mig_send(r->main, KF_MIG_SYNC, &msg.u.sync,
					  sizeof(msg.u.sync), NULL, 0, NULL, 0);
			break;
		case KF_MIG_DISCARD:
			pthread_mutex_lock(&r->lock);
			for (i = 0; i < msg.u.discard.count; i++) {
				struct kf_mig_range rg;
				uint64_t p, idx;

				memcpy(&rg, &msg.u.discard.ranges[i], sizeof(rg));
				for (p = 0; p < rg.npages; p++) {
					struct kf_rc_region *g =
						kf_rc_find(r, rg.gpa + p * KF_PAGE_SIZE, &idx);

					if (!g || g->eager)
						continue;
					if (g->held[idx])
						r->held_pages--;
					g->held[idx] = g->cached[idx] = 0;
				}
			}
			pthread_mutex_unlock(&r->lock);
			break;
		case KF_MIG_VCPU:
			if (msg.u.vcpu.id >= r->nr_vcpus || r->vcpu_blob[msg.u.vcpu.id]) {
				ret = kf_fail(EPROTO, "migration: state for vCPU %u (of %u) twice or out of range",
					      msg.u.vcpu.id, r->nr_vcpus);
				break;
			}
			r->vcpu_blob[msg.u.vcpu.id] = malloc(msg.u.vcpu.len ? msg.u.vcpu.len : 1);
			if (!r->vcpu_blob[msg.u.vcpu.id]) {
				ret = kf_fail(ENOMEM, "out of memory");
				break;
			}
			memcpy(r->vcpu_blob[msg.u.vcpu.id], msg.u.vcpu.blob, msg.u.vcpu.len);
			r->vcpu_len[msg.u.vcpu.id] = msg.u.vcpu.len;
			break;
		case KF_MIG_SWITCHOVER:
			for (i = 0; i < r->nr_regions; i++) {
				struct kf_rc_region *g = &r->regions[i];
				uint64_t p, n = 0;

				for (p = 0; p < g->npages; p++)
					n += g->held[p];
				if (g->eager && n != g->npages)
					return kf_fail(EPROTO, "migration: SWITCHOVER with %llu of %llu pages of eager region %u",
						       (unsigned long long)n,
						       (unsigned long long)g->npages, i);
			}
			for (i = 0; i < r->nr_vcpus; i++)
				if (!r->vcpu_blob[i])
					return kf_fail(EPROTO, "migration: SWITCHOVER without the state of vCPU %u", i);
			if (sw)
				*sw = msg.u.switchover;
			return 0;
		case KF_MIG_ERROR:
			return kf_fail(ECONNABORTED, "migration source failed: %s",
				       msg.u.text);
		default:
			ret = kf_fail(EPROTO, "migration: unexpected %s before SWITCHOVER",
				      kf_mig_type_name(msg.hdr.type));
		}
		if (ret)
			return ret;
	}
}

int kf_remote_vcpu_state(struct kf_remote *r, unsigned int id,
			 const void **blobp, size_t *lenp)
{
	if (id >= r->nr_vcpus || !r->vcpu_blob[id])
		return kf_fail(ENOENT, "no state for vCPU %u", id);
	*blobp = r->vcpu_blob[id];
	*lenp = r->vcpu_len[id];
	return 0;
}

/* ------------------------------------------------------------ page source */

/* tags: a tags region's read_tagged(), else NULL. */
static int kf_rc_read_pages(struct kf_pagesrc *src, uint64_t gpa, void *buf,
			    uint8_t *tags, size_t len)
{
	struct kf_rc_region *g = src->priv;
	struct kf_remote *r = g->remote;
	struct kf_rc_waiter ws[16];
	size_t n = len / KF_PAGE_SIZE, i, done = 0;
	int ret = 0;

	if (gpa < src->base || len > src->size || gpa - src->base > src->size - len ||
	    !KF_IS_ALIGNED(gpa, KF_PAGE_SIZE) || !KF_IS_ALIGNED(len, KF_PAGE_SIZE) ||
	    !n)
		return kf_fail(ERANGE, "remote source: bad read [0x%llx, +0x%zx)",
			       (unsigned long long)gpa, len);
	while (done < n) {
		size_t batch = KF_MIN(n - done, KF_ARRAY_SIZE(ws)), nw = 0;

		pthread_mutex_lock(&r->lock);
		for (i = 0; i < batch; i++) {
			uint64_t pg = gpa + (done + i) * KF_PAGE_SIZE;
			uint64_t idx = (pg - g->r.gpa) / KF_PAGE_SIZE;
			char *dst = (char *)buf + (done + i) * KF_PAGE_SIZE;
			uint8_t *dst_tags = tags ? tags + (done + i) * KF_MTE_TAGS_PER_PAGE : NULL;

			if (g->cached[idx]) {
				memcpy(dst, g->cache + idx * KF_PAGE_SIZE, KF_PAGE_SIZE);
				if (dst_tags)
					memcpy(dst_tags, g->cache_tags + idx * KF_MTE_TAGS_PER_PAGE,
					       KF_MTE_TAGS_PER_PAGE);
				g->cached[idx] = 0;
				continue;
			}
			if (r->state == KF_RC_FAILED) {
				ret = kf_fail(ENOTCONN, "%s", r->err);
				break;
			}
			ws[nw] = (struct kf_rc_waiter){ .gpa = pg, .buf = dst,
							 .tags = dst_tags, .result = 1 };
			ws[nw].next = r->waiters;
			r->waiters = &ws[nw];
			if (r->reqq_len == r->reqq_cap) {
				unsigned int cap = r->reqq_cap ? r->reqq_cap * 2 : 256;
				uint64_t *q = realloc(r->reqq, cap * sizeof(*q));

				if (q) {
					r->reqq = q;
					r->reqq_cap = cap;
				}
			}
			if (r->reqq_len < r->reqq_cap)
				r->reqq[r->reqq_len++] = pg;
			r->st.requests++;
			nw++;
		}
		if (nw)
			pthread_cond_signal(&r->req_cond);
		for (i = 0; i < nw; i++) {
			while (ws[i].result == 1)
				pthread_cond_wait(&r->cond, &r->lock);
			if (ws[i].result < 0 && !ret)
				ret = kf_fail(-ws[i].result, "%s", r->err[0] ? r->err :
					      "remote source failed");
		}
		/* A failure with waiters still queued: unlink ours. */
		if (ret) {
			struct kf_rc_waiter **pw = &r->waiters, *w;

			while ((w = *pw)) {
				if (w >= ws && w < ws + KF_ARRAY_SIZE(ws))
					*pw = w->next;
				else
					pw = &w->next;
			}
		}
		pthread_mutex_unlock(&r->lock);
		if (ret)
			return ret;
		done += batch;
	}
	return 0;
}

static int kf_rc_read(struct kf_pagesrc *src, uint64_t gpa, void *buf, size_t len)
{
	struct kf_rc_region *g = src->priv;

	if (g->tags)
		return kf_fail(EINVAL, "remote source: region %u has allocation tags: read them with its pages",
			       g->r.id);
	return kf_rc_read_pages(src, gpa, buf, NULL, len);
}

static int kf_rc_read_tagged(struct kf_pagesrc *src, uint64_t gpa, void *buf,
			     void *tags, size_t len)
{
	struct kf_rc_region *g = src->priv;

	if (!g->tags)
		return kf_fail(ENODATA, "remote source: region %u carries no allocation tags",
			       g->r.id);
	return kf_rc_read_pages(src, gpa, buf, tags, len);
}

static int kf_rc_prefetch(struct kf_pagesrc *src, uint64_t gpa, size_t len)
{
	(void)src;
	(void)gpa;
	(void)len;
	return 0;	/* the push covers everything anyway */
}

/* Hand cached (pre-copied) pages to the engine, outside the lock. */
static void *kf_rc_flush_thread(void *arg)
{
	struct kf_rc_region *g = arg;
	struct kf_remote *r = g->remote;
	static __thread uint8_t page[KF_PAGE_SIZE] __attribute__((aligned(64)));
	static __thread uint8_t tags[KF_MTE_TAGS_PER_PAGE];
	const uint64_t per = g->unit_pages;	/* set before this thread started */
	uint64_t p;

	for (p = 0; p < g->npages; p += per) {
		kf_pagesrc_sink_fn sink = NULL;
		void *opaque = NULL;
		uint64_t unit;
		int ret;

		pthread_mutex_lock(&r->lock);
		if (!g->sink) {
			pthread_mutex_unlock(&r->lock);
			break;	/* detached */
		}
		if (per > 1) {
			/* Whole units: a part waits for the rest to arrive. */
			if (!kf_rc_take_units(g, p / per, p / per, &unit)) {
				pthread_mutex_unlock(&r->lock);
				continue;
			}
			sink = g->sink;
			opaque = g->sink_opaque;
			g->sink_calls++;
			pthread_mutex_unlock(&r->lock);
			ret = kf_rc_sink_units(g, sink, opaque, &unit, 1);
			kf_rc_sink_done(g);
			if (ret)
				break;
			continue;
		}
		if (g->cached[p]) {
			memcpy(page, g->cache + p * KF_PAGE_SIZE, KF_PAGE_SIZE);
			if (g->tags)
				memcpy(tags, g->cache_tags + p * KF_MTE_TAGS_PER_PAGE,
				       KF_MTE_TAGS_PER_PAGE);
			g->cached[p] = 0;
			sink = g->sink;
			opaque = g->sink_opaque;
			g->sink_calls++;
		}
		pthread_mutex_unlock(&r->lock);
		if (!sink)
			continue;
		ret = sink(opaque, g->r.gpa + p * KF_PAGE_SIZE, page,
			   g->tags ? tags : NULL, KF_PAGE_SIZE);
		kf_rc_sink_done(g);
		if (ret)
			break;	/* the engine reports its own failure */
	}
	return NULL;
}

static int kf_rc_start_push(struct kf_pagesrc *src, kf_pagesrc_sink_fn sink,
			    void *opaque)
{
	struct kf_rc_region *g = src->priv;
	struct kf_remote *r = g->remote;
	int ret;

	pthread_mutex_lock(&r->lock);
	g->sink = sink;
	g->sink_opaque = opaque;
	g->unit_pages = KF_MAX(src->push_unit, KF_PAGE_SIZE) / KF_PAGE_SIZE;
	pthread_mutex_unlock(&r->lock);
	ret = pthread_create(&g->flush_thread, NULL, kf_rc_flush_thread, g);
	if (ret)
		return kf_fail(ret, "remote source: cannot start a thread");
	g->flush_started = true;
	return 0;
}

/* Receivers keep running: pages from now on wait in the cache. */
static void kf_rc_stop_push(struct kf_pagesrc *src)
{
	struct kf_rc_region *g = src->priv;
	struct kf_remote *r = g->remote;

	pthread_mutex_lock(&r->lock);
	g->sink = NULL;
	g->sink_opaque = NULL;
	while (g->sink_calls)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
	if (g->flush_started) {
		pthread_join(g->flush_thread, NULL);
		g->flush_started = false;
	}
}

static const struct kf_pagesrc_ops kf_rc_ops = {
	.read = kf_rc_read,
	.read_tagged = kf_rc_read_tagged,
	.prefetch = kf_rc_prefetch,
	.start_push = kf_rc_start_push,
	.stop_push = kf_rc_stop_push,
	.destroy = kf_rc_stop_push,
};

int kf_remote_pagesrc(struct kf_remote *r, unsigned int i, struct kf_pagesrc **srcp)
{
	struct kf_rc_region *g;

	*srcp = NULL;
	if (i >= r->nr_regions || r->regions[i].eager)
		return kf_fail(EINVAL, "remote source: region %u is not paged on demand", i);
	g = &r->regions[i];
	g->src.ops = &kf_rc_ops;
	g->src.kind = "remote";
	g->src.base = g->r.gpa;
	g->src.size = g->r.size;
	g->src.priv = g;
	g->src.flags = g->tags ? KF_PAGESRC_TAGS : 0;
	*srcp = &g->src;
	return 0;
}

/* ---------------------------------------------------------------- threads */

/*
 * A push stream's receiver steps aside while a demanded page is
 * outstanding: on a host with few cores its copies and installs hold the
 * CPU that the demand's wake-ups need.  For at most a few milliseconds, so
 * that a demand that takes long (a reconnect) only slows the push.
 */
static void kf_rc_yield_to_demand(struct kf_remote *r)
{
	const struct timespec nap = { .tv_nsec = 50 * 1000 };
	unsigned int i;

	for (i = 0; i < 40 && __atomic_load_n(&r->waiters, __ATOMIC_RELAXED); i++)
		nanosleep(&nap, NULL);
}

static void *kf_rc_rx_thread(void *arg)
{
	struct kf_rc_rx *rx = arg;
	struct kf_remote *r = rx->remote;
	struct kf_mig_conn *c = rx->conn;
	struct kf_mig_msg msg;
	int ret;

	if (rx->push_stream && kf_mig_push_thread_priority()) {
		pthread_mutex_lock(&r->lock);
		r->st.push_threads_lowered++;
		pthread_mutex_unlock(&r->lock);
	}
	for (;;) {
		if (rx->push_stream)
			kf_rc_yield_to_demand(r);
		ret = kf_mig_recv(c, &msg);
		if (ret)
			break;
		switch (msg.hdr.type) {
		case KF_MIG_PAGES:
			ret = kf_rc_handle_pages(r, &msg, rx->push_stream);
			break;
		case KF_MIG_PUSH_DONE:
			break;	/* completion is every page held, not this */
		case KF_MIG_STATS:
			pthread_mutex_lock(&r->lock);
			r->source_stats = msg.u.stats;
			r->got_stats = true;
			pthread_cond_broadcast(&r->cond);
			pthread_mutex_unlock(&r->lock);
			break;
		case KF_MIG_ERROR: {
			char m[KF_MIG_MAX_TEXT + 64];

			snprintf(m, sizeof(m), "migration source failed: %s", msg.u.text);
			kf_rc_fail(r, m);
			return NULL;
		}
		default:
			ret = kf_fail(EPROTO, "migration: unexpected %s during post-copy",
				      kf_mig_type_name(msg.hdr.type));
		}
		if (ret)
			break;
	}
	if (ret == -EPROTO || ret == -EBADMSG) {
		/* A hostile or broken stream: no reconnect will fix it. */
		kf_rc_fail(r, kf_error());
		kf_rc_shutdown_conns(r);
		return NULL;
	}
	kf_rc_broken(r, kf_error());
	return NULL;
}

static void *kf_rc_sender(void *arg)
{
	struct kf_remote *r = arg;
	uint64_t batch[KF_MIG_MAX_REQ];

	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct kf_mig_req_hdr h = { 0 };
		int ret;

		while (!r->stopping && r->state != KF_RC_FAILED &&
		       (r->state != KF_RC_CONNECTED || !r->reqq_len))
			pthread_cond_wait(&r->req_cond, &r->lock);
		if (r->stopping || r->state == KF_RC_FAILED)
			break;
		h.count = KF_MIN(r->reqq_len, (unsigned int)KF_MIG_MAX_REQ);
		memcpy(batch, r->reqq, h.count * sizeof(batch[0]));
		memmove(r->reqq, r->reqq + h.count,
			(r->reqq_len - h.count) * sizeof(batch[0]));
		r->reqq_len -= h.count;
		r->st.req_messages++;
		pthread_mutex_unlock(&r->lock);

		pthread_mutex_lock(&r->conn_lock);
		ret = r->demand ? kf_mig_send(r->demand, KF_MIG_REQ, &h, sizeof(h),
					      batch, h.count * sizeof(batch[0]),
					      NULL, 0) : -ENOTCONN;
		pthread_mutex_unlock(&r->conn_lock);
		if (ret)	/* requests lost: re-sent from waiters on reconnect */
			kf_rc_broken(r, kf_error());
		pthread_mutex_lock(&r->lock);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void kf_rc_join_rx(struct kf_remote *r)
{
	while (r->nr_rx)
		pthread_join(r->rx[--r->nr_rx].thread, NULL);
}

/* A receiver on every connection. */
static int kf_rc_start_rx(struct kf_remote *r)
{
	struct kf_mig_conn *conns[KF_RC_MAX_CONNS] = { r->main, r->demand };
	unsigned int i, n = 2;
	int ret;

	for (i = 0; i < r->nr_push; i++)
		conns[n++] = r->push[i];
	for (i = 0; i < n; i++) {
		r->rx[i] = (struct kf_rc_rx){
			.remote = r,
			.conn = conns[i],
			.push_stream = i >= 2,
		};
		ret = pthread_create(&r->rx[i].thread, NULL, kf_rc_rx_thread,
				     &r->rx[i]);
		if (ret) {
			kf_rc_shutdown_conns(r);
			kf_rc_join_rx(r);
			return kf_fail(ret, "remote source: cannot start a thread");
		}
		r->nr_rx++;
	}
	return 0;
}

static void kf_rc_free_conns(struct kf_mig_conn **conns, unsigned int n)
{
	while (n)
		kf_mig_conn_free(conns[--n]);
}

/* Reconnect every channel and tell the source what is here. */
static int kf_rc_reconnect(struct kf_remote *r)
{
	struct kf_mig_conn *m = NULL, *d = NULL;
	struct kf_mig_conn *push[KF_MIG_MAX_PUSH_STREAMS] = { 0 };
	unsigned int i;
	int ret;

	ret = kf_rc_hello(r, KF_MIG_CH_MAIN, 0, true, &m, 0);
	if (!ret)
		ret = kf_rc_hello(r, KF_MIG_CH_DEMAND, 0, true, &d, 2000);
	for (i = 0; !ret && i < r->nr_push; i++)
		ret = kf_rc_hello(r, KF_MIG_CH_PUSH, i, true, &push[i], 2000);
	for (i = 0; !ret && i < r->nr_regions; i++) {
		struct kf_rc_region *g = &r->regions[i];
		struct kf_mig_received_hdr h = { .region = i, .nbits = g->npages };
		size_t words = (g->npages + 63) / 64;
		uint64_t *bm = calloc(words, 8), p;

		if (!bm) {
			ret = kf_fail(ENOMEM, "out of memory");
			break;
		}
		pthread_mutex_lock(&r->lock);
		for (p = 0; p < g->npages; p++)
			if (g->held[p])
				bm[p / 64] |= 1ULL << (p % 64);
		pthread_mutex_unlock(&r->lock);
		ret = kf_mig_send(m, KF_MIG_RECEIVED, &h, sizeof(h), bm, words * 8,
				  NULL, 0);
		free(bm);
	}
	if (!ret)
		ret = kf_mig_send(m, KF_MIG_RECOVER_DONE, NULL, 0, NULL, 0, NULL, 0);
	if (ret) {
		kf_mig_conn_free(m);
		kf_mig_conn_free(d);
		kf_rc_free_conns(push, r->nr_push);
		return ret;
	}
	pthread_mutex_lock(&r->conn_lock);
	kf_mig_conn_free(r->main);
	kf_mig_conn_free(r->demand);
	kf_rc_free_conns(r->push, r->nr_push);
	r->main = m;
	r->demand = d;
	memcpy(r->push, push, sizeof(push));
	pthread_mutex_unlock(&r->conn_lock);
	return 0;
}

static void *kf_rc_supervisor(void *arg)
{
	struct kf_remote *r = arg;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		uint64_t deadline;
		struct kf_rc_waiter *w;
		char last[512] = "";
		int ret;

		while (!r->stopping && r->state == KF_RC_CONNECTED)
			pthread_cond_wait(&r->cond, &r->lock);
		if (r->stopping || r->state != KF_RC_BROKEN)
			break;
		pthread_mutex_unlock(&r->lock);
		kf_rc_join_rx(r);

		deadline = kf_mig_now_ns() + r->cfg.recover_timeout_ms * 1000000ULL;
		for (;;) {
			ret = kf_rc_reconnect(r);
			if (!ret || r->stopping || kf_mig_now_ns() >= deadline)
				break;
			snprintf(last, sizeof(last), "%s", kf_error());
			usleep(r->cfg.reconnect_ms * 1000);
		}
		pthread_mutex_lock(&r->lock);
		if (r->stopping)
			break;
		if (ret) {
			char m[900];

			snprintf(m, sizeof(m), "the migration source at %s is gone: no reconnect within %d ms (last error: %s); %llu of %llu post-copy pages never arrived",
				 r->addr, r->cfg.recover_timeout_ms,
				 last[0] ? last : kf_error(),
				 (unsigned long long)(r->total_pages - r->held_pages),
				 (unsigned long long)r->total_pages);
			kf_rc_fail_locked(r, m);
			break;
		}
		r->st.reconnects++;
		r->state = KF_RC_CONNECTED;
		/* Ask again for everything still awaited. */
		r->reqq_len = 0;
		for (w = r->waiters; w; w = w->next) {
			if (r->reqq_len == r->reqq_cap) {
				unsigned int cap = r->reqq_cap ? r->reqq_cap * 2 : 256;
				uint64_t *q = realloc(r->reqq, cap * sizeof(*q));

				if (!q)
					break;
				r->reqq = q;
				r->reqq_cap = cap;
			}
			r->reqq[r->reqq_len++] = w->gpa;
		}
		kf_logf(r->cfg.log, r->cfg.opaque,
			"reconnected to %s; %llu of %llu pages here, re-asking %u",
			r->addr, (unsigned long long)r->held_pages,
			(unsigned long long)r->total_pages, r->reqq_len);
		pthread_mutex_unlock(&r->lock);
		if (kf_rc_start_rx(r)) {
			kf_rc_fail(r, kf_error());
			pthread_mutex_lock(&r->lock);
			break;
		}
		pthread_mutex_lock(&r->lock);
		pthread_cond_broadcast(&r->req_cond);
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int kf_remote_start(struct kf_remote *r)
{
	int ret;

	pthread_mutex_lock(&r->lock);
	r->state = KF_RC_CONNECTED;
	pthread_mutex_unlock(&r->lock);
	ret = kf_rc_start_rx(r);
	if (ret)
		return ret;
	if (pthread_create(&r->sender, NULL, kf_rc_sender, r) ||
	    pthread_create(&r->supervisor, NULL, kf_rc_supervisor, r)) {
		kf_rc_fail(r, "cannot start the remote source's threads");
		return kf_fail(EAGAIN, "remote source: cannot start threads");
	}
	r->threads_started = true;
	return 0;
}

int kf_remote_resumed(struct kf_remote *r)
{
	int ret;

	pthread_mutex_lock(&r->conn_lock);
	ret = r->main ? kf_mig_send(r->main, KF_MIG_RESUMED, NULL, 0, NULL, 0,
				    NULL, 0) : -ENOTCONN;
	pthread_mutex_unlock(&r->conn_lock);
	return ret;
}

int kf_remote_wait_complete(struct kf_remote *r)
{
	struct timespec ts;
	int ret;

	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (r->state != KF_RC_FAILED &&
		       (r->held_pages < r->total_pages || r->state != KF_RC_CONNECTED))
			pthread_cond_wait(&r->cond, &r->lock);
		if (r->state == KF_RC_FAILED) {
			ret = kf_fail(ENOTCONN, "%s", r->err);
			pthread_mutex_unlock(&r->lock);
			return ret;
		}
		r->completing = true;
		pthread_mutex_unlock(&r->lock);
		pthread_mutex_lock(&r->conn_lock);
		ret = kf_mig_send(r->main, KF_MIG_COMPLETE, NULL, 0, NULL, 0, NULL, 0);
		pthread_mutex_unlock(&r->conn_lock);
		pthread_mutex_lock(&r->lock);
		if (!ret)
			break;
		/* Dropped just now: wait for the reconnect and say it again. */
		r->completing = false;
		if (r->state == KF_RC_CONNECTED)
			r->state = KF_RC_BROKEN;
		pthread_cond_broadcast(&r->cond);
	}
	/* The source answers with its statistics and closes. */
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 2;
	while (!r->got_stats && r->state == KF_RC_CONNECTED &&
	       pthread_cond_timedwait(&r->cond, &r->lock, &ts) == 0)
		;
	r->state = KF_RC_DONE;
	pthread_cond_broadcast(&r->cond);
	pthread_cond_broadcast(&r->req_cond);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void kf_remote_progress(struct kf_remote *r, uint64_t *held, uint64_t *total)
{
	pthread_mutex_lock(&r->lock);
	*held = r->held_pages;
	*total = r->total_pages;
	pthread_mutex_unlock(&r->lock);
}

void kf_remote_stats(struct kf_remote *r, struct kf_remote_stats *st)
{
	pthread_mutex_lock(&r->lock);
	*st = r->st;
	st->total_pages = r->total_pages;
	st->held_pages = r->held_pages;
	st->source_downtime_ns = r->source_stats.downtime_ns;
	pthread_mutex_unlock(&r->lock);
}

const char *kf_remote_error(struct kf_remote *r)
{
	return r->state == KF_RC_FAILED ? r->err : NULL;
}

void kf_remote_drop(struct kf_remote *r)
{
	kf_rc_broken(r, "dropped on purpose (test hook)");
}

void kf_remote_destroy(struct kf_remote *r)
{
	unsigned int i;

	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	if (r->state != KF_RC_DONE)
		kf_rc_fail_locked(r, "the remote source was shut down");
	pthread_cond_broadcast(&r->cond);
	pthread_cond_broadcast(&r->req_cond);
	pthread_mutex_unlock(&r->lock);
	kf_rc_shutdown_conns(r);
	if (r->threads_started) {
		pthread_join(r->supervisor, NULL);
		pthread_join(r->sender, NULL);
	}
	kf_rc_join_rx(r);
	for (i = 0; i < r->nr_regions; i++) {
		struct kf_rc_region *g = &r->regions[i];

		if (g->flush_started)
			pthread_join(g->flush_thread, NULL);
		if (g->cache)
			munmap(g->cache, g->r.size);
		if (g->cache_tags)
			munmap(g->cache_tags, g->r.size / KF_MTE_GRANULE);
		free(g->held);
		free(g->cached);
	}
	for (i = 0; i < KF_MAX_VCPUS; i++)
		free(r->vcpu_blob[i]);
	kf_mig_conn_free(r->main);
	kf_mig_conn_free(r->demand);
	kf_rc_free_conns(r->push, r->nr_push);
	free(r->reqq);
	free(r->addr);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->conn_lock);
	pthread_cond_destroy(&r->cond);
	pthread_cond_destroy(&r->req_cond);
	free(r);
}
