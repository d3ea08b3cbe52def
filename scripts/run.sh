#!/bin/sh
# SPDX-License-Identifier: MIT
# The main job: a post-copy live migration of a guest between two processes
# on this machine when the migration tools are built, else a guest workload
# on this machine's KVM.
set -u
cd "$(dirname "$0")/.." || exit 1

if [ ! -e /dev/kvm ]; then
	echo "kvmfault: /dev/kvm is missing: this machine has no KVM, nothing to run" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ] && { [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; }; then
	echo "kvmfault: /dev/kvm is not accessible: run as root" >&2
	exit 1
fi
if [ -x scripts/migrate-demo.sh ] && [ -x build/bin/kvmfault ]; then
	exec scripts/migrate-demo.sh
fi
exec build/bin/kvmfault run "$@"
