/* SPDX-License-Identifier: MIT */
/*
 * Remote pages: the page server (the migration source's side) and the
 * remote page source (the destination's), speaking the protocol of
 * include/kvmfault/migration.h over two TCP connections, TLS unless the
 * caller chooses plain TCP.
 *
 * Page server:
 *   kf_page_server_create(&cfg, listen_fd, &srv);
 *   kf_page_server_accept(srv, timeout);   destination connects: HELLO, SETUP
 *   ... kf_page_server_main(srv) carries pre-copy, vCPU state, SWITCHOVER
 *   kf_page_server_postcopy(srv);           demand + push until COMPLETE,
 *                                           reconnects after a drop
 * or kf_page_server_serve(srv): SWITCHOVER at once, then post-copy (a plain
 * remote memory image, for benchmarks).
 *
 * Remote page source:
 *   kf_remote_connect(&cfg, &r);            HELLO every channel, SETUP
 *   kf_remote_set_eager(r, i, hva);         a region that arrives in full
 *   kf_remote_wait_switchover(r, &sw);      pre-copy pages, vCPU states
 *   kf_remote_pagesrc(r, i, &src);          a struct kf_pagesrc per region
 *   kf_remote_start(r);                     receivers: demand and push
 *   kf_remote_wait_complete(r);             every page here: COMPLETE
 *
 * The remote source's read() asks for pages on the demand channel (several
 * requests in flight, batched into REQ messages by one sender) and waits;
 * pages the source pushes go to the engine's sink.  When a connection
 * drops, reads stall (only those that need a missing page), the source
 * reconnects every reconnect_ms with the session id, reports what it holds
 * and re-asks what it still waits for; after recover_timeout_ms without a
 * source it gives up: every waiting read fails with ENOTCONN and a message
 * that says the source is gone.
 */
#ifndef KVMFAULT_REMOTE_H
#define KVMFAULT_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include <kvmfault/migration.h>
#include <kvmfault/pagesrc.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

/* ----------------------------------------------------------- page server */

struct kf_page_server_region {
	uint64_t gpa;
	uint64_t size;
	/* The memory served, until destroy.  Once post-copy serves it
	 * (kf_page_server_postcopy(), kf_page_server_serve()) it must not
	 * change: pages go out uncopied, and one that changes fails the
	 * destination's checksum, which ends the migration. */
	const void *hva;
	uint32_t slot_flags;
	bool eager;		/* sent whole before SWITCHOVER by the caller */
	bool tags;		/* pages go with their MTE allocation tags
				 * (config read_tags); not with eager */
};

struct kf_page_server_config {
	const struct kf_page_server_region *regions;
	unsigned int nr_regions;
	unsigned int nr_vcpus;
	/* The channel: TLS with these credentials (server role), or plain
	 * TCP when plain is set; exactly one of the two. */
	struct kf_mig_tls *tls;
	bool plain;
	int hello_timeout_ms;		/* a connection's handshake and HELLO (10000);
					 * up to 16 run at once, the oldest given up
					 * for a newcomer, the rest once the session
					 * has every connection */
	/* A connection refused (no or another key, no TLS, a stray or
	 * silent peer): why, on the server's thread.  May be NULL. */
	void (*on_refused)(void *opaque, const char *why);
	/* Other events worth a line in a log (a connection lost, the
	 * destination back).  May be NULL: the library prints nothing. */
	void (*log)(void *opaque, const char *msg);
	void *opaque;
	bool no_push;			/* demand only, no background push */
	int recover_timeout_ms;		/* wait this long for a reconnect */
	uint64_t drop_after_pages;	/* test hook: cut both connections once
					 * after this many post-copy pages */
	/* The allocation tags of [gpa, +len) of a tags region, one byte a
	 * 16-byte granule (len / 16 bytes): 0 or -errno.  Needed with tags. */
	int (*read_tags)(void *opaque, uint64_t gpa, uint64_t len, uint8_t *tags);
	bool mte;			/* the VM has MTE (SETUP says so) */
};

struct kf_page_server;

int kf_page_server_create(const struct kf_page_server_config *cfg,
			  int listen_fd, struct kf_page_server **srvp);
/* Accept the destination's connections (main, demand, push streams) and
 * send SETUP. */
int kf_page_server_accept(struct kf_page_server *srv, int timeout_ms);
struct kf_mig_conn *kf_page_server_main(struct kf_page_server *srv);
/* Mark pages as held by the destination already (sent eagerly). */
void kf_page_server_mark_sent(struct kf_page_server *srv, uint64_t gpa,
			      uint64_t npages);
/* Before SWITCHOVER: wait until the destination has handled everything
 * sent so far on the main connection (SYNC, answered). */
int kf_page_server_sync(struct kf_page_server *srv);
/* The guest stopped now: downtime runs from here to RESUMED. */
void kf_page_server_mark_stopped(struct kf_page_server *srv);
/* Serve demand faults and push the rest until the destination has every
 * page (COMPLETE): 0, or -errno when the destination is gone for good. */
int kf_page_server_postcopy(struct kf_page_server *srv);
/* SWITCHOVER with nothing before it, then kf_page_server_postcopy(). */
int kf_page_server_serve(struct kf_page_server *srv);
void kf_page_server_stats(struct kf_page_server *srv, struct kf_mig_stats *st);
/* Connections refused so far. */
uint64_t kf_page_server_refused(struct kf_page_server *srv);
/* Count pages the caller sent itself (pre-copy, stop-and-copy). */
void kf_page_server_count(struct kf_page_server *srv, enum kf_mig_page_cause c,
			  uint64_t n);
void kf_page_server_destroy(struct kf_page_server *srv);

/* ---------------------------------------------------------- remote source */

struct kf_remote_config {
	const char *addr;		/* the page server, host:port */
	struct kf_mig_tls *tls;		/* client role; or plain, not both */
	bool plain;
	int connect_timeout_ms;		/* first connection, until HELLO */
	int hello_timeout_ms;		/* at least this for a handshake and
					 * HELLO (10000): a source may accept
					 * late, within connect_timeout_ms */
	int reconnect_ms;		/* pause between reconnect attempts */
	int recover_timeout_ms;		/* give up after this long */
	/* Events worth a line in a log (the connection lost, retried, back).
	 * May be NULL: the library prints nothing. */
	void (*log)(void *opaque, const char *msg);
	void *opaque;
	/* Connections the post-copy push runs on, each with its own receiving
	 * thread, so that installing pages uses several CPUs; at most
	 * KF_MIG_MAX_PUSH_STREAMS.  0: the push shares the main connection.
	 * The receiving threads lower their own priority (nice + 10, as the
	 * page server's pushers do) so that a demand fault's wake-ups do not
	 * wait behind them on a busy host. */
	unsigned int push_streams;
};

struct kf_remote_stats {
	uint64_t pages_by_cause[KF_MIG_CAUSE_MAX];	/* pages received */
	uint64_t requests;		/* pages asked for on demand */
	uint64_t req_messages;		/* REQ messages sent */
	uint64_t reconnects;
	uint64_t total_pages;		/* post-copy regions */
	uint64_t held_pages;		/* of which here */
	uint64_t source_downtime_ns;	/* the source's STATS, if sent */
	uint64_t push_stream_pages;	/* pushed pages received on push streams */
	/* Push streams' receiving threads that run at a lower CPU priority
	 * (nice + 10), so that demand faults' wake-ups preempt them; one a
	 * stream and connection (reconnects add theirs). */
	uint64_t push_threads_lowered;
};

struct kf_remote;

int kf_remote_connect(const struct kf_remote_config *cfg, struct kf_remote **rp);
unsigned int kf_remote_nr_regions(struct kf_remote *r);
const struct kf_mig_region *kf_remote_region(struct kf_remote *r, unsigned int i);
unsigned int kf_remote_nr_vcpus(struct kf_remote *r);
/* Whether the source VM has MTE (the destination's VM must too), and
 * whether region i's pages come with allocation tags (its page source is
 * then KF_PAGESRC_TAGS: a memfd region, which the engine tags). */
bool kf_remote_mte(struct kf_remote *r);
bool kf_remote_region_tags(struct kf_remote *r, unsigned int i);
int kf_remote_set_eager(struct kf_remote *r, unsigned int i, void *hva);
/* Receive until SWITCHOVER (pre-copy pages, discards, vCPU states). */
int kf_remote_wait_switchover(struct kf_remote *r, struct kf_mig_switchover *sw);
int kf_remote_vcpu_state(struct kf_remote *r, unsigned int id,
			 const void **blobp, size_t *lenp);
int kf_remote_pagesrc(struct kf_remote *r, unsigned int i,
		      struct kf_pagesrc **srcp);
int kf_remote_start(struct kf_remote *r);
/* Tell the source the destination runs (it measures downtime by it). */
int kf_remote_resumed(struct kf_remote *r);
/* Wait until every page is here (or a failure), then send COMPLETE. */
int kf_remote_wait_complete(struct kf_remote *r);
/* Pages held / post-copy pages in all, without waiting. */
void kf_remote_progress(struct kf_remote *r, uint64_t *held, uint64_t *total);
void kf_remote_stats(struct kf_remote *r, struct kf_remote_stats *st);
/* The failure that ended the session, or NULL. */
const char *kf_remote_error(struct kf_remote *r);
/* Test hook: cut both connections as if the network dropped. */
void kf_remote_drop(struct kf_remote *r);
void kf_remote_destroy(struct kf_remote *r);

KF_API_END

#endif
