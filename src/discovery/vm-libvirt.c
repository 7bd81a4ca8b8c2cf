/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvirt's live status files (/run/libvirt/qemu/NAME.xml):
 *
 *   <domstatus state='running' ...>
 *     <monitor path='...' type='unix'/>          libvirt's own monitor
 *     <memoryBackingDir path='...'/>             where file-backed RAM lives
 *     <domain type='kvm' id='1'>
 *       <name>...</name> <uuid>...</uuid>
 *       <metadata><vmsig:vm>...</vmsig:vm></metadata>
 *       <qemu:commandline>...</qemu:commandline>
 *     </domain>
 *   </domstatus>
 *
 * The format is libvirt's, so there is no schema to validate against: we
 * read what we need and ignore the rest. Most domains are not meant for
 * vmsig at all; those are skipped quietly (a debug message). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "discovery.h"
#include "vm-desc.h"

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"
#define NS VMSIG_DISCOVERY_LIBVIRT_NS

/* Not an error: the domain is not for us. The reason goes to *error. */
#define SKIP 1

static int skip(xml_problem *p, unsigned line, const char *reason) {
        (void) xml_problem_fail(p, 0, line, "%s", reason);
        return SKIP;
}

/* "-qmp unix:PATH[,options]" among the <qemu:arg> values. */
static char *qmp_from_commandline(xml_problem *p, xmlNodePtr domain, xmlNodePtr *ret_node) {
        xmlNodePtr cl = vm_node_child(domain, QEMU_NS, "commandline");
        bool after_qmp = false;

        for (xmlNodePtr k = cl ? cl->children : NULL; k; k = k->next) {
                _cleanup_free_ char *value = NULL;

                if (!vm_node_is(k, QEMU_NS, "arg"))
                        continue;
                value = vm_node_attr(p, k, "value");
                if (after_qmp && value && strncmp(value, "unix:", 5) == 0) {
                        char *socket = strndup(value + 5, strcspn(value + 5, ","));
                        if (!socket)
                                (void) xml_problem_fail(p, -ENOMEM, 0, "out of memory.");
                        *ret_node = k;
                        return socket;
                }
                after_qmp = value && (strcmp(value, "-qmp") == 0 || strcmp(value, "--qmp") == 0);
        }
        return NULL;
}

static int parse_qmp(xml_problem *p, xmlNodePtr status, xmlNodePtr domain, xmlNodePtr meta, vm_desc *v) {
        xmlNodePtr qmp = vm_node_child(meta, NS, "qmp"), monitor = vm_node_child(status, NULL, "monitor");
        _cleanup_free_ char *libvirt_monitor = NULL;
        char *socket = NULL;
        int r;

        if (qmp)
                socket = vm_node_attr(p, qmp, "socket");
        else
                socket = qmp_from_commandline(p, domain, &qmp);
        if (!socket && p->r < 0)
                return p->r;
        if (!socket)
                return skip(p, xml_node_line(domain),
                            "no QMP socket for vmsig (<vmsig:qmp socket=.../> or -qmp unix:PATH), skipping.");
        r = vm_desc_set_qmp(p, qmp, v, socket);
        if (r < 0)
                return r;
        libvirt_monitor = monitor ? vm_node_attr(p, monitor, "path") : NULL;
        if (libvirt_monitor && strcmp(libvirt_monitor, v->qmp_socket) == 0)
                return xml_problem_fail(p, -EBUSY, xml_node_line(qmp),
                                     "%s is libvirt's own monitor; give vmsigd a QMP socket of its own.",
                                     v->qmp_socket);
        return p->r;
}

/* A relative path lives in the domain's memory backing directory, whose
 * name holds the domain id and so changes with every start. */
static int parse_ram(xml_problem *p, xmlNodePtr status, xmlNodePtr meta, vm_desc *v) {
        xmlNodePtr ram = vm_node_child(meta, NS, "ram"), dir_node;
        _cleanup_free_ char *dir = NULL;
        char *path, *full = NULL;

        path = ram ? vm_node_attr(p, ram, "path") : NULL;
        if (!path)
                return p->r < 0 ? p->r : skip(p, xml_node_line(meta), "no <vmsig:ram path=.../>, skipping.");
        if (path[0] == '/')
                return vm_desc_set_ram(p, ram, v, path);
        dir_node = vm_node_child(status, NULL, "memoryBackingDir");
        dir = dir_node ? vm_node_attr(p, dir_node, "path") : NULL;
        if (!dir) {
                free(path);
                return p->r < 0 ? p->r
                                : xml_problem_fail(p, -EINVAL, xml_node_line(ram),
                                                "relative RAM path needs <memoryBackingDir> in the status file.");
        }
        if (asprintf(&full, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", path) < 0)
                full = NULL;
        free(path);
        if (!full)
                return xml_problem_fail(p, -ENOMEM, 0, "out of memory.");
        return vm_desc_set_ram(p, ram, v, full);
}

static int parse_identity(xml_problem *p, xmlNodePtr domain, vm_desc *v) {
        xmlNodePtr name = vm_node_child(domain, NULL, "name"), uuid = vm_node_child(domain, NULL, "uuid");
        _cleanup_free_ char *uuid_text = NULL;
        char *name_text;
        int r;

        if (!name || !uuid)
                return skip(p, xml_node_line(domain), "<domain> without <name> or <uuid>, skipping.");
        name_text = vm_node_text(p, name);
        if (p->r < 0) {
                free(name_text);
                return p->r;
        }
        r = vm_desc_set_name(p, name, v, name_text);
        if (r < 0)
                return r;
        uuid_text = vm_node_text(p, uuid);
        return p->r < 0 ? p->r : vm_desc_set_uuid(p, uuid, v, uuid_text);
}

static int parse_tree(xml_problem *p, xmlNodePtr status, vm_desc *v) {
        xmlNodePtr domain, meta, map;
        int r;

        if (!vm_node_is(status, NULL, "domstatus"))
                return skip(p, xml_node_line(status), "not a libvirt status file (no <domstatus>), skipping.");
        domain = vm_node_child(status, NULL, "domain");
        if (!domain)
                return skip(p, xml_node_line(status), "no <domain> in the status file, skipping.");
        meta = vm_node_child(vm_node_child(domain, NULL, "metadata"), NS, "vm");
        if (!meta)
                return skip(p, xml_node_line(domain), "no <vmsig:vm> metadata, skipping.");
        r = parse_identity(p, domain, v);
        if (r == 0)
                r = parse_qmp(p, status, domain, meta, v);
        if (r == 0)
                r = parse_ram(p, status, meta, v);
        map = vm_node_child(meta, NS, "gpa-map");
        if (r == 0 && map)
                r = vm_desc_parse_gpa_map(p, map, NS, v);
        return r;
}

int vm_desc_read_libvirt(const char *path, vm_desc **ret, char **error) {
        return vm_desc_read(path, parse_tree, NULL, ret, error);
}
