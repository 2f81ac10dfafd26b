/* domain_xml.h — what the destination's qemu hook reads from a whole libvirt domain XML:
 * vdpad's metadata element (domain_metadata.h) and the vdpa interfaces' <source dev>.
 *
 * Ownership: domain_xml_info owns its strings and lists; domain_xml_incoming's entries are
 * borrowed from info->devices. Threads: any.
 */
#pragma once

#include <glib.h>

#define DOMAIN_XML_MAX (16 * 1024 * 1024)

struct domain_xml_info {
    char *name;              /* <name> */
    GPtrArray *devices;      /* vdpad's metadata entries; empty when the domain has none */
    GPtrArray *vdpa_sources; /* char *: <source dev> of each <interface type='vdpa'>, in order */
};

/* Parses a domain XML (root <domain>, no DTD). Fails when vdpad's element is there but
 * invalid, or when it is there twice. */
int domain_xml_scan(const char *xml, size_t len, struct domain_xml_info *info, GError **error);
void domain_xml_info_clear(struct domain_xml_info *info);

/* The metadata entries a destination prepares: those whose node is the source of one of the
 * domain's vdpa interfaces, in interface order (borrowed from info->devices). */
GPtrArray *domain_xml_incoming(const struct domain_xml_info *info);
