// SPDX-License-Identifier: MIT
/*
 * The host's page checksum is XXH3 since format version 2 of the migration
 * stream and of snapshot files.  Version 1 input (the old checksums) must
 * be refused with a message that names the version, never misread as a
 * corrupted page or accepted: a snapshot, a destination's HELLO and a
 * source's HELLO.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/remote.h>
#include <kvmfault/snapshot.h>
#include <kvmfault/test.h>

static void expect_error(int ret, int err, const char *needle)
{
	TEST_ASSERT_EQ(ret, -err);
	TEST_ASSERT(strstr(kf_error(), needle), "'%s' missing from '%s'",
		    needle, kf_error());
	printf("  %s\n", kf_error());
}

/* The stream and snapshot formats pin the page checksum. */
static void test_page_hash(void)
{
	static uint64_t page[KF_PAGE_SIZE / 8];
	uint64_t gpa = 0x12345000, i;

	for (i = 0; i < KF_ARRAY_SIZE(page); i++)
		page[i] = i * 0x9e3779b97f4a7c15ULL;
	TEST_ASSERT_EQ(kf_mig_page_hash(gpa, page),
		       XXH3_64bits_withSeed(page, KF_PAGE_SIZE,
					    gpa * 0x9e3779b97f4a7c15ULL));
	TEST_ASSERT(kf_mig_page_hash(gpa, page) != kf_mig_page_hash(gpa + KF_PAGE_SIZE, page),
		    "the checksum is not bound to the address");
}

/* --- a destination that speaks version 1 --- */

struct server {
	struct kf_page_server *srv;
	int lfd, ret;
};

static void *serve(void *arg)
{
	struct server *s = arg;

	s->ret = kf_page_server_accept(s->srv, 1000);
	return NULL;
}

static void test_old_destination(void)
{
	static char mem[KF_PAGE_SIZE];
	struct kf_page_server_region reg = { .gpa = 1ULL << 30,
					     .size = KF_PAGE_SIZE, .hva = mem };
	struct kf_page_server_config pc = { .regions = &reg, .nr_regions = 1,
					    .plain = true };
	struct kf_mig_hello h = { .version = 1, .channel = KF_MIG_CH_MAIN,
				  .session = 7, .image_id = kf_mig_image_id() };
	struct kf_mig_conn *c;
	struct kf_mig_msg msg;
	struct server s;
	char addr[64];
	pthread_t t;
	int port, fd;

	s.lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(s.lfd >= 0, "listen: %s", kf_error());
	TEST_OK(kf_page_server_create(&pc, s.lfd, &s.srv));
	TEST_ASSERT(!pthread_create(&t, NULL, serve, &s), "thread");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	fd = kf_mig_connect(addr, 2000);
	TEST_ASSERT(fd >= 0, "connect: %s", kf_error());
	TEST_OK(kf_mig_conn_new(fd, &c));
	TEST_OK(kf_mig_send(c, KF_MIG_HELLO, &h, sizeof(h), NULL, 0, NULL, 0));
	TEST_OK(kf_mig_recv(c, &msg));
	TEST_ASSERT(msg.hdr.type == KF_MIG_ERROR,
		    "a version 1 HELLO was answered with %s",
		    kf_mig_type_name(msg.hdr.type));
	TEST_ASSERT(strstr(msg.u.text, "protocol version 1"), "%s", msg.u.text);
	printf("  source refused: %s\n", msg.u.text);
	kf_mig_conn_free(c);
	pthread_join(t, NULL);
	TEST_ASSERT(s.ret < 0, "the page server accepted");
	kf_page_server_destroy(s.srv);
	close(s.lfd);
}

/* --- a source that speaks version 1 --- */

static void *old_source(void *arg)
{
	int lfd = *(int *)arg, i;

	/* Both channels: answer HELLO with version 1, then hang up. */
	for (i = 0; i < 2; i++) {
		struct kf_mig_conn *c;
		struct kf_mig_msg msg;
		int fd = kf_mig_accept(lfd, i ? 500 : 5000);

		if (fd < 0 || kf_mig_conn_new(fd, &c))
			return NULL;
		if (!kf_mig_recv(c, &msg) && msg.hdr.type == KF_MIG_HELLO) {
			msg.u.hello.version = 1;
			kf_mig_send(c, KF_MIG_HELLO, &msg.u.hello,
				    sizeof(msg.u.hello), NULL, 0, NULL, 0);
		}
		usleep(100000);
		kf_mig_conn_free(c);
	}
	return NULL;
}

static void test_old_source(void)
{
	struct kf_remote_config rc = { .connect_timeout_ms = 2000,
				       .recover_timeout_ms = 100,
				       .plain = true };
	struct kf_remote *r;
	char addr[64];
	pthread_t t;
	int port, lfd;

	lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(lfd >= 0, "listen: %s", kf_error());
	TEST_ASSERT(!pthread_create(&t, NULL, old_source, &lfd), "thread");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	rc.addr = addr;
	expect_error(kf_remote_connect(&rc, &r), EPROTO, "protocol version 1");
	pthread_join(t, NULL);
	close(lfd);
}

/* --- a version 1 snapshot --- */

static KF_GUEST void guest_idle(uint64_t arg)
{
	(void)arg;
}

static void test_old_snapshot(void)
{
	char path[] = "/tmp/kf-format-version-XXXXXX";
	struct kf_region r = { .size = 1 << 20, .backing = KF_BACKING_ANON,
			       .guest_memfd = -1 };
	struct kf_snap_header *h;
	struct kf_snapshot *snap;
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	uint64_t bytes;
	char *buf;
	int fd;

	if (kf_kvm_unavailable_reason()) {
		printf("  snapshot: not tested, %s\n", kf_kvm_unavailable_reason());
		return;
	}
	fd = mkstemp(path);
	TEST_ASSERT(fd >= 0, "mkstemp");
	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	memset(ms->hva, 0x5a, KF_PAGE_SIZE);
	TEST_OK(kf_vcpu_add(vm, 0, guest_idle, 0, &vcpu));
	TEST_OK(kf_snapshot_save(vm, &vcpu, 1, NULL, path, &bytes));
	close(fd);
	fd = open(path, O_RDONLY);	/* the save renamed a new file over it */
	buf = malloc(bytes);
	TEST_ASSERT(buf && pread(fd, buf, bytes, 0) == (ssize_t)bytes, "read back");
	TEST_OK(kf_snapshot_open_mem(buf, bytes, &snap));
	kf_snapshot_close(snap);
	h = (struct kf_snap_header *)buf;
	TEST_ASSERT_EQ(h->version, KF_SNAP_VERSION);	/* no tags: version 2 */
	/* Version 3 holds tags: one that claims it without them is refused. */
	h->version = KF_SNAP_VERSION_TAGS;
	h->header_hash = 0;
	h->header_hash = kf_host_hash(h, sizeof(*h), 0);
	expect_error(kf_snapshot_open_mem(buf, bytes, &snap), EINVAL,
		     "without allocation tags");
	h->version = 1;
	expect_error(kf_snapshot_open_mem(buf, bytes, &snap), EPROTO,
		     "version 1 is not supported");
	close(fd);
	unlink(path);
	free(buf);
	kf_vm_destroy(vm);
}

int main(void)
{
	test_page_hash();
	test_old_destination();
	test_old_source();
	test_old_snapshot();
	TEST_PASS("format version 2 (XXH3 checksums); version 1 refused with a clear message; snapshot version 3 only with tags");
}
