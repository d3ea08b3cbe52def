// SPDX-License-Identifier: MIT
/*
 * System calls the library used to ignore: setsockopt, getsockname,
 * mprotect (of a failed page) and thread pinning.  The test interposes
 * them to fail on demand; each failure must come back as -errno with a
 * message naming it.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kvmfault/vm_engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/remote.h>
#include <kvmfault/test.h>
#include <kvmfault/uffd.h>
#include <kvmfault/uffd_raw.h>

static int fail_sockopt = -1;	/* fail setsockopt of this option */
static bool fail_getsockname;
static void *fail_mprotect_at;

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	static int (*real)(int, int, int, const void *, socklen_t);

	if (!real)
		real = (int (*)(int, int, int, const void *, socklen_t))
		       dlsym(RTLD_NEXT, "setsockopt");
	if (name == fail_sockopt) {
		errno = ENOBUFS;
		return -1;
	}
	return real(fd, level, name, val, len);
}

int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	static int (*real)(int, struct sockaddr *, socklen_t *);

	if (!real)
		real = (int (*)(int, struct sockaddr *, socklen_t *))
		       dlsym(RTLD_NEXT, "getsockname");
	if (fail_getsockname) {
		errno = ENOBUFS;
		return -1;
	}
	return real(fd, sa, len);
}

int mprotect(void *addr, size_t len, int prot)
{
	static int (*real)(void *, size_t, int);

	if (!real)
		real = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "mprotect");
	if (addr == fail_mprotect_at) {
		errno = ENOMEM;
		return -1;
	}
	return real(addr, len, prot);
}

static void expect_error(int ret, int err, const char *needle)
{
	TEST_ASSERT_EQ(ret, -err);
	TEST_ASSERT(strstr(kf_error(), needle), "'%s' missing from '%s'",
		    needle, kf_error());
	printf("  %s\n", kf_error());
}

static void test_sockets(void)
{
	struct kf_remote_config rc = { .connect_timeout_ms = 2000,
				       .plain = true };
	struct kf_mig_conn *c;
	struct kf_remote *r;
	char addr[64];
	int port, lfd, sv[2];

	fail_sockopt = SO_REUSEADDR;
	expect_error(kf_mig_listen("127.0.0.1:0", &port), ENOBUFS, "listen on");
	fail_sockopt = -1;
	fail_getsockname = true;
	expect_error(kf_mig_listen("127.0.0.1:0", &port), ENOBUFS,
		     "port listening on");
	fail_getsockname = false;

	lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(lfd >= 0, "listen: %s", kf_error());
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	rc.addr = addr;
	fail_sockopt = TCP_NODELAY;
	expect_error(kf_remote_connect(&rc, &r), ENOBUFS, "TCP_NODELAY");
	fail_sockopt = SO_RCVTIMEO;
	expect_error(kf_remote_connect(&rc, &r), ENOBUFS, "SO_RCVTIMEO");
	fail_sockopt = -1;
	close(lfd);

	/* A socketpair is no TCP socket: TCP_NODELAY does not apply. */
	TEST_ASSERT(!socketpair(AF_UNIX, SOCK_STREAM, 0, sv), "socketpair");
	TEST_OK(kf_mig_conn_new(sv[0], &c));
	kf_mig_conn_free(c);
	close(sv[1]);
}

/* --- a failed page that cannot be made inaccessible --- */

static int failing_read(struct kf_pagesrc *src, uint64_t gpa, void *buf,
			size_t len)
{
	(void)src;
	(void)buf;
	(void)len;
	return kf_fail(EIO, "no page at 0x%llx", (unsigned long long)gpa);
}

static void no_destroy(struct kf_pagesrc *src)
{
	(void)src;
}

static const struct kf_pagesrc_ops failing_ops = {
	.read = failing_read,
	.destroy = no_destroy,
};

static const struct kf_memslot *add_anon(struct kf_vm *vm, uint64_t size)
{
	struct kf_region r = { .gpa = kf_vm_free_gpa(vm), .size = size,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	const struct kf_memslot *ms;

	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	return ms;
}

static void test_mprotect(void)
{
	struct kf_pagesrc src = { .ops = &failing_ops, .kind = "failing" };
	const struct kf_memslot *ms;
	struct kf_engine *e;
	struct kf_vm *vm;

	TEST_OK(kf_vm_create(&vm));
	ms = add_anon(vm, 2 << 20);
	src.base = ms->gpa;
	src.size = ms->size;
	TEST_OK(kf_engine_create(vm, NULL, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, &src));
	fail_mprotect_at = ms->hva;
	expect_error(kf_engine_fetch(e, ms->gpa, KF_PAGE_SIZE), ENOMEM,
		     "mprotect");
	fail_mprotect_at = NULL;
	TEST_ASSERT(strstr(kf_engine_error(e), "mprotect"),
		    "engine error lacks it: %s", kf_engine_error(e));
	kf_engine_destroy(e);
	kf_vm_destroy(vm);
}

/* --- pinning refused (as a cpuset cgroup without CPU 1 would) --- */

static bool fail_pinning;

int pthread_setaffinity_np(pthread_t t, size_t size, const cpu_set_t *set)
{
	static int (*real)(pthread_t, size_t, const cpu_set_t *);

	if (!real)
		real = (int (*)(pthread_t, size_t, const cpu_set_t *))
		       dlsym(RTLD_NEXT, "pthread_setaffinity_np");
	if (fail_pinning && !CPU_ISSET(0, set))
		return EINVAL;
	return real(t, size, set);
}

int pthread_attr_setaffinity_np(pthread_attr_t *attr, size_t size,
				const cpu_set_t *set)
{
	static int (*real)(pthread_attr_t *, size_t, const cpu_set_t *);

	if (!real)
		real = (int (*)(pthread_attr_t *, size_t, const cpu_set_t *))
		       dlsym(RTLD_NEXT, "pthread_attr_setaffinity_np");
	if (fail_pinning && !CPU_ISSET(0, set))
		return EINVAL;
	return real(attr, size, set);
}

static void test_pinning(void)
{
	struct kf_engine_config ec = { .nr_uffds = 2, .pin_handlers = true };
	struct kf_uffd_raw_config rc = { .size = 4 * KF_PAGE_SIZE,
					 .nr_uffds = 2, .pin = true };
	struct kf_pagesrc src = { .ops = &failing_ops, .kind = "failing" };
	struct kf_uffd_raw *raw;
	const struct kf_memslot *ms;
	struct kf_engine *e;
	struct kf_vm *vm;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
		printf("  pinning: not tested, one CPU online\n");
		return;
	}
	rc.hva = mmap(NULL, rc.size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	rc.image = rc.hva;
	fail_pinning = true;
	expect_error(kf_uffd_raw_start(&rc, &raw), EINVAL, "pinned to CPU 1");
	fail_pinning = false;
	munmap(rc.hva, rc.size);

	TEST_OK(kf_vm_create(&vm));
	ms = add_anon(vm, 2 << 20);
	src.base = ms->gpa;
	src.size = ms->size;
	TEST_OK(kf_engine_create(vm, &ec, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, &src));
	fail_pinning = true;
	expect_error(kf_engine_start(e), EINVAL, "pinned to CPU 1");
	fail_pinning = false;
	kf_engine_destroy(e);
	kf_vm_destroy(vm);
}

/* With an argument, only the test of that name. */
int main(int argc, char **argv)
{
	const char *only = argc > 1 ? argv[1] : NULL;

	if (!dlsym(RTLD_NEXT, "setsockopt"))
		kf_test_skip("a static program: the system calls cannot be interposed");

	if (!only || !strcmp(only, "sockets"))
		test_sockets();
	if (!kf_uffd_features())
		kf_test_skip("userfaultfd is not available here (the socket checks passed)");
	kf_test_require_kvm();
	if (!only || !strcmp(only, "pinning"))
		test_pinning();
	if (!only || !strcmp(only, "mprotect"))
		test_mprotect();
	TEST_PASS("failed setsockopt, getsockname, mprotect and pinning are reported");
}
