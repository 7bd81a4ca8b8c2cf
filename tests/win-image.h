/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * win-image: Windows-x64-like guest RAM for the detector tests, written
 * from the specification of a synthetic Windows guest alone and on purpose
 * independently of tests/guest-image.c, so that the two cannot share a
 * misreading of it. No GLib: errors come back as negative errnos.
 *
 * It writes into a RAM file through its own GPA -> file offset map (on
 * q35 with 2.75 GiB or more, RAM above 4 GiB sits at file offset GPA -
 * 2 GiB), so it works on the RAM file of a running QEMU whose vCPU then runs
 * on the tables (tests/synthetic-vcpu.h): every root it writes identity-maps
 * the first 2 MiB through entry 0.
 *
 * A kernel is a PML4 at a chosen DTB with
 *  - entry 0 -> PDPT -> PD whose entry 0 maps 2 MiB at 0 (0x067, 0x067, 0xE3),
 *  - exactly kernel_entries present kernel-half entries besides the
 *    self-reference (page | 0x063, NX clear): those that map the structures
 *    below, and empty PDPTs for the rest,
 *  - the self-reference at self_ref (DTB | 0x063 | NX),
 *  - 4 KiB mappings (PDPT, PD, PT pages from the table pool, leaf PTEs
 *    0x063 | NX) of the System EPROCESS, PsActiveProcessHead (a LIST_ENTRY in
 *    the kernel's data) and a second process ("Registry", or "smss.exe" on
 *    7601) whose ActiveProcessLinks make a ring of three that points back:
 *    head -> System -> other -> head,
 *  - the other process's own root in the pool: a copy of the PML4 with its
 *    own self-reference, as every process has (a CR3 a running kernel may
 *    well hold).
 * Without an EPROCESS it is a root alone: a boot loader's tables, or with
 * fewer kernel entries, a look-alike.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct win_range {
        uint64_t gpa;
        uint64_t size;
        uint64_t offset; /* in the RAM file */
} win_range;

/* The RAM file: the ranges must describe it; nothing checks its size. */
typedef struct win_image {
        int fd; /* read-write */
        const win_range *ranges;
        size_t n_ranges;
} win_image;

/* QEMU q35's layout for a RAM of ram_mib MiB: all of it from GPA 0 below
 * 2.75 GiB, else 2 GiB at 0 and the rest from 4 GiB on. Returns the number
 * of ranges (1 or 2) filled into ret. Check it against `info mtree -f`. */
size_t win_ranges_q35(uint64_t ram_mib, win_range ret[static 2]);

/* The file offset of [gpa, gpa + len) if one range holds it all, else
 * -EFAULT. */
int win_image_offset(const win_image *img, uint64_t gpa, uint64_t len, uint64_t *ret);
/* Writes bytes at a GPA, across ranges if the GPAs are contiguous RAM. */
int win_image_write(const win_image *img, uint64_t gpa, const void *buf, size_t len);
int win_image_write_u64(const win_image *img, uint64_t gpa, uint64_t value);
int win_image_read(const win_image *img, uint64_t gpa, void *buf, size_t len);

/* The EPROCESS offsets of a build: 7601, 18362 or 19041 (and later). */
typedef struct win_layout {
        unsigned build;
        uint16_t pid, links, name;
        uint8_t header_size; /* the dispatcher header's Size byte at +0x02 */
} win_layout;

/* NULL for an unknown build; 0 means 19041. */
const win_layout *win_layout_for_build(unsigned build);

#define WIN_SELF_REF_LEGACY 0x1EDu /* before Windows 10 1607 */
#define WIN_EPROCESS_DTB 0x28u
#define WIN_SYSTEM_PID 4u

/* The x64 low stub (PROCESSOR_START_BLOCK): the jmp, the kernel entry hint
 * at +0x70 and the DTB at +0xA0, in one page below 1 MiB (never page 0).
 * 0x13000 is clear of what SeaBIOS and the synthetic vCPU use. */
#define WIN_STUB_GPA UINT64_C(0x13000)
#define WIN_KERNEL_HINT UINT64_C(0xFFFFF8034A21C010)
int win_stub_write(const win_image *img, uint64_t gpa, uint64_t dtb, uint64_t kernel_hint);

/* Pages of the table pool a kernel may use, from win_kernel.tables on. */
#define WIN_KERNEL_TABLE_PAGES 32u

typedef struct win_kernel {
        unsigned build;          /* 7601, 18362, 19041; 0: 19041 */
        uint32_t seed;           /* picks the filler entries' indices */
        uint64_t dtb;            /* GPA of the PML4 */
        uint64_t tables;         /* GPA of WIN_KERNEL_TABLE_PAGES free pages */
        unsigned self_ref;       /* 0x100..0x1FF */
        unsigned kernel_entries; /* kernel-half entries besides the self-reference */
        /* 0 for eprocess_gpa: a root alone. A VA's offset in its page must be
         * its GPA's; a structure spanning pages maps contiguous pages. */
        uint64_t eprocess_gpa, eprocess_va; /* System, 8-aligned */
        uint64_t head_gpa, head_va;         /* PsActiveProcessHead */
        uint64_t other_gpa, other_va;       /* the second process's EPROCESS */
} win_kernel;

/* A kernel with random (by seed) VAs and self-reference index (0x1ED for
 * 7601), 8 kernel entries, the System EPROCESS at data + 0x40, the list
 * head in data's second page and the other process at its third page +
 * 0x40: data names 3 free pages. */
void win_kernel_init(win_kernel *k, unsigned build, uint64_t dtb, uint64_t tables, uint64_t data, uint32_t seed);
/* A root alone: a loader's (6 or more entries) or a look-alike. */
void win_root_init(win_kernel *k, uint64_t dtb, uint64_t tables, unsigned self_ref, unsigned kernel_entries,
                   uint32_t seed);

/* What a correct detector must find. */
typedef struct win_expect {
        uint64_t dtb; /* 0: nothing to find */
        uint64_t eprocess_gpa, eprocess_va;
        unsigned build, self_ref;
        uint64_t other_dtb; /* the other process's root: same kernel half, another page */
        uint64_t stub_dtb;  /* what the low stub holds (a loader's root), 0 if no stub */
        /* A previous boot's System, intact: RAM alone cannot tell it from the
         * live one, the vCPU's CR3 can. 0 if none. */
        uint64_t stale_dtb, stale_eprocess_gpa;
} win_expect;

/* Writes the tables and structures; ret may be NULL. -EINVAL for a bad
 * description, -ENOSPC if the pool is too small, -EFAULT for a GPA that is
 * not RAM, another negative errno if writing failed. */
int win_kernel_write(const win_image *img, const win_kernel *k, win_expect *ret);

/* count decoys in [gpa, gpa + size), one per slot of size / count bytes
 * (at least 8 KiB): "System" names alone (8-aligned and not), "SystemRoot",
 * and names inside EPROCESS-like structures of each layout with pid 4 whose
 * links, DTB or neighbours are wrong. With a kernel (may be NULL), some
 * decoys carry its DTB and links to its real neighbours, which point back
 * at the live System and not at them. */
int win_noise_write(const win_image *img, uint64_t gpa, uint64_t size, unsigned count, const win_kernel *k,
                    uint32_t seed);

typedef enum win_scenario {
        WIN_SCENARIO_PLAIN,      /* a low stub with a loader's root, the kernel, its EPROCESS */
        WIN_SCENARIO_STALE_BOOT, /* boot 2 over the intact remains of boot 1, at lower GPAs */
        WIN_SCENARIO_STALE_COPY, /* a copy of the System EPROCESS below the live one */
        WIN_SCENARIO_LOOKALIKE,  /* no stub; a root with 5 kernel entries + a self-reference first */
        WIN_SCENARIO_HIGH_ROOT,  /* no stub; the root above 16 MiB, self-reference != 0x1ED */
        WIN_SCENARIO_ABOVE_4G,   /* the EPROCESS above 4 GiB (q35, 3 GiB); tables below 2 GiB */
        WIN_SCENARIO_SYSTEM_STRINGS, /* decoy "System" names below the kernel */
        WIN_SCENARIO_NOISE_ONLY,     /* decoys and nothing else: nothing to find */
        WIN_SCENARIO_NAME_FAR,       /* 19041: the name 0x5A8 on, across a page and a 4 MiB boundary */
        _WIN_SCENARIO_MAX,
} win_scenario;

const char *win_scenario_to_string(win_scenario s);
/* The RAM a scenario needs, in MiB, for win_ranges_q35(): 128 or 3072. */
uint64_t win_scenario_ram_mib(win_scenario s);
/* Writes a whole scenario into RAM that is zero (or holds what the
 * firmware and the synthetic vCPU left): the kernel's GPAs, the other
 * process's and the loader's avoid [0, 2 MiB) but for the stub and
 * 0x1AA000 (the specification's example DTB). build 0 is 19041;
 * NAME_FAR is always 19041; HIGH_ROOT refuses 7601 (-EINVAL), whose
 * self-reference is 0x1ED. */
int win_scenario_write(const win_image *img, win_scenario s, unsigned build, uint32_t seed, win_expect *ret);
/* The two boots of WIN_SCENARIO_STALE_BOOT one at a time, for a vCPU that
 * runs boot 1, is reset and then runs boot 2 (boot 2's expectation names
 * boot 1's System as stale). */
int win_stale_boot_write(const win_image *img, unsigned boot, unsigned build, uint32_t seed, win_expect *ret);
