/* mig_test_pki.h — a throw-away PKI for the migration channel tests, made with certtool
 * (gnutls-bin) in a temporary directory. Each identity is a directory in libvirt's flat
 * layout (a pkipath: cacert.pem, {server,client}cert.pem, {server,client}key.pem):
 *
 *   server           CA 1; a server certificate for localhost, 127.0.0.1 and ::1
 *   client           CA 1; a client certificate "CN=client1,O=vdpad test,C=GB"
 *   client-intruder  CA 1; a client certificate "CN=intruder,O=vdpad test,C=GB"
 *   client-otherca   trusts CA 2 and CA 1; a client1 certificate that CA 2 issued
 *   server-otherca   trusts CA 2 and CA 1; a server certificate for localhost... by CA 2
 *   server-wronghost CA 1; a server certificate for wrong.example only
 *   client-expired   CA 1; a client1 certificate valid in 2019 only
 *   server-expired   CA 1; a server certificate for localhost... valid in 2019 only
 *
 * Keys are ECDSA P-256 (fast to make). Threads: test code, one thread.
 */
#pragma once

#include <glib.h>

/* Makes the PKI; returns the directory (g_free), or NULL with *error. */
char *mig_test_pki_create(GError **error);
/* The directory of one identity above. g_free the result. */
char *mig_test_pki_dir(const char *root, const char *identity);
/* Removes the whole tree. */
void mig_test_pki_remove(const char *root);
