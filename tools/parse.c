// SPDX-License-Identifier: MIT
/* Strict parsing of numbers for the kvmfault tool: see builtin.h. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "builtin.h"

/* All of s as an unsigned number; *end set to where it stopped. */
static int parse_u64(const char *s, uint64_t *out, const char **end)
{
	unsigned long long v;
	char *e;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &e, 0);
	if (errno)
		return -errno;
	*out = v;
	*end = e;
	return 0;
}

static int bad(const char *cmd, const char *opt, const char *s, const char *why)
{
	fprintf(stderr, "kvmfault %s: bad %s '%s': %s\n", cmd, opt, s ? s : "",
		why);
	return -1;
}

int tool_u64(const char *cmd, const char *opt, const char *s, uint64_t min,
	     uint64_t max, uint64_t *out)
{
	char why[96];
	const char *end;
	uint64_t v;
	int ret = parse_u64(s, &v, &end);

	if (ret == -ERANGE || (!ret && !*end && (v < min || v > max))) {
		snprintf(why, sizeof(why), "expected a number from %llu to %llu",
			 (unsigned long long)min, (unsigned long long)max);
		return bad(cmd, opt, s, why);
	}
	if (ret || *end)
		return bad(cmd, opt, s, "not a number (decimal or 0x hexadecimal)");
	*out = v;
	return 0;
}

int tool_uint(const char *cmd, const char *opt, const char *s,
	      unsigned int min, unsigned int max, unsigned int *out)
{
	uint64_t v;

	if (tool_u64(cmd, opt, s, min, max, &v))
		return -1;
	*out = (unsigned int)v;
	return 0;
}

int tool_int(const char *cmd, const char *opt, const char *s, int min, int max,
	     int *out)
{
	uint64_t v;

	if (min < 0)
		return bad(cmd, opt, s, "negative bounds are not supported");
	if (tool_u64(cmd, opt, s, (uint64_t)min, (uint64_t)max, &v))
		return -1;
	*out = (int)v;
	return 0;
}

int tool_size(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
	const char *end;
	unsigned int shift = 0;
	uint64_t v;

	if (parse_u64(s, &v, &end))
		return bad(cmd, opt, s, "expected a size such as 4096, 64K, 16M or 1G");
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end)
		return bad(cmd, opt, s, "expected a size such as 4096, 64K, 16M or 1G");
	if (!v || v > (UINT64_MAX >> 1) >> shift)
		return bad(cmd, opt, s, "the size must be at least 1 byte and fit in 63 bits");
	*out = v << shift;
	return 0;
}
