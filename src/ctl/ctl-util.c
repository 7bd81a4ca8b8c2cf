/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl-util.h"

int ctl_error(int r, const char *fmt, ...) {
        va_list ap;

        /* %m in fmt refers to r, as in systemd's log_error_errno(). */
        errno = abs(r);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return r;
}

void ctl_info(const char *fmt, ...) {
        va_list ap;

        if (arg.quiet)
                return;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

int ctl_usage_error(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nSee 'vmsigctl --help'.\n", stderr);
        return CTL_USAGE;
}

int ctl_bus_error(const sd_bus_error *error, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        if (sd_bus_error_is_set(error) && error->message)
                fprintf(stderr, ": %s\n", error->message);
        else
                fprintf(stderr, ": %s\n", strerror(abs(r)));
        return r < 0 ? r : -EIO;
}

int ctl_parse_u64(const char *s, uint64_t *ret) {
        unsigned long long v;
        int base = 10;
        char *end;

        /* Hex only with 0x: base 0 would read "010" as octal 8. */
        if (s && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                base = 16;
                s += 2;
        }
        /* strtoull() would take "-1" as a huge number and skip blanks. */
        if (!s || !*s || *s == '-' || *s == '+' || isspace((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, base);
        if (errno != 0)
                return -errno;
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int ctl_parse_i32(const char *s, int32_t *ret) {
        long long v;
        char *end;

        if (!s || !*s || isspace((unsigned char) *s))
                return -EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno != 0)
                return -errno;
        if (*end || v < INT32_MIN || v > INT32_MAX)
                return -ERANGE;
        *ret = (int32_t) v;
        return 0;
}

int ctl_parse_size(const char *s, uint64_t *ret) {
        static const char suffixes[] = "KMGT";
        _cleanup_free_ char *number = NULL;
        const char *p;
        size_t n = s ? strlen(s) : 0;
        unsigned shift = 0;
        uint64_t v;
        int r;

        if (n == 0)
                return -EINVAL;
        p = strchr(suffixes, toupper((unsigned char) s[n - 1]));
        if (p) {
                shift = 10 * (unsigned) (p - suffixes + 1);
                n--;
        }
        number = strndup(s, n);
        if (!number)
                return -ENOMEM;
        r = ctl_parse_u64(number, &v);
        if (r < 0)
                return r;
        if (shift > 0 && v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = v << shift;
        return 0;
}

int ctl_parse_range(const char *s, ctl_range *ret) {
        _cleanup_free_ char *gpa = NULL;
        const char *colon = strchr(s, ':');
        ctl_range range;
        int r;

        if (!colon)
                return -EINVAL;
        gpa = strndup(s, colon - s);
        if (!gpa)
                return -ENOMEM;
        r = ctl_parse_u64(gpa, &range.gpa);
        if (r >= 0)
                r = ctl_parse_size(colon + 1, &range.size);
        if (r < 0)
                return r;
        if (range.size == 0 || range.gpa + range.size < range.gpa)
                return -ERANGE;
        *ret = range;
        return 0;
}

static int hex_value(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c = (char) tolower((unsigned char) c);
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -EINVAL;
}

int ctl_parse_hex(const char *s, uint8_t **ret, size_t *ret_len) {
        _cleanup_free_ uint8_t *data = malloc(strlen(s) / 2 + 1);
        size_t n = 0;

        if (!data)
                return -ENOMEM;
        while (*s) {
                int hi, lo;

                if (*s == ':' || isspace((unsigned char) *s)) {
                        s++;
                        continue;
                }
                hi = hex_value(s[0]);
                lo = hi < 0 ? hi : hex_value(s[1]);
                if (lo < 0)
                        return -EINVAL;
                data[n++] = (uint8_t) (hi << 4 | lo);
                s += 2;
        }
        *ret = TAKE_PTR(data);
        *ret_len = n;
        return 0;
}

const char *ctl_format_bytes(char buf[static CTL_BYTES_MAX], uint64_t n) {
        static const char units[] = "KMGTPE";
        uint64_t scale = 1024;
        unsigned whole, tenths;
        size_t i;

        if (n < 1024) {
                snprintf(buf, CTL_BYTES_MAX, "%uB", (unsigned) n);
                return buf;
        }
        for (i = 0; i + 1 < strlen(units) && n / scale >= 1024; i++)
                scale *= 1024;
        /* Below 1024 of the unit (16 of the largest), and one decimal where
         * it says something: "1.5G", but "4M". */
        whole = (unsigned) (n / scale);
        tenths = (unsigned) ((n % scale) * 10 / scale); /* no overflow: n % scale < 2^60 */
        if (n % scale == 0)
                snprintf(buf, CTL_BYTES_MAX, "%u%c", whole, units[i]);
        else
                snprintf(buf, CTL_BYTES_MAX, "%u.%u%c", whole, tenths, units[i]);
        return buf;
}

uint64_t ctl_now_realtime(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000) + (uint64_t) ts.tv_nsec / 1000;
}

const char *ctl_format_timestamp(char buf[static CTL_TIMESTAMP_MAX], uint64_t usec) {
        time_t sec = (time_t) (usec / 1000000);
        struct tm tm;
        size_t n;

        if (!localtime_r(&sec, &tm) || (n = strftime(buf, CTL_TIMESTAMP_MAX, "%Y-%m-%d %H:%M:%S", &tm)) == 0) {
                snprintf(buf, CTL_TIMESTAMP_MAX, "@%" PRIu64, usec);
                return buf;
        }
        snprintf(buf + n, CTL_TIMESTAMP_MAX - n, ".%06" PRIu64, usec % 1000000);
        return buf;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int ctl_event_new(sd_event **ret) {
        sd_event *e = NULL;
        sigset_t mask;
        int r;

        /* sd-event reads signals from a signalfd: they must be blocked
         * first, or the default action kills us before we clean up. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return ctl_error(-errno, "Failed to block signals: %m");
        r = sd_event_new(&e);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGINT, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGTERM, on_exit_signal, NULL);
        if (r < 0) {
                sd_event_unref(e);
                return ctl_error(r, "Failed to set up the event loop: %m");
        }
        *ret = e;
        return 0;
}

int ctl_get_endpoint(sd_bus *bus, const char *name, char **ret_path) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(bus, VMSIG_BUS_NAME, VMSIG_BUS_PATH, VMSIG_BUS_MANAGER_INTERFACE, "GetEndpoint", &error,
                               &reply, "s", name);
        if (r < 0)
                return ctl_bus_error(&error, r, "Failed to look up endpoint '%s'", name);
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0)
                return ctl_error(r, "Failed to parse the reply of GetEndpoint: %m");
        *ret_path = strdup(path);
        return *ret_path ? 0 : ctl_error(-ENOMEM, "Out of memory.");
}

/* PREFIX/LABEL[_rN]: the escaped name, and for a VM added again under a
 * name seen before, which one it is (escaping never yields "_r"). */
char *ctl_endpoint_name_from_path(const char *path) {
        _cleanup_free_ char *label_path = NULL;
        const char *suffix;
        char *name = NULL;

        if (!path)
                return NULL;
        suffix = strrchr(path, '_');
        if (suffix && suffix[1] == 'r' && suffix[2] && strspn(suffix + 2, "0123456789") == strlen(suffix + 2))
                label_path = strndup(path, (size_t) (suffix - path));
        if (sd_bus_path_decode(label_path ?: path, VMSIG_BUS_ENDPOINT_PREFIX, &name) <= 0)
                return NULL;
        return name;
}

const char *ctl_service_sender(sd_bus *bus) {
        return sd_bus_is_bus_client(bus) > 0 ? VMSIG_BUS_NAME : NULL;
}

int ctl_require_fd_passing(sd_bus *bus) {
        int r = sd_bus_can_send(bus, SD_BUS_TYPE_UNIX_FD);

        if (r < 0)
                return ctl_error(r, "Failed to check the connection for fd passing: %m");
        if (r == 0)
                return ctl_error(-EOPNOTSUPP, "This needs a local connection: leases and memory contexts are file "
                                              "descriptors, which this transport cannot pass.");
        return 0;
}

int ctl_open_endpoint(const char *name, bool need_fds, sd_bus **ret_bus, char **ret_path) {
        sd_bus *bus;
        int r;

        r = ctl_acquire_bus(true, &bus);
        if (r >= 0 && need_fds)
                r = ctl_require_fd_passing(bus);
        if (r >= 0)
                r = ctl_get_endpoint(bus, name, ret_path);
        if (r < 0)
                return r;
        *ret_bus = bus;
        return 0;
}

int ctl_append_flag_option(sd_bus_message *m, const char *name, bool set) {
        int r = sd_bus_message_open_container(m, 'a', "{sv}");

        if (r >= 0 && set)
                r = sd_bus_message_append(m, "{sv}", name, "b", 1);
        return r < 0 ? r : sd_bus_message_close_container(m);
}

int ctl_read_dict(sd_bus_message *m, const char *entry, ctl_dict_entry_fn fn, void *userdata) {
        char array[32];
        const char *key;
        int r;

        snprintf(array, sizeof array, "{%s}", entry);
        r = sd_bus_message_enter_container(m, 'a', array);
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', entry)) > 0) {
                r = sd_bus_message_read_basic(m, entry[0], &key);
                if (r >= 0)
                        r = fn(m, key, userdata);
                if (r >= 0)
                        r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        return r < 0 ? r : sd_bus_message_exit_container(m);
}
