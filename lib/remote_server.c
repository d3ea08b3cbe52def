// SPDX-License-Identifier: MIT
/*
 * The page server: the source side of post-copy.  One thread answers
 * demand requests on the demand connection; pushers send every page the
 * destination lacks, one on each push stream (or one on the main
 * connection when the destination opened none), and yield while demand
 * requests are being served; the caller's thread reads the main
 * connection for RESUMED and COMPLETE.  A dropped connection ends all
 * threads; the server then waits for the destination to reconnect with the
 * session id, learns which pages it holds and carries on.  Guest memory is
 * kept until the destination says COMPLETE.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/remote.h>

#include "internal.h"

struct kf_ps_region {
	struct kf_page_server_region r;
	uint64_t npages;
	uint8_t *sent;		/* per page: the destination has it or it is on its way */
};

struct kf_page_server {
	struct kf_page_server_config cfg;
	struct kf_ps_region *regions;
	unsigned int nr_regions;
	int lfd;
	uint64_t session;
	bool have_session;
	struct kf_mig_conn *main, *demand;
	struct kf_mig_conn *push[KF_MIG_MAX_PUSH_STREAMS];
	unsigned int nr_push;		/* push streams main's HELLO asked for */

	volatile int stop;		/* threads: leave now */
	volatile int demand_busy;	/* push: yield to demand */
	volatile int dropped;		/* the drop hook fired */
	int err_taken;			/* err[] holds the first failure */
	uint64_t postcopy_pages;
	uint64_t pages[KF_MIG_CAUSE_MAX];
	uint64_t stop_ns, downtime_ns;
	uint64_t reconnects;
	uint64_t refused;
	char last_refused[512];		/* the acceptor's last refusal */
	struct sockaddr_storage peer;	/* the destination's address */
	bool have_peer;
	char err[512];
};

/* The first failure of a session's threads, for the log (read after
 * they are joined). */
static void kf_ps_record_err(struct kf_page_server *srv)
{
	if (!__atomic_exchange_n(&srv->err_taken, 1, __ATOMIC_ACQ_REL))
		snprintf(srv->err, sizeof(srv->err), "%s", kf_error());
}

int kf_page_server_create(const struct kf_page_server_config *cfg,
			  int listen_fd, struct kf_page_server **srvp)
{
	struct kf_page_server *srv;
	unsigned int i;
	int ret = 0;

	*srvp = NULL;
	if (!cfg->nr_regions || cfg->nr_regions > KF_MIG_MAX_REGIONS)
		return kf_fail(EINVAL, "page server: %u regions", cfg->nr_regions);
	ret = kf_mig_check_channel("page server", cfg->tls, cfg->plain);
	if (ret)
		return ret;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return kf_fail(ENOMEM, "out of memory");
	srv->cfg = *cfg;
	if (srv->cfg.hello_timeout_ms <= 0)
		srv->cfg.hello_timeout_ms = KF_MIG_HELLO_TIMEOUT_MS;
	srv->lfd = listen_fd;
	srv->nr_regions = cfg->nr_regions;
	srv->regions = calloc(cfg->nr_regions, sizeof(*srv->regions));
	if (!srv->regions) {
		free(srv);
		return kf_fail(ENOMEM, "out of memory");
	}
	for (i = 0; i < cfg->nr_regions; i++) {
		struct kf_ps_region *r = &srv->regions[i];

		r->r = cfg->regions[i];
		r->npages = r->r.size / KF_PAGE_SIZE;
		if (r->npages && !(r->r.size % KF_PAGE_SIZE))
			r->sent = calloc(r->npages, 1);
		if (!r->npages || r->r.size % KF_PAGE_SIZE)
			ret = kf_fail(EINVAL, "page server: region %u is empty or not page aligned", i);
		else if (r->r.tags && (r->r.eager || !cfg->read_tags || !cfg->mte))
			ret = kf_fail(EINVAL, "page server: region %u has tags, which need an MTE VM, read_tags and a region that is not eager", i);
		else if (!r->sent)
			ret = kf_fail(ENOMEM, "page server: out of memory for the page map of region %u (%llu pages)",
				      i, (unsigned long long)r->npages);
		if (ret) {
			kf_page_server_destroy(srv);
			return ret;
		}
	}
	srv->cfg.regions = NULL;
	*srvp = srv;
	return 0;
}

static struct kf_ps_region *kf_ps_find(struct kf_page_server *srv, uint64_t gpa,
				       uint64_t *idx)
{
	unsigned int i;

	for (i = 0; i < srv->nr_regions; i++) {
		struct kf_ps_region *r = &srv->regions[i];

		if (gpa >= r->r.gpa && gpa - r->r.gpa < r->r.size) {
			*idx = (gpa - r->r.gpa) / KF_PAGE_SIZE;
			return r;
		}
	}
	return NULL;
}

void kf_page_server_mark_sent(struct kf_page_server *srv, uint64_t gpa,
			      uint64_t npages)
{
	uint64_t idx;

	for (; npages; npages--, gpa += KF_PAGE_SIZE) {
		struct kf_ps_region *r = kf_ps_find(srv, gpa, &idx);

		if (r)
			__atomic_store_n(&r->sent[idx], 1, __ATOMIC_RELAXED);
	}
}

int kf_page_server_sync(struct kf_page_server *srv)
{
	uint64_t cookie = kf_mig_now_ns();
	struct kf_mig_msg msg;
	int ret;

	ret = kf_mig_send(srv->main, KF_MIG_SYNC, &cookie, sizeof(cookie),
			  NULL, 0, NULL, 0);
	if (!ret)
		ret = kf_mig_recv(srv->main, &msg);
	if (!ret && (msg.hdr.type != KF_MIG_SYNC || msg.u.sync != cookie))
		ret = kf_fail(EPROTO, "migration: the destination answered SYNC with %s",
			      kf_mig_type_name(msg.hdr.type));
	return ret;
}

void kf_page_server_mark_stopped(struct kf_page_server *srv)
{
	srv->stop_ns = kf_mig_now_ns();
}

struct kf_mig_conn *kf_page_server_main(struct kf_page_server *srv)
{
	return srv->main;
}

static void kf_ps_close(struct kf_page_server *srv)
{
	unsigned int i;

	kf_mig_conn_free(srv->main);
	kf_mig_conn_free(srv->demand);
	srv->main = srv->demand = NULL;
	for (i = 0; i < KF_MIG_MAX_PUSH_STREAMS; i++) {
		kf_mig_conn_free(srv->push[i]);
		srv->push[i] = NULL;
	}
}

/* Wake every thread blocked on a connection of the session. */
static void kf_ps_shutdown(struct kf_page_server *srv)
{
	unsigned int i;

	kf_mig_conn_shutdown(srv->main);
	kf_mig_conn_shutdown(srv->demand);
	for (i = 0; i < srv->nr_push; i++)
		kf_mig_conn_shutdown(srv->push[i]);
}

static bool kf_ps_all_connected(struct kf_page_server *srv)
{
	unsigned int i;

	if (!srv->main || !srv->demand)
		return false;
	for (i = 0; i < srv->nr_push; i++)
		if (!srv->push[i])
			return false;
	return true;
}

/* A HELLO's channel against those already open: 0 or -EPROTO. */
static int kf_ps_check_channel(struct kf_page_server *srv,
			       const struct kf_mig_hello *h)
{
	switch (h->channel) {
	case KF_MIG_CH_MAIN:
		return srv->main ? kf_fail(EPROTO, "migration: a second main connection") : 0;
	case KF_MIG_CH_DEMAND:
		return srv->demand ? kf_fail(EPROTO, "migration: a second demand connection") : 0;
	default:
		if (!srv->main)
			return kf_fail(EPROTO, "migration: a push stream before the main connection");
		if (h->push_streams != srv->nr_push)
			return kf_fail(EPROTO, "migration: a push stream of %u streams, main asked for %u",
				       h->push_streams, srv->nr_push);
		if (srv->push[h->push_index])
			return kf_fail(EPROTO, "migration: a second push stream %u",
				       h->push_index);
		return 0;
	}
}

/* Whether fd's peer has the destination's address (any port): 0 or -1. */
static int kf_ps_peer_check(struct kf_page_server *srv, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	bool same;

	if (!srv->have_peer)
		return 0;
	if (getpeername(fd, (struct sockaddr *)&ss, &len))
		return kf_fail_errno(errno, "getpeername");
	if (ss.ss_family != srv->peer.ss_family)
		same = false;
	else if (ss.ss_family == AF_INET)
		same = ((struct sockaddr_in *)&ss)->sin_addr.s_addr ==
		       ((struct sockaddr_in *)&srv->peer)->sin_addr.s_addr;
	else if (ss.ss_family == AF_INET6)
		same = !memcmp(&((struct sockaddr_in6 *)&ss)->sin6_addr,
			       &((struct sockaddr_in6 *)&srv->peer)->sin6_addr,
			       sizeof(struct in6_addr));
	else
		same = true;	/* a socketpair: no address to tell */
	if (!same)
		return kf_fail(EPERM, "migration: a connection from another address than the destination's");
	return 0;
}

/*
 * Handshakes run on threads of their own, at most KF_PS_MAX_HANDSHAKES at
 * once, so that a client that connects and stalls holds up nobody: the
 * real destination's handshakes go on beside it.  When the table is full
 * the oldest handshake is given up for the newcomer (a stalling client is
 * the oldest; a real one finishes in milliseconds), and those still going
 * when the session has all its connections are given up too.
 */
#define KF_PS_MAX_HANDSHAKES 16

struct kf_ps_handshake {
	struct kf_page_server *srv;
	int fd;			/* the conn's once it exists; closed by the acceptor */
	int wake_fd;		/* the acceptor's eventfd */
	uint64_t started_ns;
	struct kf_mig_conn *conn;
	struct kf_mig_hello hello;
	int ret;		/* 0: a HELLO of this program and version */
	char why[512];
	int done;
	pthread_t thread;
};

static void *kf_ps_handshake_thread(void *arg)
{
	struct kf_ps_handshake *hs = arg;
	struct kf_page_server *srv = hs->srv;
	struct kf_mig_msg msg;
	uint64_t one = 1;
	int ret;

	/* A peer that connects and says nothing must not hang us. */
	ret = kf_mig_conn_open(hs->fd, srv->cfg.tls, srv->cfg.hello_timeout_ms,
			       &hs->conn);
	if (!ret)
		ret = kf_mig_conn_set_timeout(hs->conn, srv->cfg.hello_timeout_ms);
	if (!ret)
		ret = kf_mig_recv(hs->conn, &msg);
	if (!ret && msg.hdr.type != KF_MIG_HELLO)
		ret = kf_fail(EPROTO, "migration: expected HELLO, got %s",
			      kf_mig_type_name(msg.hdr.type));
	if (!ret && msg.u.hello.version != KF_MIG_VERSION)
		ret = kf_fail(EPROTO, "migration: the destination speaks protocol version %u, this source %u only (%s)",
			      msg.u.hello.version, KF_MIG_VERSION,
			      KF_MIG_VERSION_HISTORY);
	if (!ret && msg.u.hello.image_id != kf_mig_image_id())
		ret = kf_fail(EPROTO, "migration: the destination runs another program image (0x%llx, here 0x%llx): guest code would differ",
			      (unsigned long long)msg.u.hello.image_id,
			      (unsigned long long)kf_mig_image_id());
	if (ret)
		snprintf(hs->why, sizeof(hs->why), "%s", kf_error());
	else
		hs->hello = msg.u.hello;
	hs->ret = ret;
	__atomic_store_n(&hs->done, 1, __ATOMIC_RELEASE);
	if (write(hs->wake_fd, &one, sizeof(one)) < 0) {
		/* the acceptor polls with a bound anyway */
	}
	return NULL;
}

/* Join a handshake (given up: its socket shut first) and free it. */
static void kf_ps_handshake_free(struct kf_ps_handshake *hs, bool give_up)
{
	if (give_up && hs->fd >= 0)
		shutdown(hs->fd, SHUT_RDWR);
	pthread_join(hs->thread, NULL);
	if (hs->conn)
		kf_mig_conn_free(hs->conn);
	else if (hs->fd >= 0)
		close(hs->fd);
	free(hs);
}

static void kf_ps_refused(struct kf_page_server *srv, const char *why)
{
	snprintf(srv->last_refused, sizeof(srv->last_refused), "%s", why);
	__atomic_add_fetch(&srv->refused, 1, __ATOMIC_RELAXED);
	if (srv->cfg.on_refused)
		srv->cfg.on_refused(srv->cfg.opaque, why);
}

/* The HELLO's session and channel against the server's state. */
static int kf_ps_check_hello(struct kf_page_server *srv,
			     const struct kf_mig_hello *h, bool recover)
{
	if (recover && (!(h->flags & KF_MIG_HELLO_RECOVER) || h->session != srv->session))
		/* No session id in the answer: it is what a reconnect proves. */
		return kf_fail(EPROTO, "migration: a connection that is not this session's recovery");
	if (!recover && srv->have_session && h->session != srv->session)
		return kf_fail(EPROTO, "migration: connection of another session");
	return kf_ps_check_channel(srv, h);
}

/* Answer a checked HELLO and take the connection into the session. */
static int kf_ps_register(struct kf_page_server *srv, struct kf_ps_handshake *hs)
{
	struct kf_mig_hello hello = hs->hello;
	struct kf_mig_conn *c = hs->conn;
	int ret;

	hello.image_id = kf_mig_image_id();
	hello.version = KF_MIG_VERSION;
	ret = kf_mig_send(c, KF_MIG_HELLO, &hello, sizeof(hello), NULL, 0, NULL, 0);
	if (!ret)
		ret = kf_mig_conn_set_timeout(c, 0);
	if (ret)
		return ret;
	hs->conn = NULL;	/* the session's now, with its fd */
	hs->fd = -1;
	srv->session = hello.session;
	srv->have_session = true;
	if (!srv->have_peer) {
		socklen_t len = sizeof(srv->peer);

		srv->have_peer = !getpeername(kf_mig_conn_fd(c),
					      (struct sockaddr *)&srv->peer, &len);
	}
	if (hello.channel == KF_MIG_CH_MAIN) {
		srv->main = c;
		srv->nr_push = hello.push_streams;
	} else if (hello.channel == KF_MIG_CH_DEMAND) {
		srv->demand = c;
	} else {
		srv->push[hello.push_index] = c;
	}
	return 0;
}

/* A finished handshake: into the session, or refused (and reported). */
static void kf_ps_handshake_done(struct kf_page_server *srv,
				 struct kf_ps_handshake *hs, bool recover)
{
	char why[512];
	int ret = hs->ret;

	if (ret) {
		snprintf(why, sizeof(why), "%s", hs->why);
	} else {
		ret = kf_ps_check_hello(srv, &hs->hello, recover);
		if (!ret)
			ret = kf_ps_register(srv, hs);
		snprintf(why, sizeof(why), "%s", ret ? kf_error() : "");
	}
	if (ret) {
		if (hs->conn)
			kf_mig_send_text(hs->conn, KF_MIG_ERROR, why);
		kf_ps_refused(srv, why);
	}
	kf_ps_handshake_free(hs, false);
}

/* A new connection: a handshake thread, or refused.  Never fails. */
static void kf_ps_handshake_start(struct kf_page_server *srv, int fd, int wake_fd,
				  struct kf_ps_handshake **table)
{
	struct kf_ps_handshake *hs;
	unsigned int i, slot = KF_PS_MAX_HANDSHAKES, oldest = KF_PS_MAX_HANDSHAKES;

	/* Once the destination is known, its address only: others would only
	 * hold up a reconnect with handshakes that cannot succeed. */
	if (kf_ps_peer_check(srv, fd)) {
		kf_ps_refused(srv, kf_error());
		close(fd);
		return;
	}
	/* A free slot, or the oldest handshake still going (one that has
	 * finished may be the real destination's: the acceptor takes it). */
	for (i = 0; i < KF_PS_MAX_HANDSHAKES; i++) {
		if (!table[i]) {
			slot = i;
			break;
		}
		if (__atomic_load_n(&table[i]->done, __ATOMIC_ACQUIRE))
			continue;
		if (oldest == KF_PS_MAX_HANDSHAKES ||
		    table[i]->started_ns < table[oldest]->started_ns)
			oldest = i;
	}
	if (slot == KF_PS_MAX_HANDSHAKES && oldest == KF_PS_MAX_HANDSHAKES) {
		kf_ps_refused(srv, "migration: refused: every handshake slot holds a finished one");
		close(fd);
		return;
	}
	if (slot == KF_PS_MAX_HANDSHAKES) {
		char why[128];

		kf_ps_handshake_free(table[oldest], true);
		table[oldest] = NULL;
		snprintf(why, sizeof(why), "migration: handshake given up: more than %d at once, this one the oldest",
			 KF_PS_MAX_HANDSHAKES);
		kf_ps_refused(srv, why);
		slot = oldest;
	}
	hs = calloc(1, sizeof(*hs));
	if (!hs) {
		kf_ps_refused(srv, "migration: out of memory for a handshake");
		close(fd);
		return;
	}
	*hs = (struct kf_ps_handshake){
		.srv = srv, .fd = fd, .wake_fd = wake_fd,
		.started_ns = kf_mig_now_ns(),
	};
	if (pthread_create(&hs->thread, NULL, kf_ps_handshake_thread, hs)) {
		kf_ps_refused(srv, "migration: no thread for a handshake");
		close(fd);
		free(hs);
		return;
	}
	table[slot] = hs;
}

/* Accept and handshake until the session has every connection. */
static int kf_ps_accept_all(struct kf_page_server *srv, int timeout_ms,
			    bool recover)
{
	uint64_t deadline = kf_mig_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct kf_ps_handshake *table[KF_PS_MAX_HANDSHAKES] = { 0 };
	char before[512];
	unsigned int i;
	int wake_fd, ret = 0;

	snprintf(before, sizeof(before), "%s", kf_error());
	srv->last_refused[0] = '\0';
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake_fd < 0)
		return kf_fail_errno(errno, "eventfd");
	while (!kf_ps_all_connected(srv)) {
		struct pollfd pfd[2] = {
			{ .fd = srv->lfd, .events = POLLIN },
			{ .fd = wake_fd, .events = POLLIN },
		};
		int left = kf_ms_until(deadline), n;
		uint64_t count;

		if (left <= 0) {
			kf_ps_close(srv);
			ret = kf_fail(ETIMEDOUT, "migration: the destination did not %s within %d ms%s%s%s",
				      recover ? "reconnect" : "connect", timeout_ms,
				      srv->last_refused[0] ? " (last refused: " : "",
				      srv->last_refused, srv->last_refused[0] ? ")" : "");
			break;
		}
		n = poll(pfd, 2, left);
		if (n < 0 && errno != EINTR) {
			ret = kf_fail_errno(errno, "poll");
			break;
		}
		if (n <= 0)
			continue;
		if (pfd[1].revents & POLLIN && read(wake_fd, &count, sizeof(count)) < 0)
			count = 0;	/* nothing to drain */
		for (i = 0; i < KF_PS_MAX_HANDSHAKES; i++) {
			if (table[i] && __atomic_load_n(&table[i]->done, __ATOMIC_ACQUIRE)) {
				kf_ps_handshake_done(srv, table[i], recover);
				table[i] = NULL;
			}
		}
		if (pfd[0].revents & POLLIN && !kf_ps_all_connected(srv)) {
			int fd = accept4(srv->lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0)
				kf_ps_handshake_start(srv, fd, wake_fd, table);
			else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				usleep(10000);	/* out of fds or memory: no busy loop */
		}
	}
	/* Handshakes the session no longer waits for. */
	for (i = 0; i < KF_PS_MAX_HANDSHAKES; i++) {
		if (!table[i])
			continue;
		kf_ps_handshake_free(table[i], true);
		kf_ps_refused(srv, "migration: handshake given up: the session had every connection before it finished");
	}
	close(wake_fd);
	if (!ret)
		kf_error_restore(before);	/* stray connections are handled */
	return ret;
}

int kf_page_server_accept(struct kf_page_server *srv, int timeout_ms)
{
	struct {
		struct kf_mig_setup s;
		struct kf_mig_region r[KF_MIG_MAX_REGIONS];
	} setup;
	unsigned int i;
	int ret;

	ret = kf_ps_accept_all(srv, timeout_ms, false);
	if (ret)
		return ret;
	memset(&setup, 0, sizeof(setup));
	setup.s.nr_vcpus = srv->cfg.nr_vcpus;
	setup.s.nr_regions = srv->nr_regions;
	setup.s.page_size = KF_PAGE_SIZE;
	setup.s.flags = srv->cfg.mte ? KF_MIG_SETUP_MTE : 0;
	for (i = 0; i < srv->nr_regions; i++) {
		setup.r[i].gpa = srv->regions[i].r.gpa;
		setup.r[i].size = srv->regions[i].r.size;
		setup.r[i].slot_flags = srv->regions[i].r.slot_flags |
					(srv->regions[i].r.eager ? KF_MIG_REGION_EAGER : 0) |
					(srv->regions[i].r.tags ? KF_MIG_REGION_TAGS : 0);
		setup.r[i].id = i;
	}
	return kf_mig_send(srv->main, KF_MIG_SETUP, &setup,
			   sizeof(setup.s) + srv->nr_regions * sizeof(setup.r[0]),
			   NULL, 0, NULL, 0);
}

static void kf_ps_count(struct kf_page_server *srv, enum kf_mig_page_cause c,
			uint64_t n)
{
	uint64_t total;

	__atomic_fetch_add(&srv->pages[c], n, __ATOMIC_RELAXED);
	total = __atomic_add_fetch(&srv->postcopy_pages, n, __ATOMIC_RELAXED);
	if (srv->cfg.drop_after_pages && total >= srv->cfg.drop_after_pages &&
	    !__atomic_exchange_n(&srv->dropped, 1, __ATOMIC_SEQ_CST)) {
		kf_logf(srv->cfg.log, srv->cfg.opaque,
			"test hook: dropping the connections after %llu post-copy pages",
			(unsigned long long)total);
		kf_ps_shutdown(srv);
	}
}

/* Send n pages of region r from page idx, a tags region's with their tags. */
static int kf_ps_send(struct kf_page_server *srv, struct kf_mig_conn *c,
		      struct kf_ps_region *r, uint64_t idx, uint64_t n,
		      enum kf_mig_page_cause cause)
{
	return kf_mig_send_pages_read_tags(c, r->r.gpa + idx * KF_PAGE_SIZE,
					   (const char *)r->r.hva + idx * KF_PAGE_SIZE,
					   n, cause,
					   r->r.tags ? srv->cfg.read_tags : NULL,
					   srv->cfg.opaque);
}

static void *kf_ps_demand_thread(void *arg)
{
	struct kf_page_server *srv = arg;
	struct kf_mig_msg msg;
	uint32_t i;
	int ret;

	while (!srv->stop) {
		ret = kf_mig_recv(srv->demand, &msg);
		if (ret)
			break;
		if (msg.hdr.type != KF_MIG_REQ) {
			ret = kf_fail(EPROTO, "migration: unexpected %s on the demand channel",
				      kf_mig_type_name(msg.hdr.type));
			break;
		}
		__atomic_store_n(&srv->demand_busy, 1, __ATOMIC_RELAXED);
		for (i = 0; i < msg.u.req.count && !ret; i++) {
			struct kf_ps_region *r;
			uint64_t gpa, idx;

			memcpy(&gpa, &msg.u.req.gpas[i], 8);
			r = kf_ps_find(srv, gpa, &idx);
			if (!r) {
				ret = kf_fail(ERANGE, "migration: the destination asked for page 0x%llx, which is no guest memory",
					      (unsigned long long)gpa);
				kf_mig_send_text(srv->demand, KF_MIG_ERROR, kf_error());
				break;
			}
			__atomic_store_n(&r->sent[idx], 1, __ATOMIC_RELAXED);
			ret = kf_ps_send(srv, srv->demand, r, idx, 1, KF_MIG_CAUSE_DEMAND);
			if (!ret)
				kf_ps_count(srv, KF_MIG_CAUSE_DEMAND, 1);
		}
		__atomic_store_n(&srv->demand_busy, 0, __ATOMIC_RELAXED);
		if (ret)
			break;
	}
	if (!srv->stop) {
		kf_ps_record_err(srv);
		kf_ps_shutdown(srv);
	}
	return NULL;
}

/* One sending thread of the push: the batches stream k of n carries. */
struct kf_ps_pusher {
	struct kf_page_server *srv;
	struct kf_mig_conn *conn;
	unsigned int index, stride;
	pthread_t thread;
	bool started;
};

/* Send the pages of [p, end) that nobody sent yet, in runs. */
static int kf_ps_push_batch(struct kf_ps_pusher *ps, struct kf_ps_region *r,
			    uint64_t p, uint64_t end)
{
	struct kf_page_server *srv = ps->srv;
	int ret = 0;

	while (p < end && !ret && !srv->stop) {
		uint64_t n = 0;

		if (__atomic_load_n(&srv->demand_busy, __ATOMIC_RELAXED)) {
			sched_yield();
			continue;
		}
		while (p < end && __atomic_load_n(&r->sent[p], __ATOMIC_RELAXED))
			p++;
		while (p + n < end &&
		       !__atomic_exchange_n(&r->sent[p + n], 1, __ATOMIC_RELAXED))
			n++;
		if (!n)
			continue;
		ret = kf_ps_send(srv, ps->conn, r, p, n, KF_MIG_CAUSE_PUSH);
		if (!ret)
			kf_ps_count(srv, KF_MIG_CAUSE_PUSH, n);
		p += n;
	}
	return ret;
}

static void *kf_ps_push_thread(void *arg)
{
	struct kf_ps_pusher *ps = arg;
	struct kf_page_server *srv = ps->srv;
	unsigned int i;
	int ret = 0;

	/* Push only, on a stream of its own or on main. */
	kf_mig_push_thread_priority();
	for (i = 0; i < srv->nr_regions && !ret && !srv->stop; i++) {
		struct kf_ps_region *r = &srv->regions[i];
		uint64_t b;

		for (b = ps->index; b * KF_MIG_MAX_BATCH < r->npages && !ret &&
		     !srv->stop; b += ps->stride)
			ret = kf_ps_push_batch(ps, r, b * KF_MIG_MAX_BATCH,
					       KF_MIN((b + 1) * KF_MIG_MAX_BATCH,
						      r->npages));
	}
	if (!ret && !srv->stop)
		ret = kf_mig_send(ps->conn, KF_MIG_PUSH_DONE, NULL, 0, NULL, 0,
				  NULL, 0);
	if (ret && !srv->stop) {
		kf_ps_record_err(srv);
		kf_ps_shutdown(srv);
	}
	return NULL;
}

/* The pushers: one on each push stream, or one on main.  0 or -errno. */
static int kf_ps_start_push(struct kf_page_server *srv,
			    struct kf_ps_pusher *ps)
{
	unsigned int i, n = KF_MAX(srv->nr_push, 1U);
	int ret;

	for (i = 0; i < n; i++) {
		ps[i] = (struct kf_ps_pusher){
			.srv = srv,
			.conn = srv->nr_push ? srv->push[i] : srv->main,
			.index = i,
			.stride = n,
		};
		ret = pthread_create(&ps[i].thread, NULL, kf_ps_push_thread, &ps[i]);
		if (ret)
			return kf_fail(ret, "page server: cannot start a thread");
		ps[i].started = true;
	}
	return 0;
}

static void kf_ps_join_push(struct kf_ps_pusher *ps)
{
	unsigned int i;

	for (i = 0; i < KF_MIG_MAX_PUSH_STREAMS; i++)
		if (ps[i].started)
			pthread_join(ps[i].thread, NULL);
}

/* After a reconnect: what does the destination hold? */
static int kf_ps_recover(struct kf_page_server *srv)
{
	struct kf_mig_msg msg;
	unsigned int i;
	int ret;

	/* Everything unsent unless the destination says it has it. */
	for (i = 0; i < srv->nr_regions; i++)
		if (!srv->regions[i].r.eager)
			memset(srv->regions[i].sent, 0, srv->regions[i].npages);
	for (;;) {
		ret = kf_mig_recv(srv->main, &msg);
		if (ret)
			return ret;
		if (msg.hdr.type == KF_MIG_RECOVER_DONE)
			return 0;
		if (msg.hdr.type != KF_MIG_RECEIVED)
			return kf_fail(EPROTO, "migration recovery: unexpected %s",
				       kf_mig_type_name(msg.hdr.type));
		if (msg.u.received.h.region >= srv->nr_regions ||
		    msg.u.received.h.nbits != srv->regions[msg.u.received.h.region].npages)
			return kf_fail(EPROTO, "migration recovery: bitmap of region %u does not fit",
				       msg.u.received.h.region);
		{
			struct kf_ps_region *r = &srv->regions[msg.u.received.h.region];
			uint64_t p;

			for (p = 0; p < r->npages; p++) {
				uint64_t w;

				memcpy(&w, &msg.u.received.bitmap[p / 64], 8);
				if (w & (1ULL << (p % 64)))
					r->sent[p] = 1;
			}
		}
	}
}

int kf_page_server_postcopy(struct kf_page_server *srv)
{
	int recover_ms = srv->cfg.recover_timeout_ms > 0 ?
			 srv->cfg.recover_timeout_ms : 30000;
	struct kf_mig_msg msg;
	int ret;

	for (;;) {
		struct kf_ps_pusher pushers[KF_MIG_MAX_PUSH_STREAMS] = { 0 };
		bool done = false, fatal = false;
		pthread_t demand;

		srv->stop = 0;
		ret = pthread_create(&demand, NULL, kf_ps_demand_thread, srv);
		if (ret)
			return kf_fail(ret, "page server: cannot start a thread");
		if (!srv->cfg.no_push) {
			ret = kf_ps_start_push(srv, pushers);
			if (ret) {
				srv->stop = 1;
				kf_ps_shutdown(srv);
				pthread_join(demand, NULL);
				kf_ps_join_push(pushers);
				return ret;
			}
		}
		for (;;) {
			ret = kf_mig_recv(srv->main, &msg);
			if (ret) {
				kf_ps_record_err(srv);
				break;
			}
			if (msg.hdr.type == KF_MIG_RESUMED) {
				if (srv->stop_ns && !srv->downtime_ns)
					srv->downtime_ns = kf_mig_now_ns() - srv->stop_ns;
			} else if (msg.hdr.type == KF_MIG_COMPLETE) {
				done = true;
				break;
			} else if (msg.hdr.type == KF_MIG_ERROR) {
				ret = kf_fail(ECONNABORTED, "migration: the destination failed: %s",
					      msg.u.text);
				fatal = true;
				break;
			} else {
				ret = kf_fail(EPROTO, "migration: unexpected %s on the main channel",
					      kf_mig_type_name(msg.hdr.type));
				break;
			}
		}
		srv->stop = 1;
		if (done) {
			struct kf_mig_stats st;

			kf_page_server_stats(srv, &st);
			kf_mig_send(srv->main, KF_MIG_STATS, &st, sizeof(st),
				    NULL, 0, NULL, 0);
		}
		kf_ps_shutdown(srv);
		pthread_join(demand, NULL);
		kf_ps_join_push(pushers);
		kf_ps_close(srv);
		if (done)
			return 0;
		if (fatal || ret == -EPROTO)
			return ret;
		kf_logf(srv->cfg.log, srv->cfg.opaque,
			"connection lost (%s); keeping guest memory, waiting up to %d ms for the destination to reconnect",
			srv->err[0] ? srv->err : "?", recover_ms);
		srv->err[0] = '\0';
		srv->err_taken = 0;
		ret = kf_ps_accept_all(srv, recover_ms, true);
		if (ret)
			return kf_fail(-ret, "migration: the destination is gone: %s",
				       kf_error());
		srv->reconnects++;
		ret = kf_ps_recover(srv);
		if (ret) {
			kf_ps_close(srv);
			return ret;
		}
		kf_logf(srv->cfg.log, srv->cfg.opaque,
			"destination reconnected; resuming post-copy");
	}
}

int kf_page_server_serve(struct kf_page_server *srv)
{
	struct kf_mig_switchover sw = { .stop_realtime_ns = kf_mig_realtime_ns() };
	unsigned int i;
	int ret;

	for (i = 0; i < srv->nr_regions; i++)
		sw.total_pages += srv->regions[i].npages;
	srv->stop_ns = kf_mig_now_ns();
	ret = kf_mig_send(srv->main, KF_MIG_SWITCHOVER, &sw, sizeof(sw), NULL, 0,
			  NULL, 0);
	return ret ? ret : kf_page_server_postcopy(srv);
}

uint64_t kf_page_server_refused(struct kf_page_server *srv)
{
	return __atomic_load_n(&srv->refused, __ATOMIC_RELAXED);
}

void kf_page_server_stats(struct kf_page_server *srv, struct kf_mig_stats *st)
{
	unsigned int i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < KF_MIG_CAUSE_MAX; i++)
		st->pages_by_cause[i] = __atomic_load_n(&srv->pages[i], __ATOMIC_RELAXED);
	st->downtime_ns = srv->downtime_ns;
	st->reconnects = srv->reconnects;
}

void kf_page_server_count(struct kf_page_server *srv, enum kf_mig_page_cause c,
			  uint64_t n)
{
	__atomic_fetch_add(&srv->pages[c], n, __ATOMIC_RELAXED);
}

void kf_page_server_destroy(struct kf_page_server *srv)
{
	unsigned int i;

	if (!srv)
		return;
	kf_ps_close(srv);
	for (i = 0; i < srv->nr_regions; i++)
		free(srv->regions[i].sent);
	free(srv->regions);
	free(srv);
}
