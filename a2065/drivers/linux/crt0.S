/* Start-up and exception entry of the Linux-driver harness (68000).
 *
 * Memory map (flat binary loaded at $000000; see link.ld):
 *   $000000-$0003FF  vector table; vector 0 = initial SSP, 1 = reset PC
 *   $000400-$0004FF  host interface (hostif.h)
 *   $000500-...      code, data, bss (the skb pool), heap; stack below RAM_SIZE
 *
 * Vector 26 (level-2 autovector) saves the C scratch registers and calls kshim_irq2, which runs
 * every handler requested on the shared line. Vector 30 (level 6) is the host's doorbell: it is
 * acknowledged and the kernel loop wakes from STOP. Vector 24 (spurious) is ignored. Every other vector
 * goes to its own stub: it records the vector number and the stacked PC in the host interface,
 * sets state = HS_FAULT and halts with interrupts masked.
 */
#include "hostif.h"

#define STUB_SIZE 10            /* move.w #n,abs.w (6) + bra.w (4) */

        .section .vectors,"ax"
        .globl  _vectors
_vectors:
        .long   __stack_top
        .long   _start
        .set    vec, 2
        .rept   254
        .if     vec == 24
        .long   spurious
        .elseif vec == 26
        .long   irq2
        .elseif vec == 30
        .long   irq6
        .else
        .long   fault_stubs + (vec - 2) * STUB_SIZE
        .endif
        .set    vec, vec + 1
        .endr

        .section .text.start,"ax"
        .globl  _start
_start:
        move.w  #0x2700,%sr             /* supervisor, interrupts masked */
        lea     __stack_top,%sp
        lea     __bss_start,%a0
        lea     __bss_end,%a1
        moveq   #0,%d0
1:      cmpa.l  %a1,%a0
        bcc.s   2f
        move.l  %d0,(%a0)+              /* bss is long-aligned at both ends (link.ld) */
        bra.s   1b
2:      jsr     kmain
3:      stop    #0x2700                 /* kmain never returns */
        bra.s   3b

        .globl  irq2
irq2:
        movem.l %d0-%d1/%a0-%a1,-(%sp)
        jsr     kshim_irq2
        movem.l (%sp)+,%d0-%d1/%a0-%a1
        rte

/* Level-6 autovector: the host's doorbell (a jiffy went by, or the host left work). Acknowledge
 * it as an Amiga acknowledges EXTER: write INTREQ with bit 13 set and SET/CLR (bit 15) clear.
 * The kernel loop, woken from its STOP, looks for the work itself. */
irq6:
        move.w  #0x2000,(HI_INTREQ).l
        rte

spurious:
        rte

fault_stubs:
        .set    vec, 2
        .rept   254
        move.w  #vec,(HI_FAULT_VECTOR).w
        bra.w   fault_common
        .set    vec, vec + 1
        .endr

fault_common:
        move.w  #HS_FAULT,(HI_STATE).w
        cmpi.w  #3,(HI_FAULT_VECTOR).w
        bhi.s   1f
        move.l  10(%sp),(HI_FAULT_PC).w /* group 0 frame: status, address, IR, SR, PC */
        bra.s   2f
1:      move.l  2(%sp),(HI_FAULT_PC).w  /* group 1/2 frame: SR, PC */
2:      stop    #0x2700
        bra.s   2b
