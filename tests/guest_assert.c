// SPDX-License-Identifier: MIT
/* A failed guest assertion reaches the host with its file, line and values. */
#include <stdio.h>
#include <string.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/test.h>

static KF_GUEST void guest_eq(uint64_t seen)
{
	GUEST_ASSERT_EQ(seen, 42);	/* ASSERT_LINE */
}

static KF_GUEST void guest_true(uint64_t arg)
{
	GUEST_ASSERT(arg == 1);
}

static int assert_line(void)
{
	FILE *f = fopen(__FILE__, "r");
	char line[256];
	int n = 0;

	if (!f)
		return -1;	/* the source is not beside the binary */
	while (fgets(line, sizeof(line), f)) {
		n++;
		if (strstr(line, "/* ASSERT_LINE */") && !strstr(line, "strstr"))
			break;
	}
	fclose(f);
	return n;
}

static void expect_abort(void (*fn)(uint64_t), uint64_t arg,
			 const char *const *needles)
{
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	const char *msg;

	TEST_OK(kf_vm_create(&vm));
	TEST_OK(kf_vcpu_add(vm, 0, fn, arg, &vcpu));
	TEST_ASSERT_EQ(kf_vcpu_run(vcpu, NULL), -EPROTO);
	msg = kf_vcpu_errmsg(vcpu);
	for (; *needles; needles++)
		TEST_ASSERT(strstr(msg, *needles),
			    "'%s' missing from:\n%s", *needles, msg);
	printf("%s\n", msg);
	kf_vm_destroy(vm);
}

int main(void)
{
	char where[64];
	int line = assert_line();

	kf_test_require_kvm();
	if (line > 0)
		snprintf(where, sizeof(where), "guest_assert.c:%d", line);
	else
		snprintf(where, sizeof(where), "guest_assert.c:");
	expect_abort(guest_eq, 7, (const char *const[]){
		"guest assertion failed", where, "seen == 42",
		"seen     0x7 (7)", "expected 0x2a (42)", NULL });
	expect_abort(guest_true, 2, (const char *const[]){
		"guest assertion failed", "guest_assert.c:", "arg == 1", NULL });
	TEST_PASS("guest assertions report file, line and values");
}
