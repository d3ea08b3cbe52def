// SPDX-License-Identifier: MIT
/*
 * TLS for the migration channels: TLS 1.3 (OpenSSL) authenticated by a
 * pre-shared key, with an ephemeral key exchange on top (psk_dhe_ke), so a
 * recorded session stays secret even if the key leaks later; or by X.509
 * certificates both ways, from one CA (QEMU's tls-creds-x509 layout).
 *
 * A connection is read by one thread and written by others at the same
 * time, and an OpenSSL session is not safe for that.  So the socket is
 * non-blocking, every SSL call runs under the session's lock, and a call
 * that needs the socket drops the lock and waits in poll().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <kvmfault/error.h>
#include <kvmfault/migration.h>

#include "internal.h"

#define KF_TLS_CIPHERSUITES "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"

struct kf_mig_tls {
	SSL_CTX *ctx;
	bool server;
	bool x509;		/* certificates, not a pre-shared key */
	char client_name[256];	/* X.509 source: the name clients must carry */
	char identity[KF_MIG_PSK_MAX_IDENTITY + 1];
	unsigned char key[KF_MIG_PSK_MAX_KEY];
	size_t key_len;
};

struct kf_tls_session {
	SSL *ssl;
	int fd;
	pthread_mutex_t lock;
};

/* The last OpenSSL error, the one that sums up, for a message. */
static const char *kf_tls_reason(void)
{
	static __thread char buf[256];
	unsigned long e = ERR_peek_last_error();

	if (!e)
		return "no detail";
	ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}

static struct kf_mig_tls *kf_tls_of(SSL *ssl)
{
	return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
}

static unsigned int kf_tls_psk_client(SSL *ssl, const char *hint,
				      char *identity, unsigned int max_identity,
				      unsigned char *psk, unsigned int max_psk)
{
	struct kf_mig_tls *tls = kf_tls_of(ssl);

	(void)hint;
	if (strlen(tls->identity) + 1 > max_identity || tls->key_len > max_psk)
		return 0;
	strcpy(identity, tls->identity);
	memcpy(psk, tls->key, tls->key_len);
	return (unsigned int)tls->key_len;
}

static unsigned int kf_tls_psk_server(SSL *ssl, const char *identity,
				      unsigned char *psk, unsigned int max_psk)
{
	struct kf_mig_tls *tls = kf_tls_of(ssl);

	/* An unknown identity gets no key: the handshake fails. */
	if (!identity || strcmp(identity, tls->identity) || tls->key_len > max_psk)
		return 0;
	memcpy(psk, tls->key, tls->key_len);
	return (unsigned int)tls->key_len;
}

static int kf_tls_refuse_cert(int preverify_ok, X509_STORE_CTX *ctx)
{
	(void)preverify_ok;
	(void)ctx;
	return 0;
}

/* Credentials for one role with the settings both kinds share. */
static int kf_tls_new(bool server, struct kf_mig_tls **tlsp)
{
	struct kf_mig_tls *tls;

	*tlsp = NULL;
	tls = calloc(1, sizeof(*tls));
	if (!tls)
		return kf_fail(ENOMEM, "out of memory");
	tls->server = server;
	tls->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!tls->ctx) {
		free(tls);
		return kf_fail(ENOMEM, "TLS: no context: %s", kf_tls_reason());
	}
	if (!SSL_CTX_set_min_proto_version(tls->ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(tls->ctx, KF_TLS_CIPHERSUITES)) {
		int ret = kf_fail(EINVAL, "TLS: cannot require TLS 1.3: %s", kf_tls_reason());

		kf_mig_tls_free(tls);
		return ret;
	}
	/* A connection that just ends is a dropped connection (the
	 * protocol's COMPLETE tells the end of a session), not a TLS error. */
	SSL_CTX_set_options(tls->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* No resumption tickets: every connection proves the key afresh. */
	SSL_CTX_set_num_tickets(tls->ctx, 0);
	SSL_CTX_set_session_cache_mode(tls->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(tls->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* Read whole records and more at once, not a header and a body. */
	SSL_CTX_set_read_ahead(tls->ctx, 1);
	SSL_CTX_set_app_data(tls->ctx, tls);
	*tlsp = tls;
	return 0;
}

int kf_mig_tls_psk_new(const void *key, size_t key_len, const char *identity,
		       bool server, struct kf_mig_tls **tlsp)
{
	struct kf_mig_tls *tls;
	int ret;

	*tlsp = NULL;
	if (key_len < KF_MIG_PSK_MIN_KEY || key_len > KF_MIG_PSK_MAX_KEY)
		return kf_fail(EINVAL, "a pre-shared key of %zu bytes: it must have %d to %d",
			       key_len, KF_MIG_PSK_MIN_KEY, KF_MIG_PSK_MAX_KEY);
	if (!identity || !identity[0] || strlen(identity) > KF_MIG_PSK_MAX_IDENTITY)
		return kf_fail(EINVAL, "a pre-shared key needs an identity of 1 to %d characters",
			       KF_MIG_PSK_MAX_IDENTITY);
	ret = kf_tls_new(server, &tls);
	if (ret)
		return ret;
	if (server) {
		SSL_CTX_set_psk_server_callback(tls->ctx, kf_tls_psk_server);
	} else {
		SSL_CTX_set_psk_client_callback(tls->ctx, kf_tls_psk_client);
		/* A server that answers with a certificate instead of the key
		 * is nobody this destination trusts: refuse every certificate
		 * (OpenSSL's default would take any). */
		SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER, kf_tls_refuse_cert);
	}
	strcpy(tls->identity, identity);
	memcpy(tls->key, key, key_len);
	tls->key_len = key_len;
	*tlsp = tls;
	return 0;
}

void kf_mig_tls_free(struct kf_mig_tls *tls)
{
	if (!tls)
		return;
	SSL_CTX_free(tls->ctx);
	OPENSSL_cleanse(tls->key, sizeof(tls->key));
	free(tls);
}

static int kf_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* "identity:hexkey\n", the format of QEMU's keys.psk. */
static int kf_tls_parse_psk(const char *path, char *text, char *identity,
			    unsigned char *key, size_t *key_len)
{
	char *colon = strchr(text, ':'), *hex, *end;
	size_t n = 0, id_len;

	end = text + strcspn(text, "\r\n");
	if (!colon || colon > end)
		return kf_fail(EINVAL, "%s: no 'identity:hexkey' line", path);
	id_len = (size_t)(colon - text);
	if (!id_len || id_len > KF_MIG_PSK_MAX_IDENTITY)
		return kf_fail(EINVAL, "%s: the identity must have 1 to %d characters",
			       path, KF_MIG_PSK_MAX_IDENTITY);
	memcpy(identity, text, id_len);
	identity[id_len] = 0;
	for (hex = colon + 1; hex + 1 < end && n < KF_MIG_PSK_MAX_KEY; hex += 2) {
		int hi = kf_hex_digit(hex[0]), lo = kf_hex_digit(hex[1]);

		if (hi < 0 || lo < 0)
			break;
		key[n++] = (unsigned char)(hi << 4 | lo);
	}
	if (hex != end || n < KF_MIG_PSK_MIN_KEY)
		return kf_fail(EINVAL, "%s: the key must be %d to %d bytes in hex digits",
			       path, KF_MIG_PSK_MIN_KEY, KF_MIG_PSK_MAX_KEY);
	*key_len = n;
	return 0;
}

int kf_mig_tls_psk_file(const char *path, bool server, struct kf_mig_tls **tlsp)
{
	char text[KF_MIG_PSK_MAX_IDENTITY + 2 * KF_MIG_PSK_MAX_KEY + 8];
	char identity[KF_MIG_PSK_MAX_IDENTITY + 1];
	unsigned char key[KF_MIG_PSK_MAX_KEY];
	struct stat st;
	size_t key_len = 0;
	ssize_t n;
	int fd, ret;

	*tlsp = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kf_fail_errno(errno, "pre-shared key file %s", path);
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return kf_fail(EINVAL, "pre-shared key file %s: not a regular file", path);
	}
	if (st.st_mode & 077) {
		close(fd);
		return kf_fail(EPERM, "pre-shared key file %s: readable by others (mode %03o): chmod 600 it",
			       path, (unsigned int)(st.st_mode & 0777));
	}
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0)
		return kf_fail_errno(errno, "reading %s", path);
	text[n] = 0;
	ret = kf_tls_parse_psk(path, text, identity, key, &key_len);
	if (!ret)
		ret = kf_mig_tls_psk_new(key, key_len, identity, server, tlsp);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(text, sizeof(text));
	return ret;
}

int kf_mig_tls_psk_write(const char *path, const char *identity)
{
	unsigned char key[32];
	char line[KF_MIG_PSK_MAX_IDENTITY + 2 * sizeof(key) + 4];
	size_t i, len;
	int fd, ret = 0;

	if (!identity || !identity[0] || strlen(identity) > KF_MIG_PSK_MAX_IDENTITY ||
	    strchr(identity, ':') || strchr(identity, '\n'))
		return kf_fail(EINVAL, "a key identity needs 1 to %d characters, no ':'",
			       KF_MIG_PSK_MAX_IDENTITY);
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key))
		return kf_fail_errno(errno, "getrandom");
	len = (size_t)snprintf(line, sizeof(line), "%s:", identity);
	for (i = 0; i < sizeof(key); i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%02x", key[i]);
	line[len++] = '\n';
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		ret = kf_fail_errno(errno, "creating the key file %s", path);
	else if (write(fd, line, len) != (ssize_t)len)
		ret = kf_fail_errno(errno, "writing %s", path);
	if (fd >= 0 && close(fd) && !ret)
		ret = kf_fail_errno(errno, "writing %s", path);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(line, sizeof(line));
	return ret;
}

/* ---------------------------------------------------------------- X.509 */

/* Whether a peer name is an IP address (else a DNS name). */
static bool kf_tls_is_ip(const char *name)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* Whether cert names name (a DNS name, or an IP address). */
static bool kf_tls_names(X509 *cert, const char *name)
{
	if (kf_tls_is_ip(name))
		return X509_check_ip_asc(cert, name, 0) == 1;
	return X509_check_host(cert, name, 0, 0, NULL) == 1;
}

/* A private key: a regular file its owner alone may read. */
static int kf_tls_check_key_file(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return kf_fail_errno(errno, "X.509 private key %s", path);
	if (!S_ISREG(st.st_mode))
		return kf_fail(EINVAL, "X.509 private key %s: not a regular file", path);
	if (st.st_mode & 077)
		return kf_fail(EPERM, "X.509 private key %s: readable by others (mode %03o): chmod 600 it",
			       path, (unsigned int)(st.st_mode & 0777));
	return 0;
}

static int kf_tls_x509_load(struct kf_mig_tls *tls, const char *ca,
			    const char *cert, const char *key,
			    const char *peer_name)
{
	X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(tls->ctx);

	if (SSL_CTX_load_verify_locations(tls->ctx, ca, NULL) != 1)
		return kf_fail(EINVAL, "X.509: CA certificate %s: %s", ca, kf_tls_reason());
	if (SSL_CTX_use_certificate_chain_file(tls->ctx, cert) != 1)
		return kf_fail(EINVAL, "X.509: certificate %s: %s", cert, kf_tls_reason());
	if (SSL_CTX_use_PrivateKey_file(tls->ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(tls->ctx) != 1)
		return kf_fail(EINVAL, "X.509: private key %s is unreadable or not the key of %s: %s",
			       key, cert, kf_tls_reason());
	if (!peer_name)
		return 0;
	if (tls->server) {
		/* OpenSSL checks names on the server's certificate only:
		 * the client's is checked after the handshake. */
		if ((size_t)snprintf(tls->client_name, sizeof(tls->client_name), "%s",
				     peer_name) >= sizeof(tls->client_name))
			return kf_fail(EINVAL, "X.509: client name too long");
		return 0;
	}
	if (kf_tls_is_ip(peer_name)) {
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, peer_name) != 1)
			return kf_fail(EINVAL, "X.509: peer address %s: %s", peer_name,
				       kf_tls_reason());
	} else if (X509_VERIFY_PARAM_set1_host(vp, peer_name, 0) != 1) {
		return kf_fail(EINVAL, "X.509: peer name %s: %s", peer_name,
			       kf_tls_reason());
	}
	return 0;
}

int kf_mig_tls_x509_dir(const char *dir, bool server, const char *peer_name,
			struct kf_mig_tls **tlsp)
{
	const char *role = server ? "server" : "client";
	char ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	struct kf_mig_tls *tls;
	int ret;

	*tlsp = NULL;
	if (!server && (!peer_name || !peer_name[0]))
		return kf_fail(EINVAL, "X.509: the destination must name the source it expects (peer_name)");
	if ((size_t)snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir) >= sizeof(ca) ||
	    (size_t)snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, role) >= sizeof(cert) ||
	    (size_t)snprintf(key, sizeof(key), "%s/%s-key.pem", dir, role) >= sizeof(key))
		return kf_fail(ENAMETOOLONG, "X.509 directory %s: name too long", dir);
	ret = kf_tls_check_key_file(key);
	if (ret)
		return ret;
	ret = kf_tls_new(server, &tls);
	if (ret)
		return ret;
	tls->x509 = true;
	ret = kf_tls_x509_load(tls, ca, cert, key, peer_name);
	if (ret) {
		kf_mig_tls_free(tls);
		return ret;
	}
	/* Both ends prove themselves (QEMU's verify-peer): a peer without a
	 * certificate from this CA fails the handshake. */
	SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
			   NULL);
	*tlsp = tls;
	return 0;
}

/* ------------------------------------------------------------- sessions */

/*
 * OpenSSL's socket BIO writes with write(), which raises SIGPIPE when the
 * peer is gone and kills a VMM that has not ignored it.  This one sends
 * with MSG_NOSIGNAL (and reads with recv()); the fd is the BIO's data.
 */
static int kf_bio_fd(BIO *b)
{
	return (int)(intptr_t)BIO_get_data(b);
}

static void kf_bio_retry(BIO *b, ssize_t n, bool write)
{
	BIO_clear_retry_flags(b);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		if (write)
			BIO_set_retry_write(b);
		else
			BIO_set_retry_read(b);
	}
}

static int kf_bio_write(BIO *b, const char *buf, int len)
{
	ssize_t n = send(kf_bio_fd(b), buf, (size_t)len, MSG_NOSIGNAL);

	kf_bio_retry(b, n, true);
	return (int)n;
}

static int kf_bio_read(BIO *b, char *buf, int len)
{
	ssize_t n = recv(kf_bio_fd(b), buf, (size_t)len, 0);

	kf_bio_retry(b, n, false);
	return (int)n;
}

static long kf_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *kf_bio_method;

static void kf_bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK |
				     BIO_TYPE_DESCRIPTOR, "kvmfault socket");

	if (m && BIO_meth_set_write(m, kf_bio_write) && BIO_meth_set_read(m, kf_bio_read) &&
	    BIO_meth_set_ctrl(m, kf_bio_ctrl))
		kf_bio_method = m;
	else
		BIO_meth_free(m);
}

static BIO *kf_tls_bio_new(int fd)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	BIO *b;

	pthread_once(&once, kf_bio_method_init);
	if (!kf_bio_method)
		return NULL;
	b = BIO_new(kf_bio_method);
	if (b) {
		BIO_set_data(b, (void *)(intptr_t)fd);
		BIO_set_init(b, 1);
	}
	return b;
}

static int kf_tls_wait(int fd, short events, int timeout_ms, const char *what)
{
	int ret = kf_poll_one(fd, events, timeout_ms);

	if (ret < 0)
		return ret;
	if (ret == 0)
		return kf_fail(ETIMEDOUT, "migration connection: no progress %s for %d ms",
			       what, timeout_ms);
	return 0;
}

int kf_tls_handshake(struct kf_mig_tls *tls, int fd, int timeout_ms,
		     struct kf_tls_session **sp)
{
	uint64_t deadline = kf_mig_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	struct kf_tls_session *s;
	int flags, ret = 0;
	BIO *bio;

	*sp = NULL;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK))
		return kf_fail_errno(errno, "TLS: non-blocking socket");
	s = calloc(1, sizeof(*s));
	if (!s)
		return kf_fail(ENOMEM, "out of memory");
	s->fd = fd;
	pthread_mutex_init(&s->lock, NULL);
	s->ssl = SSL_new(tls->ctx);
	bio = s->ssl ? kf_tls_bio_new(fd) : NULL;
	if (!bio) {
		ret = kf_fail(ENOMEM, "TLS: no session: %s", kf_tls_reason());
		goto fail;
	}
	SSL_set_bio(s->ssl, bio, bio);
	for (;;) {
		int r, err;

		ERR_clear_error();
		r = tls->server ? SSL_accept(s->ssl) : SSL_connect(s->ssl);
		if (r == 1 && tls->x509 &&
		    (SSL_get_verify_result(s->ssl) != X509_V_OK ||
		     !SSL_get0_peer_certificate(s->ssl))) {
			ret = kf_fail(EACCES, "TLS handshake without a verified certificate: refused");
			goto fail;
		}
		if (r == 1 && tls->client_name[0] &&
		    !kf_tls_names(SSL_get0_peer_certificate(s->ssl), tls->client_name)) {
			ret = kf_fail(EACCES, "TLS handshake failed: the client's certificate does not name %s",
				      tls->client_name);
			goto fail;
		}
		if (r == 1 && !tls->x509 && !SSL_session_reused(s->ssl)) {
			/* Done, but not with the key: a certificate handshake. */
			ret = kf_fail(EACCES, "TLS handshake without the pre-shared key: %s",
				      tls->server ? "refused" :
				      "the source showed a certificate instead, refused");
			goto fail;
		}
		if (r == 1)
			break;
		err = SSL_get_error(s->ssl, r);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			ret = kf_tls_wait(fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
					  kf_ms_until(deadline), "in the TLS handshake");
			if (ret)
				goto fail;
			continue;
		}
		ret = kf_fail(EACCES, "TLS handshake failed (%s): %s",
			      tls->x509 ? (tls->server ?
					   "the peer has no certificate of this CA, or speaks no TLS" :
					   "the source has no certificate of this CA for its address, or speaks no TLS") :
			      tls->server ? "the peer has no or another key, or speaks no TLS" :
					    "the source has another key, or speaks no TLS",
			      err == SSL_ERROR_SYSCALL && !ERR_peek_error() ?
			      "the connection closed" : kf_tls_reason());
		goto fail;
	}
	*sp = s;
	return 0;
fail:
	kf_tls_session_free(s);
	return ret;
}

void kf_tls_session_free(struct kf_tls_session *s)
{
	if (!s)
		return;
	SSL_free(s->ssl);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/*
 * One SSL_read_ex or SSL_write_ex under the lock, waiting outside it:
 * bytes moved (> 0), 0 at a clean end of stream, or -errno.
 */
static ssize_t kf_tls_io(struct kf_tls_session *s, bool write, void *buf,
			 size_t len, int timeout_ms)
{
	for (;;) {
		size_t done = 0;
		int r, err, saved;

		pthread_mutex_lock(&s->lock);
		ERR_clear_error();
		errno = 0;
		r = write ? SSL_write_ex(s->ssl, buf, len, &done) :
			    SSL_read_ex(s->ssl, buf, len, &done);
		err = r ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
		saved = errno;
		pthread_mutex_unlock(&s->lock);
		switch (err) {
		case SSL_ERROR_NONE:
			return (ssize_t)done;
		case SSL_ERROR_ZERO_RETURN:
			return 0;
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			r = kf_tls_wait(s->fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
					timeout_ms, write ? "writing" : "reading");
			if (r)
				return r;
			continue;
		case SSL_ERROR_SYSCALL:
			if (!ERR_peek_error() && saved)
				return kf_fail_errno(saved == EPIPE ? ECONNRESET : saved,
						     "migration connection");
			if (!ERR_peek_error())
				return kf_fail(EIO, "migration connection: TLS: the socket failed");
			/* fall through */
		default:
			return kf_fail(EPROTO, "migration connection: TLS: %s",
				       kf_tls_reason());
		}
	}
}

long kf_tls_read(struct kf_tls_session *s, void *buf, size_t len,
		    int timeout_ms)
{
	return kf_tls_io(s, false, buf, len, timeout_ms);
}

int kf_tls_write(struct kf_tls_session *s, const void *buf, size_t len,
		 int timeout_ms)
{
	while (len) {
		ssize_t n = kf_tls_io(s, true, (void *)buf, len, timeout_ms);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return kf_fail(ECONNRESET, "migration connection closed by the peer");
		buf = (const char *)buf + n;
		len -= (size_t)n;
	}
	return 0;
}
