// SPDX-License-Identifier: MIT
/*
 * MTE allocation tags on the migration stream (protocol version 5), no KVM
 * needed.  On the wire: tagged PAGES carry every page's tags (a zero page's
 * too) and come back as sent; a flipped tag bit fails the page's checksum;
 * a PAGES whose length lacks the tags, the tags flag on any other message,
 * and a SETUP with a tagged region but no MTE VM, or a tagged eager one,
 * are malformed.  End to end: a page server whose region has
 * tags sends them with every page, and the remote source marks the region
 * and its page source tagged, hands out data and tags together and
 * refuses a read without tags.  A page server refuses tags on an eager
 * region and tags without a way to read them.  kf_mig_send_pages_read_tags()
 * reads the tags batch by batch and sends each page with its own; a failed
 * read stops the run with the reader's error.  Pages sent from a stopped
 * guest's memory without a copy make the same frames as pre-copy's copies.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/remote.h>
#include <kvmfault/test.h>

#define NR_PAGES 8
#define GPA_BASE (1ULL << 32)
#define TAGS_PER_PAGE (KF_PAGE_SIZE / 16)

static char *memory;

/* Tags that differ within a page and between pages. */
static uint8_t tag_of(uint64_t gpa, unsigned int granule)
{
	return (uint8_t)((gpa >> 12) * 7 + granule * 3) & 0xf;
}

static void fill_tags(uint64_t gpa, uint64_t len, uint8_t *tags)
{
	uint64_t off;
	unsigned int g;

	for (off = 0; off < len; off += KF_PAGE_SIZE)
		for (g = 0; g < TAGS_PER_PAGE; g++)
			tags[off / 16 + g] = tag_of(gpa + off, g);
}

/* --- the wire --- */

struct sender {
	struct kf_mig_conn *conn;
	const char *src;
	const uint8_t *tags;
	uint64_t count;
	enum kf_mig_page_cause cause;
};

static void *send_pages(void *arg)
{
	struct sender *s = arg;

	TEST_OK(kf_mig_send_tagged_pages(s->conn, GPA_BASE, s->src, s->tags,
					 s->count, s->cause));
	kf_mig_conn_free(s->conn);
	return NULL;
}

/* Send count pages of src (with tags unless NULL) on one end of a socket
 * pair, read the frames from the other: their bytes into buf, their
 * length returned. */
static size_t send_frames(const char *src, const uint8_t *tags, uint64_t count,
			  enum kf_mig_page_cause cause, char *buf, size_t cap)
{
	struct sender s = { .src = src, .tags = tags, .count = count, .cause = cause };
	pthread_t t;
	size_t got = 0;
	int sv[2];

	TEST_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM, 0, sv), "socketpair: %m");
	TEST_OK(kf_mig_conn_new(sv[0], &s.conn));
	TEST_ASSERT(!pthread_create(&t, NULL, send_pages, &s), "thread");
	for (;;) {
		ssize_t n = read(sv[1], buf + got, cap - got);

		TEST_ASSERT(n >= 0, "read: %m");
		if (!n)
			break;
		got += (size_t)n;
	}
	pthread_join(t, NULL);
	close(sv[1]);
	return got;
}

static size_t send_and_read(const uint8_t *tags, uint64_t count, char *buf,
			    size_t cap)
{
	return send_frames(memory, tags, count, KF_MIG_CAUSE_PUSH, buf, cap);
}

static void wire(void)
{
	static char buf[1 << 16];
	uint8_t tags[NR_PAGES * TAGS_PER_PAGE], got[TAGS_PER_PAGE];
	static char page[KF_PAGE_SIZE];
	struct kf_mig_hdr hdr;
	struct kf_mig_msg msg;
	size_t len, used;
	uint32_t i;

	fill_tags(GPA_BASE, 3 * KF_PAGE_SIZE, tags);
	len = send_and_read(tags, 3, buf, sizeof(buf));
	TEST_OK(kf_mig_parse_frame(buf, len, &used, &msg));
	TEST_ASSERT_EQ(used, len);
	TEST_ASSERT_EQ(msg.hdr.flags, KF_MIG_PAGES_TAGS);
	TEST_ASSERT(msg.u.pages.tags, "a tagged PAGES has tags");
	TEST_OK(kf_mig_pages_verify(&msg));
	for (i = 0; i < 3; i++) {
		TEST_OK(kf_mig_page_get(&msg, i, page));
		TEST_ASSERT(!memcmp(page, memory + i * KF_PAGE_SIZE, KF_PAGE_SIZE),
			    "page %u's data", i);
		TEST_OK(kf_mig_page_tags(&msg, i, got));
		TEST_ASSERT(!memcmp(got, tags + i * TAGS_PER_PAGE, TAGS_PER_PAGE),
			    "page %u's tags", i);
	}
	/* Page 1 holds zeros: no data on the wire, its tags all the same. */
	TEST_ASSERT_EQ(msg.hdr.len, sizeof(struct kf_mig_pages_hdr) +
		       3 * sizeof(struct kf_mig_page_entry) + 2 * KF_PAGE_SIZE +
		       3 * KF_MIG_TAG_BYTES);

	/* One flipped tag bit of the last page: its checksum fails. */
	buf[len - 1] ^= 0x10;
	TEST_OK(kf_mig_parse_frame(buf, len, &used, &msg));
	TEST_ASSERT_EQ(kf_mig_pages_verify(&msg), -EBADMSG);
	TEST_ASSERT(strstr(kf_error(), "checksum"), "message: %s", kf_error());
	printf("  a flipped tag bit: %s\n", kf_error());
	buf[len - 1] ^= 0x10;

	/* The flag without the tags' bytes, and on another message type. */
	memcpy(&hdr, buf, sizeof(hdr));
	hdr.len -= 3 * KF_MIG_TAG_BYTES;
	TEST_ASSERT_EQ(kf_mig_parse_payload(&hdr, buf + sizeof(hdr), &msg), -EPROTO);
	printf("  tags missing: %s\n", kf_error());
	hdr = (struct kf_mig_hdr){ .magic = KF_MIG_MAGIC, .type = KF_MIG_COMPLETE,
				   .flags = KF_MIG_PAGES_TAGS };
	TEST_ASSERT_EQ(kf_mig_check_hdr(&hdr), -EPROTO);
	hdr = (struct kf_mig_hdr){ .magic = KF_MIG_MAGIC, .type = KF_MIG_PAGES,
				   .flags = 2 };
	TEST_ASSERT_EQ(kf_mig_check_hdr(&hdr), -EPROTO);

	/* SETUP: tags on a region need an MTE VM and a post-copy region. */
	{
		struct {
			struct kf_mig_setup s;
			struct kf_mig_region r;
		} s = { { .nr_vcpus = 1, .nr_regions = 1, .page_size = KF_PAGE_SIZE,
			  .flags = KF_MIG_SETUP_MTE },
			{ .gpa = GPA_BASE, .size = KF_PAGE_SIZE,
			  .slot_flags = KF_MIG_REGION_TAGS } };

		hdr = (struct kf_mig_hdr){ .magic = KF_MIG_MAGIC, .type = KF_MIG_SETUP,
					   .len = sizeof(s) };
		TEST_OK(kf_mig_parse_payload(&hdr, &s, &msg));
		s.s.flags = 0;
		TEST_ASSERT_EQ(kf_mig_parse_payload(&hdr, &s, &msg), -EPROTO);
		printf("  tags without MTE: %s\n", kf_error());
		s.s.flags = KF_MIG_SETUP_MTE;
		s.r.slot_flags |= KF_MIG_REGION_EAGER;
		TEST_ASSERT_EQ(kf_mig_parse_payload(&hdr, &s, &msg), -EPROTO);
		s.s.flags = 2;
		s.r.slot_flags = 0;
		TEST_ASSERT_EQ(kf_mig_parse_payload(&hdr, &s, &msg), -EPROTO);
	}

	/* Untagged pages have no tags to read. */
	len = send_and_read(NULL, 1, buf, sizeof(buf));
	TEST_OK(kf_mig_parse_frame(buf, len, &used, &msg));
	TEST_ASSERT(!msg.u.pages.tags, "an untagged PAGES has none");
	TEST_OK(kf_mig_pages_verify(&msg));
	TEST_ASSERT_EQ(kf_mig_page_tags(&msg, 0, got), -ENODATA);
	printf("  wire: tagged pages round-trip, damage and malformed frames refused\n");
}

/*
 * Pre-copy pages are copied before they are checksummed and sent; those of
 * a stopped guest go out from guest memory as they are.  Both give the same
 * frames but for the cause: runs of data and zero pages across two
 * batches, with tags and without.
 */
#define DIRECT_PAGES (KF_MIG_MAX_BATCH + 36)

static void direct_and_copied_agree(void)
{
	static const unsigned int zeros[] = { 0, 5, 6, 62, 64, 65, DIRECT_PAGES - 1 };
	static uint8_t tags[DIRECT_PAGES * TAGS_PER_PAGE];
	size_t cap = DIRECT_PAGES * (KF_PAGE_SIZE + 512), la, lb, oa, ob;
	char *src = aligned_alloc(KF_PAGE_SIZE, DIRECT_PAGES * KF_PAGE_SIZE);
	char *a = malloc(cap), *b = malloc(cap), page[KF_PAGE_SIZE];
	const size_t ph = sizeof(struct kf_mig_pages_hdr);
	unsigned int i, pass, frames;

	TEST_ASSERT(src && a && b, "malloc");
	for (i = 0; i < DIRECT_PAGES * KF_PAGE_SIZE; i++)
		src[i] = (char)(i * 7 + 3 + i / KF_PAGE_SIZE * 29);	/* pages differ */
	for (i = 0; i < KF_ARRAY_SIZE(zeros); i++)
		memset(src + (size_t)zeros[i] * KF_PAGE_SIZE, 0, KF_PAGE_SIZE);
	fill_tags(GPA_BASE, DIRECT_PAGES * KF_PAGE_SIZE, tags);
	for (pass = 0; pass < 2; pass++) {
		const uint8_t *t = pass ? tags : NULL;
		uint32_t idx = 0;

		la = send_frames(src, t, DIRECT_PAGES, KF_MIG_CAUSE_PRECOPY, a, cap);
		lb = send_frames(src, t, DIRECT_PAGES, KF_MIG_CAUSE_PUSH, b, cap);
		TEST_ASSERT_EQ(la, lb);
		for (oa = ob = 0, frames = 0; oa < la; frames++) {
			struct kf_mig_msg ma, mb;
			size_t ua, ub;

			TEST_OK(kf_mig_parse_frame(a + oa, la - oa, &ua, &ma));
			TEST_OK(kf_mig_parse_frame(b + ob, lb - ob, &ub, &mb));
			TEST_ASSERT_EQ(ua, ub);
			TEST_ASSERT_EQ(ma.u.pages.h.cause, KF_MIG_CAUSE_PRECOPY);
			TEST_ASSERT_EQ(mb.u.pages.h.cause, KF_MIG_CAUSE_PUSH);
			TEST_ASSERT_EQ(ma.u.pages.h.gpa, mb.u.pages.h.gpa);
			TEST_ASSERT_EQ(ma.u.pages.h.count, mb.u.pages.h.count);
			TEST_ASSERT(!memcmp((const char *)ma.payload + ph,
					    (const char *)mb.payload + ph, ma.hdr.len - ph),
				    "frame %u (pass %u): entries, data or tags differ", frames, pass);
			TEST_OK(kf_mig_pages_verify(&mb));
			for (i = 0; i < mb.u.pages.h.count; i++, idx++) {
				TEST_OK(kf_mig_page_get(&mb, i, page));
				TEST_ASSERT(!memcmp(page, src + (size_t)idx * KF_PAGE_SIZE, KF_PAGE_SIZE),
					    "page %u's data", idx);
			}
			oa += ua;
			ob += ub;
		}
		TEST_ASSERT_EQ(frames, 2);
		TEST_ASSERT_EQ(idx, DIRECT_PAGES);
	}
	printf("  %u pages, %zu zero: frames sent from guest memory equal copied ones, with and without tags\n",
	       DIRECT_PAGES, KF_ARRAY_SIZE(zeros));
	free(src);
	free(a);
	free(b);
}

/* --- end to end --- */

static int read_tags(void *opaque, uint64_t gpa, uint64_t len, uint8_t *tags)
{
	__atomic_fetch_add((unsigned int *)opaque, 1, __ATOMIC_SEQ_CST);
	fill_tags(gpa, len, tags);
	return 0;
}

struct server {
	struct kf_page_server *srv;
	int ret;
};

static void *serve(void *arg)
{
	struct server *s = arg;

	s->ret = kf_page_server_accept(s->srv, 60000);
	if (!s->ret)
		s->ret = kf_page_server_serve(s->srv);
	return NULL;
}

static void end_to_end(void)
{
	struct kf_page_server_region reg = { .gpa = GPA_BASE,
					     .size = NR_PAGES * KF_PAGE_SIZE,
					     .hva = memory, .tags = true };
	unsigned int tag_reads = 0;
	struct kf_page_server_config pc = {
		.regions = &reg, .nr_regions = 1, .plain = true,
		.read_tags = read_tags, .opaque = &tag_reads, .mte = true,
	};
	struct kf_remote_config rc = { .connect_timeout_ms = 60000, .plain = true };
	uint8_t tags[TAGS_PER_PAGE], want[TAGS_PER_PAGE];
	static char page[KF_PAGE_SIZE];
	struct server s = { 0 };
	struct kf_pagesrc *src;
	struct kf_remote *r;
	char addr[64];
	pthread_t t;
	int lfd, port;
	unsigned int i;

	/* Refused configurations first. */
	reg.eager = true;
	lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(lfd >= 0, "listen: %s", kf_error());
	TEST_ASSERT_EQ(kf_page_server_create(&pc, lfd, &s.srv), -EINVAL);
	printf("  eager and tagged: %s\n", kf_error());
	reg.eager = false;
	pc.read_tags = NULL;
	TEST_ASSERT_EQ(kf_page_server_create(&pc, lfd, &s.srv), -EINVAL);
	pc.read_tags = read_tags;
	pc.mte = false;
	TEST_ASSERT_EQ(kf_page_server_create(&pc, lfd, &s.srv), -EINVAL);
	pc.mte = true;

	TEST_OK(kf_page_server_create(&pc, lfd, &s.srv));
	TEST_ASSERT(!pthread_create(&t, NULL, serve, &s), "thread");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	rc.addr = addr;
	TEST_OK(kf_remote_connect(&rc, &r));
	TEST_ASSERT(kf_remote_mte(r), "SETUP says the VM has MTE");
	TEST_ASSERT(kf_remote_region_tags(r, 0), "SETUP marks the region tagged");
	TEST_ASSERT_EQ(kf_remote_region(r, 0)->slot_flags, 0);	/* KVM's flags only */
	TEST_OK(kf_remote_wait_switchover(r, NULL));
	TEST_OK(kf_remote_pagesrc(r, 0, &src));
	TEST_ASSERT(src->flags & KF_PAGESRC_TAGS, "the page source carries tags");
	TEST_OK(kf_remote_start(r));
	TEST_ASSERT_EQ(kf_pagesrc_read(src, GPA_BASE, page, KF_PAGE_SIZE), -EINVAL);
	printf("  a read without tags: %s\n", kf_error());
	for (i = 0; i < NR_PAGES; i++) {
		uint64_t gpa = GPA_BASE + (uint64_t)i * KF_PAGE_SIZE;

		memset(tags, 0xff, sizeof(tags));
		TEST_OK(src->ops->read_tagged(src, gpa, page, tags, KF_PAGE_SIZE));
		TEST_ASSERT(!memcmp(page, memory + (uint64_t)i * KF_PAGE_SIZE, KF_PAGE_SIZE),
			    "page %u's data", i);
		fill_tags(gpa, KF_PAGE_SIZE, want);
		TEST_ASSERT(!memcmp(tags, want, sizeof(tags)), "page %u's tags", i);
	}
	TEST_OK(kf_remote_wait_complete(r));
	kf_pagesrc_destroy(src);
	kf_remote_destroy(r);
	pthread_join(t, NULL);
	TEST_OK(s.ret);
	TEST_ASSERT(tag_reads > 0, "the server read tags");
	kf_page_server_destroy(s.srv);
	close(lfd);
	printf("  end to end: %d pages, data and tags as the source has them\n", NR_PAGES);
}

/* --- tags read batch by batch --- */

#define RUN_PAGES (2 * KF_MIG_MAX_BATCH + 3)

struct tag_reader {
	unsigned int calls, fail_at;
	uint64_t next_gpa;
};

static int read_run_tags(void *opaque, uint64_t gpa, uint64_t len, uint8_t *tags)
{
	struct tag_reader *tr = opaque;

	TEST_ASSERT_EQ(gpa, tr->next_gpa);
	TEST_ASSERT(len && len <= KF_MIG_MAX_BATCH * KF_PAGE_SIZE && !(len % KF_PAGE_SIZE),
		    "a read of %llu bytes", (unsigned long long)len);
	if (++tr->calls == tr->fail_at)
		return -EIO;
	fill_tags(gpa, len, tags);
	tr->next_gpa = gpa + len;
	return 0;
}

struct drain {
	int fd;
	char *buf;
	size_t cap, len;
};

static void *drain_thread(void *arg)
{
	struct drain *d = arg;
	ssize_t n;

	while ((n = read(d->fd, d->buf + d->len, d->cap - d->len)) > 0)
		d->len += (size_t)n;
	return NULL;
}

/* Send the run with tags read by tr; the pages that came out, verified. */
static uint64_t send_run(const char *run, struct tag_reader *tr, int *ret)
{
	static uint8_t got[TAGS_PER_PAGE], want[TAGS_PER_PAGE];
	static char page[KF_PAGE_SIZE];
	struct drain d = { .cap = RUN_PAGES * (KF_PAGE_SIZE + 512) + (1 << 16) };
	struct kf_mig_conn *c;
	struct kf_mig_msg msg;
	uint64_t pages = 0;
	size_t off = 0, used;
	pthread_t t;
	uint32_t i;
	int sv[2];

	d.buf = malloc(d.cap);
	TEST_ASSERT(d.buf, "malloc");
	TEST_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM, 0, sv), "socketpair: %m");
	d.fd = sv[1];
	TEST_ASSERT(!pthread_create(&t, NULL, drain_thread, &d), "pthread_create");
	TEST_OK(kf_mig_conn_new(sv[0], &c));
	*ret = kf_mig_send_pages_read_tags(c, GPA_BASE, run, RUN_PAGES,
					   KF_MIG_CAUSE_PUSH, read_run_tags, tr);
	kf_mig_conn_free(c);
	pthread_join(t, NULL);
	close(sv[1]);

	while (off < d.len) {
		TEST_OK(kf_mig_parse_frame(d.buf + off, d.len - off, &used, &msg));
		TEST_ASSERT_EQ(msg.hdr.flags, KF_MIG_PAGES_TAGS);
		TEST_OK(kf_mig_pages_verify(&msg));
		for (i = 0; i < msg.u.pages.h.count; i++, pages++) {
			uint64_t gpa = GPA_BASE + pages * KF_PAGE_SIZE;

			TEST_OK(kf_mig_page_get(&msg, i, page));
			TEST_ASSERT(!memcmp(page, run + pages * KF_PAGE_SIZE, KF_PAGE_SIZE),
				    "page %llu's data", (unsigned long long)pages);
			TEST_OK(kf_mig_page_tags(&msg, i, got));
			fill_tags(gpa, KF_PAGE_SIZE, want);
			TEST_ASSERT(!memcmp(got, want, TAGS_PER_PAGE),
				    "page %llu's tags", (unsigned long long)pages);
		}
		off += used;
	}
	free(d.buf);
	return pages;
}

static void read_tags_batches(void)
{
	struct tag_reader tr = { .next_gpa = GPA_BASE };
	char *run = aligned_alloc(KF_PAGE_SIZE, RUN_PAGES * KF_PAGE_SIZE);
	uint64_t i;
	int ret;

	TEST_ASSERT(run, "aligned_alloc");
	for (i = 0; i < RUN_PAGES * KF_PAGE_SIZE; i++)
		run[i] = (char)(i * 31 + 5);

	TEST_ASSERT_EQ(send_run(run, &tr, &ret), RUN_PAGES);
	TEST_OK(ret);
	TEST_ASSERT_EQ(tr.calls, 3);

	tr = (struct tag_reader){ .next_gpa = GPA_BASE, .fail_at = 2 };
	TEST_ASSERT_EQ(send_run(run, &tr, &ret), KF_MIG_MAX_BATCH);
	TEST_ASSERT_EQ(ret, -EIO);
	printf("  a failed tags read after one batch: -EIO, one batch sent\n");
	free(run);
	printf("  %d pages with tags read in 3 batches\n", RUN_PAGES);
}

int main(void)
{
	unsigned int i;

	memory = aligned_alloc(KF_PAGE_SIZE, NR_PAGES * KF_PAGE_SIZE);
	TEST_ASSERT(memory, "aligned_alloc");
	for (i = 0; i < NR_PAGES * KF_PAGE_SIZE; i++)
		memory[i] = (char)(i * 13 + 1 + i / KF_PAGE_SIZE * 29);
	memset(memory + KF_PAGE_SIZE, 0, KF_PAGE_SIZE);	/* a zero page */
	wire();
	direct_and_copied_agree();
	read_tags_batches();
	end_to_end();
	free(memory);
	TEST_PASS("allocation tags on the migration stream: round trip, damage refused, batched tag reads, page server to remote source");
}
