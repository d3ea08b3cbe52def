// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <kvmfault/error.h>

static __thread char kf_errbuf[512];

const char *kf_error(void)
{
	return kf_errbuf;
}

static int kf_vfail(int err, bool with_strerror, const char *fmt, va_list ap)
{
	int n = vsnprintf(kf_errbuf, sizeof(kf_errbuf), fmt, ap);

	if (with_strerror && n >= 0 && (size_t)n < sizeof(kf_errbuf))
		snprintf(kf_errbuf + n, sizeof(kf_errbuf) - n, ": %s",
			 strerror(err));
	return -err;
}

int kf_fail(int err, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = kf_vfail(err, false, fmt, ap);
	va_end(ap);
	return ret;
}

int kf_fail_errno(int err, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = kf_vfail(err, true, fmt, ap);
	va_end(ap);
	return ret;
}
