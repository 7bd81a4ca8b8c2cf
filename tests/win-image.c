/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "win-image.h"

#define PAGE UINT64_C(0x1000)
#define PFN_MASK UINT64_C(0x000FFFFFFFFFF000)
#define NX (UINT64_C(1) << 63)
#define KERNEL_FLAGS UINT64_C(0x063) /* present, writable, accessed, dirty */
#define USER_FLAGS UINT64_C(0x067)   /* the same, and user */
#define LARGE_IDENTITY UINT64_C(0xE3) /* 2 MiB at 0, accessed and dirty: the vCPU changes nothing */
#define ENTRIES 512u
#define KERNEL_HALF 256u

#define GIB (UINT64_C(1) << 30)
#define MIB (UINT64_C(1) << 20)

static const win_layout layouts[] = {
        { .build = 7601, .pid = 0x180, .links = 0x188, .name = 0x2E0, .header_size = 0x58 },
        { .build = 18362, .pid = 0x2E8, .links = 0x2F0, .name = 0x450, .header_size = 0xB2 },
        { .build = 19041, .pid = 0x440, .links = 0x448, .name = 0x5A8, .header_size = 0x00 },
};

/* The largest EPROCESS prefix written: up to the end of the 19041 name. */
#define EPROCESS_BYTES (0x5A8 + 16)
#define IMAGE_NAME_LEN 15

const win_layout *win_layout_for_build(unsigned build) {
        if (build == 0)
                build = 19041;
        for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
                if (layouts[i].build == build)
                        return &layouts[i];
        return NULL;
}

/* splitmix64: the same image from the same seed, everywhere. */
static uint64_t rng_next(uint64_t *state) {
        uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));

        z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
        return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *state, uint64_t n) {
        return rng_next(state) % n;
}

static void put64(uint8_t *p, uint64_t v) {
        memcpy(p, &v, sizeof v); /* x86 guests are little-endian, and so is this host */
}

static bool is_kernel_va(uint64_t va) {
        return (va >> 47) == UINT64_C(0x1FFFF);
}

static unsigned pml4_index(uint64_t va) {
        return (unsigned) (va >> 39) & (ENTRIES - 1);
}

/* A kernel-half page VA under PML4 entry index. */
static uint64_t kernel_page_va(unsigned slot, uint64_t *rng) {
        return UINT64_C(0xFFFF000000000000) | ((uint64_t) slot << 39) | (rng_next(rng) & UINT64_C(0x7FFFFFF000));
}

/* Within two pages of each other: a structure may span two. */
static bool pages_near(uint64_t a, uint64_t b) {
        uint64_t pa = a >> 12, pb = b >> 12;

        return (pa > pb ? pa - pb : pb - pa) <= 2;
}

size_t win_ranges_q35(uint64_t ram_mib, win_range ret[static 2]) {
        uint64_t size = ram_mib * MIB;

        /* hw/i386/pc_q35.c: below 0xB0000000 everything sits low, else
         * 2 GiB low and the rest above 4 GiB, right after the low part in
         * the file. */
        if (size < UINT64_C(0xB0000000)) {
                ret[0] = (win_range) { .gpa = 0, .size = size, .offset = 0 };
                return 1;
        }
        ret[0] = (win_range) { .gpa = 0, .size = 2 * GIB, .offset = 0 };
        ret[1] = (win_range) { .gpa = 4 * GIB, .size = size - 2 * GIB, .offset = 2 * GIB };
        return 2;
}

static const win_range *find_range(const win_image *img, uint64_t gpa) {
        for (size_t i = 0; i < img->n_ranges; i++)
                if (gpa >= img->ranges[i].gpa && gpa - img->ranges[i].gpa < img->ranges[i].size)
                        return &img->ranges[i];
        return NULL;
}

int win_image_offset(const win_image *img, uint64_t gpa, uint64_t len, uint64_t *ret) {
        const win_range *r = find_range(img, gpa);

        if (!r || len > r->size - (gpa - r->gpa))
                return -EFAULT;
        *ret = r->offset + (gpa - r->gpa);
        return 0;
}

/* pread or pwrite, piece by piece over the ranges. */
static int image_io(const win_image *img, uint64_t gpa, void *buf, size_t len, bool write) {
        uint8_t *p = buf;

        while (len > 0) {
                const win_range *r = find_range(img, gpa);
                uint64_t room;
                size_t n;
                ssize_t k;

                if (!r)
                        return -EFAULT;
                room = r->size - (gpa - r->gpa);
                n = len < room ? len : (size_t) room;
                if (write)
                        k = pwrite(img->fd, p, n, (off_t) (r->offset + (gpa - r->gpa)));
                else
                        k = pread(img->fd, p, n, (off_t) (r->offset + (gpa - r->gpa)));
                if (k < 0)
                        return -errno;
                if ((size_t) k != n)
                        return -EIO;
                p += n;
                gpa += n;
                len -= n;
        }
        return 0;
}

int win_image_write(const win_image *img, uint64_t gpa, const void *buf, size_t len) {
        return image_io(img, gpa, (void *) buf, len, true);
}

int win_image_write_u64(const win_image *img, uint64_t gpa, uint64_t value) {
        return win_image_write(img, gpa, &value, sizeof value);
}

int win_image_read(const win_image *img, uint64_t gpa, void *buf, size_t len) {
        return image_io(img, gpa, buf, len, false);
}

int win_stub_write(const win_image *img, uint64_t gpa, uint64_t dtb, uint64_t kernel_hint) {
        uint8_t stub[0xA8] = {};

        if (gpa < PAGE || gpa >= MIB || (gpa & (PAGE - 1)))
                return -EINVAL;
        /* E9 4D 06 00 01 00 00 00: the jmp; only byte 1 may vary. */
        put64(stub, UINT64_C(0x0000000100064DE9));
        put64(stub + 0x70, kernel_hint);
        put64(stub + 0xA0, dtb);
        return win_image_write(img, gpa, stub, sizeof stub);
}

void win_root_init(win_kernel *k, uint64_t dtb, uint64_t tables, unsigned self_ref, unsigned kernel_entries,
                   uint32_t seed) {
        *k = (win_kernel) {
                .build = 19041,
                .seed = seed,
                .dtb = dtb,
                .tables = tables,
                .self_ref = self_ref,
                .kernel_entries = kernel_entries,
        };
}

void win_kernel_init(win_kernel *k, unsigned build, uint64_t dtb, uint64_t tables, uint64_t data, uint32_t seed) {
        uint64_t rng = seed, head_off;
        unsigned pool, image;

        win_root_init(k, dtb, tables, 0, 8, seed);
        k->build = build ?: 19041;
        /* Random since Windows 10 1607, fixed before. */
        k->self_ref = k->build == 7601 ? WIN_SELF_REF_LEGACY : KERNEL_HALF + (unsigned) rng_below(&rng, KERNEL_HALF);
        /* Nonpaged pool for the processes, the kernel image for the list
         * head, as on a real system: two PML4 entries, or one by chance. */
        do
                pool = KERNEL_HALF + (unsigned) rng_below(&rng, KERNEL_HALF);
        while (pool == k->self_ref);
        do
                image = KERNEL_HALF + (unsigned) rng_below(&rng, KERNEL_HALF);
        while (image == k->self_ref);

        head_off = rng_below(&rng, PAGE / 16) * 16;
        k->eprocess_gpa = data + 0x40;
        k->head_gpa = data + PAGE + head_off;
        k->other_gpa = data + 2 * PAGE + 0x40;
        /* Each may be moved within its page and span two: keep them apart. */
        do {
                k->eprocess_va = kernel_page_va(pool, &rng) + 0x40;
                k->head_va = kernel_page_va(image, &rng) + head_off;
                k->other_va = kernel_page_va(pool, &rng) + 0x40;
        } while (pages_near(k->eprocess_va, k->other_va) || pages_near(k->eprocess_va, k->head_va) ||
                 pages_near(k->other_va, k->head_va));
}

typedef struct table_page {
        uint64_t gpa;
        uint64_t e[ENTRIES];
} table_page;

typedef struct builder {
        const win_kernel *k;
        table_page *pages; /* [0] the PML4, then the pool in order */
        size_t n;
} builder;

static int builder_alloc(builder *b, uint64_t **ret_table, uint64_t *ret_gpa) {
        if (b->n > WIN_KERNEL_TABLE_PAGES)
                return -ENOSPC;
        b->pages[b->n].gpa = b->k->tables + (b->n - 1) * PAGE;
        *ret_gpa = b->pages[b->n].gpa;
        if (ret_table)
                *ret_table = b->pages[b->n].e;
        b->n++;
        return 0;
}

static uint64_t *builder_table(builder *b, uint64_t gpa) {
        for (size_t i = 0; i < b->n; i++)
                if (b->pages[i].gpa == gpa)
                        return b->pages[i].e;
        return NULL;
}

static int builder_map_page(builder *b, uint64_t va, uint64_t pa) {
        uint64_t *t = b->pages[0].e;
        unsigned i;
        int r;

        if (pml4_index(va) == b->k->self_ref)
                return -EINVAL; /* that slot maps the tables themselves */
        for (unsigned shift = 39; shift > 12; shift -= 9) {
                i = (unsigned) (va >> shift) & (ENTRIES - 1);
                if (t[i] == 0) {
                        uint64_t gpa;
                        r = builder_alloc(b, NULL, &gpa);
                        if (r < 0)
                                return r;
                        t[i] = gpa | KERNEL_FLAGS;
                }
                t = builder_table(b, t[i] & PFN_MASK);
                if (!t)
                        return -EINVAL;
        }
        i = (unsigned) (va >> 12) & (ENTRIES - 1);
        if (t[i] != 0 && (t[i] & PFN_MASK) != pa)
                return -EINVAL; /* two structures on one VA page, different GPA pages */
        t[i] = pa | KERNEL_FLAGS | NX;
        return 0;
}

/* The pages under [va, va + len), mapped to the same offsets from gpa. */
static int builder_map(builder *b, uint64_t va, uint64_t gpa, uint64_t len) {
        if ((va & (PAGE - 1)) != (gpa & (PAGE - 1)) || !is_kernel_va(va) || !is_kernel_va(va + len - 1))
                return -EINVAL;
        for (uint64_t p = va & ~(PAGE - 1); p <= ((va + len - 1) & ~(PAGE - 1)); p += PAGE) {
                int r = builder_map_page(b, p, (gpa & ~(PAGE - 1)) + (p - (va & ~(PAGE - 1))));
                if (r < 0)
                        return r;
        }
        return 0;
}

static int write_eprocess(const win_image *img, const win_layout *l, uint64_t gpa, uint64_t va, uint64_t dtb,
                          uint64_t pid, uint64_t flink, uint64_t blink, const char *name) {
        uint8_t buf[EPROCESS_BYTES] = {};

        buf[0x00] = 3; /* ProcessObject */
        buf[0x02] = l->header_size;
        /* Two empty lists of the dispatcher header and KPROCESS point at
         * themselves. */
        put64(buf + 0x08, va + 0x08);
        put64(buf + 0x10, va + 0x08);
        put64(buf + 0x18, va + 0x18);
        put64(buf + 0x20, va + 0x18);
        put64(buf + WIN_EPROCESS_DTB, dtb);
        put64(buf + l->pid, pid);
        put64(buf + l->links, flink);
        put64(buf + l->links + 8, blink);
        strncpy((char *) buf + l->name, name, IMAGE_NAME_LEN); /* NUL-padded */
        return win_image_write(img, gpa, buf, l->name + 16u);
}

static unsigned count_kernel_entries(const uint64_t *pml4, unsigned self_ref) {
        unsigned n = 0;

        for (unsigned i = KERNEL_HALF; i < ENTRIES; i++)
                if (pml4[i] != 0 && i != self_ref)
                        n++;
        return n;
}

static int kernel_build(builder *b, const win_layout *l, uint64_t *ret_other_dtb) {
        const win_kernel *k = b->k;
        uint64_t rng = (uint64_t) k->seed ^ UINT64_C(0x5EED0F11E4);
        uint64_t *pml4 = b->pages[0].e, *pdpt, *pd, gpa;
        int r;

        /* The identity map that keeps the synthetic vCPU running. */
        r = builder_alloc(b, &pdpt, &gpa);
        if (r < 0)
                return r;
        pml4[0] = gpa | USER_FLAGS;
        r = builder_alloc(b, &pd, &gpa);
        if (r < 0)
                return r;
        pdpt[0] = gpa | USER_FLAGS;
        pd[0] = LARGE_IDENTITY;

        if (k->eprocess_gpa != 0) {
                r = builder_map(b, k->eprocess_va, k->eprocess_gpa, l->name + 16u);
                if (r >= 0)
                        r = builder_map(b, k->head_va, k->head_gpa, 16);
                if (r >= 0)
                        r = builder_map(b, k->other_va, k->other_gpa, l->name + 16u);
                if (r < 0)
                        return r;
        }

        /* The rest of the kernel half: empty PDPTs. */
        if (count_kernel_entries(pml4, k->self_ref) > k->kernel_entries)
                return -EINVAL;
        while (count_kernel_entries(pml4, k->self_ref) < k->kernel_entries) {
                unsigned i = KERNEL_HALF + (unsigned) rng_below(&rng, KERNEL_HALF);
                if (i == k->self_ref || pml4[i] != 0)
                        continue;
                r = builder_alloc(b, NULL, &gpa);
                if (r < 0)
                        return r;
                pml4[i] = gpa | KERNEL_FLAGS;
        }
        pml4[k->self_ref] = k->dtb | KERNEL_FLAGS | NX;

        *ret_other_dtb = 0;
        if (k->eprocess_gpa != 0) {
                uint64_t *other;
                r = builder_alloc(b, &other, ret_other_dtb);
                if (r < 0)
                        return r;
                memcpy(other, pml4, ENTRIES * sizeof(uint64_t));
                other[k->self_ref] = *ret_other_dtb | KERNEL_FLAGS | NX;
        }
        return 0;
}

int win_kernel_write(const win_image *img, const win_kernel *k, win_expect *ret) {
        const win_layout *l = win_layout_for_build(k->build);
        builder b = { .k = k };
        uint64_t other_dtb = 0;
        int r;

        if (!l || (k->dtb & (PAGE - 1)) || (k->tables & (PAGE - 1)) || k->self_ref < KERNEL_HALF ||
            k->self_ref >= ENTRIES || k->kernel_entries >= KERNEL_HALF - 1)
                return -EINVAL;
        if (k->eprocess_gpa != 0 && ((k->eprocess_gpa & 7) || (k->head_gpa & 7) || (k->other_gpa & 7)))
                return -EINVAL;

        b.pages = calloc(1 + WIN_KERNEL_TABLE_PAGES, sizeof(table_page));
        if (!b.pages)
                return -ENOMEM;
        b.pages[0].gpa = k->dtb;
        b.n = 1;
        r = kernel_build(&b, l, &other_dtb);
        for (size_t i = 0; r >= 0 && i < b.n; i++)
                r = win_image_write(img, b.pages[i].gpa, b.pages[i].e, PAGE);
        free(b.pages);
        if (r < 0)
                return r;

        if (k->eprocess_gpa != 0) {
                bool legacy = l->build == 7601;
                uint64_t system_links = k->eprocess_va + l->links, other_links = k->other_va + l->links;

                /* The ring head -> System -> other -> head, both ways. */
                r = write_eprocess(img, l, k->eprocess_gpa, k->eprocess_va, k->dtb, WIN_SYSTEM_PID, other_links,
                                   k->head_va, "System");
                if (r >= 0)
                        r = write_eprocess(img, l, k->other_gpa, k->other_va, other_dtb, legacy ? 0x10C : 0x68,
                                           k->head_va, system_links, legacy ? "smss.exe" : "Registry");
                if (r >= 0)
                        r = win_image_write_u64(img, k->head_gpa, system_links);
                if (r >= 0)
                        r = win_image_write_u64(img, k->head_gpa + 8, other_links);
                if (r < 0)
                        return r;
        }

        if (ret)
                *ret = (win_expect) {
                        .dtb = k->dtb,
                        .eprocess_gpa = k->eprocess_gpa,
                        .eprocess_va = k->eprocess_gpa ? k->eprocess_va : 0,
                        .build = l->build,
                        .self_ref = k->self_ref,
                        .other_dtb = other_dtb,
                };
        return 0;
}

/* Decoys: each fails one thing a System EPROCESS must have. */
enum {
        DECOY_NAME,            /* the name alone */
        DECOY_NAME_UNALIGNED,  /* the name alone, off an 8-byte boundary */
        DECOY_SYSTEM_ROOT,     /* "SystemRoot": not NUL-padded */
        DECOY_LINKS_SELF,      /* pid 4, links pointing at themselves */
        DECOY_DTB_UNALIGNED,   /* pid 4, a DTB with low bits set */
        DECOY_PID,             /* the live System's DTB and links, but pid 8 */
        DECOY_COPY,            /* the live System's DTB and links: the neighbours point elsewhere */
        DECOY_USER_LINKS,      /* pid 4, the DTB, user-half links */
        _DECOY_MAX,
};

/* One decoy of kind at e, for an EPROCESS of layout l at va (its DTB and
 * links given); with a kernel k, the copies take its layout and links. */
static int write_decoy(const win_image *img, unsigned kind, const win_layout *l, uint64_t e, uint64_t va, uint64_t dtb,
                       uint64_t flink, uint64_t blink, const win_kernel *k, uint64_t *rng) {
        static const char system_name[16] = "System";
        const win_layout *kl = k ? win_layout_for_build(k->build) : NULL;
        int r = 0;

        switch (kind) {
        case DECOY_NAME:
                r = win_image_write(img, e, system_name, sizeof system_name);
                break;
        case DECOY_NAME_UNALIGNED:
                r = win_image_write(img, e + 1 + rng_below(rng, 7), system_name, sizeof system_name);
                break;
        case DECOY_SYSTEM_ROOT:
                r = win_image_write(img, e, "SystemRoot", sizeof "SystemRoot");
                break;
        case DECOY_LINKS_SELF:
                r = write_eprocess(img, l, e, va, dtb, WIN_SYSTEM_PID, va + l->links, va + l->links,
                                   "System");
                break;
        case DECOY_DTB_UNALIGNED:
                r = write_eprocess(img, l, e, va, dtb | 0x5, WIN_SYSTEM_PID, flink, blink, "System");
                break;
        case DECOY_PID:
        case DECOY_COPY:
                /* With a kernel: its own layout and the live
                 * System's neighbours, which point back at the live
                 * System's VA; that VA leads to the live GPA. */
                if (kl) {
                        l = kl;
                        flink = k->other_va + kl->links;
                        blink = k->head_va;
                }
                r = write_eprocess(img, l, e, va, dtb, kind == DECOY_PID ? 8 : WIN_SYSTEM_PID,
                                   flink, blink, "System");
                break;
        case DECOY_USER_LINKS:
                r = write_eprocess(img, l, e, va, dtb, WIN_SYSTEM_PID, flink & UINT64_C(0x00007FFFFFFFFFF8),
                                   blink & UINT64_C(0x00007FFFFFFFFFF8), "System");
                break;
        }
        return r;
}

int win_noise_write(const win_image *img, uint64_t gpa, uint64_t size, unsigned count, const win_kernel *k,
                    uint32_t seed) {
        uint64_t rng = (uint64_t) seed ^ UINT64_C(0xDEC0), slot;

        if (count == 0)
                return 0;
        slot = (size / count) & ~(PAGE - 1);
        if (slot < 2 * PAGE)
                return -EINVAL;
        for (unsigned i = 0; i < count; i++) {
                const win_layout *l = &layouts[rng_below(&rng, sizeof layouts / sizeof layouts[0])];
                uint64_t e = gpa + i * slot + rng_below(&rng, (slot - EPROCESS_BYTES) / 8) * 8;
                uint64_t va = kernel_page_va(KERNEL_HALF + (unsigned) rng_below(&rng, KERNEL_HALF), &rng) +
                              (e & (PAGE - 1));
                uint64_t dtb = k ? k->dtb : gpa + rng_below(&rng, size / PAGE) * PAGE;
                uint64_t flink = kernel_page_va(KERNEL_HALF + (unsigned) rng_below(&rng, KERNEL_HALF), &rng) + 0x448;
                uint64_t blink = kernel_page_va(KERNEL_HALF + (unsigned) rng_below(&rng, KERNEL_HALF), &rng) + 0x448;
                int r = write_decoy(img, i % _DECOY_MAX, l, e, va, dtb, flink, blink, k, &rng);

                if (r < 0)
                        return r;
        }
        return 0;
}

static const char *const scenario_names[_WIN_SCENARIO_MAX] = {
        [WIN_SCENARIO_PLAIN] = "plain",
        [WIN_SCENARIO_STALE_BOOT] = "stale-boot",
        [WIN_SCENARIO_STALE_COPY] = "stale-copy",
        [WIN_SCENARIO_LOOKALIKE] = "lookalike",
        [WIN_SCENARIO_HIGH_ROOT] = "high-root",
        [WIN_SCENARIO_ABOVE_4G] = "above-4g",
        [WIN_SCENARIO_SYSTEM_STRINGS] = "system-strings",
        [WIN_SCENARIO_NOISE_ONLY] = "noise-only",
        [WIN_SCENARIO_NAME_FAR] = "name-far",
};

const char *win_scenario_to_string(win_scenario s) {
        return s < _WIN_SCENARIO_MAX ? scenario_names[s] : NULL;
}

uint64_t win_scenario_ram_mib(win_scenario s) {
        return s == WIN_SCENARIO_ABOVE_4G ? 3072 : 128;
}

/* Where the scenarios put things: all under 112 MiB (SeaBIOS keeps its
 * tables at the top of low RAM), above 2 MiB but for the stub and the
 * specification's example DTB. */
#define SPEC_DTB UINT64_C(0x1AA000)
#define LOADER_DTB UINT64_C(0x300000)
#define LOADER_TABLES UINT64_C(0x301000)
#define KERNEL_TABLES UINT64_C(0x2000000)
#define KERNEL_DATA UINT64_C(0x3A5C000)

/* The boot loader's root the low stub still names: valid, but not the
 * one the running kernel uses. */
static int write_stub_and_loader(const win_image *img, uint64_t dtb, uint64_t tables, unsigned self_ref,
                                 uint32_t seed, win_expect *ret) {
        win_kernel loader;
        int r;

        win_root_init(&loader, dtb, tables, self_ref, 6, seed ^ 0x10AD);
        r = win_kernel_write(img, &loader, NULL);
        if (r < 0)
                return r;
        ret->stub_dtb = dtb;
        return win_stub_write(img, WIN_STUB_GPA, dtb, WIN_KERNEL_HINT);
}

static int write_plain(const win_image *img, const win_kernel *k, win_expect *ret) {
        int r = win_kernel_write(img, k, ret);

        if (r < 0)
                return r;
        return write_stub_and_loader(img, LOADER_DTB, LOADER_TABLES, k->self_ref, k->seed, ret);
}

static void stale_boot_kernel(win_kernel *k, unsigned boot, unsigned build, uint32_t seed) {
        /* Boot 1 below boot 2 everywhere: a detector that takes the first
         * match finds the stale one. */
        if (boot == 1)
                win_kernel_init(k, build, SPEC_DTB, 0x400000, 0x1234000, seed);
        else
                win_kernel_init(k, build, 0x5DB000, 0x600000, 0x4567000, seed * 31 + 7);
}

int win_stale_boot_write(const win_image *img, unsigned boot, unsigned build, uint32_t seed, win_expect *ret) {
        win_kernel k, stale;
        win_expect e = {};
        int r;

        if (boot != 1 && boot != 2)
                return -EINVAL;
        stale_boot_kernel(&k, boot, build, seed);
        r = win_kernel_write(img, &k, &e);
        if (r < 0)
                return r;
        /* Each boot's loader writes the stub anew. */
        r = write_stub_and_loader(img, boot == 1 ? LOADER_DTB : 0x500000, boot == 1 ? LOADER_TABLES : 0x501000,
                                  k.self_ref, k.seed, &e);
        if (r < 0)
                return r;
        if (boot == 2) {
                stale_boot_kernel(&stale, 1, build, seed);
                e.stale_dtb = stale.dtb;
                e.stale_eprocess_gpa = stale.eprocess_gpa;
        }
        if (ret)
                *ret = e;
        return 0;
}

/* A copy of the System EPROCESS, byte for byte, lower in RAM: only the
 * neighbours, which lead back to the live one's GPA, give it away. */
static int write_stale_copy(const win_image *img, unsigned build, uint32_t seed, win_expect *e) {
        win_kernel k;
        uint8_t copy[EPROCESS_BYTES];
        const win_layout *l;
        int r;

        win_kernel_init(&k, build, SPEC_DTB, KERNEL_TABLES, KERNEL_DATA, seed);
        r = write_plain(img, &k, e);
        l = win_layout_for_build(k.build);
        if (r >= 0)
                r = win_image_read(img, k.eprocess_gpa, copy, l->name + 16u);
        if (r >= 0)
                r = win_image_write(img, 0x1000040, copy, l->name + 16u);
        return r;
}

/* No stub; a root with 5 kernel entries and a self-reference first. */
static int write_lookalike(const win_image *img, unsigned build, uint32_t seed, win_expect *e) {
        win_kernel k, fake;
        int r;

        win_kernel_init(&k, build, 0x800000, 0x801000, 0x2468000, seed);
        k.kernel_entries = 6; /* the least a real one has */
        win_root_init(&fake, 0x200000, 0x201000, k.self_ref, 5, seed ^ 0xFA4E);
        r = win_kernel_write(img, &fake, NULL);
        if (r >= 0)
                r = win_kernel_write(img, &k, e);
        return r;
}

/* No stub; the root above 16 MiB, its self-reference not 0x1ED. */
static int write_high_root(const win_image *img, unsigned build, uint32_t seed, win_expect *e) {
        win_kernel k;

        if (build == 7601)
                return -EINVAL;
        for (uint32_t s2 = seed;; s2++) {
                win_kernel_init(&k, build, 0x2400000, 0x2401000, 0x5A5A000, s2);
                if (k.self_ref != WIN_SELF_REF_LEGACY)
                        break;
        }
        return win_kernel_write(img, &k, e);
}

/* 19041, the name 8 bytes before 64 MiB, its padding after: the EPROCESS
 * starts at page + 0xA50, its name is 0x5A8 and a page boundary further
 * on. */
static int write_name_far(const win_image *img, uint32_t seed, win_expect *e) {
        win_kernel k;

        win_kernel_init(&k, 19041, SPEC_DTB, KERNEL_TABLES, KERNEL_DATA, seed);
        k.eprocess_gpa = UINT64_C(0x4000000) - 8 - 0x5A8;
        k.eprocess_va = (k.eprocess_va & ~(PAGE - 1)) | (k.eprocess_gpa & (PAGE - 1));
        return write_plain(img, &k, e);
}

int win_scenario_write(const win_image *img, win_scenario s, unsigned build, uint32_t seed, win_expect *ret) {
        win_kernel k;
        win_expect e = {};
        int r;

        switch (s) {
        case WIN_SCENARIO_PLAIN:
                win_kernel_init(&k, build, SPEC_DTB, KERNEL_TABLES, KERNEL_DATA, seed);
                r = write_plain(img, &k, &e);
                break;

        case WIN_SCENARIO_STALE_BOOT:
                r = win_stale_boot_write(img, 1, build, seed, NULL);
                if (r >= 0)
                        r = win_stale_boot_write(img, 2, build, seed, &e);
                break;

        case WIN_SCENARIO_STALE_COPY:
                r = write_stale_copy(img, build, seed, &e);
                break;

        case WIN_SCENARIO_LOOKALIKE:
                r = write_lookalike(img, build, seed, &e);
                break;

        case WIN_SCENARIO_HIGH_ROOT:
                r = write_high_root(img, build, seed, &e);
                break;

        case WIN_SCENARIO_ABOVE_4G:
                win_kernel_init(&k, build, SPEC_DTB, KERNEL_TABLES, KERNEL_DATA, seed);
                k.eprocess_gpa = UINT64_C(0x123456040); /* page + 0x40, as the VA */
                k.other_gpa = UINT64_C(0x134567040);
                r = write_plain(img, &k, &e);
                break;

        case WIN_SCENARIO_SYSTEM_STRINGS:
                win_kernel_init(&k, build, SPEC_DTB, KERNEL_TABLES, 0x6000000, seed);
                r = write_plain(img, &k, &e);
                if (r >= 0)
                        r = win_noise_write(img, 0x1000000, 0x4000000, 256, &k, seed);
                break;

        case WIN_SCENARIO_NOISE_ONLY:
                r = win_noise_write(img, 0x1000000, 0x4000000, 256, NULL, seed);
                break;

        case WIN_SCENARIO_NAME_FAR:
                r = write_name_far(img, seed, &e);
                break;

        default:
                return -EINVAL;
        }
        if (r < 0)
                return r;
        if (ret)
                *ret = e;
        return 0;
}
