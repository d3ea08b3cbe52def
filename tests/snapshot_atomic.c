// SPDX-License-Identifier: MIT
/*
 * Saving a snapshot replaces the old one atomically: the file is private
 * (0600: it holds guest memory), and a save that fails part way (here: the
 * file size limit is hit) leaves the old snapshot byte for byte, and no
 * temporary file behind.
 */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kvmfault/kvmfault.h>
#include <kvmfault/snapshot.h>
#include <kvmfault/test.h>

#define MB (1ULL << 20)

static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY);

	TEST_ASSERT(fd >= 0 && !fstat(fd, &st), "open %s", path);
	buf = malloc(st.st_size);
	TEST_ASSERT(buf, "malloc");
	TEST_ASSERT(read(fd, buf, st.st_size) == st.st_size, "read %s", path);
	close(fd);
	*len = st.st_size;
	return buf;
}

static unsigned int dir_entries(const char *dir)
{
	struct dirent *d;
	unsigned int n = 0;
	DIR *dp = opendir(dir);

	TEST_ASSERT(dp, "opendir %s", dir);
	while ((d = readdir(dp)))
		n += d->d_name[0] != '.';
	closedir(dp);
	return n;
}

static KF_GUEST void guest_idle(uint64_t arg)
{
	(void)arg;
}

int main(void)
{
	char dir[] = "/tmp/kf-snap-atomic-XXXXXX", path[128];
	struct kf_region r = { .size = 4 * MB, .backing = KF_BACKING_ANON,
			       .guest_memfd = -1 };
	struct kf_snapshot *snap;
	struct rlimit old, lim;
	const struct kf_memslot *ms;
	struct kf_vcpu *vcpu;
	size_t len1, len2;
	char *before, *after;
	struct kf_vm *vm;
	struct stat st;
	uint64_t bytes;
	int ret;

	kf_test_require_kvm();
	TEST_ASSERT(mkdtemp(dir), "mkdtemp");
	snprintf(path, sizeof(path), "%s/guest.snap", dir);
	umask(022);
	TEST_OK(kf_vm_create(&vm));
	r.gpa = kf_vm_free_gpa(vm);
	TEST_OK(kf_vm_add_region(vm, &r, &ms));
	TEST_OK(kf_vcpu_add(vm, 0, guest_idle, 0, &vcpu));
	memset(ms->hva, 0x11, ms->size);

	TEST_OK(kf_snapshot_save(vm, &vcpu, 1, NULL, path, &bytes));
	TEST_ASSERT(!stat(path, &st), "stat");
	TEST_ASSERT((st.st_mode & 0777) == 0600,
		    "the snapshot has mode 0%o, not 0600", st.st_mode & 0777);
	before = slurp(path, &len1);

	/* The second save runs out of file size half way. */
	memset(ms->hva, 0x22, ms->size);
	signal(SIGXFSZ, SIG_IGN);
	TEST_ASSERT(!getrlimit(RLIMIT_FSIZE, &old), "getrlimit");
	lim = old;
	lim.rlim_cur = bytes / 2;
	TEST_ASSERT(!setrlimit(RLIMIT_FSIZE, &lim), "setrlimit");
	ret = kf_snapshot_save(vm, &vcpu, 1, NULL, path, NULL);
	TEST_ASSERT(!setrlimit(RLIMIT_FSIZE, &old), "setrlimit");
	TEST_ASSERT(ret == -EFBIG, "save past the size limit returned %d: %s",
		    ret, kf_error());
	printf("  failed save: %s\n", kf_error());
	after = slurp(path, &len2);
	TEST_ASSERT(len1 == len2 && !memcmp(before, after, len1),
		    "the failed save changed the old snapshot (%zu -> %zu bytes)",
		    len1, len2);
	TEST_OK(kf_snapshot_open(path, &snap));
	kf_snapshot_close(snap);
	TEST_ASSERT_EQ(dir_entries(dir), 1);

	/* A good save replaces it. */
	TEST_OK(kf_snapshot_save(vm, &vcpu, 1, NULL, path, NULL));
	free(after);
	after = slurp(path, &len2);
	TEST_ASSERT(len1 == len2 && memcmp(before, after, len1),
		    "the new save did not replace the old snapshot");
	TEST_ASSERT_EQ(dir_entries(dir), 1);

	unlink(path);
	rmdir(dir);
	free(before);
	free(after);
	kf_vm_destroy(vm);
	TEST_PASS("snapshots are saved 0600 and replaced atomically");
}
