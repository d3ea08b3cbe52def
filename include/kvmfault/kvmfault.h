/* SPDX-License-Identifier: MIT */
/* kvmfault: everything a VMM or a test needs, in one include. */
#ifndef KVMFAULT_H
#define KVMFAULT_H

#include <kvmfault/compiler.h>
#include <kvmfault/error.h>
#include <kvmfault/exit.h>
#include <kvmfault/guest.h>
#include <kvmfault/hash.h>
#include <kvmfault/kvm.h>
#include <kvmfault/poison.h>
#include <kvmfault/private_mem.h>
#include <kvmfault/uapi.h>
#include <kvmfault/ucall.h>
#include <kvmfault/vcpu.h>
#include <kvmfault/vm.h>

#endif
