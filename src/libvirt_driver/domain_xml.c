/* domain_xml.c — vdpad's metadata and the vdpa interfaces of a domain XML. */
#include "config.h"

#include "libvirt_driver/domain_xml.h"

#include <errno.h>
#include <stdbool.h>
#include <libxml/tree.h>

#include "libvirt_driver/domain_metadata.h"
#include "util/error.h"

static bool is_element(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !n->ns && g_str_equal((const char *)n->name, name);
}

static int scan_metadata(xmlNode *metadata, struct domain_xml_info *info, GError **error)
{
    xmlNode *ours = NULL;

    for (xmlNode *n = metadata->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE || !n->ns || !n->ns->href ||
            !g_str_equal((const char *)n->ns->href, VDPAD_MIG_XMLNS))
            continue;
        if (ours)
            return vdpad_fail(error, EINVAL, "domain %s: vdpad's metadata element (%s) is there "
                              "twice", info->name, VDPAD_MIG_XMLNS);
        ours = n;
    }
    if (!ours)
        return 0;
    GPtrArray *devices = domain_metadata_from_node(ours, error);
    if (!devices)
        return vdpad_prefix_error(error, "domain %s: ", info->name);
    g_ptr_array_unref(info->devices);
    info->devices = devices;
    return 0;
}

static void scan_interfaces(xmlNode *devices, struct domain_xml_info *info)
{
    for (xmlNode *n = devices->children; n; n = n->next) {
        if (!is_element(n, "interface"))
            continue;
        xmlChar *type = xmlGetNoNsProp(n, (const xmlChar *)"type");
        bool vdpa = type && g_str_equal((const char *)type, "vdpa");
        xmlFree(type);
        if (!vdpa)
            continue;
        for (xmlNode *c = n->children; c; c = c->next) {
            if (!is_element(c, "source"))
                continue;
            xmlChar *dev = xmlGetNoNsProp(c, (const xmlChar *)"dev");
            if (dev)
                g_ptr_array_add(info->vdpa_sources, g_strdup((const char *)dev));
            xmlFree(dev);
            break;
        }
    }
}

int domain_xml_scan(const char *xml, size_t len, struct domain_xml_info *info, GError **error)
{
    *info = (struct domain_xml_info){
        .devices = vdpad_mig_devices_new(),
        .vdpa_sources = g_ptr_array_new_with_free_func(g_free),
    };
    xmlDoc *doc = domain_metadata_read_doc(xml, len, DOMAIN_XML_MAX, "domain XML", error);
    if (!doc)
        return -EINVAL;
    int ret = 0;
    xmlNode *root = xmlDocGetRootElement(doc);
    if (!is_element(root, "domain")) {
        ret = vdpad_fail(error, EINVAL, "domain XML: the root element is <%s>, not <domain>",
                         (const char *)root->name);
        goto out;
    }
    for (xmlNode *n = root->children; n; n = n->next)
        if (is_element(n, "name") && !info->name) {
            xmlChar *name = xmlNodeGetContent(n);
            info->name = g_strdup(name ? (const char *)name : "");
            xmlFree(name);
        }
    if (!info->name)
        info->name = g_strdup("(unnamed)");
    for (xmlNode *n = root->children; n && ret == 0; n = n->next) {
        if (is_element(n, "metadata"))
            ret = scan_metadata(n, info, error);
        else if (is_element(n, "devices"))
            scan_interfaces(n, info);
    }
out:
    xmlFreeDoc(doc);
    if (ret < 0)
        domain_xml_info_clear(info);
    return ret;
}

void domain_xml_info_clear(struct domain_xml_info *info)
{
    g_clear_pointer(&info->name, g_free);
    g_clear_pointer(&info->devices, g_ptr_array_unref);
    g_clear_pointer(&info->vdpa_sources, g_ptr_array_unref);
}

GPtrArray *domain_xml_incoming(const struct domain_xml_info *info)
{
    GPtrArray *out = g_ptr_array_new();

    for (guint i = 0; i < info->vdpa_sources->len; i++) {
        const struct vdpad_mig_device *d = domain_metadata_find(info->devices,
                                                                info->vdpa_sources->pdata[i]);
        /* the same node twice in one domain cannot run; prepare it once */
        if (d && !g_ptr_array_find(out, d, NULL))
            g_ptr_array_add(out, (gpointer)d);
    }
    return out;
}
