/* SPDX-License-Identifier: MIT */
/*
 * The migration harness (lib/harness/, not installed): the migration test
 * workload and whole post-copy migrations of a workload VM, with their
 * reports.  The kvmfault tool and the tests use it; it is built on the
 * public API (the wire protocol, the remote page source, the engine).
 */
#ifndef KVMFAULT_MIGRATION_RUN_H
#define KVMFAULT_MIGRATION_RUN_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <kvmfault/migration.h>
#include <kvmfault/stats.h>
#include <kvmfault/vcpu.h>
#include <kvmfault/vm.h>

/* ----------------------------------------------------------------------
 * The migration workload: each vCPU writes pages of its own part of a data
 * region and keeps a checksum of every page (in the region's first pages),
 * until the host sets the stop flag; then it re-checks every page against
 * its checksum inside the guest (GUEST_ASSERT_EQ) and reports
 * KF_WL_STAGE_VERIFIED before returning.
 */
#define KF_WL_STAGE_FILLED 1	/* args: pages written once */
#define KF_WL_STAGE_VERIFIED 2	/* args: pages checked, iterations */
#define KF_WL_STAGE_IDLE 3	/* args: microseconds the host sleeps */

struct kf_workload_cfg {
	unsigned int nr_vcpus;
	uint64_t pages_per_vcpu;	/* working set of each vCPU */
	uint64_t gpa;			/* region start; 0: kf_vm_free_gpa() */
	/* A mostly idle guest: after each page it writes, the vCPU's
	 * thread sleeps this long (KF_WL_STAGE_IDLE); 0: writes nonstop. */
	unsigned int idle_us;
};

struct kf_workload_ctl {
	volatile uint64_t stop;
	uint64_t gpa;
	uint64_t pages_per_vcpu;
	uint64_t csum_pages;		/* checksum pages before each span */
	uint64_t nr_vcpus;
	uint64_t idle_us;
	uint64_t mte;			/* the VM has MTE: pages are tagged too */
	volatile uint64_t iterations[KF_MAX_VCPUS];
};

/* A vCPU's sync hook for the workload's stages: sleeps for IDLE. */
void kf_workload_idle(const struct kf_ucall *uc);

/* The guest entry point of every workload vCPU. */
void kf_workload_guest(uint64_t arg);

/* Bytes of the data region for cfg. */
uint64_t kf_workload_region_size(const struct kf_workload_cfg *cfg);

/*
 * Add the data region (backing, slot_flags) and the vCPUs of the workload
 * to vm, and write the guest's parameters into its memory.  vcpus[] gets
 * the vCPUs (nr_vcpus of them).
 */
int kf_workload_setup(struct kf_vm *vm, const struct kf_workload_cfg *cfg,
		      enum kf_backing backing, uint32_t slot_flags,
		      const struct kf_memslot **slotp, struct kf_vcpu **vcpus);

/* Create the vCPUs only (a VM whose memory and state come from elsewhere). */
int kf_workload_add_vcpus(struct kf_vm *vm, unsigned int nr_vcpus,
			  struct kf_vcpu **vcpus);

/* The guest's control block as this VM holds it (slot 0), or NULL. */
struct kf_workload_ctl *kf_workload_ctl(struct kf_vm *vm);

/* Tell every vCPU to stop writing, verify and finish. */
void kf_workload_stop(struct kf_vm *vm);

/*
 * Start the workload's vCPUs (kf_vcpu_start()) and wait until each has
 * written its working set once (KF_WL_STAGE_FILLED): 0, or -errno with a
 * message when a vCPU failed first.  One workload a process at a time.
 */
int kf_workload_start(struct kf_vcpu **vcpus, unsigned int nr_vcpus);

/*
 * Both ends of a channel in one program (a local migration, a bench, a
 * test): TLS credentials for the server and the client role sharing a
 * fresh random key.  0, or -errno with a message.
 */
int kf_mig_psk_pair(const char *identity, struct kf_mig_tls **server,
		    struct kf_mig_tls **client);

/*
 * A throwaway CA and certificates for both ends in dir, laid out for
 * kf_mig_tls_x509_dir() (keys mode 0600): the source's certificate names
 * server_san (OpenSSL subjectAltName syntax; NULL: KF_X509_DEFAULT_SAN).
 * -EEXIST when dir holds any of the files already: nothing is replaced.
 */
#define KF_X509_DEFAULT_SAN "DNS:localhost,IP:127.0.0.1,IP:::1"
int kf_x509_gen_dir(const char *dir, const char *server_san);

/* The link, one direction over loopback TCP, in bytes per second. */
struct kf_link_speed {
	double raw_bps;		/* write()/read() */
	double plain_bps;	/* PAGES over a plain migration connection */
	double tls_bps;		/* PAGES over TLS */
};

int kf_mig_link_speed(uint64_t bytes, struct kf_link_speed *ls);

/* ----------------------------------------------------------------------
 * Whole migrations (lib/migration_run.c): the source and destination
 * sides of a post-copy live migration of a workload VM.
 */
struct kf_mig_report {
	bool ok;			/* every vCPU verified every page */
	char error[1024];
	bool tls;			/* the channel: TLS, or plain TCP */
	unsigned int push_streams;	/* destination: its push connections */
	uint64_t push_stream_pages;	/* pages received on them */
	uint64_t push_threads_lowered;	/* their receivers at nice + 10 */
	uint64_t migration_ns;		/* SETUP received to every page here */
	struct kf_link_speed link;	/* measured by the caller, or zeros */
	uint64_t system_pages;		/* the system slot: pre-copied whole,
					 * its dirty pages again in the blackout */
	const char *backend;
	unsigned int nr_vcpus;
	uint64_t guest_bytes;		/* post-copy regions */
	uint32_t precopy_rounds;
	uint64_t pages_by_cause[KF_MIG_CAUSE_MAX];
	uint64_t downtime_ns;		/* vCPUs stopped -> running again */
	uint64_t postcopy_ns;		/* resume -> every page here */
	uint64_t total_ns;		/* connect -> verified */
	uint64_t reconnects;
	uint64_t requests, req_messages;
	uint64_t verified_pages;	/* pages the guest re-checked */
	struct kf_engine_summary engine; /* faults and latency per vCPU */
	/* Switch-off (destination): every page here, the engine let go of
	 * the regions (kf_engine_region_complete) while the guest ran. */
	bool switched;
	uint64_t switch_ns;		/* resume -> normal faulting */
	uint64_t run_after_switch_ns;	/* switch -> guest told to stop */
	uint64_t iterations_after_switch; /* guest write passes meanwhile */
	uint64_t uffd_faults_after_switch; /* userfaults seen meanwhile */
	bool uffd_unregistered;		/* smaps: no region registered */
};

struct kf_mig_source_config {
	int listen_fd;
	struct kf_mig_tls *tls;		/* server credentials, or plain */
	bool plain;
	unsigned int precopy_rounds;	/* 0: pure post-copy */
	int accept_timeout_ms;
	int recover_timeout_ms;
	uint64_t drop_after_pages;	/* test hook, see kf_page_server_config */
	bool no_push;
	bool quiet;
};

/*
 * Migrate the running workload VM (vcpus started with kf_vcpu_start()) to
 * the destination that connects to listen_fd.  Data regions need
 * KVM_MEM_LOG_DIRTY_PAGES for pre-copy rounds.  Returns when the
 * destination has every page; the vCPUs are stopped and joined.
 */
int kf_mig_source_run(struct kf_vm *vm, struct kf_vcpu **vcpus,
		      unsigned int nr_vcpus,
		      const struct kf_mig_source_config *cfg,
		      struct kf_mig_report *rep);

struct kf_mig_dest_config {
	const char *addr;
	struct kf_mig_tls *tls;		/* client credentials, or plain */
	bool plain;
	int backend;			/* enum kf_backend */
	int connect_timeout_ms;
	int recover_timeout_ms;
	int run_ms;			/* let the guest run at least this long */
	int run_after_switch_ms;	/* and this long after the switch-off */
	int drop_after_ms;		/* test hook: drop the connections once */
	unsigned int push_streams;	/* kf_remote_config.push_streams */
	bool progress;			/* a progress bar on stderr */
	bool quiet;
	/* Called once the guest runs at the destination (may be NULL). */
	void (*on_resumed)(void *opaque);
	void *opaque;
};

/* Receive a migration, run the guest, have it verify every page. */
int kf_mig_dest_run(const struct kf_mig_dest_config *cfg,
		    struct kf_mig_report *rep);

void kf_mig_report_text(FILE *f, const struct kf_mig_report *rep);
void kf_mig_report_json(FILE *f, const struct kf_mig_report *rep);

#endif
