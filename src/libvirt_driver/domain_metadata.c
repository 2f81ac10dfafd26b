/* domain_metadata.c — vdpad's <metadata> element: checks, parser (libxml2), formatter. */
#include "config.h"

#include "libvirt_driver/domain_metadata.h"

#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

#include "core/device_spec.h"
#include "util/error.h"

#define MAX_NODE_PATH 4095
#define MAX_ADDRESS 262 /* "[" 255 "]:" 5 */
#define MAX_TOKEN 128

struct vdpad_mig_device *vdpad_mig_device_new(const char *node, const char *name,
                                              const char *source, const char *token)
{
    struct vdpad_mig_device *d = g_new0(struct vdpad_mig_device, 1);

    d->node = g_strdup(node);
    d->name = g_strdup(name);
    d->source = g_strdup(source);
    d->token = g_strdup(token);
    return d;
}

void vdpad_mig_device_free(struct vdpad_mig_device *d)
{
    if (!d)
        return;
    g_free(d->node);
    g_free(d->name);
    g_free(d->source);
    g_free(d->token);
    g_free(d);
}

GPtrArray *vdpad_mig_devices_new(void)
{
    return g_ptr_array_new_with_free_func((GDestroyNotify)vdpad_mig_device_free);
}

/* ------------------------------------------------------------------ checks */

static bool node_path_valid(const char *p)
{
    size_t n = strlen(p);

    if (n < 2 || n > MAX_NODE_PATH || p[0] != '/' || p[n - 1] == '/')
        return false;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return false;
    /* no empty, "." or ".." component: the path names one file, as libvirt wrote it */
    g_auto(GStrv) parts = g_strsplit(p + 1, "/", -1);
    for (char **s = parts; *s; s++)
        if (!**s || g_str_equal(*s, ".") || g_str_equal(*s, ".."))
            return false;
    return true;
}

static bool host_char(char c)
{
    return g_ascii_isalnum(c) || c == '.' || c == '-' || c == '_';
}

static bool port_valid(const char *s)
{
    if (!*s || strlen(s) > 5 || s[0] == '0')
        return false;
    for (const char *c = s; *c; c++)
        if (!g_ascii_isdigit(*c))
            return false;
    return atoi(s) >= 1 && atoi(s) <= 65535;
}

bool vdpad_mig_address_valid(const char *a)
{
    size_t n = a ? strlen(a) : 0;

    if (n == 0 || n > MAX_ADDRESS)
        return false;
    if (a[0] == '[') { /* [IPV6] or [IPV6]:PORT */
        const char *end = strchr(a, ']');
        if (!end || end == a + 1)
            return false;
        for (const char *c = a + 1; c < end; c++)
            if (!g_ascii_isxdigit(*c) && *c != ':' && *c != '.')
                return false;
        bool wildcard = true;
        for (const char *c = a + 1; c < end; c++)
            wildcard = wildcard && (*c == ':' || *c == '0');
        if (wildcard)
            return false;
        if (end[1] == '\0')
            return true;
        return end[1] == ':' && port_valid(end + 2);
    }
    const char *colon = strchr(a, ':');
    if (colon && strchr(colon + 1, ':'))
        return false; /* a bare IPv6 address needs brackets */
    size_t host_len = colon ? (size_t)(colon - a) : n;
    if (host_len == 0 || host_len > 255)
        return false;
    for (size_t i = 0; i < host_len; i++)
        if (!host_char(a[i]))
            return false;
    /* wildcards are listen addresses, not addresses a destination can reach */
    if (host_len == 7 && !strncmp(a, "0.0.0.0", 7))
        return false;
    return !colon || port_valid(colon + 1);
}

static bool token_valid(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > MAX_TOKEN)
        return false;
    for (const char *c = t; *c; c++)
        if (*c < 0x21 || *c > 0x7e)
            return false;
    return true;
}

int vdpad_mig_device_validate(const struct vdpad_mig_device *d, GError **error)
{
    if (!d->node || !node_path_valid(d->node))
        return vdpad_fail(error, EINVAL, "vdpad metadata: node '%s' is not an absolute path "
                          "(no '.', '..' or empty component, no control character, at most %d "
                          "bytes)", d->node ? d->node : "", MAX_NODE_PATH);
    if (!d->name || !device_name_valid(d->name))
        return vdpad_fail(error, EINVAL, "vdpad metadata: node %s: name '%s' is not a device name "
                          "(1-64 of A-Z a-z 0-9 _ . -, not starting with '.')", d->node,
                          d->name ? d->name : "");
    if (!d->source || !vdpad_mig_address_valid(d->source))
        return vdpad_fail(error, EINVAL, "vdpad metadata: node %s: source '%s' is not HOST:PORT, "
                          "[IPV6]:PORT or HOST", d->node, d->source ? d->source : "");
    if (!d->token || !token_valid(d->token))
        return vdpad_fail(error, EINVAL, "vdpad metadata: node %s: the token must be 1-%d "
                          "printable ASCII characters without spaces", d->node, MAX_TOKEN);
    return 0;
}

/* ------------------------------------------------------------------ parsing */

static void init_libxml(void)
{
    static gsize done;

    if (g_once_init_enter(&done)) {
        xmlInitParser();
        g_once_init_leave(&done, 1);
    }
}

xmlDoc *domain_metadata_read_doc(const char *xml, size_t len, size_t max, const char *what,
                                 GError **error)
{
    if (len > max || len > INT_MAX) {
        vdpad_fail(error, E2BIG, "%s: %zu bytes of XML, more than the %zu accepted", what, len,
                   max);
        return NULL;
    }
    /* libvirt writes no DTD; one here could only declare entities */
    static const char *const refused[] = { "<!DOCTYPE", "<!ENTITY" };
    for (size_t i = 0; i < G_N_ELEMENTS(refused); i++)
        if (g_strstr_len(xml, (gssize)len, refused[i])) {
            vdpad_fail(error, EINVAL, "%s: a DTD (%s) is not accepted", what, refused[i]);
            return NULL;
        }
    if (memchr(xml, '\0', len)) {
        vdpad_fail(error, EINVAL, "%s: a NUL byte in the XML", what);
        return NULL;
    }
    init_libxml();
    xmlParserCtxt *ctxt = xmlNewParserCtxt();
    if (!ctxt) {
        vdpad_fail(error, ENOMEM, "%s: cannot create an XML parser", what);
        return NULL;
    }
    xmlDoc *doc = xmlCtxtReadMemory(ctxt, xml, (int)len, "vdpad-metadata.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc || !xmlDocGetRootElement(doc)) {
        const xmlError *e = xmlCtxtGetLastError(ctxt);
        g_autofree char *msg = g_strdup(e && e->message ? e->message : "not well-formed");
        g_strchomp(msg);
        vdpad_fail(error, EINVAL, "%s: not well-formed XML: %s (line %d)", what, msg,
                   e ? e->line : 0);
        xmlFreeDoc(doc);
        doc = NULL;
    }
    xmlFreeParserCtxt(ctxt);
    return doc;
}

static bool in_our_ns(const xmlNode *n, bool allow_none)
{
    if (!n->ns)
        return allow_none;
    return n->ns->href && g_str_equal((const char *)n->ns->href, VDPAD_MIG_XMLNS);
}

/* Only whitespace text and comments besides the elements we read. */
static int check_filler(const xmlNode *n, const char *where, GError **error)
{
    if (n->type == XML_COMMENT_NODE)
        return 0;
    if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
        for (const xmlChar *c = n->content; c && *c; c++)
            if (!g_ascii_isspace(*c))
                return vdpad_fail(error, EINVAL, "vdpad metadata: text inside <%s>", where);
        return 0;
    }
    return vdpad_fail(error, EINVAL, "vdpad metadata: unexpected %s inside <%s>",
                      n->type == XML_ELEMENT_NODE ? "element" : "node", where);
}

static struct vdpad_mig_device *device_from_node(const xmlNode *n, GError **error)
{
    struct vdpad_mig_device *d = g_new0(struct vdpad_mig_device, 1);
    char **slot;

    for (const xmlAttr *a = n->properties; a; a = a->next) {
        const char *name = (const char *)a->name;
        if (a->ns)
            slot = NULL;
        else if (g_str_equal(name, "node"))
            slot = &d->node;
        else if (g_str_equal(name, "name"))
            slot = &d->name;
        else if (g_str_equal(name, "source"))
            slot = &d->source;
        else if (g_str_equal(name, "token"))
            slot = &d->token;
        else
            slot = NULL;
        if (!slot) {
            vdpad_fail(error, EINVAL, "vdpad metadata: unknown attribute '%s' of <device>", name);
            goto fail;
        }
        xmlChar *value = xmlNodeListGetString(n->doc, a->children, 1);
        *slot = g_strdup(value ? (const char *)value : "");
        xmlFree(value);
    }
    static const char *const required[] = { "node", "name", "source", "token" };
    char **have[] = { &d->node, &d->name, &d->source, &d->token };
    for (size_t i = 0; i < G_N_ELEMENTS(required); i++)
        if (!*have[i]) {
            vdpad_fail(error, EINVAL, "vdpad metadata: <device> without the attribute '%s'",
                       required[i]);
            goto fail;
        }
    for (const xmlNode *c = n->children; c; c = c->next)
        if (check_filler(c, "device", error) < 0)
            goto fail;
    if (vdpad_mig_device_validate(d, error) < 0)
        goto fail;
    return d;
fail:
    vdpad_mig_device_free(d);
    return NULL;
}

GPtrArray *domain_metadata_from_node(xmlNode *root, GError **error)
{
    if (root->type != XML_ELEMENT_NODE || !g_str_equal((const char *)root->name, "devices") ||
        !in_our_ns(root, true)) {
        vdpad_fail(error, EINVAL, "vdpad metadata: the element is <%s>, not <devices> in %s",
                   (const char *)root->name, VDPAD_MIG_XMLNS);
        return NULL;
    }
    for (const xmlAttr *a = root->properties; a; a = a->next) {
        vdpad_fail(error, EINVAL, "vdpad metadata: unknown attribute '%s' of <devices>",
                   (const char *)a->name);
        return NULL;
    }
    g_autoptr(GPtrArray) devices = vdpad_mig_devices_new();
    for (xmlNode *n = root->children; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) {
            if (check_filler(n, "devices", error) < 0)
                return NULL;
            continue;
        }
        /* children share the root's namespace (none, or ours) */
        bool same_ns = root->ns ? in_our_ns(n, false) : !n->ns;
        if (!same_ns || !g_str_equal((const char *)n->name, "device")) {
            vdpad_fail(error, EINVAL, "vdpad metadata: unexpected element <%s> in <devices>",
                       (const char *)n->name);
            return NULL;
        }
        if (devices->len == VDPAD_MIG_MAX_DEVICES) {
            vdpad_fail(error, E2BIG, "vdpad metadata: more than %d devices",
                       VDPAD_MIG_MAX_DEVICES);
            return NULL;
        }
        struct vdpad_mig_device *d = device_from_node(n, error);
        if (!d)
            return NULL;
        if (domain_metadata_find(devices, d->node)) {
            vdpad_fail(error, EINVAL, "vdpad metadata: node %s is listed twice", d->node);
            vdpad_mig_device_free(d);
            return NULL;
        }
        g_ptr_array_add(devices, d);
    }
    return g_steal_pointer(&devices);
}

GPtrArray *domain_metadata_parse(const char *xml, size_t len, GError **error)
{
    xmlDoc *doc = domain_metadata_read_doc(xml, len, VDPAD_MIG_MAX_XML, "vdpad metadata", error);
    if (!doc)
        return NULL;
    GPtrArray *devices = domain_metadata_from_node(xmlDocGetRootElement(doc), error);
    xmlFreeDoc(doc);
    return devices;
}

/* ------------------------------------------------------------------ formatting */

static void append_attr(GString *out, const char *name, const char *value)
{
    g_string_append_printf(out, " %s=\"", name);
    for (const char *c = value; *c; c++) {
        switch (*c) {
        case '&': g_string_append(out, "&amp;"); break;
        case '<': g_string_append(out, "&lt;"); break;
        case '>': g_string_append(out, "&gt;"); break;
        case '"': g_string_append(out, "&quot;"); break;
        default: g_string_append_c(out, *c); break;
        }
    }
    g_string_append_c(out, '"');
}

char *domain_metadata_format(const GPtrArray *devices, bool with_ns)
{
    const char *p = with_ns ? VDPAD_MIG_XMLNS_PREFIX ":" : "";
    GString *out = g_string_new(NULL);

    g_string_append_printf(out, "<%sdevices", p);
    if (with_ns)
        g_string_append_printf(out, " xmlns:%s=\"%s\"", VDPAD_MIG_XMLNS_PREFIX, VDPAD_MIG_XMLNS);
    if (!devices->len) {
        g_string_append(out, "/>");
        return g_string_free(out, FALSE);
    }
    g_string_append(out, ">");
    for (guint i = 0; i < devices->len; i++) {
        const struct vdpad_mig_device *d = devices->pdata[i];
        g_string_append_printf(out, "<%sdevice", p);
        append_attr(out, "node", d->node);
        append_attr(out, "name", d->name);
        append_attr(out, "source", d->source);
        append_attr(out, "token", d->token);
        g_string_append(out, "/>");
    }
    g_string_append_printf(out, "</%sdevices>", p);
    return g_string_free(out, FALSE);
}

const struct vdpad_mig_device *domain_metadata_find(const GPtrArray *devices, const char *node)
{
    for (guint i = 0; i < devices->len; i++) {
        const struct vdpad_mig_device *d = devices->pdata[i];
        if (g_str_equal(d->node, node))
            return d;
    }
    return NULL;
}

int domain_metadata_upsert(GPtrArray *devices, const struct vdpad_mig_device *dev,
                           GError **error)
{
    int ret = vdpad_mig_device_validate(dev, error);
    if (ret < 0)
        return ret;
    struct vdpad_mig_device *copy = vdpad_mig_device_new(dev->node, dev->name, dev->source,
                                                         dev->token);
    for (guint i = 0; i < devices->len; i++) {
        struct vdpad_mig_device *d = devices->pdata[i];
        if (g_str_equal(d->node, dev->node)) {
            vdpad_mig_device_free(d);
            devices->pdata[i] = copy;
            return 0;
        }
    }
    if (devices->len >= VDPAD_MIG_MAX_DEVICES) {
        vdpad_mig_device_free(copy);
        return vdpad_fail(error, E2BIG, "vdpad metadata: already %d devices; cannot add %s",
                          VDPAD_MIG_MAX_DEVICES, dev->node);
    }
    g_ptr_array_add(devices, copy);
    return 0;
}
