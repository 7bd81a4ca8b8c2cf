/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The synthetic guest program (see tests/synthetic-vcpu.h for the
 * handshake): a multiboot v1 image that waits with paging off until the
 * test hands it a CR3 through the mailbox at 0x500, then enters long mode,
 * runs on that CR3 and halts for good.
 *
 * Built with the C preprocessor (for the header's constants), `as --32`
 * and `ld -m elf_i386 -T longmode.ld`: QEMU's -kernel takes no 64-bit ELF.
 * QEMU's multiboot loader enters at _start in 32-bit protected mode with
 * flat segments, paging and interrupts off.
 */
#include "synthetic-vcpu.h"

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0 /* no module alignment, no memory map, the ELF says where to load */

#define CODE32 0x08
#define DATA 0x10
#define CODE64 0x18

#define TICK_VECTOR 0x20 /* the master PIC's IRQ0, once remapped */
#define PIT_HZ 1193182
#define PIT_DIVISOR ((PIT_HZ + 500) / 1000) /* 1 kHz: at most 1 ms from magic to long mode */

#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define MSR_EFER 0xC0000080
#define EFER_LME 0x100

        .section .multiboot, "a"
        .balign 4
        .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

        .text
        .code32
        .globl _start
_start:
        cli
        /* Our own GDT: QEMU's option ROM leaves one whose selectors an
         * iret would reload, and it has no 64-bit code segment. */
        lgdt gdt_desc
        ljmp $CODE32, $1f
1:      mov $DATA, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %fs
        mov %ax, %gs
        mov %ax, %ss
        mov $stack_top, %esp

        /* An IDT for the timer tick alone: exceptions have no gate, so a
         * fault here triple-faults and resets, as it should. Zeroed by
         * hand: a loader need not clear .bss. */
        mov $idt, %edi
        xor %eax, %eax
        mov $(TICK_VECTOR + 1) * 2, %ecx
        cld
        rep stosl
        mov $tick, %eax
        mov %eax, %edx
        and $0xFFFF, %eax
        or $(CODE32 << 16), %eax
        and $0xFFFF0000, %edx
        or $0x8E00, %edx /* present, ring 0, 32-bit interrupt gate */
        mov %eax, idt + TICK_VECTOR * 8
        mov %edx, idt + TICK_VECTOR * 8 + 4
        lidt idt_desc

        /* Both PICs reinitialised rather than trusting the firmware: IRQ0
         * to TICK_VECTOR, everything but IRQ0 masked. */
        mov $0x11, %al /* ICW1: edge, cascade, ICW4 follows */
        out %al, $0x20
        out %al, $0xA0
        mov $TICK_VECTOR, %al /* ICW2: vector bases */
        out %al, $0x21
        mov $(TICK_VECTOR + 8), %al
        out %al, $0xA1
        mov $0x04, %al /* ICW3: the slave on IRQ2 */
        out %al, $0x21
        mov $0x02, %al
        out %al, $0xA1
        mov $0x01, %al /* ICW4: 8086 mode */
        out %al, $0x21
        out %al, $0xA1
        mov $0xFE, %al
        out %al, $0x21
        mov $0xFF, %al
        out %al, $0xA1

        /* PIT channel 0, rate generator: the tick that wakes the wait. */
        mov $0x34, %al
        out %al, $0x43
        mov $(PIT_DIVISOR & 0xFF), %al
        out %al, $0x40
        mov $(PIT_DIVISOR >> 8), %al
        out %al, $0x40

        movl $SYNTHETIC_VCPU_WAITING_LO, SYNTHETIC_VCPU_STATE_GPA
        movl $SYNTHETIC_VCPU_WAITING_HI, SYNTHETIC_VCPU_STATE_GPA + 4

        /* Wait in hlt rather than spin: under TCG a spinning vCPU takes a
         * whole host core. sti's one-instruction shadow makes sti; hlt
         * atomic, and the tick comes back anyway. */
wait:
        sti
        hlt
        cli
        cmpl $SYNTHETIC_VCPU_MAGIC_LO, SYNTHETIC_VCPU_MAGIC_GPA
        jne wait
        cmpl $SYNTHETIC_VCPU_MAGIC_HI, SYNTHETIC_VCPU_MAGIC_GPA + 4
        jne wait

        /* Nothing may interrupt long mode: the IDT is a 32-bit one. The
         * PIT goes one-shot (mode 0), as QEMU would otherwise keep running
         * its timer 1000 times a second behind the masked IRQ. */
        mov $0xFF, %al
        out %al, $0x21
        mov $0x30, %al
        out %al, $0x43
        mov $1, %al
        out %al, $0x40
        xor %al, %al
        out %al, $0x40

        /* The bootstrap tables, built afresh each time: PML4[0] -> PDPT,
         * PDPT[0] -> PD, PD[0] = 2 MiB at 0, which holds this program.
         * The test's CR3 is loaded only in 64-bit mode, where CR3 has all
         * its bits: in 32-bit mode it could not name a table above 4 GiB. */
        mov $boot_pml4, %edi
        xor %eax, %eax
        mov $(3 * 4096 / 4), %ecx
        rep stosl
        movl $(boot_pdpt + 0x3), boot_pml4 /* present, writable */
        movl $(boot_pd + 0x3), boot_pdpt
        movl $0xE3, boot_pd /* present, writable, accessed, dirty, 2 MiB */

        /* The architectural order: PAE, CR3, EFER.LME, then CR0.PG, which
         * activates long mode (EFER.LMA) in compatibility mode. */
        mov %cr4, %eax
        or $CR4_PAE, %eax
        mov %eax, %cr4
        mov $boot_pml4, %eax
        mov %eax, %cr3
        mov $MSR_EFER, %ecx
        rdmsr
        or $EFER_LME, %eax
        wrmsr
        mov %cr0, %eax
        or $CR0_PG, %eax
        mov %eax, %cr0
        ljmp $CODE64, $long64

        .code64
long64:
        mov SYNTHETIC_VCPU_CR3_GPA, %rax
        mov %rax, %cr3
        /* Written through the test's tables: proof they map us. */
        movl $SYNTHETIC_VCPU_LONG_LO, SYNTHETIC_VCPU_STATE_GPA
        movl $SYNTHETIC_VCPU_LONG_HI, SYNTHETIC_VCPU_STATE_GPA + 4
halt:
        cli
        hlt
        jmp halt

        .code32
        /* The tick: acknowledge it and go back to the wait. */
tick:
        push %eax
        mov $0x20, %al /* non-specific EOI */
        out %al, $0x20
        pop %eax
        iret

        .section .rodata
        .balign 8
gdt:
        .quad 0
        .quad 0x00CF9A000000FFFF /* CODE32: base 0, 4 GiB, 32-bit */
        .quad 0x00CF92000000FFFF /* DATA: base 0, 4 GiB, writable */
        .quad 0x00AF9A000000FFFF /* CODE64: L set, D clear */
gdt_end:
gdt_desc:
        .word gdt_end - gdt - 1
        .long gdt
idt_desc:
        .word (TICK_VECTOR + 1) * 8 - 1
        .long idt

        .bss
        .balign 4096
boot_pml4:
        .skip 4096
boot_pdpt:
        .skip 4096
boot_pd:
        .skip 4096
idt:
        .skip (TICK_VECTOR + 1) * 8
        .balign 16
        .skip 4096
stack_top:
