/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsigd's names on the bus, spelled once: the daemon, vmsigctl, the tests
 * and the benchmarks include this (it defines no symbols, so it sits
 * below every layer). */
#pragma once

#define VMSIG_BUS_NAME "org.vmsig"
#define VMSIG_BUS_PATH "/org/vmsig"
#define VMSIG_BUS_MANAGER_INTERFACE "org.vmsig.Manager"
#define VMSIG_BUS_ENDPOINT_PREFIX "/org/vmsig/endpoint"
#define VMSIG_BUS_ENDPOINT_INTERFACE "org.vmsig.Endpoint"
#define VMSIG_BUS_LEASE_PREFIX "/org/vmsig/lease"
#define VMSIG_BUS_LEASE_INTERFACE "org.vmsig.Lease"
/* Root's own socket, which bypasses dbus-daemon (as /run/systemd/private). */
#define VMSIG_PRIVATE_SOCKET_DEFAULT "/run/vmsig/private"
