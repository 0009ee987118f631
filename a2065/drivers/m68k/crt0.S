/* Startup, vector table and exception entry points of the A2065 test driver (68000).
 *
 * Memory map (flat binary loaded at $000000; see link.ld):
 *   $000000-$0003FF  vector table (256 longs); vector 0 = initial SSP, 1 = reset PC
 *   $000400-$0004FF  mailbox (mailbox.h), shared with the host
 *   $000500-...      code, data, bss; stack grows down from __stack_top
 *
 * Vector 26 (level-2 autovector, $68) -> irq2 -> lance_isr() in C.
 * Vector 24 (spurious interrupt) is counted and ignored. Every other vector (bus error,
 * address error, illegal instruction, other autovectors, traps, ...) goes to its own stub,
 * which records the vector number and the stacked PC in the mailbox and halts with
 * STOP #$2700 (interrupts masked), so the host sees state = ST_FAULT.
 */
#include "mailbox.h"

#define STUB_SIZE 10            /* move.w #n,abs.w (6) + bra.w (4) */

        .section .vectors,"ax"
        .globl  _vectors
_vectors:
        .long   __stack_top             /* 0: initial SSP */
        .long   _start                  /* 1: initial PC */
        .set    vec, 2
        .rept   254
        .if     vec == 24
        .long   spurious
        .elseif vec == 26
        .long   irq2
        .else
        .long   fault_stubs + (vec - 2) * STUB_SIZE
        .endif
        .set    vec, vec + 1
        .endr

        .section .text.start,"ax"
        .globl  _start
_start:
        move.w  #0x2700,%sr             /* supervisor, all interrupts masked */
        lea     __stack_top,%sp
        lea     __bss_start,%a0
        lea     __bss_end,%a1
1:      cmpa.l  %a1,%a0
        bcc.s   2f
        clr.b   (%a0)+
        bra.s   1b
2:      jsr     main
        /* main never returns; if it does, halt */
3:      stop    #0x2700
        bra.s   3b

/* Idle loops: main() jumps to one of them once the card is running. */
        .globl  idle_stop
idle_stop:                              /* sleep until an interrupt, forever */
        stop    #0x2000
        bra.s   idle_stop

        .globl  idle_busy
idle_busy:                              /* exactly 2 instructions per iteration */
        addq.l  #1,(MB_IDLE).w
        bra.s   idle_busy

/* Level-2 autovector: save the C scratch registers, run the driver's handler. */
        .globl  irq2
irq2:
        movem.l %d0-%d1/%a0-%a1,-(%sp)
        jsr     lance_isr
        movem.l (%sp)+,%d0-%d1/%a0-%a1
        rte

spurious:
        addq.l  #1,(MB_ADDR + 0x3C).w   /* mailbox.spurious */
        rte

/* One stub per vector 2..255 so the vector number is known (the 68000 frame lacks it). */
fault_stubs:
        .set    vec, 2
        .rept   254
        move.w  #vec,(MB_FAULT_VECTOR).w
        bra.w   fault_common
        .set    vec, vec + 1
        .endr

fault_common:
        move.w  #ST_FAULT,(MB_STATE).w
        cmpi.w  #3,(MB_FAULT_VECTOR).w
        bhi.s   1f
        move.l  10(%sp),(MB_FAULT_PC).w /* group 0 frame: status, address, IR, SR, PC */
        bra.s   2f
1:      move.l  2(%sp),(MB_FAULT_PC).w  /* group 1/2 frame: SR, PC */
2:      stop    #0x2700
        bra.s   2b
