// SPDX-License-Identifier: MIT
/*
 * Annotated -EFAULTs of the guest page-fault path (kvmfault kernel series,
 * its annotation patch).  For a guest read, write and instruction fetch of a page whose
 * host memory is missing (PROT_NONE, no VMA at all, userfaultfd in SIGBUS
 * mode), KVM_RUN must fail with EFAULT and KVM_EXIT_MEMORY_FAULT holding the
 * page's gpa, size 4096 and exactly the access flag; once the page is
 * mapped the guest completes and sees its contents.  An access crossing
 * two pages reports the page that faulted.  Nothing else is annotated:
 * KVM_RUN failing with EINTR (immediate_exit, a signal) or another errno
 * (EIO from a child process) leaves exit_reason alone, except that a
 * memory-fault exit never outlives the KVM_RUN after it (it is reset to
 * KVM_EXIT_UNKNOWN), and a write to a read-only memslot is still an MMIO
 * exit.  The library enables KVM_CAP_MEMORY_FAULT_ACCESS where the kernel
 * has it: then every exit carries exactly one access flag, else none.
 * On arm64 the series annotates KVM_MEM_EXIT_ON_MISSING slots only: the
 * cases above run on such a slot there, and a PROT_NONE page of an ordinary
 * slot must give a bare EFAULT, with the access capability enabled too.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kernel_common.h"

#define REGION_SIZE (2ULL << 20)
#define PAGE_OFF 0x5000ULL		/* the page that goes missing */
#define IN_PAGE 0x7f8ULL		/* where in it the guest accesses */
#define WRITE_VALUE 0x600dc0ffee0dd00dULL

enum how { PROTNONE, NOVMA, UFFD_SIGBUS, NR_HOW };
enum access { READ, WRITE, EXEC, NR_ACCESS };

static const char *const how_name[] = { "PROT_NONE", "no VMA", "uffd SIGBUS" };
static const char *const access_name[] = { "read", "write", "exec" };
static const uint64_t access_flag[] = {
	KVM_MEMORY_EXIT_FLAG_READ, KVM_MEMORY_EXIT_FLAG_WRITE,
	KVM_MEMORY_EXIT_FLAG_EXEC,
};

static KF_GUEST void guest_read(uint64_t addr)
{
	GUEST_SYNC_ARGS(1, *(volatile uint64_t *)addr, 0, 0);
}

static KF_GUEST void guest_write(uint64_t addr)
{
	*(volatile uint64_t *)addr = WRITE_VALUE;
}

static KF_GUEST void guest_exec(uint64_t addr)
{
	uint64_t v = ((uint64_t (*)(void))addr)();

	GUEST_SYNC_ARGS(1, v, 0, 0);
}

/* What the fault handler saw and how it resolves the fault. */
struct ctx {
	enum how how;
	uint8_t *page_hva;	/* the missing page */
	uint8_t contents[KF_PAGE_SIZE];
	int uffd;
	unsigned int nr_faults;
	struct kf_memory_fault fault;
	uint64_t synced;
	bool synced_seen;
};

static int resolve(struct ctx *c)
{
	void *p;

	switch (c->how) {
	case PROTNONE:
		TEST_ASSERT(!mprotect(c->page_hva, KF_PAGE_SIZE,
				      PROT_READ | PROT_WRITE), "mprotect");
		break;
	case NOVMA:
		p = mmap(c->page_hva, KF_PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		TEST_ASSERT(p == c->page_hva, "mmap fixed: %s", strerror(errno));
		memcpy(c->page_hva, c->contents, KF_PAGE_SIZE);
		break;
	case UFFD_SIGBUS:
		kt_uffd_copy(c->uffd, c->page_hva, c->contents);
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

static int on_fault(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	struct ctx *c = kf_vcpu_opaque(vcpu);

	c->nr_faults++;
	c->fault = *f;
	return resolve(c);
}

static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	struct ctx *c = kf_vcpu_opaque(vcpu);

	c->synced = uc->args[1];
	c->synced_seen = true;
	return 0;
}

/* Make the page at hva missing in the way "how" says. */
static void make_missing(struct ctx *c, const struct kf_memslot *ms)
{
	switch (c->how) {
	case PROTNONE:
		memcpy(c->page_hva, c->contents, KF_PAGE_SIZE);
		TEST_ASSERT(!mprotect(c->page_hva, KF_PAGE_SIZE, PROT_NONE),
			    "mprotect");
		break;
	case NOVMA:
		TEST_ASSERT(!munmap(c->page_hva, KF_PAGE_SIZE), "munmap");
		break;
	case UFFD_SIGBUS:
		c->uffd = kt_uffd_open(UFFD_FEATURE_SIGBUS);
		kt_uffd_register(c->uffd, ms->hva, ms->size,
				 UFFDIO_REGISTER_MODE_MISSING);
		break;
	default:
		break;
	}
}

static void test_one(enum how how, enum access acc)
{
	static void (*const guest[])(uint64_t) = {
		guest_read, guest_write, guest_exec,
	};
	struct kf_vcpu_ops ops = { .memory_fault = on_fault, .sync = on_sync };
	struct kf_region r = {
		.size = REGION_SIZE, .backing = KF_BACKING_ANON,
		.flags = kt_annotated_slot_flags(),
	};
	static struct ctx c;
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	uint64_t gpa_page;

	memset(&c, 0, sizeof(c));
	c.how = how;
	c.uffd = -1;
	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	gpa_page = r.gpa + PAGE_OFF;
	c.page_hva = (uint8_t *)ms->hva + PAGE_OFF;

	kt_fill_page(c.contents, gpa_page);
	if (acc == EXEC) {
		kt_return_imm(&c.contents[IN_PAGE], kt_pattern(gpa_page, 99));
	}
	make_missing(&c, ms);

	TEST_OK(kf_vcpu_add(vm, 0, guest[acc], gpa_page + IN_PAGE, &vcpu));
	kf_vcpu_set_opaque(vcpu, &c);
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "%s %s: %s", how_name[how],
			     access_name[acc], kf_vcpu_errmsg(vcpu));

	printf("%-11s %-5s: exit 39 gpa 0x%llx size 0x%llx flags 0x%llx\n",
	       how_name[how], access_name[acc],
	       (unsigned long long)c.fault.gpa, (unsigned long long)c.fault.size,
	       (unsigned long long)c.fault.raw_flags);
	kt_assert_one_fault(vm, c.nr_faults, &c.fault, gpa_page, access_flag[acc]);
	TEST_ASSERT_EQ(c.fault.poison, 0);
	switch (acc) {
	case READ:
		TEST_ASSERT(c.synced_seen, "guest did not report");
		TEST_ASSERT_EQ(c.synced, kt_pattern(gpa_page, IN_PAGE / 8));
		break;
	case WRITE:
		TEST_ASSERT_EQ(*(uint64_t *)(c.page_hva + IN_PAGE), WRITE_VALUE);
		break;
	case EXEC:
		TEST_ASSERT(c.synced_seen, "guest did not report");
		TEST_ASSERT_EQ(c.synced, kt_pattern(gpa_page, 99));
		break;
	default:
		break;
	}
	kf_vm_destroy(vm);
	if (c.uffd >= 0)
		close(c.uffd);
}

static KF_GUEST void guest_write_across(uint64_t addr)
{
	*(volatile uint64_t *)addr = WRITE_VALUE;
}

/* An 8-byte write across two pages, one of them PROT_NONE. */
static void test_crossing(bool second_missing)
{
	struct kf_vcpu_ops ops = { .memory_fault = on_fault };
	struct kf_region r = {
		.size = REGION_SIZE, .backing = KF_BACKING_ANON,
		.flags = kt_annotated_slot_flags(),
	};
	static struct ctx c;
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	uint64_t boundary, missing;
	uint64_t v;

	memset(&c, 0, sizeof(c));
	c.how = PROTNONE;
	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	boundary = r.gpa + 0x9000;
	missing = second_missing ? boundary : boundary - KF_PAGE_SIZE;
	c.page_hva = (uint8_t *)ms->hva + (missing - r.gpa);
	memset((uint8_t *)ms->hva + 0x8000, 0, 2 * KF_PAGE_SIZE);
	TEST_ASSERT(!mprotect(c.page_hva, KF_PAGE_SIZE, PROT_NONE), "mprotect");

	TEST_OK(kf_vcpu_add(vm, 0, guest_write_across, boundary - 4, &vcpu));
	kf_vcpu_set_opaque(vcpu, &c);
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "crossing: %s", kf_vcpu_errmsg(vcpu));
	printf("crossing, %s page missing: gpa 0x%llx flags 0x%llx\n",
	       second_missing ? "second" : "first",
	       (unsigned long long)c.fault.gpa,
	       (unsigned long long)c.fault.raw_flags);
	kt_assert_one_fault(vm, c.nr_faults, &c.fault, missing,
			    KVM_MEMORY_EXIT_FLAG_WRITE);
	memcpy(&v, (uint8_t *)ms->hva + (boundary - r.gpa) - 4, 8);
	TEST_ASSERT_EQ(v, WRITE_VALUE);
	kf_vm_destroy(vm);
}

/* The raw KVM_RUN result: -errno, or the exit reason. */
static int raw_run(struct kf_vcpu *vcpu)
{
	return ioctl(kf_vcpu_fd(vcpu), KVM_RUN, 0) ? -errno :
						     (int)kf_vcpu_kvm_run(vcpu)->exit_reason;
}

static KF_GUEST void guest_spin(uint64_t arg)
{
	(void)arg;
	for (;;)
		kt_guest_relax();
}

static void on_signal(int sig)
{
	(void)sig;
}

struct kicker {
	pthread_t target;
	volatile int done;
};

/*
 * A signal that arrives before the target enters KVM_RUN only runs the
 * handler, and the spinning guest would run on forever: kick again until
 * the target has seen one inside KVM_RUN.
 */
static void *kick(void *arg)
{
	struct kicker *k = arg;

	while (!k->done) {
		usleep(100 * 1000);
		pthread_kill(k->target, SIGUSR1);
	}
	return NULL;
}

#define STALE 0x5a5a5a5aU

/*
 * A VM whose region (memslot flags slot_flags) starts with a PROT_NONE page,
 * at *gpa, and its vCPU, which writes into that page.
 */
static struct kf_vcpu *protnone_vm(uint32_t slot_flags, struct kf_vm **vm,
				   uint64_t *gpa)
{
	struct kf_region r = {
		.size = REGION_SIZE, .backing = KF_BACKING_ANON,
		.flags = slot_flags,
	};
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;

	TEST_OK(kf_vm_create(vm));
	r.gpa = kf_vm_free_gpa(*vm);
	TEST_OK(kf_vm_add_region(*vm, &r, &ms));
	TEST_ASSERT(!mprotect(ms->hva, KF_PAGE_SIZE, PROT_NONE), "mprotect");
	TEST_OK(kf_vcpu_add(*vm, 0, guest_write, r.gpa + 8, &vcpu));
	*gpa = r.gpa;
	return vcpu;
}

static void test_not_annotated(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct kf_vcpu *vcpu;
	struct kvm_run *run;
	struct kf_vm *vm;
	struct kicker kicker = { 0 };
	pthread_t t;
	int ret, status;
	uint64_t gpa;
	pid_t pid;

	vcpu = protnone_vm(kt_annotated_slot_flags(), &vm, &gpa);
	run = kf_vcpu_kvm_run(vcpu);

	/* immediate_exit: EINTR, exit_reason untouched. */
	run->exit_reason = STALE;
	run->immediate_exit = 1;
	TEST_ASSERT_EQ(raw_run(vcpu), -EINTR);
	TEST_ASSERT_EQ(run->exit_reason, STALE);

	/* A real annotated fault ... */
	run->immediate_exit = 0;
	TEST_ASSERT_EQ(raw_run(vcpu), -EFAULT);
	TEST_ASSERT_EQ(run->exit_reason, KVM_EXIT_MEMORY_FAULT);
	TEST_ASSERT_EQ(kf_run_memory_fault(run)->gpa, gpa);
	/* ... is gone at the next KVM_RUN, even one that only returns EINTR
	 * for immediate_exit: a stale exit 39 would make a later bare EFAULT
	 * look like a fault with the old gpa. */
	run->immediate_exit = 1;
	TEST_ASSERT_EQ(raw_run(vcpu), -EINTR);
	TEST_ASSERT_EQ(run->exit_reason, KVM_EXIT_UNKNOWN);
	run->immediate_exit = 0;

	/* Another errno: KVM_RUN from another process fails with EIO. */
	run->exit_reason = STALE;
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		ret = raw_run(vcpu);
		_exit(ret == -EIO && run->exit_reason == STALE ? 0 : 1);
	}
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
	TEST_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "KVM_RUN in a child: expected EIO and exit_reason untouched");
	TEST_ASSERT_EQ(run->exit_reason, STALE);
	kf_vm_destroy(vm);

	/* A signal while the guest runs: EINTR with KVM_EXIT_INTR. */
	TEST_ASSERT(!sigaction(SIGUSR1, &sa, NULL), "sigaction");
	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_vcpu_add(vm, 0, guest_spin, 0, &vcpu));
	run = kf_vcpu_kvm_run(vcpu);
	run->exit_reason = STALE;
	kicker.target = pthread_self();
	TEST_ASSERT(!pthread_create(&t, NULL, kick, &kicker), "pthread_create");
	do {
		ret = raw_run(vcpu);
	} while (ret >= 0 && ret == KVM_EXIT_IO);	/* no ucalls expected */
	kicker.done = 1;
	pthread_join(t, NULL);
	TEST_ASSERT_EQ(ret, -EINTR);
	TEST_ASSERT_EQ(run->exit_reason, KVM_EXIT_INTR);
	kf_vm_destroy(vm);
}

/*
 * arm64: no annotation outside KVM_MEM_EXIT_ON_MISSING slots, even though the
 * library enabled KVM_CAP_MEMORY_FAULT_ACCESS.
 */
static void test_ordinary_slot_bare(void)
{
	struct kf_vcpu *vcpu;
	struct kvm_run *run;
	struct kf_vm *vm;
	uint64_t gpa;

	vcpu = protnone_vm(0, &vm, &gpa);
	run = kf_vcpu_kvm_run(vcpu);
	TEST_ASSERT_EQ(raw_run(vcpu), -EFAULT);
	TEST_ASSERT(run->exit_reason != KVM_EXIT_MEMORY_FAULT,
		    "KVM_EXIT_MEMORY_FAULT (gpa 0x%llx) on a slot without KVM_MEM_EXIT_ON_MISSING",
		    (unsigned long long)kf_run_memory_fault(run)->gpa);
	kf_vm_destroy(vm);
}

static KF_GUEST void guest_write_ro(uint64_t addr)
{
	*(volatile uint64_t *)addr = 1;
}

static int on_exit_mmio(struct kf_vcpu *vcpu, const struct kf_exit *exit)
{
	(void)vcpu;
	TEST_ASSERT_EQ(exit->kind, KF_EXIT_REASON);
	TEST_ASSERT_EQ(exit->reason, KVM_EXIT_MMIO);
	return 1;
}

/* Unchanged 6.1 behaviour: a write to a read-only slot is MMIO. */
static void test_readonly_slot(void)
{
	struct kf_vcpu_ops ops = { .exit = on_exit_mmio };
	struct kf_region r = {
		.size = REGION_SIZE, .backing = KF_BACKING_ANON,
		.flags = KVM_MEM_READONLY,
	};
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;

	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, NULL));
	TEST_OK(kf_vcpu_add(vm, 0, guest_write_ro, r.gpa + 0x10, &vcpu));
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "read-only slot: %s",
			     kf_vcpu_errmsg(vcpu));
	TEST_ASSERT_EQ(kf_test_counters(vcpu).nr_memory_faults, 0);
	kf_vm_destroy(vm);
}

int main(void)
{
	int how, acc;

	kt_require_annotations();
	for (how = 0; how < NR_HOW; how++)
		for (acc = 0; acc < NR_ACCESS; acc++)
			test_one(how, acc);
	test_crossing(true);
	test_crossing(false);
	test_not_annotated();
	test_readonly_slot();
	if (kt_annotated_slot_flags()) {
		test_ordinary_slot_bare();
		TEST_PASS("read/write/exec faults annotated on exit-on-missing slots (3 ways to be missing), crossing, no annotation for EINTR/EIO/MMIO nor on an ordinary slot");
	}
	TEST_PASS("read/write/exec faults annotated (3 ways to be missing), crossing, no annotation for EINTR/EIO/MMIO");
}
