// SPDX-License-Identifier: MIT
/*
 * A throwaway certificate authority for the migration channel's X.509
 * mode: tests, benchmarks and trials (`kvmfault migrate certgen`).  A
 * deployment brings certificates from its own CA.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <kvmfault/error.h>
#include <kvmfault/migration_run.h>

#define KF_X509_DAYS 30

static int kf_x509_add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return kf_fail(EINVAL, "X.509 extension %s", value);
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : kf_fail(ENOMEM, "X.509 extension %s", value);
}

/* A certificate for key named cn, signed by issuer (itself when NULL). */
static int kf_x509_make(EVP_PKEY *key, const char *cn, X509 *issuer,
			EVP_PKEY *issuer_key, const char *san, bool server,
			X509 **certp)
{
	X509 *cert = X509_new();
	X509 *signer;
	uint64_t serial;
	int ret = 0;

	*certp = NULL;
	if (!cert)
		return kf_fail(ENOMEM, "out of memory");
	signer = issuer ? issuer : cert;
	if (getrandom(&serial, sizeof(serial), 0) != sizeof(serial))
		serial = (uint64_t)getpid();
	serial >>= 1;	/* a positive serial number */
	if (!X509_set_version(cert, 2) ||
	    !ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert), serial) ||
	    !X509_gmtime_adj(X509_getm_notBefore(cert), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * KF_X509_DAYS) ||
	    !X509_set_pubkey(cert, key) ||
	    !X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN",
					MBSTRING_ASC, (const unsigned char *)cn,
					-1, -1, 0) ||
	    !X509_set_issuer_name(cert, X509_get_subject_name(signer)))
		ret = kf_fail(ENOMEM, "X.509: building the certificate of %s", cn);
	if (!ret && !issuer)
		ret = kf_x509_add_ext(cert, signer, NID_basic_constraints, "critical,CA:TRUE");
	if (!ret && !issuer)
		ret = kf_x509_add_ext(cert, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (!ret && issuer)
		ret = kf_x509_add_ext(cert, signer, NID_basic_constraints, "critical,CA:FALSE");
	if (!ret && issuer)
		ret = kf_x509_add_ext(cert, signer, NID_ext_key_usage,
				      server ? "serverAuth" : "clientAuth");
	if (!ret && san)
		ret = kf_x509_add_ext(cert, signer, NID_subject_alt_name, san);
	if (!ret && !X509_sign(cert, issuer_key, EVP_sha256()))
		ret = kf_fail(EINVAL, "X.509: signing the certificate of %s", cn);
	if (ret) {
		X509_free(cert);
		return ret;
	}
	*certp = cert;
	return 0;
}

/* Write a PEM file: a certificate (0644) or a private key (0600). */
static int kf_x509_write(const char *dir, const char *name, X509 *cert,
			 EVP_PKEY *key)
{
	char path[PATH_MAX];
	FILE *f;
	int fd, ok;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return kf_fail(ENAMETOOLONG, "%s/%s: name too long", dir, name);
	/* Never over existing credentials, never through a link. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  key ? 0600 : 0644);
	if (fd < 0)
		return kf_fail_errno(errno, "create %s", path);
	if (key && fchmod(fd, 0600)) {
		close(fd);
		return kf_fail_errno(errno, "chmod %s", path);
	}
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return kf_fail_errno(errno, "fdopen %s", path);
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) :
		   PEM_write_X509(f, cert);
	if (fclose(f) || !ok)
		return kf_fail(EIO, "writing %s", path);
	return 0;
}

/* One end's key and certificate, signed by the CA, written as role-*.pem. */
static int kf_x509_leaf(const char *dir, const char *role, X509 *ca,
			EVP_PKEY *ca_key, const char *san, bool server)
{
	char name[64];
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = NULL;
	int ret;

	if (!key)
		return kf_fail(ENOMEM, "X.509: no key for the %s", role);
	snprintf(name, sizeof(name), "kvmfault migration %s", role);
	ret = kf_x509_make(key, name, ca, ca_key, san, server, &cert);
	snprintf(name, sizeof(name), "%s-cert.pem", role);
	if (!ret)
		ret = kf_x509_write(dir, name, cert, NULL);
	snprintf(name, sizeof(name), "%s-key.pem", role);
	if (!ret)
		ret = kf_x509_write(dir, name, NULL, key);
	X509_free(cert);
	EVP_PKEY_free(key);
	return ret;
}

static const char *const kf_x509_files[] = {
	"ca-cert.pem", "server-cert.pem", "server-key.pem",
	"client-cert.pem", "client-key.pem",
};

/* None of the files may exist yet: a half-replaced set is worse than none. */
static int kf_x509_dir_free(const char *dir)
{
	char path[PATH_MAX];
	unsigned int i;

	for (i = 0; i < sizeof(kf_x509_files) / sizeof(kf_x509_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, kf_x509_files[i]);
		if (!access(path, F_OK) || errno != ENOENT)
			return kf_fail(EEXIST, "%s exists already: not replacing credentials",
				       path);
	}
	return 0;
}

int kf_x509_gen_dir(const char *dir, const char *server_san)
{
	EVP_PKEY *ca_key = EVP_EC_gen("P-256");
	uint32_t id = (uint32_t)getpid();
	X509 *ca = NULL;
	char name[64];
	int ret;

	ret = kf_x509_dir_free(dir);
	if (ret) {
		EVP_PKEY_free(ca_key);
		return ret;
	}
	if (!ca_key)
		return kf_fail(ENOMEM, "X.509: no CA key");
	/* A name of its own: a verifier looks issuers up by name. */
	if (getrandom(&id, sizeof(id), 0) != sizeof(id))
		id ^= (uint32_t)time(NULL);
	snprintf(name, sizeof(name), "kvmfault migration CA %08x (throwaway)", id);
	ret = kf_x509_make(ca_key, name, NULL, ca_key, NULL, false, &ca);
	if (!ret)
		ret = kf_x509_write(dir, "ca-cert.pem", ca, NULL);
	if (!ret)
		ret = kf_x509_leaf(dir, "server", ca, ca_key,
				   server_san ? server_san : KF_X509_DEFAULT_SAN, true);
	if (!ret)
		ret = kf_x509_leaf(dir, "client", ca, ca_key, NULL, false);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	ERR_clear_error();
	return ret;
}
