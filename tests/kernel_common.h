/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the kernel_* tests, which check the kvmfault kernel
 * series (kernel/patches/) inside the QEMU rig.  On a kernel without the
 * series they skip.
 */
#ifndef KVMFAULT_KERNEL_COMMON_H
#define KVMFAULT_KERNEL_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

/*
 * The series promises annotated guest page faults (its annotation patch).
 * On x86 upstream's KVM_CAP_MEMORY_FAULT_INFO alone does not (upstream
 * annotates only some paths): a kernel has the promise if it advertises
 * KVM_CAP_MEMORY_FAULT_INFO and either the series' own
 * KVM_CAP_EXIT_ON_MISSING (its exit-on-missing patch) or a version below
 * 6.8, where 232 can only come from this series (check-series.sh boots such
 * kernels).  On arm64 the series annotates the faults of
 * KVM_MEM_EXIT_ON_MISSING slots only and advertises no 232 (the arm64
 * maintainers' ruling: the slot flag is the opt-in): KVM_CAP_EXIT_ON_MISSING
 * is the promise.
 */
static inline bool kt_kernel_below_6_8(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return false;
	return major < 6 || (major == 6 && minor < 8);
}

static inline void kt_require_annotations(void)
{
	kf_test_require_kvm();
#if defined(__aarch64__)
	if (!kf_kvm_has_cap(KVM_CAP_EXIT_ON_MISSING))
		kf_test_skip("kernel lacks KVM_CAP_EXIT_ON_MISSING (512), the only memory fault exits on arm64");
#else
	if (!kf_kvm_has_cap(KVM_CAP_MEMORY_FAULT_INFO))
		kf_test_skip("kernel lacks KVM_CAP_MEMORY_FAULT_INFO (232)");
	if (!kf_kvm_has_cap(KVM_CAP_EXIT_ON_MISSING) && !kt_kernel_below_6_8())
		kf_test_skip("KVM_CAP_MEMORY_FAULT_INFO without KVM_CAP_EXIT_ON_MISSING (512) on a kernel >= 6.8: upstream does not promise annotated page faults");
#endif
}

/*
 * The memslot flags under which the series annotates a host page KVM cannot
 * get (PROT_NONE, no VMA, userfaultfd in SIGBUS mode): any slot on x86,
 * KVM_MEM_EXIT_ON_MISSING slots on arm64.
 */
static inline uint32_t kt_annotated_slot_flags(void)
{
#if defined(__aarch64__)
	return KVM_MEM_EXIT_ON_MISSING;
#else
	return 0;
#endif
}

/*
 * The conversion tests' page contents: word i of page gpa at a stage (stage
 * 0: zero), written or checked through va, the page's private or shared
 * view.
 */
KF_GUEST_INLINE uint64_t kt_stage_word(uint64_t gpa, uint64_t stage, uint64_t i)
{
	return stage ? (gpa * 0x9e3779b97f4a7c15ULL) ^ (stage << 56) ^ (i + 1) : 0;
}

KF_GUEST_INLINE void kt_stage_fill(uint64_t va, uint64_t gpa, uint64_t stage)
{
	volatile uint64_t *p = (volatile uint64_t *)va;
	uint64_t i;

	for (i = 0; i < KF_PAGE_SIZE / 8; i++)
		p[i] = kt_stage_word(gpa, stage, i);
}

KF_GUEST_INLINE void kt_stage_check(uint64_t va, uint64_t gpa, uint64_t stage)
{
	volatile uint64_t *p = (volatile uint64_t *)va;
	uint64_t i;

	for (i = 0; i < KF_PAGE_SIZE / 8; i++)
		GUEST_ASSERT_EQ(p[i], kt_stage_word(gpa, stage, i));
}

/* Skip without software-protected VMs (KVM_X86_SW_PROTECTED_VM). */
static inline void kt_require_sw_protected_vm(void)
{
	int ret;

	kf_test_require_kvm();
	ret = kf_vm_type_supported(KF_VM_TYPE_SW_PROTECTED);
	TEST_ASSERT(ret >= 0, "KVM_CAP_VM_TYPES: %s", kf_error());
	if (!ret)
		kf_test_skip("no software-protected VMs here (KVM_CAP_VM_TYPES lacks KVM_X86_SW_PROTECTED_VM)");
}

static inline void kt_require_series(void)
{
	kt_require_annotations();
	if (!kf_kvm_has_cap(KVM_CAP_EXIT_ON_MISSING))
		kf_test_skip("kernel lacks KVM_CAP_EXIT_ON_MISSING (512): not a kvmfault-patched kernel, or the series without its exit-on-missing patch");
}

/* The contents the host installs in the page at gpa, qword i. */
static inline uint64_t kt_pattern(uint64_t gpa, uint64_t i)
{
	return (gpa * 0x9e3779b97f4a7c15ULL) ^ (i + 0x1234);
}

static inline void kt_fill_page(void *page, uint64_t gpa)
{
	uint64_t *q = page;
	uint64_t i;

	for (i = 0; i < KF_PAGE_SIZE / 8; i++)
		q[i] = kt_pattern(gpa, i);
}

/* A userfaultfd with the given features; skips if the kernel has none. */
static inline int kt_uffd_open(uint64_t features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		kf_test_skip("userfaultfd: %s", strerror(errno));
	if (ioctl(fd, UFFDIO_API, &api))
		kf_test_skip("UFFDIO_API features 0x%llx: %s",
			     (unsigned long long)features, strerror(errno));
	return fd;
}

static inline void kt_uffd_register(int uffd, void *addr, uint64_t len,
				    uint64_t mode)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	TEST_ASSERT(!ioctl(uffd, UFFDIO_REGISTER, &reg),
		    "UFFDIO_REGISTER mode 0x%llx: %s",
		    (unsigned long long)mode, strerror(errno));
}

static inline void kt_uffd_unregister(int uffd, void *addr, uint64_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	TEST_ASSERT(!ioctl(uffd, UFFDIO_UNREGISTER, &r), "UFFDIO_UNREGISTER: %s",
		    strerror(errno));
}

/* UFFDIO_COPY one page; 0, or -EEXIST if it was mapped meanwhile. */
static inline int kt_uffd_copy(int uffd, void *dst, const void *src)
{
	struct uffdio_copy c = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src,
		.len = KF_PAGE_SIZE,
	};

	if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
		return 0;
	TEST_ASSERT(errno == EEXIST, "UFFDIO_COPY at %p: %s", dst,
		    strerror(errno));
	return -EEXIST;
}

/* UFFDIO_CONTINUE one page; 0, or -EEXIST if it was mapped meanwhile. */
static inline int kt_uffd_continue(int uffd, void *dst)
{
	struct uffdio_continue c = {
		.range = { .start = (uintptr_t)dst, .len = KF_PAGE_SIZE },
	};

	if (ioctl(uffd, UFFDIO_CONTINUE, &c) == 0)
		return 0;
	TEST_ASSERT(errno == EEXIST, "UFFDIO_CONTINUE at %p: %s", dst,
		    strerror(errno));
	return -EEXIST;
}

/* Read one pending userfaultfd message without blocking; false if none. */
static inline bool kt_uffd_read(int uffd, struct uffd_msg *msg)
{
	ssize_t n = read(uffd, msg, sizeof(*msg));

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return false;
	TEST_ASSERT(n == sizeof(*msg), "read userfaultfd: %zd %s", n,
		    strerror(errno));
	return true;
}

/*
 * A userfaultfd server thread: resolves MISSING faults that reach the
 * userfaultfd (i.e. a thread blocked in it) with UFFDIO_COPY of the
 * pattern, and counts them per page.  The exit-on-missing tests use it to
 * catch KVM waiting in userfaultfd (it must not while the flag is set) and
 * to resolve such waits so that a failing test ends instead of hanging.
 */
#define KT_MAX_PAGES 1024

struct kt_uffd_server {
	int uffd;
	uint8_t *hva;		/* registered range = memslot */
	uint64_t gpa;
	uint64_t size;
	pthread_t thread;
	volatile int stop;
	unsigned int nr_events;
	unsigned int events[KT_MAX_PAGES];	/* per page */
};

static inline void *kt_uffd_server_fn(void *arg)
{
	struct kt_uffd_server *s = arg;
	uint8_t page[KF_PAGE_SIZE] __attribute__((aligned(4096)));

	while (!s->stop) {
		struct pollfd pfd = { .fd = s->uffd, .events = POLLIN };
		struct uffd_msg msg;
		uint64_t off;

		if (poll(&pfd, 1, 50) <= 0 || !kt_uffd_read(s->uffd, &msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		off = (msg.arg.pagefault.address - (uintptr_t)s->hva) &
		      ~(KF_PAGE_SIZE - 1);
		TEST_ASSERT(off < s->size, "userfault outside the slot");
		__atomic_add_fetch(&s->nr_events, 1, __ATOMIC_SEQ_CST);
		if (off / KF_PAGE_SIZE < KT_MAX_PAGES)
			__atomic_add_fetch(&s->events[off / KF_PAGE_SIZE], 1,
					   __ATOMIC_SEQ_CST);
		kt_fill_page(page, s->gpa + off);
		kt_uffd_copy(s->uffd, s->hva + off, page);
	}
	return NULL;
}

static inline void kt_uffd_server_start(struct kt_uffd_server *s, int uffd,
					void *hva, uint64_t gpa, uint64_t size)
{
	memset(s, 0, sizeof(*s));
	s->uffd = uffd;
	s->hva = hva;
	s->gpa = gpa;
	s->size = size;
	TEST_ASSERT(!pthread_create(&s->thread, NULL, kt_uffd_server_fn, s),
		    "pthread_create");
}

static inline void kt_uffd_server_stop(struct kt_uffd_server *s)
{
	s->stop = 1;
	pthread_join(s->thread, NULL);
}

/*
 * The one memory fault exit a case expects: the page at @gpa, 4 KiB, and the
 * access flag only where the VM asked for it (never break QEMU).
 */
static inline void kt_assert_one_fault(const struct kf_vm *vm,
				       unsigned int nr_faults,
				       const struct kf_memory_fault *f,
				       uint64_t gpa, uint64_t access_flag)
{
	TEST_ASSERT_EQ(nr_faults, 1);
	TEST_ASSERT_EQ(f->gpa, gpa);
	TEST_ASSERT_EQ(f->size, KF_PAGE_SIZE);
	TEST_ASSERT_EQ(f->raw_flags, kf_vm_fault_access(vm) ? access_flag : 0);
}

#endif
