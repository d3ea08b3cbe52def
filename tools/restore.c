// SPDX-License-Identifier: MIT
/*
 * kvmfault-restore FILE [options]: restore a snapshot saved by
 * kvmfault-snapshot (see there).  Guest code lives in the program image
 * that saved the guest, so this runs `kvmfault-snapshot restore`, the
 * binary beside this one.
 */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 32];
	char **args;
	ssize_t n;
	int i;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fprintf(argc < 2 ? stderr : stdout,
			"usage: kvmfault-restore FILE [--mode eager|lazy|both] [--run-ms MS] [--backend B] [--json]\n");
		return argc < 2 ? 2 : 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		perror("kvmfault-restore: /proc/self/exe");
		return 1;
	}
	self[n] = '\0';
	snprintf(path, sizeof(path), "%s/kvmfault-snapshot", dirname(self));
	args = calloc(argc + 2, sizeof(*args));
	if (!args)
		return 1;
	args[0] = path;
	args[1] = "restore";
	for (i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	execv(path, args);
	fprintf(stderr, "kvmfault-restore: cannot run %s: %m\n", path);
	return 1;
}
