// SPDX-License-Identifier: MIT
/*
 * The migration wire protocol: framing, the message parser (which accepts
 * arbitrary bytes), connections and TCP helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/migration.h>

#include "internal.h"

_Static_assert(KF_ZERO_PAGES >= KF_MIG_MAX_BATCH, "a batch of zero pages");

static const char *const kf_mig_names[KF_MIG_TYPE_MAX] = {
	[KF_MIG_HELLO] = "HELLO",
	[KF_MIG_SETUP] = "SETUP",
	[KF_MIG_PAGES] = "PAGES",
	[KF_MIG_DISCARD] = "DISCARD",
	[KF_MIG_VCPU] = "VCPU",
	[KF_MIG_SWITCHOVER] = "SWITCHOVER",
	[KF_MIG_REQ] = "REQ",
	[KF_MIG_PUSH_DONE] = "PUSH_DONE",
	[KF_MIG_RESUMED] = "RESUMED",
	[KF_MIG_COMPLETE] = "COMPLETE",
	[KF_MIG_RECEIVED] = "RECEIVED",
	[KF_MIG_RECOVER_DONE] = "RECOVER_DONE",
	[KF_MIG_ERROR] = "ERROR",
	[KF_MIG_STATS] = "STATS",
	[KF_MIG_SYNC] = "SYNC",
};

const char *kf_mig_type_name(uint32_t type)
{
	return type < KF_MIG_TYPE_MAX && kf_mig_names[type] ?
	       kf_mig_names[type] : "UNKNOWN";
}

/* The executable's code as loaded (its first executable segment, also in
 * a position-independent program). */
struct kf_image_text {
	const void *p;
	size_t len;
};

static int kf_image_text_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	struct kf_image_text *t = data;
	int i;

	(void)size;
	/* The first object is the executable; its first executable segment. */
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X)) {
			t->p = (const void *)(uintptr_t)(info->dlpi_addr + ph->p_vaddr);
			t->len = ph->p_filesz;
			break;
		}
	}
	return 1;
}

static int kf_image_text(const void **p, size_t *len)
{
	struct kf_image_text t = { 0 };

	dl_iterate_phdr(kf_image_text_cb, &t);
	if (!t.p)
		return kf_fail(ENOEXEC, "cannot find this program's executable segment");
	*p = t.p;
	*len = t.len;
	return 0;
}

uint64_t kf_mig_image_id(void)
{
	const void *p = NULL;
	size_t len = 0;

	if (kf_image_text(&p, &len)) {
		kf_error_forget();
		return 0;
	}
	len = KF_ALIGN_DOWN(len, 8);
	return kf_host_hash(p, len, 0) ^ len;
}

uint64_t kf_mig_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

uint64_t kf_mig_realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ---------------------------------------------------------------- parser */

int kf_mig_check_hdr(const struct kf_mig_hdr *hdr)
{
	if (hdr->magic != KF_MIG_MAGIC)
		return kf_fail(EPROTO, "migration stream: bad magic 0x%08x (not a kvmfault migration stream)",
			       hdr->magic);
	if (hdr->type == 0 || hdr->type >= KF_MIG_TYPE_MAX)
		return kf_fail(EPROTO, "migration stream: unknown message type %u",
			       hdr->type);
	if (hdr->flags & ~(hdr->type == KF_MIG_PAGES ? KF_MIG_PAGES_TAGS : 0))
		return kf_fail(EPROTO, "migration stream: %s with unknown flags 0x%x",
			       kf_mig_type_name(hdr->type), hdr->flags);
	if (hdr->len > KF_MIG_MAX_PAYLOAD)
		return kf_fail(EPROTO, "migration stream: %s of %u bytes exceeds the limit of %u",
			       kf_mig_type_name(hdr->type), hdr->len,
			       KF_MIG_MAX_PAYLOAD);
	return 0;
}

static int kf_mig_bad(const struct kf_mig_hdr *hdr, const char *why)
{
	return kf_fail(EPROTO, "migration stream: malformed %s (%u bytes): %s",
		       kf_mig_type_name(hdr->type), hdr->len, why);
}

static int kf_mig_parse_pages(const struct kf_mig_hdr *hdr, const char *p,
			      struct kf_mig_msg *msg)
{
	uint64_t ndata = 0, need, tags_len;
	uint32_t i;

	if (hdr->len < sizeof(msg->u.pages.h))
		return kf_mig_bad(hdr, "shorter than its header");
	memcpy(&msg->u.pages.h, p, sizeof(msg->u.pages.h));
	if (!msg->u.pages.h.count || msg->u.pages.h.count > KF_MIG_MAX_BATCH)
		return kf_mig_bad(hdr, "page count out of range");
	if (msg->u.pages.h.cause >= KF_MIG_CAUSE_MAX)
		return kf_mig_bad(hdr, "unknown cause");
	if (!KF_IS_ALIGNED(msg->u.pages.h.gpa, KF_PAGE_SIZE) ||
	    msg->u.pages.h.gpa > UINT64_MAX - KF_MIG_MAX_BATCH * KF_PAGE_SIZE)
		return kf_mig_bad(hdr, "address not page aligned or out of range");
	need = sizeof(msg->u.pages.h) +
	       (uint64_t)msg->u.pages.h.count * sizeof(struct kf_mig_page_entry);
	if (hdr->len < need)
		return kf_mig_bad(hdr, "truncated page entries");
	msg->u.pages.entries = (const void *)(p + sizeof(msg->u.pages.h));
	for (i = 0; i < msg->u.pages.h.count; i++) {
		struct kf_mig_page_entry e;

		memcpy(&e, &msg->u.pages.entries[i], sizeof(e));
		if (e.kind > KF_MIG_PAGE_ZERO || e.reserved)
			return kf_mig_bad(hdr, "unknown page kind");
		ndata += e.kind == KF_MIG_PAGE_DATA;
	}
	tags_len = hdr->flags & KF_MIG_PAGES_TAGS ?
		   (uint64_t)msg->u.pages.h.count * KF_MIG_TAG_BYTES : 0;
	if (hdr->len != need + ndata * KF_PAGE_SIZE + tags_len)
		return kf_mig_bad(hdr, "length does not match its pages");
	msg->u.pages.data = (const uint8_t *)p + need;
	if (tags_len)
		msg->u.pages.tags = msg->u.pages.data + ndata * KF_PAGE_SIZE;
	return 0;
}

int kf_mig_parse_payload(const struct kf_mig_hdr *hdr, const void *payload,
			 struct kf_mig_msg *msg)
{
	const char *p = payload;
	uint32_t len = hdr->len;
	int ret = kf_mig_check_hdr(hdr);

	if (ret)
		return ret;
	memset(msg, 0, sizeof(*msg));
	msg->hdr = *hdr;
	msg->payload = payload;

	switch (hdr->type) {
	case KF_MIG_HELLO:
		if (len != sizeof(msg->u.hello))
			return kf_mig_bad(hdr, "wrong size");
		memcpy(&msg->u.hello, p, len);
		if (msg->u.hello.channel != KF_MIG_CH_MAIN &&
		    msg->u.hello.channel != KF_MIG_CH_DEMAND &&
		    msg->u.hello.channel != KF_MIG_CH_PUSH)
			return kf_mig_bad(hdr, "unknown channel");
		if (msg->u.hello.flags & ~KF_MIG_HELLO_RECOVER)
			return kf_mig_bad(hdr, "unknown flags");
		if (msg->u.hello.push_streams > KF_MIG_MAX_PUSH_STREAMS)
			return kf_mig_bad(hdr, "too many push streams");
		if (msg->u.hello.channel == KF_MIG_CH_PUSH ?
		    msg->u.hello.push_index >= msg->u.hello.push_streams :
		    msg->u.hello.push_index != 0)
			return kf_mig_bad(hdr, "push stream number out of range");
		return 0;
	case KF_MIG_SETUP: {
		struct kf_mig_setup s;
		uint32_t i;

		if (len < sizeof(s))
			return kf_mig_bad(hdr, "shorter than its header");
		memcpy(&s, p, sizeof(s));
		if (!s.nr_regions || s.nr_regions > KF_MIG_MAX_REGIONS ||
		    len != sizeof(s) + s.nr_regions * sizeof(struct kf_mig_region))
			return kf_mig_bad(hdr, "region count does not match its length");
		if (s.nr_vcpus > KF_MAX_VCPUS)
			return kf_mig_bad(hdr, "vCPU count out of range");
		if (s.page_size != KF_PAGE_SIZE)
			return kf_mig_bad(hdr, "page size is not 4096");
		if (s.flags & ~KF_MIG_SETUP_MTE)
			return kf_mig_bad(hdr, "unknown flags");
		for (i = 0; i < s.nr_regions; i++) {
			struct kf_mig_region r;

			memcpy(&r, p + sizeof(s) + i * sizeof(r), sizeof(r));
			if (!r.size || !KF_IS_ALIGNED(r.gpa, KF_PAGE_SIZE) ||
			    !KF_IS_ALIGNED(r.size, KF_PAGE_SIZE) ||
			    r.gpa + r.size < r.gpa || r.gpa + r.size > (1ULL << 52))
				return kf_mig_bad(hdr, "region out of range");
			if ((r.slot_flags & KF_MIG_REGION_TAGS) &&
			    (!(s.flags & KF_MIG_SETUP_MTE) ||
			     (r.slot_flags & KF_MIG_REGION_EAGER)))
				return kf_mig_bad(hdr, "a region with tags needs an MTE VM and post-copy");
		}
		msg->u.setup.setup = (const void *)p;
		return 0;
	}
	case KF_MIG_PAGES:
		return kf_mig_parse_pages(hdr, p, msg);
	case KF_MIG_DISCARD:
		if (!len || len % sizeof(struct kf_mig_range))
			return kf_mig_bad(hdr, "not a whole number of ranges");
		msg->u.discard.ranges = payload;
		msg->u.discard.count = len / sizeof(struct kf_mig_range);
		for (uint32_t i = 0; i < msg->u.discard.count; i++) {
			struct kf_mig_range r;

			memcpy(&r, p + i * sizeof(r), sizeof(r));
			if (!KF_IS_ALIGNED(r.gpa, KF_PAGE_SIZE) || !r.npages ||
			    r.npages > (1ULL << 40) ||
			    r.gpa + r.npages * KF_PAGE_SIZE < r.gpa)
				return kf_mig_bad(hdr, "range out of bounds");
		}
		return 0;
	case KF_MIG_VCPU: {
		struct kf_mig_vcpu_hdr v;

		if (len < sizeof(v))
			return kf_mig_bad(hdr, "shorter than its header");
		memcpy(&v, p, sizeof(v));
		if (v.id >= KF_MAX_VCPUS || v.len != len - sizeof(v))
			return kf_mig_bad(hdr, "bad vCPU id or state length");
		msg->u.vcpu.id = v.id;
		msg->u.vcpu.len = v.len;
		msg->u.vcpu.blob = p + sizeof(v);
		return 0;
	}
	case KF_MIG_SWITCHOVER:
		if (len != sizeof(msg->u.switchover))
			return kf_mig_bad(hdr, "wrong size");
		memcpy(&msg->u.switchover, p, len);
		return 0;
	case KF_MIG_REQ: {
		struct kf_mig_req_hdr r;

		if (len < sizeof(r))
			return kf_mig_bad(hdr, "shorter than its header");
		memcpy(&r, p, sizeof(r));
		if (!r.count || r.count > KF_MIG_MAX_REQ ||
		    len != sizeof(r) + r.count * 8ULL)
			return kf_mig_bad(hdr, "count does not match its length");
		msg->u.req.count = r.count;
		msg->u.req.gpas = (const void *)(p + sizeof(r));
		for (uint32_t i = 0; i < r.count; i++) {
			uint64_t g;

			memcpy(&g, p + sizeof(r) + i * 8, 8);
			if (!KF_IS_ALIGNED(g, KF_PAGE_SIZE))
				return kf_mig_bad(hdr, "address not page aligned");
		}
		return 0;
	}
	case KF_MIG_RECEIVED: {
		struct kf_mig_received_hdr r;

		if (len < sizeof(r))
			return kf_mig_bad(hdr, "shorter than its header");
		memcpy(&r, p, sizeof(r));
		if (r.region >= KF_MIG_MAX_REGIONS || !r.nbits ||
		    r.nbits > (uint64_t)KF_MIG_MAX_PAYLOAD * 8 ||
		    len != sizeof(r) + (r.nbits + 63) / 64 * 8)
			return kf_mig_bad(hdr, "bitmap does not match its length");
		msg->u.received.h = r;
		msg->u.received.bitmap = (const void *)(p + sizeof(r));
		return 0;
	}
	case KF_MIG_STATS:
		if (len != sizeof(msg->u.stats))
			return kf_mig_bad(hdr, "wrong size");
		memcpy(&msg->u.stats, p, len);
		return 0;
	case KF_MIG_SYNC:
		if (len != sizeof(msg->u.sync))
			return kf_mig_bad(hdr, "wrong size");
		memcpy(&msg->u.sync, p, len);
		return 0;
	case KF_MIG_ERROR:
		if (len >= KF_MIG_MAX_TEXT)
			return kf_mig_bad(hdr, "text too long");
		memcpy(msg->u.text, p, len);
		msg->u.text[len] = '\0';
		for (uint32_t i = 0; i < len; i++)
			if ((unsigned char)msg->u.text[i] < 0x20 &&
			    msg->u.text[i] != '\n')
				msg->u.text[i] = '?';
		return 0;
	case KF_MIG_PUSH_DONE:
	case KF_MIG_RESUMED:
	case KF_MIG_COMPLETE:
	case KF_MIG_RECOVER_DONE:
		if (len != 0 && len != 8)
			return kf_mig_bad(hdr, "wrong size");
		return 0;
	}
	return kf_mig_bad(hdr, "unknown type");
}

int kf_mig_parse_frame(const void *buf, size_t len, size_t *used,
		       struct kf_mig_msg *msg)
{
	struct kf_mig_hdr hdr;
	int ret;

	if (len < sizeof(hdr))
		return -EAGAIN;
	memcpy(&hdr, buf, sizeof(hdr));
	ret = kf_mig_check_hdr(&hdr);
	if (ret)
		return ret;
	if (len - sizeof(hdr) < hdr.len)
		return -EAGAIN;
	ret = kf_mig_parse_payload(&hdr, (const char *)buf + sizeof(hdr), msg);
	if (ret)
		return ret;
	*used = sizeof(hdr) + hdr.len;
	return 0;
}

/* tags: the page's packed tags, or NULL. */
static int kf_mig_check_page(uint64_t gpa, const void *page, const uint8_t *tags,
			     uint64_t hash)
{
	uint64_t got = tags ? kf_mig_tagged_page_hash(gpa, page, tags) :
			      kf_mig_page_hash(gpa, page);

	if (got != hash)
		return kf_fail(EBADMSG, "migration stream: page 0x%llx fails its checksum (0x%016llx, expected 0x%016llx): not installed",
			       (unsigned long long)gpa, (unsigned long long)got,
			       (unsigned long long)hash);
	return 0;
}

/* Page i's packed tags in a PAGES message, or NULL. */
static const uint8_t *kf_mig_msg_tags(const struct kf_mig_msg *msg, uint32_t i)
{
	return msg->u.pages.tags ? msg->u.pages.tags + (size_t)i * KF_MIG_TAG_BYTES : NULL;
}

int kf_mig_pages_verify(const struct kf_mig_msg *msg)
{
	const struct kf_mig_pages_hdr *h = &msg->u.pages.h;
	const uint8_t *data = msg->u.pages.data;
	uint32_t i;
	int ret;

	for (i = 0; i < h->count; i++) {
		uint64_t gpa = h->gpa + (uint64_t)i * KF_PAGE_SIZE;
		struct kf_mig_page_entry e;
		const void *page = kf_zero_page;

		memcpy(&e, &msg->u.pages.entries[i], sizeof(e));
		if (e.kind == KF_MIG_PAGE_DATA) {
			page = data;
			data += KF_PAGE_SIZE;
		}
		ret = kf_mig_check_page(gpa, page, kf_mig_msg_tags(msg, i), e.hash);
		if (ret)
			return ret;
	}
	return 0;
}

int kf_mig_page_get(const struct kf_mig_msg *msg, uint32_t i, void *out)
{
	const struct kf_mig_pages_hdr *h = &msg->u.pages.h;
	const uint8_t *data = msg->u.pages.data;
	struct kf_mig_page_entry e;
	uint64_t gpa = h->gpa + (uint64_t)i * KF_PAGE_SIZE;
	uint32_t j;

	if (i >= h->count)
		return kf_fail(EINVAL, "page %u of a batch of %u", i, h->count);
	for (j = 0; j < i; j++) {
		memcpy(&e, &msg->u.pages.entries[j], sizeof(e));
		if (e.kind == KF_MIG_PAGE_DATA)
			data += KF_PAGE_SIZE;
	}
	memcpy(&e, &msg->u.pages.entries[i], sizeof(e));
	if (e.kind == KF_MIG_PAGE_ZERO)
		memset(out, 0, KF_PAGE_SIZE);
	else
		memcpy(out, data, KF_PAGE_SIZE);
	return kf_mig_check_page(gpa, out, kf_mig_msg_tags(msg, i), e.hash);
}

int kf_mig_page_tags(const struct kf_mig_msg *msg, uint32_t i, uint8_t *tags)
{
	if (i >= msg->u.pages.h.count)
		return kf_fail(EINVAL, "page %u of a batch of %u", i, msg->u.pages.h.count);
	if (!msg->u.pages.tags)
		return kf_fail(ENODATA, "migration stream: the pages at 0x%llx carry no allocation tags",
			       (unsigned long long)msg->u.pages.h.gpa);
	kf_mte_unpack_tags(tags, kf_mig_msg_tags(msg, i), KF_MTE_TAGS_PER_PAGE);
	return 0;
}

/* ------------------------------------------------------------ connections */

/* A peer that takes this long to accept more bytes is stuck or hostile. */
#define KF_MIG_SEND_TIMEOUT_MS 60000

struct kf_mig_conn {
	int fd;
	struct kf_tls_session *tls;	/* NULL: plain TCP */
	uint64_t rcv_deadline;		/* kf_mig_now_ns() time; 0: none */
	int rcv_timeout_ms;		/* what set it, for messages */
	pthread_mutex_t wlock;
	uint32_t seq;
	char *buf;
	size_t cap;
	char *wbuf;			/* TLS: a message gathered for one write */
	size_t wcap;
	char *pages_buf;		/* kf_mig_send_pages() builds in it */
};

static int kf_sock_timeo(int fd, int opt, int timeout_ms)
{
	struct timeval tv = {
		.tv_sec = timeout_ms > 0 ? timeout_ms / 1000 : 0,
		.tv_usec = timeout_ms > 0 ? (timeout_ms % 1000) * 1000 : 0,
	};

	if (setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv)))
		return kf_fail_errno(errno, "setsockopt %s",
				     opt == SO_RCVTIMEO ? "SO_RCVTIMEO" : "SO_SNDTIMEO");
	return 0;
}

int kf_mig_conn_new(int fd, struct kf_mig_conn **connp)
{
	struct kf_mig_conn *c = calloc(1, sizeof(*c));
	int one = 1, ret;

	*connp = NULL;
	if (!c)
		return kf_fail(ENOMEM, "out of memory for a connection");
	/* Not a TCP socket (a socketpair in tests): nothing to tune. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) &&
	    errno != EOPNOTSUPP) {
		ret = kf_fail_errno(errno, "setsockopt TCP_NODELAY");
		free(c);
		return ret;
	}
	ret = kf_sock_timeo(fd, SO_SNDTIMEO, KF_MIG_SEND_TIMEOUT_MS);
	if (ret) {
		free(c);
		return ret;
	}
	c->fd = fd;
	pthread_mutex_init(&c->wlock, NULL);
	*connp = c;
	return 0;
}

int kf_mig_conn_new_tls(int fd, struct kf_mig_tls *tls, int timeout_ms,
			struct kf_mig_conn **connp)
{
	struct kf_mig_conn *c;
	int ret;

	*connp = NULL;
	if (!tls)
		return kf_fail(EINVAL, "a TLS connection without credentials");
	ret = kf_mig_conn_new(fd, &c);
	if (ret)
		return ret;
	ret = kf_tls_handshake(tls, fd, timeout_ms, &c->tls);
	if (ret) {
		c->fd = -1;	/* the caller's still */
		kf_mig_conn_free(c);
		return ret;
	}
	*connp = c;
	return 0;
}

int kf_mig_conn_open(int fd, struct kf_mig_tls *tls, int timeout_ms,
		     struct kf_mig_conn **connp)
{
	return tls ? kf_mig_conn_new_tls(fd, tls, timeout_ms, connp) :
		     kf_mig_conn_new(fd, connp);
}

int kf_mig_check_channel(const char *who, const struct kf_mig_tls *tls, bool plain)
{
	if (!tls == !plain)
		return kf_fail(EINVAL, "%s: %s", who, plain ?
			       "TLS credentials and plain TCP both chosen" :
			       "no TLS credentials (or choose plain TCP explicitly)");
	return 0;
}

int kf_mig_conn_set_timeout(struct kf_mig_conn *conn, int timeout_ms)
{
	conn->rcv_timeout_ms = timeout_ms;
	conn->rcv_deadline = timeout_ms > 0 ?
			     kf_mig_now_ns() + (uint64_t)timeout_ms * 1000000ULL : 0;
	if (conn->tls || timeout_ms > 0)
		return 0;
	return kf_sock_timeo(conn->fd, SO_RCVTIMEO, 0);
}

void kf_mig_conn_free(struct kf_mig_conn *conn)
{
	if (!conn)
		return;
	kf_tls_session_free(conn->tls);
	if (conn->fd >= 0)
		close(conn->fd);
	pthread_mutex_destroy(&conn->wlock);
	free(conn->buf);
	free(conn->wbuf);
	free(conn->pages_buf);
	free(conn);
}

int kf_mig_conn_fd(struct kf_mig_conn *conn)
{
	return conn->fd;
}

void kf_mig_conn_shutdown(struct kf_mig_conn *conn)
{
	if (conn && conn->fd >= 0)
		shutdown(conn->fd, SHUT_RDWR);
}

static int kf_mig_read_late(const struct kf_mig_conn *conn)
{
	return kf_fail(ETIMEDOUT, "migration connection: the peer did not send its message within %d ms",
		       conn->rcv_timeout_ms);
}

static int kf_mig_read_full(struct kf_mig_conn *conn, void *buf, size_t len)
{
	char *p = buf;
	size_t done = 0;

	while (done < len) {
		/* A deadline, not a pause between bytes: a peer that trickles
		 * bytes gets no more time than one that sends nothing. */
		int left = conn->rcv_deadline ? kf_ms_until(conn->rcv_deadline) : -1;
		ssize_t n;

		if (!left)
			return kf_mig_read_late(conn);
		if (conn->tls) {
			n = kf_tls_read(conn->tls, p + done, len - done, left);
		} else {
			int ret = left > 0 ? kf_sock_timeo(conn->fd, SO_RCVTIMEO, left) : 0;

			if (ret)
				return ret;
			n = read(conn->fd, p + done, len - done);
		}
		if (n < 0 && conn->tls)
			return (int)n;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return kf_mig_read_late(conn);
		if (n < 0)
			return kf_fail_errno(errno == EPIPE ? ECONNRESET : errno,
					     "migration connection: read");
		if (n == 0)
			return kf_fail(ECONNRESET, "migration connection closed by the peer%s",
				       done ? " in the middle of a message" : "");
		done += n;
	}
	return 0;
}

int kf_mig_recv(struct kf_mig_conn *conn, struct kf_mig_msg *msg)
{
	struct kf_mig_hdr hdr;
	int ret;

	ret = kf_mig_read_full(conn, &hdr, sizeof(hdr));
	if (ret)
		return ret;
	ret = kf_mig_check_hdr(&hdr);
	if (ret)
		return ret;
	if (hdr.len > conn->cap) {
		size_t cap = KF_MAX((size_t)hdr.len, (size_t)65536);
		char *b = realloc(conn->buf, cap);

		if (!b)
			return kf_fail(ENOMEM, "out of memory for a %u-byte message",
				       hdr.len);
		conn->buf = b;
		conn->cap = cap;
	}
	ret = kf_mig_read_full(conn, conn->buf, hdr.len);
	if (ret)
		return ret;
	return kf_mig_parse_payload(&hdr, conn->buf, msg);
}

static int kf_mig_writev_full(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		/* Not writev(): a peer gone raises no SIGPIPE. */
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return kf_fail(ETIMEDOUT, "migration connection: the peer took nothing for %d ms",
				       KF_MIG_SEND_TIMEOUT_MS);
		if (n < 0)
			return kf_fail_errno(errno == EPIPE ? ECONNRESET : errno,
					     "migration connection: write");
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return 0;
}

/* TLS: one message gathered into one buffer, so that it goes out in full
 * records rather than a record for every piece.  Called under wlock. */
static int kf_mig_tls_write(struct kf_mig_conn *conn, const struct iovec *iov,
			    int cnt)
{
	size_t len = 0, off = 0;
	int i;

	for (i = 0; i < cnt; i++)
		len += iov[i].iov_len;
	if (len > conn->wcap) {
		char *b = realloc(conn->wbuf, len);

		if (!b)
			return kf_fail(ENOMEM, "out of memory for a %zu-byte message", len);
		conn->wbuf = b;
		conn->wcap = len;
	}
	for (i = 0; i < cnt; i++) {
		if (iov[i].iov_len)
			memcpy(conn->wbuf + off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	return kf_tls_write(conn->tls, conn->wbuf, len, KF_MIG_SEND_TIMEOUT_MS);
}

static int kf_mig_write_full(struct kf_mig_conn *conn, struct iovec *iov, int cnt)
{
	if (conn->tls && cnt == 1)
		return kf_tls_write(conn->tls, iov->iov_base, iov->iov_len,
				    KF_MIG_SEND_TIMEOUT_MS);
	if (conn->tls)
		return kf_mig_tls_write(conn, iov, cnt);
	return kf_mig_writev_full(conn->fd, iov, cnt);
}

int kf_mig_send(struct kf_mig_conn *conn, uint16_t type, const void *p1,
		size_t l1, const void *p2, size_t l2, const void *p3, size_t l3)
{
	struct kf_mig_hdr hdr = {
		.magic = KF_MIG_MAGIC,
		.type = type,
		.len = (uint32_t)(l1 + l2 + l3),
	};
	struct iovec iov[4] = {
		{ &hdr, sizeof(hdr) },
		{ (void *)p1, l1 },
		{ (void *)p2, l2 },
		{ (void *)p3, l3 },
	};
	int ret;

	if (l1 + l2 + l3 > KF_MIG_MAX_PAYLOAD)
		return kf_fail(EMSGSIZE, "a %s of %zu bytes is too large",
			       kf_mig_type_name(type), l1 + l2 + l3);
	pthread_mutex_lock(&conn->wlock);
	hdr.seq = conn->seq++;
	ret = kf_mig_write_full(conn, iov, 4);
	pthread_mutex_unlock(&conn->wlock);
	return ret;
}

/*
 * The push is bulk work; a demand is a vCPU waiting.  On a host with fewer
 * cores than busy threads, the demand's thread wake-ups (request, answer,
 * install) queue behind the push's copies for a scheduler slice each: a
 * push thread lowers its own nice value so that those wake-ups preempt it.
 * Best effort: without the rights or on failure the thread keeps its
 * priority.
 */
bool kf_mig_push_thread_priority(void)
{
	id_t tid = (id_t)gettid();
	int before, after;

	errno = 0;
	before = getpriority(PRIO_PROCESS, tid);
	if (before == -1 && errno)
		return false;
	if (setpriority(PRIO_PROCESS, tid, KF_MIN(before + 10, 19)))
		return false;
	errno = 0;
	after = getpriority(PRIO_PROCESS, tid);
	return !(after == -1 && errno) && (after > before || after == 19);
}

int kf_mig_send_text(struct kf_mig_conn *conn, uint16_t type, const char *text)
{
	size_t len = strnlen(text, KF_MIG_MAX_TEXT - 1);

	return kf_mig_send(conn, type, text, len, NULL, 0, NULL, 0);
}

int kf_mig_send_pages(struct kf_mig_conn *conn, uint64_t gpa, const void *src,
		      uint64_t count, enum kf_mig_page_cause cause)
{
	return kf_mig_send_tagged_pages(conn, gpa, src, NULL, count, cause);
}

int kf_mig_send_pages_read_tags(struct kf_mig_conn *conn, uint64_t gpa,
				const void *src, uint64_t count,
				enum kf_mig_page_cause cause,
				int (*read_tags)(void *opaque, uint64_t gpa,
						 uint64_t len, uint8_t *tags),
				void *opaque)
{
	uint8_t tags[KF_MIG_MAX_BATCH * KF_MTE_TAGS_PER_PAGE];
	const char *s = src;
	int ret = 0;

	if (!read_tags)
		return kf_mig_send_pages(conn, gpa, src, count, cause);
	while (count && !ret) {
		uint64_t n = KF_MIN(count, (uint64_t)KF_MIG_MAX_BATCH);

		ret = read_tags(opaque, gpa, n * KF_PAGE_SIZE, tags);
		if (!ret)
			ret = kf_mig_send_tagged_pages(conn, gpa, s, tags, n, cause);
		gpa += n * KF_PAGE_SIZE;
		s += n * KF_PAGE_SIZE;
		count -= n;
	}
	return ret;
}

/*
 * A batch's header, entries and packed tags are built in the connection's
 * buffer (under wlock, which guards it), its DATA pages after them.  A
 * live guest (pre-copy) may write a page while it is sent, so its pages
 * are copied there first and checksummed in the copy: bytes and checksum
 * agree.  The pages of every other cause come from a stopped source and go
 * from src to the socket as they are; a page that changed anyway arrives
 * with a checksum that does not match, and the destination refuses it.
 */
static int kf_mig_send_batch(struct kf_mig_conn *conn, uint64_t gpa,
			     const char *src, const uint8_t *tags, uint32_t n,
			     enum kf_mig_page_cause cause)
{
	const size_t data_off = KF_ALIGN_UP(sizeof(struct kf_mig_hdr) +
					    sizeof(struct kf_mig_pages_hdr) +
					    KF_MIG_MAX_BATCH * sizeof(struct kf_mig_page_entry),
					    KF_PAGE_SIZE);
	const bool copy = cause == KF_MIG_CAUSE_PRECOPY;
	size_t ents_len = n * sizeof(struct kf_mig_page_entry), tags_len = 0;
	struct iovec iov[KF_MIG_MAX_BATCH + 2];
	const char *bytes[KF_MIG_MAX_BATCH];	/* what each page's hash covers */
	struct kf_mig_page_entry *ents;
	struct kf_mig_pages_hdr *ph;
	struct kf_mig_hdr *hdr;
	uint32_t i, ndata = 0;
	uint8_t *packed;
	char *data;
	int cnt = 1;

	if (!conn->pages_buf)
		conn->pages_buf = aligned_alloc(KF_PAGE_SIZE, data_off +
						KF_MIG_MAX_BATCH * (KF_PAGE_SIZE +
								    KF_MIG_TAG_BYTES));
	if (!conn->pages_buf)
		return kf_fail(ENOMEM, "out of memory for a page batch");
	/* The pages start on a page; a short batch moves its header and
	 * entries up to them. */
	data = conn->pages_buf + data_off;
	ents = (void *)(data - ents_len);
	ph = (void *)((char *)ents - sizeof(*ph));
	hdr = (void *)((char *)ph - sizeof(*hdr));
	for (i = 0; i < n; i++) {
		const char *page = src + (size_t)i * KF_PAGE_SIZE;

		if (copy) {
			memcpy(data + (size_t)ndata * KF_PAGE_SIZE, page, KF_PAGE_SIZE);
			page = data + (size_t)ndata * KF_PAGE_SIZE;
		}
		if (kf_page_is_zero(page)) {
			ents[i] = (struct kf_mig_page_entry){ .kind = KF_MIG_PAGE_ZERO };
			bytes[i] = (const char *)kf_zero_page;
			continue;
		}
		ents[i] = (struct kf_mig_page_entry){ .kind = KF_MIG_PAGE_DATA };
		bytes[i] = page;
		ndata++;
		if (copy)
			continue;
		/* Runs of DATA pages, one piece each. */
		if (cnt > 1 && iov[cnt - 1].iov_base == page - iov[cnt - 1].iov_len)
			iov[cnt - 1].iov_len += KF_PAGE_SIZE;
		else
			iov[cnt++] = (struct iovec){ (void *)page, KF_PAGE_SIZE };
	}
	/* Tags after the DATA pages, hashes once both are in place. */
	packed = (uint8_t *)data + (copy ? (size_t)ndata * KF_PAGE_SIZE : 0);
	for (i = 0; i < n; i++) {
		if (tags) {
			kf_mte_pack_tags(packed + (size_t)i * KF_MIG_TAG_BYTES,
					 tags + (size_t)i * KF_MTE_TAGS_PER_PAGE,
					 KF_MTE_TAGS_PER_PAGE);
			ents[i].hash = kf_mig_tagged_page_hash(gpa + (uint64_t)i * KF_PAGE_SIZE,
							       bytes[i],
							       packed + (size_t)i * KF_MIG_TAG_BYTES);
		} else {
			ents[i].hash = kf_mig_page_hash(gpa + (uint64_t)i * KF_PAGE_SIZE,
							bytes[i]);
		}
	}
	if (tags)
		tags_len = (size_t)n * KF_MIG_TAG_BYTES;
	*ph = (struct kf_mig_pages_hdr){ .gpa = gpa, .count = n, .cause = cause };
	*hdr = (struct kf_mig_hdr){
		.magic = KF_MIG_MAGIC, .type = KF_MIG_PAGES,
		.flags = tags ? KF_MIG_PAGES_TAGS : 0,
		.len = (uint32_t)(sizeof(*ph) + ents_len + (size_t)ndata * KF_PAGE_SIZE +
				  tags_len),
		.seq = conn->seq++,
	};
	iov[0] = (struct iovec){ hdr, sizeof(*hdr) + sizeof(*ph) + ents_len };
	if (copy)
		iov[0].iov_len += (size_t)ndata * KF_PAGE_SIZE + tags_len;
	else if (tags_len)
		iov[cnt++] = (struct iovec){ packed, tags_len };
	return kf_mig_write_full(conn, iov, cnt);
}

int kf_mig_send_tagged_pages(struct kf_mig_conn *conn, uint64_t gpa,
			     const void *src, const uint8_t *tags, uint64_t count,
			     enum kf_mig_page_cause cause)
{
	const char *s = src;

	while (count) {
		uint32_t n = (uint32_t)KF_MIN(count, (uint64_t)KF_MIG_MAX_BATCH);
		int ret;

		pthread_mutex_lock(&conn->wlock);
		ret = kf_mig_send_batch(conn, gpa, s, tags, n, cause);
		pthread_mutex_unlock(&conn->wlock);
		if (ret)
			return ret;
		gpa += (uint64_t)n * KF_PAGE_SIZE;
		s += (uint64_t)n * KF_PAGE_SIZE;
		if (tags)
			tags += (size_t)n * KF_MTE_TAGS_PER_PAGE;
		count -= n;
	}
	return 0;
}

/* ------------------------------------------------------------------- TCP */

static int kf_mig_resolve(const char *addr, bool passive, struct addrinfo **res)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = passive ? AI_PASSIVE : 0,
	};
	size_t hl;
	int ret;

	if (!colon || colon == addr || !colon[1])
		return kf_fail(EINVAL, "address '%s': expected host:port", addr);
	hl = colon - addr;
	if (addr[0] == '[' && hl > 2 && addr[hl - 1] == ']') {
		addr++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return kf_fail(EINVAL, "address '%s': host name too long", addr);
	memcpy(host, addr, hl);
	host[hl] = '\0';
	/* Numeric first: a static program has no name service to ask. */
	hints.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
	ret = getaddrinfo(host, colon + 1, &hints, res);
	if (ret == EAI_NONAME) {
		hints.ai_flags &= ~(AI_NUMERICHOST | AI_NUMERICSERV);
		ret = getaddrinfo(host, colon + 1, &hints, res);
	}
	if (ret)
		return kf_fail(EHOSTUNREACH, "address '%s': %s", addr,
			       gai_strerror(ret));
	return 0;
}

int kf_mig_listen(const char *addr, int *portp)
{
	struct addrinfo *res, *ai;
	int fd = -1, ret, one = 1, err = 0;

	ret = kf_mig_resolve(addr, true, &res);
	if (ret)
		return ret;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (!setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) &&
		    !bind(fd, ai->ai_addr, ai->ai_addrlen) && !listen(fd, 16))
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return kf_fail_errno(err, "listen on %s", addr);
	if (portp) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);

		if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
			ret = kf_fail_errno(errno, "the port listening on %s",
					    addr);
			close(fd);
			return ret;
		}
		*portp = ss.ss_family == AF_INET6 ?
			 ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
			 ntohs(((struct sockaddr_in *)&ss)->sin_port);
	}
	return fd;
}

int kf_ms_until(uint64_t deadline)
{
	uint64_t now = kf_mig_now_ns();

	return now >= deadline ? 0 : (int)KF_MIN((deadline - now + 999999) / 1000000ULL,
						 (uint64_t)INT_MAX);
}

int kf_poll_one(int fd, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int ret;

	do {
		ret = poll(&pfd, 1, timeout_ms);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return kf_fail_errno(errno, "poll");
	return ret;
}

int kf_mig_accept(int lfd, int timeout_ms)
{
	int ret, fd;

	ret = kf_poll_one(lfd, POLLIN, timeout_ms);
	if (ret < 0)
		return ret;
	if (ret == 0)
		return kf_fail(ETIMEDOUT, "no connection within %d ms", timeout_ms);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return kf_fail_errno(errno, "accept");
	return fd;
}

/* One address: 0 connected, else a positive errno. */
static int kf_mig_connect_one(int fd, const struct addrinfo *ai,
			      uint64_t deadline, bool forever)
{
	socklen_t len = sizeof(int);
	int err = 0, ret;

	if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
		return 0;
	if (errno != EINPROGRESS)
		return errno;
	do {
		int left = forever ? -1 : kf_ms_until(deadline);

		if (!forever && left <= 0)
			return ETIMEDOUT;
		ret = kf_poll_one(fd, POLLOUT, left);
	} while (ret == 0);
	if (ret < 0)
		return -ret;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return errno;
	return err;
}

int kf_mig_connect(const char *addr, int timeout_ms)
{
	bool forever = timeout_ms < 0;
	struct addrinfo *res, *ai;
	uint64_t deadline;
	int fd = -1, ret, err = ECONNREFUSED;

	ret = kf_mig_resolve(addr, false, &res);
	if (ret)
		return ret;
	deadline = kf_mig_now_ns() + (forever ? 0 : (uint64_t)timeout_ms * 1000000ULL);
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		err = kf_mig_connect_one(fd, ai, deadline, forever);
		if (!err && fcntl(fd, F_SETFL, 0))
			err = errno;
		if (!err)
			break;
		close(fd);
		fd = -1;
		if (err == ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		return fd;
	if (err == ETIMEDOUT)
		return kf_fail(ETIMEDOUT, "connect to %s: no answer within %d ms",
			       addr, timeout_ms);
	return kf_fail_errno(err, "connect to %s", addr);
}
