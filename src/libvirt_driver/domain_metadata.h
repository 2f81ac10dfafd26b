/* domain_metadata.h — vdpad's element in a libvirt domain's <metadata>: for each vdpad node
 * the domain uses, where a migration's destination gets that device's state.
 *
 *   <vdpad:devices xmlns:vdpad="https://vdpad.org/xmlns/migration/1">
 *     <vdpad:device node="/run/vdpad/dev/n0" name="n0" source="hosta:16516" token="..."/>
 *   </vdpad:devices>
 *
 * The source vdpad writes it (libvirt_sync.h); libvirt carries it to the destination in the
 * domain XML, where the qemu hook reads it (vdpad-libvirt-hook). Schema:
 * xml/schemas/vdpad-migration.rng. The parser is strict (it reads what another host wrote):
 * no DTD, no unknown element or attribute, every value checked; a new format gets a new
 * namespace (…/migration/2).
 *
 * Ownership: a device list is a GPtrArray that owns its struct vdpad_mig_device entries.
 * Threads: any; the functions share no state (libxml2 is initialised on first use).
 */
#pragma once

#include <glib.h>
#include <stdbool.h>

#define VDPAD_MIG_XMLNS "https://vdpad.org/xmlns/migration/1"
#define VDPAD_MIG_XMLNS_PREFIX "vdpad"
#define VDPAD_MIG_MAX_DEVICES 64
#define VDPAD_MIG_MAX_XML (1024 * 1024) /* an element; a whole domain XML may be 16 MiB */

struct vdpad_mig_device {
    char *node;   /* the node's absolute path on the host ("/run/vdpad/dev/n0") */
    char *name;   /* the vdpad device name (device_name_valid) */
    char *source; /* "HOST:PORT", "[IPV6]:PORT" or "HOST": that vdpad's migration channel */
    char *token;  /* the session's token: 1-128 printable ASCII characters, no space */
};

struct vdpad_mig_device *vdpad_mig_device_new(const char *node, const char *name,
                                              const char *source, const char *token);
void vdpad_mig_device_free(struct vdpad_mig_device *d);
/* An empty list that owns its entries. */
GPtrArray *vdpad_mig_devices_new(void);

/* Checks every field; the message names the field and the value. */
int vdpad_mig_device_validate(const struct vdpad_mig_device *d, GError **error);
/* A reachable migration address: "HOST:PORT", "[IPV6]:PORT" or "HOST", no wildcard. */
bool vdpad_mig_address_valid(const char *address);

/* Parses the element as virDomainGetMetadata returns it (no namespace) or as it stands in
 * a domain XML (in VDPAD_MIG_XMLNS). NULL with *error when it is not exactly that. */
GPtrArray *domain_metadata_parse(const char *xml, size_t len, GError **error);

/* The element's text, for virDomainSetMetadata (with_ns false: libvirt puts it and its
 * children into the namespace it is given) or for a document (with_ns true). */
char *domain_metadata_format(const GPtrArray *devices, bool with_ns);

/* The entry for a node path, or NULL. */
const struct vdpad_mig_device *domain_metadata_find(const GPtrArray *devices, const char *node);
/* Adds a copy of dev, replacing the entry of the same node. -E2BIG when the list is full,
 * -EINVAL when dev is invalid. */
int domain_metadata_upsert(GPtrArray *devices, const struct vdpad_mig_device *dev,
                           GError **error);

/* --- for domain_xml.c: the same checks on a node of a parsed document */
struct _xmlNode;
struct _xmlDoc;
/* Parses one <devices> element node (namespace: none or VDPAD_MIG_XMLNS). */
GPtrArray *domain_metadata_from_node(struct _xmlNode *root, GError **error);
/* Reads len bytes of XML without network access, entity expansion or DTD; NULL with *error
 * naming `what` and libxml2's message. Free with xmlFreeDoc. */
struct _xmlDoc *domain_metadata_read_doc(const char *xml, size_t len, size_t max,
                                         const char *what, GError **error);
