/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

#include "libvirt-seclabel.h"
#include "libvirt-xml.h"
#include "macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(xmlChar *, xmlFree);

/* Longer than any user name NSS gives (LOGIN_NAME_MAX is 256). */
#define USER_MAX 256

static bool all_digits(const char *s) {
        if (!*s)
                return false;
        for (; *s; s++)
                if (*s < '0' || *s > '9')
                        return false;
        return true;
}

/* A decimal uid; (uid_t) -1 is none. */
static int parse_number(const char *s, uid_t *ret) {
        unsigned long long v;
        char *end;

        if (!all_digits(s))
                return -EBADMSG;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || *end || v >= (uid_t) -1)
                return -EBADMSG;
        *ret = (uid_t) v;
        return 0;
}

static int lookup_user(const char *name, uid_t *ret) {
        struct passwd pw, *found = NULL;
        char buf[4096];

        if (getpwnam_r(name, &pw, buf, sizeof buf, &found) != 0 || !found)
                return -ENOENT;
        *ret = found->pw_uid;
        return 0;
}

int libvirt_seclabel_parse_user(const char *label, uid_t *ret) {
        const char *colon = strchr(label, ':');
        size_t len = colon ? (size_t) (colon - label) : strlen(label);
        char user[USER_MAX + 1];

        if (len == 0 || len > USER_MAX)
                return -EBADMSG;
        memcpy(user, label, len);
        user[len] = '\0';
        if (user[0] == '+')
                return parse_number(user + 1, ret);
        if (lookup_user(user, ret) >= 0)
                return 0;
        return parse_number(user, ret);
}

static xmlNodePtr child(xmlNodePtr parent, const char *name) {
        for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
                if (libvirt_xml_is_element(n, name))
                        return n;
        return NULL;
}

static bool attribute_is(xmlNodePtr n, const char *name, const xmlChar *value) {
        _cleanup_(xmlFreep) xmlChar *v = xmlGetProp(n, BAD_CAST name);

        return v && value && xmlStrEqual(v, value);
}

static bool content_is(xmlNodePtr n, const char *value) {
        _cleanup_(xmlFreep) xmlChar *v = n ? xmlNodeGetContent(n) : NULL;

        return v && xmlStrEqual(v, BAD_CAST value);
}

static xmlDocPtr parse(const char *xml) {
        return libvirt_xml_read(xml, strnlen(xml, INT32_MAX));
}

/* The <label> of the domain's DAC <seclabel>, or NULL. */
static xmlNodePtr domain_label(xmlNodePtr domain) {
        for (xmlNodePtr n = domain->children; n; n = n->next)
                if (libvirt_xml_is_element(n, "seclabel") && attribute_is(n, "model", BAD_CAST "dac"))
                        return child(n, "label");
        return NULL;
}

/* The DAC <baselabel> of type in the capabilities, or NULL. */
static xmlNodePtr default_label(xmlDocPtr caps, const xmlChar *type) {
        xmlNodePtr root = caps ? xmlDocGetRootElement(caps) : NULL, host;

        if (!root || !libvirt_xml_is_element(root, "capabilities") || !(host = child(root, "host")))
                return NULL;
        for (xmlNodePtr n = host->children; n; n = n->next) {
                if (!libvirt_xml_is_element(n, "secmodel") || !content_is(child(n, "model"), "dac"))
                        continue;
                for (xmlNodePtr b = n->children; b; b = b->next)
                        if (libvirt_xml_is_element(b, "baselabel") && attribute_is(b, "type", type))
                                return b;
        }
        return NULL;
}

static int label_uid(xmlNodePtr label, const char *whose, uid_t *ret, char *msg, size_t size) {
        _cleanup_(xmlFreep) xmlChar *text = xmlNodeGetContent(label);

        if (text && libvirt_seclabel_parse_user((const char *) text, ret) >= 0)
                return 0;
        snprintf(msg, size, "The DAC label '%.64s' of %s names no user.", text ? (const char *) text : "", whose);
        return -EBADMSG;
}

int libvirt_seclabel_qemu_uid(const char *domain_xml, const char *caps_xml, uid_t *ret, char *msg, size_t size) {
        _cleanup_(libvirt_xml_freep) xmlDocPtr doc = parse(domain_xml);
        _cleanup_(libvirt_xml_freep) xmlDocPtr caps = NULL;
        _cleanup_(xmlFreep) xmlChar *type = NULL;
        xmlNodePtr root = doc ? xmlDocGetRootElement(doc) : NULL, label;

        if (!root || !libvirt_xml_is_element(root, "domain")) {
                snprintf(msg, size, "libvirt gave no domain XML.");
                return -EBADMSG;
        }
        label = domain_label(root);
        if (label)
                return label_uid(label, "the domain", ret, msg, size);
        type = xmlGetProp(root, BAD_CAST "type");
        caps = caps_xml ? parse(caps_xml) : NULL;
        label = default_label(caps, type);
        if (label)
                return label_uid(label, "libvirt's default", ret, msg, size);
        snprintf(msg, size, "Neither the domain nor libvirt's capabilities give a DAC label.");
        return -ENOENT;
}
