/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "libvirt-xml.h"
#include "macro.h"
#include "xml-problem.h"

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"

void libvirt_xml_freep(xmlDocPtr *p) {
        if (*p)
                xmlFreeDoc(*p);
}

xmlDocPtr libvirt_xml_read(const char *xml, size_t len) {
        assert(xml);
        if (len > INT32_MAX)
                return NULL;
        return xmlReadMemory(xml, (int) len, NULL, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

bool libvirt_xml_is_element(xmlNodePtr n, const char *name) {
        return n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, (const xmlChar *) name);
}

/* The first child element of n called name, in no namespace. */
static xmlNodePtr child(xmlNodePtr n, const char *name) {
        for (xmlNodePtr c = n ? n->children : NULL; c; c = c->next)
                if (libvirt_xml_is_element(c, name) && !c->ns)
                        return c;
        return NULL;
}

/* libvirt's memory units (docs/formatdomain: "unit"), KiB when none. */
static int unit_factor(const char *unit, uint64_t *ret) {
        static const struct {
                const char *name;
                uint64_t factor;
        } units[] = {
                { "b", 1 },           { "bytes", 1 },
                { "KB", 1000 },       { "k", 1024 },     { "KiB", 1024 },
                { "MB", 1000000 },    { "M", 1 << 20 },  { "MiB", 1 << 20 },
                { "GB", 1000000000 }, { "G", 1 << 30 },  { "GiB", 1 << 30 },
                { "TB", UINT64_C(1000000000000) }, { "T", UINT64_C(1) << 40 }, { "TiB", UINT64_C(1) << 40 },
        };

        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (strcmp(unit ?: "KiB", units[i].name) == 0) {
                        *ret = units[i].factor;
                        return 0;
                }
        return -EBADMSG;
}

/* A <memory>-like element in bytes: 0, -ENOENT without it, -EBADMSG for a
 * value that is not a plain decimal number of a known unit, or too big. */
static int memory_bytes(xmlNodePtr n, uint64_t *ret) {
        _cleanup_xmlfree_ char *text = NULL, *unit = NULL;
        uint64_t v = 0, factor;

        if (!n)
                return -ENOENT;
        text = (char *) xmlNodeGetContent(n);
        unit = (char *) xmlGetProp(n, (const xmlChar *) "unit");
        if (!text || text[0] == '\0' || strlen(text) > 20 || unit_factor(unit, &factor) < 0)
                return -EBADMSG;
        for (const char *c = text; *c; c++) {
                if (*c < '0' || *c > '9' || v > (UINT64_MAX - 9) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (*c - '0');
        }
        if (v > UINT64_MAX / factor)
                return -EBADMSG;
        *ret = v * factor;
        return 0;
}

static bool arg_changes_layout(const char *v) {
        return strstr(v, "max-ram-below-4g") || strcmp(v, "-machine") == 0 || strcmp(v, "--machine") == 0 ||
               strcmp(v, "-M") == 0 || strcmp(v, "--M") == 0;
}

/* The first argument of <qemu:commandline> that changes what the machine
 * type says of the layout, if any (xmlFree() it). */
static char *layout_argument(xmlNodePtr domain) {
        for (xmlNodePtr c = domain->children; c; c = c->next) {
                if (!libvirt_xml_is_element(c, "commandline") || !c->ns || !xmlStrEqual(c->ns->href, (const xmlChar *) QEMU_NS))
                        continue;
                for (xmlNodePtr a = c->children; a; a = a->next) {
                        char *v = libvirt_xml_is_element(a, "arg") ? (char *) xmlGetProp(a, (const xmlChar *) "value") : NULL;

                        if (v && arg_changes_layout(v))
                                return v;
                        xmlFree(v);
                }
        }
        return NULL;
}

/* <os><type>: the machine type, of an x86 guest. */
static int machine_type(xmlNodePtr domain, char **ret, char *msg, size_t size) {
        xmlNodePtr type = child(child(domain, "os"), "type");
        _cleanup_xmlfree_ char *arch = type ? (char *) xmlGetProp(type, (const xmlChar *) "arch") : NULL;

        if (!arch || (strcmp(arch, "x86_64") != 0 && strcmp(arch, "i686") != 0)) {
                snprintf(msg, size, "It is not a PC guest (its <os><type arch> is '%s').", arch ?: "missing");
                return -EOPNOTSUPP;
        }
        *ret = (char *) xmlGetProp(type, (const xmlChar *) "machine");
        if (!*ret) {
                snprintf(msg, size, "Its XML names no machine type (<os><type machine>).");
                return -EOPNOTSUPP;
        }
        return 0;
}

/* What the domain element says of the RAM, checked against the backend. */
static int domain_layout(xmlNodePtr domain, uint64_t ram_size, vmsig_gpa_range *ret, size_t *ret_n, char *msg,
                         size_t size) {
        _cleanup_xmlfree_ char *machine = NULL, *argument = layout_argument(domain);
        uint64_t memory = 0, max_memory = 0;
        int r;

        if (argument) {
                snprintf(msg, size, "Its <qemu:commandline> argument '%.64s' may change where QEMU puts the RAM.",
                         argument);
                return -EOPNOTSUPP;
        }
        r = machine_type(domain, &machine, msg, size);
        if (r < 0)
                return r;
        r = memory_bytes(child(domain, "memory"), &memory);
        if (r >= 0)
                r = memory_bytes(child(domain, "maxMemory"), &max_memory);
        if (r < 0 && r != -ENOENT) {
                snprintf(msg, size, "Its <memory> or <maxMemory> is not a size.");
                return -EBADMSG;
        }
        if (memory != ram_size) {
                snprintf(msg, size,
                         "Its <memory> (%" PRIu64 " KiB) is not the size of the RAM backend QEMU maps (%" PRIu64
                         " KiB): some RAM is elsewhere.", memory >> 10, ram_size >> 10);
                return -EOPNOTSUPP;
        }
        return qemu_ram_layout(machine, ram_size, max_memory, ret, ret_n, msg, size);
}

int libvirt_xml_ram_layout(const char *xml, size_t len, uint64_t ram_size,
                           vmsig_gpa_range ret[static QEMU_RAM_LAYOUT_MAX_RANGES], size_t *ret_n, char *msg,
                           size_t size) {
        _cleanup_(libvirt_xml_freep) xmlDocPtr doc = NULL;
        xmlNodePtr root;

        assert(xml && ret && ret_n && msg);
        if (len > LIBVIRT_XML_MAX) {
                snprintf(msg, size, "Its XML is over %d bytes.", LIBVIRT_XML_MAX);
                return -EBADMSG;
        }
        doc = libvirt_xml_read(xml, len);
        root = doc ? xmlDocGetRootElement(doc) : NULL;
        if (!root || !libvirt_xml_is_element(root, "domain") || root->ns) {
                snprintf(msg, size, "libvirt gave no domain XML.");
                return -EBADMSG;
        }
        return domain_layout(root, ram_size, ret, ret_n, msg, size);
}
