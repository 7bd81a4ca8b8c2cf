/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libvmsig-vgpu is a plugin: it is opened with dlopen(), and resolves the
 * core API it uses from vmsigd itself (linked with --dynamic-list), as an
 * out-of-tree plugin library would. The path is compiled in; the tests point
 * VMSIG_VGPU_LIBRARY at the uninstalled build. */
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "plugins.h"
#include "vmsig-vgpu.h"

/* Compared in thousandths: a comparison of doubles is no integer constant
 * expression, which _Static_assert takes (gcc folds it, clang refuses it);
 * both fold these enum constants. */
enum {
        CONFIG_RATE_DEFAULT_MILLI = (long) (VMSIG_CONFIG_FRAMES_RATE_DEFAULT * 1000),
        VGPU_RATE_DEFAULT_MILLI = (long) (VMSIG_VGPU_RATE_DEFAULT * 1000),
        CONFIG_RATE_MAX_MILLI = (long) (VMSIG_CONFIG_FRAMES_RATE_MAX * 1000),
        VGPU_RATE_MAX_MILLI = (long) (VMSIG_VGPU_RATE_MAX * 1000),
};
_Static_assert(CONFIG_RATE_DEFAULT_MILLI == VGPU_RATE_DEFAULT_MILLI, "frame rate defaults differ");
_Static_assert(CONFIG_RATE_MAX_MILLI == VGPU_RATE_MAX_MILLI, "frame rate maxima differ");

typedef struct vgpu_api {
        int (*new)(vmsig_core *core, const vmsig_vgpu_config *config, vmsig_vgpu **ret);
        vmsig_vgpu *(*free)(vmsig_vgpu *v);
        uint32_t (*kind)(vmsig_vgpu *v);
        void (*get_stats)(vmsig_vgpu *v, vmsig_vgpu_stats *ret);
        int (*set_rate)(vmsig_vgpu *v, double rate);
} vgpu_api;

struct vmsig_plugins {
        void *vgpu_dl;
        vgpu_api vgpu_api;
        vmsig_vgpu *vgpu;
};

#if VMSIG_HAVE_VGPU
static const char *vgpu_library_path(void) {
        const char *p = getenv("VMSIG_VGPU_LIBRARY");
        return p && *p ? p : VMSIG_VGPU_LIBRARY_PATH;
}

static int vgpu_resolve(void *dl, vgpu_api *api) {
        static const struct {
                const char *name;
                size_t offset;
        } syms[] = {
                { "vmsig_vgpu_new", offsetof(vgpu_api, new) },
                { "vmsig_vgpu_free", offsetof(vgpu_api, free) },
                { "vmsig_vgpu_kind", offsetof(vgpu_api, kind) },
                { "vmsig_vgpu_get_stats", offsetof(vgpu_api, get_stats) },
                { "vmsig_vgpu_set_rate", offsetof(vgpu_api, set_rate) },
        };

        for (size_t i = 0; i < ELEMENTSOF(syms); i++) {
                void *f = dlsym(dl, syms[i].name);
                if (!f) {
                        log_warning("%s lacks %s, running without frames.", vgpu_library_path(), syms[i].name);
                        return -ENOENT;
                }
                memcpy((char *) api + syms[i].offset, &f, sizeof f);
        }
        return 0;
}

static void vgpu_load(vmsig_plugins *s, vmsig_core *core, const vmsig_config *config) {
        const char *path = vgpu_library_path();
        vmsig_vgpu_config vc = { .rate = config->frames_rate };
        int r;

        /* RTLD_NOW: a core symbol vmsigd does not export fails here, not
         * at the first capture. */
        s->vgpu_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!s->vgpu_dl) {
                log_warning("Cannot load %s, running without frames: %s", path, dlerror());
                return;
        }
        if (vgpu_resolve(s->vgpu_dl, &s->vgpu_api) < 0)
                return;
        r = s->vgpu_api.new(core, &vc, &s->vgpu);
        if (r < 0) {
                log_warning_errno(r, "Cannot start vgpu perception, running without frames: %m");
                return;
        }
        log_debug("Loaded %s: frames at most %g a second.", path, config->frames_rate);
}
#endif

int vmsig_plugins_new(vmsig_core *core, const vmsig_config *config, vmsig_plugins **ret) {
        vmsig_plugins *s = calloc(1, sizeof *s);

        if (!s)
                return -ENOMEM;
#if VMSIG_HAVE_VGPU
        if (config->frames_enabled)
                vgpu_load(s, core, config);
        else
                log_info("Frames are disabled in the configuration.");
#else
        if (config->frames_enabled)
                log_debug("Built without vgpu perception: no frames.");
#endif
        *ret = s;
        return 0;
}

void vmsig_plugins_reload(vmsig_plugins *s, const vmsig_config *old, const vmsig_config *new) {
        int r;

        if (!s)
                return;
        if (old->frames_enabled != new->frames_enabled)
                log_warning("Frames were %s in the configuration: that takes effect when vmsigd restarts.",
                            new->frames_enabled ? "enabled" : "disabled");
        if (!s->vgpu || old->frames_rate == new->frames_rate)
                return;
        r = s->vgpu_api.set_rate(s->vgpu, new->frames_rate);
        if (r < 0)
                log_warning_errno(r, "Cannot change the frame rate: %m");
        else
                log_info("Frames now at most %g a second.", new->frames_rate);
}

void vmsig_plugins_stop(vmsig_plugins *s) {
        if (s && s->vgpu)
                s->vgpu = s->vgpu_api.free(s->vgpu);
}

vmsig_plugins *vmsig_plugins_free(vmsig_plugins *s) {
        if (!s)
                return NULL;
        vmsig_plugins_stop(s);
        if (s->vgpu_dl)
                (void) dlclose(s->vgpu_dl);
        return mfree(s);
}
