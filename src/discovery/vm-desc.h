/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Private to src/discovery: what one file says about one VM, how it is read
 * from a trigger file, and the host probe. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>
#include <systemd/sd-id128.h>

#include "macro.h"
#include "memctx.h"
#include "xml-problem.h"

#define VM_FILE_SIZE_MAX (4U << 20)
#define VM_RANGES_MAX 256
#define VM_PAGE_SIZE 4096ULL

typedef struct vm_desc {
        char *name;
        sd_id128_t uuid;
        char *qmp_socket;
        char *ram_path;
        vmsig_gpa_range *ranges; /* sorted by gpa */
        size_t n_ranges;
        vmsig_guest_os guest_os; /* pinned by the file; UNKNOWN: detected */
        unsigned line; /* where the name is given, for clash messages */
} vm_desc;

vm_desc *vm_desc_free(vm_desc *v);
bool vm_desc_equal(const vm_desc *a, const vm_desc *b);

/* Returns 0 with *ret set, or a negative errno with *error set
 * to "FILE:LINE: problem" (FILE alone when no line applies). -ENOENT means
 * the file went away before it could be read: nothing worth a warning. */
int vm_schema_load(xmlRelaxNGPtr *ret);
int vm_desc_read_trigger(const char *path, xmlRelaxNGPtr schema, vm_desc **ret, char **error);

/* 0 when the QMP socket and the RAM file are there and usable; otherwise a
 * negative errno and what is missing in reason. */
int vm_desc_probe_host(const vm_desc *v, char *reason, size_t size);

/* --- helpers of the reader ---------------------------------------------- */

/* The first problem wins: later ones are usually consequences of it. */
/* A reader's own checks of the root, filling v: <0 on a problem, >0 when
 * the file is not for us (no VM, no problem). */
typedef int (*vm_parse_fn)(xml_problem *p, xmlNodePtr root, vm_desc *v);
/* Opens the file without following links, checks who may have written it,
 * parses it, runs parse and then the schema (when not NULL) on it. */
int vm_desc_read(const char *path, vm_parse_fn parse, xmlRelaxNGPtr schema, vm_desc **ret, char **error);
bool vm_node_is(xmlNodePtr n, const char *ns, const char *name);
xmlNodePtr vm_node_child(xmlNodePtr n, const char *ns, const char *name);
/* A copy of an attribute; NULL when absent or out of memory (then p->r is
 * -ENOMEM). */
char *vm_node_attr(xml_problem *p, xmlNodePtr n, const char *name);

/* Checks and stores a field, reporting at the line of n. */
int vm_desc_set_name(xml_problem *p, xmlNodePtr n, vm_desc *v, char *name);
int vm_desc_set_uuid(xml_problem *p, xmlNodePtr n, vm_desc *v, const char *uuid);
int vm_desc_set_qmp(xml_problem *p, xmlNodePtr n, vm_desc *v, char *socket);
int vm_desc_set_ram(xml_problem *p, xmlNodePtr n, vm_desc *v, char *path);
/* <gpa-map><range gpa= size= offset=/>...</gpa-map> in namespace ns. */
int vm_desc_parse_gpa_map(xml_problem *p, xmlNodePtr map, const char *ns, vm_desc *v);
