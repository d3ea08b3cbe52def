// SPDX-License-Identifier: MIT
/*
 * The fault engine under concurrency: a failure is published only with
 * its whole message (a thread polling kf_engine_error() never sees a
 * torn or empty one), and a thread waiting for a page another thread is
 * installing sleeps instead of spinning.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kvmfault/vm_engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/test.h>
#include <kvmfault/uffd.h>

#define MB (1ULL << 20)
#define TRIALS 200

static const struct kf_memslot *add_anon(struct kf_vm *vm, uint64_t size)
{
	struct kf_region r = { .gpa = kf_vm_free_gpa(vm), .size = size,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	const struct kf_memslot *ms;

	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	return ms;
}

/* --- a source that fails, or that is slow --- */

struct test_src {
	struct kf_pagesrc src;
	bool fail;
	unsigned int delay_ms;
	sem_t *reading;		/* posted when a read starts, if set */
};

static int test_read(struct kf_pagesrc *src, uint64_t gpa, void *buf,
		     size_t len)
{
	struct test_src *t = (struct test_src *)src;

	if (t->reading)
		sem_post(t->reading);
	if (t->delay_ms)
		usleep(t->delay_ms * 1000);
	if (t->fail)
		return kf_fail(EIO, "the test source fails every read, with a message long enough that writing it takes a while: %0200llu",
			       (unsigned long long)gpa);
	memset(buf, 0x5a, len);
	return 0;
}

static void test_destroy(struct kf_pagesrc *src)
{
	(void)src;
}

static const struct kf_pagesrc_ops test_ops = {
	.read = test_read,
	.destroy = test_destroy,
};

static void test_src_init(struct test_src *t, const struct kf_memslot *ms)
{
	t->src = (struct kf_pagesrc){ .ops = &test_ops, .kind = "test",
				      .base = ms->gpa, .size = ms->size };
}

/* --- the first failure's message --- */

struct poller {
	struct kf_engine *e;
	int ready;
	char seen[512];
};

static void *poll_error(void *arg)
{
	struct poller *p = arg;
	const char *msg;

	__atomic_store_n(&p->ready, 1, __ATOMIC_SEQ_CST);
	while (!(msg = kf_engine_error(p->e)))
		;
	/* Copy at once: this is what a reader racing the failure gets. */
	strncpy(p->seen, msg, sizeof(p->seen) - 1);
	return NULL;
}

static void test_fail_publish(void)
{
	unsigned int i, torn = 0;
	struct test_src ts = { .fail = true };
	const struct kf_memslot *ms;
	struct kf_vm *vm;

	TEST_OK(kf_vm_create(&vm));
	ms = add_anon(vm, TRIALS * KF_PAGE_SIZE);
	test_src_init(&ts, ms);
	for (i = 0; i < TRIALS; i++) {
		struct poller p = { 0 };
		struct kf_engine *e;
		pthread_t t;

		TEST_OK(kf_engine_create(vm, NULL, &e));
		TEST_OK(kf_engine_add_region(e, ms->slot, &ts.src));
		p.e = e;
		TEST_ASSERT(!pthread_create(&t, NULL, poll_error, &p), "thread");
		while (!__atomic_load_n(&p.ready, __ATOMIC_SEQ_CST))
			;
		TEST_ASSERT_EQ(kf_engine_fetch(e, ms->gpa + i * KF_PAGE_SIZE,
					       KF_PAGE_SIZE), -EIO);
		pthread_join(t, NULL);
		if (strcmp(p.seen, kf_engine_error(e))) {
			if (!torn)
				printf("  trial %u: a reader saw \"%.60s\", the message is \"%.60s...\"\n",
				       i, p.seen, kf_engine_error(e));
			torn++;
		}
		kf_engine_destroy(e);
	}
	kf_vm_destroy(vm);
	TEST_ASSERT(!torn, "%u of %u readers saw a torn or empty message",
		    torn, TRIALS);
}

/* --- waiting for a page that is being installed --- */

struct fetcher {
	struct kf_engine *e;
	uint64_t gpa;
	int ret;
	uint64_t cpu_ns;
};

static void *fetch_page(void *arg)
{
	struct fetcher *f = arg;
	struct timespec ts;

	f->ret = kf_engine_fetch(f->e, f->gpa, KF_PAGE_SIZE);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	f->cpu_ns = ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	return NULL;
}

static void test_busy_wait_sleeps(void)
{
	struct test_src ts = { .delay_ms = 300 };
	struct fetcher a, b;
	sem_t reading;
	const struct kf_memslot *ms;
	struct kf_engine *e;
	struct kf_vm *vm;
	pthread_t ta, tb;

	TEST_OK(kf_vm_create(&vm));
	ms = add_anon(vm, 2 * MB);
	test_src_init(&ts, ms);
	TEST_ASSERT(!sem_init(&reading, 0, 0), "sem_init");
	ts.reading = &reading;
	TEST_OK(kf_engine_create(vm, NULL, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, &ts.src));
	a = (struct fetcher){ .e = e, .gpa = ms->gpa };
	b = a;
	/* a claims the page and reads for 300 ms; b starts only once a is
	 * reading, so b is the one that waits, however the threads run. */
	TEST_ASSERT(!pthread_create(&ta, NULL, fetch_page, &a), "thread");
	while (sem_wait(&reading) && errno == EINTR)
		;
	TEST_ASSERT(!pthread_create(&tb, NULL, fetch_page, &b), "thread");
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	TEST_OK(a.ret);
	TEST_OK(b.ret);
	TEST_ASSERT(kf_engine_page_installed(e, ms->gpa), "page not installed");
	TEST_ASSERT_EQ(*(volatile uint8_t *)ms->hva, 0x5a);
	printf("  the waiter used %llu us of CPU while the page took 300 ms\n",
	       (unsigned long long)b.cpu_ns / 1000);
	TEST_ASSERT(b.cpu_ns < 30000000ULL,
		    "the waiter burnt %llu ms of CPU: it spins instead of sleeping",
		    (unsigned long long)b.cpu_ns / 1000000);
	kf_engine_destroy(e);
	kf_vm_destroy(vm);
	sem_destroy(&reading);
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "fail_publish", test_fail_publish },
	{ "busy_wait_sleeps", test_busy_wait_sleeps },
};

/* With an argument, only the test of that name. */
int main(int argc, char **argv)
{
	unsigned int i;

	kf_test_require_kvm();
	if (!kf_uffd_features())
		kf_test_skip("userfaultfd is not available here");
	for (i = 0; i < KF_ARRAY_SIZE(tests); i++) {
		if (argc > 1 && strcmp(argv[1], tests[i].name))
			continue;
		printf("%s\n", tests[i].name);
		fflush(stdout);
		tests[i].fn();
	}
	TEST_PASS("failures are published whole; waiters for a busy page sleep");
}
