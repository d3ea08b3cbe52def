// SPDX-License-Identifier: MIT
/*
 * The fault engine's life cycle around its VM and its sources: a source
 * pushing pages while the engine is destroyed (no call into a freed
 * engine: run under ASan), a successful create that leaves no message,
 * and memslots the engine serves that must not go away under it.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kvmfault/vm_engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/pagesrc_basic.h>
#include <kvmfault/remote.h>
#include <kvmfault/test.h>
#include <kvmfault/uffd.h>

#define MB (1ULL << 20)

static void expect_error(int ret, int err, const char *needle)
{
	TEST_ASSERT_EQ(ret, -err);
	TEST_ASSERT(strstr(kf_error(), needle), "'%s' missing from '%s'",
		    needle, kf_error());
}

static const struct kf_memslot *add_anon(struct kf_vm *vm, uint64_t gpa,
					 uint64_t size)
{
	struct kf_region r = { .gpa = gpa, .size = size,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	const struct kf_memslot *ms;

	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	return ms;
}

/* --- a remote source pushing while the engine goes --- */

struct server {
	struct kf_page_server *srv;
	int lfd;
};

static void *serve(void *arg)
{
	struct server *s = arg;

	if (!kf_page_server_accept(s->srv, 10000))
		kf_page_server_serve(s->srv);
	return NULL;
}

static void test_destroy_while_pushing(void)
{
	const uint64_t size = 32 * MB;
	struct kf_remote_config rc = { .connect_timeout_ms = 10000,
				       .recover_timeout_ms = 200 };
	struct kf_page_server_region reg = { .size = size };
	struct kf_page_server_config pc = {
		.regions = &reg, .nr_regions = 1, .recover_timeout_ms = 200,
	};
	struct kf_pagesrc *src;
	struct kf_engine *e;
	const struct kf_memslot *ms;
	struct kf_remote *r;
	struct server s;
	struct kf_vm *vm;
	uint64_t held, total, i;
	char addr[64];
	pthread_t t;
	char *img;
	int port;

	TEST_OK(kf_vm_create(&vm));
	ms = add_anon(vm, kf_vm_free_gpa(vm), size);
	img = malloc(size);
	TEST_ASSERT(img, "malloc");
	for (i = 0; i < size / 8; i++)
		((uint64_t *)img)[i] = i * 0x9e3779b97f4a7c15ULL;
	reg.gpa = ms->gpa;
	reg.hva = img;

	/* Over TLS: destroying a session mid-push must not hang either. */
	kf_test_psk_pair(&pc.tls, &rc.tls);
	s.lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(s.lfd >= 0, "listen: %s", kf_error());
	TEST_OK(kf_page_server_create(&pc, s.lfd, &s.srv));
	TEST_ASSERT(!pthread_create(&t, NULL, serve, &s), "server thread");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	rc.addr = addr;
	TEST_OK(kf_remote_connect(&rc, &r));
	TEST_OK(kf_remote_wait_switchover(r, NULL));
	TEST_OK(kf_remote_pagesrc(r, 0, &src));
	TEST_OK(kf_remote_start(r));

	TEST_OK(kf_engine_create(vm, NULL, &e));
	TEST_OK(kf_engine_add_region(e, ms->slot, src));
	TEST_OK(kf_engine_start(e));
	/* Destroy it in the middle of the push. */
	while (kf_engine_installed_pages(e) < 64)
		usleep(100);
	kf_engine_destroy(e);
	kf_remote_progress(r, &held, &total);
	TEST_ASSERT(held < total, "the push ended before the engine went (%llu of %llu pages): nothing tested",
		    (unsigned long long)held, (unsigned long long)total);
	/* The receivers go on: every page must land outside the engine. */
	for (i = 0; i < 200 && held < total; i++) {
		usleep(10000);
		kf_remote_progress(r, &held, &total);
	}
	printf("  engine destroyed during the push; %llu of %llu pages arrived after\n",
	       (unsigned long long)held, (unsigned long long)total);
	kf_pagesrc_destroy(src);
	kf_remote_destroy(r);
	pthread_join(t, NULL);
	kf_page_server_destroy(s.srv);
	kf_mig_tls_free(pc.tls);
	kf_mig_tls_free(rc.tls);
	close(s.lfd);
	kf_vm_destroy(vm);
	free(img);
}

/* --- messages --- */

static void *create_on_fresh_thread(void *arg)
{
	struct kf_vm *vm = arg;
	struct kf_engine *e;

	TEST_ASSERT(!kf_error()[0], "a fresh thread has a message");
	TEST_OK(kf_engine_create(vm, NULL, &e));
	TEST_ASSERT(!kf_error()[0], "a successful kf_engine_create left \"%s\"",
		    kf_error());
	kf_engine_destroy(e);
	return NULL;
}

static void test_no_message_on_success(void)
{
	struct kf_vm *vm;
	pthread_t t;

	TEST_OK(kf_vm_create(&vm));
	TEST_ASSERT(!pthread_create(&t, NULL, create_on_fresh_thread, vm),
		    "thread");
	pthread_join(t, NULL);
	kf_vm_destroy(vm);
}

/* --- memslots and the engine --- */

static void test_remove_served_region(void)
{
	struct kf_pagesrc *src;
	const struct kf_memslot *ms;
	struct kf_engine *e;
	struct kf_vm *vm;
	uint32_t slot;

	TEST_OK(kf_vm_create(&vm));
	ms = add_anon(vm, kf_vm_free_gpa(vm), 2 * MB);
	slot = ms->slot;
	TEST_OK(kf_pagesrc_zero_create(ms->gpa, ms->size, &src));
	TEST_OK(kf_engine_create(vm, NULL, &e));
	TEST_OK(kf_engine_add_region(e, slot, src));
	TEST_OK(kf_engine_start(e));
	expect_error(kf_vm_remove_region(vm, slot), EBUSY,
		     "served by a fault engine");
	TEST_ASSERT(kf_vm_find_slot(vm, kf_vm_free_gpa(vm)), "slot gone");
	kf_engine_destroy(e);
	TEST_OK(kf_vm_remove_region(vm, slot));
	kf_pagesrc_destroy(src);
	kf_vm_destroy(vm);
}

static const struct {
	const char *name;
	void (*fn)(void);
} tests[] = {
	{ "destroy_while_pushing", test_destroy_while_pushing },
	{ "no_message_on_success", test_no_message_on_success },
	{ "remove_served_region", test_remove_served_region },
};

/* With an argument, only the test of that name. */
int main(int argc, char **argv)
{
	unsigned int i;

	kf_test_require_kvm();
	if (!kf_uffd_features())
		kf_test_skip("userfaultfd is not available here");
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < KF_ARRAY_SIZE(tests); i++) {
		if (argc > 1 && strcmp(argv[1], tests[i].name))
			continue;
		printf("%s\n", tests[i].name);
		fflush(stdout);
		tests[i].fn();
	}
	TEST_PASS("engine life cycle: no use after free, no stale message, memslots kept consistent");
}
