#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Check that the UAPI values kvmfault hard-codes (include/kvmfault/uapi.h)
# are those of the patched kernel (its `make headers_install` output):
#  - every value the patched <linux/kvm.h> also defines must be equal
#    (compiled as _Static_asserts against the patched header);
#  - what the series adds must be there;
#  - kvm_run.memory_fault must sit in the exit union with upstream's layout;
#  - a capability number that the patched kernel does not define must not be
#    used by one of its other capabilities.
#
# usage: uapi-check.sh HEADERS_INCLUDE_DIR UAPI_H
set -euo pipefail

hdr=$1
uapi=$2
[ -r "$hdr/linux/kvm.h" ] || { echo "uapi-check: $hdr/linux/kvm.h missing" >&2; exit 2; }
[ -r "$uapi" ] || { echo "uapi-check: $uapi missing" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
c=$tmp/check.c

{
	echo '#include <stddef.h>'
	echo '#include <linux/kvm.h>'
	# What the series must provide.
	for n in KVM_EXIT_MEMORY_FAULT KVM_CAP_MEMORY_FAULT_INFO \
		KVM_MEMORY_EXIT_FLAG_READ KVM_MEMORY_EXIT_FLAG_WRITE \
		KVM_MEMORY_EXIT_FLAG_EXEC KVM_MEMORY_EXIT_FLAG_PRIVATE \
		KVM_MEM_EXIT_ON_MISSING KVM_CAP_EXIT_ON_MISSING; do
		printf '#ifndef %s\n#error "%s missing from the patched kernel headers"\n#endif\n' "$n" "$n"
	done
	# Every single-line numeric define of uapi.h.
	grep -E '^#define (KVM|GUEST_MEMFD)_[A-Z0-9_]+[[:space:]]+[(0-9]' "$uapi" |
	while read -r _ name value; do
		printf '#ifdef %s\n_Static_assert((%s) == (%s), "%s: kvmfault says %s, the patched kernel differs");\n#endif\n' \
			"$name" "$name" "$value" "$name" "$value"
	done
	cat <<'EOF'
_Static_assert(offsetof(struct kvm_run, memory_fault) == offsetof(struct kvm_run, mmio),
	       "memory_fault is not in the exit union");
_Static_assert(offsetof(struct kvm_run, memory_fault) == 32, "exit union moved");
_Static_assert(offsetof(struct kvm_run, memory_fault.flags) - offsetof(struct kvm_run, memory_fault) == 0, "flags");
_Static_assert(offsetof(struct kvm_run, memory_fault.gpa) - offsetof(struct kvm_run, memory_fault) == 8, "gpa");
_Static_assert(offsetof(struct kvm_run, memory_fault.size) - offsetof(struct kvm_run, memory_fault) == 16, "size");
_Static_assert(sizeof(((struct kvm_run *)0)->memory_fault) == 24, "memory_fault size");
EOF
	# The same layout through kvmfault's own view of the union.
	echo "#include \"$(realpath "$uapi")\""
	cat <<'EOF'
_Static_assert(KF_KVM_RUN_EXIT_UNION_OFFSET == offsetof(struct kvm_run, memory_fault),
	       "kvmfault reads memory_fault at the wrong offset");
_Static_assert(sizeof(struct kf_kvm_memory_fault) == 24, "kf_kvm_memory_fault size");
int main(void) { return 0; }
EOF
} >"$c"

if ! gcc -std=gnu11 -Wall -Werror -I"$hdr" -fsyntax-only "$c" 2>"$tmp/err"; then
	cat "$tmp/err" >&2
	echo "uapi-check: FAIL: include/kvmfault/uapi.h disagrees with the patched kernel" >&2
	exit 1
fi

# Capability numbers: one that the patched kernel lacks must be free there.
bad=0
kcaps=$tmp/kcaps
grep -E '^#define KVM_CAP_[A-Z0-9_]+[[:space:]]+[0-9]+' "$hdr/linux/kvm.h" |
	awk '{print $2, $3}' >"$kcaps"
while read -r _ name value; do
	grep -q "^$name " "$kcaps" && continue
	other=$(awk -v v="$value" '$2 == v {print $1}' "$kcaps")
	if [ -n "$other" ]; then
		echo "uapi-check: $name = $value collides with the kernel's $other" >&2
		bad=1
	fi
done < <(grep -E '^#define KVM_CAP_[A-Z0-9_]+[[:space:]]+[0-9]+' "$uapi")
[ $bad -eq 0 ] || exit 1

n=$(grep -c '_Static_assert' "$c")
echo "uapi-check: OK: $n checks of $(basename "$uapi") against $hdr/linux/kvm.h"
