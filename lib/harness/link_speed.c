// SPDX-License-Identifier: MIT
/*
 * How fast the link is, measured in the same run as a migration, one
 * direction over loopback TCP:
 *   raw    write() and read() of 256 KiB chunks: what the link can do;
 *   plain  PAGES messages over a plain migration connection, checksummed
 *          and verified: what the channel can do;
 *   tls    the same over TLS: the channel once encryption is paid.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kvmfault/error.h>
#include <kvmfault/migration.h>
#include <kvmfault/migration_run.h>

#define KF_LINK_CHUNK (256U << 10)
#define KF_LINK_SOURCE (16U << 20)	/* pages sent over and over */

struct kf_link_end {
	int fd;
	bool channel;		/* a migration connection, not raw bytes */
	struct kf_mig_tls *tls;
	struct kf_mig_conn *conn;
	uint64_t bytes;
	int ret;
};

static void *kf_link_accept(void *arg)
{
	struct kf_link_end *end = arg;

	end->fd = kf_mig_accept(end->fd, 10000);
	if (end->fd < 0) {
		end->ret = end->fd;
		return NULL;
	}
	if (end->tls)
		end->ret = kf_mig_conn_new_tls(end->fd, end->tls, 10000, &end->conn);
	else if (end->channel)
		end->ret = kf_mig_conn_new(end->fd, &end->conn);
	return NULL;
}

static void *kf_link_read(void *arg)
{
	struct kf_link_end *end = arg;
	char *buf = malloc(KF_LINK_CHUNK);
	uint64_t got = 0;

	end->ret = buf ? 0 : -ENOMEM;
	while (!end->ret && got < end->bytes) {
		struct kf_mig_msg msg;
		ssize_t n;

		if (end->conn) {
			end->ret = kf_mig_recv(end->conn, &msg);
			if (!end->ret && msg.hdr.type == KF_MIG_PAGES)
				end->ret = kf_mig_pages_verify(&msg);
			got += (uint64_t)msg.u.pages.h.count * KF_PAGE_SIZE;
			continue;
		}
		n = read(end->fd, buf, KF_LINK_CHUNK);
		if (n <= 0)
			end->ret = n ? -errno : -ECONNRESET;
		else
			got += (uint64_t)n;
	}
	free(buf);
	return NULL;
}

/* A connected pair: *writer here, reader's end set up (TLS or not). */
static int kf_link_connect(struct kf_link_end *reader, struct kf_mig_tls *tls,
			   bool channel, struct kf_mig_conn **writer, int *wfd)
{
	pthread_t t;
	char addr[64];
	int lfd, port, ret = 0;

	*writer = NULL;
	lfd = kf_mig_listen("127.0.0.1:0", &port);
	if (lfd < 0)
		return lfd;
	reader->fd = lfd;
	if (pthread_create(&t, NULL, kf_link_accept, reader)) {
		close(lfd);
		return kf_fail(EAGAIN, "link test: no thread");
	}
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	*wfd = kf_mig_connect(addr, 10000);
	if (*wfd >= 0 && tls)
		ret = kf_mig_conn_new_tls(*wfd, tls, 10000, writer);
	else if (*wfd >= 0 && channel)
		ret = kf_mig_conn_new(*wfd, writer);
	pthread_join(t, NULL);
	close(lfd);
	if (*wfd < 0)
		return *wfd;
	if (!ret && reader->ret)
		ret = reader->ret;
	return ret;
}

enum kf_link_kind { KF_LINK_RAW, KF_LINK_PLAIN, KF_LINK_TLS };

static int kf_link_run(enum kf_link_kind kind, uint64_t bytes, const char *src,
		       double *bps)
{
	struct kf_mig_tls *tls_reader = NULL, *tls_writer = NULL;
	struct kf_link_end reader = { .channel = kind != KF_LINK_RAW };
	struct kf_mig_conn *writer = NULL;
	uint64_t sent = 0, t0;
	int wfd = -1, ret;
	pthread_t t;

	if (kind == KF_LINK_TLS) {
		ret = kf_mig_psk_pair("link", &tls_reader, &tls_writer);
		if (ret)
			goto out;
		reader.tls = tls_reader;
	}
	ret = kf_link_connect(&reader, tls_writer, kind != KF_LINK_RAW, &writer, &wfd);
	if (ret)
		goto out;
	reader.bytes = bytes;
	t0 = kf_mig_now_ns();
	if (pthread_create(&t, NULL, kf_link_read, &reader)) {
		ret = kf_fail(EAGAIN, "link test: no thread");
		goto out;
	}
	while (sent < bytes && !ret) {
		uint64_t off = sent % KF_LINK_SOURCE, n = KF_MIN(bytes - sent, (uint64_t)KF_LINK_CHUNK);

		if (writer) {
			ret = kf_mig_send_pages(writer, off, src + off, n / KF_PAGE_SIZE,
						KF_MIG_CAUSE_PUSH);
		} else {
			ssize_t w = write(wfd, src + off, n);

			if (w <= 0)
				ret = kf_fail_errno(errno, "link test: write");
			n = w > 0 ? (uint64_t)w : 0;
		}
		sent += n;
	}
	if (ret)
		shutdown(wfd, SHUT_RDWR);
	pthread_join(t, NULL);
	if (!ret && reader.ret)
		ret = kf_fail(-reader.ret, "link test: the reader failed");
	if (!ret)
		*bps = (double)bytes * 1e9 / (double)(kf_mig_now_ns() - t0);
out:
	if (writer)
		kf_mig_conn_free(writer);
	else if (wfd >= 0)
		close(wfd);
	if (reader.conn)
		kf_mig_conn_free(reader.conn);
	else if (reader.fd >= 0 && kind == KF_LINK_RAW)
		close(reader.fd);
	kf_mig_tls_free(tls_reader);
	kf_mig_tls_free(tls_writer);
	return ret;
}

int kf_mig_psk_pair(const char *identity, struct kf_mig_tls **server,
		    struct kf_mig_tls **client)
{
	unsigned char key[32];
	int ret;

	*server = *client = NULL;
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		return kf_fail_errno(errno, "getrandom: no key");
	ret = kf_mig_tls_psk_new(key, sizeof(key), identity, true, server);
	if (!ret)
		ret = kf_mig_tls_psk_new(key, sizeof(key), identity, false, client);
	explicit_bzero(key, sizeof(key));
	if (ret) {
		kf_mig_tls_free(*server);
		*server = NULL;
	}
	return ret;
}

int kf_mig_link_speed(uint64_t bytes, struct kf_link_speed *ls)
{
	char *src = aligned_alloc(KF_PAGE_SIZE, KF_LINK_SOURCE);
	int ret;

	memset(ls, 0, sizeof(*ls));
	if (!src)
		return kf_fail(ENOMEM, "link test: out of memory");
	/* Non-zero, incompressible-looking pages, like guest memory. */
	for (size_t i = 0; i < KF_LINK_SOURCE / 8; i++)
		((uint64_t *)src)[i] = (i + 1) * 0x9e3779b97f4a7c15ULL;
	bytes = KF_ALIGN_UP(bytes, KF_LINK_CHUNK);
	ret = kf_link_run(KF_LINK_RAW, bytes, src, &ls->raw_bps);
	if (!ret)
		ret = kf_link_run(KF_LINK_PLAIN, bytes, src, &ls->plain_bps);
	if (!ret)
		ret = kf_link_run(KF_LINK_TLS, bytes, src, &ls->tls_bps);
	free(src);
	return ret;
}
