/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Trigger files: <vm name= uuid=><qmp socket=/><ram path=/><gpa-map/></vm>,
 * validated against data/vm.rng, which is compiled in. */
#include <errno.h>
#include <string.h>
#include <libxml/relaxng.h>

#include "log.h"
#include "vm-desc.h"

extern const char vmsig_vm_schema[];
extern const unsigned vmsig_vm_schema_len;

/* Parsed once: compiling the schema costs more than reading a file. */
int vm_schema_load(xmlRelaxNGPtr *ret) {
        xmlRelaxNGParserCtxtPtr pctx = xmlRelaxNGNewMemParserCtxt(vmsig_vm_schema, (int) vmsig_vm_schema_len);
        xmlRelaxNGPtr schema;

        if (!pctx)
                return -ENOMEM;
        schema = xmlRelaxNGParse(pctx);
        xmlRelaxNGFreeParserCtxt(pctx);
        if (!schema)
                return log_error_errno(EINVAL, "Cannot compile the VM file schema.");
        *ret = schema;
        return 0;
}

static int parse_identity(xml_problem *p, xmlNodePtr root, vm_desc *v) {
        _cleanup_free_ char *uuid = NULL;
        char *name = vm_node_attr(p, root, "name");
        int r;

        if (!name)
                return p->r < 0 ? p->r : xml_problem_fail(p, -EINVAL, xml_node_line(root), "<vm> has no name=.");
        r = vm_desc_set_name(p, root, v, name);
        if (r < 0)
                return r;
        _cleanup_free_ char *os = vm_node_attr(p, root, "guest-os");
        if (os) {
                static const char *const oses[] = { "windows", "linux", NULL };

                r = xml_problem_choice(p, xml_node_line(root), "guest-os", os, oses);
                if (r < 0)
                        return r;
                v->guest_os = vmsig_guest_os_from_string(os);
        }
        if (p->r < 0)
                return p->r;
        uuid = vm_node_attr(p, root, "uuid");
        if (!uuid)
                return p->r;
        return vm_desc_set_uuid(p, root, v, uuid);
}

static int parse_host_files(xml_problem *p, xmlNodePtr root, vm_desc *v) {
        xmlNodePtr qmp = vm_node_child(root, NULL, "qmp"), ram = vm_node_child(root, NULL, "ram");
        xmlNodePtr map = vm_node_child(root, NULL, "gpa-map");
        int r;

        if (!qmp)
                return xml_problem_fail(p, -EINVAL, xml_node_line(root), "<qmp socket=\"...\"/> is missing.");
        if (!ram)
                return xml_problem_fail(p, -EINVAL, xml_node_line(root), "<ram path=\"...\"/> is missing.");
        r = vm_desc_set_qmp(p, qmp, v, vm_node_attr(p, qmp, "socket"));
        if (r >= 0)
                r = vm_desc_set_ram(p, ram, v, vm_node_attr(p, ram, "path"));
        if (r >= 0 && map)
                r = vm_desc_parse_gpa_map(p, map, NULL, v);
        return r;
}

static int parse_tree(xml_problem *p, xmlNodePtr root, vm_desc *v) {
        int r;

        if (!vm_node_is(root, NULL, "vm"))
                return xml_problem_fail(p, -EINVAL, xml_node_line(root), "root element is <%s>, expected <vm>.",
                                     root ? (const char *) root->name : "");
        r = parse_identity(p, root, v);
        if (r >= 0)
                r = parse_host_files(p, root, v);
        return r;
}

int vm_desc_read_trigger(const char *path, xmlRelaxNGPtr schema, vm_desc **ret, char **error) {
        return vm_desc_read(path, parse_tree, schema, ret, error);
}
