// SPDX-License-Identifier: MIT
/*
 * kf_vm_add_region() that fails after registering the memslot takes it
 * back: neither the VM layer nor KVM keep the slot.  The failure is made
 * by asking for more page directories than the guest's page-table pool
 * holds (a 300 GiB region).
 */
#include <string.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

#define MB (1ULL << 20)
#define GB (1ULL << 30)

int main(void)
{
	struct kf_region r = { .gpa = 4 * GB, .size = 300 * GB,
			       .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	struct kf_region again = { .gpa = 4 * GB, .size = 2 * MB,
				   .backing = KF_BACKING_ANON, .guest_memfd = -1 };
	const struct kf_memslot *ms;
	struct kf_vm *vm;
	int ret;

	kf_test_require_kvm();
	TEST_OK(kf_vm_create(&vm));
	ret = kf_vm_add_region(vm, &r, &ms);
	if (ret != -ENOSPC) {
		char why[256];

		snprintf(why, sizeof(why), "cannot make the mapping fail here: %s",
			 ret ? kf_error() : "a 300 GiB slot fit the page tables");
		kf_vm_destroy(vm);
		kf_test_skip("%s", why);
	}
	TEST_ASSERT(strstr(kf_error(), "page-table pool"), "%s", kf_error());
	TEST_ASSERT(!ms, "a slot returned on failure");
	TEST_ASSERT(!kf_vm_find_slot(vm, r.gpa), "the failed slot stayed registered");
	/* KVM must have forgotten it too: the same range fits again. */
	TEST_OK(kf_vm_add_region(vm, &again, &ms));
	kf_vm_destroy(vm);
	TEST_PASS("a region whose mapping fails leaves no memslot behind");
}
