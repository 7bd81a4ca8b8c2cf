/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A vCPU that really runs on synthetic page tables: a tiny multiboot
 * program (tests/guest/longmode.S, built into tests/guest/longmode.elf) that
 * QEMU loads with -kernel, and the test side of its handshake.
 *
 * The handshake goes through a mailbox in low memory, which neither SeaBIOS
 * nor a reset touches:
 *
 *   0x500  magic   SYNTHETIC_VCPU_MAGIC ("vmsigCR3"), written by the test last
 *   0x508  cr3     the CR3 to load, written by the test before the magic
 *   0x510  state   written by the program: SYNTHETIC_VCPU_STATE_WAITING
 *                  ("waiting") once it waits with paging off, then
 *                  SYNTHETIC_VCPU_STATE_LONG ("longmode") from 64-bit code
 *                  after it loaded the test's CR3
 *
 * The program waits with interrupts on in a hlt loop, woken by the PIT at
 * 1 kHz: QEMU takes 2-4 % of a core while it waits (a spinning vCPU would
 * take a whole one), and a written magic is seen within about a
 * millisecond. When it sees the magic it stops the PIT and enters long mode on a
 * bootstrap identity map of its own (PAE, CR3, EFER.LME, CR0.PG, a far jump
 * into a 64-bit code segment), loads the CR3 from the mailbox there (so it
 * may be any 52-bit address, also above 4 GiB), writes the long-mode state
 * and idles in a cli; hlt loop: QEMU then uses no CPU at all.
 *
 * The tables behind that CR3 must identity-map the program, the mailbox and
 * the program's stack, all of which lie in the first 2 MiB: PML4[0] -> PDPT,
 * PDPT[0] -> PD, PD[0] = a 2 MiB page at 0 (0x83, or 0xE3 with accessed and
 * dirty already set, so that the CPU does not change the image). Without
 * them the vCPU triple-faults and the guest resets over and over.
 *
 * After a reset the firmware loads the program again, and it waits again.
 * The magic must be cleared before the reset (synthetic_vcpu_reset() does),
 * or the new program goes straight back into long mode on the old CR3.
 *
 * Memory the images must leave alone: page 0 (the mailbox, the real-mode
 * IVT and BIOS data), the program and the multiboot information QEMU puts
 * after it (SYNTHETIC_VCPU_PROGRAM_GPA up to SYNTHETIC_VCPU_PROGRAM_END),
 * and whatever else SeaBIOS keeps below 1 MiB and at the top of low RAM.
 */

#define SYNTHETIC_VCPU_MAGIC_GPA 0x500
#define SYNTHETIC_VCPU_CR3_GPA 0x508
#define SYNTHETIC_VCPU_STATE_GPA 0x510

/* The values in two halves, so that the 32-bit program can compare them. */
#define SYNTHETIC_VCPU_MAGIC_LO 0x69736d76 /* "vmsi" */
#define SYNTHETIC_VCPU_MAGIC_HI 0x33524367 /* "gCR3" */
#define SYNTHETIC_VCPU_WAITING_LO 0x74696177 /* "wait" */
#define SYNTHETIC_VCPU_WAITING_HI 0x00676e69 /* "ing\0" */
#define SYNTHETIC_VCPU_LONG_LO 0x676e6f6c /* "long" */
#define SYNTHETIC_VCPU_LONG_HI 0x65646f6d /* "mode" */

/* Where the linker script puts the program; QEMU's multiboot information
 * follows it. 128 KiB is far more than both take. */
#define SYNTHETIC_VCPU_PROGRAM_GPA 0x100000
#define SYNTHETIC_VCPU_PROGRAM_END 0x120000

#ifndef __ASSEMBLER__

#include <stdint.h>

#include "qemu-harness.h"

#define SYNTHETIC_VCPU_HALVES(hi, lo) (((uint64_t) (hi) << 32) | (uint64_t) (lo))
#define SYNTHETIC_VCPU_MAGIC SYNTHETIC_VCPU_HALVES(SYNTHETIC_VCPU_MAGIC_HI, SYNTHETIC_VCPU_MAGIC_LO)
#define SYNTHETIC_VCPU_STATE_WAITING SYNTHETIC_VCPU_HALVES(SYNTHETIC_VCPU_WAITING_HI, SYNTHETIC_VCPU_WAITING_LO)
#define SYNTHETIC_VCPU_STATE_LONG SYNTHETIC_VCPU_HALVES(SYNTHETIC_VCPU_LONG_HI, SYNTHETIC_VCPU_LONG_LO)

/* The bits of QemuRegisters (qemu-harness.h) that show long mode. */
#define SYNTHETIC_VCPU_CR0_PG (UINT64_C(1) << 31)
#define SYNTHETIC_VCPU_EFER_LMA (UINT64_C(1) << 10)

/* The program's ELF: $VMSIG_SYNTHETIC_GUEST, or the build directory's
 * tests/guest/longmode.elf (compiled in as SYNTHETIC_VCPU_PROGRAM). */
const char *synthetic_vcpu_program(void);

/* The mailbox, read and written through the RAM file (offset == GPA). */
uint64_t synthetic_vcpu_peek(QemuVm *vm, uint64_t gpa);
void synthetic_vcpu_poke(QemuVm *vm, uint64_t gpa, uint64_t value);

/* Sets vm->kernel to the program, clears a stale mailbox if the RAM file
 * exists already, starts QEMU (continuing it if vm->start_paused), and
 * waits (10 s at most) until the program writes the waiting state; then
 * checks that paging is off. vm->no_reboot must be off for resets. */
void synthetic_vcpu_start(QemuVm *vm);
/* Writes cr3, then the magic, and polls `info registers` until CR0.PG,
 * EFER.LMA and CR3 == cr3, and the program wrote the long-mode state;
 * g_error with the last register dump after 10 s. The tables must be in
 * place. */
void synthetic_vcpu_enter(QemuVm *vm, uint64_t cr3);
/* Clears the magic and the state, resets the guest (system_reset) and
 * waits until paging is off, CR3 is 0 and the program waits again. RAM
 * keeps everything else: the previous boot's tables stay. */
void synthetic_vcpu_reset(QemuVm *vm);

#endif
