/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * echo-service: the baseline for bench-bus. A trivial sd-bus service built
 * the way vmsigd is (sd-event loop, sd_bus_open_system(), one object vtable)
 * but doing nothing else: it owns org.vmsig.BenchEcho and serves
 *   /org/vmsig/BenchEcho  org.vmsig.BenchEcho
 *     Echo(s) -> s          returns its argument
 *     Version  property s   a constant
 *     State    property s   a constant
 * Exits on SIGTERM/SIGINT or when the bus goes away.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define ECHO_NAME "org.vmsig.BenchEcho"
#define ECHO_PATH "/org/vmsig/BenchEcho"
#define ECHO_INTERFACE "org.vmsig.BenchEcho"

static int method_echo(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *s;
        int r;

        r = sd_bus_message_read(m, "s", &s);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(m, "s", s);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", "0.0-echo");
}

static int property_get_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", (const char *) userdata);
}

static const sd_bus_vtable echo_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("State", "s", property_get_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Echo", SD_BUS_ARGS("s", text), SD_BUS_RESULT("s", text), method_echo,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

int main(int argc, char *argv[]) {
        sd_event *event = NULL;
        sd_bus *bus = NULL;
        sd_bus_slot *slot = NULL;
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                r = -errno;
                goto finish;
        }

        r = sd_event_default(&event);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
        if (r >= 0)
                r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
        if (r >= 0)
                r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r >= 0)
                r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r >= 0)
                /* The object's userdata is the State value. */
                r = sd_bus_add_object_vtable(bus, &slot, ECHO_PATH, ECHO_INTERFACE, echo_vtable, (void *) "running");
        if (r >= 0)
                r = sd_bus_request_name(bus, ECHO_NAME, 0);
        if (r < 0)
                goto finish;

        r = sd_event_loop(event);
finish:
        if (r < 0)
                fprintf(stderr, "echo-service: %s\n", strerror(-r));
        sd_bus_slot_unref(slot);
        sd_bus_flush_close_unref(bus);
        sd_event_unref(event);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
