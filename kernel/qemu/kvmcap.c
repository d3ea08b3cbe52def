// SPDX-License-Identifier: GPL-2.0
/*
 * kvmcap CAP: print KVM_CHECK_EXTENSION(CAP) of /dev/kvm (0 when the
 * kernel lacks it); exit status 1 when /dev/kvm cannot be asked.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

int main(int argc, char **argv)
{
	int fd, ret;

	if (argc != 2) {
		fprintf(stderr, "usage: kvmcap CAP\n");
		return 2;
	}
	fd = open("/dev/kvm", O_RDWR);
	if (fd < 0) {
		perror("/dev/kvm");
		return 1;
	}
	ret = ioctl(fd, KVM_CHECK_EXTENSION, atoi(argv[1]));
	printf("%d\n", ret < 0 ? 0 : ret);
	return 0;
}
