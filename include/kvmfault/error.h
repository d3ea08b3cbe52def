/* SPDX-License-Identifier: MIT */
/*
 * Errors: library functions return 0 or a negative errno and leave a
 * message for the calling thread, read with kf_error().  Library code never
 * aborts the process.
 */
#ifndef KVMFAULT_ERROR_H
#define KVMFAULT_ERROR_H

#include <errno.h>

#include <kvmfault/compiler.h>

KF_API_BEGIN

#define KF_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

/*
 * The message of this thread's last failed call ("" when there is none).
 * A call that succeeds records no message, not even for a failure it
 * recovered from inside.
 */
const char *kf_error(void);

/* Record a message for this thread and return -err (err is a positive errno). */
int kf_fail(int err, const char *fmt, ...) KF_PRINTF(2, 3);

/* Like kf_fail(), with ": strerror(err)" appended. */
int kf_fail_errno(int err, const char *fmt, ...) KF_PRINTF(2, 3);

KF_API_END

#endif
