// SPDX-License-Identifier: MIT
/*
 * Migration failures: a source that dies during post-copy (the destination
 * must say the source is gone and fail, not hang or crash), and hostile
 * streams from a fake source (garbage, a malformed SETUP, a page whose
 * checksum does not match): each is refused with a message, and no page of
 * them is installed.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kvmfault/engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/remote.h>
#include <kvmfault/test.h>

static pid_t source_pid;
static struct kf_mig_tls *tls_source, *tls_dest;

static int source_main(int lfd)
{
	struct kf_workload_cfg wc = { .nr_vcpus = 2, .pages_per_vcpu = 128 };
	struct kf_mig_source_config sc = {
		.listen_fd = lfd, .accept_timeout_ms = 60000,
		.recover_timeout_ms = 60000, .no_push = true, .quiet = true,
		.tls = tls_source,
	};
	struct kf_vcpu *vcpus[KF_MAX_VCPUS];
	struct kf_mig_report rep;
	struct kf_vm *vm;

	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_workload_setup(vm, &wc, KF_BACKING_ANON, 0, NULL, vcpus));
	TEST_OK(kf_workload_start(vcpus, 2));
	kf_mig_source_run(vm, vcpus, 2, &sc, &rep);
	return 0;
}

static void kill_source(void *opaque)
{
	(void)opaque;
	/* The guest runs here now, with pages still missing (no push). */
	kill(source_pid, SIGKILL);
}

static void test_source_gone(void)
{
	struct kf_mig_dest_config dc = {
		.backend = KF_BACKEND_AUTO, .connect_timeout_ms = 60000,
		.recover_timeout_ms = 500, .quiet = true,
		.on_resumed = kill_source, .tls = tls_dest,
	};
	struct kf_mig_report rep;
	char addr[64];
	int port, lfd, status, ret;

	lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(lfd >= 0, "listen: %s", kf_error());
	fflush(NULL);
	source_pid = fork();
	TEST_ASSERT(source_pid >= 0, "fork");
	if (!source_pid)
		_exit(source_main(lfd));
	close(lfd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	dc.addr = addr;
	ret = kf_mig_dest_run(&dc, &rep);
	waitpid(source_pid, &status, 0);
	TEST_ASSERT(ret < 0, "the migration succeeded without its source");
	TEST_ASSERT(!rep.ok, "report says ok");
	TEST_ASSERT(strstr(rep.error, "is gone"), "unclear error: %s", rep.error);
	printf("  source killed during post-copy: \"%s\"\n", rep.error);
}

/* ---------------------------------------------------- a hostile source */

enum hostile { H_GARBAGE, H_BAD_SETUP, H_BAD_PAGE, H_HUGE_LEN };

struct fake {
	int lfd;
	enum hostile kind;
};

static void *fake_source(void *arg)
{
	struct fake *f = arg;
	struct kf_mig_conn *c[2] = { 0 };
	unsigned int i;

	for (i = 0; i < 2; i++) {
		struct kf_mig_msg msg;
		struct kf_mig_hello h;
		int fd = kf_mig_accept(f->lfd, 20000);

		if (fd < 0 || kf_mig_conn_new(fd, &c[i]) || kf_mig_recv(c[i], &msg))
			goto out;
		h = msg.u.hello;
		kf_mig_send(c[i], KF_MIG_HELLO, &h, sizeof(h), NULL, 0, NULL, 0);
	}
	switch (f->kind) {
	case H_GARBAGE: {
		static const char junk[] = "GET / HTTP/1.0\r\n\r\nthis is no migration stream";

		if (write(kf_mig_conn_fd(c[0]), junk, sizeof(junk)) < 0)
			goto out;
		break;
	}
	case H_BAD_SETUP: {
		struct kf_mig_setup s = { .nr_vcpus = 1, .nr_regions = 9, .page_size = 4096 };

		kf_mig_send(c[0], KF_MIG_SETUP, &s, sizeof(s), NULL, 0, NULL, 0);
		break;
	}
	case H_BAD_PAGE: {
		struct {
			struct kf_mig_setup s;
			struct kf_mig_region r;
		} s = { { .nr_vcpus = 1, .nr_regions = 1, .page_size = 4096 },
			{ .gpa = 1ULL << 30, .size = 2 << 20 } };
		struct kf_mig_pages_hdr ph = { .gpa = 1ULL << 30, .count = 1 };
		struct kf_mig_page_entry e = { .hash = 12345, .kind = KF_MIG_PAGE_DATA };
		static char page[4096];

		memset(page, 0xab, sizeof(page));
		kf_mig_send(c[0], KF_MIG_SETUP, &s, sizeof(s), NULL, 0, NULL, 0);
		kf_mig_send(c[0], KF_MIG_PAGES, &ph, sizeof(ph), &e, sizeof(e),
			    page, sizeof(page));
		break;
	}
	case H_HUGE_LEN: {
		struct kf_mig_hdr h = { .magic = KF_MIG_MAGIC, .type = KF_MIG_SETUP,
					.len = 0xffffffffu };

		if (write(kf_mig_conn_fd(c[0]), &h, sizeof(h)) < 0)
			goto out;
		break;
	}
	}
	usleep(200000);
out:
	kf_mig_conn_free(c[0]);
	kf_mig_conn_free(c[1]);
	return NULL;
}

static void test_hostile(enum hostile kind, const char *expect)
{
	struct kf_mig_dest_config dc = {
		.backend = KF_BACKEND_AUTO, .connect_timeout_ms = 20000,
		.recover_timeout_ms = 500, .quiet = true,
		.plain = true,	/* the fake source speaks the bare protocol */
	};
	struct fake f = { .kind = kind };
	struct kf_mig_report rep;
	char addr[64];
	pthread_t t;
	int port, ret;

	f.lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(f.lfd >= 0, "listen: %s", kf_error());
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	dc.addr = addr;
	TEST_ASSERT(!pthread_create(&t, NULL, fake_source, &f), "thread");
	ret = kf_mig_dest_run(&dc, &rep);
	pthread_join(t, NULL);
	close(f.lfd);
	TEST_ASSERT(ret < 0, "a hostile stream (%d) was accepted", kind);
	TEST_ASSERT(strstr(rep.error, expect), "error \"%s\" lacks \"%s\"",
		    rep.error, expect);
	printf("  hostile stream %d refused: \"%s\"\n", kind, rep.error);
}

int main(void)
{
	kf_test_require_kvm();
	signal(SIGPIPE, SIG_IGN);
	test_hostile(H_GARBAGE, "bad magic");
	test_hostile(H_BAD_SETUP, "malformed SETUP");
	test_hostile(H_BAD_PAGE, "fails its checksum");
	test_hostile(H_HUGE_LEN, "exceeds the limit");
	kf_test_psk_pair(&tls_source, &tls_dest);
	test_source_gone();
	TEST_PASS("dead source and hostile streams are refused with clear errors");
}
