// SPDX-License-Identifier: MIT
/*
 * Post-copy live migration end to end: a source process (forked) runs the
 * workload and migrates it over loopback to this process, which resumes
 * with memory missing, pages it in through the fault engine (exit backend
 * when the kernel has KVM_CAP_EXIT_ON_MISSING, else userfaultfd) and has
 * the guest verify every page.  Then the same with one pre-copy round and
 * with a connection drop in the middle of post-copy (recovery), each with
 * the push on the main connection or on push streams.  Where KVM has MTE
 * (arm64) the same again with an MTE guest, which tags every page it
 * writes and checks the tags too: they travel with the pages.
 *
 * KF_MIGRATE_PAGES / KF_MIGRATE_VCPUS set the size (default 2 x 256).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kvmfault/engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/test.h>

static unsigned int nr_vcpus = 2;
static uint64_t pages = 256;
static struct kf_mig_tls *tls_source, *tls_dest;

static int source_main(int lfd, unsigned int rounds, uint64_t drop_after,
		       bool tls, bool mte)
{
	struct kf_workload_cfg wc = { .nr_vcpus = nr_vcpus, .pages_per_vcpu = pages };
	struct kf_mig_source_config sc = {
		.listen_fd = lfd, .precopy_rounds = rounds,
		.accept_timeout_ms = 60000, .recover_timeout_ms = 20000,
		.drop_after_pages = drop_after, .quiet = true,
		.tls = tls ? tls_source : NULL, .plain = !tls,
	};
	struct kf_vcpu *vcpus[KF_MAX_VCPUS];
	struct kf_mig_report rep;
	struct kf_vm *vm;
	int ret;

	TEST_OK(kf_vm_create(&vm));
	if (mte)
		TEST_OK(kf_vm_enable_mte(vm));
	TEST_OK(kf_workload_setup(vm, &wc, KF_BACKING_ANON,
				  rounds ? KVM_MEM_LOG_DIRTY_PAGES : 0, NULL, vcpus));
	TEST_OK(kf_workload_start(vcpus, nr_vcpus));
	usleep(20000);
	ret = kf_mig_source_run(vm, vcpus, nr_vcpus, &sc, &rep);
	if (ret)
		fprintf(stderr, "source: %s\n", rep.error);
	kf_vm_destroy(vm);
	return ret ? 1 : 0;
}

static void migrate(unsigned int rounds, uint64_t drop_after, bool tls,
		    unsigned int streams, bool mte)
{
	struct kf_mig_dest_config dc = {
		.tls = tls ? tls_dest : NULL, .plain = !tls,
		.push_streams = streams,
		.backend = KF_BACKEND_AUTO, .connect_timeout_ms = 60000,
		.recover_timeout_ms = 20000, .run_ms = 20,
		.run_after_switch_ms = 50, .quiet = true,
	};
	struct kf_mig_report rep;
	char addr[64];
	int port, lfd, status, ret;
	pid_t pid;

	lfd = kf_mig_listen("127.0.0.1:0", &port);
	TEST_ASSERT(lfd >= 0, "listen: %s", kf_error());
	fflush(NULL);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	if (!pid)
		_exit(source_main(lfd, rounds, drop_after, tls, mte));
	close(lfd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	dc.addr = addr;
	ret = kf_mig_dest_run(&dc, &rep);
	if (ret)
		kill(pid, SIGKILL);
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
	TEST_ASSERT(!ret, "destination: %s", rep.error);
	TEST_ASSERT(rep.ok, "report not ok");
	TEST_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "source exited with status 0x%x", status);
	TEST_ASSERT_EQ(rep.verified_pages, nr_vcpus * pages);
	/* On a kernel with exit-on-missing (the QEMU rig) AUTO must use it. */
	if (kf_kvm_has_cap(KVM_CAP_EXIT_ON_MISSING))
		TEST_ASSERT(!strcmp(rep.backend, "exit"), "backend %s", rep.backend);
	TEST_ASSERT_EQ(rep.precopy_rounds, rounds);
	TEST_ASSERT_EQ(rep.tls, tls);
	/* Pre-copy carries the system slot whole, and data only with rounds;
	 * the blackout only the system slot's pages written since. */
	TEST_ASSERT(rep.system_pages > 0, "no system slot");
	if (!rounds)
		TEST_ASSERT_EQ(rep.pages_by_cause[KF_MIG_CAUSE_PRECOPY], rep.system_pages);
	else
		TEST_ASSERT(rep.pages_by_cause[KF_MIG_CAUSE_PRECOPY] > rep.system_pages,
			    "no pre-copy data pages");
	TEST_ASSERT(rep.pages_by_cause[KF_MIG_CAUSE_STOPCOPY] < rep.system_pages,
		    "the whole system slot went in the blackout");
	if (drop_after)
		TEST_ASSERT(rep.reconnects >= 1, "no reconnect after the drop");
	/* With push streams the push uses them only, main never; their
	 * receivers run below the demand path's priority (main's never). */
	TEST_ASSERT_EQ(rep.push_stream_pages,
		       streams ? rep.pages_by_cause[KF_MIG_CAUSE_PUSH] : 0);
	if (streams)
		TEST_ASSERT(rep.push_threads_lowered >= streams,
			    "%llu of %u push stream receivers at a lower priority",
			    (unsigned long long)rep.push_threads_lowered, streams);
	else
		TEST_ASSERT_EQ(rep.push_threads_lowered, 0);
	/* Switch-off while the guest runs: the regions left userfaultfd, no
	 * userfault came after, and the guest kept writing (plain faults)
	 * before it verified every page. */
	TEST_ASSERT(rep.switched, "the destination never switched to normal faulting");
	TEST_ASSERT(rep.uffd_unregistered, "a region is still registered with userfaultfd after the switch");
	TEST_ASSERT_EQ(rep.uffd_faults_after_switch, 0);
	TEST_ASSERT(rep.run_after_switch_ns >= 50000000ULL,
		    "the guest ran only %llu ns after the switch",
		    (unsigned long long)rep.run_after_switch_ns);
	TEST_ASSERT(rep.iterations_after_switch > 0,
		    "the guest made no progress after the switch");
	printf("  %s%s, rounds %u drop %llu, %u push streams: backend %s, demand %llu push %llu precopy %llu, reconnects %llu, normal faulting at %.1f ms (+%llu guest passes after): ok\n",
	       mte ? "MTE guest, " : "", tls ? "TLS" : "plain TCP", rounds,
	       (unsigned long long)drop_after, streams, rep.backend,
	       (unsigned long long)rep.pages_by_cause[KF_MIG_CAUSE_DEMAND],
	       (unsigned long long)rep.pages_by_cause[KF_MIG_CAUSE_PUSH],
	       (unsigned long long)rep.pages_by_cause[KF_MIG_CAUSE_PRECOPY],
	       (unsigned long long)rep.reconnects, rep.switch_ns / 1e6,
	       (unsigned long long)rep.iterations_after_switch);
	fflush(stdout);
}

/* Whether this KVM gives guests MTE (else the MTE runs are left out). */
static bool have_mte(void)
{
	struct kf_vm *vm;
	int ret;

	TEST_OK(kf_vm_create(&vm));
	ret = kf_vm_enable_mte(vm);
	kf_vm_destroy(vm);
	if (ret)
		printf("  MTE guest: not run, %s\n", kf_error());
	return !ret;
}

int main(void)
{
	const char *env;
	bool mte;

	kf_test_require_kvm();
	signal(SIGPIPE, SIG_IGN);
	if ((env = getenv("KF_MIGRATE_PAGES")))
		pages = strtoull(env, NULL, 0);
	if ((env = getenv("KF_MIGRATE_VCPUS")))
		nr_vcpus = strtoul(env, NULL, 0);
	kf_test_psk_pair(&tls_source, &tls_dest);
	migrate(0, 0, true, 0, false);
	migrate(0, 0, false, KF_MIG_MAX_PUSH_STREAMS, false);
	migrate(1, 0, false, 2, false);
	migrate(0, 64, true, 0, false);	/* drop after 64 post-copy pages, recover */
	migrate(0, 64, true, 3, false);	/* the same, every push stream reconnects */
	mte = have_mte();
	if (mte) {
		migrate(0, 0, true, 2, true);
		migrate(1, 0, false, 0, true);
		migrate(0, 64, true, 2, true);
	}
	kf_mig_tls_free(tls_source);
	kf_mig_tls_free(tls_dest);
	TEST_PASS("post-copy migration verified in the guest: pure (TLS), with pre-copy (plain TCP), with recovery (TLS), push on main and on push streams%s",
		  mte ? "; an MTE guest's tags with its pages" : "");
}
