// SPDX-License-Identifier: MIT
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <kvmfault/error.h>

#include "internal.h"

/*
 * Two buffers: a failure writes the one not shown and then shows it, so
 * kf_error_forget() can bring the message before it back.
 */
static __thread char kf_errbuf[2][512];
static __thread unsigned int kf_errcur;

const char *kf_error(void)
{
	return kf_errbuf[kf_errcur];
}

void kf_error_forget(void)
{
	kf_errcur ^= 1;
}

void kf_error_restore(const char *msg)
{
	snprintf(kf_errbuf[kf_errcur], sizeof(kf_errbuf[0]), "%s", msg);
}

static int kf_vfail(int err, bool with_strerror, const char *fmt, va_list ap)
{
	char *buf = kf_errbuf[kf_errcur ^ 1];
	size_t size = sizeof(kf_errbuf[0]);
	int n = vsnprintf(buf, size, fmt, ap);

	if (with_strerror && n >= 0 && (size_t)n < size)
		snprintf(buf + n, size - n, ": %s", strerror(err));
	kf_errcur ^= 1;
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

void kf_logf(void (*log)(void *opaque, const char *msg), void *opaque,
	     const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (!log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log(opaque, msg);
}
