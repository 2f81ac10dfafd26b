#include "config.h"

#include <gnutls/x509.h>
#include <string.h>
#include <unistd.h>

#include "migration/json_read.h"
#include "migration/mig_tls.h"
#include "util/error.h"

struct mig_tls {
    gint refs;
    enum mig_role role;
    gnutls_certificate_credentials_t creds;
    gnutls_priority_t priority;
    char **allowed_dns; /* NULL: no DN check */
    char *own_dn;
};

/* ------------------------------------------------------------------ file layout */

void mig_pki_paths_clear(struct mig_pki_paths *p)
{
    g_free(p->ca_cert);
    g_free(p->ca_crl);
    g_free(p->cert);
    g_free(p->key);
    memset(p, 0, sizeof(*p));
}

static const char *cert_name(enum mig_role role)
{
    return role == MIG_ROLE_SERVER ? "servercert.pem" : "clientcert.pem";
}

static const char *key_name(enum mig_role role)
{
    return role == MIG_ROLE_SERVER ? "serverkey.pem" : "clientkey.pem";
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

int mig_pki_locate_for(enum mig_role role, const char *pki_dir, const char *home,
                       struct mig_pki_paths *p, GError **error)
{
    memset(p, 0, sizeof(*p));
    if (pki_dir) {
        p->ca_cert = g_build_filename(pki_dir, "cacert.pem", NULL);
        p->ca_crl = g_build_filename(pki_dir, "cacrl.pem", NULL);
        p->cert = g_build_filename(pki_dir, cert_name(role), NULL);
        p->key = g_build_filename(pki_dir, key_name(role), NULL);
    } else {
        if (home) { /* the user's files first, each group falling back to root's */
            g_autofree char *dir = g_build_filename(home, MIG_PKI_USER_DIR, NULL);
            g_autofree char *ca = g_build_filename(dir, "cacert.pem", NULL);
            g_autofree char *cert = g_build_filename(dir, cert_name(role), NULL);
            g_autofree char *key = g_build_filename(dir, key_name(role), NULL);
            if (exists(ca)) {
                p->ca_cert = g_steal_pointer(&ca);
                p->ca_crl = g_build_filename(dir, "cacrl.pem", NULL);
            }
            if (exists(cert) || exists(key)) {
                p->cert = g_steal_pointer(&cert);
                p->key = g_steal_pointer(&key);
            }
        }
        if (!p->ca_cert) {
            p->ca_cert = g_build_filename(MIG_PKI_SYSTEM_CA_DIR, "cacert.pem", NULL);
            p->ca_crl = g_build_filename(MIG_PKI_SYSTEM_CA_DIR, "cacrl.pem", NULL);
        }
        if (!p->cert) {
            p->cert = g_build_filename(MIG_PKI_SYSTEM_CERT_DIR, cert_name(role), NULL);
            p->key = g_build_filename(MIG_PKI_SYSTEM_KEY_DIR, key_name(role), NULL);
        }
    }
    if (!exists(p->ca_crl))
        g_clear_pointer(&p->ca_crl, g_free);

    int ret = 0;
    if (!exists(p->ca_cert))
        ret = vdpad_fail(error, ENOENT, "CA certificate %s does not exist", p->ca_cert);
    else if (!exists(p->cert) && !exists(p->key))
        ret = vdpad_fail(error, ENOENT, "%s certificate %s and key %s do not exist",
                         role == MIG_ROLE_SERVER ? "server" : "client", p->cert, p->key);
    else if (!exists(p->cert))
        ret = vdpad_fail(error, EINVAL, "key %s exists but certificate %s does not", p->key,
                         p->cert);
    else if (!exists(p->key))
        ret = vdpad_fail(error, EINVAL, "certificate %s exists but key %s does not", p->cert,
                         p->key);
    if (ret < 0)
        mig_pki_paths_clear(p);
    return ret;
}

int mig_pki_locate(enum mig_role role, const char *pki_dir, struct mig_pki_paths *p,
                   GError **error)
{
    return mig_pki_locate_for(role, pki_dir, geteuid() == 0 ? NULL : g_get_home_dir(), p,
                              error);
}

/* ------------------------------------------------------------------ credentials */

static char *status_text(unsigned status)
{
    gnutls_datum_t out = { 0 };

    if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) < 0)
        return g_strdup_printf("verification status 0x%x", status);
    char *text = g_strndup((const char *)out.data, out.size);
    gnutls_free(out.data);
    return g_strstrip(text);
}

static char *crt_dn(gnutls_x509_crt_t crt)
{
    gnutls_datum_t dn = { 0 };

    if (gnutls_x509_crt_get_dn2(crt, &dn) < 0)
        return g_strdup("(no DN)");
    g_autofree char *raw = g_strndup((const char *)dn.data, dn.size);
    gnutls_free(dn.data);
    return jr_printable(raw, 512);
}

/* Our certificate must verify against our CA for our purpose: a setup error is then
 * reported at start, naming the files, instead of as a failed handshake at migration. */
static int check_own_cert(mig_tls *t, const struct mig_pki_paths *p, GError **error)
{
    gnutls_datum_t raw;
    gnutls_x509_crt_t crt;
    gnutls_x509_trust_list_t tl;
    int ret = gnutls_certificate_get_crt_raw(t->creds, 0, 0, &raw);

    if (ret < 0)
        return vdpad_fail(error, EINVAL, "certificate %s: %s", p->cert, gnutls_strerror(ret));
    if (gnutls_x509_crt_init(&crt) < 0)
        return vdpad_fail(error, ENOMEM, "certificate %s: cannot allocate", p->cert);
    ret = gnutls_x509_crt_import(crt, &raw, GNUTLS_X509_FMT_DER);
    if (ret < 0) {
        gnutls_x509_crt_deinit(crt);
        return vdpad_fail(error, EINVAL, "certificate %s: %s", p->cert, gnutls_strerror(ret));
    }
    t->own_dn = crt_dn(crt);
    gnutls_certificate_get_trust_list(t->creds, &tl);
    gnutls_typed_vdata_st purpose = {
        .type = GNUTLS_DT_KEY_PURPOSE_OID,
        .data = (unsigned char *)(t->role == MIG_ROLE_SERVER ? GNUTLS_KP_TLS_WWW_SERVER
                                                              : GNUTLS_KP_TLS_WWW_CLIENT),
    };
    unsigned status = 0;
    ret = gnutls_x509_trust_list_verify_crt2(tl, &crt, 1, &purpose, 1, 0, &status, NULL);
    gnutls_x509_crt_deinit(crt);
    if (ret < 0)
        return vdpad_fail(error, EINVAL, "certificate %s: cannot verify: %s", p->cert,
                          gnutls_strerror(ret));
    if (status) {
        g_autofree char *why = status_text(status);
        return vdpad_fail(error, EINVAL, "our certificate %s (%s) does not verify against CA "
                          "%s: %s", p->cert, t->own_dn, p->ca_cert, why);
    }
    return 0;
}

static int load(mig_tls *t, const struct mig_tls_config *cfg, GError **error)
{
    struct mig_pki_paths p;
    int ret = mig_pki_locate(t->role, cfg->pki_dir, &p, error);

    if (ret < 0)
        return ret;
    ret = gnutls_certificate_allocate_credentials(&t->creds);
    if (ret < 0) {
        ret = vdpad_fail(error, ENOMEM, "cannot allocate TLS credentials: %s",
                         gnutls_strerror(ret));
        goto out;
    }
    ret = gnutls_certificate_set_x509_trust_file(t->creds, p.ca_cert, GNUTLS_X509_FMT_PEM);
    if (ret <= 0) {
        ret = vdpad_fail(error, EINVAL, "CA certificate %s: %s", p.ca_cert,
                         ret == 0 ? "no certificate in it" : gnutls_strerror(ret));
        goto out;
    }
    if (p.ca_crl) {
        ret = gnutls_certificate_set_x509_crl_file(t->creds, p.ca_crl, GNUTLS_X509_FMT_PEM);
        if (ret < 0) {
            ret = vdpad_fail(error, EINVAL, "CA revocation list %s: %s", p.ca_crl,
                             gnutls_strerror(ret));
            goto out;
        }
    }
    ret = gnutls_certificate_set_x509_key_file(t->creds, p.cert, p.key, GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        ret = vdpad_fail(error, EINVAL, "certificate %s with key %s: %s", p.cert, p.key,
                         gnutls_strerror(ret));
        goto out;
    }
    if ((ret = check_own_cert(t, &p, error)) < 0)
        goto out;
    const char *prio = cfg->priority ? cfg->priority : MIG_TLS_PRIORITY;
    const char *err_pos = NULL;
    ret = gnutls_priority_init(&t->priority, prio, &err_pos);
    if (ret < 0) {
        t->priority = NULL;
        ret = vdpad_fail(error, EINVAL, "TLS priority '%s': %s at '%s'", prio,
                         gnutls_strerror(ret), err_pos ? err_pos : "");
        goto out;
    }
    ret = 0;
out:
    mig_pki_paths_clear(&p);
    return ret;
}

mig_tls *mig_tls_new(enum mig_role role, const struct mig_tls_config *cfg, GError **error)
{
    mig_tls *t = g_new0(mig_tls, 1);

    t->refs = 1;
    t->role = role;
    if (role == MIG_ROLE_SERVER && cfg->allowed_dns)
        t->allowed_dns = g_strdupv((char **)cfg->allowed_dns);
    if (load(t, cfg, error) < 0) {
        mig_tls_unref(t);
        return NULL;
    }
    return t;
}

mig_tls *mig_tls_ref(mig_tls *t)
{
    g_atomic_int_inc(&t->refs);
    return t;
}

void mig_tls_unref(mig_tls *t)
{
    if (!t || !g_atomic_int_dec_and_test(&t->refs))
        return;
    if (t->priority)
        gnutls_priority_deinit(t->priority);
    if (t->creds)
        gnutls_certificate_free_credentials(t->creds);
    g_strfreev(t->allowed_dns);
    g_free(t->own_dn);
    g_free(t);
}

const char *mig_tls_own_dn(const mig_tls *t)
{
    return t->own_dn;
}

/* ------------------------------------------------------------------ sessions */

int mig_tls_session_new(mig_tls *t, int fd, const char *server_name, gnutls_session_t *out,
                        GError **error)
{
    gnutls_session_t s;
    /* no tickets: no resumption, every connection authenticates in full */
    unsigned flags = (t->role == MIG_ROLE_SERVER ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                     GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL | GNUTLS_NO_TICKETS;
    int ret = gnutls_init(&s, flags);

    if (ret < 0)
        return vdpad_fail(error, ENOMEM, "cannot create a TLS session: %s",
                          gnutls_strerror(ret));
    if ((ret = gnutls_priority_set(s, t->priority)) < 0 ||
        (ret = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->creds)) < 0)
        goto fail;
    if (t->role == MIG_ROLE_SERVER) {
        gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
        /* do not name our CAs: a client then sends its certificate whatever its issuer,
         * and the refusal says why instead of "no certificate" */
        gnutls_certificate_send_x509_rdn_sequence(s, 1);
    } else if (server_name && !g_hostname_is_ip_address(server_name)) {
        if ((ret = gnutls_server_name_set(s, GNUTLS_NAME_DNS, server_name,
                                          strlen(server_name))) < 0)
            goto fail;
    }
    gnutls_transport_set_int(s, fd);
    *out = s;
    return 0;
fail:
    gnutls_deinit(s);
    return vdpad_fail(error, EINVAL, "cannot set up a TLS session: %s", gnutls_strerror(ret));
}

bool mig_tls_dn_allowed(const char *const *patterns, const char *dn)
{
    for (; *patterns; patterns++)
        if (g_pattern_match_simple(*patterns, dn))
            return true;
    return false;
}

static gnutls_alert_description_t alert_for(unsigned status)
{
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND)
        return GNUTLS_A_UNKNOWN_CA;
    if (status & (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED))
        return GNUTLS_A_CERTIFICATE_EXPIRED;
    if (status & GNUTLS_CERT_REVOKED)
        return GNUTLS_A_CERTIFICATE_REVOKED;
    if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
        return GNUTLS_A_UNSUPPORTED_CERTIFICATE;
    return GNUTLS_A_BAD_CERTIFICATE;
}

int mig_tls_verify_peer(mig_tls *t, gnutls_session_t s, const char *hostname, char **dn,
                        gnutls_alert_description_t *alert, GError **error)
{
    const char *peer = t->role == MIG_ROLE_SERVER ? "client" : "server";
    unsigned n = 0;
    const gnutls_datum_t *chain = NULL;

    *dn = NULL;
    *alert = GNUTLS_A_BAD_CERTIFICATE;
    if (gnutls_certificate_type_get(s) == GNUTLS_CRT_X509)
        chain = gnutls_certificate_get_peers(s, &n);
    if (!chain || n == 0) {
        *alert = GNUTLS_A_CERTIFICATE_REQUIRED;
        return vdpad_fail(error, EACCES, "the %s sent no X.509 certificate", peer);
    }
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return vdpad_fail(error, ENOMEM, "cannot allocate a certificate");
    int ret = gnutls_x509_crt_import(crt, &chain[0], GNUTLS_X509_FMT_DER);
    if (ret < 0) {
        gnutls_x509_crt_deinit(crt);
        return vdpad_fail(error, EACCES, "the %s's certificate is unreadable: %s", peer,
                          gnutls_strerror(ret));
    }
    *dn = crt_dn(crt);
    gnutls_x509_crt_deinit(crt);

    gnutls_typed_vdata_st data[2] = {
        { .type = GNUTLS_DT_KEY_PURPOSE_OID,
          .data = (unsigned char *)(t->role == MIG_ROLE_SERVER ? GNUTLS_KP_TLS_WWW_CLIENT
                                                                : GNUTLS_KP_TLS_WWW_SERVER) },
        { .type = GNUTLS_DT_DNS_HOSTNAME, .data = (unsigned char *)hostname },
    };
    unsigned status = 0;
    ret = gnutls_certificate_verify_peers(s, data, hostname ? 2 : 1, &status);
    if (ret < 0)
        return vdpad_fail(error, EACCES, "cannot verify the %s's certificate (%s): %s", peer,
                          *dn, gnutls_strerror(ret));
    if (status & GNUTLS_CERT_UNEXPECTED_OWNER) {
        *alert = GNUTLS_A_BAD_CERTIFICATE;
        return vdpad_fail(error, EACCES, "the server's certificate (%s) is not for the host "
                          "name '%s'", *dn, hostname);
    }
    if (status) {
        g_autofree char *why = status_text(status);
        *alert = alert_for(status);
        return vdpad_fail(error, EACCES, "the %s's certificate (%s) is not trusted: %s", peer,
                          *dn, why);
    }
    if (t->role == MIG_ROLE_SERVER && t->allowed_dns &&
        !mig_tls_dn_allowed((const char *const *)t->allowed_dns, *dn)) {
        *alert = GNUTLS_A_ACCESS_DENIED;
        return vdpad_fail(error, EACCES, "the client's DN '%s' is not in the allowed DN list",
                          *dn);
    }
    return 0;
}

/* Alerts by which a peer refuses who we are. */
static bool refusal_alert(gnutls_alert_description_t a)
{
    switch (a) {
    case GNUTLS_A_BAD_CERTIFICATE:
    case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
    case GNUTLS_A_CERTIFICATE_REVOKED:
    case GNUTLS_A_CERTIFICATE_EXPIRED:
    case GNUTLS_A_CERTIFICATE_UNKNOWN:
    case GNUTLS_A_UNKNOWN_CA:
    case GNUTLS_A_ACCESS_DENIED:
    case GNUTLS_A_CERTIFICATE_REQUIRED:
    case GNUTLS_A_HANDSHAKE_FAILURE:
        return true;
    default:
        return false;
    }
}

static int tls_fail(GError **error, gnutls_session_t s, int err)
{
    switch (err) {
    case GNUTLS_E_FATAL_ALERT_RECEIVED: {
        gnutls_alert_description_t a = gnutls_alert_get(s);
        const char *name = gnutls_alert_get_name(a);
        if (refusal_alert(a))
            return vdpad_fail(error, EPERM, "the peer refused our certificate (TLS alert '%s')",
                              name ? name : "?");
        return vdpad_fail(error, EPROTO, "TLS alert from the peer: %s", name ? name : "?");
    }
    case GNUTLS_E_PREMATURE_TERMINATION:
    case GNUTLS_E_PULL_ERROR:
    case GNUTLS_E_PUSH_ERROR:
    case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
    case GNUTLS_E_SESSION_EOF:
        return vdpad_fail(error, ECONNRESET, "the peer closed the connection");
    case GNUTLS_E_NO_CERTIFICATE_FOUND:
    case GNUTLS_E_CERTIFICATE_REQUIRED:
        return vdpad_fail(error, EACCES, "the peer sent no certificate");
    case GNUTLS_E_CERTIFICATE_ERROR:
    case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
        return vdpad_fail(error, EACCES, "%s", gnutls_strerror(err));
    default:
        return vdpad_fail(error, EPROTO, "TLS: %s", gnutls_strerror(err));
    }
}

int mig_tls_fail(GError **error, gnutls_session_t s, int err, const char *what)
{
    int ret = tls_fail(error, s, err);

    if (what)
        vdpad_prefix_error(error, "%s: ", what);
    return ret;
}
