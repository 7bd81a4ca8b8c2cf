/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "dirwatch.h"
#include "log.h"
#include "macro.h"

/* IN_ATTRIB too, so that touching a file retries it. IN_CREATE is left out:
 * a file created in place is read when it is closed after writing. */
#define DIR_MASK                                                                                              \
        (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | \
         IN_ONLYDIR)
#define ANCESTOR_MASK (IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR)
#define GONE_MASK (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT | IN_IGNORED)
/* Reads per wakeup: a flood of events must not starve the rest of the
 * loop. The fd stays readable, so we are called again. */
#define READS_MAX 8
#define SETUP_TRIES_MAX 64

struct dirwatch {
        vmsig_core *core;
        char *path;
        dirwatch_ops ops;
        void *userdata;
        int fd;
        vmsig_cookie cookie;
        int wd;          /* -1: nothing watched */
        char *next_path; /* waiting: path down to the component below the watched ancestor */
        const char *next; /* its last component, inside next_path */
};

bool dirwatch_is_candidate(const char *name) {
        size_t n = strlen(name);

        return n > 4 && name[0] != '.' && strcmp(name + n - 4, ".xml") == 0;
}

const char *dirwatch_path(const dirwatch *w) {
        return w->path;
}

static void drop_watch(dirwatch *w) {
        if (w->wd >= 0)
                (void) inotify_rm_watch(w->fd, w->wd); /* fails if the kernel dropped it already */
        w->wd = -1;
        free(w->next_path);
        w->next_path = NULL;
        w->next = NULL;
}

/* Watch the deepest existing ancestor of path for the creation of the next
 * component down. "/" always exists. */
static int watch_ancestor(dirwatch *w) {
        _cleanup_free_ char *dir = strdup(w->path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        while ((slash = strrchr(dir, '/'))) {
                _cleanup_free_ char *next_path = strdup(dir);
                if (!next_path)
                        return -ENOMEM;
                slash[slash == dir ? 1 : 0] = '\0'; /* keep "/" itself */
                int wd = inotify_add_watch(w->fd, dir, ANCESTOR_MASK);
                if (wd >= 0) {
                        w->wd = wd;
                        w->next_path = TAKE_PTR(next_path);
                        w->next = strrchr(w->next_path, '/') + 1;
                        log_debug("Waiting for %s to appear (watching %s).", w->path, dir);
                        return 0;
                }
                if (errno != ENOENT || slash == dir)
                        return -errno;
        }
        return -ENOENT;
}

/* The component may have been created between our two inotify_add_watch()
 * calls; then its creation event was missed. */
static bool next_exists(dirwatch *w) {
        return access(w->next_path, F_OK) == 0;
}

static int setup(dirwatch *w) {
        int r;

        for (unsigned i = 0; i < SETUP_TRIES_MAX; i++) {
                drop_watch(w);
                w->wd = inotify_add_watch(w->fd, w->path, DIR_MASK);
                if (w->wd >= 0)
                        return 0;
                if (errno != ENOENT)
                        return -errno;
                r = watch_ancestor(w);
                if (r < 0)
                        return r;
                if (!next_exists(w))
                        return 0;
        }
        return -ELOOP;
}

static void resetup(dirwatch *w) {
        int r = setup(w);

        if (r < 0)
                log_warning_errno(r, "Cannot watch %s, VMs there are no longer discovered: %m", w->path);
        w->ops.rescan(w, w->userdata);
}

typedef struct batch {
        bool rescan, resetup;
} batch;

static void on_waiting_event(dirwatch *w, const struct inotify_event *ev, batch *b) {
        if ((ev->mask & GONE_MASK) || (ev->len > 0 && strcmp(ev->name, w->next) == 0))
                b->resetup = true;
}

static void on_dir_event(dirwatch *w, const struct inotify_event *ev, batch *b) {
        if (ev->mask & GONE_MASK) {
                b->resetup = true;
                return;
        }
        /* A rescan at the end of the batch covers everything after it. */
        if (b->rescan || b->resetup || ev->len == 0 || (ev->mask & IN_ISDIR) || !dirwatch_is_candidate(ev->name))
                return;
        if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                w->ops.removed(w, ev->name, w->userdata);
        else
                w->ops.changed(w, ev->name, w->userdata);
}

static void on_event(dirwatch *w, const struct inotify_event *ev, batch *b) {
        if (ev->mask & IN_Q_OVERFLOW) {
                log_debug("Lost inotify events for %s, rescanning.", w->path);
                b->rescan = true;
        } else if (ev->wd != w->wd)
                return; /* a watch dropped earlier */
        else if (w->next)
                on_waiting_event(w, ev, b);
        else
                on_dir_event(w, ev, b);
}

/* Returns false when nothing more is to be read now. */
static bool read_events(dirwatch *w, batch *b) {
        union {
                struct inotify_event ev;
                char raw[sizeof(struct inotify_event) + NAME_MAX + 1 + 4096];
        } buf;
        ssize_t n = read(w->fd, &buf, sizeof buf);

        if (n < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        log_warning_errno(errno, "Cannot read inotify events for %s: %m", w->path);
                return errno == EINTR;
        }
        for (char *p = buf.raw; p < buf.raw + n;) {
                const struct inotify_event *ev = (const struct inotify_event *) p;
                on_event(w, ev, b);
                p += sizeof(struct inotify_event) + ev->len;
        }
        return true;
}

static void on_inotify(vmsig_core *c, vmsig_cookie cookie, int fd, uint32_t revents, void *userdata) {
        dirwatch *w = userdata;
        batch b = {};

        for (unsigned i = 0; i < READS_MAX && read_events(w, &b); i++)
                ;
        if (b.resetup)
                resetup(w);
        else if (b.rescan)
                w->ops.rescan(w, w->userdata);
}

int dirwatch_new(vmsig_core *core, const char *path, const dirwatch_ops *ops, void *userdata, dirwatch **ret) {
        dirwatch *w;
        int r;

        if (!path || path[0] != '/')
                return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        *w = (dirwatch) { .core = core, .ops = *ops, .userdata = userdata, .fd = -1, .wd = -1 };
        w->path = strdup(path);
        if (!w->path) {
                dirwatch_free(w);
                return -ENOMEM;
        }
        /* Trailing slashes would defeat the ancestor walk. */
        for (size_t n = strlen(w->path); n > 1 && w->path[n - 1] == '/'; n--)
                w->path[n - 1] = '\0';
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        r = w->fd < 0 ? -errno : vmsig_core_add_fd(core, w->fd, EPOLLIN, on_inotify, w, &w->cookie);
        if (r < 0) {
                dirwatch_free(w);
                return r;
        }
        *ret = w;
        return 0;
}

int dirwatch_start(dirwatch *w) {
        int r = setup(w);

        if (r < 0)
                return log_error_errno(r, "Cannot watch %s: %m", w->path);
        w->ops.rescan(w, w->userdata);
        return 0;
}

dirwatch *dirwatch_free(dirwatch *w) {
        if (!w)
                return NULL;
        if (w->cookie)
                (void) vmsig_core_remove_fd(w->core, w->cookie);
        free(w->next_path);
        safe_close(w->fd); /* drops the watches with it */
        free(w->path);
        return mfree(w);
}

void dirwatch_list_free(char **names, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

static int cmp_names(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static int append_name(char ***names, size_t *n, const char *name) {
        char **grown = reallocarray(*names, *n + 1, sizeof(char *));

        if (!grown)
                return -ENOMEM;
        *names = grown;
        grown[*n] = strdup(name);
        if (!grown[*n])
                return -ENOMEM;
        (*n)++;
        return 0;
}

int dirwatch_list(dirwatch *w, char ***ret, size_t *ret_n) {
        DIR *dir = w->next ? NULL : opendir(w->path);
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        int r = 0;

        if (!dir && !w->next && errno != ENOENT && errno != ENOTDIR)
                return -errno;
        while (dir && r >= 0 && (errno = 0, de = readdir(dir)))
                if (de->d_type != DT_DIR && dirwatch_is_candidate(de->d_name))
                        r = append_name(&names, &n, de->d_name);
        if (dir && r >= 0 && errno != 0)
                r = -errno;
        if (dir)
                closedir(dir);
        if (r < 0) {
                dirwatch_list_free(names, n);
                return r;
        }
        if (n > 0)
                qsort(names, n, sizeof(char *), cmp_names);
        *ret = names;
        *ret_n = n;
        return 0;
}
