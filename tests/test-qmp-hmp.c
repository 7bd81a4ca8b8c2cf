/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HMP parsers of the QEMU backend (issue 14): "info registers" and
 * "info mtree -f", first on texts captured from QEMU 7.2 and on broken and
 * hostile variants of them, then against a real QEMU under TCG, where the
 * map parsed is proven by writing markers into the RAM file at the offsets
 * it gives and reading them back through QEMU at the GPAs. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <glib.h>

#include "memctx.h"
#include "qemu-harness.h"
#include "qmp-hmp.h"
#include "qmp-ram-map.h"
#include "vmsig-endpoint.h"
#include "vt-util.h"

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define CR4_PCIDE (UINT64_C(1) << 17)

/* --- info registers, as QEMU 7.2 prints it --- */

/* The lines every vCPU here has alike: debug registers, the x87 unit and
 * the first SSE registers. */
#define DEBUG_REGS                                                                                        \
        "DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 \r\n"          \
        "DR6=00000000ffff0ff0 DR7=0000000000000400\r\n"
#define X87_REGS                                                                                          \
        "FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80\r\n"                                                \
        "FPR0=0000000000000000 0000 FPR1=0000000000000000 0000\r\n"                                         \
        "FPR2=0000000000000000 0000 FPR3=0000000000000000 0000\r\n"                                         \
        "FPR4=0000000000000000 0000 FPR5=0000000000000000 0000\r\n"                                         \
        "FPR6=0000000000000000 0000 FPR7=0000000000000000 0000\r\n"
#define XMM_0_7                                                                                           \
        "XMM00=0000000000000000 0000000000000000 XMM01=0000000000000000 0000000000000000\r\n"               \
        "XMM02=0000000000000000 0000000000000000 XMM03=0000000000000000 0000000000000000\r\n"               \
        "XMM04=0000000000000000 0000000000000000 XMM05=0000000000000000 0000000000000000\r\n"               \
        "XMM06=0000000000000000 0000000000000000 XMM07=0000000000000000 0000000000000000\r\n"

/* SeaBIOS halted in real mode, no boot device: q35, -smp 2; its first vCPU. */
#define SEABIOS_CPU0                                                                                      \
        "\r\n"                                                                                            \
        "CPU#0\r\n"                                                                                       \
        "EAX=00000000 EBX=00000000 ECX=0000b79d EDX=00000000\r\n"                                         \
        "ESI=0000b79d EDI=00000000 EBP=0000b79d ESP=00006f94\r\n"                                         \
        "EIP=0000b7b9 EFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n"                            \
        "ES =d980 000d9800 0000ffff 00009300\r\n"                                                         \
        "CS =f000 000f0000 0000ffff 00009b00\r\n"                                                         \
        "SS =0000 00000000 0000ffff 00009300\r\n"                                                         \
        "DS =0000 00000000 0000ffff 00009300\r\n"                                                         \
        "FS =0000 00000000 0000ffff 00009300\r\n"                                                         \
        "GS =0000 00000000 0000ffff 00009300\r\n"                                                         \
        "LDT=0000 00000000 0000ffff 00008200\r\n"                                                         \
        "TR =0000 00000000 0000ffff 00008b00\r\n"                                                         \
        "GDT=     00000000 00000000\r\n"                                                                  \
        "IDT=     00000000 000003ff\r\n"                                                                  \
        "CR0=00000010 CR2=00000000 CR3=00000000 CR4=00000000\r\n"                                         \
        DEBUG_REGS                                                                                        \
        "EFER=0000000000000000\r\n"                                                                       \
        X87_REGS                                                                                          \
        XMM_0_7

/* Plain "info registers" there. */
static const char REGS_FIRMWARE[] =
        SEABIOS_CPU0;
/* The same machine, "info registers -a": CPU#1 differs (CR0=00000011) and must not count. */
static const char REGS_ALL_CPUS[] =
        SEABIOS_CPU0
        "\r\n"
        "CPU#1\r\n"
        "EAX=000f49f6 EBX=00000000 ECX=000002ff EDX=00000001\r\n"
        "ESI=00000000 EDI=00000000 EBP=00000000 ESP=00006c5c\r\n"
        "EIP=000fd09a EFL=00000002 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=1\r\n"
        "ES =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r\n"
        "CS =0008 00000000 ffffffff 00cf9b00 DPL=0 CS32 [-RA]\r\n"
        "SS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r\n"
        "DS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r\n"
        "FS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r\n"
        "GS =0010 00000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r\n"
        "LDT=0000 00000000 0000ffff 00008200 DPL=0 LDT\r\n"
        "TR =0000 00000000 0000ffff 00008b00 DPL=0 TSS32-busy\r\n"
        "GDT=     000f6180 00000037\r\n"
        "IDT=     000f61be 00000000\r\n"
        "CR0=00000011 CR2=00000000 CR3=00000000 CR4=00000000\r\n"
        DEBUG_REGS
        "EFER=0000000000000000\r\n"
        X87_REGS
        XMM_0_7;
/* Debian's cloud kernel booted with -kernel and no initrd, default CPU (qemu64): 4-level paging. */
static const char REGS_LONG_MODE[] =
        "\r\n"
        "CPU#0\r\n"
        "RAX=0000000000000000 RBX=fffff89c00047600 RCX=000000000000001e RDX=fffff89c00047740\r\n"
        "RSI=fffff89c00047800 RDI=ffff8eaa811ddf10 RBP=ffff8eaa9f437780 RSP=ffffffffba203d00\r\n"
        "R8 =0000000000000000 R9 =fffff89c00050208 R10=0000000000000002 R11=ffff8eaa9f437828\r\n"
        "R12=0000000000000003 R13=ffff8eaa9ffb5600 R14=ffff8eaa9ffb6e00 R15=fffff89c00047600\r\n"
        "RIP=ffffffffb91c2967 RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=0\r\n"
        "ES =0000 0000000000000000 00000000 00000000\r\n"
        "CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]\r\n"
        "SS =0000 0000000000000000 ffffffff 00c09300 DPL=0 DS   [-WA]\r\n"
        "DS =0000 0000000000000000 00000000 00000000\r\n"
        "FS =0000 0000000000000000 00000000 00000000\r\n"
        "GS =0000 ffff8eaa9f400000 00000000 00000000\r\n"
        "LDT=0000 0000000000000000 00000000 00008200 DPL=0 LDT\r\n"
        "TR =0040 fffffe0000003000 00004087 00008900 DPL=0 TSS64-avl\r\n"
        "GDT=     fffffe0000001000 0000007f\r\n"
        "IDT=     fffffe0000000000 00000fff\r\n"
        "CR0=80050033 CR2=ffff8eaa9da01000 CR3=000000001cc10000 CR4=000006b0\r\n"
        DEBUG_REGS
        "EFER=0000000000000d01\r\n"
        X87_REGS
        XMM_0_7
        "XMM08=0000000000000000 0000000000000000 XMM09=0000000000000000 0000000000000000\r\n"
        "XMM10=0000000000000000 0000000000000000 XMM11=0000000000000000 0000000000000000\r\n"
        "XMM12=0000000000000000 0000000000000000 XMM13=0000000000000000 0000000000000000\r\n"
        "XMM14=0000000000000000 0000000000000000 XMM15=0000000000000000 0000000000000000\r\n";
/* The same with -cpu max: CR4.LA57 (bit 12) is set, 5-level paging. */
static const char REGS_LA57[] =
        "\r\n"
        "CPU#0\r\n"
        "RAX=00000000be7dcce2 RBX=00000000009e7410 RCX=00000000fffedb4d RDX=00000000006a34b0\r\n"
        "RSI=0000000000000004 RDI=0000000000000300 RBP=00000000be139832 RSP=ff6ebf83c0013e58\r\n"
        "R8 =ff6ebf83c0013de0 R9 =ff3fb24e01051cd8 R10=00000000fffffffb R11=0000000000000000\r\n"
        "R12=ff3fb24e1f41fc40 R13=0000000000000000 R14=00000000fffedb4d R15=0000000000000000\r\n"
        "RIP=ffffffffa5469b7b RFL=00000287 [--S--PC] CPL=0 II=0 A20=1 SMM=0 HLT=0\r\n"
        "ES =0000 0000000000000000 00000000 00000000\r\n"
        "CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]\r\n"
        "SS =0018 0000000000000000 ffffffff 00cf9300 DPL=0 DS   [-WA]\r\n"
        "DS =0000 0000000000000000 00000000 00000000\r\n"
        "FS =0000 0000000000000000 00000000 00000000\r\n"
        "GS =0000 ff3fb24e1f400000 00000000 00000000\r\n"
        "LDT=0000 0000000000000000 00000000 00008200 DPL=0 LDT\r\n"
        "TR =0040 fffffe0000003000 00004087 00008900 DPL=0 TSS64-avl\r\n"
        "GDT=     fffffe0000001000 0000007f\r\n"
        "IDT=     fffffe0000000000 00000fff\r\n"
        "CR0=80050033 CR2=ff3fb24e19001000 CR3=0000000018210000 CR4=00751eb0\r\n"
        DEBUG_REGS
        "EFER=0000000000000d01\r\n"
        X87_REGS
        "YMM00=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM01=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM02=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM03=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM04=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM05=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM06=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM07=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM08=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM09=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM10=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM11=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM12=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM13=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM14=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n"
        "YMM15=0000000000000000 0000000000000000 0000000000000000 0000000000000000\r\n";

static const vmsig_vcpu_state SENTINEL = {
        .cr0 = UINT64_C(0xa5a5a5a5a5a5a5a5),
        .cr3 = UINT64_C(0xa5a5a5a5a5a5a5a5),
        .cr4 = UINT64_C(0xa5a5a5a5a5a5a5a5),
        .efer = UINT64_C(0xa5a5a5a5a5a5a5a5),
};

/* text with the first `from` replaced by `to`; the test fails if there is none. */
static char *replace_once(const char *text, const char *from, const char *to) {
        const char *at = strstr(text, from);

        g_assert_nonnull(at);
        return g_strdup_printf("%.*s%s%s", (int) (at - text), text, to, at + strlen(from));
}

/* text with "\r\n" turned into "\n" */
static char *strip_cr(const char *text) {
        char *s = g_strdup(text), *q = s;

        for (const char *p = s; *p; p++)
                if (*p != '\r')
                        *q++ = *p;
        *q = '\0';
        return s;
}

static vmsig_vcpu_state parse_registers_ok(const char *text) {
        vmsig_vcpu_state v = SENTINEL;

        g_assert_cmpint(qmp_hmp_parse_registers(text, &v), ==, 0);
        return v;
}

static void assert_registers_bad(const char *text) {
        vmsig_vcpu_state v = SENTINEL;

        if (g_test_verbose())
                g_test_message("bad registers: %s", text);
        g_assert_cmpint(qmp_hmp_parse_registers(text, &v), ==, -EBADMSG);
        /* Nothing written on failure. */
        g_assert_cmpmem(&v, sizeof v, &SENTINEL, sizeof SENTINEL);
}

/* A register not checked by assert_registers(). */
#define ANY UINT64_MAX

/* text parses, to these CR0, CR3, CR4 and EFER (ANY: not checked) and
 * paging of levels levels. */
static void assert_registers(const char *text, uint64_t cr0, uint64_t cr3, uint64_t cr4, uint64_t efer,
                             unsigned levels) {
        vmsig_vcpu_state v = parse_registers_ok(text);

        if (cr0 != ANY)
                g_assert_cmphex(v.cr0, ==, cr0);
        if (cr3 != ANY)
                g_assert_cmphex(v.cr3, ==, cr3);
        if (cr4 != ANY)
                g_assert_cmphex(v.cr4, ==, cr4);
        if (efer != ANY)
                g_assert_cmphex(v.efer, ==, efer);
        g_assert_cmpuint(vmsig_vcpu_paging_levels(&v), ==, levels);
}

static void test_registers_firmware(void) {
        assert_registers(REGS_FIRMWARE, 0x10, 0, 0, 0, 0);
}

static void test_registers_all_cpus(void) {
        /* CPU#0's, not CPU#1's 0x11 */
        assert_registers(REGS_ALL_CPUS, 0x10, ANY, ANY, ANY, 0);
}

static void test_registers_long_mode(void) {
        assert_registers(REGS_LONG_MODE, 0x80050033, 0x1cc10000, 0x6b0, 0xd01, 4);
}

static void test_registers_la57(void) {
        assert_registers(REGS_LA57, ANY, 0x18210000, 0x751eb0, ANY, 5);
}

static void test_registers_pcid(void) {
        /* TCG has no PCID: a KVM guest's CR3 carries the PCID in bits 0..11
         * (and CR4.PCIDE is set). The parser keeps CR3 whole; the root is
         * the mask's business. */
        g_autofree char *a = replace_once(REGS_LONG_MODE, "CR3=000000001cc10000", "CR3=000000001cc10805");
        g_autofree char *text = replace_once(a, "CR4=000006b0", "CR4=000206b0");
        vmsig_vcpu_state v = parse_registers_ok(text);

        g_assert_cmphex(v.cr3, ==, 0x1cc10805);
        g_assert_cmphex(v.cr4 & CR4_PCIDE, !=, 0);
        g_assert_cmphex(v.cr3 & VMSIG_CR3_ROOT_MASK, ==, 0x1cc10000);
        g_assert_cmpuint(vmsig_vcpu_paging_levels(&v), ==, 4);

        /* All 16 digits in use (bit 63, the no-flush bit of a MOV to CR3,
         * is never stored, but the parser must take any 64-bit value). */
        g_autofree char *full = replace_once(REGS_LONG_MODE, "CR3=000000001cc10000", "CR3=800fffff1cc10fff");
        v = parse_registers_ok(full);
        g_assert_cmphex(v.cr3, ==, UINT64_C(0x800fffff1cc10fff));
        g_assert_cmphex(v.cr3 & VMSIG_CR3_ROOT_MASK, ==, UINT64_C(0x000fffff1cc10000));
}

static void test_registers_variants(void) {
        /* No "CPU#0" line (older QEMUs printed it only with -a). */
        g_autofree char *headerless = replace_once(REGS_LONG_MODE, "CPU#0\r\n", "");
        g_assert_cmphex(parse_registers_ok(headerless).cr3, ==, 0x1cc10000);

        /* "\n" alone, and no line end after the last line. */
        g_autofree char *lf = strip_cr(REGS_FIRMWARE);
        g_assert_cmphex(parse_registers_ok(lf).cr0, ==, 0x10);
        g_assert_cmphex(parse_registers_ok("CR0=11 CR3=0 CR4=20\nEFER=500").efer, ==, 0x500);

        /* Upper-case and lower-case hex digits. */
        g_assert_cmphex(parse_registers_ok("CPU#0\nCR0=8000AbCd CR3=1000 CR4=a0\nEFER=D01\n").cr0, ==, 0x8000abcd);
}

static void test_registers_bad(void) {
        static const char *const fields[] = { "CR0=", "CR3=", "CR4=", "EFER=" };
        static const char *const texts[] = { REGS_FIRMWARE, REGS_LONG_MODE };

        for (size_t t = 0; t < G_N_ELEMENTS(texts); t++)
                for (size_t i = 0; i < G_N_ELEMENTS(fields); i++) {
                        g_autofree char *missing = replace_once(texts[t], fields[i], "XX=");
                        g_autofree char *bad_digit = g_strconcat(fields[i], "g", NULL);
                        g_autofree char *sign = g_strconcat(fields[i], "+", NULL);
                        g_autofree char *prefix = g_strconcat(fields[i], "0x", NULL);
                        g_autofree char *overflow = g_strconcat(fields[i], "00000000000000000", NULL);
                        g_autofree char *empty = g_strconcat(fields[i], " ", NULL);
                        g_autofree char *twice = g_strconcat(fields[i], "0 ", fields[i], "0", NULL);
                        g_autofree char *cr = g_strconcat(fields[i], "0\r", NULL);
                        const char *subst[] = { bad_digit, sign, prefix, overflow, empty, twice, cr };

                        assert_registers_bad(missing);
                        for (size_t s = 0; s < G_N_ELEMENTS(subst); s++) {
                                /* "CR0=" becomes "CR0=g", and so on, before the value */
                                g_autofree char *bad = replace_once(texts[t], fields[i], subst[s]);
                                assert_registers_bad(bad);
                        }
                }

        assert_registers_bad("");
        assert_registers_bad("\r\n");
        assert_registers_bad("CPU#1\r\n");
        assert_registers_bad("CPU#0\r\nCPU#1\r\nCR0=0 CR3=0 CR4=0\r\nEFER=0\r\n");
        assert_registers_bad("Unknown command\r\n");
        /* A register of the next CPU does not complete the first. */
        assert_registers_bad("CPU#0\nCR0=0 CR3=0 CR4=0\nCPU#1\nEFER=0\n");
        /* Malformed headers. */
        assert_registers_bad("CPU#\nCR0=0 CR3=0 CR4=0\nEFER=0\n");
        assert_registers_bad("CPU#x\nCR0=0 CR3=0 CR4=0\nEFER=0\n");
        assert_registers_bad("CPU#0 \nCR0=0 CR3=0 CR4=0\nEFER=0\n");
        assert_registers_bad("CPU#1234567890\nCR0=0 CR3=0 CR4=0\nEFER=0\n");
        /* 17 significant digits, and 16 + 1 of 2^64. */
        assert_registers_bad("CR0=0 CR3=10000000000000000 CR4=0\nEFER=0\n");
        assert_registers_bad("CR0=0 CR3=ffffffffffffffff0 CR4=0\nEFER=0\n");
        /* A value glued to the next field. */
        assert_registers_bad("CR0=0 CR3=0CR4=0\nEFER=0\n");

        /* A NUL hides the rest: the parser sees a text without EFER. */
        static const char nul[] = "CR0=0 CR3=0 CR4=0\n\0EFER=0\n";
        assert_registers_bad(nul);

        /* A tab is no separator of QEMU's: the token is "CR4=0\tEFER=0". */
        assert_registers_bad("CR0=0 CR3=0 CR4=0\tEFER=0\n");
}

/* --- info mtree -f --- */

/* The address spaces of the memory FlatView. */
#define MTREE_MEMORY_AS                                                                            \
        " AS \"memory\", root: system\r\n"                                                         \
        " AS \"cpu-memory-0\", root: system\r\n"
/* RAM below 1 MiB once SeaBIOS shadowed itself into it (PAM). */
#define MTREE_LOW_SHADOWED                                                                         \
        "  0000000000000000-00000000000c2fff (prio 0, ram): ram0\r\n"                              \
        "  00000000000c3000-00000000000e7fff (prio 0, rom): ram0 @00000000000c3000\r\n"            \
        "  00000000000e8000-00000000000effff (prio 0, ram): ram0 @00000000000e8000\r\n"            \
        "  00000000000f0000-00000000000fffff (prio 0, rom): ram0 @00000000000f0000\r\n"

/* q35, 3 GiB, after SeaBIOS shadowed itself into RAM (PAM): the memory
 * FlatView, the SMM one (here changed to map ram0 elsewhere, so that
 * reading it would show), part of the I/O one and an empty one. */
#define MTREE_Q35_3G_MEMORY                                                                        \
        "FlatView #0\r\n"                                                                          \
        MTREE_MEMORY_AS                                                                            \
        " AS \"ich9-ahci\", root: bus master container\r\n"                                        \
        " Root memory region: system\r\n"                                                          \
        MTREE_LOW_SHADOWED                                                                         \
        "  0000000000100000-000000007fffffff (prio 0, ram): ram0 @0000000000100000\r\n"            \
        "  00000000b0000000-00000000bfffffff (prio 0, i/o): pcie-mmcfg-mmio\r\n"                   \
        "  00000000febff000-00000000febfffff (prio 1, i/o): ahci\r\n"                              \
        "  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\r\n"                            \
        "  00000000fed00000-00000000fed003ff (prio 0, i/o): hpet\r\n"                              \
        "  00000000fed1c000-00000000fed1ffff (prio 1, i/o): lpc-rcrb-mmio\r\n"                     \
        "  00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi\r\n"                       \
        "  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\r\n"                           \
        "  0000000100000000-000000013fffffff (prio 0, ram): ram0 @0000000080000000\r\n"            \
        "\r\n"
#define MTREE_OTHERS                                                                               \
        "FlatView #1\r\n"                                                                          \
        " AS \"cpu-smm-0\", root: memory\r\n"                                                      \
        " Root memory region: memory\r\n"                                                          \
        "  0000000000000000-000000000009ffff (prio 0, ram): ram0\r\n"                              \
        "  00000000000a0000-00000000000bffff (prio 1, ram): ram0 @0000000000030000\r\n"            \
        "  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\r\n"                           \
        "\r\n"                                                                                     \
        "FlatView #2\r\n"                                                                          \
        " AS \"I/O\", root: io\r\n"                                                                \
        " Root memory region: io\r\n"                                                              \
        "  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan\r\n"                          \
        "  0000000000000008-000000000000000f (prio 0, i/o): dma-cont\r\n"                          \
        "  0000000000000010-000000000000001f (prio 0, i/o): io @0000000000000010\r\n"              \
        "  0000000000000020-0000000000000021 (prio 0, i/o): pic\r\n"                               \
        "\r\n"                                                                                     \
        "FlatView #3\r\n"                                                                          \
        " AS \"mch\", root: bus master container\r\n"                                              \
        " AS \"ICH9-LPC\", root: bus master container\r\n"                                         \
        " Root memory region: (none)\r\n"                                                          \
        "  No rendered FlatView\r\n"                                                               \
        "\r\n"

static const char MTREE_Q35_3G[] = MTREE_Q35_3G_MEMORY MTREE_OTHERS;
/* QEMU lists the FlatViews in no fixed order: SMM first. */
static const char MTREE_Q35_3G_SMM_FIRST[] = MTREE_OTHERS MTREE_Q35_3G_MEMORY;

/* pc (i440FX), 3.5 GiB: below 4G up to 3G, the rest from 4G. */
static const char MTREE_PC_3584M[] =
        "FlatView #0\r\n"
        " AS \"I/O\", root: io\r\n"
        " Root memory region: io\r\n"
        "  0000000000000000-0000000000000007 (prio 0, i/o): dma-chan\r\n"
        "\r\n"
        "FlatView #1\r\n"
        MTREE_MEMORY_AS
        " Root memory region: system\r\n"
        MTREE_LOW_SHADOWED
        "  0000000000100000-00000000bfffffff (prio 0, ram): ram0 @0000000000100000\r\n"
        "  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\r\n"
        "  00000000fed00000-00000000fed003ff (prio 0, i/o): hpet\r\n"
        "  00000000fee00000-00000000feefffff (prio 4096, i/o): apic-msi\r\n"
        "  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\r\n"
        "  0000000100000000-000000011fffffff (prio 0, ram): ram0 @00000000c0000000\r\n"
        "\r\n"
        "FlatView #2\r\n"
        " AS \"i440FX\", root: bus master container\r\n"
        " AS \"PIIX3\", root: bus master container\r\n"
        " Root memory region: (none)\r\n"
        "  No rendered FlatView\r\n"
        "\r\n";

/* q35, 128 MiB, after SeaBIOS: one range. */
static const char MTREE_Q35_128M[] =
        "FlatView #0\r\n"
        MTREE_MEMORY_AS
        " Root memory region: system\r\n"
        MTREE_LOW_SHADOWED
        "  0000000000100000-0000000007ffffff (prio 0, ram): ram0 @0000000000100000\r\n"
        "  00000000b0000000-00000000bfffffff (prio 0, i/o): pcie-mmcfg-mmio\r\n"
        "  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\r\n"
        "\r\n";

/* q35, 128 MiB, right after the reset, before SeaBIOS opened the shadow
 * RAM: [0xc0000, 0x100000) is the option ROMs and the BIOS. */
static const char MTREE_Q35_128M_AT_RESET[] =
        "FlatView #0\r\n"
        MTREE_MEMORY_AS
        " Root memory region: system\r\n"
        "  0000000000000000-00000000000bffff (prio 0, ram): ram0\r\n"
        "  00000000000c0000-00000000000dffff (prio 1, rom): pc.rom\r\n"
        "  00000000000e0000-00000000000fffff (prio 0, rom): pc.bios @0000000000020000\r\n"
        "  0000000000100000-0000000007ffffff (prio 0, ram): ram0 @0000000000100000\r\n"
        "  00000000fec00000-00000000fec00fff (prio 0, i/o): ioapic\r\n"
        "  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\r\n"
        "\r\n";

/* The head of a memory FlatView, for texts built from lines. */
#define MEMORY_HEAD "FlatView #0\n AS \"memory\", root: system\n Root memory region: system\n"

static void assert_ranges(const vmsig_gpa_range *got, size_t n_got, const vmsig_gpa_range *want, size_t n_want) {
        g_assert_cmpuint(n_got, ==, n_want);
        for (size_t i = 0; i < n_want; i++) {
                g_assert_cmphex(got[i].gpa, ==, want[i].gpa);
                g_assert_cmphex(got[i].size, ==, want[i].size);
                g_assert_cmphex(got[i].offset, ==, want[i].offset);
        }
}

static void assert_mtree(const char *text, const char *region, uint64_t file_size, const vmsig_gpa_range *want,
                         size_t n_want) {
        g_autofree vmsig_gpa_range *ranges = NULL;
        size_t n = 0;

        g_assert_cmpint(qmp_hmp_parse_mtree(text, region, file_size, &ranges, &n), ==, 0);
        assert_ranges(ranges, n, want, n_want);
}

static void assert_mtree_fails(const char *text, const char *region, uint64_t file_size, int error) {
        vmsig_gpa_range *ranges = (vmsig_gpa_range *) &SENTINEL;
        size_t n = 77;

        if (g_test_verbose())
                g_test_message("bad mtree (%d): %s", error, text);
        g_assert_cmpint(qmp_hmp_parse_mtree(text, region, file_size, &ranges, &n), ==, error);
        g_assert_true(ranges == (vmsig_gpa_range *) &SENTINEL);
        g_assert_cmpuint(n, ==, 77);
}

static void test_mtree_q35_3g(void) {
        const vmsig_gpa_range want[] = {
                { .gpa = 0, .size = 2 * GIB, .offset = 0 },
                { .gpa = 4 * GIB, .size = GIB, .offset = 2 * GIB },
        };

        assert_mtree(MTREE_Q35_3G, "ram0", 3 * GIB, want, G_N_ELEMENTS(want));
        assert_mtree(MTREE_Q35_3G_SMM_FIRST, "ram0", 3 * GIB, want, G_N_ELEMENTS(want));
        /* "\n" line ends, as another QEMU front end might give them. */
        g_autofree char *lf = strip_cr(MTREE_Q35_3G);
        assert_mtree(lf, "ram0", 3 * GIB, want, G_N_ELEMENTS(want));
        /* A larger file is fine: only what is mapped must be in it. */
        assert_mtree(MTREE_Q35_3G, "ram0", 4 * GIB, want, G_N_ELEMENTS(want));
}

static void test_mtree_pc(void) {
        const vmsig_gpa_range want[] = {
                { .gpa = 0, .size = 3 * GIB, .offset = 0 },
                { .gpa = 4 * GIB, .size = 512 * MIB, .offset = 3 * GIB },
        };

        assert_mtree(MTREE_PC_3584M, "ram0", 3584 * MIB, want, G_N_ELEMENTS(want));
}

static void test_mtree_small(void) {
        const vmsig_gpa_range one[] = { { .gpa = 0, .size = 128 * MIB, .offset = 0 } };
        const vmsig_gpa_range two[] = {
                { .gpa = 0, .size = 0xc0000, .offset = 0 },
                { .gpa = 0x100000, .size = 127 * MIB, .offset = 0x100000 },
        };

        assert_mtree(MTREE_Q35_128M, "ram0", 128 * MIB, one, G_N_ELEMENTS(one));
        assert_mtree(MTREE_Q35_128M_AT_RESET, "ram0", 128 * MIB, two, G_N_ELEMENTS(two));
}

static void test_mtree_names(void) {
        const vmsig_gpa_range kvm[] = { { .gpa = 0, .size = 0x200000, .offset = 0 } };

        /* Under KVM, QEMU names the accelerator after each range it maps. */
        assert_mtree(MEMORY_HEAD "  0000000000000000-00000000000fffff (prio 0, ram): ram0 KVM\n"
                                 "  0000000000100000-00000000001fffff (prio 0, ram): ram0 @0000000000100000 KVM\n",
                     "ram0", 2 * MIB, kvm, 1);
        /* A machine without memory-backend= calls its RAM pc.ram; names
         * that only begin with the region's are other regions. */
        const char *text = MEMORY_HEAD "  0000000000000000-00000000000fffff (prio 0, ram): pc.ram\n"
                                       "  0000000000100000-00000000001fffff (prio 0, ram): ram0.x\n"
                                       "  0000000000200000-00000000002fffff (prio 0, ram): ram00 @0000000000100000\n";
        const vmsig_gpa_range pc_ram[] = { { .gpa = 0, .size = MIB, .offset = 0 } };
        assert_mtree(text, "pc.ram", 2 * MIB, pc_ram, 1);
        assert_mtree_fails(text, "ram0", 2 * MIB, -ENOENT);
        assert_mtree_fails(text, "pc", 2 * MIB, -ENOENT);
        /* Other regions' names may hold blanks and anything else. */
        assert_mtree(MEMORY_HEAD "  0000000000000000-00000000000fffff (prio 0, ram): ram0\n"
                                 "  0000000000100000-00000000001fffff (prio 0, i/o): vga ioports @@ \"x\" (remapped)\n",
                     "ram0", 2 * MIB, pc_ram, 1);
        /* "nv-" (non-volatile) is still the file; a negative priority is
         * QEMU's too. */
        assert_mtree(MEMORY_HEAD "  0000000000000000-00000000000fffff (prio -1, nv-ram): ram0\n", "ram0", MIB, pc_ram,
                     1);
}

static void test_mtree_merge(void) {
        /* Contiguous in GPA but not in the file, and in the file but not in GPA. */
        const char *text = MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0 @0000000000001000\n"
                                       "  0000000000001000-0000000000001fff (prio 0, ram): ram0\n"
                                       "  0000000000003000-0000000000003fff (prio 0, rom): ram0 @0000000000001000\n"
                                       "  0000000000004000-0000000000004fff (prio 0, ram): ram0 @0000000000002000\n"
                                       "  0000000000005000-0000000000005fff (prio 0, i/o): mmio\n"
                                       "  0000000000006000-0000000000006fff (prio 0, ram): ram0 @0000000000003000\n";
        const vmsig_gpa_range want[] = {
                { .gpa = 0, .size = 0x1000, .offset = 0x1000 },
                { .gpa = 0x1000, .size = 0x1000, .offset = 0 },
                /* an alias of the first: the same file page at two GPAs */
                { .gpa = 0x3000, .size = 0x2000, .offset = 0x1000 },
                { .gpa = 0x6000, .size = 0x1000, .offset = 0x3000 },
        };
        assert_mtree(text, "ram0", 0x4000, want, G_N_ELEMENTS(want));

        /* Many lines that all merge are one range, not many. */
        g_autoptr(GString) s = g_string_new(MEMORY_HEAD);
        for (uint64_t i = 0; i < 4096; i++)
                g_string_append_printf(s, "  %016" PRIx64 "-%016" PRIx64 " (prio 0, ram): ram0 @%016" PRIx64 "\n",
                                       0x10000000 + i * 0x1000, 0x10000000 + i * 0x1000 + 0xfff, i * 0x1000);
        const vmsig_gpa_range merged[] = { { .gpa = 0x10000000, .size = 4096 * 0x1000, .offset = 0 } };
        assert_mtree(s->str, "ram0", 4096 * 0x1000, merged, 1);

        /* The whole 64-bit space in one line, as a file of 2^64 - 1 bytes
         * cannot hold: no wrap of end - start + 1 to 0. */
        const vmsig_gpa_range top[] = { { .gpa = UINT64_C(0xfffffffffffff000), .size = 0x1000, .offset = 0 } };
        assert_mtree(MEMORY_HEAD "  fffffffffffff000-ffffffffffffffff (prio 0, ram): ram0\n", "ram0", 0x1000, top, 1);
}

static void test_mtree_cap(void) {
        g_autoptr(GString) s = g_string_new(MEMORY_HEAD);
        g_autofree vmsig_gpa_range *ranges = NULL;
        size_t n = 0;

        /* QMP_HMP_MAX_RANGES ranges that do not merge (a hole between each) ... */
        for (uint64_t i = 0; i < QMP_HMP_MAX_RANGES; i++)
                g_string_append_printf(s, "  %016" PRIx64 "-%016" PRIx64 " (prio 0, ram): ram0 @%016" PRIx64 "\n",
                                       i * 0x2000, i * 0x2000 + 0xfff, i * 0x1000);
        g_assert_cmpint(qmp_hmp_parse_mtree(s->str, "ram0", QMP_HMP_MAX_RANGES * 0x1000, &ranges, &n), ==, 0);
        g_assert_cmpuint(n, ==, QMP_HMP_MAX_RANGES);
        for (size_t i = 0; i < n; i++) {
                g_assert_cmphex(ranges[i].gpa, ==, i * 0x2000);
                g_assert_cmphex(ranges[i].offset, ==, i * 0x1000);
        }
        /* ... and one more. */
        g_string_append_printf(s, "  %016" PRIx64 "-%016" PRIx64 " (prio 0, ram): ram0\n",
                               (uint64_t) QMP_HMP_MAX_RANGES * 0x2000, (uint64_t) QMP_HMP_MAX_RANGES * 0x2000 + 0xfff);
        assert_mtree_fails(s->str, "ram0", QMP_HMP_MAX_RANGES * 0x1000, -E2BIG);
}

static void test_mtree_absent(void) {
        assert_mtree_fails(MTREE_Q35_3G, "ram1", 3 * GIB, -ENOENT);
        assert_mtree_fails(MTREE_Q35_3G, "pc.ram", 3 * GIB, -ENOENT);
        /* ram0 is only in the SMM FlatView */
        assert_mtree_fails(MEMORY_HEAD "  00000000fffc0000-00000000ffffffff (prio 0, rom): pc.bios\n\n" MTREE_OTHERS,
                           "ram0", 3 * GIB, -ENOENT);
        assert_mtree_fails(MEMORY_HEAD "  No rendered FlatView\n\n", "ram0", 3 * GIB, -ENOENT);
        assert_mtree_fails(MEMORY_HEAD, "ram0", 3 * GIB, -ENOENT);

        /* No QOM id; the id may come from QEMU, so no assertion either. */
        assert_mtree_fails(MTREE_Q35_3G, "", 3 * GIB, -EINVAL);
        assert_mtree_fails(MTREE_Q35_3G, "ram0 @0000000080000000", 3 * GIB, -EINVAL);
        assert_mtree_fails(MTREE_Q35_3G, "ram0\r", 3 * GIB, -EINVAL);
        assert_mtree_fails(MTREE_Q35_3G, "ram0\t", 3 * GIB, -EINVAL);
}

static void test_mtree_range(void) {
        /* One byte short, for each of the two ranges. */
        assert_mtree_fails(MTREE_Q35_3G, "ram0", 3 * GIB - 1, -ERANGE);
        assert_mtree_fails(MTREE_Q35_3G, "ram0", 2 * GIB, -ERANGE);
        assert_mtree_fails(MTREE_Q35_3G, "ram0", 0, -ERANGE);
        assert_mtree_fails(MEMORY_HEAD "  0000000000000000-ffffffffffffffff (prio 0, ram): ram0\n", "ram0",
                           UINT64_MAX, -ERANGE);
        /* offset + size would wrap */
        assert_mtree_fails(MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0 @fffffffffffff001\n",
                           "ram0", UINT64_MAX, -ERANGE);
        assert_mtree_fails(MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0 @ffffffffffffffff\n",
                           "ram0", UINT64_MAX, -ERANGE);
}

/* Texts that are not a map of the memory FlatView, each -EBADMSG. */
#define LINE0 "  0000000000000000-0000000000000fff (prio 0, ram): ram0\n"
#define LINE1 "  0000000000001000-0000000000001fff (prio 0, ram): ram0 @0000000000001000\n"
static const char *const mtree_bad[] = {
        "",
        "\n",
        "garbage\n",
        /* no memory FlatView */
        MTREE_OTHERS,
        "FlatView #0\n AS \"memoryx\", root: system\n Root memory region: system\n" LINE0,
        "FlatView #0\n AS \"memory\n Root memory region: system\n" LINE0,
        "FlatView #0\n AS memory, root: system\n Root memory region: system\n" LINE0,
        /* two of them */
        MEMORY_HEAD LINE0 "\n" MEMORY_HEAD LINE1,
        "FlatView #0\n AS \"memory\", root: system\n AS \"memory\", root: system\n"
        " Root memory region: system\n" LINE0,
        /* cut off, or out of shape */
        "FlatView #0\n",
        "FlatView #0\n AS \"memory\", root: system\n",
        "FlatView #0\n AS \"memory\", root: system\nFlatView #1\n",
        "FlatView #\n AS \"memory\", root: system\n Root memory region: system\n" LINE0,
        "FlatView #x\n AS \"memory\", root: system\n Root memory region: system\n" LINE0,
        "\nFlatView #0\n AS \"memory\", root: system\n\n Root memory region: system\n" LINE0,
        "junk\n" MEMORY_HEAD LINE0,
        MEMORY_HEAD LINE0 "\njunk\n",
        MEMORY_HEAD LINE0 " 0000000000001000-0000000000001fff (prio 0, ram): ram0\n",
        MEMORY_HEAD LINE0 "\t0000000000001000-0000000000001fff (prio 0, ram): ram0\n",
        /* out of order, overlapping, twice, end < start */
        MEMORY_HEAD LINE1 LINE0,
        MEMORY_HEAD LINE0 LINE0,
        MEMORY_HEAD LINE0 "  0000000000000fff-0000000000001fff (prio 0, ram): ram0\n",
        MEMORY_HEAD LINE0 "  0000000000000800-0000000000000900 (prio 0, i/o): mmio\n",
        MEMORY_HEAD "  0000000000001000-0000000000000fff (prio 0, ram): ram0\n",
        /* digits: 15, 17, not hex, a sign, a prefix */
        MEMORY_HEAD "  000000000000000-0000000000000fff (prio 0, ram): ram0\n",
        MEMORY_HEAD "  00000000000000000-0000000000000fff (prio 0, ram): ram0\n",
        MEMORY_HEAD "  0000000000000000-00000000000000fff (prio 0, ram): ram0\n",
        MEMORY_HEAD "  000000000000000g-0000000000000fff (prio 0, ram): ram0\n",
        MEMORY_HEAD "  +000000000000000-0000000000000fff (prio 0, ram): ram0\n",
        MEMORY_HEAD "  0x00000000000000-0000000000000fff (prio 0, ram): ram0\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0 @000000000000100\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0 @00000000000010000\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0 @\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0 @-000000000001000\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0 @0000000000001000"
                    " @0000000000001000\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0 KVM @0000000000001000\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0  KVM\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0 \n",
        /* the fields around the name */
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio , ram): ram0\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 12345678901, ram): ram0\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0 ram): ram0\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ): ram0\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram) ram0\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, RAM): ram0\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff prio 0, ram: ram0\n",
        MEMORY_HEAD "  0000000000000000 0000000000000fff (prio 0, ram): ram0\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff\n",
        MEMORY_HEAD "  \n",
        /* the region as something else than RAM */
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, i/o): ram0\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, romd): ram0\n",
        /* a "\r" inside a line */
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0, ram): ram0\r @0000000000001000\n",
        MEMORY_HEAD "  0000000000000000-0000000000000fff (prio 0,\r ram): ram0\n",
};

static void test_mtree_bad(void) {

        for (size_t i = 0; i < G_N_ELEMENTS(mtree_bad); i++)
                assert_mtree_fails(mtree_bad[i], "ram0", 1 << 20, -EBADMSG);

        /* A NUL ends the text: here inside the header, so there is no map. */
        static const char nul[] = "FlatView #0\n AS \"memory\", root: system\n\0 Root memory region: system\n" LINE0;
        assert_mtree_fails(nul, "ram0", 1 << 20, -EBADMSG);
#undef LINE0
#undef LINE1
}

/* --- against a real QEMU --- */

/* What human-monitor-command prints for command (g_free() it). */
static char *hmp(QemuVm *vm, const char *command) {
        g_autofree char *args = g_strdup_printf("{\"command-line\": \"%s\"}", command);
        json_object *r = qmp_session_execute(vm->session, "human-monitor-command", args, NULL);
        char *text;

        g_assert_nonnull(r);
        /* What the backend must check as well: a NUL inside would hide
         * the rest of the text from the parsers. */
        g_assert_cmpuint(strlen(json_object_get_string(r)), ==, (size_t) json_object_get_string_len(r));
        text = g_strdup(json_object_get_string(r));
        json_object_put(r);
        return text;
}

static bool ranges_equal(const vmsig_gpa_range *a, size_t n_a, const vmsig_gpa_range *b, size_t n_b) {
        return n_a == n_b && memcmp(a, b, n_a * sizeof *a) == 0;
}

/* Writes a fresh marker into the RAM file where the map says gpa is and
 * reads it back through QEMU at gpa. */
static void prove_gpa(QemuVm *vm, int fd, const vmsig_gpa_range *range, uint64_t gpa) {
        uint64_t marker = (uint64_t) g_test_rand_int() << 32 | g_test_rand_int();
        uint64_t offset = range->offset + (gpa - range->gpa);

        g_assert_cmpuint(gpa, >=, range->gpa);
        g_assert_cmpuint(gpa + 8, <=, range->gpa + range->size);
        g_assert_cmpint(pwrite(fd, &marker, sizeof marker, (off_t) offset), ==, sizeof marker);
        if (g_test_verbose())
                g_test_message("GPA 0x%" PRIx64 " = file 0x%" PRIx64, gpa, offset);
        g_assert_cmphex(qmp_session_xp(vm->session, gpa), ==, marker);
}

static void prove_map(QemuVm *vm, int fd, const vmsig_gpa_range *ranges, size_t n) {
        for (size_t i = 0; i < n; i++) {
                const vmsig_gpa_range *r = &ranges[i];

                prove_gpa(vm, fd, r, r->gpa);
                prove_gpa(vm, fd, r, r->gpa + 0x1000);
                prove_gpa(vm, fd, r, r->gpa + (r->size / 2 & ~UINT64_C(7)));
                prove_gpa(vm, fd, r, r->gpa + (g_test_rand_int_range(0, (int32_t) (r->size >> 12)) * UINT64_C(0x1000)));
                prove_gpa(vm, fd, r, r->gpa + r->size - 8);
        }
}

typedef struct Layout {
        const char *machine;
        uint64_t mib;
        size_t n;
        vmsig_gpa_range ranges[2];
} Layout;

static const Layout LAYOUT_Q35_128M = {
        "q35", 128, 1, { { .gpa = 0, .size = 128 * MIB, .offset = 0 } },
};
static const Layout LAYOUT_Q35_3G = {
        "q35", 3072, 2,
        { { .gpa = 0, .size = 2 * GIB, .offset = 0 }, { .gpa = 4 * GIB, .size = GIB, .offset = 2 * GIB } },
};
static const Layout LAYOUT_PC_3584M = {
        "pc", 3584, 2,
        { { .gpa = 0, .size = 3 * GIB, .offset = 0 }, { .gpa = 4 * GIB, .size = 512 * MIB, .offset = 3 * GIB } },
};
static const Layout LAYOUT_PC_4G = {
        "pc", 4096, 2,
        { { .gpa = 0, .size = 3 * GIB, .offset = 0 }, { .gpa = 4 * GIB, .size = GIB, .offset = 3 * GIB } },
};

static int open_ram(QemuVm *vm, uint64_t *ret_size) {
        struct stat st;
        int fd = open(vm->ram_path, O_RDWR | O_CLOEXEC);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(fstat(fd, &st), ==, 0);
        *ret_size = (uint64_t) st.st_size;
        return fd;
}

static void test_live_mtree(gconstpointer data) {
        const Layout *layout = data;
        g_autofree vmsig_gpa_range *ranges = NULL;
        g_autofree char *text = NULL;
        uint64_t file_size;
        size_t n = 0;
        int64_t deadline;
        QemuVm *vm;
        int fd;

        if (!qemu_harness_available())
                return;
        vm = qemu_vm_new();
        vm->machine = layout->machine;
        vm->ram_mib = layout->mib;
        qemu_vm_start(vm);
        fd = open_ram(vm, &file_size);
        g_assert_cmpuint(file_size, ==, layout->mib * MIB);

        /* The map changes while the machine starts: [0xc0000, 0x100000) is
         * the BIOS until SeaBIOS has opened the shadow RAM there (the PAM
         * registers). Each map on the way must parse; the last one is the
         * one expected. */
        deadline = g_get_monotonic_time() + 10 * G_USEC_PER_SEC;
        for (;;) {
                g_clear_pointer(&ranges, g_free);
                g_clear_pointer(&text, g_free);
                text = hmp(vm, "info mtree -f");
                g_assert_cmpint(qmp_hmp_parse_mtree(text, "ram0", file_size, &ranges, &n), ==, 0);
                if (ranges_equal(ranges, n, layout->ranges, layout->n))
                        break;
                if (g_get_monotonic_time() > deadline) {
                        g_test_message("%s", text);
                        assert_ranges(ranges, n, layout->ranges, layout->n);
                }
                g_usleep(20000);
        }

        /* Stopped, so that the markers (in SeaBIOS's data, some of them)
         * cannot throw the guest off while they are read back. */
        qmp_session_run(vm->session, "stop", NULL);
        prove_map(vm, fd, ranges, n);

        close(fd);
        qemu_vm_free(vm);
}

static void test_live_registers_firmware(void) {
        vmsig_vcpu_state v;
        g_autofree char *text = NULL;
        QemuVm *vm;

        if (!qemu_harness_available())
                return;
        vm = qemu_vm_new();
        qemu_vm_start(vm);
        for (unsigned i = 0; i < 10; i++) {
                g_clear_pointer(&text, g_free);
                text = hmp(vm, "info registers");
                g_assert_cmpint(qmp_hmp_parse_registers(text, &v), ==, 0);
                g_assert_cmpuint(vmsig_vcpu_paging_levels(&v), ==, 0);
                g_assert_cmphex(v.cr0 & VMSIG_CR0_PG, ==, 0);
                g_assert_cmphex(v.efer & VMSIG_EFER_LMA, ==, 0);
                g_usleep(50000);
        }
        qemu_vm_free(vm);
}

/* Debian's kernel (linux-image-*-amd64 installs it as /boot/vmlinuz-*),
 * or VMSIG_TEST_KERNEL; NULL (and the test skipped, or aborted under
 * CI=true) if there is none. */
static char *find_kernel(void) {
        const char *env = g_getenv("VMSIG_TEST_KERNEL");
        g_autoptr(GDir) dir = NULL;
        char *best = NULL;
        const char *name;

        if (env && *env)
                return g_strdup(env);
        dir = g_dir_open("/boot", 0, NULL);
        while (dir && (name = g_dir_read_name(dir)))
                if (g_str_has_prefix(name, "vmlinuz-") && (!best || strcmp(name, best) > 0)) {
                        g_free(best);
                        best = g_strdup(name);
                }
        if (best) {
                char *path = g_build_filename("/boot", best, NULL);
                g_free(best);
                return path;
        }
        if (g_strcmp0(g_getenv("CI"), "true") == 0)
                g_error("no Linux kernel in /boot; CI must not skip (apt-get install linux-image-cloud-amd64)");
        g_test_skip("no Linux kernel in /boot (apt-get install linux-image-cloud-amd64)");
        return NULL;
}

/* Boots the kernel without an initrd (it panics, but long after it went to
 * long mode) and polls until paging has the expected number of levels. */
/* Polls "info registers" until paging has levels levels (g_error() after
 * 30 s); the registers in *v, their text returned (g_free() it). */
static char *wait_for_paging(QemuVm *vm, unsigned levels, vmsig_vcpu_state *v) {
        int64_t deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
        char *text = NULL;

        for (;;) {
                g_clear_pointer(&text, g_free);
                text = hmp(vm, "info registers");
                g_assert_cmpint(qmp_hmp_parse_registers(text, v), ==, 0);
                if (vmsig_vcpu_paging_levels(v) == levels)
                        return text;
                if (g_get_monotonic_time() > deadline)
                        g_error("no %u-level paging in 30 s; last:\n%s", levels, text);
                g_usleep(20000);
        }
}

/* The root is in RAM, and the map and the registers agree with QEMU about
 * it: a present entry of the root table, read from the file at the offset
 * the map gives, is what QEMU reads at the GPA. (Whether the decompressor's
 * table or the kernel's, it has one; entry 0 is empty in the kernel's.) */
static void assert_root_table(QemuVm *vm, const vmsig_vcpu_state *v, uint64_t root) {
        g_autofree vmsig_gpa_range *ranges = NULL;
        g_autofree char *text = NULL;
        uint64_t file_size, table[512];
        size_t n = 0, present;
        int fd;

        fd = open_ram(vm, &file_size);
        text = hmp(vm, "info mtree -f");
        g_assert_cmpint(qmp_hmp_parse_mtree(text, "ram0", file_size, &ranges, &n), ==, 0);
        for (size_t i = 0;; i++) {
                g_assert_cmpuint(i, <, n);
                if (root < ranges[i].gpa || root - ranges[i].gpa >= ranges[i].size)
                        continue;
                g_assert_cmpuint(root - ranges[i].gpa + sizeof table, <=, ranges[i].size);
                off_t at = (off_t) (ranges[i].offset + (root - ranges[i].gpa));
                g_assert_cmpint(pread(fd, table, sizeof table, at), ==, sizeof table);
                break;
        }
        for (present = 0; present < G_N_ELEMENTS(table); present++)
                if (table[present] & 1)
                        break;
        g_assert_cmpuint(present, <, G_N_ELEMENTS(table));
        g_assert_cmphex(qmp_session_xp(vm->session, root + present * 8), ==, table[present]);
        if (g_test_verbose())
                g_test_message("CR3 0x%" PRIx64 " CR4 0x%" PRIx64 " root[%zu] 0x%016" PRIx64, v->cr3, v->cr4,
                               present, table[present]);
        close(fd);
}

/* Boots the kernel without an initrd (it panics, but long after it went to
 * long mode) and polls until paging has the expected number of levels. */
static void test_live_registers_long_mode(gconstpointer data) {
        unsigned levels = GPOINTER_TO_UINT(data);
        g_autofree char *kernel = NULL, *text = NULL;
        vmsig_vcpu_state v = {};
        uint64_t root;
        QemuVm *vm;

        if (!qemu_harness_available() || !(kernel = find_kernel()))
                return;
        vm = qemu_vm_new();
        vm->ram_mib = 512;
        vm->kernel = kernel;
        vm->no_reboot = true;
        if (levels == 5)
                vm->cpu = "max";
        qemu_vm_start(vm);
        text = wait_for_paging(vm, levels, &v);

        /* Stopped, the registers and the root table hold still. */
        qmp_session_run(vm->session, "stop", NULL);
        g_clear_pointer(&text, g_free);
        text = hmp(vm, "info registers");
        g_assert_cmpint(qmp_hmp_parse_registers(text, &v), ==, 0);
        g_assert_cmpuint(vmsig_vcpu_paging_levels(&v), ==, levels);
        /* The long-mode layout of the registers. */
        g_assert_nonnull(strstr(text, "\nRIP="));
        root = v.cr3 & VMSIG_CR3_ROOT_MASK;
        g_assert_cmphex(root, !=, 0);
        /* TCG has no PCID: nothing else in CR3 but the root. */
        g_assert_cmphex(v.cr4 & CR4_PCIDE, ==, 0);
        g_assert_cmphex(v.cr3, ==, root);
        assert_root_table(vm, &v, root);
        qemu_vm_free(vm);
}

/* The holes below 1 MiB (the BIOS SeaBIOS has not opened yet, a VGA
 * window) are closed where the file's offsets span them; other holes
 * stay. */
static void test_legacy_hole(void) {
        vmsig_gpa_range early[] = {
                { 0, 0xc0000, 0 },
                { 0x100000, 0x7ff00000, 0x100000 },
                { UINT64_C(0x100000000), UINT64_C(0x40000000), UINT64_C(0x80000000) },
        };
        /* A VGA device at reset: the VGA window and the BIOS, one hole. */
        vmsig_gpa_range vga[] = { { 0, 0xa0000, 0 }, { 0x100000, 0x100000, 0x100000 } };
        /* The same once SeaBIOS opened the shadow RAM. */
        vmsig_gpa_range vga_later[] = { { 0, 0xa0000, 0 }, { 0xc0000, 0x140000, 0xc0000 } };
        vmsig_gpa_range shifted[] = { { 0, 0xc0000, 0 }, { 0x100000, 0x100000, 0x200000 } };
        vmsig_gpa_range below[] = { { 0, 0x90000, 0 }, { 0x100000, 0x100000, 0x100000 } };
        vmsig_gpa_range above[] = { { 0, 0xa0000, 0 }, { 0x101000, 0x100000, 0x101000 } };

        g_assert_cmpuint(qmp_ram_map_close_legacy_hole(early, G_N_ELEMENTS(early)), ==, 2);
        g_assert_cmphex(early[0].gpa, ==, 0);
        g_assert_cmphex(early[0].size, ==, 0x80000000);
        g_assert_cmphex(early[0].offset, ==, 0);
        g_assert_cmphex(early[1].gpa, ==, UINT64_C(0x100000000));
        g_assert_cmphex(early[1].offset, ==, UINT64_C(0x80000000));
        g_assert_cmpuint(qmp_ram_map_close_legacy_hole(vga, G_N_ELEMENTS(vga)), ==, 1);
        g_assert_cmphex(vga[0].size, ==, 0x200000);
        g_assert_cmpuint(qmp_ram_map_close_legacy_hole(vga_later, G_N_ELEMENTS(vga_later)), ==, 1);
        g_assert_cmphex(vga_later[0].size, ==, 0x200000);
        /* Not a hole the file does not span, nor one that reaches out of
         * the legacy area. */
        g_assert_cmpuint(qmp_ram_map_close_legacy_hole(shifted, G_N_ELEMENTS(shifted)), ==, 2);
        g_assert_cmpuint(qmp_ram_map_close_legacy_hole(below, G_N_ELEMENTS(below)), ==, 2);
        g_assert_cmpuint(qmp_ram_map_close_legacy_hole(above, G_N_ELEMENTS(above)), ==, 2);
        g_assert_cmpuint(qmp_ram_map_close_legacy_hole(NULL, 0), ==, 0);
}

int main(int argc, char **argv) {
        g_test_init(&argc, &argv, NULL);

        VT_TESTS("/qmp-hmp/registers/", test_registers_firmware, test_registers_all_cpus, test_registers_long_mode,
                 test_registers_la57, test_registers_pcid, test_registers_variants, test_registers_bad);
        g_test_add_func("/qmp-hmp/mtree/q35-3g", test_mtree_q35_3g);
        g_test_add_func("/qmp-hmp/mtree/pc-3584m", test_mtree_pc);
        VT_TESTS("/qmp-hmp/mtree/", test_mtree_small, test_mtree_names, test_mtree_merge, test_mtree_cap,
                 test_mtree_absent, test_mtree_range, test_mtree_bad);
        g_test_add_data_func("/qmp-hmp/live/mtree/q35-128m", &LAYOUT_Q35_128M, test_live_mtree);
        g_test_add_data_func("/qmp-hmp/live/mtree/q35-3072m", &LAYOUT_Q35_3G, test_live_mtree);
        g_test_add_data_func("/qmp-hmp/live/mtree/pc-3584m", &LAYOUT_PC_3584M, test_live_mtree);
        g_test_add_data_func("/qmp-hmp/live/mtree/pc-4096m", &LAYOUT_PC_4G, test_live_mtree);
        g_test_add_func("/qmp-hmp/live/registers/firmware", test_live_registers_firmware);
        g_test_add_data_func("/qmp-hmp/live/registers/4-level", GUINT_TO_POINTER(4), test_live_registers_long_mode);
        g_test_add_data_func("/qmp-hmp/live/registers/5-level", GUINT_TO_POINTER(5), test_live_registers_long_mode);
        g_test_add_func("/qmp-hmp/legacy-hole", test_legacy_hole);
        return g_test_run();
}
