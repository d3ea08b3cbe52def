/* SPDX-License-Identifier: MIT */
/*
 * Library-internal interfaces of the core (no VM layer here: the VM
 * layer's are in vm_internal.h).
 */
#ifndef KVMFAULT_INTERNAL_H
#define KVMFAULT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kvmfault/limits.h>
#include <kvmfault/pagesrc.h>

/*
 * A failure the caller handled (a page mapped already, a range unregistered
 * meanwhile): bring back the message from before it, so that a call that
 * succeeds records no message.  Call right after the failing call.
 */
void kf_error_forget(void);
/* The same after several failures: msg is a copy of kf_error() from before. */
void kf_error_restore(const char *msg);

/* Milliseconds until deadline (a kf_mig_now_ns() time), 0 once past. */
int kf_ms_until(uint64_t deadline);
/* poll() one fd for events, again after EINTR: 1 ready, 0 timed out,
 * -errno with a message (timeout_ms < 0: no timeout). */
int kf_poll_one(int fd, short events, int timeout_ms);

struct kf_mig_conn;
struct kf_mig_tls;

/* A connection's handshake and HELLO, unless configured otherwise. */
#define KF_MIG_HELLO_TIMEOUT_MS 10000
/* What each protocol version changed, for the message on a mismatch. */
#define KF_MIG_VERSION_HISTORY \
	"2 changed the page checksums to XXH3, 3 added SYNC, 4 push streams, 5 allocation tags"

/* A migration connection on fd: TLS with tls (the handshake within
 * timeout_ms), or plain TCP when tls is NULL.  fd stays the caller's on
 * failure. */
int kf_mig_conn_open(int fd, struct kf_mig_tls *tls, int timeout_ms,
		     struct kf_mig_conn **connp);
/* A page server's or remote source's channel choice: TLS credentials or
 * plain, exactly one.  0, or -EINVAL with a message naming who. */
int kf_mig_check_channel(const char *who, const struct kf_mig_tls *tls, bool plain);
/* A push stream's thread (either side) lowers its own CPU priority:
 * whether it runs below the priority it had (or at the lowest there is). */
bool kf_mig_push_thread_priority(void);

/* TLS sessions of migration connections (tls.c). */
struct kf_tls_session;
int kf_tls_handshake(struct kf_mig_tls *tls, int fd, int timeout_ms,
		     struct kf_tls_session **sp);
void kf_tls_session_free(struct kf_tls_session *s);
/* Bytes read (> 0), 0 at the end of the stream, or -errno; timeout_ms < 0
 * waits as long as it takes. */
long kf_tls_read(struct kf_tls_session *s, void *buf, size_t len, int timeout_ms);
int kf_tls_write(struct kf_tls_session *s, const void *buf, size_t len,
		 int timeout_ms);

/*
 * pthread_create(), pinned to CPU i mod the online CPUs when pin is set:
 * 0, or -errno with a message (a CPU outside this process's set: EINVAL).
 */
int kf_start_thread(pthread_t *t, void *(*fn)(void *), void *arg, bool pin,
		    unsigned int i);

/*
 * The host's page size: 4, 16 or 64 KiB on arm64.  Memslots, userfaultfd
 * ioctls and KVM's exits come in host pages; guest page tables, snapshot
 * files and the migration stream in KF_PAGE_SIZE pages, a host page being
 * a whole number of those.
 */
uint64_t kf_host_page_size(void);

/*
 * arm64 MTE (lib/mte.c).  PROT_MTE maps memory with allocation tags;
 * kf_mte_store_tags() sets the tags of [addr, addr + len), mapped so, from
 * tags (one a granule, in its low 4 bits): 0, -EINVAL for a range that is
 * not whole granules, -EOPNOTSUPP off arm64.
 */
#define KF_PROT_MTE 0x20
#define KF_MTE_TAGS_PER_PAGE (KF_PAGE_SIZE / KF_MTE_GRANULE)
int kf_mte_store_tags(void *addr, const uint8_t *tags, size_t len);
/*
 * Files and the stream hold tags packed, two granules a byte (the lower
 * granule in the low nibble): nr granules' tags from one a byte.
 */
#define KF_MTE_PACKED_PER_PAGE (KF_MTE_TAGS_PER_PAGE / 2)
void kf_mte_pack_tags(uint8_t *packed, const uint8_t *tags, size_t nr);
void kf_mte_unpack_tags(uint8_t *tags, const uint8_t *packed, size_t nr);

/* Whether a guest page holds only zero bytes. */
bool kf_page_is_zero(const void *page);

/* Zero bytes for up to a batch of pages (KF_MIG_MAX_BATCH); never written. */
#define KF_ZERO_PAGES 64
extern uint8_t kf_zero_pages[KF_ZERO_PAGES * 4096];
#define kf_zero_page ((const uint8_t *)kf_zero_pages)

struct kf_snapshot;

/* Snapshot files (lib/snapshot.c): a private temporary file beside path
 * (fd, or -errno), and its commit: fsync, close, rename over path. */
int kf_snap_create_tmp(const char *path, char **tmpp);
int kf_snap_commit(int fd, const char *tmp, const char *path);
/* pwrite() all of buf at off: 0, or -errno with a message naming path. */
int kf_pwrite_full(int fd, const void *buf, size_t len, uint64_t off,
		   const char *path);
/* The snapshot's page number of gpa, or -1 when no region holds it. */
int64_t kf_snap_page_index(const struct kf_snapshot *snap, uint64_t gpa);

/* A snapshot's working set (lib/snapshot_ws.c). */
struct kf_snap_ws;
int kf_snap_ws_new(struct kf_snap_ws **wsp);	/* at open */
struct kf_snap_ws *kf_snapshot_ws(struct kf_snapshot *snap);
void kf_snap_ws_free(struct kf_snap_ws *ws);
/* A demand read of [gpa, gpa + len): recorded when recording. */
void kf_snap_ws_note(struct kf_snapshot *snap, uint64_t gpa, size_t len);
/* A copy of the loaded order's pages in [base, base + size), as page
 * numbers from base (*order NULL and *len 0 when none): 0 or -ENOMEM. */
int kf_snap_ws_region_order(struct kf_snap_ws *ws, uint64_t base, uint64_t size,
			    uint64_t **order, uint64_t *len);

/* Format a line for a caller's log callback; nothing when log is NULL. */
void kf_logf(void (*log)(void *opaque, const char *msg), void *opaque,
	     const char *fmt, ...) KF_PRINTF(3, 4);

#endif
