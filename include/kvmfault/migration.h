/* SPDX-License-Identifier: MIT */
/*
 * Live migration: the wire protocol.  (The migration test workload and
 * the whole-migration runner are the harness's: lib/harness/.)
 *
 * Wire protocol (version KF_MIG_VERSION), over TCP, little endian.  Every
 * message is a 16-byte header (magic "KFMG", type, flags, payload length,
 * sequence number) and a payload whose layout the type fixes.  A session
 * uses two connections and up to KF_MIG_MAX_PUSH_STREAMS push streams, all
 * opened by the destination to the source, main first:
 *
 *   main:   HELLO(main) SETUP, [PAGES...]* (pre-copy rounds), DISCARD*,
 *           VCPU*, SWITCHOVER (SYNC any time before: the destination
 *           answers SYNC once it has handled everything before it); then during post-copy the background PAGES
 *           push, PUSH_DONE; the destination answers RESUMED and, once it
 *           holds every page, COMPLETE, which lets the source let go.
 *   demand: HELLO(demand); the destination sends REQ (a batch of page
 *           addresses), the source answers each with PAGES, ahead of and
 *           never queued behind the push (postcopy-preempt).
 *   push k: HELLO(push, index k) when main's HELLO asked for push streams;
 *           the background push then runs on these instead of main, one
 *           sending thread at the source and one receiving thread at the
 *           destination each (as QEMU's multifd), stream k carrying the
 *           batches of KF_MIG_MAX_BATCH pages whose number is k modulo
 *           the stream count, then PUSH_DONE.  Only post-copy pages go
 *           there, so no page's newer copy can overtake an older one.
 *
 * Recovery: after a connection drops during post-copy, the destination
 * reconnects every channel with HELLO flag RECOVER and the same session id,
 * sends RECEIVED (its bitmap of pages held, per region) and RECOVER_DONE;
 * the source pushes only what is missing.
 *
 * Every page carries a 64-bit checksum bound to its address; a page whose
 * checksum does not match is a protocol error and is never installed.
 * The pages of a region SETUP marks KF_MIG_REGION_TAGS (an arm64 MTE
 * guest's) carry their allocation tags, which the checksum covers too.
 * The parser (kf_mig_parse_frame, kf_mig_parse_payload) accepts arbitrary
 * bytes and returns an error for anything malformed; it is fuzzed
 * (fuzz/mig_fuzz.c).
 */
#ifndef KVMFAULT_MIGRATION_H
#define KVMFAULT_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kvmfault/compiler.h>
#include <kvmfault/hash.h>
#include <kvmfault/limits.h>

KF_API_BEGIN

#define KF_MIG_MAGIC 0x474d464bU	/* "KFMG" */
/* 2: page checksums are kf_host_hash() (XXH3), no longer kf_hash().
 * 3: SYNC.  4: push streams.  5: allocation tags. */
#define KF_MIG_VERSION 5
#define KF_MIG_MAX_PUSH_STREAMS 8
#define KF_MIG_MAX_PAYLOAD (4U << 20)
#define KF_MIG_MAX_BATCH 64		/* pages in one PAGES message */
#define KF_MIG_MAX_REQ 256		/* addresses in one REQ */
#define KF_MIG_MAX_REGIONS 16
#define KF_MIG_MAX_TEXT 1024

enum kf_mig_type {
	KF_MIG_HELLO = 1,
	KF_MIG_SETUP,
	KF_MIG_PAGES,
	KF_MIG_DISCARD,
	KF_MIG_VCPU,
	KF_MIG_SWITCHOVER,
	KF_MIG_REQ,
	KF_MIG_PUSH_DONE,
	KF_MIG_RESUMED,
	KF_MIG_COMPLETE,
	KF_MIG_RECEIVED,
	KF_MIG_RECOVER_DONE,
	KF_MIG_ERROR,
	KF_MIG_STATS,
	KF_MIG_SYNC,
	KF_MIG_TYPE_MAX,
};

enum kf_mig_channel {
	KF_MIG_CH_MAIN = 1,
	KF_MIG_CH_DEMAND = 2,
	KF_MIG_CH_PUSH = 3,
};

#define KF_MIG_HELLO_RECOVER (1U << 0)

/* Why a page was sent (PAGES flags), for the statistics; on the sending
 * side it also says whether the page may change while it is sent
 * (kf_mig_send_pages()). */
enum kf_mig_page_cause {
	KF_MIG_CAUSE_PRECOPY = 0,
	KF_MIG_CAUSE_DEMAND = 1,
	KF_MIG_CAUSE_PUSH = 2,
	KF_MIG_CAUSE_STOPCOPY = 3,
	KF_MIG_CAUSE_MAX,
};

struct kf_mig_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint32_t len;
	uint32_t seq;
};

struct kf_mig_hello {
	uint32_t version;
	uint32_t channel;
	uint64_t session;
	uint64_t image_id;	/* kf_mig_image_id(): both ends run one program */
	uint32_t flags;		/* KF_MIG_HELLO_* */
	uint16_t push_streams;	/* every channel: push streams of the session
				 * (0: the push runs on main) */
	uint16_t push_index;	/* a push stream's number; 0 on the others */
};

/* SETUP region flags, beside the memslot's KVM_MEM_* flags: the region
 * arrives whole before SWITCHOVER; its pages carry MTE allocation tags
 * (an MTE VM's, never an eager region's). */
#define KF_MIG_REGION_EAGER (1U << 31)
#define KF_MIG_REGION_TAGS (1U << 30)

struct kf_mig_region {
	uint64_t gpa;
	uint64_t size;
	uint32_t slot_flags;
	uint32_t id;
};

/* SETUP flag: the VM has MTE (its vCPU state needs it). */
#define KF_MIG_SETUP_MTE (1U << 0)

struct kf_mig_setup {
	uint32_t nr_vcpus;
	uint32_t nr_regions;
	uint32_t page_size;
	uint32_t flags;		/* KF_MIG_SETUP_* */
	struct kf_mig_region regions[];
};

/*
 * PAGES: a run of count pages from gpa; entries then the DATA pages.  With
 * header flag KF_MIG_PAGES_TAGS (the pages of a KF_MIG_REGION_TAGS region,
 * and only those) then count x KF_MIG_TAG_BYTES: page i's MTE allocation
 * tags, two 16-byte granules a byte (the lower granule in the low nibble),
 * ZERO pages included; the entry's hash is then kf_mig_tagged_page_hash(),
 * else kf_mig_page_hash().
 */
#define KF_MIG_PAGE_DATA 0
#define KF_MIG_PAGE_ZERO 1
#define KF_MIG_PAGES_TAGS (1U << 0)
#define KF_MIG_TAG_BYTES 128
struct kf_mig_page_entry {
	uint64_t hash;		/* kf_mig_page_hash() */
	uint32_t kind;		/* KF_MIG_PAGE_* */
	uint32_t reserved;
};

struct kf_mig_pages_hdr {
	uint64_t gpa;
	uint32_t count;
	uint32_t cause;		/* enum kf_mig_page_cause */
};

struct kf_mig_range {
	uint64_t gpa;
	uint64_t npages;
};

struct kf_mig_vcpu_hdr {
	uint32_t id;
	uint32_t len;
};

struct kf_mig_switchover {
	uint64_t stop_realtime_ns;	/* CLOCK_REALTIME when vCPUs stopped */
	uint64_t total_pages;
	uint64_t precopy_pages;
	uint32_t precopy_rounds;
	uint32_t reserved;
};

struct kf_mig_req_hdr {
	uint32_t count;
	uint32_t reserved;
};

struct kf_mig_received_hdr {
	uint32_t region;	/* index in SETUP */
	uint32_t reserved;
	uint64_t nbits;		/* pages of the region; bitmap follows */
};

struct kf_mig_stats {
	uint64_t pages_by_cause[KF_MIG_CAUSE_MAX];
	uint64_t downtime_ns;	/* source: stop to RESUMED */
	uint64_t reconnects;
};

/* A parsed message: pointers into the payload buffer. */
struct kf_mig_msg {
	struct kf_mig_hdr hdr;
	const void *payload;
	union {
		struct kf_mig_hello hello;
		struct {
			const struct kf_mig_setup *setup;
		} setup;
		struct {
			struct kf_mig_pages_hdr h;
			const struct kf_mig_page_entry *entries;
			const uint8_t *data;	/* DATA pages, in order */
			const uint8_t *tags;	/* KF_MIG_PAGES_TAGS, else NULL */
		} pages;
		struct {
			const struct kf_mig_range *ranges;
			uint32_t count;
		} discard;
		struct {
			uint32_t id;
			const void *blob;
			uint32_t len;
		} vcpu;
		struct kf_mig_switchover switchover;
		struct {
			const uint64_t *gpas;
			uint32_t count;
		} req;
		struct {
			struct kf_mig_received_hdr h;
			const uint64_t *bitmap;
		} received;
		struct kf_mig_stats stats;
		uint64_t sync;		/* a cookie the answer repeats */
		char text[KF_MIG_MAX_TEXT];
	} u;
};

/* The checksum of one page, bound to its address. */
static inline uint64_t kf_mig_page_hash(uint64_t gpa, const void *page)
{
	return kf_host_hash(page, KF_PAGE_SIZE, gpa * 0x9e3779b97f4a7c15ULL);
}

/* The checksum of one page and its (packed) allocation tags. */
static inline uint64_t kf_mig_tagged_page_hash(uint64_t gpa, const void *page,
					       const void *tags)
{
	return kf_host_hash(tags, KF_MIG_TAG_BYTES, kf_mig_page_hash(gpa, page));
}

/* An identity of this program's image (guest code comes from it). */
uint64_t kf_mig_image_id(void);

const char *kf_mig_type_name(uint32_t type);

/*
 * Parse one frame at the start of buf: 0 with *used and *msg set,
 * -EAGAIN when buf holds only part of a frame, -EPROTO (message set) when
 * the bytes are no valid frame.
 */
int kf_mig_parse_frame(const void *buf, size_t len, size_t *used,
		       struct kf_mig_msg *msg);

/* Check a header and parse the payload that followed it. */
int kf_mig_check_hdr(const struct kf_mig_hdr *hdr);
int kf_mig_parse_payload(const struct kf_mig_hdr *hdr, const void *payload,
			 struct kf_mig_msg *msg);

/*
 * A connection: blocking reads of whole messages into its own buffer, and
 * writes serialised by a lock so that several threads may send.
 */
struct kf_mig_conn;

int kf_mig_conn_new(int fd, struct kf_mig_conn **connp);
void kf_mig_conn_free(struct kf_mig_conn *conn);	/* closes fd */
int kf_mig_conn_fd(struct kf_mig_conn *conn);
/* shutdown() both directions: wakes readers and writers; fd stays. */
void kf_mig_conn_shutdown(struct kf_mig_conn *conn);

/*
 * TLS on a connection: TLS 1.3 authenticated by a pre-shared key (with an
 * ephemeral key exchange) or by X.509 certificates, the default of the
 * page server and the remote source; plain TCP is an explicit choice of
 * theirs (config .plain).  One struct kf_mig_tls holds the credentials for
 * one role, source (server) or destination; it may serve many connections
 * at once.
 */
#define KF_MIG_PSK_MIN_KEY 16
#define KF_MIG_PSK_MAX_KEY 64
#define KF_MIG_PSK_MAX_IDENTITY 64

struct kf_mig_tls;

int kf_mig_tls_psk_new(const void *key, size_t key_len, const char *identity,
		       bool server, struct kf_mig_tls **tlsp);
/* A key file "identity:hexkey" (QEMU's keys.psk format); it must be
 * readable by its owner only (-EPERM otherwise). */
int kf_mig_tls_psk_file(const char *path, bool server, struct kf_mig_tls **tlsp);
/* Create a new key file (mode 0600, never over an existing file) holding
 * 32 random bytes under identity. */
int kf_mig_tls_psk_write(const char *path, const char *identity);
/*
 * X.509 credentials from dir, laid out as QEMU's tls-creds-x509:
 * ca-cert.pem, and server-cert.pem and server-key.pem for the source or
 * client-cert.pem and client-key.pem for the destination (PEM; the key
 * readable by its owner only, -EPERM otherwise).  Each end must show a
 * certificate of that CA.  peer_name, a DNS name or an IP address, is
 * what the peer's certificate must name: the destination must pass the
 * source's host (-EINVAL without); the source may pass NULL for any
 * client certificate of the CA, or a name to accept only certificates
 * that carry it.
 */
int kf_mig_tls_x509_dir(const char *dir, bool server, const char *peer_name,
			struct kf_mig_tls **tlsp);
void kf_mig_tls_free(struct kf_mig_tls *tls);

/* A connection over TLS: the handshake (within timeout_ms) before it
 * returns; -EACCES with a message when the peer has no or another key. */
int kf_mig_conn_new_tls(int fd, struct kf_mig_tls *tls, int timeout_ms,
			struct kf_mig_conn **connp);
/* How long a read may wait for the peer (0: as long as it takes). */
int kf_mig_conn_set_timeout(struct kf_mig_conn *conn, int timeout_ms);

/* Read the next message; msg points into conn's buffer until the next
 * read.  -ECONNRESET (message set) at end of stream. */
int kf_mig_recv(struct kf_mig_conn *conn, struct kf_mig_msg *msg);

/* Send one message made of a header and up to three payload pieces. */
int kf_mig_send(struct kf_mig_conn *conn, uint16_t type, const void *p1,
		size_t l1, const void *p2, size_t l2, const void *p3, size_t l3);
int kf_mig_send_text(struct kf_mig_conn *conn, uint16_t type, const char *text);

/*
 * Send a run of pages [gpa, gpa + count pages) read from src (host memory),
 * zero pages without data, in messages of at most KF_MIG_MAX_BATCH pages.
 * KF_MIG_CAUSE_PRECOPY pages may change meanwhile (a running guest): each
 * is copied and checksummed in the copy.  Those of any other cause come
 * from a stopped guest and go from src to the socket without a copy: one
 * that changes while it is sent fails the destination's checksum.
 */
int kf_mig_send_pages(struct kf_mig_conn *conn, uint64_t gpa, const void *src,
		      uint64_t count, enum kf_mig_page_cause cause);
/* The same for the pages of a KF_MIG_REGION_TAGS region, with their
 * allocation tags: one byte a 16-byte granule (KVM_ARM_MTE_COPY_TAGS'
 * layout), count x 256 bytes. */
int kf_mig_send_tagged_pages(struct kf_mig_conn *conn, uint64_t gpa,
			     const void *src, const uint8_t *tags, uint64_t count,
			     enum kf_mig_page_cause cause);
/* The same, with tags read batch by batch as the pages go out:
 * read_tags(opaque, gpa, len, tags) fills the tags of [gpa, gpa + len),
 * at most KF_MIG_MAX_BATCH pages at a time (a page server's read_tags).
 * Without read_tags, kf_mig_send_pages(). */
int kf_mig_send_pages_read_tags(struct kf_mig_conn *conn, uint64_t gpa,
				const void *src, uint64_t count,
				enum kf_mig_page_cause cause,
				int (*read_tags)(void *opaque, uint64_t gpa,
						 uint64_t len, uint8_t *tags),
				void *opaque);

/* Verify every page of a PAGES message where it lies (DATA pages follow
 * each other in msg->u.pages.data): 0, or -EBADMSG with a message. */
int kf_mig_pages_verify(const struct kf_mig_msg *msg);

/* Verify the pages of a PAGES message; i-th page into out (4096 bytes,
 * zero-filled for ZERO).  -EBADMSG (message set) on a checksum mismatch. */
int kf_mig_page_get(const struct kf_mig_msg *msg, uint32_t i, void *out);
/* The i-th page's allocation tags, one byte a granule (256 bytes) into
 * tags; -ENODATA for a message without tags.  Verify the page first. */
int kf_mig_page_tags(const struct kf_mig_msg *msg, uint32_t i, uint8_t *tags);

/* TCP helpers: "host:port" (numeric or resolvable; port may be 0). */
int kf_mig_listen(const char *addr, int *portp);
int kf_mig_accept(int lfd, int timeout_ms);
/* Gives up after timeout_ms (-ETIMEDOUT); < 0 waits as long as TCP does. */
int kf_mig_connect(const char *addr, int timeout_ms);

uint64_t kf_mig_now_ns(void);		/* CLOCK_MONOTONIC */
uint64_t kf_mig_realtime_ns(void);	/* CLOCK_REALTIME */

KF_API_END

#endif
