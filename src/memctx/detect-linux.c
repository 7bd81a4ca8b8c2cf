/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect-linux.h"
#include "macro.h"

#define PAGE_4K VMSIG_PAGE_SIZE_4K
#define PAGE_MASK_4K (PAGE_4K - 1)
#define SIZE_2M (UINT64_C(1) << 21)
#define SIZE_1G (UINT64_C(1) << 30)
#define ENTRIES 512
#define KERNEL_HALF 256

/* The kernel image: __START_KERNEL_map and KERNEL_IMAGE_SIZE with KASLR
 * (512 MiB without), PDPTE 510 of the last 512 GiB whatever the levels. */
#define IMAGE_VA UINT64_C(0xFFFFFFFF80000000)
#define IMAGE_END UINT64_C(0xFFFFFFFFC0000000)
#define IMAGE_PDPTE 510

#define BANNER_PREFIX "Linux version "
#define BANNER_PREFIX_LEN (sizeof BANNER_PREFIX - 1)
#define BANNER_MAX (BANNER_PREFIX_LEN + VMSIG_LINUX_RELEASE_MAX + 2)

/* Bytes of a page read at once: as the EPROCESS scan measured, 256 KiB is
 * where the copy outweighs the syscall. */
#define SEARCH_CHUNK (UINT64_C(256) << 10)
/* The end of the last chunk, searched again in front of the next one when
 * they are contiguous, so a banner across a page boundary is seen whole. */
#define CARRY 128

_Static_assert(CARRY >= BANNER_MAX, "a banner cut by a chunk boundary must fit in the carry");
/* Root setup (5 tables at most: two candidates, PML4, PDPT) happens outside
 * the budget; a PD, a PT and a page must then still fit. */
_Static_assert(VMSIG_LINUX_MIN_BUDGET >= 8 * PAGE_4K, "a step must fit a PD, a PT and a page");

typedef enum probe_phase {
        PHASE_START,  /* nothing read yet */
        PHASE_ROOT,   /* the search under roots[cur] is to begin */
        PHASE_SEARCH, /* searching under roots[cur] */
        PHASE_DONE,   /* result (and found) hold the answer */
} probe_phase;

typedef struct root_try {
        uint64_t gpa;
        bool pti; /* the kernel root below a user root in CR3 */
        unsigned kernel_entries;
        /* Entries 256..511, with accessed and dirty cleared and not
         * present ones as 0, to compare init_mm's with. */
        uint64_t kernel_half[KERNEL_HALF];
} root_try;

/* A page table read from the guest, and the VA region it maps (aligned to
 * what it maps); 0: none (the search is in the top 2 GiB, never at 0). */
typedef struct table_cache {
        uint64_t of;
        uint64_t entries[ENTRIES];
} table_cache;

struct vmsig_linux_probe {
        /* For lookups and translations, never written; a copy of the
         * caller's (vmsig_guest_mem_copy), as the probe outlives it. */
        vmsig_guest_mem mem;
        uint64_t cr3;
        unsigned levels;

        probe_phase phase;
        int result;
        vmsig_linux_result found;

        root_try roots[2];
        unsigned n_roots, cur;

        /* The search under roots[cur], in VA order from IMAGE_VA. */
        uint64_t pdpte; /* PDPTE 510 */
        uint64_t va;    /* the next VA to look at */
        bool va_end;    /* at IMAGE_END */
        table_cache pd; /* the PD under pdpte */
        table_cache pt; /* the PT of one 2 MiB region */
        uint64_t searched;
        size_t carry; /* bytes at buf's start that end at carry_va_end and carry_gpa_end */
        uint64_t carry_va_end, carry_gpa_end;
        bool have_banner, have_init_mm;
        uint64_t banner_va, init_mm;
        char release[VMSIG_LINUX_RELEASE_MAX + 1];

        vmsig_linux_probe_stats stats;
        uint8_t buf[]; /* CARRY + SEARCH_CHUNK */
};

static uint64_t normalize_entry(uint64_t e) {
        return e & VMSIG_PTE_PRESENT ? e & ~VMSIG_PTE_ACCESSED_DIRTY : 0;
}

static void charge(vmsig_linux_probe *p, uint64_t *left, uint64_t n) {
        p->stats.bytes_read += n;
        *left -= MIN(*left, n);
}

/* Reads the table at gpa: 1, 0 if the page is not all RAM, or a read error. */
static int read_table(vmsig_linux_probe *p, uint64_t gpa, uint64_t table[static ENTRIES], uint64_t *left) {
        uint8_t raw[PAGE_4K];
        uint64_t offset;
        int r;

        if (vmsig_gpa_to_offset(&p->mem, gpa, sizeof raw, &offset) < 0)
                return 0;
        r = vmsig_pread_full(p->mem.read_fd, raw, sizeof raw, offset);
        if (r < 0)
                return r;
        charge(p, left, sizeof raw);
        for (unsigned i = 0; i < ENTRIES; i++)
                table[i] = vmsig_load_le64(raw + i * 8);
        return 1;
}

static bool is_ram(const vmsig_linux_probe *p, uint64_t gpa) {
        return vmsig_gpa_lookup(&p->mem, gpa, NULL, NULL) >= 0;
}

/* The bytes from gpa (not RAM) to the next GPA that may be, at most max. */
static uint64_t distance_to_ram(const vmsig_linux_probe *p, uint64_t gpa, uint64_t max) {
        uint64_t d = max;

        for (size_t i = 0; i < p->mem.n_ranges; i++) {
                const vmsig_gpa_range *r = &p->mem.ranges[i];

                if (r->gpa > gpa)
                        d = MIN(d, r->gpa - gpa);
        }
        return d;
}

/* Reads a candidate root: 1, 0 if it is not RAM, or a read error. */
static int root_read(vmsig_linux_probe *p, uint64_t gpa, bool pti, root_try *ret, uint64_t *left) {
        uint64_t table[ENTRIES];
        int r;

        r = read_table(p, gpa, table, left);
        if (r <= 0)
                return r;
        *ret = (root_try) { .gpa = gpa, .pti = pti };
        for (unsigned i = 0; i < KERNEL_HALF; i++) {
                uint64_t e = normalize_entry(table[KERNEL_HALF + i]);

                ret->kernel_half[i] = e;
                /* An entry leading outside RAM maps nothing: junk with
                 * the low bit set must not look like a full kernel half. */
                if (e && is_ram(p, e & VMSIG_PTE_ADDR_MASK))
                        ret->kernel_entries++;
        }
        return 1;
}

static int finish(vmsig_linux_probe *p, int result) {
        p->phase = PHASE_DONE;
        p->result = result;
        return result;
}

/* Decides which roots to try: -ENOENT if CR3 is not RAM. */
static int probe_start(vmsig_linux_probe *p, uint64_t *left) {
        uint64_t cr3_root = p->cr3 & VMSIG_PTE_ADDR_MASK;
        root_try user, kernel;
        int r;

        r = root_read(p, cr3_root, false, &user, left);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOENT;
        /* With PTI, user mode runs on the upper page of the pair. A
         * kernel without PTI has roots at odd pages too, then the page
         * below is some other table or data: only a root that maps more
         * of the kernel half than CR3's can be its kernel root. */
        if (cr3_root & VMSIG_PTI_USER_OFFSET) {
                r = root_read(p, cr3_root & ~VMSIG_PTI_PAIR_MASK, true, &kernel, left);
                if (r < 0)
                        return r;
                if (r > 0 && kernel.kernel_entries > user.kernel_entries)
                        p->roots[p->n_roots++] = kernel;
        }
        p->roots[p->n_roots++] = user;
        p->cur = 0;
        p->phase = PHASE_ROOT;
        return 0;
}

/* Follows entry 511 down to the PDPTE of the kernel image: 1, 0 if a level
 * is not present or not RAM (nothing of the kernel half mapped there), or a
 * read error. PS is reserved in a PML5E and a PML4E, and ignored. */
static int root_begin(vmsig_linux_probe *p, uint64_t *left) {
        const root_try *t = &p->roots[p->cur];
        uint64_t table[ENTRIES], e = t->kernel_half[KERNEL_HALF - 1];
        int r;

        p->stats.roots++;
        if (p->levels == 5) {
                if (!(e & VMSIG_PTE_PRESENT))
                        return 0;
                r = read_table(p, e & VMSIG_PTE_ADDR_MASK, table, left);
                if (r <= 0)
                        return r;
                e = table[ENTRIES - 1];
        }
        if (!(e & VMSIG_PTE_PRESENT))
                return 0;
        r = read_table(p, e & VMSIG_PTE_ADDR_MASK, table, left);
        if (r <= 0)
                return r;
        p->pdpte = table[IMAGE_PDPTE];
        p->va = IMAGE_VA;
        p->va_end = false;
        p->pd.of = p->pt.of = 0;
        p->searched = 0;
        p->carry = 0;
        p->have_banner = p->have_init_mm = false;
        return 1;
}

static void advance(vmsig_linux_probe *p, uint64_t n) {
        p->va += n;
        p->va_end = p->va >= IMAGE_END;
}

/* Moves p->va to the next multiple of size. */
static int skip_to(vmsig_linux_probe *p, uint64_t size) {
        advance(p, size - (p->va & (size - 1)));
        return 0;
}

/* The leaf page of size that e maps va in: 1 with va's GPA and the bytes
 * from there to the page's end. */
static int leaf(uint64_t e, uint64_t va, uint64_t size, uint64_t *ret_gpa, uint64_t *ret_len) {
        /* Bit 12 of a large page entry is PAT, not address. */
        *ret_gpa = (e & VMSIG_PTE_ADDR_MASK & ~(size - 1)) | (va & (size - 1));
        *ret_len = size - (va & (size - 1));
        return 1;
}

/* The table e names, into table: 1, 0 if it is not RAM (then the size
 * the entry maps is skipped), -EAGAIN if it does not fit the budget, or a
 * read error. */
static int load_table(vmsig_linux_probe *p, uint64_t e, uint64_t size, uint64_t table[static ENTRIES],
                      uint64_t *left) {
        int r;

        if (*left < PAGE_4K)
                return -EAGAIN;
        r = read_table(p, e & VMSIG_PTE_ADDR_MASK, table, left);
        return r == 0 ? skip_to(p, size) : r;
}

/* Where p->va is mapped: 1 with its GPA and the bytes the leaf page maps
 * from there; 0 if not (p->va moved on past what is not mapped); -EAGAIN
 * if a table does not fit the budget; or a read error. The PDPTE, PDE
 * and PTE levels are walked alike; the tables below the PDPTE are kept,
 * since the search goes through VAs in order and most share them. */
static int resolve(vmsig_linux_probe *p, uint64_t *left, uint64_t *ret_gpa, uint64_t *ret_len) {
        static const uint64_t sizes[] = { SIZE_1G, SIZE_2M, PAGE_4K }; /* what an entry of each level maps */
        static const unsigned index_shift[] = { 21, 12 };              /* va's index into the next table */
        table_cache *const below[] = { &p->pd, &p->pt };
        uint64_t va = p->va, e = p->pdpte;
        int r;

        assert(va >= IMAGE_VA && va < IMAGE_END);
        for (size_t level = 0;; level++) {
                uint64_t size = sizes[level], region = va & ~(size - 1);
                table_cache *t;

                if (!(e & VMSIG_PTE_PRESENT))
                        return skip_to(p, size);
                /* Bit 7 of a PTE is PAT: a PTE is a leaf whatever it says. */
                if (level == ELEMENTSOF(below) || (e & VMSIG_PTE_PS))
                        return leaf(e, va, size, ret_gpa, ret_len);
                t = below[level];
                if (t->of != region) {
                        r = load_table(p, e, size, t->entries, left);
                        if (r <= 0)
                                return r;
                        t->of = region;
                }
                e = t->entries[(va >> index_shift[level]) & 511];
        }
}

static bool is_release_char(uint8_t c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
               c == '+' || c == '~' || c == '-';
}

/* s holds len bytes from a "Linux version " on: 1 and the release if the
 * banner is plausible, 0 if not, -1 if len ends before that is known. */
static int parse_banner(const uint8_t *s, size_t len, char *release) {
        size_t n = 0;

        for (;; n++) {
                if (BANNER_PREFIX_LEN + n >= len)
                        return -1;
                uint8_t c = s[BANNER_PREFIX_LEN + n];
                if (c == ' ')
                        break;
                if (n >= VMSIG_LINUX_RELEASE_MAX || !is_release_char(c) || (n == 0 && !(c >= '0' && c <= '9')))
                        return 0;
        }
        if (n == 0)
                return 0;
        if (BANNER_PREFIX_LEN + n + 1 >= len)
                return -1;
        if (s[BANNER_PREFIX_LEN + n + 1] != '(')
                return 0;
        memcpy(release, s + BANNER_PREFIX_LEN, n);
        release[n] = '\0';
        return 1;
}

static void search_banner(vmsig_linux_probe *p, uint64_t base_va, const uint8_t *buf, size_t len) {
        size_t pos = 0;

        while (pos < len) {
                const uint8_t *hit = memmem(buf + pos, len - pos, BANNER_PREFIX, BANNER_PREFIX_LEN);
                if (!hit)
                        return;
                pos = (size_t) (hit - buf);
                int r = parse_banner(hit, len - pos, p->release);
                if (r > 0) {
                        p->have_banner = true;
                        p->banner_va = base_va + pos;
                        return;
                }
                /* Cut off: the carry brings it back whole with the next
                 * chunk, and any later hit is cut off too. */
                if (r < 0)
                        return;
                pos++;
        }
}

/* Whether the page at page is init_mm's root as seen from root t. */
static bool is_init_mm(const root_try *t, const uint8_t *page) {
        unsigned only_in_root = 0;

        if (normalize_entry(vmsig_load_le64(page + (ENTRIES - 1) * 8)) != t->kernel_half[KERNEL_HALF - 1])
                return false;
        for (unsigned i = 0; i < KERNEL_HALF; i++) {
                uint64_t e = normalize_entry(vmsig_load_le64(page + (KERNEL_HALF + i) * 8));

                if (e == t->kernel_half[i])
                        continue;
                /* A process's own LDT mapping (PTI's LDT remap) is the one
                 * kernel-half entry init_mm does not share. */
                if (e == 0 && only_in_root++ == 0)
                        continue;
                return false;
        }
        return true;
}

/* The pages of [start, len) of buf that lie at a 4 KiB-aligned VA and in
 * full in it, gpa being where start lies. */
static void search_init_mm(vmsig_linux_probe *p, uint64_t base_va, const uint8_t *buf, size_t start, size_t len,
                           uint64_t gpa) {
        const root_try *t = &p->roots[p->cur];
        size_t o = start + (size_t) ((PAGE_4K - ((base_va + start) & PAGE_MASK_4K)) & PAGE_MASK_4K);

        for (; o + PAGE_4K <= len; o += PAGE_4K) {
                uint64_t page_gpa = gpa + (o - start);

                if (t->pti && (page_gpa & VMSIG_PTI_PAIR_MASK))
                        continue;
                if (is_init_mm(t, buf + o)) {
                        p->have_init_mm = true;
                        p->init_mm = page_gpa;
                        return;
                }
        }
}

/* Searches on under roots[cur]: 1 when the search is over (see
 * have_banner), 0 when the budget is spent, or a read error. */
static int root_search(vmsig_linux_probe *p, uint64_t *left) {
        while (!p->va_end && p->searched < VMSIG_LINUX_SEARCH_LIMIT && !(p->have_banner && p->have_init_mm)) {
                uint64_t gpa, len, offset, avail;
                int r;

                r = resolve(p, left, &gpa, &len);
                if (r == -EAGAIN)
                        return 0;
                if (r < 0)
                        return r;
                if (r == 0) {
                        p->carry = 0;
                        continue;
                }
                if (*left < PAGE_4K)
                        return 0;
                if (vmsig_gpa_lookup(&p->mem, gpa, &offset, &avail) < 0) {
                        /* Mapped, but not RAM: on to where the page may
                         * be RAM again (a large page over a hole). */
                        p->carry = 0;
                        advance(p, distance_to_ram(p, gpa, len));
                        continue;
                }
                size_t n = (size_t) MIN(MIN(len, avail), MIN(SEARCH_CHUNK, *left & ~PAGE_MASK_4K));
                n = (size_t) MIN((uint64_t) n, VMSIG_LINUX_SEARCH_LIMIT - p->searched);
                if (p->carry > 0 && (p->carry_va_end != p->va || p->carry_gpa_end != gpa))
                        p->carry = 0;
                r = vmsig_pread_full(p->mem.read_fd, p->buf + p->carry, n, offset);
                if (r < 0)
                        return r;
                charge(p, left, n);
                p->searched += n;
                p->stats.searched += n;

                size_t total = p->carry + n;
                uint64_t base_va = p->va - p->carry;
                if (!p->have_banner)
                        search_banner(p, base_va, p->buf, total);
                if (!p->have_init_mm)
                        search_init_mm(p, base_va, p->buf, p->carry, total, gpa);

                size_t keep = MIN(total, (size_t) CARRY);
                memmove(p->buf, p->buf + total - keep, keep);
                p->carry = keep;
                p->carry_va_end = p->va + n;
                p->carry_gpa_end = gpa + n;
                advance(p, n);
        }
        return 1;
}

/* The banner was found under roots[cur]: publishes init_mm's root if it
 * passes the re-check, else roots[cur]. 1, 0 if neither passes (the guest
 * changed them meanwhile), or a read error. */
static int root_finish(vmsig_linux_probe *p) {
        const root_try *t = &p->roots[p->cur];
        uint64_t candidates[2];
        unsigned n = 0;
        int r;

        if (p->have_init_mm)
                candidates[n++] = p->init_mm;
        candidates[n++] = t->gpa;
        for (unsigned i = 0; i < n; i++) {
                vmsig_linux_result res = {
                        .root = candidates[i],
                        .cr3_root = t->gpa,
                        .levels = p->levels,
                        .pti = t->pti,
                        .init_mm = p->have_init_mm && candidates[i] == p->init_mm,
                        .kernel_entries = t->kernel_entries,
                        .banner_va = p->banner_va,
                };
                vmsig_memwrite_failure f;

                memcpy(res.release, p->release, sizeof res.release);
                r = vmsig_va_translate(&p->mem, res.root, res.levels, res.banner_va, &res.banner_gpa, NULL, &f);
                if (r < 0) {
                        if (f.error == VMSIG_MEMWRITE_IO)
                                return r;
                        continue;
                }
                r = vmsig_linux_check(&p->mem, &res);
                if (r < 0)
                        return r;
                if (r > 0) {
                        p->found = res;
                        return 1;
                }
        }
        return 0;
}

vmsig_linux_probe *vmsig_linux_probe_free(vmsig_linux_probe *p) {
        if (!p)
                return NULL;
        vmsig_guest_mem_copy_done(&p->mem);
        return mfree(p);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(vmsig_linux_probe *, vmsig_linux_probe_free);

int vmsig_linux_probe_new(const vmsig_guest_mem *m, uint64_t cr3, unsigned levels, vmsig_linux_probe **ret) {
        _cleanup_(vmsig_linux_probe_freep) vmsig_linux_probe *p = NULL;
        int r;

        assert(m);
        assert(ret);
        if (levels != 4 && levels != 5)
                return -EINVAL;
        /* One allocation, the search buffer at its end left uncleared:
         * the carry and each chunk are written before they are read. */
        p = malloc(sizeof *p + CARRY + SEARCH_CHUNK);
        if (!p)
                return -ENOMEM;
        *p = (vmsig_linux_probe) { .cr3 = cr3, .levels = levels, .phase = PHASE_START };
        r = vmsig_guest_mem_copy(m, &p->mem);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

void vmsig_linux_probe_get_stats(const vmsig_linux_probe *p, vmsig_linux_probe_stats *ret) {
        assert(p);
        assert(ret);
        *ret = p->stats;
}

int vmsig_linux_probe_step(vmsig_linux_probe *p, uint64_t budget_bytes, vmsig_linux_result *ret) {
        uint64_t left = budget_bytes;
        int r;

        assert(p);
        assert(ret);
        if (budget_bytes < VMSIG_LINUX_MIN_BUDGET)
                return -EINVAL;
        if (p->phase == PHASE_DONE) {
                if (p->result > 0)
                        *ret = p->found;
                return p->result;
        }
        p->stats.steps++;

        for (;;) {
                switch (p->phase) {
                case PHASE_START:
                        r = probe_start(p, &left);
                        if (r < 0)
                                return finish(p, r);
                        break;
                case PHASE_ROOT:
                        if (p->cur >= p->n_roots)
                                return finish(p, -ENOENT);
                        r = root_begin(p, &left);
                        if (r < 0)
                                return finish(p, r);
                        if (r == 0)
                                p->cur++;
                        else
                                p->phase = PHASE_SEARCH;
                        break;
                case PHASE_SEARCH:
                        r = root_search(p, &left);
                        if (r < 0)
                                return finish(p, r);
                        if (r == 0)
                                return 0;
                        r = p->have_banner ? root_finish(p) : 0;
                        if (r < 0)
                                return finish(p, r);
                        if (r > 0) {
                                *ret = p->found;
                                return finish(p, 1);
                        }
                        p->cur++;
                        p->phase = PHASE_ROOT;
                        break;
                default:
                        assert(!"unreachable probe phase");
                        return -EINVAL;
                }
                /* A root's setup may cost a few tables beyond the budget;
                 * then the search waits for the next step. */
                if (left < PAGE_4K && p->phase != PHASE_DONE)
                        return 0;
        }
}

int vmsig_linux_probe_all(const vmsig_guest_mem *m, uint64_t cr3, unsigned levels, vmsig_linux_result *ret) {
        vmsig_linux_probe *p = NULL;
        int r;

        assert(ret);
        r = vmsig_linux_probe_new(m, cr3, levels, &p);
        if (r < 0)
                return r;
        do
                r = vmsig_linux_probe_step(p, VMSIG_DETECT_SCAN_BUDGET_DEFAULT, ret);
        while (r == 0);
        vmsig_linux_probe_free(p);
        return r;
}

int vmsig_linux_check(const vmsig_guest_mem *m, const vmsig_linux_result *r) {
        char expect[BANNER_MAX + 1], got[BANNER_MAX];
        vmsig_memwrite_failure f;
        uint64_t offset, gpa;
        size_t n;
        int k;

        assert(m);
        assert(r);
        n = strnlen(r->release, sizeof r->release);
        if ((r->levels != 4 && r->levels != 5) || n == 0 || n > VMSIG_LINUX_RELEASE_MAX)
                return -EINVAL;
        n = (size_t) snprintf(expect, sizeof expect, BANNER_PREFIX "%s (", r->release);
        if (vmsig_gpa_to_offset(m, r->banner_gpa, n, &offset) < 0)
                return 0;
        k = vmsig_pread_full(m->read_fd, got, n, offset);
        if (k < 0)
                return k;
        if (memcmp(got, expect, n) != 0)
                return 0;
        k = vmsig_va_translate(m, r->root, r->levels, r->banner_va, &gpa, NULL, &f);
        if (k < 0)
                return f.error == VMSIG_MEMWRITE_IO ? k : 0;
        return gpa == r->banner_gpa;
}
