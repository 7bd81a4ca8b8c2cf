/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest-image.h"
#include "macro.h"
#include "stub.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define PAGE UINT64_C(0x1000)
#define LARGE_PAGE (2 * MiB)

#define P_RW UINT64_C(0x03)
#define P_RW_USER UINT64_C(0x07)
#define P_RW_AD UINT64_C(0x63) /* present, rw, accessed, dirty */
#define PS UINT64_C(0x80)
#define NX (UINT64_C(1) << 63)

/* Where the tables map things; see guest-image.h. */
#define POOL_PDPT 3
#define POOL_PD 5
#define POOL_PT 0x1A0
#define KERNEL_PDPT 9
#define KERNEL_PD 0x12
#define HEAD_OFFSET UINT64_C(0xC3A80) /* of PsActiveProcessHead in the kernel image */
#define DECOY_OFFSET 0x80             /* of an EPROCESS in a decoy page */

/* Table pages from spec->tables on. */
enum {
        T_USER_PDPT,
        T_POOL_PDPT,
        T_POOL_PD,
        T_POOL_PT,
        T_KERNEL_PDPT,
        T_KERNEL_PD,
        T_OTHER_PDPT, /* five of them */
        T_USER_PD = T_OTHER_PDPT + 5,
};
#define N_OTHER 5
_Static_assert(T_USER_PD + 1 == GUEST_IMAGE_TABLE_PAGES, "table pages");

/* Where the kernel-half entries would like to be; the first two are the
 * pool and the kernel image. */
static const unsigned wanted_index[2 + N_OTHER] = { 0x100, 0x1F0, 0x108, 0x120, 0x1A4, 0x1C0, 0x1FF };

typedef struct Offsets {
        unsigned build;
        uint16_t pid, links, name;
} Offsets;

/* Kept apart from the detector's table on purpose: a typo there must not
 * be repeated here. */
static const Offsets offsets[] = {
        { 7601, 0x180, 0x188, 0x2E0 },
        { 18362, 0x2E8, 0x2F0, 0x450 },
        { 19041, 0x440, 0x448, 0x5A8 },
};

static const Offsets *offsets_of(unsigned build) {
        for (size_t i = 0; i < ELEMENTSOF(offsets); i++)
                if (offsets[i].build == build)
                        return &offsets[i];
        return NULL;
}

void guest_image_spec_init(GuestImageSpec *spec) {
        *spec = (GuestImageSpec) {
                .ram_size = 64 * MiB,
                .layout = GUEST_IMAGE_LAYOUT_QEMU,
                .dtb = 0x1AA000,
                .self_ref = 0x1ED,
                .kernel_image = 0x2200000,
                .build = 19041,
                .eprocess = 0x3A5E080,
                .stub = GUEST_IMAGE_STUB_VALID,
                .stub_page = 0x1000,
                .seed = 1,
        };
}

size_t guest_image_ranges(const GuestImageSpec *spec, vmsig_gpa_range ranges[static 2]) {
        if (spec->layout == GUEST_IMAGE_LAYOUT_FLAT || spec->ram_size <= 3 * GiB) {
                ranges[0] = (vmsig_gpa_range) { .gpa = 0, .size = spec->ram_size, .offset = 0 };
                return 1;
        }
        ranges[0] = (vmsig_gpa_range) { .gpa = 0, .size = 3 * GiB, .offset = 0 };
        ranges[1] = (vmsig_gpa_range) { .gpa = 4 * GiB, .size = spec->ram_size - 3 * GiB, .offset = 3 * GiB };
        return 2;
}

static uint64_t va_of(unsigned pml4, unsigned pdpt, unsigned pd, unsigned pt) {
        uint64_t va = (uint64_t) pml4 << 39 | (uint64_t) pdpt << 30 | (uint64_t) pd << 21 | (uint64_t) pt << 12;

        /* Canonical: bits 63..48 copy bit 47. */
        return va & (UINT64_C(1) << 47) ? va | UINT64_C(0xFFFF000000000000) : va;
}

/* The kernel-half indices: the wanted ones, moved past the self-reference
 * and each other. */
static void pick_indices(unsigned self_ref, unsigned ret[static 2 + N_OTHER]) {
        bool used[512] = {};

        used[self_ref] = true;
        for (size_t i = 0; i < 2 + N_OTHER; i++) {
                unsigned k = wanted_index[i];

                while (used[k])
                        k = k == 511 ? 256 : k + 1;
                used[k] = true;
                ret[i] = k;
        }
}

int guest_image_info(const GuestImageSpec *spec, GuestImageInfo *ret) {
        const Offsets *o = offsets_of(spec->build ?: 19041);
        unsigned idx[2 + N_OTHER];

        if (!o || spec->self_ref < 256 || spec->self_ref > 511)
                return -EINVAL;
        pick_indices(spec->self_ref, idx);
        *ret = (GuestImageInfo) {
                .pool_index = idx[0],
                .kernel_index = idx[1],
                .kernel_base = va_of(idx[1], KERNEL_PDPT, KERNEL_PD, 0),
                .eprocess_va = va_of(idx[0], POOL_PDPT, POOL_PD, POOL_PT) + (spec->eprocess & (PAGE - 1)),
                .pid_offset = o->pid,
                .links_offset = o->links,
                .name_offset = o->name,
        };
        ret->head_va = ret->kernel_base + HEAD_OFFSET;
        return 0;
}

/* --- collecting writes ---------------------------------------------------------- */

typedef struct Builder {
        const GuestImageSpec *spec;
        GuestImageInfo info;
        vmsig_gpa_range ranges[2];
        size_t n_ranges;
        uint64_t tables;
        GuestImageWrite *writes;
        size_t n_writes, n_allocated;
        int error; /* the first one */
} Builder;

static bool in_ram(const Builder *b, uint64_t gpa, uint64_t len) {
        for (size_t i = 0; i < b->n_ranges; i++)
                if (gpa >= b->ranges[i].gpa && len <= b->ranges[i].size &&
                    gpa - b->ranges[i].gpa <= b->ranges[i].size - len)
                        return true;
        return false;
}

static int push(Builder *b, uint64_t gpa, const void *data, size_t len) {
        if (!in_ram(b, gpa, len))
                return -ERANGE;
        if (b->n_writes == b->n_allocated) {
                size_t n = MAX(b->n_allocated * 2, (size_t) 32);
                GuestImageWrite *w = reallocarray(b->writes, n, sizeof *w);
                if (!w)
                        return -ENOMEM;
                b->writes = w;
                b->n_allocated = n;
        }
        uint8_t *copy = malloc(len);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, data, len);
        b->writes[b->n_writes++] = (GuestImageWrite) { .gpa = gpa, .len = len, .data = copy };
        return 0;
}

/* Emits data at gpa cut at 4 KiB page boundaries. Errors stick in b, so
 * the build code reads straight. */
static void emit(Builder *b, uint64_t gpa, const void *data, size_t len) {
        const uint8_t *p = data;

        while (len > 0 && b->error == 0) {
                size_t n = (size_t) MIN((uint64_t) len, PAGE - (gpa & (PAGE - 1)));

                b->error = push(b, gpa, p, n);
                gpa += n;
                p += n;
                len -= n;
        }
}

static void put_u64(uint8_t *buf, size_t offset, uint64_t v) {
        v = htole64(v);
        memcpy(buf + offset, &v, sizeof v);
}

/* A 512-entry table. */
typedef struct Table {
        uint8_t bytes[PAGE];
} Table;

static void table_set(Table *t, unsigned index, uint64_t entry) {
        put_u64(t->bytes, (size_t) index * 8, entry);
}

static uint64_t table_page(const Builder *b, unsigned which) {
        return b->tables + which * PAGE;
}

/* --- the parts ----------------------------------------------------------------- */

static void random_bytes(uint32_t *state, uint8_t *buf, size_t len) {
        uint32_t x = *state ?: 1;

        for (size_t i = 0; i < len; i++) {
                /* xorshift32 */
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf[i] = (uint8_t) (x >> 24);
        }
        *state = x;
}

static void build_firmware(Builder *b) {
        uint32_t x = b->spec->seed;
        Table page;

        for (uint64_t gpa = 0; gpa < MiB; gpa += PAGE) {
                if (b->spec->stub != GUEST_IMAGE_STUB_NONE && gpa == b->spec->stub_page)
                        continue;
                random_bytes(&x, page.bytes, PAGE);
                emit(b, gpa, page.bytes, PAGE);
        }
}

/* The kernel PML4 with its self-reference pointing at gpa. */
static void build_pml4(Builder *b, uint64_t gpa, const unsigned idx[static 2 + N_OTHER]) {
        Table t = {};

        table_set(&t, 0, table_page(b, T_USER_PDPT) | P_RW_USER);
        table_set(&t, b->spec->self_ref, gpa | P_RW_AD | NX);
        table_set(&t, idx[0], table_page(b, T_POOL_PDPT) | P_RW_AD);
        table_set(&t, idx[1], table_page(b, T_KERNEL_PDPT) | P_RW_AD);
        /* Flags as Windows leaves them vary; NX and plain rw both occur. */
        for (unsigned k = 0; k < N_OTHER; k++)
                table_set(&t, idx[2 + k], table_page(b, T_OTHER_PDPT + k) | P_RW | (k % 2 ? NX : 0));
        emit(b, gpa, t.bytes, PAGE);
}

static void build_tables(Builder *b) {
        const GuestImageSpec *s = b->spec;
        uint64_t eprocess_page = s->eprocess & ~(PAGE - 1);
        unsigned idx[2 + N_OTHER];
        Table t[GUEST_IMAGE_TABLE_PAGES] = {};

        pick_indices(s->self_ref, idx);
        build_pml4(b, s->dtb, idx);

        table_set(&t[T_POOL_PDPT], POOL_PDPT, table_page(b, T_POOL_PD) | P_RW_AD);
        table_set(&t[T_POOL_PD], POOL_PD, table_page(b, T_POOL_PT) | P_RW_AD);
        /* Two pages, for an EPROCESS that straddles a page boundary. */
        table_set(&t[T_POOL_PT], POOL_PT, eprocess_page | P_RW_AD | NX);
        table_set(&t[T_POOL_PT], POOL_PT + 1, (eprocess_page + PAGE) | P_RW_AD | NX);
        table_set(&t[T_KERNEL_PDPT], KERNEL_PDPT, table_page(b, T_KERNEL_PD) | P_RW_AD);
        table_set(&t[T_KERNEL_PD], KERNEL_PD, s->kernel_image | PS | P_RW_AD);
        /* The first 2 MiB identity-mapped, as the guest program that stands
         * in for the vCPU in QEMU needs to go on running on these tables;
         * accessed and dirty set, so that the CPU changes nothing. */
        table_set(&t[T_USER_PDPT], 0, table_page(b, T_USER_PD) | P_RW_USER);
        table_set(&t[T_USER_PD], 0, PS | P_RW_AD);
        for (unsigned i = 0; i < GUEST_IMAGE_TABLE_PAGES; i++)
                emit(b, table_page(b, i), t[i].bytes, PAGE);

        if (s->stub == GUEST_IMAGE_STUB_BOOT_LOADER)
                build_pml4(b, s->boot_dtb, idx);
}

static void build_lookalike(Builder *b) {
        const GuestImageSpec *s = b->spec;
        unsigned idx[2 + N_OTHER];
        Table t = {};

        pick_indices(s->self_ref, idx);
        /* The self-reference and four more: one short of a PML4. */
        table_set(&t, s->self_ref, s->lookalike | P_RW_AD | NX);
        for (unsigned k = 0; k < 4; k++)
                table_set(&t, idx[k], table_page(b, k) | P_RW_AD);
        emit(b, s->lookalike, t.bytes, PAGE);
}

/* The interesting bytes of an EPROCESS (up to the end of its name). */
typedef struct Eprocess {
        uint8_t bytes[0x600];
        size_t len;
} Eprocess;

static void eprocess_make(const Builder *b, Eprocess *e, uint64_t dtb, uint64_t pid, uint64_t flink,
                          uint64_t blink) {
        const GuestImageInfo *i = &b->info;

        memset(e, 0, sizeof *e);
        e->len = i->name_offset + 16;
        e->bytes[0] = 3; /* Pcb.Header.Type: ProcessObject */
        put_u64(e->bytes, 0x28, dtb);
        put_u64(e->bytes, i->pid_offset, pid);
        put_u64(e->bytes, i->links_offset, flink);
        put_u64(e->bytes, i->links_offset + 8, blink);
        memcpy(e->bytes + i->name_offset, "System", 6);
}

static void build_eprocess(Builder *b) {
        const GuestImageSpec *s = b->spec;
        Eprocess e;

        eprocess_make(b, &e, s->dtb, 4, b->info.head_va, b->info.head_va);
        emit(b, s->eprocess, e.bytes, e.len);
}

/* PsActiveProcessHead, with System as the only process. */
static void build_head(Builder *b) {
        uint8_t head[16];
        uint64_t links = b->info.eprocess_va + b->info.links_offset;

        put_u64(head, 0, links);
        put_u64(head, 8, links);
        emit(b, b->spec->kernel_image + HEAD_OFFSET, head, sizeof head);
}

static void build_decoys(Builder *b) {
        const GuestImageSpec *s = b->spec;
        uint64_t head = b->info.head_va, page = s->decoys;
        Eprocess e;

        eprocess_make(b, &e, 0, 0, 0, 0);
        emit(b, page + DECOY_OFFSET, e.bytes, e.len);
        page += PAGE;

        eprocess_make(b, &e, 0, 4, 0, 0);
        emit(b, page + DECOY_OFFSET, e.bytes, e.len);
        page += PAGE;

        eprocess_make(b, &e, page, 4, head, head);
        emit(b, page + DECOY_OFFSET, e.bytes, e.len);
        page += PAGE;

        eprocess_make(b, &e, s->dtb, 4, head, head);
        emit(b, page + DECOY_OFFSET, e.bytes, e.len);
        page += PAGE;

        emit(b, page + DECOY_OFFSET + 4, e.bytes, e.len);
}

static void build_stub(Builder *b) {
        const GuestImageSpec *s = b->spec;
        uint8_t stub[0xA8] = {};
        uint64_t dtb = s->stub == GUEST_IMAGE_STUB_UNALIGNED   ? s->dtb + 0x10
                     : s->stub == GUEST_IMAGE_STUB_BOOT_LOADER ? s->boot_dtb
                                                               : s->dtb;

        /* jmp, with the byte the mask ignores set to something */
        put_u64(stub, 0, UINT64_C(0x00000001000600E9) | UINT64_C(0x4C00));
        put_u64(stub, 0x70, b->info.kernel_base);
        put_u64(stub, 0xA0, dtb);
        emit(b, s->stub_page, stub, sizeof stub);
}

/* The CR3 first and the magic last: the program loads the CR3 as soon as
 * it sees the magic. */
static void build_boot(Builder *b) {
        uint8_t cr3[8], magic[8];

        put_u64(cr3, 0, b->spec->dtb);
        put_u64(magic, 0, VMSIG_STUB_MAILBOX_MAGIC);
        emit(b, VMSIG_STUB_MAILBOX_CR3_GPA, cr3, sizeof cr3);
        emit(b, VMSIG_STUB_MAILBOX_MAGIC_GPA, magic, sizeof magic);
}

static int spec_check(const GuestImageSpec *s) {
        uint64_t pages = s->dtb | s->tables | s->stub_page | s->boot_dtb | s->lookalike | s->decoys;

        if (s->ram_size == 0 || (pages & (PAGE - 1)) || (s->kernel_image & (LARGE_PAGE - 1)) ||
            (s->eprocess & 7))
                return -EINVAL;
        if (s->self_ref < 256 || s->self_ref > 511 || (s->build != 0 && !offsets_of(s->build)))
                return -EINVAL;
        /* The EPROCESS and the stub need the tables; the boot loader's
         * table copies the kernel's. */
        if (s->dtb == 0 && (s->build != 0 || s->stub != GUEST_IMAGE_STUB_NONE))
                return -EINVAL;
        if (s->stub == GUEST_IMAGE_STUB_BOOT_LOADER && s->boot_dtb == 0)
                return -EINVAL;
        if (s->boot && s->dtb == 0)
                return -EINVAL;
        return 0;
}

static void build_all(Builder *b) {
        const GuestImageSpec *s = b->spec;

        if (s->firmware)
                build_firmware(b);
        if (s->dtb != 0) {
                build_tables(b);
                build_head(b);
        }
        if (s->lookalike != 0)
                build_lookalike(b);
        if (s->decoys != 0)
                build_decoys(b);
        if (s->build != 0)
                build_eprocess(b);
        if (s->stub != GUEST_IMAGE_STUB_NONE)
                build_stub(b);
        if (s->boot)
                build_boot(b);
}

void guest_image_writes_free(GuestImageWrite *w, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(w[i].data);
        free(w);
}

int guest_image_build(const GuestImageSpec *spec, GuestImageWrite **ret, size_t *ret_n) {
        Builder b = { .spec = spec };
        int r;

        r = spec_check(spec);
        if (r < 0)
                return r;
        r = guest_image_info(spec, &b.info);
        if (r < 0)
                return r;
        b.n_ranges = guest_image_ranges(spec, b.ranges);
        b.tables = spec->tables ?: spec->dtb + PAGE;

        build_all(&b);
        if (b.error < 0) {
                guest_image_writes_free(b.writes, b.n_writes);
                return b.error;
        }
        *ret = b.writes;
        *ret_n = b.n_writes;
        return 0;
}

/* --- the memfd ------------------------------------------------------------------- */

int guest_image_offset(const GuestImage *img, uint64_t gpa, uint64_t *ret) {
        for (size_t i = 0; i < img->n_ranges; i++) {
                const vmsig_gpa_range *r = &img->ranges[i];

                if (gpa >= r->gpa && gpa - r->gpa < r->size) {
                        *ret = r->offset + (gpa - r->gpa);
                        return 0;
                }
        }
        return -ERANGE;
}

int guest_image_apply(const GuestImage *img, const GuestImageWrite *w, size_t n) {
        for (size_t i = 0; i < n; i++) {
                uint64_t offset;
                int r;

                /* A write never crosses a page, so never a range either. */
                r = guest_image_offset(img, w[i].gpa, &offset);
                if (r < 0)
                        return r;
                if (pwrite(img->fd, w[i].data, w[i].len, (off_t) offset) != (ssize_t) w[i].len)
                        return errno > 0 ? -errno : -EIO;
        }
        return 0;
}

void guest_image_done(GuestImage *img) {
        img->fd = safe_close(img->fd);
        img->ro_fd = safe_close(img->ro_fd);
}

static int image_open(GuestImage *img) {
        char path[64];

        img->fd = memfd_create("guest-image", MFD_CLOEXEC);
        if (img->fd < 0)
                return -errno;
        /* Sparse: only the written pages take memory. */
        if (ftruncate(img->fd, (off_t) img->ram_size) < 0)
                return -errno;
        snprintf(path, sizeof path, "/proc/self/fd/%d", img->fd);
        img->ro_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (img->ro_fd < 0)
                return -errno;
        return 0;
}

/* The same random MiB over and over: only the first differs from the
 * firmware bytes, and that is overwritten by them anyway. */
static int image_populate(const GuestImage *img, uint32_t seed) {
        _cleanup_free_ uint8_t *buf = malloc(MiB);
        uint32_t x = seed ^ 0x5EED;

        if (!buf)
                return -ENOMEM;
        random_bytes(&x, buf, MiB);
        for (uint64_t offset = 0; offset < img->ram_size; offset += MiB) {
                size_t n = (size_t) MIN(MiB, img->ram_size - offset);

                if (pwrite(img->fd, buf, n, (off_t) offset) != (ssize_t) n)
                        return errno > 0 ? -errno : -EIO;
        }
        return 0;
}

int guest_image_create(const GuestImageSpec *spec, GuestImage *ret) {
        GuestImage img = { .fd = -1, .ro_fd = -1, .ram_size = spec->ram_size };
        GuestImageWrite *w = NULL;
        size_t n = 0;
        int r;

        img.n_ranges = guest_image_ranges(spec, img.ranges);
        r = guest_image_build(spec, &w, &n);
        if (r < 0)
                return r;
        r = image_open(&img);
        if (r >= 0 && spec->populate)
                r = image_populate(&img, spec->seed);
        if (r >= 0)
                r = guest_image_apply(&img, w, n);
        guest_image_writes_free(w, n);
        if (r < 0) {
                guest_image_done(&img);
                return r;
        }
        *ret = img;
        return 0;
}
