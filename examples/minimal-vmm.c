// SPDX-License-Identifier: MIT
/*
 * minimal-vmm: a VMM of its own that uses only the kvmfault core.
 *
 * It makes its VM, memslot and vCPU with raw KVM ioctls, as any VMM does
 * (QEMU, Firecracker, crosvm), and restores guest memory lazily from a
 * snapshot file: the memslot starts empty and every page the guest
 * touches is fetched from the file by the fault engine, on first touch.
 * The kvmfault VM layer (kf_vm, kf_vcpu, the guest runtime) is not used;
 * this program may be position independent.
 *
 *   minimal-vmm [IMAGE]
 *
 * The snapshot is a raw image of guest memory, 64 KiB: a 16-bit real-mode
 * program at 0x1000 and fourteen data pages (0x2000-0xffff).  The program
 * adds up the first 32-bit word of every data page and writes the sum to
 * I/O port 0x10, then halts.  minimal-vmm writes the image (to IMAGE, or
 * to a temporary file), boots a fresh VM from it and checks the sum and
 * that the engine installed just the 15 pages the guest touched, of 16.
 *
 * Exit status: 0 passed, 1 failed, 4 skipped (no usable /dev/kvm or
 * userfaultfd here: it prints "SKIP: reason" first).
 *
 * docs/vmm-guide.md walks through it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kvmfault/engine.h>
#include <kvmfault/error.h>
#include <kvmfault/exit.h>
#include <kvmfault/kvm.h>
#include <kvmfault/pagesrc_basic.h>

#define PAGE 4096u
#define MEM_SIZE (16 * PAGE)	/* guest physical [0, 64 KiB) */
#define CODE_GPA 0x1000u
#define DATA_GPA 0x2000u
#define OUT_PORT 0x10
#define SLOT 0
#define SKIP 4

/* The VMM's own state: what the engine's host operations work on. */
struct vmm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	void *mem;
	uint32_t slot_flags;
};

/*
 * add eax, [bx] for bx = 0x2000, 0x3000, ... 0xf000; out 0x10, eax; hlt.
 *   mov bx, 0x2000 / xor eax, eax / 1: add eax, [bx] / add bx, 0x1000 /
 *   jnz 1b / mov dx, 0x10 / out dx, eax / hlt
 */
static const uint8_t guest_code[] = {
	0xbb, 0x00, 0x20,		/* mov bx, 0x2000 */
	0x66, 0x31, 0xc0,		/* xor eax, eax */
	0x66, 0x03, 0x07,		/* 1: add eax, [bx] */
	0x81, 0xc3, 0x00, 0x10,		/* add bx, 0x1000 (0 after 0xf000) */
	0x75, 0xf7,			/* jnz 1b */
	0xba, OUT_PORT, 0x00,		/* mov dx, 0x10 */
	0x66, 0xef,			/* out dx, eax */
	0xf4,				/* hlt */
};

static int skip(const char *why)
{
	printf("SKIP: %s\n", why);
	return SKIP;
}

static int fail(const char *what)
{
	fprintf(stderr, "minimal-vmm: %s: %s\n", what, kf_error()[0] ? kf_error() :
		strerror(errno));
	return 1;
}

/* The snapshot: code, data pages with known words; the sum they make. */
static int write_image(const char *path, uint32_t *sum)
{
	uint8_t *img = calloc(1, MEM_SIZE);
	uint32_t gpa, word;
	int fd, ok;

	if (!img)
		return -1;
	memcpy(img + CODE_GPA, guest_code, sizeof(guest_code));
	*sum = 0;
	for (gpa = DATA_GPA; gpa < MEM_SIZE; gpa += PAGE) {
		word = 0x01010101u * (gpa / PAGE) + 0x9e3779b9u;
		memcpy(img + gpa, &word, sizeof(word));
		*sum += word;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ok = fd >= 0 && write(fd, img, MEM_SIZE) == (ssize_t)MEM_SIZE;
	if (fd >= 0)
		close(fd);
	free(img);
	return ok ? 0 : -1;
}

/* --- the host operations: what the engine asks of this VMM --- */

/* KVM_SET_USER_MEMORY_REGION with the same range and new flags: the exit
 * backend turns KVM_MEM_EXIT_ON_MISSING on and off with this. */
static int vmm_set_slot_flags(void *opaque, uint32_t slot, uint32_t flags)
{
	struct vmm *v = opaque;
	struct kvm_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = 0,
		.memory_size = MEM_SIZE, .userspace_addr = (uintptr_t)v->mem,
	};

	if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r))
		return -errno;
	v->slot_flags = flags;
	return 0;
}

/* The engine failed: leave KVM_RUN and do not come back.  One vCPU, run
 * by this thread, so immediate_exit is enough (a VMM with vCPU threads
 * also signals them). */
static void vmm_stop_vcpus(void *opaque)
{
	struct vmm *v = opaque;

	if (v->run)
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

/* --- the VM, its memory and its vCPU, with raw KVM ioctls --- */

static int vmm_create(struct vmm *v)
{
	struct kvm_userspace_memory_region r = { .slot = SLOT };
	long run_size;

	v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
	if (v->vm < 0)
		return -1;
	/* Fresh anonymous memory: nothing in it until the engine puts it. */
	v->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (v->mem == MAP_FAILED)
		return -1;
	r.memory_size = MEM_SIZE;
	r.userspace_addr = (uintptr_t)v->mem;
	if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r))
		return -1;
	/*
	 * On a kvmfault kernel, ask for the access (READ/WRITE/EXEC) in every
	 * memory fault exit, and for exits instead of bare EFAULTs on shared
	 * memory KVM cannot get at all; only before the first vCPU.
	 */
	if (ioctl(v->vm, KVM_CHECK_EXTENSION, KVM_CAP_MEMORY_FAULT_ACCESS) > 0) {
		struct kvm_enable_cap cap = { .cap = KVM_CAP_MEMORY_FAULT_ACCESS };

		if (ioctl(v->vm, KVM_ENABLE_CAP, &cap))
			return -1;
	}
	v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		return -1;
	run_size = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return -1;
	v->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->vcpu, 0);
	return v->run == MAP_FAILED ? (v->run = NULL, -1) : 0;
}

/* Real mode, flat segments at 0, starting at CODE_GPA. */
static int vmm_reset_vcpu(struct vmm *v)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { .rip = CODE_GPA, .rflags = 0x2 };

	if (ioctl(v->vcpu, KVM_GET_SREGS, &sregs))
		return -1;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ds.base = 0;
	sregs.ds.selector = 0;
	if (ioctl(v->vcpu, KVM_SET_SREGS, &sregs))
		return -1;
	return ioctl(v->vcpu, KVM_SET_REGS, &regs);
}

/*
 * The VMM's run loop with the engine hooked in: decode every KVM_RUN,
 * hand memory faults to kf_engine_fault(), handle the rest itself.
 */
static int vmm_run(struct vmm *v, struct kf_engine *e, uint32_t *out)
{
	struct kf_exit exit;
	char buf[160];
	int ret, err;

	for (;;) {
		ret = ioctl(v->vcpu, KVM_RUN, 0);
		err = errno;
		kf_exit_decode(ret, err, v->run, &exit);
		switch (exit.kind) {
		case KF_EXIT_MEMORY_FAULT:
			/* Exit backend: fetch and install on this thread. */
			if (kf_engine_fault(e, 0, &exit))
				return -1;
			continue;
		case KF_EXIT_INTERRUPTED:
			/* immediate_exit or a signal: the engine's failure? */
			if (kf_engine_check(e))
				return -1;
			continue;
		case KF_EXIT_ERROR:
			errno = exit.err;
			kf_fail(exit.err, "KVM_RUN: %s", kf_exit_str(&exit, buf, sizeof(buf)));
			return -1;
		case KF_EXIT_REASON:
			break;
		}
		if (exit.reason == KVM_EXIT_IO &&
		    v->run->io.direction == KVM_EXIT_IO_OUT &&
		    v->run->io.port == OUT_PORT && v->run->io.size == 4) {
			memcpy(out, (uint8_t *)v->run + v->run->io.data_offset, 4);
			continue;
		}
		if (exit.reason == KVM_EXIT_HLT)
			return 0;
		kf_fail(EIO, "unexpected exit: %s", kf_exit_str(&exit, buf, sizeof(buf)));
		return -1;
	}
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/minimal-vmm-XXXXXX";
	const char *path = argc > 1 ? argv[1] : NULL;
	struct vmm v = { .kvm = -1, .vm = -1, .vcpu = -1 };
	struct kf_engine_host host = {
		.opaque = &v,
		.set_slot_flags = vmm_set_slot_flags,
		.stop_vcpus = vmm_stop_vcpus,
	};
	struct kf_engine_region_desc region = {
		.slot = SLOT, .gpa = 0, .size = MEM_SIZE, .memfd = -1,
	};
	struct kf_engine_summary *sum;
	struct kf_pagesrc *src = NULL;
	struct kf_engine *e = NULL;
	uint32_t expect, seen = 0;
	const char *why;
	int ret = 1, fd;

	if (argc > 2 || (path && path[0] == '-')) {
		fprintf(stderr, "usage: minimal-vmm [IMAGE]\n");
		return 2;
	}
	why = kf_kvm_unavailable_reason();
	if (why)
		return skip(why);
	if (!path) {
		fd = mkstemp(tmp);
		if (fd < 0)
			return fail("mkstemp");
		close(fd);
		path = tmp;
	}
	if (write_image(path, &expect)) {
		ret = fail(path);
		goto out;
	}

	v.kvm = kf_kvm_open();
	if (v.kvm < 0 || vmm_create(&v) || vmm_reset_vcpu(&v)) {
		ret = fail("creating the VM");
		goto out;
	}
	region.hva = v.mem;
	region.flags = v.slot_flags;

	/* The core: an engine over this VMM's region, pages from the file. */
	ret = kf_engine_new(&host, NULL, &e);
	if (ret == -EPERM || ret == -ENOSYS || ret == -EOPNOTSUPP) {
		ret = skip(kf_error());	/* no userfaultfd for this process */
		goto out;
	}
	if (ret) {
		ret = fail("kf_engine_new");
		goto out;
	}
	ret = 1;
	if (kf_pagesrc_rawfile_open(path, 0, &src) ||
	    kf_engine_add_memory(e, &region, src) || kf_engine_start(e)) {
		ret = fail("serving guest memory from the snapshot");
		goto out;
	}
	printf("minimal-vmm: guest memory [0, 0x%x) restores lazily from %s (backend %s)\n",
	       MEM_SIZE, path, kf_backend_name(kf_engine_region_backend(e, SLOT)));

	if (vmm_run(&v, e, &seen)) {
		ret = fail("running the guest");
		goto out;
	}
	/* A handler thread counts a page just after the guest could go on:
	 * stop the handlers so that the counts are final. */
	kf_engine_stop(e);
	sum = calloc(1, sizeof(*sum));
	if (!sum)
		goto out;
	kf_engine_summary(e, sum);
	printf("minimal-vmm: guest sum 0x%08x, expected 0x%08x; %" PRIu64 " of %u pages installed (%" PRIu64 " exit, %" PRIu64 " userfaultfd faults)\n",
	       seen, expect, sum->installed_pages, MEM_SIZE / PAGE,
	       sum->exit_faults, sum->uffd_faults);
	ret = 0;
	if (seen != expect) {
		fprintf(stderr, "minimal-vmm: FAIL: the guest read the wrong bytes\n");
		ret = 1;
	}
	/*
	 * On a kernel with exit-on-missing the engine serves the slot by
	 * memory fault exits, taken on this thread by vmm_run().
	 */
	if (ioctl(v.kvm, KVM_CHECK_EXTENSION, KVM_CAP_EXIT_ON_MISSING) > 0 &&
	    (kf_engine_region_backend(e, SLOT) != KF_BACKEND_EXIT ||
	     !sum->exit_faults)) {
		fprintf(stderr, "minimal-vmm: FAIL: expected the exit backend with exit faults, got backend %s with %" PRIu64 " exit faults\n",
			kf_backend_name(kf_engine_region_backend(e, SLOT)), sum->exit_faults);
		ret = 1;
	}
	/* The code page and the 14 data pages; page 0 was never touched. */
	if (sum->installed_pages != 15 || kf_engine_page_installed(e, 0)) {
		fprintf(stderr, "minimal-vmm: FAIL: expected exactly pages 1-15 installed\n");
		ret = 1;
	}
	free(sum);
	if (!ret)
		printf("PASS: minimal-vmm restored its guest lazily through the kvmfault core\n");
out:
	kf_engine_destroy(e);	/* before the source and the memory */
	kf_pagesrc_destroy(src);
	if (v.run)
		munmap(v.run, ioctl(v.kvm, KVM_GET_VCPU_MMAP_SIZE, 0));
	if (v.vcpu >= 0)
		close(v.vcpu);
	if (v.vm >= 0)
		close(v.vm);
	if (v.kvm >= 0)
		close(v.kvm);
	if (v.mem && v.mem != MAP_FAILED)
		munmap(v.mem, MEM_SIZE);
	if (path == tmp)
		unlink(tmp);
	return ret;
}
