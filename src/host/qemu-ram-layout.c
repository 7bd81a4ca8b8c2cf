/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "qemu-ram-layout.h"

#define GIB UINT64_C(0x40000000)
/* Beyond this much RAM QEMU may put the part above 4 GiB at 1 TiB: with an
 * AMD vCPU (TCG's default qemu64 is one) once the highest address it uses,
 * the 64-bit PCI hole (32 GiB by default) and hotplug memory included,
 * reaches the HyperTransport range at 1012 GiB. Half of that leaves room
 * for both. */
#define LAYOUT_RAM_MAX (512 * GIB)

/* A version as QEMU names machine types, "MAJOR.MINOR[.MICRO]", as
 * MAJOR * 100 + MINOR; false for anything else (signs, blanks, leading
 * zeros, trailing text, numbers out of range). */
static bool parse_version(const char *s, unsigned *ret) {
        unsigned part[3] = {}, n = 0;

        for (;;) {
                size_t digits = strspn(s, "0123456789");

                if (digits == 0 || digits > 2 || (digits > 1 && s[0] == '0'))
                        return false;
                for (size_t i = 0; i < digits; i++)
                        part[n] = part[n] * 10 + (unsigned) (s[i] - '0');
                n++;
                s += digits;
                if (*s == '\0')
                        break;
                if (*s != '.' || n == ELEMENTSOF(part))
                        return false;
                s++;
        }
        if (n < 2)
                return false;
        *ret = part[0] * 100 + part[1];
        return true;
}

/* pc_q35_init(): 2 GiB low once the RAM leaves too little room below
 * 4 GiB for the PCI hole and MMCFG (0xb0000000 .. 4 GiB). */
static uint64_t q35_lowmem(uint64_t ram_size, unsigned version) {
        return ram_size >= UINT64_C(0xb0000000) ? 2 * GIB : UINT64_C(0xb0000000);
}

/* pc_init1(): the traditional 3.5 GiB, moved to 3 GiB (gigabyte_align)
 * when the RAM must be split at all, by every machine type since 2.0. */
static uint64_t i440fx_lowmem(uint64_t ram_size, unsigned version) {
        if (ram_size >= UINT64_C(0xe0000000) && version >= 200)
                return 3 * GIB;
        return UINT64_C(0xe0000000);
}

static const struct family {
        const char *prefix;
        unsigned min, max; /* the versions QEMU 7.2 has */
        uint64_t (*lowmem)(uint64_t ram_size, unsigned version);
} families[] = {
        { "pc-q35-", 204, 702, q35_lowmem },
        { "pc-i440fx-", 104, 702, i440fx_lowmem },
};

static const struct family *family_of(const char *machine, unsigned *ret_version) {
        for (size_t i = 0; i < ELEMENTSOF(families); i++) {
                size_t n = strlen(families[i].prefix);

                if (strncmp(machine, families[i].prefix, n) == 0 && parse_version(machine + n, ret_version) &&
                    *ret_version >= families[i].min && *ret_version <= families[i].max)
                        return &families[i];
        }
        return NULL;
}

int qemu_ram_layout(const char *machine, uint64_t ram_size, uint64_t max_ram_size,
                    vmsig_gpa_range ret[static QEMU_RAM_LAYOUT_MAX_RANGES], size_t *ret_n, char *msg, size_t size) {
        const struct family *f;
        uint64_t below;
        unsigned version;

        assert(machine && ret && ret_n && msg);
        if (ram_size == 0) {
                snprintf(msg, size, "The guest has no RAM.");
                return -EINVAL;
        }
        f = family_of(machine, &version);
        if (!f) {
                snprintf(msg, size,
                         "Its machine type '%s' is not one whose memory layout vmsigd knows (QEMU 7.2's "
                         "pc-i440fx-1.4 to 7.2 and pc-q35-2.4 to 7.2).", machine);
                return -EOPNOTSUPP;
        }
        if (MAX(ram_size, max_ram_size) >= LAYOUT_RAM_MAX) {
                snprintf(msg, size,
                         "With %" PRIu64 " GiB of memory QEMU may place the RAM above 4 GiB at 1 TiB instead "
                         "(AMD vCPUs), which its machine type alone does not tell.", MAX(ram_size, max_ram_size) / GIB);
                return -EOPNOTSUPP;
        }
        below = MIN(ram_size, f->lowmem(ram_size, version));
        ret[0] = (vmsig_gpa_range) { .gpa = 0, .size = below, .offset = 0 };
        *ret_n = 1;
        if (ram_size > below)
                ret[(*ret_n)++] = (vmsig_gpa_range) { .gpa = 4 * GIB, .size = ram_size - below, .offset = below };
        return 0;
}
