// SPDX-License-Identifier: MIT
/*
 * kvmfault: the tool.  One program with subcommands, each in
 * tools/builtin-CMD.c:
 *
 *   kvmfault run        a guest workload on this machine's KVM
 *   kvmfault bench      demand-paging throughput of the fault engine
 *   kvmfault migrate    post-copy live migration between two processes
 *   kvmfault snapshot   save a running guest, restore it eagerly or lazily
 *   kvmfault restore    restore a snapshot (kvmfault snapshot restore)
 *
 * kvmfault help [CMD] and kvmfault CMD --help print the usage.  Guest code
 * is this program's own code, so a snapshot saved by one kvmfault binary
 * is restored by the same binary.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "builtin.h"

#ifndef KVMFAULT_VERSION
#define KVMFAULT_VERSION "unknown"
#endif

static const struct builtin {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} builtins[] = {
	{ "run", cmd_run, "boot a guest workload on this machine's KVM and verify it" },
	{ "bench", cmd_bench, "demand-paging throughput of the fault engine" },
	{ "migrate", cmd_migrate, "post-copy live migration between two processes" },
	{ "snapshot", cmd_snapshot, "save a running guest; restore it eagerly or lazily" },
	{ "restore", cmd_restore, "restore a snapshot (same as snapshot restore)" },
};

#define NR_BUILTINS (sizeof(builtins) / sizeof(builtins[0]))

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: kvmfault COMMAND [options]\n"
		"       kvmfault help [COMMAND]\n"
		"       kvmfault --version\n\ncommands:\n");
	for (i = 0; i < NR_BUILTINS; i++)
		fprintf(f, "  %-10s %s\n", builtins[i].name, builtins[i].summary);
	fprintf(f, "\nkvmfault COMMAND --help says more about a command.\n");
}

static const struct builtin *find(const char *name)
{
	size_t i;

	for (i = 0; i < NR_BUILTINS; i++)
		if (!strcmp(builtins[i].name, name))
			return &builtins[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct builtin *b;

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    (!strcmp(argv[1], "help") && argc == 2)) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("kvmfault %s\n", KVMFAULT_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "help")) {
		char help[] = "--help";
		char *args[] = { argv[2], help, NULL };

		b = find(argv[2]);
		if (!b) {
			fprintf(stderr, "kvmfault help: no command '%s'\n", argv[2]);
			usage(stderr);
			return 2;
		}
		return b->fn(2, args);
	}
	b = find(argv[1]);
	if (!b) {
		fprintf(stderr, "kvmfault: no command '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	return b->fn(argc - 1, argv + 1);
}
