// SPDX-License-Identifier: MIT
/*
 * kvmfault restore FILE [options]: restore a snapshot saved by
 * kvmfault snapshot save, the same as kvmfault snapshot restore FILE.
 * Guest code lives in the program image that saved the guest: this is
 * that program.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"

int cmd_restore(int argc, char **argv)
{
	char name[] = "snapshot", restore[] = "restore";
	char **args;
	int i, ret;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fprintf(argc < 2 ? stderr : stdout,
			"usage: kvmfault restore FILE [--mode eager|lazy|prefetch|ws|both|all] [--ws WSFILE] [--run-ms MS]\n"
			"                        [--backend B] [--json]\n"
			"  the same as kvmfault snapshot restore FILE ...\n");
		return argc < 2 ? 2 : 0;
	}
	args = calloc(argc + 2, sizeof(*args));
	if (!args) {
		fprintf(stderr, "kvmfault restore: out of memory\n");
		return 1;
	}
	args[0] = name;
	args[1] = restore;
	for (i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	ret = cmd_snapshot(argc + 1, args);
	free(args);
	return ret;
}
