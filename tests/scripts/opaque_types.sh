#!/bin/sh
# SPDX-License-Identifier: MIT
# struct kf_vm and struct kf_vcpu are opaque to library users, so the
# library may change them without breaking its ABI.  Against the public
# headers alone (include/), code that looks inside them, takes their size,
# embeds them, reads the library's own fields of a memslot or writes to a
# memslot must not compile, each for that reason; a program that uses the
# accessors instead compiles with -Wall -Wextra -Werror, links against
# libkvmfault.so and, where KVM is usable, gets the right answers from
# them (a VM and a vCPU are made, the guest never runs).
# usage: opaque_types.sh [BUILD]   (default build)
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$here/build}
cc=${CC:-cc}
lib=$build/libkvmfault.so
if ! command -v "$cc" >/dev/null; then
	echo "SKIP: $cc is not installed (apt-get install gcc)"
	exit 4
fi
if [ ! -f "$lib" ]; then
	echo "FAIL: $lib is missing: build it with make"
	exit 1
fi
tmp=$(mktemp -d /tmp/kf-opaque.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cflags="-std=gnu11 -Wall -Wextra -Werror"
# The compilers' messages in plain ASCII, for the patterns below.
export LC_ALL=C

# refused NAME PATTERN BODY: BODY, a statement inside a function that has
# a VM, a vCPU and a memslot, must fail to compile with a message that
# matches PATTERN (an extended regular expression).
nr_refused=0
refused() {
	name=$1
	pattern=$2
	cat >"$tmp/bad.c" <<EOF
#include <kvmfault/kvmfault.h>

int misuse(struct kf_vm *vm, struct kf_vcpu *vcpu, const struct kf_memslot *ms);
int misuse(struct kf_vm *vm, struct kf_vcpu *vcpu, const struct kf_memslot *ms)
{
	(void)vm; (void)vcpu; (void)ms;
	$3
	return 0;
}
EOF
	if $cc $cflags -I"$here/include" -fsyntax-only "$tmp/bad.c" >"$tmp/bad.log" 2>&1; then
		echo "FAIL: $name compiles against the public headers"
		echo "  expected: a compiler error matching '$pattern'"
		echo "  got:      no error"
		exit 1
	fi
	if ! grep -Eq "$pattern" "$tmp/bad.log"; then
		echo "FAIL: $name does not compile, but for another reason"
		echo "  expected: a compiler error matching '$pattern'"
		echo "  got:"
		sed 's/^/    /' "$tmp/bad.log" | head -n 20
		exit 1
	fi
	nr_refused=$((nr_refused + 1))
}

# gcc: "invalid use of undefined type 'struct kf_vm'"; clang:
# "incomplete definition of type 'struct kf_vm'".
incomplete_vm="(undefined|incomplete).*type 'struct kf_vm'"
incomplete_vcpu="(undefined|incomplete).*type 'struct kf_vcpu'"
refused "vm->fd" "$incomplete_vm" 'return vm->fd;'
refused "vm->slots[]" "$incomplete_vm" 'return (int)vm->slots[0].gpa;'
refused "sizeof(struct kf_vm)" "$incomplete_vm" 'return (int)sizeof(struct kf_vm);'
refused "a struct kf_vm variable" "storage size of 'v' isn't known|incomplete type 'struct kf_vm'" \
	'struct kf_vm v; (void)&v;'
refused "vcpu->errmsg" "$incomplete_vcpu" 'return vcpu->errmsg[0];'
refused "vcpu->run" "$incomplete_vcpu" 'return (int)vcpu->run->exit_reason;'
refused "sizeof(struct kf_vcpu)" "$incomplete_vcpu" 'return (int)sizeof(struct kf_vcpu);'
refused "ms->used (the library's own)" "no member named .?used" 'return ms->used;'
refused "ms->private_pages (the library's own)" "no member named .?private_pages" 'return ms->private_pages != 0;'
refused "a write to a memslot" "read-only|returns a const value" 'kf_vm_find_slot(vm, 0)->flags = 0;'

cat >"$tmp/good.c" <<'EOF'
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include <kvmfault/kvmfault.h>

#define CHECK_EQ(seen, expected) do {					\
	unsigned long long s_ = (unsigned long long)(seen);		\
	unsigned long long e_ = (unsigned long long)(expected);		\
	if (s_ != e_) {							\
		printf("FAIL: %s == %s\n  seen     0x%llx (%lld)\n"	\
		       "  expected 0x%llx (%lld)\n", #seen, #expected,	\
		       s_, (long long)s_, e_, (long long)e_);		\
		return 1;						\
	}								\
} while (0)
#define CHECK(cond) do {						\
	if (!(cond)) {							\
		printf("FAIL: %s (%s)\n", #cond, kf_error());		\
		return 1;						\
	}								\
} while (0)

static void never_run(uint64_t arg)
{
	(void)arg;
}

int main(void)
{
	struct kf_region r = { .size = KF_PAGE_SIZE, .backing = KF_BACKING_ANON,
			       .guest_memfd = -1 };
	struct {
		struct kf_vcpu_counters c;
		uint64_t later;
	} big;
	const struct kf_memslot *sys, *ms;
	struct kf_vcpu_counters n;
	const char *why = kf_kvm_unavailable_reason();
	struct kf_vcpu *vcpu;
	struct kf_vm *vm;
	struct kf_exit exit;
	int x = 0;

	if (why) {
		printf("SKIP: %s\n", why);
		return 4;
	}
	CHECK(!kf_vm_create(&vm));
	CHECK(fcntl(kf_vm_fd(vm), F_GETFD) >= 0);
	CHECK_EQ(kf_vm_fault_access(vm),
		 kf_check_cap(kf_vm_fd(vm), KVM_CAP_MEMORY_FAULT_ACCESS) > 0);
	CHECK(kf_vm_max_vcpus(vm) >= 1 && kf_vm_max_vcpus(vm) <= KF_MAX_VCPUS);
	CHECK(!kf_vm_vcpu(vm, 0));

	/* Memslots: the system slot, a new one, free ones. */
	sys = kf_vm_slot(vm, KF_SYSTEM_SLOT);
	CHECK(sys);
	CHECK_EQ(sys->slot, KF_SYSTEM_SLOT);
	CHECK_EQ(kf_vm_find_slot(vm, sys->gpa), sys);
	CHECK(!kf_vm_slot(vm, 1));
	CHECK(!kf_vm_slot(vm, KF_MAX_SLOTS));
	r.gpa = kf_vm_free_gpa(vm);
	CHECK(!kf_vm_add_region(vm, &r, &ms));
	CHECK_EQ(kf_vm_slot(vm, ms->slot), ms);
	CHECK_EQ(kf_vm_find_slot(vm, r.gpa), ms);
	CHECK_EQ(ms->gpa, r.gpa);
	CHECK_EQ(ms->size, r.size);
	CHECK_EQ(ms->memfd, -1);
	CHECK_EQ(ms->guest_memfd, -1);
	CHECK_EQ(kf_vm_gpa_to_hva(vm, r.gpa), ms->hva);
	CHECK(!kf_vm_set_region_flags(vm, ms->slot, KVM_MEM_LOG_DIRTY_PAGES));
	CHECK_EQ(ms->flags, KVM_MEM_LOG_DIRTY_PAGES);

	/* A vCPU and what it tells. */
	CHECK(!kf_vcpu_add(vm, 0, never_run, 0, &vcpu));
	CHECK_EQ(kf_vm_vcpu(vm, 0), vcpu);
	CHECK(!kf_vm_vcpu(vm, 1));
	CHECK(!kf_vm_vcpu(vm, KF_MAX_VCPUS));
	CHECK_EQ(kf_vcpu_id(vcpu), 0);
	CHECK_EQ(kf_vcpu_vm(vcpu), vm);
	CHECK(fcntl(kf_vcpu_fd(vcpu), F_GETFD) >= 0);
	CHECK(kf_vcpu_fd(vcpu) != kf_vm_fd(vm));
	CHECK(!kf_vcpu_opaque(vcpu));
	kf_vcpu_set_opaque(vcpu, &x);
	CHECK_EQ(kf_vcpu_opaque(vcpu), &x);
	CHECK_EQ(kf_vcpu_result(vcpu), 0);
	CHECK_EQ(strlen(kf_vcpu_errmsg(vcpu)), 0);
	CHECK_EQ(kf_vcpu_set_max_repeated_faults(vcpu, 0), -EINVAL);
	CHECK_EQ(kf_vcpu_set_max_repeated_faults(vcpu, 3), 0);
	CHECK(!kf_vcpu_counters(vcpu, &n, sizeof(n)));
	CHECK_EQ(n.nr_exits, 0);

	/* kvm_run is the vCPU's own: immediate_exit keeps the guest out. */
	kf_vcpu_kvm_run(vcpu)->immediate_exit = 1;
	kf_vcpu_run_once(vcpu, &exit);
	CHECK_EQ(exit.kind, KF_EXIT_INTERRUPTED);
	kf_vcpu_kvm_run(vcpu)->immediate_exit = 0;
	CHECK(!kf_vcpu_counters(vcpu, &n, sizeof(n)));
	CHECK_EQ(n.nr_exits, 1);
	CHECK_EQ(n.nr_memory_faults, 0);
	CHECK_EQ(n.nr_ucalls, 0);
	/* A caller with a longer structure gets zeros past what it knows;
	 * one with a shorter one gets only what fits. */
	memset(&big, 0xff, sizeof(big));
	CHECK(!kf_vcpu_counters(vcpu, &big.c, sizeof(big)));
	CHECK_EQ(big.c.nr_exits, 1);
	CHECK_EQ(big.later, 0);
	memset(&n, 0xff, sizeof(n));
	CHECK(!kf_vcpu_counters(vcpu, &n, sizeof(n.nr_exits)));
	CHECK_EQ(n.nr_exits, 1);
	CHECK_EQ(n.nr_ucalls, ~0ULL);
	CHECK_EQ(kf_vcpu_counters(vcpu, NULL, sizeof(n)), -EINVAL);

	kf_vm_destroy(vm);
	printf("PASS\n");
	return 0;
}
EOF
# The library by its soname, as an installed copy would be found.
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
case $soname in
libkvmfault.so.[0-9]*) ;;
*) echo "FAIL: $lib has no soname libkvmfault.so.N ('$soname')"; exit 1 ;;
esac
ln -s "$lib" "$tmp/$soname"
if ! $cc $cflags -I"$here/include" -no-pie -o "$tmp/good" "$tmp/good.c" \
	-L"$build" -lkvmfault -Wl,-rpath,"$tmp" -pthread >"$tmp/good.log" 2>&1; then
	echo "FAIL: a program that uses the accessors does not build against the public headers and $lib:"
	sed 's/^/  /' "$tmp/good.log" | head -n 30
	exit 1
fi
if ! readelf -d "$tmp/good" | grep NEEDED | grep -qF "[$soname]"; then
	echo "FAIL: the accessor program does not use $soname"
	exit 1
fi
"$tmp/good" >"$tmp/run.log" 2>&1
rc=$?
if [ $rc -eq 4 ]; then
	echo "SKIP: kf_vm and kf_vcpu are opaque and the accessors build and link, but cannot run here: $(sed -n 's/^SKIP: //p' "$tmp/run.log" | head -n 1)"
	exit 4
fi
if [ $rc -ne 0 ]; then
	echo "FAIL: the accessors gave wrong answers through libkvmfault.so (exit $rc):"
	sed 's/^/  /' "$tmp/run.log" | tail -n 20
	exit 1
fi
echo "PASS: kf_vm and kf_vcpu are opaque ($nr_refused misuses refused), and the accessors work through libkvmfault.so"
