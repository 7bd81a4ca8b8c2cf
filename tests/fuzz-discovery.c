/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the discovery reader: the input is a file in the
 * trigger directory. It must not crash or leak, must report a failure as "PATH: ..." or "PATH:LINE: ...",
 * and a VM they accept must be one vmsigd can attach as it is: a valid
 * name, absolute paths that fit a socket address, a GPA map that is sorted,
 * page-aligned, without overlaps and without wrapping past 2^64.
 *
 * Seeds: tests/data/fuzz-discovery (the trigger files of tests/data/vms,
 * and variants).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <libxml/parser.h>

#include "fuzz.h"
#include "vm-desc.h"
#include "vmsig-endpoint.h"

static xmlRelaxNGPtr schema;

static void check_ranges(const vm_desc *v) {
        fuzz_check(v->n_ranges <= VM_RANGES_MAX);
        fuzz_check(v->n_ranges == 0 || v->ranges);
        for (size_t i = 0; i < v->n_ranges; i++) {
                const vmsig_gpa_range *g = &v->ranges[i];

                fuzz_check(g->size > 0);
                fuzz_check(g->gpa % VM_PAGE_SIZE == 0 && g->size % VM_PAGE_SIZE == 0 && g->offset % VM_PAGE_SIZE == 0);
                fuzz_check(g->gpa + g->size > g->gpa && g->offset + g->size > g->offset);
                if (i > 0)
                        fuzz_check(v->ranges[i - 1].gpa + v->ranges[i - 1].size <= g->gpa);
        }
}

static void check_desc(const vm_desc *v) {
        fuzz_check(vmsig_endpoint_name_is_valid(v->name));
        fuzz_check(v->qmp_socket && v->qmp_socket[0] == '/' && strlen(v->qmp_socket) < 108);
        fuzz_check(!strstr(v->qmp_socket, "/../") && !strstr(v->qmp_socket, "//"));
        fuzz_check(v->ram_path && v->ram_path[0] == '/' && strlen(v->ram_path) < PATH_MAX);
        fuzz_check(!strstr(v->ram_path, "/../") && !strstr(v->ram_path, "//"));
        check_ranges(v);
        fuzz_check(vm_desc_equal(v, v));
}

static void check_error(const char *error, const char *path) {
        size_t n = strlen(path);

        fuzz_check(error);
        fuzz_check(strncmp(error, path, n) == 0 && error[n] == ':');
}

static void run_trigger(const char *path) {
        vm_desc *v = NULL;
        char *error = NULL;
        int r;

        r = vm_desc_read_trigger(path, schema, &v, &error);
        if (r == 0) {
                fuzz_check(v && !error);
                check_desc(v);
        } else {
                fuzz_check(r < 0 && !v);
                check_error(error, path);
        }
        vm_desc_free(v);
        free(error);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char path[512];

        if (!schema && vm_schema_load(&schema) < 0)
                abort();
        if (fuzz_scratch_write("vm.xml", data, size, path, sizeof path) < 0)
                abort();
        run_trigger(path);
        return 0;
}

void fuzz_teardown(void) {
        xmlRelaxNGFree(schema);
        schema = NULL;
        fuzz_scratch_done();
        xmlCleanupParser();
}
