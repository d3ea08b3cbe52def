// SPDX-License-Identifier: MIT
/*
 * The program image.  Guest code is the program's own code: every loaded
 * segment is copied, as it is in memory now (relocated, with initialised
 * data), to the same guest physical address, and the guest maps it
 * identity.  This needs a program linked at fixed addresses (-no-pie).
 */
#include <link.h>
#include <string.h>

#include <kvmfault/compiler.h>
#include <kvmfault/error.h>

#include "vm_internal.h"

struct kf_image_walk {
	bool done;
	uint64_t bias;
	uint64_t start;
	uint64_t end;
	const ElfW(Phdr) *phdr;
	int phnum;
};

static int kf_image_walk_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	struct kf_image_walk *w = data;
	int i;

	(void)size;
	/* The first object is the executable itself. */
	w->done = true;
	w->bias = info->dlpi_addr;
	w->phdr = info->dlpi_phdr;
	w->phnum = info->dlpi_phnum;
	w->start = UINT64_MAX;
	w->end = 0;
	for (i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD)
			continue;
		w->start = KF_MIN(w->start, (uint64_t)ph->p_vaddr);
		w->end = KF_MAX(w->end, (uint64_t)(ph->p_vaddr + ph->p_memsz));
	}
	return 1;
}

static int kf_image_walk(struct kf_image_walk *w)
{
	memset(w, 0, sizeof(*w));
	dl_iterate_phdr(kf_image_walk_cb, w);
	if (!w->done || w->end == 0)
		return kf_fail(ENOEXEC, "cannot find this program's loaded segments");
	if (w->bias != 0)
		return kf_fail(ENOEXEC,
			       "this program is position independent (loaded at +0x%llx): guest code needs a program linked with -no-pie",
			       (unsigned long long)w->bias);
	return 0;
}

int kf_image_extent(uint64_t *start, uint64_t *end)
{
	struct kf_image_walk w;
	int ret = kf_image_walk(&w);

	if (ret)
		return ret;
	*start = w.start;
	*end = w.end;
	return 0;
}

bool kf_image_contains(const void *p, size_t len)
{
	uint64_t start, end, addr = (uint64_t)(uintptr_t)p;

	if (kf_image_extent(&start, &end))
		return false;
	return addr >= start && addr < end && len <= end - addr;
}

int kf_image_copy(struct kf_vm *vm)
{
	struct kf_image_walk w;
	int i, ret = kf_image_walk(&w);

	if (ret)
		return ret;
	for (i = 0; i < w.phnum; i++) {
		const ElfW(Phdr) *ph = &w.phdr[i];
		void *dst;

		if (ph->p_type != PT_LOAD)
			continue;
		dst = kf_vm_gpa_to_hva(vm, ph->p_vaddr);
		if (!dst || !kf_vm_gpa_to_hva(vm, ph->p_vaddr + ph->p_memsz - 1))
			return kf_fail(ENOSPC, "program segment at 0x%llx does not fit in the system slot",
				       (unsigned long long)ph->p_vaddr);
		kf_arch_raw_copy(dst, (const void *)(uintptr_t)ph->p_vaddr,
				 ph->p_memsz);
	}
	return 0;
}
