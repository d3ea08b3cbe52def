#!/bin/sh
# SPDX-License-Identifier: MIT
# The main job: a post-copy live migration of a guest between two processes
# on this machine when the migration tools are built, else a guest workload
# on this machine's KVM; on a machine without KVM, the migration inside the
# QEMU rig (kernel/rig.sh demo).
set -u
cd "$(dirname "$0")/.." || exit 1

if [ ! -e /dev/kvm ]; then
	echo "kvmfault: /dev/kvm is missing: this machine has no KVM, so the demo runs inside the QEMU rig: the patched kernel under QEMU's software CPU, with KVM inside (the first time, the rig's packages are installed and the kernel is built: 10 to 15 minutes on 2 cores)"
	scripts/deps.sh --rig || exit 1
	# Quiet unless it fails: glibc's warnings about static getaddrinfo.
	out=$(make -s VARIANT=static tools 2>&1) || { echo "$out" >&2; exit 1; }
	exec make -s -C kernel demo BIN="$(pwd)/build/static/bin/kvmfault"
fi
if [ "$(id -u)" -ne 0 ] && { [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; }; then
	echo "kvmfault: /dev/kvm is not accessible: run as root" >&2
	exit 1
fi
if [ -x scripts/migrate-demo.sh ] && [ -x build/bin/kvmfault ]; then
	exec scripts/migrate-demo.sh
fi
exec build/bin/kvmfault run "$@"
