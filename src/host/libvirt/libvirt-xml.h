/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Where a libvirt domain's RAM sits in guest-physical space, from its live
 * XML (virDomainGetXMLDesc(), fetched on the worker), for the memctx of a
 * domain whose QEMU is not asked (<libvirt monitor="no">):
 *
 *   <os><type arch='x86_64' machine='pc-q35-7.2'>   the machine type, whose
 *                                                   rules qemu-ram-layout.h
 *                                                   knows (x86_64 or i686);
 *   <memory unit='KiB'>                             must be the size of the
 *                                                   RAM backend found in
 *                                                   QEMU (else some RAM is
 *                                                   elsewhere);
 *   <maxMemory>                                     hotplug memory, which
 *                                                   may move what is above
 *                                                   4 GiB;
 *   <qemu:commandline>                              an argument naming
 *                                                   max-ram-below-4g, or a
 *                                                   -machine / -M of its
 *                                                   own, changes the split
 *                                                   or the machine: refused.
 *
 * The XML comes from libvirtd; it is parsed without network access or
 * entity substitution, and anything missing or malformed is a refusal
 * with its reason, never a guess.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libxml/tree.h>

#include "qemu-ram-layout.h"

/* For _cleanup_(): frees *p if any. */
void libvirt_xml_freep(xmlDocPtr *p);

/* XML that libvirtd gave (a domain's, its capabilities), len bytes: read
 * without network access or entity substitution, and without a word on
 * stderr (what is wrong is said in our words); NULL if it is no XML. */
xmlDocPtr libvirt_xml_read(const char *xml, size_t len);
/* Whether n is an element called name. */
bool libvirt_xml_is_element(xmlNodePtr n, const char *name);

/* libvirt's domain XML stays below 10 MB (VIR_XML_MAX): longer is refused. */
#define LIBVIRT_XML_MAX (10 * 1024 * 1024)

/* 0 and the ranges; or a negative errno (-EOPNOTSUPP: the layout cannot
 * be told; -EBADMSG: not a domain's XML) and why in msg, nothing in ret.
 * ram_size: the size of the RAM backend. */
int libvirt_xml_ram_layout(const char *xml, size_t len, uint64_t ram_size,
                           vmsig_gpa_range ret[static QEMU_RAM_LAYOUT_MAX_RANGES], size_t *ret_n, char *msg,
                           size_t size);
