// SPDX-License-Identifier: GPL-2.0
/*
 * Send one command to a QEMU human monitor on a Unix socket and print the
 * answer: the rig's busybox has no client for Unix sockets.
 *
 * usage: hmp SOCKET COMMAND
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define PROMPT "(qemu) "

/* Read until the prompt; print what came before it unless quiet. */
static int read_to_prompt(int fd, int quiet)
{
	char buf[65536];
	size_t len = 0;
	ssize_t n;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 60000) <= 0) {
			fprintf(stderr, "hmp: no prompt from QEMU within 60 s\n");
			return -1;
		}
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0) {
			fprintf(stderr, "hmp: QEMU closed the monitor\n");
			return -1;
		}
		len += n;
		buf[len] = '\0';
		if (len >= strlen(PROMPT) &&
		    !strcmp(buf + len - strlen(PROMPT), PROMPT)) {
			buf[len - strlen(PROMPT)] = '\0';
			if (!quiet)
				fputs(buf, stdout);
			return 0;
		}
		if (len == sizeof(buf) - 1) {
			if (!quiet)
				fputs(buf, stdout);
			len = 0;
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (argc != 3 || strlen(argv[1]) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "usage: hmp SOCKET COMMAND\n");
		return 2;
	}
	strcpy(addr.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		perror("hmp: connect");
		return 1;
	}
	if (read_to_prompt(fd, 1))
		return 1;
	if (dprintf(fd, "%s\n", argv[2]) < 0) {
		perror("hmp: write");
		return 1;
	}
	if (read_to_prompt(fd, 0))
		return 1;
	close(fd);
	return 0;
}
