/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What the trigger reader needs: reading a file we are about
 * to trust, the checks of names, paths and GPA maps, comparing two
 * descriptions, and the host probe. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <libxml/parser.h>

#include "vm-desc.h"
#include "vmsig-endpoint.h"

vm_desc *vm_desc_free(vm_desc *v) {
        if (!v)
                return NULL;
        free(v->name);
        free(v->qmp_socket);
        free(v->ram_path);
        free(v->ranges);
        return mfree(v);
}

static bool streq_ptr(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* The line is left out: moving the name within the file changes nothing. */
bool vm_desc_equal(const vm_desc *a, const vm_desc *b) {
        return streq_ptr(a->name, b->name) && sd_id128_equal(a->uuid, b->uuid) &&
               streq_ptr(a->qmp_socket, b->qmp_socket) && streq_ptr(a->ram_path, b->ram_path) &&
               a->n_ranges == b->n_ranges && a->guest_os == b->guest_os &&
               (a->n_ranges == 0 || memcmp(a->ranges, b->ranges, a->n_ranges * sizeof(vmsig_gpa_range)) == 0);
}

/* A trigger file names the file vmsigd opens as guest RAM: only root (or
 * the user we run as) may have written it. */
static int check_trusted(xml_problem *p, int fd) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return xml_problem_fail(p, -errno, 0, "cannot stat: %s.", strerror(errno));
        if (!S_ISREG(st.st_mode))
                return xml_problem_fail(p, -EBADFD, 0, "not a regular file, ignoring.");
        if (st.st_uid != 0 && st.st_uid != geteuid())
                return xml_problem_fail(p, -EPERM, 0, "owned by uid %u, not by root, ignoring.", (unsigned) st.st_uid);
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return xml_problem_fail(p, -EPERM, 0, "writable by group or others (mode %04o), ignoring.",
                                     (unsigned) (st.st_mode & 07777));
        if (st.st_size > VM_FILE_SIZE_MAX)
                return xml_problem_fail(p, -EFBIG, 0, "larger than %u bytes, ignoring.", VM_FILE_SIZE_MAX);
        return 0;
}

/* O_NONBLOCK: a FIFO put in place of a file must not hang the loop. */
static int open_file(xml_problem *p) {
        int fd = open(p->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);

        if (fd >= 0)
                return fd;
        if (errno == ELOOP)
                return xml_problem_fail(p, -ELOOP, 0, "is a symbolic link, ignoring.");
        return xml_problem_fail(p, -errno, 0, "%s.", strerror(errno));
}

static int parse_read(xml_problem *p, xmlDocPtr *ret) {
        _cleanup_close_ int fd = -1;
        int r;

        fd = open_file(p);
        if (fd < 0)
                return fd;
        r = check_trusted(p, fd);
        if (r < 0)
                return r;
        return xml_problem_read(p, fd, ret);
}

/* Our own checks (parse) run first: their messages name the attribute and
 * value, where libxml2's RelaxNG errors are often only "failed to validate
 * attributes". The schema, if any, then catches everything else. */
int vm_desc_read(const char *path, vm_parse_fn parse, xmlRelaxNGPtr schema, vm_desc **ret, char **error) {
        xml_problem p = { .path = path };
        vm_desc *v = NULL;
        xmlDocPtr doc = NULL;
        int r;

        r = parse_read(&p, &doc);
        if (r >= 0 && !(v = calloc(1, sizeof(*v))))
                r = xml_problem_fail(&p, -ENOMEM, 0, "out of memory.");
        if (r >= 0)
                r = parse(&p, xmlDocGetRootElement(doc), v);
        if (r == 0 && schema)
                r = xml_problem_validate(&p, schema, doc);
        xmlFreeDoc(doc);
        if (r != 0) {
                vm_desc_free(v);
                *error = TAKE_PTR(p.error);
                *ret = NULL;
                return r < 0 ? r : 0;
        }
        free(p.error);
        *ret = v;
        return 0;
}

bool vm_node_is(xmlNodePtr n, const char *ns, const char *name) {
        if (!n || n->type != XML_ELEMENT_NODE || !xmlStrEqual(n->name, (const xmlChar *) name))
                return false;
        if (!ns)
                return !n->ns;
        return n->ns && xmlStrEqual(n->ns->href, (const xmlChar *) ns);
}

xmlNodePtr vm_node_child(xmlNodePtr n, const char *ns, const char *name) {
        for (xmlNodePtr k = n ? n->children : NULL; k; k = k->next)
                if (vm_node_is(k, ns, name))
                        return k;
        return NULL;
}

static char *copy_xml_string(xml_problem *p, xmlChar *s) {
        char *copy;

        if (!s)
                return NULL;
        copy = strdup((const char *) s);
        xmlFree(s);
        if (!copy)
                (void) xml_problem_fail(p, -ENOMEM, 0, "out of memory.");
        return copy;
}

char *vm_node_attr(xml_problem *p, xmlNodePtr n, const char *name) {
        return copy_xml_string(p, xmlGetNoNsProp(n, (const xmlChar *) name));
}

int vm_desc_set_name(xml_problem *p, xmlNodePtr n, vm_desc *v, char *name) {
        free(v->name);
        v->name = name;
        v->line = xml_node_line(n);
        if (!vmsig_endpoint_name_is_valid(name))
                return xml_problem_fail(p, -EINVAL, v->line,
                                     "invalid VM name \"%s\" (1..64 of A-Z a-z 0-9 _ . -, not starting with . or -).",
                                     name ?: "");
        return 0;
}

int vm_desc_set_uuid(xml_problem *p, xmlNodePtr n, vm_desc *v, const char *uuid) {
        if (!uuid || sd_id128_from_string(uuid, &v->uuid) < 0)
                return xml_problem_fail(p, -EINVAL, xml_node_line(n), "invalid uuid \"%s\".", uuid ?: "");
        return 0;
}

static bool path_is_normal(const char *path) {
        return path && path[0] == '/' && !strstr(path, "/../") && !strstr(path, "//");
}

int vm_desc_set_qmp(xml_problem *p, xmlNodePtr n, vm_desc *v, char *socket) {
        free(v->qmp_socket);
        v->qmp_socket = socket;
        if (!socket)
                return xml_problem_fail(p, -EINVAL, xml_node_line(n), "no QMP socket path given.");
        if (!path_is_normal(socket) || strlen(socket) >= sizeof(((struct sockaddr_un *) NULL)->sun_path))
                return xml_problem_fail(p, -EINVAL, xml_node_line(n),
                                     "QMP socket \"%s\" must be an absolute path shorter than 108 bytes.", socket);
        return 0;
}

int vm_desc_set_ram(xml_problem *p, xmlNodePtr n, vm_desc *v, char *path) {
        free(v->ram_path);
        v->ram_path = path;
        if (!path)
                return xml_problem_fail(p, -EINVAL, xml_node_line(n), "no RAM path given.");
        if (!path_is_normal(path) || strlen(path) >= PATH_MAX)
                return xml_problem_fail(p, -EINVAL, xml_node_line(n), "RAM path \"%s\" must be an absolute path.", path);
        return 0;
}

/* Decimal, or hexadecimal with 0x; never octal, which a leading 0 would
 * silently select with base 0. */
static int parse_u64(const char *s, uint64_t *ret) {
        bool hex = s && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
        unsigned long long v;
        char *end;

        if (!s || !*s)
                return -EINVAL;
        errno = 0;
        v = strtoull(hex ? s + 2 : s, &end, hex ? 16 : 10);
        if (errno != 0 || end == (hex ? s + 2 : s) || *end != '\0' || s[0] == '-' || s[0] == '+' || s[0] == ' ')
                return -EINVAL;
        *ret = v;
        return 0;
}

static int parse_range_attr(xml_problem *p, xmlNodePtr n, const char *name, uint64_t *ret) {
        _cleanup_free_ char *s = vm_node_attr(p, n, name);

        if (p->r < 0)
                return p->r;
        if (parse_u64(s, ret) < 0)
                return xml_problem_fail(p, -EINVAL, xml_node_line(n), "%s=\"%s\" is not a number.", name, s ?: "");
        if (*ret % VM_PAGE_SIZE != 0)
                return xml_problem_fail(p, -EINVAL, xml_node_line(n), "%s=\"%s\" is not a multiple of 4096.", name, s);
        return 0;
}

static int parse_range(xml_problem *p, xmlNodePtr n, vmsig_gpa_range *g) {
        int r = parse_range_attr(p, n, "gpa", &g->gpa);

        if (r >= 0)
                r = parse_range_attr(p, n, "size", &g->size);
        if (r >= 0)
                r = parse_range_attr(p, n, "offset", &g->offset);
        if (r < 0)
                return r;
        if (g->size == 0)
                return xml_problem_fail(p, -EINVAL, xml_node_line(n), "range of size 0.");
        if (g->gpa + g->size < g->gpa || g->offset + g->size < g->offset)
                return xml_problem_fail(p, -ERANGE, xml_node_line(n), "range goes beyond 2^64.");
        return 0;
}

typedef struct line_range {
        vmsig_gpa_range g;
        unsigned line;
} line_range;

static int cmp_range(const void *a, const void *b) {
        const line_range *x = a, *y = b;
        return x->g.gpa < y->g.gpa ? -1 : x->g.gpa > y->g.gpa;
}

static int check_overlaps(xml_problem *p, line_range *lr, size_t n) {
        qsort(lr, n, sizeof(line_range), cmp_range);
        for (size_t i = 1; i < n; i++)
                if (lr[i].g.gpa < lr[i - 1].g.gpa + lr[i - 1].g.size) {
                        const line_range *late = lr[i].line > lr[i - 1].line ? &lr[i] : &lr[i - 1];
                        const line_range *early = late == &lr[i] ? &lr[i - 1] : &lr[i];
                        return xml_problem_fail(p, -EINVAL, late->line,
                                             "range at gpa 0x%" PRIx64 " overlaps the one on line %u.", late->g.gpa,
                                             early->line);
                }
        return 0;
}

static int collect_ranges(xml_problem *p, xmlNodePtr map, const char *ns, line_range **ret, size_t *ret_n) {
        _cleanup_free_ line_range *lr = NULL;
        size_t n = 0;
        int r;

        for (xmlNodePtr k = map->children; k; k = k->next) {
                if (!vm_node_is(k, ns, "range"))
                        continue;
                if (n == VM_RANGES_MAX)
                        return xml_problem_fail(p, -E2BIG, xml_node_line(k), "more than %d ranges.", VM_RANGES_MAX);
                line_range *grown = reallocarray(lr, n + 1, sizeof(line_range));
                if (!grown)
                        return xml_problem_fail(p, -ENOMEM, 0, "out of memory.");
                lr = grown;
                lr[n] = (line_range) { .line = xml_node_line(k) };
                r = parse_range(p, k, &lr[n].g);
                if (r < 0)
                        return r;
                n++;
        }
        if (n == 0)
                return xml_problem_fail(p, -EINVAL, xml_node_line(map), "<gpa-map> without <range>.");
        *ret = TAKE_PTR(lr);
        *ret_n = n;
        return 0;
}

int vm_desc_parse_gpa_map(xml_problem *p, xmlNodePtr map, const char *ns, vm_desc *v) {
        _cleanup_free_ line_range *lr = NULL;
        size_t n = 0;
        int r;

        r = collect_ranges(p, map, ns, &lr, &n);
        if (r >= 0)
                r = check_overlaps(p, lr, n);
        if (r < 0)
                return r;
        free(v->ranges);
        v->ranges = calloc(n, sizeof(vmsig_gpa_range));
        if (!v->ranges)
                return xml_problem_fail(p, -ENOMEM, 0, "out of memory.");
        for (size_t i = 0; i < n; i++)
                v->ranges[i] = lr[i].g;
        v->n_ranges = n;
        return 0;
}

/* --- host probe ------------------------------------------------------------- */

static uint64_t ram_needed(const vm_desc *v) {
        uint64_t end = 1; /* no map: any non-empty file, QEMU sizes it right after creating it */

        for (size_t i = 0; i < v->n_ranges; i++)
                end = MAX(end, v->ranges[i].offset + v->ranges[i].size);
        return end;
}

static int probe_socket(const char *path, char *reason, size_t size) {
        struct stat st;
        int r = 0;

        /* connect(2) needs write access to the socket inode. */
        if (stat(path, &st) < 0)
                r = -errno;
        else if (!S_ISSOCK(st.st_mode))
                r = -ENOTSOCK;
        else if (access(path, R_OK | W_OK) < 0)
                r = -errno;
        if (r < 0)
                snprintf(reason, size, "QMP socket %s: %s", path, strerror(-r));
        return r;
}

static int probe_ram(const vm_desc *v, char *reason, size_t size) {
        uint64_t needed = ram_needed(v);
        struct stat st;
        int r = 0;

        if (stat(v->ram_path, &st) < 0)
                r = -errno;
        else if (!S_ISREG(st.st_mode))
                r = -EBADFD;
        else if (access(v->ram_path, R_OK) < 0)
                r = -errno;
        if (r < 0) {
                snprintf(reason, size, "RAM file %s: %s", v->ram_path,
                         r == -EBADFD ? "not a regular file" : strerror(-r));
                return r;
        }
        if ((uint64_t) st.st_size < needed) {
                snprintf(reason, size, "RAM file %s: %" PRIu64 " bytes, the GPA map needs %" PRIu64, v->ram_path,
                         (uint64_t) st.st_size, needed);
                return -ERANGE;
        }
        return 0;
}

int vm_desc_probe_host(const vm_desc *v, char *reason, size_t size) {
        int r = probe_socket(v->qmp_socket, reason, size);

        return r < 0 ? r : probe_ram(v, reason, size);
}
