// SPDX-License-Identifier: MIT
/*
 * The fault engine under concurrency: a failure is published only with
 * its whole message (a thread polling kf_engine_error() never sees a
 * torn or empty one).
 */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include <kvmfault/engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/test.h>
#include <kvmfault/uffd.h>

#define MB (1ULL << 20)
#define TRIALS 200

static struct kf_memslot *add_anon(struct kf_vm *vm, uint64_t size)
{
	struct kf_region r = { .gpa = kf_vm_free_gpa(vm), .size = size,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	struct kf_memslot *ms;

	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	return ms;
}

/* --- a source that fails --- */

struct test_src {
	struct kf_pagesrc src;
	bool fail;
};

static int test_read(struct kf_pagesrc *src, uint64_t gpa, void *buf,
		     size_t len)
{
	struct test_src *t = (struct test_src *)src;

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
	struct kf_memslot *ms;
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

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "fail_publish", test_fail_publish },
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
	TEST_PASS("failures are published whole");
}
