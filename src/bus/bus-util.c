/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus-errors.h"
#include "bus-util.h"

int bus_read_options(sd_bus_message *m, bus_option_fn fn, void *userdata, sd_bus_error *error) {
        const char *key;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read(m, "s", &key);
                if (r >= 0)
                        r = fn(m, key, userdata, error);
                /* Unknown options are errors, so typos do not pass silently. */
                if (r == -ENOKEY)
                        return sd_bus_error_setf(error, VMSIG_ERROR_INVALID_ARGUMENT, "Unknown option '%s'.", key);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}

int bus_hashmap_paths(Hashmap *h, size_t path_offset, char ***ret) {
        char **v = calloc(hashmap_size(h) + 1, sizeof(char *));
        size_t n = 0;
        void *value;

        if (!v)
                return -ENOMEM;
        HASHMAP_FOREACH(value, h, st) {
                v[n] = strdup(*(char *const *) ((const uint8_t *) value + path_offset));
                if (!v[n]) {
                        while (n > 0)
                                free(v[--n]);
                        free(v);
                        return -ENOMEM;
                }
                n++;
        }
        *ret = v;
        return 0;
}
