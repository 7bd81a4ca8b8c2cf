/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

static int max_level = LOG_INFO;
static int prefix_mode = -1; /* -1: not yet decided */

static const char *const level_names[] = {
        [LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",  [LOG_ERR] = "err",
        [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (strcasecmp(s, level_names[i]) == 0)
                        return (int) i;
        if (strcasecmp(s, "error") == 0)
                return LOG_ERR;
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        if (level < 0 || (size_t) level >= ELEMENTSOF(level_names))
                return NULL;
        return level_names[level];
}

/* Under systemd stderr is a journal stream: then the "<N>" prefix sets the
 * priority of each line, and journald adds the timestamp and unit itself. */
static bool stderr_is_journal(void) {
        if (prefix_mode < 0)
                prefix_mode = getenv("JOURNAL_STREAM") != NULL;
        return prefix_mode;
}

int log_internal(int level, int error, const char *file, int line, const char *fmt, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;

        va_start(ap, fmt);
        /* Let %m refer to the error we were handed, as systemd's logging does. */
        errno = abs(error);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);

        if (stderr_is_journal())
                fprintf(stderr, "<%d>%s\n", level, buf);
        else if (level <= LOG_WARNING || max_level >= LOG_DEBUG)
                fprintf(stderr, "vmsigd[%s]: %s\n", level_names[level], buf);
        else
                fprintf(stderr, "vmsigd: %s\n", buf);
        (void) file;
        (void) line;

        errno = saved;
        return -abs(error);
}
