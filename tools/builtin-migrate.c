// SPDX-License-Identifier: MIT
/*
 * kvmfault migrate: post-copy live migration of a guest between two
 * processes over TCP.
 *
 *   kvmfault migrate source --listen 127.0.0.1:7777 [options]
 *   kvmfault migrate dest --connect 127.0.0.1:7777 [options]
 *   kvmfault migrate local [options]       both, as two processes, on loopback
 *   kvmfault migrate keygen FILE           a new pre-shared key file
 *   kvmfault migrate certgen DIR           a throwaway CA and certificates
 *
 * The channel serves all of guest memory: it is TLS 1.3 with a pre-shared
 * key (--psk FILE) or X.509 certificates (--x509 DIR) unless --plain is
 * given, and plain TCP only on loopback unless --plain-anywhere.  `local`
 * makes a fresh key for its two processes.
 *
 * The source runs the migration workload (each vCPU keeps writing its
 * working set and keeps a checksum of every page in guest memory), waits
 * for the destination, runs the pre-copy rounds, stops the vCPUs and sends
 * their state; the destination resumes at once with the guest's memory
 * missing and pages it in on demand (the fault engine with a remote page
 * source) while the source pushes the rest.  When every page is there the
 * guest re-checks every page against its checksums inside the guest; the
 * destination exits 0 only if all of them match.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kvmfault/engine.h>
#include <kvmfault/kvmfault.h>
#include <kvmfault/migration.h>
#include <kvmfault/migration_run.h>
#include <kvmfault/remote.h>

#include "builtin.h"

struct opts {
	const char *listen;
	const char *connect;
	const char *port_file;
	const char *backend;
	const char *psk;
	const char *x509;
	bool plain;
	bool plain_anywhere;
	bool link_test;
	unsigned int vcpus;
	uint64_t pages;
	unsigned int precopy;
	int warmup_ms;
	int idle_us;
	int run_ms;
	int recover_ms;
	int timeout_ms;
	uint64_t drop_after_pages;
	int drop_after_ms;
	unsigned int push_streams;
	bool no_push;
	bool json;
	bool quiet;
	int progress;		/* -1: when stderr is a terminal */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvmfault migrate source --listen HOST:PORT [options]\n"
		"       kvmfault migrate dest --connect HOST:PORT [options]\n"
		"       kvmfault migrate local [options]\n"
		"       kvmfault migrate keygen FILE [IDENTITY]\n"
		"       kvmfault migrate certgen DIR [SUBJECT-ALT-NAMES]\n"
		"\n"
		"channel (source and dest):\n"
		"  --psk FILE            TLS 1.3 with the pre-shared key in FILE ('identity:hexkey',\n"
		"                        mode 0600; 'migrate keygen FILE' makes one)\n"
		"  --x509 DIR            TLS 1.3 with X.509 certificates of one CA, both ways, from\n"
		"                        DIR as QEMU's tls-creds-x509: ca-cert.pem, server-cert.pem\n"
		"                        and server-key.pem (source), client-cert.pem and\n"
		"                        client-key.pem (dest; the source's certificate must name\n"
		"                        the --connect host); 'migrate certgen DIR' makes a\n"
		"                        throwaway CA and both ends' certificates\n"
		"  --plain               plain TCP, no TLS: only on a loopback address\n"
		"  --plain-anywhere      plain TCP on any address (guest memory in the clear)\n"
		"  local uses a fresh key of its own unless --plain, --psk or --x509\n"
		"  --link-test           local: first measure loopback TCP, the plain and\n"
		"                        the TLS channel (256 MiB each) and report the ratio\n"
		"\n"
		"source options:\n"
		"  --vcpus N             vCPUs of the workload (2)\n"
		"  --pages N             working set of each vCPU in 4 KiB pages (512)\n"
		"  --precopy N           pre-copy rounds with dirty logging before the switch (1)\n"
		"  --warmup-ms MS        let the guest run this long before migrating (100)\n"
		"  --port-file FILE      write the port listened on (for --listen HOST:0)\n"
		"  --no-push             no background push: demand faults only\n"
		"  --idle-us US          a mostly idle guest: each vCPU sleeps US after each page\n"
		"                        it writes (0: it writes nonstop)\n"
		"  --drop-after-pages N  test: cut the connections once after N post-copy pages\n"
		"dest options:\n"
		"  --backend B           auto, exit, uffd-missing, uffd-minor (auto)\n"
		"  --run-ms MS           let the guest run at least this long after resuming (200)\n"
		"  --streams N           connections the post-copy push runs on, each with a\n"
		"                        receiving thread (2; 0: the push shares main)\n"
		"  --drop-after-ms MS    test: cut the connections once MS after resuming\n"
		"  --progress/--no-progress   progress bar on stderr (default: on a terminal)\n"
		"both:\n"
		"  --recover-timeout MS  how long to wait for the peer after a drop (10000)\n"
		"  --timeout MS          how long to wait for the first connection (60000)\n"
		"  --json                the report as one JSON object on stdout\n"
		"  --quiet               no messages besides the report\n"
		"\n"
		"Exit status: 0 when the guest verified every page at the destination.\n"
		"Environment: KF_MIGRATE_PAGES, KF_MIGRATE_VCPUS override the defaults.\n");
}

/* A time in milliseconds, optarg of option opt. */
static int ms_arg(const char *opt, int *out)
{
	return tool_int("migrate", opt, optarg, 0, INT_MAX, out);
}

static int parse(int argc, char **argv, struct opts *o)
{
	enum { O_LISTEN = 256, O_CONNECT, O_PORTFILE, O_BACKEND, O_VCPUS, O_PAGES,
	       O_PRECOPY, O_WARMUP, O_RUN, O_RECOVER, O_TIMEOUT, O_DROPP, O_DROPMS,
	       O_NOPUSH, O_JSON, O_QUIET, O_PROGRESS, O_NOPROGRESS, O_HELP,
	       O_PSK, O_PLAIN, O_PLAIN_ANYWHERE, O_IDLE, O_LINK, O_STREAMS, O_X509 };
	static const struct option lo[] = {
		{ "listen", 1, NULL, O_LISTEN }, { "connect", 1, NULL, O_CONNECT },
		{ "port-file", 1, NULL, O_PORTFILE }, { "backend", 1, NULL, O_BACKEND },
		{ "vcpus", 1, NULL, O_VCPUS }, { "pages", 1, NULL, O_PAGES },
		{ "precopy", 1, NULL, O_PRECOPY }, { "warmup-ms", 1, NULL, O_WARMUP },
		{ "run-ms", 1, NULL, O_RUN }, { "recover-timeout", 1, NULL, O_RECOVER },
		{ "timeout", 1, NULL, O_TIMEOUT },
		{ "drop-after-pages", 1, NULL, O_DROPP },
		{ "drop-after-ms", 1, NULL, O_DROPMS },
		{ "no-push", 0, NULL, O_NOPUSH }, { "json", 0, NULL, O_JSON },
		{ "quiet", 0, NULL, O_QUIET }, { "progress", 0, NULL, O_PROGRESS },
		{ "no-progress", 0, NULL, O_NOPROGRESS }, { "help", 0, NULL, O_HELP },
		{ "psk", 1, NULL, O_PSK }, { "plain", 0, NULL, O_PLAIN },
		{ "plain-anywhere", 0, NULL, O_PLAIN_ANYWHERE },
		{ "idle-us", 1, NULL, O_IDLE }, { "link-test", 0, NULL, O_LINK },
		{ "streams", 1, NULL, O_STREAMS }, { "x509", 1, NULL, O_X509 },
		{ 0 },
	};
	const char *env;
	int c, bad = 0;

	memset(o, 0, sizeof(*o));
	o->vcpus = 2;
	o->pages = 512;
	o->precopy = 1;
	o->push_streams = 2;
	o->warmup_ms = 100;
	o->run_ms = 200;
	o->recover_ms = 10000;
	o->timeout_ms = 60000;
	o->backend = "auto";
	o->progress = -1;
	if ((env = getenv("KF_MIGRATE_PAGES")))
		bad |= tool_u64("migrate", "KF_MIGRATE_PAGES", env, 1,
				UINT32_MAX, &o->pages);
	if ((env = getenv("KF_MIGRATE_VCPUS")))
		bad |= tool_uint("migrate", "KF_MIGRATE_VCPUS", env, 1,
				 KF_MAX_VCPUS, &o->vcpus);
	while (!bad && (c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_LISTEN: o->listen = optarg; break;
		case O_CONNECT: o->connect = optarg; break;
		case O_PORTFILE: o->port_file = optarg; break;
		case O_BACKEND: o->backend = optarg; break;
		case O_VCPUS:
			bad = tool_uint("migrate", "--vcpus", optarg, 1,
					KF_MAX_VCPUS, &o->vcpus);
			break;
		case O_PAGES:
			bad = tool_u64("migrate", "--pages", optarg, 1,
				       UINT32_MAX, &o->pages);
			break;
		case O_PRECOPY:
			bad = tool_uint("migrate", "--precopy", optarg, 0, 1000,
					&o->precopy);
			break;
		case O_STREAMS:
			bad = tool_uint("migrate", "--streams", optarg, 0,
					KF_MIG_MAX_PUSH_STREAMS, &o->push_streams);
			break;
		case O_DROPP:
			bad = tool_u64("migrate", "--drop-after-pages", optarg, 0,
				       UINT64_MAX, &o->drop_after_pages);
			break;
		case O_WARMUP: bad = ms_arg("--warmup-ms", &o->warmup_ms); break;
		case O_IDLE:
			bad = tool_int("migrate", "--idle-us", optarg, 0, 1000000, &o->idle_us);
			break;
		case O_RUN: bad = ms_arg("--run-ms", &o->run_ms); break;
		case O_RECOVER: bad = ms_arg("--recover-timeout", &o->recover_ms); break;
		case O_TIMEOUT: bad = ms_arg("--timeout", &o->timeout_ms); break;
		case O_DROPMS: bad = ms_arg("--drop-after-ms", &o->drop_after_ms); break;
		case O_NOPUSH: o->no_push = true; break;
		case O_PSK: o->psk = optarg; break;
		case O_X509: o->x509 = optarg; break;
		case O_PLAIN: o->plain = true; break;
		case O_LINK: o->link_test = true; break;
		case O_PLAIN_ANYWHERE: o->plain = o->plain_anywhere = true; break;
		case O_JSON: o->json = true; break;
		case O_QUIET: o->quiet = true; break;
		case O_PROGRESS: o->progress = 1; break;
		case O_NOPROGRESS: o->progress = 0; break;
		case 'h': case O_HELP: usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (bad)
		return -1;
	if (!!o->plain + !!o->psk + !!o->x509 > 1) {
		fprintf(stderr, "kvmfault migrate: --psk, --x509 and --plain exclude each other\n");
		return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "kvmfault migrate: unexpected argument '%s'\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

static void report(const struct opts *o, const struct kf_mig_report *rep,
		   const char *side)
{
	if (o->json) {
		kf_mig_report_json(stdout, rep);
	} else if (!o->quiet || !rep->ok) {
		printf("[%s] ", side);
		kf_mig_report_text(stdout, rep);
	}
	fflush(stdout);
}

/* The HOST of HOST:PORT or [HOST]:PORT into host (size 256). */
static bool addr_host(const char *addr, char *host)
{
	const char *colon = strrchr(addr, ':');
	size_t len;

	if (!colon)
		return false;
	len = (size_t)(colon - addr);
	if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
		addr++;
		len -= 2;
	}
	if (!len || len >= 256)
		return false;
	memcpy(host, addr, len);
	host[len] = 0;
	return true;
}

/* Whether every address HOST:PORT stands for is a loopback one. */
static bool is_loopback(const char *addr)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	char host[256];
	bool loop = true;

	if (!addr_host(addr, host))
		return false;
	if (getaddrinfo(host, NULL, &hints, &res))
		return false;
	for (ai = res; ai; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			loop &= (ntohl(((struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr) >> 24) == 127;
		else if (ai->ai_family == AF_INET6)
			loop &= IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr);
		else
			loop = false;
	}
	freeaddrinfo(res);
	return loop;
}

/* X.509 credentials from --x509 DIR; the destination checks that the
 * source's certificate names the host it connects to. */
static int channel_x509(const struct opts *o, const char *side,
			const char *addr, bool server, struct kf_mig_tls **tlsp)
{
	char host[256];

	if (!server && !addr_host(addr, host)) {
		fprintf(stderr, "kvmfault migrate %s: %s is no HOST:PORT\n", side, addr);
		return 2;
	}
	if (kf_mig_tls_x509_dir(o->x509, server, server ? NULL : host, tlsp)) {
		fprintf(stderr, "kvmfault migrate %s: %s\n", side, kf_error());
		return 2;
	}
	return 0;
}

/*
 * The channel's credentials for one side: the --psk file, the --x509
 * directory, none for --plain (on loopback only, unless --plain-anywhere),
 * or *key for local.
 */
static int channel(const struct opts *o, const char *side, const char *addr,
		   bool server, struct kf_mig_tls **tlsp)
{
	*tlsp = NULL;
	if (o->x509)
		return channel_x509(o, side, addr, server, tlsp);
	if (o->plain) {
		if (!o->plain_anywhere && !is_loopback(addr)) {
			fprintf(stderr, "kvmfault migrate %s: refusing plain TCP on %s, which is not loopback: guest memory would cross the network in the clear (--psk FILE, or --plain-anywhere)\n",
				side, addr);
			return 2;
		}
		return 0;
	}
	if (!o->psk) {
		fprintf(stderr, "kvmfault migrate %s: no key: --psk FILE (make one with 'kvmfault migrate keygen FILE', copy it to both hosts), --x509 DIR, or --plain on loopback\n",
			side);
		return 2;
	}
	if (kf_mig_tls_psk_file(o->psk, server, tlsp)) {
		fprintf(stderr, "kvmfault migrate %s: %s\n", side, kf_error());
		return 2;
	}
	return 0;
}

static int run_source(const struct opts *o, int lfd, struct kf_mig_tls *tls)
{
	struct kf_workload_cfg wc = { .nr_vcpus = o->vcpus, .pages_per_vcpu = o->pages,
				      .idle_us = (unsigned int)o->idle_us };
	struct kf_mig_source_config sc = {
		.listen_fd = lfd,
		.precopy_rounds = o->precopy,
		.accept_timeout_ms = o->timeout_ms,
		.recover_timeout_ms = o->recover_ms,
		.drop_after_pages = o->drop_after_pages,
		.no_push = o->no_push,
		.quiet = o->quiet,
		.tls = tls,
		.plain = !tls,
	};
	struct kf_vcpu *vcpus[KF_MAX_VCPUS];
	struct kf_mig_report rep;
	struct kf_vm *vm;
	int ret;

	ret = kf_vm_create(&vm);
	if (!ret)
		ret = kf_workload_setup(vm, &wc, KF_BACKING_ANON,
					o->precopy ? KVM_MEM_LOG_DIRTY_PAGES : 0,
					NULL, vcpus);
	if (!ret)
		ret = kf_workload_start(vcpus, o->vcpus);
	if (ret) {
		fprintf(stderr, "kvmfault migrate source: %s\n", kf_error());
		return 1;
	}
	usleep(o->warmup_ms * 1000);
	if (!o->quiet)
		fprintf(stderr, "kvmfault migrate source: guest running (%u vCPUs x %llu pages); waiting for the destination\n",
			o->vcpus, (unsigned long long)o->pages);
	ret = kf_mig_source_run(vm, vcpus, o->vcpus, &sc, &rep);
	if (!o->json && !o->quiet) {
		printf("[source] %s: downtime %.2f ms (stop to RESUMED), pre-copy %llu, stop-copy %llu, demand %llu, push %llu pages, %llu reconnects\n",
		       ret ? "FAILED" : "done", rep.downtime_ns / 1e6,
		       (unsigned long long)rep.pages_by_cause[KF_MIG_CAUSE_PRECOPY],
		       (unsigned long long)rep.pages_by_cause[KF_MIG_CAUSE_STOPCOPY],
		       (unsigned long long)rep.pages_by_cause[KF_MIG_CAUSE_DEMAND],
		       (unsigned long long)rep.pages_by_cause[KF_MIG_CAUSE_PUSH],
		       (unsigned long long)rep.reconnects);
		fflush(stdout);
	}
	if (ret)
		fprintf(stderr, "kvmfault migrate source: %s\n", rep.error);
	kf_vm_destroy(vm);
	return ret ? 1 : 0;
}

static int run_dest(const struct opts *o, const char *addr,
		    struct kf_mig_tls *tls, const struct kf_link_speed *link)
{
	struct kf_mig_dest_config dc = {
		.addr = addr,
		.tls = tls,
		.plain = !tls,
		.connect_timeout_ms = o->timeout_ms,
		.recover_timeout_ms = o->recover_ms,
		.run_ms = o->run_ms,
		.drop_after_ms = o->drop_after_ms,
		.push_streams = o->push_streams,
		.progress = o->progress < 0 ? isatty(2) && !o->quiet : o->progress,
		.quiet = o->quiet,
	};
	struct kf_mig_report rep;
	enum kf_backend b;
	int ret;

	if (kf_backend_parse(o->backend, &b)) {
		fprintf(stderr, "kvmfault migrate dest: %s\n", kf_error());
		return 2;
	}
	dc.backend = b;
	ret = kf_mig_dest_run(&dc, &rep);
	if (link)
		rep.link = *link;
	report(o, &rep, "destination");
	if (ret)
		fprintf(stderr, "kvmfault migrate dest: migration failed: %s\n",
			rep.error);
	return ret ? 1 : 0;
}

static int open_listener(const struct opts *o, const char *addr)
{
	int port, fd = kf_mig_listen(addr, &port);

	if (fd < 0) {
		fprintf(stderr, "kvmfault migrate: %s\n", kf_error());
		return -1;
	}
	if (o->port_file) {
		FILE *f = fopen(o->port_file, "w");

		if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f)) {
			fprintf(stderr, "kvmfault migrate: cannot write %s\n", o->port_file);
			return -1;
		}
	}
	if (!o->quiet)
		fprintf(stderr, "kvmfault migrate source: listening on port %d\n", port);
	return fd;
}

static bool no_kvm(void)
{
	if (!kf_kvm_unavailable_reason())
		return false;
	fprintf(stderr, "kvmfault migrate: %s\n", kf_kvm_unavailable_reason());
	return true;
}

/* Peak memory of each side: guest memory once each, no second copy. */
static void report_memory(const struct opts *o, const struct rusage *child)
{
	struct rusage self;

	if (getrusage(RUSAGE_SELF, &self))
		return;
	if (o->json)
		printf("{\"memory\": {\"source_max_rss_mib\": %.1f, \"dest_max_rss_mib\": %.1f}}\n",
		       child->ru_maxrss / 1024.0, self.ru_maxrss / 1024.0);
	else if (!o->quiet)
		printf("memory: peak resident set %.1f MiB at the source, %.1f MiB at the destination\n",
		       child->ru_maxrss / 1024.0, self.ru_maxrss / 1024.0);
	fflush(stdout);
}

/* Both sides as two processes on loopback, with a fresh key by default. */
static int run_local(const struct opts *o)
{
	struct kf_mig_tls *tls_source = NULL, *tls_dest = NULL;
	struct kf_link_speed link;
	struct rusage child;
	char addr[64];
	int port, status, ret, lfd;
	pid_t pid;

	if (o->psk || o->x509) {
		ret = channel(o, "local", "127.0.0.1:0", true, &tls_source);
		if (!ret)
			ret = channel(o, "local", "127.0.0.1:0", false, &tls_dest);
		if (ret)
			goto out;
	}
	if (no_kvm()) {
		ret = 1;
		goto out;
	}
	if (!o->plain && !o->psk && !o->x509 &&
	    kf_mig_psk_pair("kvmfault-local", &tls_source, &tls_dest)) {
		fprintf(stderr, "kvmfault migrate: no key: %s\n", kf_error());
		ret = 1;
		goto out;
	}
	if (o->link_test) {
		if (kf_mig_link_speed(256ULL << 20, &link)) {
			fprintf(stderr, "kvmfault migrate: %s\n", kf_error());
			ret = 1;
			goto out;
		}
		if (!o->quiet)
			fprintf(stderr, "kvmfault migrate: loopback %.0f MB/s raw, channel %.0f MB/s plain, %.0f MB/s TLS\n",
				link.raw_bps / 1e6, link.plain_bps / 1e6, link.tls_bps / 1e6);
	}
	lfd = kf_mig_listen("127.0.0.1:0", &port);
	if (lfd < 0) {
		fprintf(stderr, "kvmfault migrate: %s\n", kf_error());
		ret = 1;
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		close(lfd);
		ret = 1;
		goto out;
	}
	if (pid == 0)
		_exit(run_source(o, lfd, tls_source));
	close(lfd);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	if (!o->quiet)
		fprintf(stderr, "kvmfault migrate: source is process %d on %s; destination is process %d; %s\n",
			(int)pid, addr, (int)getpid(),
			tls_dest ? "TLS 1.3" : "plain TCP");
	ret = run_dest(o, addr, tls_dest, o->link_test ? &link : NULL);
	if (ret)
		kill(pid, SIGTERM);
	if (wait4(pid, &status, 0, &child) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		ret = ret ? ret : 1;
	report_memory(o, &child);
out:
	kf_mig_tls_free(tls_source);
	kf_mig_tls_free(tls_dest);
	return ret;
}

static int run_keygen(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: kvmfault migrate keygen FILE [IDENTITY]\n");
		return 2;
	}
	if (kf_mig_tls_psk_write(argv[2], argc > 3 ? argv[3] : "kvmfault")) {
		fprintf(stderr, "kvmfault migrate keygen: %s\n", kf_error());
		return 1;
	}
	printf("kvmfault migrate keygen: a new key in %s (mode 0600): give it to both sides with --psk\n",
	       argv[2]);
	return 0;
}

static int run_certgen(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: kvmfault migrate certgen DIR [SUBJECT-ALT-NAMES]\n"
			"  SUBJECT-ALT-NAMES of the source's certificate, OpenSSL syntax\n"
			"  (default %s)\n", KF_X509_DEFAULT_SAN);
		return 2;
	}
	if (mkdir(argv[2], 0700) && errno != EEXIST) {
		fprintf(stderr, "kvmfault migrate certgen: mkdir %s: %s\n", argv[2],
			strerror(errno));
		return 1;
	}
	if (kf_x509_gen_dir(argv[2], argc > 3 ? argv[3] : NULL)) {
		fprintf(stderr, "kvmfault migrate certgen: %s\n", kf_error());
		return 1;
	}
	printf("kvmfault migrate certgen: a throwaway CA and certificates for both ends in %s (keys mode 0600): use --x509 %s on both sides\n",
	       argv[2], argv[2]);
	return 0;
}

int cmd_migrate(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";
	struct kf_mig_tls *tls = NULL;
	struct opts o;
	int lfd, ret;

	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "keygen"))
		return run_keygen(argc, argv);
	if (!strcmp(cmd, "certgen"))
		return run_certgen(argc, argv);
	if (argc < 2 || parse(argc - 1, argv + 1, &o)) {
		if (argc < 2)
			usage(stderr);
		return 2;
	}
	if (!strcmp(cmd, "source")) {
		if (!o.listen) {
			fprintf(stderr, "kvmfault migrate source: --listen HOST:PORT is required\n");
			return 2;
		}
		ret = channel(&o, "source", o.listen, true, &tls);
		if (ret)
			return ret;
		if (no_kvm()) {
			kf_mig_tls_free(tls);
			return 1;
		}
		lfd = open_listener(&o, o.listen);
		ret = lfd < 0 ? 1 : run_source(&o, lfd, tls);
		kf_mig_tls_free(tls);
		return ret;
	}
	if (!strcmp(cmd, "dest")) {
		if (!o.connect) {
			fprintf(stderr, "kvmfault migrate dest: --connect HOST:PORT is required\n");
			return 2;
		}
		ret = channel(&o, "dest", o.connect, false, &tls);
		if (ret)
			return ret;
		ret = no_kvm() ? 1 : run_dest(&o, o.connect, tls, NULL);
		kf_mig_tls_free(tls);
		return ret;
	}
	if (!strcmp(cmd, "local"))
		return run_local(&o);
	fprintf(stderr, "kvmfault migrate: unknown command '%s'\n", cmd);
	usage(stderr);
	return 2;
}
