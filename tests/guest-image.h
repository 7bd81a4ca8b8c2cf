/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A synthetic Windows-x64-like guest, for the address-space bootstrap
 * tests: what the detector looks for and the traps it must not fall into,
 * produced either as a list of (GPA, bytes) writes (to replay into a live
 * stub VM over MemWrite: each write is at most GUEST_IMAGE_MAX_WRITE bytes
 * and never crosses a 4 KiB page) or as a sparse memfd holding them (a
 * "5 GiB" guest costs a few pages). Everything not written is zero.
 *
 * What a spec can place (every GPA must be RAM, see the layouts below):
 *
 *  page tables  The kernel PML4 at dtb with its self-reference at
 *               self_ref, a user PDPT at index 0 (identity-mapping the first
 *               2 MiB with a 2 MiB page) and seven more kernel-half
 *               entries (pool at 0x100, kernel image at 0x1F0, five more;
 *               an index taken by self_ref moves to the next free one), all
 *               pointing at table pages from `tables` on. The pool maps the
 *               EPROCESS page and the next one with 4 KiB PTEs, the kernel
 *               image a 2 MiB page at kernel_image holding
 *               PsActiveProcessHead.
 *  EPROCESS     The System process (PID 4, "System", DirectoryTableBase =
 *               dtb) at eprocess in the layout of `build`, alone in the
 *               process list with PsActiveProcessHead.
 *  low stub     At stub_page: correct, with an unaligned DTB, or pointing at
 *               a second, valid PML4 at boot_dtb (the boot loader's: the
 *               kernel's entries with its own self-reference).
 *  look-alike   At lookalike: a PML4 with a self-reference but only 5 valid
 *               kernel entries.
 *  decoys       At decoys, GUEST_IMAGE_N_DECOYS pages, each with a "System"
 *               name and less than a real EPROCESS around it: the bare
 *               name; with PID 4; with PID 4, kernel links and a DTB that is
 *               no PML4; a stale copy of the real one (its neighbours point
 *               elsewhere); that copy again 4 bytes off alignment.
 *  firmware     Pseudo-random bytes over [0, 1 MiB) except the stub page,
 *               and the mailbox page, written first so the structures above
 *               win.
 *  boot         The kernel "starts": the mailbox of the guest program that
 *               stands in for the vCPU (the stub's, see stub.h, or the
 *               program QEMU runs in the tests) gets CR3 = dtb, then its
 *               magic, as the last writes of all.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memctx.h"

#define GUEST_IMAGE_MAX_WRITE 4096
#define GUEST_IMAGE_N_DECOYS 5
/* Pages from spec->tables on (PDPTs, PDs, PTs). */
#define GUEST_IMAGE_TABLE_PAGES 12

typedef enum GuestImageLayout {
        /* As QEMU lays out PC RAM: GPA [0, 3G) at file offset 0 and, for
         * more, [4G, 4G + rest) at offset 3G. */
        GUEST_IMAGE_LAYOUT_QEMU,
        /* GPA == file offset, as the stub VM has it. */
        GUEST_IMAGE_LAYOUT_FLAT,
} GuestImageLayout;

typedef enum GuestImageStub {
        GUEST_IMAGE_STUB_NONE,
        GUEST_IMAGE_STUB_VALID,       /* DTB = dtb */
        GUEST_IMAGE_STUB_UNALIGNED,   /* DTB = dtb + 0x10 */
        GUEST_IMAGE_STUB_BOOT_LOADER, /* DTB = boot_dtb */
} GuestImageStub;

typedef struct GuestImageSpec {
        uint64_t ram_size;
        GuestImageLayout layout;
        uint64_t dtb;          /* the kernel PML4; 0: no page tables */
        unsigned self_ref;     /* 256..511 */
        uint64_t tables;       /* 0: the pages right after dtb */
        uint64_t kernel_image; /* 2 MiB-aligned */
        unsigned build;        /* 7601, 18362 or 19041; 0: no EPROCESS */
        uint64_t eprocess;     /* 8-byte aligned */
        GuestImageStub stub;
        uint64_t stub_page;
        uint64_t boot_dtb;  /* GUEST_IMAGE_STUB_BOOT_LOADER only */
        uint64_t lookalike; /* 0: none */
        uint64_t decoys;    /* 0: none */
        bool firmware;
        bool boot;
        /* guest_image_create() only: pseudo-random bytes in every page of
         * RAM first, as in a guest that touched all its memory (the file
         * has no holes then). */
        bool populate;
        uint32_t seed; /* of the firmware and populate bytes */
} GuestImageSpec;

/* A 64 MiB guest of build 19041 with self-reference 0x1ED, DTB 0x1AA000, the
 * EPROCESS at 0x3A5E080 and a correct stub at 0x1000. No boot loader table,
 * look-alike, decoys or firmware. */
void guest_image_spec_init(GuestImageSpec *spec);

/* What the image maps where, as built from a spec. */
typedef struct GuestImageInfo {
        unsigned pool_index;   /* PML4 index of the pool */
        unsigned kernel_index; /* PML4 index of the kernel image */
        uint64_t kernel_base;  /* VA of the kernel image; the stub's hint */
        uint64_t head_va;      /* PsActiveProcessHead */
        uint64_t eprocess_va;
        uint16_t pid_offset, links_offset, name_offset; /* of the build (19041's if none) */
} GuestImageInfo;

int guest_image_info(const GuestImageSpec *spec, GuestImageInfo *ret);

/* The GPA -> file offset map of a spec's layout; returns how many. */
size_t guest_image_ranges(const GuestImageSpec *spec, vmsig_gpa_range ranges[static 2]);

typedef struct GuestImageWrite {
        uint64_t gpa;
        size_t len;
        uint8_t *data;
} GuestImageWrite;

/* The writes that make the image, to be applied in order (later ones win
 * where they overlap) onto zeroed RAM. -EINVAL for a bad spec, -ERANGE if
 * something would lie outside RAM. */
int guest_image_build(const GuestImageSpec *spec, GuestImageWrite **ret, size_t *ret_n);
void guest_image_writes_free(GuestImageWrite *w, size_t n);

/* The image in a sparse memfd. */
typedef struct GuestImage {
        int fd;    /* read-write */
        int ro_fd; /* read-only, as the daemon holds it */
        uint64_t ram_size;
        vmsig_gpa_range ranges[2];
        size_t n_ranges;
} GuestImage;

int guest_image_create(const GuestImageSpec *spec, GuestImage *ret);
void guest_image_done(GuestImage *img);
/* Writes into the image, as guest_image_build() returns them. */
int guest_image_apply(const GuestImage *img, const GuestImageWrite *w, size_t n);
/* The file offset of a GPA, or -ERANGE. */
int guest_image_offset(const GuestImage *img, uint64_t gpa, uint64_t *ret);
