/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Loading vmsigd.conf: parse without network or entity expansion, validate
 * against the compiled-in RelaxNG schema, then check what the schema cannot
 * (unique names and uuids, sizes in range). Every problem is reported as
 * "FILE:LINE: problem" so that an admin can go straight to it. */
#include <errno.h>
#include <inttypes.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>

#include "bootstrap-config.h"
#include "config-file.h"
#include "log.h"
#include "macro.h"
#include "memwrite.h"
#include "time-util.h"
#include "vmsig-core.h"
#include "xml-problem.h"

extern const char vmsig_config_schema[];
extern const unsigned vmsig_config_schema_len;

#define RAM_SIZE_MIN (1ULL << 20)
#define RAM_SIZE_MAX (64ULL << 30)
#define RAM_SIZE_ALIGN 4096ULL
#define STUB_LATENCY_MAX_MS 60000u

static char *attr(xmlNodePtr n, const char *name) {
        return (char *) xmlGetProp(n, (const xmlChar *) name);
}

/* An optional yes/no attribute: *ret keeps its default when it is absent. */
static int parse_yes_no(xml_problem *s, unsigned line, const char *name, const char *v, bool *ret) {
        static const char *const yes_no[] = { "yes", "no", NULL };
        int i;

        if (!v)
                return 0;
        i = xml_problem_choice(s, line, name, v, yes_no);
        if (i < 0)
                return i;
        *ret = i == 0;
        return 0;
}

static int parse_ram_size(const char *s, uint64_t *ret) {
        unsigned shift = 0;
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0 || end == s)
                return -EINVAL;
        if (*end == 'K')
                shift = 10;
        else if (*end == 'M')
                shift = 20;
        else if (*end == 'G')
                shift = 30;
        else if (*end != '\0')
                return -EINVAL;
        if (shift > 0 && end[1] != '\0')
                return -EINVAL;
        if (v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = (uint64_t) v << shift;
        return 0;
}

static int parse_number(xml_problem *s, xmlNodePtr n, const char *name, unsigned long long min, size_t *ret) {
        _cleanup_xmlfree_ char *v = attr(n, name);
        unsigned long long u;
        char *end;

        if (!v)
                return 0;
        errno = 0;
        u = strtoull(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0' || u < min || u > INT_MAX)
                return xml_problem_fail(s, -ERANGE, xml_node_line(n), "%s=\"%s\" is out of range (%llu..%d).", name, v, min, INT_MAX);
        *ret = (size_t) u;
        return 0;
}

static int parse_positive(xml_problem *s, xmlNodePtr n, const char *name, size_t *ret) {
        return parse_number(s, n, name, 1, ret);
}

static int parse_unsigned(xml_problem *s, xmlNodePtr n, const char *name, unsigned *ret) {
        size_t v = *ret;
        int r = parse_number(s, n, name, 0, &v);

        *ret = (unsigned) v;
        return r;
}

static int parse_log(xml_problem *s, xmlNodePtr n, vmsig_config *c) {
        _cleanup_xmlfree_ char *level = attr(n, "level");
        /* Our checks run before the schema's: the attribute may be missing. */
        int l = level ? log_level_from_string(level) : -EINVAL;

        if (l < 0 && level) {
                static const char *const levels[] = { "emerg", "alert", "crit",  "err",
                                                      "warning", "notice", "info", "debug", NULL };
                return xml_problem_choice(s, xml_node_line(n), "level", level, levels);
        }
        if (l < 0)
                return xml_problem_fail(s, -EINVAL, xml_node_line(n), "<log> lacks the level attribute.");
        c->log_level = l;
        return 0;
}

/* The attributes of <limits>, each a positive number. */
static const struct {
        const char *name;
        size_t offset; /* of its size_t in vmsig_config */
} limits[] = {
        { "queue-length", offsetof(vmsig_config, queue_limit) },
        { "max-endpoints", offsetof(vmsig_config, max_endpoints) },
        { "max-write", offsetof(vmsig_config, max_write) },
        { "bootstrap-backoff-max-ms", offsetof(vmsig_config, bootstrap_backoff_max_ms) },
};

static int parse_limits(xml_problem *s, xmlNodePtr n, vmsig_config *c) {
        int r = 0;

        for (size_t i = 0; r >= 0 && i < ELEMENTSOF(limits); i++)
                r = parse_positive(s, n, limits[i].name, (size_t *) ((uint8_t *) c + limits[i].offset));
        if (r >= 0 && c->max_write > VMSIG_CONFIG_MAX_WRITE_MAX)
                r = xml_problem_fail(s, -ERANGE, xml_node_line(n), "max-write=\"%zu\" is out of range (1..%u).", c->max_write,
                         VMSIG_CONFIG_MAX_WRITE_MAX);
        return r;
}

/* *where becomes a copy of value, the old one freed. */
static int set_string(xml_problem *s, char **where, const char *value) {
        char *copy = strdup(value);

        if (!copy)
                return xml_problem_fail(s, -ENOMEM, 0, "out of memory.");
        free(*where);
        *where = copy;
        return 0;
}

static int parse_audit(xml_problem *s, xmlNodePtr n, vmsig_config *c) {
        _cleanup_xmlfree_ char *target = attr(n, "target");

        static const char *const targets[] = { "auto", "journal", "stderr", NULL };
        int r;

        if (!target)
                return xml_problem_fail(s, -EINVAL, xml_node_line(n), "<audit> lacks the target attribute.");
        r = xml_problem_choice(s, xml_node_line(n), "target", target, targets);
        if (r < 0)
                return r;
        return set_string(s, &c->audit_target, target);
}

static int parse_private_socket(xml_problem *s, xmlNodePtr n, vmsig_config *c) {
        _cleanup_xmlfree_ char *path = attr(n, "path"), *enabled = attr(n, "enabled");

        bool on = true;
        int r;

        free(c->private_socket);
        c->private_socket = NULL;
        r = parse_yes_no(s, xml_node_line(n), "enabled", enabled, &on);
        if (r < 0 || !on)
                return r;
        if (path && (path[0] != '/' || strlen(path) >= 108))
                return xml_problem_fail(s, -EINVAL, xml_node_line(n),
                            "private socket path \"%s\" must be absolute and shorter than 108 bytes.", path);
        return set_string(s, &c->private_socket, path ?: VMSIG_CONFIG_PRIVATE_SOCKET_DEFAULT);
}

static int set_path(xml_problem *s, xmlNodePtr n, char **where, const char *value) {
        if (value[0] != '/')
                return xml_problem_fail(s, -EINVAL, xml_node_line(n), "\"%s\" is not an absolute path.", value);
        return set_string(s, where, value);
}

/* A warning of loading the file: the first is kept, for the caller, as
 * "FILE:LINE: warning", the way a problem is. */
_printf_(3, 4) static void config_warn(vmsig_config *c, unsigned line, const char *fmt, ...) {
        xml_problem w = { .path = c->path ?: "config", .error = c->warning };
        va_list ap;

        va_start(ap, fmt);
        (void) xml_problem_failv(&w, 0, line, fmt, ap);
        va_end(ap);
        c->warning = w.error;
}

/* <discovery enabled="yes" trigger-dir="..."/>. libvirt="yes" (libvirt's
 * status files) was replaced by the libvirt backend: an old file still
 * loads, and says so. */
static int parse_discovery(xml_problem *s, xmlNodePtr n, vmsig_config *c) {
        _cleanup_xmlfree_ char *enabled = attr(n, "enabled"), *dir = attr(n, "trigger-dir"),
                               *libvirt = attr(n, "libvirt"), *libvirt_dir = attr(n, "libvirt-dir");

        if (libvirt || libvirt_dir)
                config_warn(c, xml_node_line(n),
                            "<discovery %s=...> is obsolete and ignored: libvirt's status files are no longer read. "
                            "Use <libvirt enabled=\"yes\"/> (libvirt's API) instead.",
                            libvirt ? "libvirt" : "libvirt-dir");
        if (enabled && strcmp(enabled, "no") == 0) {
                c->trigger_dir = mfree(c->trigger_dir);
                return 0;
        }
        return dir ? set_path(s, n, &c->trigger_dir, dir) : 0;
}

/* <libvirt enabled="yes" uri="qemu:///system" domains="all|tagged"
 * monitor="yes|no"/>: a URI is SCHEME:..., the scheme letters, digits and
 * '+' (qemu+ssh). */
static int parse_libvirt(xml_problem *s, xmlNodePtr n, vmsig_config *c) {
        _cleanup_xmlfree_ char *enabled = attr(n, "enabled"), *uri = attr(n, "uri"), *domains = attr(n, "domains"),
                               *monitor = attr(n, "monitor");
        static const char *const which[] = { "all", "tagged", NULL };
        unsigned line = xml_node_line(n);
        int r;

        c->libvirt_enabled = true;
        r = parse_yes_no(s, line, "enabled", enabled, &c->libvirt_enabled);
        if (r >= 0)
                r = parse_yes_no(s, line, "monitor", monitor, &c->libvirt_monitor);
        if (r >= 0 && domains && (r = xml_problem_choice(s, line, "domains", domains, which)) >= 0)
                c->libvirt_tagged = r == 1;
        if (r < 0 || !uri)
                return r;
        if (!(uri[0] >= 'a' && uri[0] <= 'z') || uri[strspn(uri, "abcdefghijklmnopqrstuvwxyz0123456789+")] != ':')
                return xml_problem_fail(s, -EINVAL, line,
                                        "uri=\"%s\" is not a libvirt URI (such as qemu:///system).", uri);
        return set_string(s, &c->libvirt_uri, uri);
}

/* <frames enabled="yes" rate="2"/>: a decimal number of captures a second,
 * 0 < rate <= 60. Only digits and one point: no exponent, sign, hex, inf
 * or nan gets through strtod() here. */
static int parse_frames(xml_problem *s, xmlNodePtr n, vmsig_config *c) {
        _cleanup_xmlfree_ char *enabled = attr(n, "enabled"), *rate = attr(n, "rate");
        char *end;
        double v;

        int r;

        c->frames_enabled = true;
        r = parse_yes_no(s, xml_node_line(n), "enabled", enabled, &c->frames_enabled);
        if (r < 0 || !rate)
                return r;
        errno = 0;
        v = strtod(rate, &end);
        if (rate[strspn(rate, "0123456789.")] != '\0' || strchr(rate, '.') != strrchr(rate, '.') || errno != 0 ||
            end == rate || *end != '\0' || !(v > 0) || v > VMSIG_CONFIG_FRAMES_RATE_MAX)
                return xml_problem_fail(s, -ERANGE, xml_node_line(n),
                            "rate=\"%s\" is not a number of frames a second above 0 and at most %g.", rate,
                            VMSIG_CONFIG_FRAMES_RATE_MAX);
        c->frames_rate = v;
        return 0;
}

static int append_id(xml_problem *s, unsigned line, uint32_t **ids, size_t *n, uint32_t id) {
        uint32_t *grown = reallocarray(*ids, *n + 1, sizeof(uint32_t));

        if (!grown)
                return xml_problem_fail(s, -ENOMEM, line, "out of memory.");
        grown[(*n)++] = id;
        *ids = grown;
        return 0;
}

/* Names are resolved here, once per load: the loop never waits on NSS. */
static int parse_allow(xml_problem *s, xmlNodePtr n, vmsig_admission_config *a) {
        _cleanup_xmlfree_ char *user = attr(n, "user"), *group = attr(n, "group");
        unsigned line = xml_node_line(n);

        if (!user == !group)
                return xml_problem_fail(s, -EINVAL, line, "<allow> takes exactly one of user= and group=.");
        if (user) {
                struct passwd *pw = getpwnam(user);
                if (!pw)
                        return xml_problem_fail(s, -ENOENT, line, "unknown user \"%s\".", user);
                return append_id(s, line, (uint32_t **) &a->allow_uids, &a->n_allow_uids, pw->pw_uid);
        }
        struct group *gr = getgrnam(group);
        if (!gr)
                return xml_problem_fail(s, -ENOENT, line, "unknown group \"%s\".", group);
        return append_id(s, line, (uint32_t **) &a->allow_gids, &a->n_allow_gids, gr->gr_gid);
}

static int parse_admission(xml_problem *s, xmlNodePtr n, vmsig_config *c) {
        vmsig_admission_config *a = &c->admission;
        int r;

        r = parse_unsigned(s, n, "max-pending-calls", &a->max_pending_calls);
        if (r >= 0)
                r = parse_unsigned(s, n, "max-subscriptions", &a->max_subscriptions);
        if (r >= 0)
                r = parse_unsigned(s, n, "max-leases", &a->max_leases);
        for (xmlNodePtr k = n->children; r >= 0 && k; k = k->next)
                if (k->type == XML_ELEMENT_NODE && xmlStrEqual(k->name, (const xmlChar *) "allow"))
                        r = parse_allow(s, k, a);
        return r;
}

static int check_unique(xml_problem *s, const vmsig_config *c, const vmsig_stub_vm_config *vm) {
        for (size_t i = 0; i < c->n_stub_vms; i++) {
                const vmsig_stub_vm_config *o = &c->stub_vms[i];

                if (strcmp(o->name, vm->name) == 0)
                        return xml_problem_fail(s, -EEXIST, vm->line, "duplicate stub-vm name \"%s\" (first declared on line %u).",
                                    vm->name, o->line);
                if (!sd_id128_is_null(vm->uuid) && sd_id128_equal(o->uuid, vm->uuid))
                        return xml_problem_fail(s, -EEXIST, vm->line, "duplicate stub-vm uuid " SD_ID128_UUID_FORMAT_STR
                                    " (also used by \"%s\" on line %u).", SD_ID128_FORMAT_VAL(vm->uuid), o->name,
                                    o->line);
        }
        return 0;
}

static int parse_stub_ram(xml_problem *s, xmlNodePtr n, vmsig_stub_vm_config *vm) {
        _cleanup_xmlfree_ char *v = attr(n, "ram-size");
        int r;

        vm->ram_size = VMSIG_CONFIG_RAM_SIZE_DEFAULT;
        if (!v)
                return 0;
        r = parse_ram_size(v, &vm->ram_size);
        if (r == -EINVAL)
                return xml_problem_fail(s, r, vm->line, "ram-size \"%s\" is not a size (bytes, or a number with K, M or G).", v);
        if (r < 0 || vm->ram_size < RAM_SIZE_MIN || vm->ram_size > RAM_SIZE_MAX)
                return xml_problem_fail(s, -ERANGE, vm->line, "ram-size \"%s\" is out of range (1M..64G).", v);
        if (vm->ram_size % RAM_SIZE_ALIGN != 0)
                return xml_problem_fail(s, -EINVAL, vm->line, "ram-size \"%s\" is not a multiple of 4096 bytes.", v);
        return 0;
}

static int parse_dtb(xml_problem *s, xmlNodePtr n, vmsig_stub_vm_config *vm) {
        _cleanup_xmlfree_ char *v = attr(n, "dtb");
        char *end;

        if (!v)
                return 0;
        errno = 0;
        vm->dtb = strtoull(v, &end, 0);
        if (errno != 0 || end == v || *end != '\0' || vm->dtb % 4096 != 0)
                return xml_problem_fail(s, -EINVAL, vm->line, "dtb=\"%s\" is not a page-aligned address.", v);
        return 0;
}

static int parse_bootstrap(xml_problem *s, xmlNodePtr n, vmsig_stub_vm_config *vm) {
        _cleanup_xmlfree_ char *v = attr(n, "bootstrap");
        size_t fail_boots = 0;
        int r;

        vm->bootstrap = false;
        r = parse_yes_no(s, vm->line, "bootstrap", v, &vm->bootstrap);
        if (r < 0)
                return r;
        r = parse_number(s, n, "fail-boots", 0, &fail_boots);
        if (r < 0)
                return r;
        if (fail_boots > 0 && !vm->bootstrap)
                return xml_problem_fail(s, -EINVAL, vm->line, "fail-boots needs bootstrap=\"yes\".");
        if (vm->bootstrap && vm->dtb)
                return xml_problem_fail(s, -EINVAL, vm->line, "dtb and bootstrap=\"yes\" exclude each other.");
        vm->fail_boots = (unsigned) fail_boots;
        return 0;
}

static int parse_vcpu(xml_problem *s, xmlNodePtr n, vmsig_stub_vm_config *vm) {
        _cleanup_xmlfree_ char *regs = attr(n, "vcpu-registers"), *os = attr(n, "guest-os");

        static const char *const oses[] = { "windows", "linux", NULL };
        bool registers = true;
        int r = parse_yes_no(s, vm->line, "vcpu-registers", regs, &registers);

        if (r < 0)
                return r;
        vm->no_vcpu_registers = !registers;
        if (os) {
                r = xml_problem_choice(s, vm->line, "guest-os", os, oses);
                if (r < 0)
                        return r;
                vm->guest_os = vmsig_guest_os_from_string(os);
                if (!vm->bootstrap)
                        return xml_problem_fail(s, -EINVAL, vm->line, "guest-os needs bootstrap=\"yes\".");
        }
        return 0;
}

static int parse_stub_fields(xml_problem *s, xmlNodePtr n, vmsig_stub_vm_config *vm) {
        _cleanup_xmlfree_ char *uuid = attr(n, "uuid"), *state = attr(n, "state");
        size_t latency_ms = 0;
        int r;

        if (!vmsig_endpoint_name_is_valid(vm->name))
                return xml_problem_fail(s, -EINVAL, vm->line, "invalid stub-vm name \"%s\".", vm->name);
        if (uuid && sd_id128_from_string(uuid, &vm->uuid) < 0)
                return xml_problem_fail(s, -EINVAL, vm->line, "invalid uuid \"%s\".", uuid);
        static const char *const states[] = { "running", "paused", "shut-off", NULL };

        if (state) {
                r = xml_problem_choice(s, vm->line, "state", state, states);
                if (r < 0)
                        return r;
        }
        vm->initial_state = state ? vmsig_state_from_string(state) : VMSIG_STATE_RUNNING;
        r = parse_number(s, n, "latency-ms", 0, &latency_ms);
        if (r >= 0 && latency_ms > STUB_LATENCY_MAX_MS)
                r = xml_problem_fail(s, -ERANGE, vm->line, "latency-ms=\"%zu\" is out of range (0..%u).", latency_ms,
                         STUB_LATENCY_MAX_MS);
        if (r < 0)
                return r;
        vm->latency_usec = (uint64_t) latency_ms * 1000;
        r = parse_dtb(s, n, vm);
        if (r >= 0)
                r = parse_bootstrap(s, n, vm);
        if (r >= 0)
                r = parse_vcpu(s, n, vm);
        if (r < 0)
                return r;
        return parse_stub_ram(s, n, vm);
}

static int parse_stub_vm(xml_problem *s, xmlNodePtr n, vmsig_config *c) {
        _cleanup_xmlfree_ char *name = attr(n, "name");
        vmsig_stub_vm_config vm = { .line = xml_node_line(n) };
        vmsig_stub_vm_config *grown;
        int r;

        if (!name)
                return xml_problem_fail(s, -EINVAL, vm.line, "stub-vm lacks the name attribute.");
        vm.name = strdup(name);
        if (!vm.name)
                return xml_problem_fail(s, -ENOMEM, vm.line, "out of memory.");
        r = parse_stub_fields(s, n, &vm);
        if (r >= 0)
                r = check_unique(s, c, &vm);
        if (r >= 0 && !(grown = reallocarray(c->stub_vms, c->n_stub_vms + 1, sizeof(*grown))))
                r = xml_problem_fail(s, -ENOMEM, vm.line, "out of memory.");
        if (r < 0) {
                free(vm.name);
                return r;
        }
        c->stub_vms = grown;
        c->stub_vms[c->n_stub_vms++] = vm;
        return 0;
}

/* The parser of each element <vmsigd> may hold; any other is left to the
 * schema. */
static const struct {
        const char *name;
        int (*parse)(xml_problem *s, xmlNodePtr n, vmsig_config *c);
} element_parsers[] = {
        { "log", parse_log },
        { "limits", parse_limits },
        { "stub-vm", parse_stub_vm },
        { "audit", parse_audit },
        { "private-socket", parse_private_socket },
        { "admission", parse_admission },
        { "discovery", parse_discovery },
        { "libvirt", parse_libvirt },
        { "frames", parse_frames },
};

static int parse_element(xml_problem *s, xmlNodePtr n, vmsig_config *c) {
        for (size_t i = 0; i < ELEMENTSOF(element_parsers); i++)
                if (xmlStrEqual(n->name, (const xmlChar *) element_parsers[i].name))
                        return element_parsers[i].parse(s, n, c);
        return 0;
}

static int parse_tree(xml_problem *s, xmlNodePtr root, vmsig_config *c) {
        if (!root || !xmlStrEqual(root->name, (const xmlChar *) "vmsigd"))
                return xml_problem_fail(s, -EINVAL, root ? xml_node_line(root) : 0, "the root element must be <vmsigd>.");
        for (xmlNodePtr n = root->children; n; n = n->next) {
                int r;

                if (n->type != XML_ELEMENT_NODE)
                        continue;
                r = parse_element(s, n, c);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int validate(xml_problem *s, xmlDocPtr doc) {
        xmlRelaxNGParserCtxtPtr pctx = xmlRelaxNGNewMemParserCtxt(vmsig_config_schema, (int) vmsig_config_schema_len);
        xmlRelaxNGPtr schema = NULL;
        int r;

        if (pctx) {
                xmlRelaxNGSetParserStructuredErrors(pctx, xml_problem_on_xml_error, s);
                schema = xmlRelaxNGParse(pctx);
        }
        if (!schema)
                r = xml_problem_fail(s, -ENOMEM, 0, "cannot load the configuration schema.");
        else
                r = xml_problem_validate(s, schema, doc);
        xmlRelaxNGFree(schema);
        xmlRelaxNGFreeParserCtxt(pctx);
        return r;
}

static int read_document(xml_problem *s, xmlDocPtr *ret) {
        if (access(s->path, R_OK) < 0)
                return xml_problem_fail(s, -errno, 0, "%s.", strerror(errno));
        return xml_problem_read(s, -1, ret);
}

static vmsig_config *config_alloc(const char *path) {
        vmsig_config *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->log_level = VMSIG_CONFIG_LOG_LEVEL_DEFAULT;
        /* The defaults of the parts these configure, defined there. */
        c->queue_limit = VMSIG_CORE_QUEUE_LIMIT_DEFAULT;
        c->max_endpoints = VMSIG_CORE_ENDPOINTS_MAX_DEFAULT;
        c->max_write = VMSIG_MEMWRITE_MAX_DEFAULT;
        c->bootstrap_backoff_max_ms = VMSIG_BOOTSTRAP_BACKOFF_MAX_USEC / USEC_PER_MSEC;
        c->admission.max_pending_calls = VMSIG_CONFIG_MAX_PENDING_CALLS_DEFAULT;
        c->admission.max_subscriptions = VMSIG_CONFIG_MAX_SUBSCRIPTIONS_DEFAULT;
        c->admission.max_leases = VMSIG_CONFIG_MAX_LEASES_DEFAULT;
        c->frames_enabled = true;
        c->frames_rate = VMSIG_CONFIG_FRAMES_RATE_DEFAULT;
        c->path = path ? strdup(path) : NULL;
        c->audit_target = strdup("auto");
        c->private_socket = strdup(VMSIG_CONFIG_PRIVATE_SOCKET_DEFAULT);
        c->trigger_dir = strdup(VMSIG_CONFIG_TRIGGER_DIR_DEFAULT);
        c->libvirt_uri = strdup(VMSIG_CONFIG_LIBVIRT_URI_DEFAULT);
        c->libvirt_monitor = true;
        if ((path && !c->path) || !c->audit_target || !c->private_socket || !c->trigger_dir || !c->libvirt_uri)
                return vmsig_config_free(c);
        return c;
}

int vmsig_config_new_default(vmsig_config **ret) {
        *ret = config_alloc(NULL);
        return *ret ? 0 : -ENOMEM;
}

int vmsig_config_load(const char *path, vmsig_config **ret, char **error) {
        xml_problem s = { .path = path };
        vmsig_config *c = NULL;
        xmlDocPtr doc = NULL;
        int r;

        /* Our own checks run first: their messages name the attribute and
         * value, where libxml2's RelaxNG errors are often only "failed to
         * validate attributes". The schema then catches everything else. */
        r = read_document(&s, &doc);
        if (r >= 0 && !(c = config_alloc(path)))
                r = xml_problem_fail(&s, -ENOMEM, 0, "out of memory.");
        if (r >= 0)
                r = parse_tree(&s, xmlDocGetRootElement(doc), c);
        if (r >= 0)
                r = validate(&s, doc);
        xmlFreeDoc(doc);
        if (r < 0) {
                vmsig_config_free(c);
                if (error)
                        *error = TAKE_PTR(s.error);
                free(s.error);
                return r;
        }
        *ret = c;
        return 0;
}

vmsig_config *vmsig_config_free(vmsig_config *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n_stub_vms; i++)
                free(c->stub_vms[i].name);
        free(c->stub_vms);
        free(c->admission.allow_uids);
        free(c->admission.allow_gids);
        free(c->audit_target);
        free(c->private_socket);
        free(c->trigger_dir);
        free(c->libvirt_uri);
        free(c->warning);
        free(c->path);
        return mfree(c);
}

const vmsig_stub_vm_config *vmsig_config_find_stub(const vmsig_config *c, const char *name) {
        for (size_t i = 0; c && i < c->n_stub_vms; i++)
                if (strcmp(c->stub_vms[i].name, name) == 0)
                        return &c->stub_vms[i];
        return NULL;
}
