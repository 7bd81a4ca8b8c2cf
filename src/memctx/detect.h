/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * detect: finding the address-space root (the System DTB) of a Windows x64
 * guest in its RAM, the perception half of the memctx bootstrap. No D-Bus,
 * no event loop: everything works on a read-only RAM fd and the GPA -> file
 * offset map, and reads with pread(2), never through a mapping. A read fault
 * on a shared mapping of a sparse memfd allocates the page (a scan would
 * fill the guest's holes), and a file that shrinks under a mapping raises
 * SIGBUS instead of returning an error.
 *
 * Three ways in, cheapest first:
 *
 *  low stub    The x64 low stub (PROCESSOR_START_BLOCK) the firmware-facing
 *              part of Windows leaves in a page below 1 MiB (page 0 is
 *              skipped): the first qword masked with 0xFFFFFFFFFFFF00FF is
 *              0x00000001000600E9 (a jmp), the qword at +0x70 is a kernel
 *              entry hint (bits 63..43 set, bits 1..0 clear) and the one at
 *              +0xA0 a page-aligned DTB, which must pass the PML4 check.
 *              Under a millisecond: 255 reads of 168 bytes.
 *
 *  PML4 scan   The first page-aligned PML4 in the first 16 MiB of GPA space
 *              that passes the PML4 check. A few ms.
 *
 *  EPROCESS    The System process itself, found by a chunked scan of all of
 *              RAM for its ImageFileName. This is the authority: the low
 *              stub may still hold the boot loader's DTB, and the PML4 scan
 *              takes whatever table comes first.
 *
 * The PML4 check (vmsig_detect_pml4_check): the page lies in RAM and
 *  - has exactly one self-reference entry (low 12 bits exactly 0x063, PFN
 *    = the page itself), in the kernel half (index 256..511): 0x1ED before
 *    Windows 10 1607, random since; bits 52..63 (NX, software bits) are
 *    ignored,
 *  - has at least 6 valid kernel-half entries besides the self-reference
 *    (present, PS clear, PFN in RAM): a look-alike with 5 and a
 *    self-reference fails,
 *  - has at least 128 zero entries in each half (a PML4 is sparse, data
 *    is not),
 *  - every present entry names a page inside RAM.
 *
 * The System EPROCESS: at an 8-byte-aligned GPA, ImageFileName (15 bytes)
 * is "System" followed by 9 NULs. For each known layout (build: pid / links
 * / name offsets, 7601: 0x180/0x188/0x2E0, 18362: 0x2E8/0x2F0/0x450, 19041
 * and later: 0x440/0x448/0x5A8) the structure around it, assumed physically
 * contiguous from its start to the end of the name, must have
 *  - UniqueProcessId == 4,
 *  - ActiveProcessLinks holding two 8-byte-aligned kernel-half canonical
 *    pointers (Flink, Blink), neither pointing back at the entry itself,
 *  - DirectoryTableBase (+0x28) page-aligned and passing the PML4 check,
 *  - and, through that DTB, Flink->Blink == Blink->Flink == the VA of its
 *    own ActiveProcessLinks, which translates back to the GPA where it was
 *    found. A stale copy of the System EPROCESS elsewhere in RAM fails
 *    here: its neighbours point at the live one.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest-memory.h"

/* The low stub lies in [4 KiB, 1 MiB) of GPA space. */
#define VMSIG_DETECT_STUB_LIMIT (UINT64_C(1) << 20)
/* The PML4 scan covers [0, 16 MiB) of GPA space. */
#define VMSIG_DETECT_PML4_SCAN_LIMIT (UINT64_C(16) << 20)
/* The least budget a scan step accepts: a look for data, some bytes of
 * search and the verification of a candidate always fit. */
#define VMSIG_DETECT_SCAN_MIN_BUDGET (UINT64_C(64) << 10)
/* A budget for one step of an event loop: about a millisecond of reading
 * and searching on current hardware, 256 steps for 1 GiB of RAM the guest
 * touched (holes cost next to nothing). */
#define VMSIG_DETECT_SCAN_BUDGET_DEFAULT (UINT64_C(4) << 20)

typedef enum vmsig_detect_method {
        VMSIG_DETECT_NONE,
        VMSIG_DETECT_LOW_STUB,
        VMSIG_DETECT_PML4_SCAN,
        VMSIG_DETECT_EPROCESS,
        _VMSIG_DETECT_METHOD_MAX,
} vmsig_detect_method;

/* "none", "low-stub", "pml4-scan", "eprocess"; NULL if out of range. */
const char *vmsig_detect_method_to_string(vmsig_detect_method m);

typedef struct vmsig_detect_result {
        vmsig_detect_method method;
        uint64_t dtb;         /* GPA of the PML4, page-aligned */
        uint64_t kernel_hint; /* the low stub's kernel entry hint (a VA), 0 if unknown */
        unsigned self_ref;    /* PML4 index of the self-reference entry, 256..511 */
        /* VMSIG_DETECT_EPROCESS only, 0 otherwise: */
        unsigned build;        /* the layout that matched: 7601, 18362 or 19041 */
        uint64_t eprocess_gpa; /* where the System EPROCESS starts */
        uint64_t eprocess_va;
} vmsig_detect_result;

/* Every detector reads guest RAM through a vmsig_guest_mem (guest-memory.h)
 * and never writes: its writer is never called and may be NULL, and its fd
 * may be read-only. A GPA is RAM if a range holds it and its file offset is
 * below ram_size, as for vmsig_gpa_lookup(). */

/* The PML4 check on the page at gpa: 1 if it passes (and, if asked, its
 * self-reference index), 0 if not (also for a GPA that is not RAM or not
 * page-aligned), a negative errno if reading failed. */
int vmsig_detect_pml4_check(const vmsig_guest_mem *m, uint64_t gpa, unsigned *ret_self_ref);
/* The same, with a read error counting as "not a PML4". */
bool vmsig_detect_pml4_valid(const vmsig_guest_mem *m, uint64_t gpa);

/* The cheap ways in. 1 and *ret filled if found, 0 and *ret cleared (method
 * NONE) if not, a negative errno if reading the RAM failed. */
int vmsig_detect_low_stub(const vmsig_guest_mem *m, vmsig_detect_result *ret);
int vmsig_detect_pml4_scan(const vmsig_guest_mem *m, vmsig_detect_result *ret);
/* The PML4 scan in steps, so that an event loop never blocks for long:
 * from *cursor (start at 0) on, reading about budget_bytes, and moving
 * *cursor on. 1 and *ret filled if found; 0 if not yet, call again; -ENOENT
 * when nothing was found below VMSIG_DETECT_PML4_SCAN_LIMIT; another
 * negative errno if reading failed. */
int vmsig_detect_pml4_scan_step(const vmsig_guest_mem *m, uint64_t *cursor, uint64_t budget_bytes,
                                vmsig_detect_result *ret);

/* The scan for the System EPROCESS, spread over as many calls as the
 * caller likes so that an event loop never blocks for long. It walks the
 * ranges in the order given, each from its start. */
typedef struct vmsig_detect_scan vmsig_detect_scan;

typedef struct vmsig_detect_scan_stats {
        uint64_t scanned;    /* bytes of RAM searched so far, skipped ones included */
        uint64_t skipped;    /* bytes of holes passed without reading */
        uint64_t total;      /* bytes of RAM to search */
        uint64_t bytes_read; /* everything read so far, verification included */
        uint64_t candidates; /* names checked against the layouts */
        unsigned steps;
} vmsig_detect_scan_stats;

/* Copies the ranges; the fd must stay open until the scan is freed.
 *
 * Holes in the RAM file (pages the guest never touched: zeros, so no name)
 * are skipped without reading, found with SEEK_DATA on a private open file
 * description (reopened through /proc/self/fd, as the file position a seek
 * moves is shared by every dup of the fd). Where that is not possible,
 * everything is read. */
int vmsig_detect_scan_new(const vmsig_guest_mem *m, vmsig_detect_scan **ret);
vmsig_detect_scan *vmsig_detect_scan_free(vmsig_detect_scan *scan);

/* Reads at most budget_bytes (the search and the verification of
 * candidates together, a look for the next data in the file counting as
 * 4 KiB; at least VMSIG_DETECT_SCAN_MIN_BUDGET, else -EINVAL) and
 * returns
 *   1        found: *ret filled; every later call returns the same,
 *   0        not yet, call again,
 *   -ENOENT  all of RAM searched without success; so do later calls,
 *   other    a read failed; so do later calls.
 * *ret is only written when 1 is returned. */
int vmsig_detect_scan_step(vmsig_detect_scan *scan, uint64_t budget_bytes, vmsig_detect_result *ret);
void vmsig_detect_scan_get_stats(const vmsig_detect_scan *scan, vmsig_detect_scan_stats *ret);
/* After a find (1): goes on past it, so that the next step looks for the
 * next System EPROCESS. A reset keeps RAM, so the previous boot's copy may
 * come first and be rejected by the caller; it is not the live one. */
void vmsig_detect_scan_resume(vmsig_detect_scan *scan);

/*
 * Checks of a root already found, cheap enough to run before every write:
 *
 * vmsig_detect_eprocess_verify: the System EPROCESS of an EPROCESS result
 * is still where it was found, still passes every check above, and still
 * names the same DTB and VA. 1, 0, or a negative errno (-EINVAL for a
 * result of another method).
 *
 * vmsig_detect_eprocess_fingerprint: a hash of the structure from its start
 * to the end of its name. A running kernel keeps changing its System
 * process; a copy left in RAM by an earlier boot does not.
 *
 * vmsig_detect_kernel_entries: how many present entries the kernel half of
 * the top-level table at root has, 0 for a root outside RAM, or a negative
 * errno. A boot loader or a kernel decompressor runs with paging on, on an
 * identity map: nothing in the kernel half.
 *
 * vmsig_detect_same_kernel: whether two top-level tables (a CR3 and a
 * root) map the same kernel: their kernel halves (entries 256..511) are
 * equal but for the accessed and dirty bits, each table's self-reference
 * at the same index counting as equal, and at most one entry that only one
 * of them has (Linux maps a process's LDT there under page-table
 * isolation); and not empty. Every process of a kernel shares them. 1, 0
 * (also for a root outside RAM), or a negative errno.
 */
int vmsig_detect_eprocess_verify(const vmsig_guest_mem *m, const vmsig_detect_result *found);
int vmsig_detect_eprocess_fingerprint(const vmsig_guest_mem *m, const vmsig_detect_result *found,
                                      uint64_t *ret);
int vmsig_detect_kernel_entries(const vmsig_guest_mem *m, uint64_t root);
int vmsig_detect_same_kernel(const vmsig_guest_mem *m, uint64_t root_a, uint64_t root_b);

/* Everything in one call, for tools and tests; blocks for as long as the
 * scan takes. The low stub, then the PML4 scan if the stub gave nothing,
 * then (if full_scan) the EPROCESS scan, whose DTB wins over both: the
 * result then keeps the stub's kernel hint, if there was a stub. 1 if found,
 * 0 if not (*ret cleared), a negative errno if reading failed. */
int vmsig_detect_all(const vmsig_guest_mem *m, bool full_scan, vmsig_detect_result *ret);
