/* mig_tls.h — the TLS side of the migration channel: libvirt's PKI layout, credentials,
 * sessions and the checks of the peer's certificate (GnuTLS, X.509, mutual).
 *
 * Files (libvirt's names; docs/migration-channel.md):
 *   pki_dir given:        PKI_DIR/cacert.pem, PKI_DIR/cacrl.pem (optional),
 *                         PKI_DIR/{server,client}cert.pem, PKI_DIR/{server,client}key.pem
 *   root (no pki_dir):    /etc/pki/CA/cacert.pem, /etc/pki/CA/cacrl.pem (optional),
 *                         /etc/pki/libvirt/{server,client}cert.pem,
 *                         /etc/pki/libvirt/private/{server,client}key.pem
 *   other users:          $HOME/.pki/libvirt/ holds the same names as a pki_dir; the CA
 *                         and the certificate+key pair each fall back to the root layout
 *                         when missing there.
 *
 * Checks: both sides verify the peer's chain against the CA (and CRL), its validity dates
 * and its key purpose (TLS WWW server / client when the certificate names purposes). The
 * client also checks that the server's certificate is for the host name (or IP address) it
 * connected to. The server requires a client certificate and, when an allow-list is set,
 * that the client's DN matches one of its patterns (libvirt's tls_allowed_dn_list: GLib
 * glob patterns, '*' and '?', on the DN as gnutls_x509_crt_get_dn writes it, the string
 * libvirt matches and virt-pki-query-dn prints, e.g. "C=GB,O=Example,CN=host1"; an empty
 * list lets no client in). At load time our own
 * certificate must verify against our CA, so a broken setup fails at start, not at migration.
 *
 * Ownership: mig_tls is reference counted (connections in flight keep it). Sessions belong to
 * their connection. Threads: a mig_tls may be shared between threads once created (GnuTLS
 * credentials are read-only then); a session belongs to one thread.
 */
#pragma once

#include <glib.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>

#define MIG_PKI_SYSTEM_CA_DIR "/etc/pki/CA"
#define MIG_PKI_SYSTEM_CERT_DIR "/etc/pki/libvirt"
#define MIG_PKI_SYSTEM_KEY_DIR "/etc/pki/libvirt/private"
#define MIG_PKI_USER_DIR ".pki/libvirt" /* under $HOME */

/* TLS 1.3, or 1.2 with a peer that lacks it; GnuTLS's NORMAL ciphers. */
#define MIG_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

enum mig_role {
    MIG_ROLE_CLIENT,
    MIG_ROLE_SERVER,
};

struct mig_tls_config {
    const char *pki_dir;            /* NULL: libvirt's layout (above) */
    const char *const *allowed_dns; /* server: DN patterns; NULL = any client the CA certified */
    const char *priority;           /* NULL: MIG_TLS_PRIORITY */
};

struct mig_pki_paths {
    char *ca_cert;
    char *ca_crl; /* NULL when there is none */
    char *cert;
    char *key;
};

/* Where role's files are (see above). home is the user's home for the per-user layout, or
 * NULL for root's. Fails with -ENOENT naming the first missing file (-EINVAL for a
 * certificate without its key or the reverse). mig_pki_locate uses root's layout when
 * running as root, else the user's. */
int mig_pki_locate_for(enum mig_role role, const char *pki_dir, const char *home,
                       struct mig_pki_paths *paths, GError **error);
int mig_pki_locate(enum mig_role role, const char *pki_dir, struct mig_pki_paths *paths,
                   GError **error);
void mig_pki_paths_clear(struct mig_pki_paths *paths);

typedef struct mig_tls mig_tls;

/* Loads the credentials of role. Errors name the file and what is wrong with it (missing,
 * unreadable, no certificate in it, our certificate does not verify against our CA,
 * expired...), never its contents. */
mig_tls *mig_tls_new(enum mig_role role, const struct mig_tls_config *cfg, GError **error);
mig_tls *mig_tls_ref(mig_tls *t);
void mig_tls_unref(mig_tls *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(mig_tls, mig_tls_unref)

/* The DN of our own certificate (for logs). */
const char *mig_tls_own_dn(const mig_tls *t);

/* A non-blocking session on fd (not owned) for our role. server_name (client only) goes
 * out as SNI when it is a DNS name. */
int mig_tls_session_new(mig_tls *t, int fd, const char *server_name, gnutls_session_t *session,
                        GError **error);

/* Checks the peer's certificate after the handshake (above). hostname: what the client
 * connected to (client role), NULL for the server. *dn gets the peer's DN (g_free; set
 * whenever the peer sent a certificate, also on failure). Returns 0, or -EACCES with
 * *error and *alert = the TLS alert to send the peer. */
int mig_tls_verify_peer(mig_tls *t, gnutls_session_t session, const char *hostname, char **dn,
                        gnutls_alert_description_t *alert, GError **error);

/* Whether dn matches one of patterns (NULL-terminated). */
bool mig_tls_dn_allowed(const char *const *patterns, const char *dn);

/* Sets *error for a failed GnuTLS call (gnutls_err) on session, prefixed with what (if not
 * NULL): -EPERM when the peer sent an alert that refuses us (bad or unknown
 * certificate, access denied...), -EACCES for certificate errors found here,
 * -ECONNRESET when the peer closed the connection, -EPROTO otherwise. */
int mig_tls_fail(GError **error, gnutls_session_t session, int gnutls_err, const char *what);
