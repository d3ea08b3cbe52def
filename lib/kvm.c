// SPDX-License-Identifier: MIT
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/kvm.h>
#include <kvmfault/limits.h>

#include "internal.h"

int kf_kvm_open(void)
{
	int fd, version;

	fd = open(KF_KVM_DEV, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		if (err == ENOENT)
			return kf_fail(err, "%s does not exist: this machine has no KVM (load kvm_intel or kvm_amd, or run in the QEMU rig)",
				       KF_KVM_DEV);
		if (err == EACCES || err == EPERM)
			return kf_fail(err, "%s: permission denied: run as root or join the kvm group",
				       KF_KVM_DEV);
		return kf_fail_errno(err, "open %s", KF_KVM_DEV);
	}
	version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION) {
		close(fd);
		return kf_fail(EINVAL, "KVM API version %d, expected %d",
			       version, KVM_API_VERSION);
	}
	return fd;
}

long kf_check_cap(int fd, long cap)
{
	int ret = ioctl(fd, KVM_CHECK_EXTENSION, cap);

	return ret < 0 ? 0 : ret;
}

static pthread_once_t kf_sys_once = PTHREAD_ONCE_INIT;
static int kf_sys_fd = -1;
static char kf_sys_reason[256];

static void kf_sys_open(void)
{
	kf_sys_fd = kf_kvm_open();
	if (kf_sys_fd < 0)
		snprintf(kf_sys_reason, sizeof(kf_sys_reason), "%s",
			 kf_error());
}

bool kf_kvm_has_cap(long cap)
{
	pthread_once(&kf_sys_once, kf_sys_open);
	return kf_sys_fd >= 0 && kf_check_cap(kf_sys_fd, cap) > 0;
}

const char *kf_kvm_unavailable_reason(void)
{
	pthread_once(&kf_sys_once, kf_sys_open);
	return kf_sys_fd >= 0 ? NULL : kf_sys_reason;
}

uint64_t kf_host_page_size(void)
{
	return (uint64_t)getpagesize();
}
