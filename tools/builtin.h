/* SPDX-License-Identifier: MIT */
/*
 * The kvmfault tool: one program, subcommands in tools/builtin-*.c
 * (kvmfault CMD [options]), dispatched by tools/kvmfault.c.  Each builtin
 * takes its own argv (argv[0] is the subcommand's name), prints its usage
 * for --help and returns the exit status: 0 done, 1 failed, 2 bad usage.
 */
#ifndef KVMFAULT_TOOLS_BUILTIN_H
#define KVMFAULT_TOOLS_BUILTIN_H

#include <stdint.h>

int cmd_run(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_restore(int argc, char **argv);

/*
 * Strict numbers for options: all of s, decimal or 0x hexadecimal, no sign,
 * within [min, max].  A bad one prints "kvmfault CMD: bad OPT 'S': why" on
 * stderr and returns -1 (the builtin then exits 2); 0 otherwise.
 */
int tool_u64(const char *cmd, const char *opt, const char *s, uint64_t min,
	     uint64_t max, uint64_t *out);
int tool_uint(const char *cmd, const char *opt, const char *s,
	      unsigned int min, unsigned int max, unsigned int *out);
int tool_int(const char *cmd, const char *opt, const char *s, int min, int max,
	     int *out);
/* A size in bytes with an optional K, M or G suffix, at least 1 byte. */
int tool_size(const char *cmd, const char *opt, const char *s, uint64_t *out);

#endif
