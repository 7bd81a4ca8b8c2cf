/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Helpers the verbs share: messages and exit codes, parsing of command-line
 * values, formatting, the event loop, endpoint lookup. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "ctl.h"
#include "macro.h"

/* A verb's result for a bad command line: exit status 2. It is no errno,
 * so it cannot be mistaken for a failure's -errno. */
#define CTL_USAGE (-0x10000)
#define EXIT_USAGE 2

/* Prints the message on stderr and returns r (<0); %m is strerror(-r). */
int ctl_error(int r, const char *fmt, ...) _printf_(2, 3);
/* An informational message on stderr, such as how to stop a verb that runs
 * until Ctrl-C; -q leaves it out. */
void ctl_info(const char *fmt, ...) _printf_(1, 2);
/* Prints the message and where to look for help; returns CTL_USAGE. */
int ctl_usage_error(const char *fmt, ...) _printf_(1, 2);
/* "PREFIX: MESSAGE" where MESSAGE is the D-Bus error's message (or
 * strerror(-r) without one); returns r. */
int ctl_bus_error(const sd_bus_error *error, int r, const char *fmt, ...) _printf_(3, 4);

/* Decimal, or hexadecimal after 0x; the whole string. */
int ctl_parse_u64(const char *s, uint64_t *ret);
int ctl_parse_i32(const char *s, int32_t *ret);
/* A number with an optional binary suffix: K, M, G or T. */
int ctl_parse_size(const char *s, uint64_t *ret);
/* "GPA:SIZE", not wrapping around. */
int ctl_parse_range(const char *s, ctl_range *ret);
/* Pairs of hex digits, optionally separated by ':' or whitespace. */
int ctl_parse_hex(const char *s, uint8_t **ret, size_t *ret_len);

#define CTL_BYTES_MAX 32
/* "4M", "1.5G", "512B". */
const char *ctl_format_bytes(char buf[static CTL_BYTES_MAX], uint64_t n);
#define CTL_TIMESTAMP_MAX 40
/* Local time with microseconds: "2024-05-01 12:00:00.123456". */
const char *ctl_format_timestamp(char buf[static CTL_TIMESTAMP_MAX], uint64_t usec);
uint64_t ctl_now_realtime(void);

/* A new event loop that ends with exit code 0 on SIGINT and SIGTERM. */
int ctl_event_new(sd_event **ret);

/* The object of the endpoint with this name (Manager.GetEndpoint): errors,
 * such as an unknown name, are printed. */
int ctl_get_endpoint(sd_bus *bus, const char *name, char **ret_path);
/* The endpoint name in an endpoint object path, or NULL. Free it. */
char *ctl_endpoint_name_from_path(const char *path);

/* The sender to match signals of vmsigd on: its bus name, or NULL on its
 * private socket, where messages have no sender and all are vmsigd's. */
const char *ctl_service_sender(sd_bus *bus);

/* Leases and memory contexts come as fds, which not every transport
 * carries (ssh does not): says so and returns <0 when bus cannot. */
int ctl_require_fd_passing(sd_bus *bus);

/* A dictionary a{KV} whose entries are "KV" (entry): fn is called at each
 * value with its key, and reads or skips it. */
typedef int (*ctl_dict_entry_fn)(sd_bus_message *m, const char *key, void *userdata);
int ctl_read_dict(sd_bus_message *m, const char *entry, ctl_dict_entry_fn fn, void *userdata);

/* The a{sv} options of a call that takes one boolean option: {name: true}
 * when set, else none. */
int ctl_append_flag_option(sd_bus_message *m, const char *name, bool set);
/* The connection (with a polkit agent ready to ask) and the path of
 * endpoint name, for the verbs that act on one; need_fds: the verb passes
 * fds, so the transport must be able to. */
int ctl_open_endpoint(const char *name, bool need_fds, sd_bus **ret_bus, char **ret_path);

static inline void strv_freep(char ***p) {
        if (*p)
                for (char **s = *p; *s; s++)
                        free(*s);
        free(*p);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)
