// SPDX-License-Identifier: MIT
/* userfaultfd helpers. */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/uffd.h>

#include "internal.h"

static int kf_uffd_syscall(void)
{
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return kf_fail_errno(errno, "userfaultfd (needs root or vm.unprivileged_userfaultfd=1)");
	return fd;
}

int kf_uffd_open(uint64_t need, uint64_t *have)
{
	struct uffdio_api api = { .api = UFFD_API };
	uint64_t offered = kf_uffd_features();
	int fd;

	if (have)
		*have = offered;
	if (need & ~offered)
		return kf_fail(EOPNOTSUPP, "userfaultfd lacks features 0x%llx (kernel offers 0x%llx)",
			       (unsigned long long)(need & ~offered),
			       (unsigned long long)offered);
	fd = kf_uffd_syscall();
	if (fd < 0)
		return fd;
	api.features = need;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int ret = kf_fail_errno(errno, "UFFDIO_API features 0x%llx",
					(unsigned long long)need);

		close(fd);
		return ret;
	}
	return fd;
}

int kf_start_thread(pthread_t *t, void *(*fn)(void *), void *arg, bool pin,
		    unsigned int i)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned int cpu = i % (ncpu > 0 ? ncpu : 1);
	pthread_attr_t attr;
	cpu_set_t set;
	int ret;

	ret = pthread_attr_init(&attr);
	if (ret)
		return kf_fail(ret, "pthread_attr_init: %s", strerror(ret));
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (pin)
		ret = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	if (!ret)
		ret = pthread_create(t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (ret && pin)
		return kf_fail(ret, "cannot start a thread pinned to CPU %u: %s",
			       cpu, strerror(ret));
	if (ret)
		return kf_fail(ret, "cannot start a thread: %s", strerror(ret));
	return 0;
}

static uint64_t kf_uffd_offered;
static pthread_once_t kf_uffd_once = PTHREAD_ONCE_INIT;

static void kf_uffd_probe(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = kf_uffd_syscall();

	if (fd < 0)
		return;
	if (!ioctl(fd, UFFDIO_API, &api))
		kf_uffd_offered = api.features;
	close(fd);
}

uint64_t kf_uffd_features(void)
{
	pthread_once(&kf_uffd_once, kf_uffd_probe);
	return kf_uffd_offered;
}

int kf_uffd_register(int uffd, void *addr, uint64_t len, uint64_t mode)
{
	struct uffdio_register r = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	if (ioctl(uffd, UFFDIO_REGISTER, &r))
		return kf_fail_errno(errno, "UFFDIO_REGISTER [%p, +0x%llx) mode 0x%llx",
				     addr, (unsigned long long)len,
				     (unsigned long long)mode);
	return 0;
}

int kf_uffd_unregister(int uffd, void *addr, uint64_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	if (ioctl(uffd, UFFDIO_UNREGISTER, &r))
		return kf_fail_errno(errno, "UFFDIO_UNREGISTER [%p, +0x%llx)",
				     addr, (unsigned long long)len);
	return 0;
}

int kf_uffd_copy(int uffd, void *dst, const void *src, uint64_t len)
{
	struct uffdio_copy c;

	for (;;) {
		c = (struct uffdio_copy){ .dst = (uintptr_t)dst,
					  .src = (uintptr_t)src, .len = len };
		if (!ioctl(uffd, UFFDIO_COPY, &c))
			return 0;
		if (errno == EEXIST)
			return -EEXIST;
		if (errno != EAGAIN)
			return kf_fail_errno(errno, "UFFDIO_COPY to %p", dst);
		/* EAGAIN: the layout changed under us; copy the rest. */
		if (c.copy > 0) {
			dst = (char *)dst + c.copy;
			src = (const char *)src + c.copy;
			len -= c.copy;
			if (!len)
				return 0;
		}
	}
}

int kf_uffd_zeropage(int uffd, void *dst, uint64_t len)
{
	struct uffdio_zeropage z;

	for (;;) {
		z = (struct uffdio_zeropage){
			.range = { .start = (uintptr_t)dst, .len = len } };
		if (!ioctl(uffd, UFFDIO_ZEROPAGE, &z))
			return 0;
		if (errno == EEXIST)
			return -EEXIST;
		if (errno != EAGAIN)
			return kf_fail_errno(errno, "UFFDIO_ZEROPAGE at %p", dst);
		if (z.zeropage > 0) {
			dst = (char *)dst + z.zeropage;
			len -= z.zeropage;
			if (!len)
				return 0;
		}
	}
}

int kf_uffd_continue(int uffd, void *dst, uint64_t len)
{
	struct uffdio_continue c;

	for (;;) {
		c = (struct uffdio_continue){
			.range = { .start = (uintptr_t)dst, .len = len } };
		if (!ioctl(uffd, UFFDIO_CONTINUE, &c))
			return 0;
		if (errno == EEXIST)
			return -EEXIST;
		if (errno != EAGAIN)
			return kf_fail_errno(errno, "UFFDIO_CONTINUE at %p", dst);
		if (c.mapped > 0) {
			dst = (char *)dst + c.mapped;
			len -= c.mapped;
			if (!len)
				return 0;
		}
	}
}

int kf_uffd_wake(int uffd, void *dst, uint64_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)dst, .len = len };

	if (ioctl(uffd, UFFDIO_WAKE, &r))
		return kf_fail_errno(errno, "UFFDIO_WAKE at %p", dst);
	return 0;
}
