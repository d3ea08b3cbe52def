// SPDX-License-Identifier: MIT
/*
 * Toggling KVM_MEM_EXIT_ON_MISSING with flags-only updates of a live slot
 * (kvmfault kernel series), the way a post-copy migration turns it
 * off once every page has arrived.  With the flag, a missing page exits to
 * the vCPU thread; after the flag is cleared, the same slot behaves as on a
 * stock kernel: the vCPU waits in the userfaultfd until another thread
 * resolves the fault, and KVM_RUN does not fail; set again, it exits again.
 * The rig also fails the run if the toggle makes the kernel warn.
 */
#include <sys/mman.h>

#include "kernel_common.h"

#define REGION_SIZE (2ULL << 20)
#define ROUNDS 3

static struct {
	struct kf_vm *vm;
	uint32_t slot;
	uint8_t *hva;
	uint64_t gpa;
	int uffd;
	unsigned int exits[16];
	unsigned int nr_exits;
	unsigned int syncs;
} g;

/* Round r touches page 2r with the flag set and 2r + 1 with it clear. */
static KF_GUEST void guest_main(uint64_t gpa)
{
	uint64_t r, p;

	for (r = 0; r < ROUNDS; r++) {
		p = gpa + 2 * r * KF_PAGE_SIZE;
		GUEST_ASSERT_EQ(*(volatile uint64_t *)p, kt_pattern(p, 0));
		GUEST_SYNC(2 * r);		/* host clears the flag */
		p += KF_PAGE_SIZE;
		GUEST_ASSERT_EQ(*(volatile uint64_t *)p, kt_pattern(p, 0));
		GUEST_SYNC(2 * r + 1);		/* host sets the flag */
	}
}

static int install(struct kf_vcpu *vcpu, const struct kf_memory_fault *f)
{
	uint8_t page[KF_PAGE_SIZE] __attribute__((aligned(4096)));
	uint64_t i = (f->gpa - g.gpa) / KF_PAGE_SIZE;

	(void)vcpu;
	TEST_ASSERT(i < 16, "fault at 0x%llx", (unsigned long long)f->gpa);
	g.exits[i]++;
	g.nr_exits++;
	kt_fill_page(page, f->gpa);
	kt_uffd_copy(g.uffd, g.hva + i * KF_PAGE_SIZE, page);
	return 0;
}

static int on_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	uint32_t flags = (uc->args[0] & 1) ? KVM_MEM_EXIT_ON_MISSING : 0;

	(void)vcpu;
	TEST_ASSERT_EQ(uc->args[0], g.syncs);
	g.syncs++;
	TEST_OK(kf_vm_set_region_flags(g.vm, g.slot, flags));
	return 0;
}

int main(void)
{
	struct kf_vcpu_ops ops = { .memory_fault = install, .sync = on_sync };
	struct kf_region r = {
		.size = REGION_SIZE, .flags = KVM_MEM_EXIT_ON_MISSING,
		.backing = KF_BACKING_ANON,
	};
	struct kt_uffd_server srv;
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	unsigned int i;

	kt_require_series();
	TEST_OK(kf_vm_create(&g.vm));
	r.gpa = kf_vm_free_gpa(g.vm);
	TEST_OK(kf_vm_add_region(g.vm, &r, &ms));
	g.slot = ms->slot;
	g.hva = ms->hva;
	g.gpa = r.gpa;
	g.uffd = kt_uffd_open(0);
	kt_uffd_register(g.uffd, ms->hva, ms->size, UFFDIO_REGISTER_MODE_MISSING);
	kt_uffd_server_start(&srv, g.uffd, ms->hva, r.gpa, ms->size);

	TEST_OK(kf_vcpu_add(g.vm, 0, guest_main, r.gpa, &vcpu));
	if (kf_vcpu_run(vcpu, &ops))
		kf_test_fail(__FILE__, __LINE__, "run: %s", kf_vcpu_errmsg(vcpu));
	kt_uffd_server_stop(&srv);

	printf("%u exits, %u userfaultfd waits, %u flag toggles\n", g.nr_exits,
	       srv.nr_events, g.syncs);
	TEST_ASSERT_EQ(g.syncs, 2 * ROUNDS);
	for (i = 0; i < 2 * ROUNDS; i++) {
		if (i % 2 == 0) {	/* flag set: exit, no wait */
			TEST_ASSERT(g.exits[i] == 1 && srv.events[i] == 0,
				    "page %u (flag set): %u exits, %u waits", i,
				    g.exits[i], srv.events[i]);
		} else {		/* flag clear: wait, no exit */
			TEST_ASSERT(g.exits[i] == 0 && srv.events[i] == 1,
				    "page %u (flag clear): %u exits, %u waits", i,
				    g.exits[i], srv.events[i]);
		}
	}
	kf_vm_destroy(g.vm);
	close(g.uffd);
	TEST_PASS("flag toggled %d times: exits while set, userfaultfd waits while clear",
		  2 * ROUNDS);
}
