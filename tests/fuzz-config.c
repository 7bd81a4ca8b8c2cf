/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for vmsigd.conf: the input is the file. The loader
 * (libxml2 without network or entities, our checks, then the RelaxNG
 * schema) must not crash or leak, must report a failure as "PATH: ..." or
 * "PATH:LINE: ..." with nothing returned, and what it accepts must hold
 * everything the daemon takes for granted when it applies a configuration:
 * the schema and our checks together are the validator under test.
 *
 * Seeds: tests/data/fuzz-config (valid and broken files, the ones of
 * tests/data/config among them).
 */
#include <limits.h>
#include <syslog.h>
#include <libxml/parser.h>

#include "config-file.h"
#include "fuzz.h"

static bool is_absolute(const char *path) {
        return path && path[0] == '/';
}

static void check_stub_vm(const vmsig_config *c, size_t i) {
        const vmsig_stub_vm_config *vm = &c->stub_vms[i];

        fuzz_check(vmsig_endpoint_name_is_valid(vm->name));
        fuzz_check(vmsig_config_find_stub(c, vm->name) == vm); /* names are unique */
        fuzz_check(vm->ram_size >= (1ULL << 20) && vm->ram_size <= (64ULL << 30) && vm->ram_size % 4096 == 0);
        fuzz_check(vm->initial_state > VMSIG_STATE_UNKNOWN && vm->initial_state < _VMSIG_STATE_MAX);
        fuzz_check(vm->latency_usec <= 60 * UINT64_C(1000000));
        fuzz_check(vm->dtb % 4096 == 0);
        fuzz_check(!(vm->bootstrap && vm->dtb));
        fuzz_check(vm->bootstrap || vm->fail_boots == 0);
        fuzz_check(vm->line > 0);
        for (size_t j = 0; j < i; j++)
                fuzz_check(sd_id128_is_null(vm->uuid) || !sd_id128_equal(vm->uuid, c->stub_vms[j].uuid));
}

static void check_config(const vmsig_config *c, const char *path) {
        const vmsig_admission_config *a = &c->admission;

        fuzz_check(c->path && strcmp(c->path, path) == 0);
        fuzz_check(c->log_level >= LOG_EMERG && c->log_level <= LOG_DEBUG);
        fuzz_check(c->queue_limit >= 1 && c->queue_limit <= INT_MAX);
        fuzz_check(c->max_endpoints >= 1 && c->max_endpoints <= INT_MAX);
        fuzz_check(c->max_write >= 1 && c->max_write <= VMSIG_CONFIG_MAX_WRITE_MAX);
        fuzz_check(c->bootstrap_backoff_max_ms >= 1 && c->bootstrap_backoff_max_ms <= INT_MAX);
        fuzz_check(c->audit_target && (strcmp(c->audit_target, "auto") == 0 || strcmp(c->audit_target, "journal") == 0 ||
                                       strcmp(c->audit_target, "stderr") == 0));
        /* A unix socket address holds 107 bytes of path. */
        fuzz_check(!c->private_socket || (is_absolute(c->private_socket) && strlen(c->private_socket) < 108));
        fuzz_check(!c->trigger_dir || is_absolute(c->trigger_dir));
        fuzz_check(c->libvirt_uri && strchr(c->libvirt_uri, ':'));
        fuzz_check(a->n_allow_uids == 0 || a->allow_uids);
        fuzz_check(a->n_allow_gids == 0 || a->allow_gids);
        fuzz_check(c->n_stub_vms == 0 || c->stub_vms);
        for (size_t i = 0; i < c->n_stub_vms; i++)
                check_stub_vm(c, i);
}

/* "PATH: problem" or "PATH:LINE: problem". */
static void check_error(const char *error, const char *path) {
        size_t n = strlen(path);

        fuzz_check(error);
        fuzz_check(strncmp(error, path, n) == 0 && error[n] == ':');
        fuzz_check(strlen(error) > n + 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        vmsig_config *c = NULL;
        char *error = NULL;
        char path[512];
        int r;

        if (fuzz_scratch_write("vmsigd.conf", data, size, path, sizeof path) < 0)
                abort();
        r = vmsig_config_load(path, &c, &error);
        if (r >= 0) {
                fuzz_check(r == 0 && c && !error);
                check_config(c, path);
        } else {
                fuzz_check(!c);
                check_error(error, path);
        }
        vmsig_config_free(c);
        free(error);
        return 0;
}

void fuzz_teardown(void) {
        fuzz_scratch_done();
        xmlCleanupParser();
}
