// SPDX-License-Identifier: MIT
/*
 * The migration channel serves all of guest memory, so it is TLS with a
 * pre-shared key unless plain TCP is chosen.  A page server (the source)
 * faces a hostile or broken client first, then the real destination: the
 * real transfer must complete with every page intact, and the hostile
 * client must get no page, only a refusal that the source reports.
 *
 *   wrong key, plaintext client against TLS, a client that connects and
 *   sends nothing, one that sends a frame header and stops, a flood of
 *   garbage connections, an oversized frame (plain TCP), malformed push
 *   streams; and a source that accepts late (it readies its guest first):
 *   the destination waits.  Each refusal comes before the real transfer,
 *   except with 20 clients that connect and stall, which the real
 *   destination must not wait for: their handshakes are given up.
 *
 * Plus a source that answers with a certificate instead of the key (the
 * destination must refuse it), and the key files: made 0600, refused when
 * others may read them or when malformed, never overwritten.  Then the
 * same channel with X.509 certificates: a client of another CA, one with
 * a pre-shared key and a plaintext one are refused, a source whose
 * certificate does not name the address is refused by the destination,
 * and bad credential files are refused with their reason.  No KVM needed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/remote.h>
#include <kvmfault/test.h>

#define NR_PAGES 64
#define GPA_BASE (1ULL << 32)

static char *memory;
static struct kf_mig_tls *tls_source, *tls_dest;
/* X.509: a destination of another CA; one that expects another name. */
static struct kf_mig_tls *other_ca_dest, *wrong_name_dest;

enum hostile {
	H_NONE,
	H_WRONG_KEY,
	H_PLAINTEXT,
	H_SILENT,
	H_PARTIAL,
	H_FLOOD,
	H_OVERSIZE,
	H_LATE_ACCEPT,
	H_TRICKLE,
	H_PUSH_FIRST,
	H_PUSH_RANGE,
	H_OTHER_CA,
	H_WRONG_NAME,
	H_STALL_MANY,
};

static const char *const hostile_name[] = {
	[H_NONE] = "no hostile client",
	[H_WRONG_KEY] = "a client with another key",
	[H_PLAINTEXT] = "a plaintext client",
	[H_SILENT] = "a client that sends nothing",
	[H_PARTIAL] = "a client that sends a frame header and stops",
	[H_FLOOD] = "a flood of garbage connections",
	[H_OVERSIZE] = "an oversized frame",
	[H_LATE_ACCEPT] = "no hostile client, a source that accepts late",
	[H_TRICKLE] = "a client that sends a valid HELLO a byte at a time",
	[H_PUSH_FIRST] = "a push stream without a main connection",
	[H_PUSH_RANGE] = "a push stream numbered past the stream count",
	[H_OTHER_CA] = "a client with a certificate of another CA",
	[H_WRONG_NAME] = "a client that wants the source's certificate to name another host",
	[H_STALL_MANY] = "20 clients that connect and stall, the real one beside them",
};

struct trickle {
	int fd;
	pthread_t thread;
};

/* A valid HELLO, 250 ms a byte: 12 s for all of it. */
static void *trickle_hello(void *arg)
{
	struct trickle *tr = arg;
	struct {
		struct kf_mig_hdr h;
		struct kf_mig_hello hello;
	} m = {
		{ .magic = KF_MIG_MAGIC, .type = KF_MIG_HELLO,
		  .len = sizeof(struct kf_mig_hello) },
		{ .version = KF_MIG_VERSION, .channel = KF_MIG_CH_MAIN,
		  .session = 99, .image_id = kf_mig_image_id() },
	};
	size_t i;

	for (i = 0; i < sizeof(m); i++) {
		if (send(tr->fd, (char *)&m + i, 1, MSG_NOSIGNAL) != 1)
			break;
		usleep(250000);
	}
	return NULL;
}

#define FLOOD 16
#define STALLERS 20	/* more than the page server's handshakes at once */

struct server {
	struct kf_page_server *srv;
	int lfd, ret;
	int delay_ms;		/* before the source accepts */
	unsigned int nr_refused;
	char refused[STALLERS + 4][512];
};

static void on_refused(void *opaque, const char *why)
{
	struct server *s = opaque;

	if (s->nr_refused < KF_ARRAY_SIZE(s->refused))
		snprintf(s->refused[s->nr_refused], sizeof(s->refused[0]), "%s", why);
	__atomic_add_fetch(&s->nr_refused, 1, __ATOMIC_SEQ_CST);
}

/* Until the source has refused n connections (60 s at most). */
static void wait_refused(struct server *s, unsigned int n)
{
	uint64_t t0 = kf_mig_now_ns();

	while (__atomic_load_n(&s->nr_refused, __ATOMIC_SEQ_CST) < n) {
		TEST_ASSERT(kf_mig_now_ns() - t0 < 60000000000ULL,
			    "the source refused %u of %u hostile connections in 60 s",
			    s->nr_refused, n);
		usleep(10000);
	}
}

static void *serve(void *arg)
{
	struct server *s = arg;

	usleep((useconds_t)s->delay_ms * 1000);
	s->ret = kf_page_server_accept(s->srv, 60000);
	if (!s->ret)
		s->ret = kf_page_server_serve(s->srv);
	return NULL;
}

static int connect_raw(const char *addr)
{
	int fd = kf_mig_connect(addr, 5000);

	TEST_ASSERT(fd >= 0, "connect: %s", kf_error());
	return fd;
}

/* Wait until the server closes fd; whatever came first must hold no page. */
static void expect_closed(int fd, bool tls)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[4096];
	size_t total = 0;
	ssize_t n;

	for (;;) {
		TEST_ASSERT(poll(&pfd, 1, 60000) == 1, "the source kept a hostile connection open for 60 s");
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		/* The only bytes a refused client may see: a TLS alert, or
		 * (plain) an ERROR message; nothing like a page. */
		total += (size_t)n;
		TEST_ASSERT(total < 1024, "a refused client received %zu bytes", total);
		if (!tls)
			TEST_ASSERT(n >= 8 && ((struct kf_mig_hdr *)buf)->type == KF_MIG_ERROR,
				    "a refused plain client got message type %u",
				    ((struct kf_mig_hdr *)buf)->type);
	}
	close(fd);
}

/* The hostile client; returns fds to check once the real transfer ran. */
static unsigned int hostile(enum hostile kind, const char *addr, int *fds)
{
	struct kf_remote_config rc = { .addr = addr, .connect_timeout_ms = 5000 };
	struct kf_mig_tls *other_source, *other_dest;
	struct kf_mig_hello h = { .version = KF_MIG_VERSION, .channel = KF_MIG_CH_MAIN,
				  .session = 1, .image_id = kf_mig_image_id() };
	struct kf_mig_hdr hdr = { .magic = KF_MIG_MAGIC, .type = KF_MIG_HELLO };
	/* A TLS handshake record header that promises 512 bytes. */
	static const unsigned char tls_hdr[5] = { 0x16, 0x03, 0x01, 0x02, 0x00 };
	struct kf_remote *r;
	struct kf_mig_conn *c;
	struct kf_mig_msg msg;
	char junk[4096];
	unsigned int i;
	int ret;

	switch (kind) {
	case H_NONE:
	case H_LATE_ACCEPT:
		return 0;
	case H_WRONG_KEY:
		kf_test_psk_pair(&other_source, &other_dest);
		rc.tls = other_dest;
		ret = kf_remote_connect(&rc, &r);
		TEST_ASSERT_EQ(ret, -EACCES);
		TEST_ASSERT(strstr(kf_error(), "TLS handshake failed"), "%s", kf_error());
		printf("  wrong key, the client sees: %s\n", kf_error());
		kf_mig_tls_free(other_source);
		kf_mig_tls_free(other_dest);
		return 0;
	case H_PLAINTEXT:
		fds[0] = connect_raw(addr);
		TEST_OK(kf_mig_conn_new(dup(fds[0]), &c));
		TEST_OK(kf_mig_send(c, KF_MIG_HELLO, &h, sizeof(h), NULL, 0, NULL, 0));
		ret = kf_mig_recv(c, &msg);
		TEST_ASSERT(ret < 0, "a plaintext client got an answer (%s)",
			    kf_mig_type_name(msg.hdr.type));
		kf_mig_conn_free(c);
		return 1;
	case H_SILENT:
		fds[0] = connect_raw(addr);
		return 1;
	case H_STALL_MANY:
		for (i = 0; i < STALLERS; i++)
			fds[i] = connect_raw(addr);
		return STALLERS;
	case H_PARTIAL:
		fds[0] = connect_raw(addr);
		if (tls_source) {
			TEST_ASSERT(write(fds[0], tls_hdr, sizeof(tls_hdr)) == sizeof(tls_hdr), "write");
		} else {
			hdr.len = sizeof(h);	/* and then no payload */
			TEST_ASSERT(write(fds[0], &hdr, sizeof(hdr)) == sizeof(hdr), "write");
		}
		return 1;
	case H_FLOOD:
		memset(junk, 0x16, sizeof(junk));
		for (i = 0; i < FLOOD; i++) {
			fds[i] = connect_raw(addr);
			TEST_ASSERT(write(fds[i], junk, sizeof(junk)) == sizeof(junk), "write");
		}
		return FLOOD;
	case H_TRICKLE: {
		static struct trickle tr;

		tr.fd = fds[0] = connect_raw(addr);
		TEST_ASSERT(!pthread_create(&tr.thread, NULL, trickle_hello, &tr), "thread");
		pthread_detach(tr.thread);
		return 1;
	}
	case H_OVERSIZE:
		fds[0] = connect_raw(addr);
		hdr.len = 0xffffffffU;
		TEST_ASSERT(write(fds[0], &hdr, sizeof(hdr)) == sizeof(hdr), "write");
		return 1;
	case H_OTHER_CA:
	case H_WRONG_NAME:
		rc.tls = kind == H_OTHER_CA ? other_ca_dest : wrong_name_dest;
		ret = kf_remote_connect(&rc, &r);
		TEST_ASSERT_EQ(ret, -EACCES);
		TEST_ASSERT(strstr(kf_error(), "TLS handshake failed"), "%s", kf_error());
		printf("  %s, the client sees: %s\n", hostile_name[kind], kf_error());
		return 0;
	case H_PUSH_FIRST:
	case H_PUSH_RANGE:
		h.channel = KF_MIG_CH_PUSH;
		h.push_streams = 1;
		h.push_index = kind == H_PUSH_RANGE ? 1 : 0;
		fds[0] = connect_raw(addr);
		TEST_OK(kf_mig_conn_new(dup(fds[0]), &c));
		TEST_OK(kf_mig_send(c, KF_MIG_HELLO, &h, sizeof(h), NULL, 0, NULL, 0));
		kf_mig_conn_free(c);
		return 1;
	}
	return 0;
}

/* The real destination: every page by demand, each checked. */
static void real_transfer(const char *addr)
{
	/* A short handshake minimum: a source that accepts later than it
	 * must still be waited for, within connect_timeout_ms. */
	struct kf_remote_config rc = { .addr = addr, .connect_timeout_ms = 60000,
				       .hello_timeout_ms = 500,
				       .recover_timeout_ms = 1000,
				       .tls = tls_dest, .plain = !tls_dest };
	static char page[KF_PAGE_SIZE];
	struct kf_pagesrc *src;
	struct kf_remote *r;
	unsigned int i;

	TEST_OK(kf_remote_connect(&rc, &r));
	TEST_OK(kf_remote_wait_switchover(r, NULL));
	TEST_OK(kf_remote_pagesrc(r, 0, &src));
	TEST_OK(kf_remote_start(r));
	for (i = 0; i < NR_PAGES; i++) {
		TEST_OK(kf_pagesrc_read(src, GPA_BASE + (uint64_t)i * KF_PAGE_SIZE,
					page, KF_PAGE_SIZE));
		TEST_ASSERT(!memcmp(page, memory + (uint64_t)i * KF_PAGE_SIZE, KF_PAGE_SIZE),
			    "page %u differs", i);
	}
	TEST_OK(kf_remote_wait_complete(r));
	kf_pagesrc_destroy(src);
	kf_remote_destroy(r);
}

static void run_case(enum hostile kind, bool tls, const char *expect)
{
	struct kf_page_server_region reg = { .gpa = GPA_BASE,
					     .size = NR_PAGES * KF_PAGE_SIZE,
					     .hva = memory };
	struct kf_page_server_config pc = {
		.regions = &reg, .nr_regions = 1, .no_push = true,
		.recover_timeout_ms = 1000, .hello_timeout_ms = 2000,
		.on_refused = on_refused,
	};
	struct kf_mig_tls *keep_source = tls_source, *keep_dest = tls_dest;
	struct server *s = calloc(1, sizeof(*s));
	int fds[STALLERS];
	unsigned int i, n;
	char addr[64];
	pthread_t t;
	int port;

	TEST_ASSERT(s, "calloc");
	if (!tls)
		tls_source = tls_dest = NULL;
	pc.tls = tls_source;
	pc.plain = !tls;
	pc.opaque = s;
	s->delay_ms = kind == H_LATE_ACCEPT ? 1500 : 0;
	/* Stallers that would time out only long after the real transfer. */
	if (kind == H_STALL_MANY)
		pc.hello_timeout_ms = 60000;
	s->lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(s->lfd >= 0, "listen: %s", kf_error());
	TEST_OK(kf_page_server_create(&pc, s->lfd, &s->srv));
	TEST_ASSERT(!pthread_create(&t, NULL, serve, s), "thread");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);

	n = hostile(kind, addr, fds);
	/* The refusals first, for their reasons: then the real transfer.
	 * Except the stallers, whom the real destination must not wait for. */
	if (kind != H_STALL_MANY)
		wait_refused(s, n);
	real_transfer(addr);
	for (i = 0; i < n; i++)
		expect_closed(fds[i], tls);
	pthread_join(t, NULL);
	TEST_ASSERT(!s->ret, "the source failed: %s", kf_error());
	/* Each hostile connection was refused and reported, nothing else. */
	TEST_ASSERT_EQ(kf_page_server_refused(s->srv), (uint64_t)s->nr_refused);
	TEST_ASSERT_EQ(s->nr_refused, kind == H_NONE || kind == H_LATE_ACCEPT ? 0 : n ? n : 1);
	for (i = 0; i < s->nr_refused && i < KF_ARRAY_SIZE(s->refused); i++)
		TEST_ASSERT(strstr(s->refused[i], expect),
			    "refusal %u \"%s\" lacks \"%s\"", i, s->refused[i], expect);
	printf("  %s, %s: real transfer of %d pages ok; %u refused%s%s\n",
	       tls ? "TLS" : "plain TCP", hostile_name[kind], NR_PAGES,
	       s->nr_refused, s->nr_refused ? ": " : "",
	       s->nr_refused ? s->refused[0] : "");
	kf_page_server_destroy(s->srv);
	close(s->lfd);
	free(s);
	tls_source = keep_source;
	tls_dest = keep_dest;
}

/* --- a source that shows a certificate instead of the key --- */

struct cert_source {
	int lfd;
	bool handshake_done;
};

static void *cert_source(void *arg)
{
	struct cert_source *cs = arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	SSL *ssl;
	int fd;

	TEST_ASSERT(ctx && key && cert, "OpenSSL objects");
	/* A self-signed certificate, the kind anybody can make. */
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
				   (const unsigned char *)"impostor", -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	TEST_ASSERT(X509_sign(cert, key, EVP_sha256()), "X509_sign");
	TEST_ASSERT(SSL_CTX_use_certificate(ctx, cert) == 1 &&
		    SSL_CTX_use_PrivateKey(ctx, key) == 1, "certificate");
	fd = kf_mig_accept(cs->lfd, 30000);
	TEST_ASSERT(fd >= 0, "accept: %s", kf_error());
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	/* The destination must abort this handshake. */
	cs->handshake_done = SSL_accept(ssl) == 1;
	SSL_free(ssl);
	close(fd);
	X509_free(cert);
	EVP_PKEY_free(key);
	SSL_CTX_free(ctx);
	return NULL;
}

static void test_certificate_source(void)
{
	struct kf_remote_config rc = { .connect_timeout_ms = 30000,
				       .recover_timeout_ms = 100, .tls = tls_dest };
	struct cert_source cs;
	struct kf_remote *r;
	char addr[64];
	pthread_t t;
	int port, ret;

	cs.lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(cs.lfd >= 0, "listen: %s", kf_error());
	TEST_ASSERT(!pthread_create(&t, NULL, cert_source, &cs), "thread");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	rc.addr = addr;
	ret = kf_remote_connect(&rc, &r);
	pthread_join(t, NULL);
	close(cs.lfd);
	TEST_ASSERT_EQ(ret, -EACCES);
	TEST_ASSERT(!cs.handshake_done, "the destination finished a handshake with a certificate");
	printf("  a source with a certificate and no key: \"%s\"\n", kf_error());
}

/* --- key files and configurations --- */

static void expect_error(int ret, int err, const char *needle)
{
	TEST_ASSERT_EQ(ret, -err);
	TEST_ASSERT(strstr(kf_error(), needle), "'%s' missing from '%s'",
		    needle, kf_error());
	printf("  %s\n", kf_error());
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	TEST_ASSERT(fd >= 0, "create %s", path);
	TEST_ASSERT(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write");
	TEST_ASSERT(!fchmod(fd, mode), "chmod");
	close(fd);
}

static void test_key_files(void)
{
	char dir[] = "/tmp/kf-channel-XXXXXX", path[128], bad[128];
	struct kf_page_server_region reg = { .gpa = 0, .size = KF_PAGE_SIZE,
					     .hva = memory };
	struct kf_page_server_config pc = { .regions = &reg, .nr_regions = 1 };
	struct kf_remote_config rc = { .addr = "127.0.0.1:1" };
	struct kf_page_server *srv;
	struct kf_mig_tls *tls;
	struct kf_remote *r;
	struct stat st;

	TEST_ASSERT(mkdtemp(dir), "mkdtemp");
	snprintf(path, sizeof(path), "%s/key.psk", dir);
	snprintf(bad, sizeof(bad), "%s/bad.psk", dir);
	TEST_OK(kf_mig_tls_psk_write(path, "host-a"));
	TEST_ASSERT(!stat(path, &st), "stat");
	TEST_ASSERT_EQ(st.st_mode & 0777, 0600);
	expect_error(kf_mig_tls_psk_write(path, "host-a"), EEXIST, "creating the key file");
	TEST_OK(kf_mig_tls_psk_file(path, true, &tls));
	kf_mig_tls_free(tls);
	TEST_ASSERT(!chmod(path, 0644), "chmod");
	expect_error(kf_mig_tls_psk_file(path, false, &tls), EPERM, "chmod 600");
	TEST_ASSERT(!tls, "credentials despite the error");
	write_file(bad, "no colon here\n", 0600);
	expect_error(kf_mig_tls_psk_file(bad, false, &tls), EINVAL, "identity:hexkey");
	write_file(bad, "id:0011zz33445566778899aabbccddeeff\n", 0600);
	expect_error(kf_mig_tls_psk_file(bad, false, &tls), EINVAL, "hex digits");
	write_file(bad, "id:00112233\n", 0600);
	expect_error(kf_mig_tls_psk_file(bad, false, &tls), EINVAL, "hex digits");
	expect_error(kf_mig_tls_psk_new(memory, 8, "id", true, &tls), EINVAL, "8 bytes");
	/* Neither credentials nor an explicit plain: refused, both sides. */
	expect_error(kf_page_server_create(&pc, -1, &srv), EINVAL, "no TLS credentials");
	expect_error(kf_remote_connect(&rc, &r), EINVAL, "no TLS credentials");
	kf_test_psk_pair(&pc.tls, &rc.tls);
	pc.plain = rc.plain = true;
	expect_error(kf_page_server_create(&pc, -1, &srv), EINVAL, "both chosen");
	expect_error(kf_remote_connect(&rc, &r), EINVAL, "both chosen");
	kf_mig_tls_free(pc.tls);
	kf_mig_tls_free(rc.tls);
	unlink(path);
	unlink(bad);
	rmdir(dir);
}

/* --- X.509 --- */

static void x509_dir(char *out, size_t len, const char *dir, const char *name,
		     const char *san)
{
	snprintf(out, len, "%s/%s", dir, name);
	TEST_ASSERT(!mkdir(out, 0700), "mkdir %s: %m", out);
	TEST_OK(kf_x509_gen_dir(out, san));
}

static void rm_x509_dir(const char *dir)
{
	static const char *const files[] = {
		"ca-cert.pem", "server-cert.pem", "server-key.pem",
		"client-cert.pem", "client-key.pem",
	};
	char path[256];
	unsigned int i;

	for (i = 0; i < KF_ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

static void x509_credential_errors(const char *a, const char *b)
{
	char key[256], other[256], saved[300];
	struct kf_mig_tls *tls = NULL;

	expect_error(kf_mig_tls_x509_dir(a, false, NULL, &tls), EINVAL,
		     "must name the source");
	expect_error(kf_mig_tls_x509_dir("/nonexistent-kf", false, "localhost", &tls),
		     ENOENT, "client-key.pem");
	expect_error(kf_x509_gen_dir(a, NULL), EEXIST, "not replacing credentials");
	snprintf(key, sizeof(key), "%s/client-key.pem", a);
	TEST_ASSERT(!chmod(key, 0644), "chmod");
	expect_error(kf_mig_tls_x509_dir(a, false, "localhost", &tls), EPERM, "chmod 600");
	TEST_ASSERT(!chmod(key, 0600), "chmod");
	/* Another CA's key beside this certificate. */
	snprintf(other, sizeof(other), "%s/client-key.pem", b);
	snprintf(saved, sizeof(saved), "%s.saved", key);
	TEST_ASSERT(!rename(key, saved), "rename");
	TEST_ASSERT(!link(other, key), "link");
	expect_error(kf_mig_tls_x509_dir(a, false, "localhost", &tls), EINVAL, "not the key of");
	TEST_ASSERT(!unlink(key) && !rename(saved, key), "restore the key");
	TEST_ASSERT(!tls, "credentials despite the errors");
}

static void *accept_briefly(void *arg)
{
	struct server *s = arg;

	s->ret = kf_page_server_accept(s->srv, 3000);
	return NULL;
}

/* A source that names the client it wants refuses the CA's others. */
static void x509_client_name(const char *dir)
{
	struct kf_page_server_region reg = { .gpa = GPA_BASE, .size = KF_PAGE_SIZE,
					     .hva = memory };
	struct kf_page_server_config pc = { .regions = &reg, .nr_regions = 1,
					    .on_refused = on_refused };
	struct kf_remote_config rc = { .connect_timeout_ms = 5000 };
	struct server *s = calloc(1, sizeof(*s));
	struct kf_remote *r;
	char addr[64];
	pthread_t t;
	int port, ret;

	TEST_ASSERT(s, "calloc");
	TEST_OK(kf_mig_tls_x509_dir(dir, true, "only-this-client.invalid", &pc.tls));
	TEST_OK(kf_mig_tls_x509_dir(dir, false, "127.0.0.1", &rc.tls));
	pc.opaque = s;
	s->lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(s->lfd >= 0, "listen: %s", kf_error());
	TEST_OK(kf_page_server_create(&pc, s->lfd, &s->srv));
	TEST_ASSERT(!pthread_create(&t, NULL, accept_briefly, s), "thread");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	rc.addr = addr;
	/* TLS 1.3: the client is done with its handshake before the source
	 * checks its certificate; it learns of the refusal at its HELLO. */
	ret = kf_remote_connect(&rc, &r);
	TEST_ASSERT(ret < 0, "a client the source does not want got through");
	printf("  a source that wants another client name; the client sees: %s\n", kf_error());
	pthread_join(t, NULL);
	TEST_ASSERT_EQ(s->ret, -ETIMEDOUT);
	TEST_ASSERT_EQ(s->nr_refused, 1);
	TEST_ASSERT(strstr(s->refused[0], "does not name only-this-client.invalid"), "%s",
		    s->refused[0]);
	printf("  the source: \"%s\"\n", s->refused[0]);
	kf_page_server_destroy(s->srv);
	close(s->lfd);
	kf_mig_tls_free(pc.tls);
	kf_mig_tls_free(rc.tls);
	free(s);
}

static void test_x509(void)
{
	char dir[] = "/tmp/kf-x509-XXXXXX", a[128], b[128], c[128];
	struct kf_mig_tls *keep_source = tls_source, *keep_dest = tls_dest;

	TEST_ASSERT(mkdtemp(dir), "mkdtemp");
	x509_dir(a, sizeof(a), dir, "a", NULL);
	x509_dir(b, sizeof(b), dir, "b", NULL);
	x509_dir(c, sizeof(c), dir, "c", "DNS:elsewhere.invalid");
	TEST_OK(kf_mig_tls_x509_dir(a, true, NULL, &tls_source));
	TEST_OK(kf_mig_tls_x509_dir(a, false, "127.0.0.1", &tls_dest));
	TEST_OK(kf_mig_tls_x509_dir(b, false, "127.0.0.1", &other_ca_dest));
	TEST_OK(kf_mig_tls_x509_dir(a, false, "elsewhere.invalid", &wrong_name_dest));
	printf("  X.509:\n");
	run_case(H_NONE, true, "");
	run_case(H_OTHER_CA, true, "TLS handshake failed");
	run_case(H_WRONG_NAME, true, "TLS handshake failed");
	run_case(H_WRONG_KEY, true, "TLS handshake failed");
	run_case(H_PLAINTEXT, true, "TLS handshake failed");
	kf_mig_tls_free(tls_source);
	kf_mig_tls_free(tls_dest);
	kf_mig_tls_free(wrong_name_dest);
	/* A source whose certificate names another host: the destination
	 * that checks for 127.0.0.1 refuses it; one that checks for the name
	 * on the certificate takes it. */
	TEST_OK(kf_mig_tls_x509_dir(c, true, NULL, &tls_source));
	TEST_OK(kf_mig_tls_x509_dir(c, false, "elsewhere.invalid", &tls_dest));
	TEST_OK(kf_mig_tls_x509_dir(c, false, "127.0.0.1", &wrong_name_dest));
	run_case(H_WRONG_NAME, true, "TLS handshake failed");
	kf_mig_tls_free(tls_source);
	kf_mig_tls_free(tls_dest);
	kf_mig_tls_free(wrong_name_dest);
	kf_mig_tls_free(other_ca_dest);
	x509_client_name(a);
	x509_credential_errors(a, b);
	tls_source = keep_source;
	tls_dest = keep_dest;
	rm_x509_dir(a);
	rm_x509_dir(b);
	rm_x509_dir(c);
	rmdir(dir);
}

int main(void)
{
	unsigned int i;

	signal(SIGPIPE, SIG_IGN);
	memory = aligned_alloc(KF_PAGE_SIZE, NR_PAGES * KF_PAGE_SIZE);
	TEST_ASSERT(memory, "aligned_alloc");
	for (i = 0; i < NR_PAGES * KF_PAGE_SIZE / 8; i++)
		((uint64_t *)memory)[i] = (i + 1) * 0x9e3779b97f4a7c15ULL;
	kf_test_psk_pair(&tls_source, &tls_dest);
	test_key_files();
	test_certificate_source();
	test_x509();
	run_case(H_NONE, true, "");
	run_case(H_WRONG_KEY, true, "TLS handshake failed");
	run_case(H_PLAINTEXT, true, "TLS handshake failed");
	run_case(H_SILENT, true, "no progress in the TLS handshake");
	run_case(H_PARTIAL, true, "no progress in the TLS handshake");
	run_case(H_FLOOD, true, "TLS handshake failed");
	run_case(H_LATE_ACCEPT, true, "");
	run_case(H_NONE, false, "");
	run_case(H_LATE_ACCEPT, false, "");
	run_case(H_SILENT, false, "did not send its message within");
	run_case(H_PARTIAL, false, "did not send its message within");
	run_case(H_OVERSIZE, false, "exceeds the limit");
	run_case(H_TRICKLE, false, "did not send its message within");
	run_case(H_PUSH_FIRST, false, "a push stream before the main connection");
	run_case(H_PUSH_RANGE, false, "push stream number out of range");
	run_case(H_STALL_MANY, true, "handshake given up");
	run_case(H_STALL_MANY, false, "handshake given up");
	kf_mig_tls_free(tls_source);
	kf_mig_tls_free(tls_dest);
	free(memory);
	TEST_PASS("the migration channel: TLS (pre-shared key or X.509) by default, hostile clients refused and reported, the real transfer intact");
}
