/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * detect-linux: confirming the address-space root of an x86-64 Linux guest,
 * the Linux half of the memctx bootstrap. The hypervisor tells the vCPU's
 * CR3 and paging mode; what is left is to make sure that CR3 leads to a
 * running kernel, to find the kernel's root next to it when page-table
 * isolation (PTI) put the user root in CR3, and to prefer init_mm's root,
 * which lives as long as the kernel, over the root of whatever process
 * happened to run. No D-Bus, no event loop: everything is read with
 * pread(2) from the RAM fd of a guest memory (see detect.h for why never
 * through a mapping), in steps of a bounded number of bytes.
 *
 * Nothing is assumed about addresses: with KASLR and RANDOMIZE_MEMORY the
 * kernel image and the direct map move at every boot. What stays is that
 * the kernel image is mapped somewhere in [0xffffffff80000000,
 * 0xffffffffc0000000) (__START_KERNEL_map and KERNEL_IMAGE_SIZE: PML4E
 * 511, with 5 levels PML5E 511 -> PML4E 511, then PDPTE 510; mostly 2 MiB
 * pages) and holds linux_banner in its .rodata, "Linux version <release>
 * (<builder>) ...". Modules and the fixmap (PDPTE 511) are not searched:
 * no banner there, and a 4-level walk of Debian's 5-level tables reaches
 * the first 4 KiB of each kernel page through PDPTE 511, banner included
 * (.rodata starts a 2 MiB page, the banner at +0x1A0), and must not pass.
 *
 * The banner: at some VA of that range that is mapped (present entries
 * all the way, every table and the page in RAM), the 14 bytes "Linux version ",
 * a release of 1 to 64 characters that starts with a digit and has only
 * letters, digits and "._+~-", then " (". The search walks the present
 * mappings there in VA order, reading each page at most once per root
 * tried (256 KiB at a time at most), and takes the first such text; it may
 * straddle pages that are contiguous in VA and GPA. .rodata comes before
 * .data and .bss, so the kernel log in .bss, which quotes the banner too,
 * is not taken instead. A root under which nothing of that range is
 * mapped (firmware, the kernel's decompressor: identity maps only) has no
 * banner.
 *
 * The roots tried, CR3's page (bits 12..51) being "the CR3 root":
 *  - if CR3 has bit 12 set, first the 8 KiB-aligned page below it (PTI
 *    keeps a kernel root and its user root + 0x1000 together): only if it
 *    has more present kernel-half entries (256..511) than the CR3 root,
 *    since a user root maps little of the kernel half (the entry text, the
 *    CPU entry area) and the kernel root all of it, and only if the banner
 *    is found under it. Then result.pti is set;
 *  - else, or if that failed, the CR3 root itself, which must be RAM.
 * -ENOENT if neither has the banner.
 *
 * init_mm's root (swapper_pg_dir, init_top_pgt) is in the kernel image's
 * .data. While the banner is searched, and after it until the end of the
 * image range, every 4 KiB page mapped there is compared with the root
 * the banner was found under: its kernel half must be the same entry for
 * entry (accessed and dirty bits aside), except at most one entry present
 * only in the root (a process's LDT mapping under PTI), and with PTI it
 * must be 8 KiB-aligned. Every process's root copies the kernel half of
 * init_mm's, so this finds it from any process's CR3; the first such page
 * in VA order wins. If none is found the root tried is published.
 *
 * Bounds: a root tried costs at most 1 + 2 + 1 + 512 table reads (the
 * root, PML4 and PDPT, the PD, the PTs) and VMSIG_LINUX_SEARCH_LIMIT bytes
 * of pages, however the tables point (at themselves, at each other,
 * outside RAM: a table outside RAM counts as not present, a large page is
 * searched where it is RAM), and a re-check of the result. Two roots at
 * most are tried. On Debian's 6.1 kernel a probe reads 23-28 MB (the
 * image up to init_mm's root in .data) in 2-4 ms.
 *
 * The guest may run meanwhile. The result is only as good as the moment it
 * was taken: a process's root is freed when it exits, and a reset boots a
 * new kernel elsewhere. It passed vmsig_linux_check() when it was
 * returned; re-check a published root the same way and probe again when
 * it fails.
 */

#include <stdbool.h>
#include <stdint.h>

#include "detect.h"

/* The release as uname -r gives it: at most __NEW_UTS_LEN (64) bytes. */
#define VMSIG_LINUX_RELEASE_MAX 64
/* The least budget a step accepts: every table read and some search fit. */
#define VMSIG_LINUX_MIN_BUDGET (UINT64_C(64) << 10)
/* Bytes of pages searched under one root at most. A Debian kernel's text
 * and .rodata are about 20 MiB, the whole image with .data and .bss about
 * 25 MiB. */
#define VMSIG_LINUX_SEARCH_LIMIT (UINT64_C(256) << 20)

typedef struct vmsig_linux_result {
        /* GPA of the kernel's top-level table (PGD: PML4 or PML5), page-aligned: init_mm's if found, else
         * cr3_root. What to publish. */
        uint64_t root;
        uint64_t cr3_root;       /* the root CR3 led to: CR3's page or, with pti, the kernel root below it */
        unsigned levels;         /* 4 or 5 */
        bool pti;                /* CR3 held the user root; cr3_root is the kernel one */
        bool init_mm;            /* root is init_mm's, found in the kernel image */
        unsigned kernel_entries; /* entries of cr3_root's kernel half (256..511) present and leading into RAM */
        uint64_t banner_va, banner_gpa;
        char release[VMSIG_LINUX_RELEASE_MAX + 1]; /* "6.1.0-57-cloud-amd64": the word after "Linux version " */
} vmsig_linux_result;

typedef struct vmsig_linux_probe_stats {
        uint64_t bytes_read; /* tables and pages */
        uint64_t searched;   /* bytes of pages searched, over all roots tried */
        unsigned roots;      /* roots whose search started */
        unsigned steps;
} vmsig_linux_probe_stats;

typedef struct vmsig_linux_probe vmsig_linux_probe;

/* Starts a probe of the root cr3 (a CR3 value: the PCID and flag bits are
 * ignored) with levels (4 or 5, see vmsig_vcpu_paging_levels(); else
 * -EINVAL). Copies the ranges; the fd must stay open until the probe is
 * freed. Nothing is read yet. */
int vmsig_linux_probe_new(const vmsig_guest_mem *m, uint64_t cr3, unsigned levels, vmsig_linux_probe **ret);
/* Reads about budget_bytes (at least VMSIG_LINUX_MIN_BUDGET, else
 * -EINVAL; a table counts 4 KiB; starting on a root, its top tables, four
 * at most, may go past the budget) and returns
 *   1        found: *ret filled; every later call returns the same,
 *   0        not yet, call again,
 *   -ENOENT  no banner in the kernel half under the roots tried (CR3 not
 *            RAM, nothing mapped there, no banner); so do later calls,
 *   other    a read failed; so do later calls.
 * *ret is only written when 1 is returned. */
int vmsig_linux_probe_step(vmsig_linux_probe *p, uint64_t budget_bytes, vmsig_linux_result *ret);
void vmsig_linux_probe_get_stats(const vmsig_linux_probe *p, vmsig_linux_probe_stats *ret);
vmsig_linux_probe *vmsig_linux_probe_free(vmsig_linux_probe *p);

/* The whole probe in one call, for tools and tests: steps of
 * VMSIG_DETECT_SCAN_BUDGET_DEFAULT until done. Same returns as a step,
 * never 0. */
int vmsig_linux_probe_all(const vmsig_guest_mem *m, uint64_t cr3, unsigned levels, vmsig_linux_result *ret);

/* Cheap re-check of a published root (two small reads and a page walk):
 * 1 if the banner with r->release is still at r->banner_gpa and r->banner_va
 * still translates to it under r->root, 0 if not (also when a table or the
 * banner left RAM), a negative errno if reading failed; -EINVAL for a
 * result no probe gives (levels, release). */
int vmsig_linux_check(const vmsig_guest_mem *m, const vmsig_linux_result *r);
