/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The user a libvirt domain's QEMU runs as, so that only a process of
 * that uid is taken for the domain's QEMU (libvirt_ram_find_qemu()):
 * anyone can put "-uuid UUID" on a command line, but not run it as
 * libvirt's QEMU user.
 *
 * libvirt's DAC security driver starts each QEMU under a label
 * "USER:GROUP": the domain's own, in its live XML,
 *
 *   <seclabel type='dynamic' model='dac' relabel='yes'>
 *     <label>+64055:+64055</label> ...
 *
 * or, when the domain has no DAC label, the driver's default for the
 * domain's type (user and group of qemu.conf), which the host's
 * capabilities show:
 *
 *   <secmodel><model>dac</model> ... <baselabel type='qemu'>+64055:+64055</baselabel>
 *
 * "+N" is the number N; anything else is a user name, looked up
 * (getpwnam_r(), so NSS: call it where blocking is fine), and if there is
 * no such user but it is all digits, a number: as libvirt reads it. Both
 * documents come from libvirt's public API (virDomainGetXMLDesc(),
 * virConnectGetCapabilities()) and are parsed without network access and
 * without entity substitution.
 */

#include <stddef.h>
#include <sys/types.h>

#define LIBVIRT_SECLABEL_MESSAGE_MAX 160

/* The uid of a label "USER" or "USER:GROUP": 0 and *ret, or -EBADMSG if it
 * names no user (or (uid_t) -1, which is none). */
int libvirt_seclabel_parse_user(const char *label, uid_t *ret);

/* The uid QEMU runs as for the domain of domain_xml, with caps_xml (may
 * be NULL) for the default: 0 and *ret; -ENOENT: no DAC label in either;
 * -EBADMSG: domain_xml is no domain, or its label names no user. msg
 * gets the words of an error. */
int libvirt_seclabel_qemu_uid(const char *domain_xml, const char *caps_xml, uid_t *ret, char *msg, size_t size);
