// SPDX-License-Identifier: MIT
/*
 * Library failure paths that need no KVM: each must report the real errno
 * with a message, touch nothing it does not own, and give up on time.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/remote.h>
#include <kvmfault/test.h>
#include <kvmfault/uffd.h>
#include <kvmfault/uffd_raw.h>

/* ASan would abort on the huge allocation instead of failing it. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

static void expect_error(int ret, int err, const char *needle)
{
	TEST_ASSERT_EQ(ret, -err);
	TEST_ASSERT(strstr(kf_error(), needle), "'%s' missing from '%s'",
		    needle, kf_error());
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ULL + ts.tv_nsec / 1000000;
}

/* Out of descriptors: EMFILE, not ENOMEM, and stdin stays open. */
static void test_uffd_raw_emfile(void)
{
	struct kf_uffd_raw_config cfg = { .size = 16 * KF_PAGE_SIZE };
	struct rlimit old, lim;
	struct kf_uffd_raw *raw;
	int fds[64], n = 0, ret, i;

	cfg.hva = mmap(NULL, cfg.size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(cfg.hva != MAP_FAILED, "mmap");
	cfg.image = cfg.hva;
	cfg.nr_uffds = 4;
	if (fcntl(0, F_GETFD) < 0)
		TEST_ASSERT(open("/dev/null", O_RDONLY) == 0, "open stdin");
	TEST_ASSERT(!getrlimit(RLIMIT_NOFILE, &old), "getrlimit");
	lim = old;
	lim.rlim_cur = 32;
	TEST_ASSERT(!setrlimit(RLIMIT_NOFILE, &lim), "setrlimit");
	while (n < (int)KF_ARRAY_SIZE(fds) && (fds[n] = dup(1)) >= 0)
		n++;
	ret = kf_uffd_raw_start(&cfg, &raw);
	for (i = 0; i < n; i++)
		close(fds[i]);
	TEST_ASSERT(!setrlimit(RLIMIT_NOFILE, &old), "setrlimit");
	expect_error(ret, EMFILE, "Too many open files");
	TEST_ASSERT(!raw, "no loop on failure");
	TEST_ASSERT(fcntl(0, F_GETFD) >= 0, "the failure path closed fd 0");
	munmap(cfg.hva, cfg.size);
	printf("uffd_raw_start: %s\n", kf_error());
}

/* A page map too large to allocate is ENOMEM, not EINVAL. */
static void test_page_server_enomem(void)
{
	struct kf_page_server_region r = {
		.gpa = 0, .size = 1ULL << 56, .hva = &r,
	};
	struct kf_page_server_config cfg = {
		.regions = &r, .nr_regions = 1, .nr_vcpus = 1, .plain = true,
	};
	struct kf_page_server *srv;

	expect_error(kf_page_server_create(&cfg, -1, &srv), ENOMEM,
		     "out of memory");
	TEST_ASSERT(!srv, "no server on failure");
	r.size = 4097;
	expect_error(kf_page_server_create(&cfg, -1, &srv), EINVAL,
		     "not page aligned");
}

static void on_alarm(int sig)
{
	static const char msg[] = "FAIL: kf_mig_connect ignored its timeout\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

/*
 * A listener whose accept queue is full drops SYNs: connect() would wait
 * for the kernel's SYN retries (minutes).  The timeout must end it.
 */
static void test_connect_timeout(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);
	int lfd, fillers[4], i, ret;
	char addr[64];
	uint64_t t0, ms;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	TEST_ASSERT(lfd >= 0 && !bind(lfd, (void *)&sin, sizeof(sin)) &&
		    !listen(lfd, 0) && !getsockname(lfd, (void *)&sin, &sl),
		    "listen on loopback");
	for (i = 0; i < 4; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fillers[i], (void *)&sin, sizeof(sin));
	}
	usleep(100000);
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sin.sin_port));
	signal(SIGALRM, on_alarm);
	alarm(20);
	t0 = now_ms();
	ret = kf_mig_connect(addr, 300);
	ms = now_ms() - t0;
	alarm(0);
	if (ret >= 0)
		kf_test_skip("the loopback listener accepted past its backlog: cannot make a connect that hangs");
	expect_error(ret, ETIMEDOUT, "within 300 ms");
	TEST_ASSERT(ms >= 250 && ms < 5000, "gave up after %llu ms",
		    (unsigned long long)ms);
	for (i = 0; i < 4; i++)
		close(fillers[i]);
	close(lfd);
	printf("kf_mig_connect: %s after %llu ms\n", kf_error(),
	       (unsigned long long)ms);
}

/* --- a connect that succeeds after refusals leaves no message --- */

struct late_server {
	int port;
	struct kf_page_server *srv;
	int lfd;
};

static void *listen_late(void *arg)
{
	static char mem[KF_PAGE_SIZE];
	struct kf_page_server_region reg = { .gpa = 1ULL << 30,
					     .size = KF_PAGE_SIZE, .hva = mem };
	struct kf_page_server_config pc = { .regions = &reg, .nr_regions = 1,
					    .plain = true };
	struct late_server *ls = arg;
	char addr[64];
	int port;

	usleep(300000);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ls->port);
	ls->lfd = kf_mig_listen(addr, &port);
	if (ls->lfd < 0 || kf_page_server_create(&pc, ls->lfd, &ls->srv))
		return NULL;
	kf_page_server_accept(ls->srv, 5000);
	return NULL;
}

static void *connect_fresh(void *arg)
{
	struct kf_remote_config rc = { .addr = arg, .connect_timeout_ms = 5000,
				       .plain = true };
	struct kf_remote *r;

	TEST_OK(kf_remote_connect(&rc, &r));
	TEST_ASSERT(!kf_error()[0], "a successful kf_remote_connect left \"%s\"",
		    kf_error());
	kf_remote_destroy(r);
	return NULL;
}

static void test_no_message_after_retry(void)
{
	struct late_server ls = { .lfd = -1 };
	pthread_t srv, cli;
	char addr[64];
	int fd;

	/* A port nobody listens on for the first 300 ms. */
	fd = kf_mig_listen("127.0.0.1:0", &ls.port);
	TEST_ASSERT(fd >= 0, "listen: %s", kf_error());
	close(fd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", ls.port);
	TEST_ASSERT(!pthread_create(&srv, NULL, listen_late, &ls), "thread");
	TEST_ASSERT(!pthread_create(&cli, NULL, connect_fresh, addr), "thread");
	pthread_join(cli, NULL);
	pthread_join(srv, NULL);
	TEST_ASSERT(ls.srv, "the late server did not start: %s", kf_error());
	kf_page_server_destroy(ls.srv);
	close(ls.lfd);
}

/*
 * A peer that went away: sending to it is an error, never SIGPIPE (which
 * would kill a VMM that did not ignore it), over plain and TLS.
 */
struct tls_end {
	int fd;
	struct kf_mig_tls *tls;
	struct kf_mig_conn *conn;
};

static void *tls_accept(void *arg)
{
	struct tls_end *end = arg;
	int fd = kf_mig_accept(end->fd, 10000);

	TEST_ASSERT(fd >= 0, "accept: %s", kf_error());
	TEST_OK(kf_mig_conn_new_tls(fd, end->tls, 10000, &end->conn));
	return NULL;
}

static void send_until_refused(struct kf_mig_conn *c, const char *what)
{
	static char payload[65536];
	int i, ret = 0;

	/* The first sends may still fit the socket buffers. */
	for (i = 0; i < 1000 && !ret; i++)
		ret = kf_mig_send(c, KF_MIG_ERROR, payload, 1000, NULL, 0, NULL, 0) ?:
		      kf_mig_send(c, KF_MIG_STATS, payload, sizeof(struct kf_mig_stats),
				  NULL, 0, NULL, 0);
	TEST_ASSERT(ret == -ECONNRESET, "%s: sending to a closed peer: %d (%s)",
		    what, ret, kf_error());
	printf("  %s: \"%s\", no SIGPIPE\n", what, kf_error());
}

static void test_no_sigpipe(void)
{
	struct kf_mig_tls *tls_client;
	struct tls_end server;
	struct kf_mig_conn *c;
	char addr[64];
	pthread_t t;
	int sv[2], port, fd;

	signal(SIGPIPE, SIG_DFL);
	TEST_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM, 0, sv), "socketpair");
	TEST_OK(kf_mig_conn_new(sv[0], &c));
	close(sv[1]);
	send_until_refused(c, "plain");
	kf_mig_conn_free(c);

	kf_test_psk_pair(&server.tls, &tls_client);
	server.fd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(server.fd >= 0, "listen: %s", kf_error());
	TEST_ASSERT(!pthread_create(&t, NULL, tls_accept, &server), "thread");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	fd = kf_mig_connect(addr, 10000);
	TEST_ASSERT(fd >= 0, "connect: %s", kf_error());
	TEST_OK(kf_mig_conn_new_tls(fd, tls_client, 10000, &c));
	pthread_join(t, NULL);
	close(server.fd);
	kf_mig_conn_free(server.conn);
	send_until_refused(c, "TLS");
	kf_mig_conn_free(c);
	kf_mig_tls_free(server.tls);
	kf_mig_tls_free(tls_client);
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "no_sigpipe", test_no_sigpipe },
	{ "uffd_raw_emfile", test_uffd_raw_emfile },
	{ "page_server_enomem", test_page_server_enomem },
	{ "connect_timeout", test_connect_timeout },
	{ "no_message_after_retry", test_no_message_after_retry },
};

/* With an argument, only the test of that name. */
int main(int argc, char **argv)
{
	unsigned int i;

	for (i = 0; i < KF_ARRAY_SIZE(tests); i++)
		if (argc < 2 || !strcmp(argv[1], tests[i].name))
			tests[i].fn();
	TEST_PASS("library failure paths report the real error");
}
