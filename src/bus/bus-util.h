/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small sd-bus helpers shared by the bus objects. */

#include <assert.h>
#include <systemd/sd-bus.h>

#include "hashmap.h"

/* Reads one a{sv} options argument. For each entry fn is called with the
 * message positioned at the variant, which it must read; it returns <0 with
 * error set for a bad value, or -ENOKEY for a key it does not know, which
 * becomes org.vmsig.Error.InvalidArgument naming the key. */
typedef int (*bus_option_fn)(sd_bus_message *m, const char *key, void *userdata, sd_bus_error *error);
int bus_read_options(sd_bus_message *m, bus_option_fn fn, void *userdata, sd_bus_error *error);

/* A node enumerator's list: the object path of every value of h, a char *
 * at path_offset in it (offsetof(), as sd-bus's property offsets). */
int bus_hashmap_paths(Hashmap *h, size_t path_offset, char ***ret);

/* An object finder's answer: 1 with *found set, or 0 when object is NULL
 * (no such object). */
static inline int bus_object_found(void *object, void **found) {
        if (!object)
                return 0;
        *found = object;
        return 1;
}

/* A property getter that appends expr, of D-Bus signature sig, where expr
 * reads the object as u (a type *). For a field of the object itself,
 * SD_BUS_PROPERTY with its offsetof() and no getter does it. */
#define BUS_DEFINE_PROPERTY_GETTER(function, type, sig, expr)                                              \
        static int function(sd_bus *bus, const char *path, const char *interface, const char *property,   \
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {                 \
                type *u = userdata;                                                                        \
                                                                                                           \
                assert(reply);                                                                             \
                assert(u);                                                                                 \
                return sd_bus_message_append(reply, sig, expr);                                            \
        }
