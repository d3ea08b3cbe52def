// SPDX-License-Identifier: MIT
/*
 * vCPU state blobs (<kvmfault/vcpu_state.h>) on this architecture: a saved
 * blob checks, names its vCPU and instruction pointer, and loads into a
 * fresh vCPU of that id in another VM; a damaged one (short, bad magic,
 * another version or architecture, a wrong length or vCPU id, a cut
 * section) is refused with a message and never half-applied, and a blob
 * is refused by a vCPU of another id.
 */
#include <stdlib.h>
#include <string.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/vcpu_state.h>
#include <kvmfault/test.h>

/* The blob header's layout (lib/vcpu_state.h): byte offsets. */
#define HDR_VERSION 4
#define HDR_ARCH 6
#define HDR_VCPU_ID 8
#define HDR_TOTAL_LEN 16
#define HDR_SIZE 24

static KF_GUEST void guest_sync(uint64_t arg)
{
	GUEST_SYNC_ARGS(1, arg, 0, 0);
}

static int stop_at_sync(struct kf_vcpu *vcpu, const struct kf_ucall *uc)
{
	(void)vcpu;
	TEST_ASSERT_EQ(uc->args[0], 1);
	return 1;	/* done: the vCPU stops in its ucall */
}

static void expect_refused(const void *blob, size_t len, const char *needle,
			   const char *what)
{
	int ret = kf_vcpu_state_check(blob, len, NULL);

	TEST_ASSERT(ret < 0, "%s: a damaged blob passed the check", what);
	TEST_ASSERT(strstr(kf_error(), needle), "%s: '%s' missing from: %s",
		    what, needle, kf_error());
	printf("%-14s %s\n", what, kf_error());
}

/* A copy of blob with a 16- or 32-bit field at off set to v. */
static void *patched(const void *blob, size_t len, size_t off, uint32_t v,
		     size_t width)
{
	char *p = malloc(len);

	TEST_ASSERT(p, "out of memory");
	memcpy(p, blob, len);
	memcpy(p + off, &v, width);	/* little endian */
	return p;
}

static void refuse_damaged(const void *blob, size_t len)
{
	uint16_t arch;
	void *p;

	expect_refused(blob, HDR_SIZE - 1, "too short", "short");
	p = patched(blob, len, 0, 0x12345678, 4);
	expect_refused(p, len, "bad magic", "magic");
	free(p);
	p = patched(blob, len, HDR_VERSION, KF_VCPU_STATE_VERSION + 1, 2);
	expect_refused(p, len, "version", "version");
	free(p);
	memcpy(&arch, (const char *)blob + HDR_ARCH, sizeof(arch));
	p = patched(blob, len, HDR_ARCH, arch == 1 ? 2 : 1, 2);
	expect_refused(p, len, "is not", "architecture");
	free(p);
	p = patched(blob, len, HDR_TOTAL_LEN, (uint32_t)len + 8, 4);
	expect_refused(p, len, "header says", "length");
	free(p);
	p = patched(blob, len, HDR_VCPU_ID, KF_MAX_VCPUS, 4);
	expect_refused(p, len, "out of range", "vCPU id");
	free(p);
	/* Cut short, with the header's length to match: the last item is
	 * truncated or missing. */
	p = patched(blob, len, HDR_TOTAL_LEN, (uint32_t)len - 8, 4);
	TEST_ASSERT(kf_vcpu_state_check(p, len - 8, NULL) < 0,
		    "a blob cut by 8 bytes passed the check");
	printf("%-14s %s\n", "cut", kf_error());
	free(p);
}

int main(void)
{
	struct kf_vcpu_ops ops = { .sync = stop_at_sync };
	struct kf_vcpu *vcpu, *other, *fresh;
	struct kf_vm *vm, *vm2;
	unsigned int id = 99;
	void *blob;
	size_t len;

	kf_test_require_kvm();
	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_vcpu_add(vm, 0, guest_sync, 0x5157, &vcpu));
	TEST_OK(kf_vcpu_add(vm, 1, guest_sync, 0, &other));
	TEST_OK(kf_vcpu_run(vcpu, &ops));
	TEST_OK(kf_vcpu_state_save(vcpu, &blob, &len));
	TEST_ASSERT(len > HDR_SIZE && len <= KF_VCPU_STATE_MAX, "blob of %zu bytes", len);
	TEST_OK(kf_vcpu_state_check(blob, len, &id));
	TEST_ASSERT_EQ(id, 0);
	TEST_ASSERT(kf_vcpu_state_ip(blob, len) != 0, "the blob names its instruction pointer");
	refuse_damaged(blob, len);

	TEST_ASSERT(kf_vcpu_state_restore(other, blob, len) < 0 &&
		    strstr(kf_error(), "cannot be loaded into vCPU 1"),
		    "a vCPU of another id took the blob: %s", kf_error());

	TEST_OK(kf_vm_create(&vm2));
	TEST_OK(kf_vcpu_add(vm2, 0, guest_sync, 0, &fresh));
	TEST_OK(kf_vcpu_state_restore(fresh, blob, len));
	printf("saved and restored %zu bytes, ip 0x%llx\n", len,
	       (unsigned long long)kf_vcpu_state_ip(blob, len));
	free(blob);
	kf_vm_destroy(vm2);
	kf_vm_destroy(vm);
	TEST_PASS("vCPU state: saved, checked, restored; damaged blobs and another vCPU refused");
}
