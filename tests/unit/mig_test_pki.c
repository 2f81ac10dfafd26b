#include "config.h"

#include <gio/gio.h>

#include "mig_test_pki.h"

/* The whole PKI as one shell script run in the root directory. */
static const char script[] =
    "set -e\n"
    "cd \"$1\"\n"
    "key() { certtool --generate-privkey --key-type ecdsa --outfile \"$1\" >/dev/null 2>&1; }\n"
    "ca() {\n"
    "  key \"$1-key.pem\"\n"
    "  printf 'cn = %s\\nca\\ncert_signing_key\\nexpiration_days = 30\\n' \"$2\" > \"$1.info\"\n"
    "  certtool --generate-self-signed --load-privkey \"$1-key.pem\" --template \"$1.info\" \\\n"
    "    --outfile \"$1.pem\" >/dev/null 2>&1\n"
    "}\n"
    "# cert NAME CA TEMPLATE-TEXT\n"
    "cert() {\n"
    "  key \"$1-key.pem\"\n"
    "  printf '%b' \"$3\" > \"$1.info\"\n"
    "  certtool --generate-certificate --load-privkey \"$1-key.pem\" \\\n"
    "    --load-ca-certificate \"$2.pem\" --load-ca-privkey \"$2-key.pem\" \\\n"
    "    --template \"$1.info\" --outfile \"$1.pem\" >/dev/null 2>&1\n"
    "}\n"
    "# layout DIR ROLE CERT CA-FILES...\n"
    "layout() {\n"
    "  d=\"$1\"; role=\"$2\"; c=\"$3\"; shift 3\n"
    "  mkdir -p \"$d\"\n"
    "  cp \"$c.pem\" \"$d/${role}cert.pem\"\n"
    "  cp \"$c-key.pem\" \"$d/${role}key.pem\"\n"
    "  cat \"$@\" > \"$d/cacert.pem\"\n"
    "}\n"
    "mkdir -p work; cd work\n"
    "ca ca1 'vdpad test CA 1'\n"
    "ca ca2 'vdpad test CA 2'\n"
    "srv='organization = vdpad test\\ncn = localhost\\ndns_name = localhost\\n"
    "ip_address = 127.0.0.1\\nip_address = ::1\\ntls_www_server\\nsigning_key\\n'\n"
    "cli='country = GB\\norganization = vdpad test\\ncn = client1\\ntls_www_client\\n"
    "signing_key\\n'\n"
    "old='activation_date = \"2019-01-01 00:00:00 UTC\"\\n"
    "expiration_date = \"2019-12-31 00:00:00 UTC\"\\n'\n"
    "cert server ca1 \"$srv\"\n"
    "cert client ca1 \"$cli\"\n"
    "cert intruder ca1 'country = GB\\norganization = vdpad test\\ncn = intruder\\n"
    "tls_www_client\\nsigning_key\\n'\n"
    "cert client-ca2 ca2 \"$cli\"\n"
    "cert server-ca2 ca2 \"$srv\"\n"
    "cert wronghost ca1 'organization = vdpad test\\ncn = wrong.example\\n"
    "dns_name = wrong.example\\ntls_www_server\\nsigning_key\\n'\n"
    "cert client-old ca1 \"$cli$old\"\n"
    "cert server-old ca1 \"$srv$old\"\n"
    "layout ../server server server ca1.pem\n"
    "layout ../client client client ca1.pem\n"
    "layout ../client-intruder client intruder ca1.pem\n"
    "layout ../client-otherca client client-ca2 ca2.pem ca1.pem\n"
    "layout ../server-otherca server server-ca2 ca2.pem ca1.pem\n"
    "layout ../server-wronghost server wronghost ca1.pem\n"
    "layout ../client-expired client client-old ca1.pem\n"
    "layout ../server-expired server server-old ca1.pem\n";

char *mig_test_pki_create(GError **error)
{
    g_autofree char *root = g_dir_make_tmp("vdpad-pki-XXXXXX", error);

    if (!root)
        return NULL;
    const char *argv[] = { "/bin/sh", "-c", script, "sh", root, NULL };
    int status;
    g_autofree char *err_text = NULL;
    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, NULL, &err_text,
                      &status, error))
        return NULL;
    if (!g_spawn_check_wait_status(status, error)) {
        g_prefix_error(error, "certtool script failed (%s): ", err_text ? err_text : "");
        return NULL;
    }
    return g_steal_pointer(&root);
}

char *mig_test_pki_dir(const char *root, const char *identity)
{
    return g_build_filename(root, identity, NULL);
}

void mig_test_pki_remove(const char *root)
{
    const char *argv[] = { "rm", "-rf", root, NULL };

    g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, NULL,
                 NULL);
}
