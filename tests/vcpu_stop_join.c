// SPDX-License-Identifier: MIT
/*
 * kf_vcpu_stop() racing the join of a vCPU thread that finished: it must
 * never signal a thread that was joined (its pthread_t may be reused).
 * The test interposes pthread_join, pthread_tryjoin_np and pthread_kill:
 * the joins hold the window between a successful join and the library's
 * bookkeeping open, a stopper thread calls kf_vcpu_stop() inside it, and
 * pthread_kill counts signals aimed at a joined thread (and drops them).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

static pthread_t joined;
static int window_open, stops_in_window, bad_kills;

static void joined_now(pthread_t t)
{
	joined = t;
	__atomic_store_n(&window_open, 1, __ATOMIC_SEQ_CST);
	usleep(100000);
	__atomic_store_n(&window_open, 0, __ATOMIC_SEQ_CST);
}

int pthread_join(pthread_t t, void **ret)
{
	static int (*real)(pthread_t, void **);
	int r;

	if (!real)
		real = (int (*)(pthread_t, void **))dlsym(RTLD_NEXT, "pthread_join");
	r = real(t, ret);
	if (!r)
		joined_now(t);
	return r;
}

int pthread_tryjoin_np(pthread_t t, void **ret)
{
	static int (*real)(pthread_t, void **);
	int r;

	if (!real)
		real = (int (*)(pthread_t, void **))dlsym(RTLD_NEXT, "pthread_tryjoin_np");
	r = real(t, ret);
	if (!r)
		joined_now(t);
	return r;
}

int pthread_kill(pthread_t t, int sig)
{
	static int (*real)(pthread_t, int);

	if (!real)
		real = (int (*)(pthread_t, int))dlsym(RTLD_NEXT, "pthread_kill");
	if (joined && pthread_equal(t, joined)) {
		__atomic_fetch_add(&bad_kills, 1, __ATOMIC_SEQ_CST);
		return ESRCH;
	}
	return real(t, sig);
}

static KF_GUEST void guest_done(uint64_t arg)
{
	(void)arg;
}

static void *stopper(void *arg)
{
	struct kf_vcpu *vcpu = arg;

	while (!__atomic_load_n(&window_open, __ATOMIC_SEQ_CST))
		usleep(100);
	kf_vcpu_stop(vcpu);
	__atomic_fetch_add(&stops_in_window, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void check_stop_in_join_window(bool run_all)
{
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	pthread_t t;

	joined = 0;
	stops_in_window = bad_kills = 0;
	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_vcpu_add(vm, 0, guest_done, 0, &vcpu));
	TEST_ASSERT(!pthread_create(&t, NULL, stopper, vcpu), "thread");
	if (run_all) {
		TEST_OK(kf_vm_run_all(vm, NULL));
	} else {
		TEST_OK(kf_vcpu_start(vcpu, NULL));
		TEST_OK(kf_vcpu_join(vcpu));
	}
	pthread_join(t, NULL);
	TEST_ASSERT_EQ(stops_in_window, 1);
	TEST_ASSERT(!bad_kills, "%s: kf_vcpu_stop() signalled a joined thread",
		    run_all ? "kf_vm_run_all" : "kf_vcpu_join");
	kf_vm_destroy(vm);
}

int main(void)
{
	if (!dlsym(RTLD_NEXT, "pthread_kill"))
		kf_test_skip("a static program: pthread_join and pthread_kill cannot be interposed");
	kf_test_require_kvm();
	check_stop_in_join_window(true);
	check_stop_in_join_window(false);
	TEST_PASS("kf_vcpu_stop() never signals a joined vCPU thread");
}
