// SPDX-License-Identifier: MIT
/*
 * The raw baseline: poll, read one message, resolve, repeat.  This is the
 * loop of the KVM selftests' demand_paging_test (and, give or take, of
 * QEMU's and Firecracker's handlers), kept free of anything the engine
 * adds, so the benchmark can print the engine's overhead as a ratio.
 */
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/uffd_raw.h>

#include "../internal.h"
#include <kvmfault/vm.h>

struct kf_uffd_raw_part {
	struct kf_uffd_raw *raw;
	int uffd;
	char *start;
	uint64_t len;
};

struct kf_uffd_raw {
	struct kf_uffd_raw_config cfg;
	char *alias;		/* minor: second mapping of the memfd */
	int stopfd;
	unsigned int nr_parts;
	struct kf_uffd_raw_part *parts;
	unsigned int nr_threads;
	pthread_t *threads;
	uint64_t faults;
	int error;
	char errmsg[256];
};

static void kf_raw_error(struct kf_uffd_raw *raw, int err)
{
	int zero = 0;

	if (__atomic_compare_exchange_n(&raw->error, &zero, err, false,
					__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		snprintf(raw->errmsg, sizeof(raw->errmsg), "%s", kf_error());
}

static void *kf_raw_handler(void *arg)
{
	struct kf_uffd_raw_part *part = arg;
	struct kf_uffd_raw *raw = part->raw;
	struct pollfd pfd[2] = {
		{ .fd = part->uffd, .events = POLLIN },
		{ .fd = raw->stopfd, .events = POLLIN },
	};
	struct uffd_msg msg;

	for (;;) {
		uint64_t addr, off;
		ssize_t n;
		int ret;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			kf_raw_error(raw, errno);
			break;
		}
		if (pfd[1].revents)
			break;
		n = read(part->uffd, &msg, sizeof(msg));
		if (n != sizeof(msg))
			continue;	/* EAGAIN: another handler took it */
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		addr = msg.arg.pagefault.address & ~(KF_PAGE_SIZE - 1);
		off = addr - (uintptr_t)raw->cfg.hva;
		if (raw->cfg.minor) {
			memcpy(raw->alias + off, (const char *)raw->cfg.image + off,
			       KF_PAGE_SIZE);
			ret = kf_uffd_continue(part->uffd, (void *)addr,
					       KF_PAGE_SIZE);
		} else {
			ret = kf_uffd_copy(part->uffd, (void *)addr,
					   (const char *)raw->cfg.image + off,
					   KF_PAGE_SIZE);
		}
		if (ret == -EEXIST)
			ret = kf_uffd_wake(part->uffd, (void *)addr, KF_PAGE_SIZE);
		if (ret) {
			kf_raw_error(raw, -ret);
			break;
		}
		__atomic_fetch_add(&raw->faults, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

int kf_uffd_raw_start(const struct kf_uffd_raw_config *cfg,
		      struct kf_uffd_raw **rawp)
{
	unsigned int nr = cfg->nr_uffds ? cfg->nr_uffds : 1;
	unsigned int per = cfg->handlers ? cfg->handlers : 1;
	uint64_t pages = cfg->size / KF_PAGE_SIZE, need, mode;
	struct kf_uffd_raw *raw;
	unsigned int i, t;
	int ret;

	*rawp = NULL;
	if (!cfg->hva || !pages || cfg->size % KF_PAGE_SIZE || nr > pages)
		return kf_fail(EINVAL, "raw uffd loop: bad range or too many uffds");
	raw = calloc(1, sizeof(*raw));
	if (!raw)
		return kf_fail(ENOMEM, "raw uffd loop");
	raw->cfg = *cfg;
	raw->alias = MAP_FAILED;
	raw->stopfd = -1;
	raw->parts = calloc(nr, sizeof(*raw->parts));
	raw->threads = calloc((size_t)nr * per, sizeof(*raw->threads));
	if (!raw->parts || !raw->threads) {
		ret = kf_fail(ENOMEM, "raw uffd loop: setup");
		goto fail;
	}
	/* Only now may the cleanup look at the parts' descriptors. */
	raw->nr_parts = nr;
	for (i = 0; i < nr; i++)
		raw->parts[i].uffd = -1;
	raw->stopfd = eventfd(0, EFD_CLOEXEC);
	if (raw->stopfd < 0) {
		ret = kf_fail_errno(errno, "raw uffd loop: eventfd");
		goto fail;
	}
	if (cfg->minor) {
		raw->alias = mmap(NULL, cfg->size, PROT_READ | PROT_WRITE,
				  MAP_SHARED, cfg->memfd, 0);
		if (raw->alias == MAP_FAILED) {
			ret = kf_fail_errno(errno, "raw uffd loop: alias mapping");
			goto fail;
		}
		need = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM;
		mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR;
	} else {
		need = 0;
		mode = UFFDIO_REGISTER_MODE_MISSING;
	}
	for (i = 0; i < nr; i++) {
		struct kf_uffd_raw_part *p = &raw->parts[i];
		uint64_t first = pages * i / nr, last = pages * (i + 1) / nr;

		p->raw = raw;
		p->start = (char *)cfg->hva + first * KF_PAGE_SIZE;
		p->len = (last - first) * KF_PAGE_SIZE;
		p->uffd = kf_uffd_open(need, NULL);
		if (p->uffd < 0) {
			ret = p->uffd;
			goto fail;
		}
		ret = kf_uffd_register(p->uffd, p->start, p->len, mode);
		if (ret)
			goto fail;
	}
	for (i = 0; i < nr; i++) {
		for (t = 0; t < per; t++) {
			ret = kf_start_thread(&raw->threads[raw->nr_threads],
					      kf_raw_handler, &raw->parts[i],
					      cfg->pin, i);
			if (ret) {
				ret = kf_fail(-ret, "raw uffd loop: %s", kf_error());
				goto fail;
			}
			raw->nr_threads++;
		}
	}
	*rawp = raw;
	return 0;
fail:
	kf_uffd_raw_stop(raw);
	return ret;
}

uint64_t kf_uffd_raw_faults(struct kf_uffd_raw *raw)
{
	return __atomic_load_n(&raw->faults, __ATOMIC_RELAXED);
}

int kf_uffd_raw_stop(struct kf_uffd_raw *raw)
{
	uint64_t one = 1;
	unsigned int i;
	int ret;

	if (!raw)
		return 0;
	if (raw->stopfd >= 0 && write(raw->stopfd, &one, sizeof(one)) < 0)
		kf_raw_error(raw, errno);
	for (i = 0; i < raw->nr_threads; i++)
		pthread_join(raw->threads[i], NULL);
	for (i = 0; raw->parts && i < raw->nr_parts; i++)
		if (raw->parts[i].uffd >= 0)
			close(raw->parts[i].uffd);
	if (raw->alias != MAP_FAILED)
		munmap(raw->alias, raw->cfg.size);
	if (raw->stopfd >= 0)
		close(raw->stopfd);
	ret = raw->error ? kf_fail(raw->error, "raw uffd loop: %s", raw->errmsg) : 0;
	free(raw->parts);
	free(raw->threads);
	free(raw);
	return ret;
}
