/* Mailbox: the fixed RAM area shared by the 68000 program and the host (tests, bench).
 * Lives at MB_ADDR ($0400); every field is big-endian. a2065/drivers/m68k/__init__.py mirrors this
 * layout (MAILBOX) -- change both together and bump MB_VERSION.
 * Every boot zeroes the fields from 'boards' on (RAM survives a reset); ip and flags are kept.
 *
 *  off  size  name           who writes  meaning
 *  $00  4     magic          image       MB_MAGIC ('A265')
 *  $04  2     version        image       MB_VERSION
 *  $06  2     state          68k         ST_* progress / failure code
 *  $08  4     ip             host        our IPv4 address (e.g. 10.0.2.15 = 0x0A00020F)
 *  $0C  2     flags          host        FL_* (style, idle mode)
 *  $0E  2     boards         68k         boards seen in the autoconfig chain
 *  $10  4     base           68k         base assigned to the A2065 (0 = none found)
 *  $14  6     mac            68k         MAC derived from the serial number
 *  $1A  2     init_polls     68k         CSR0 reads until IDON
 *  $1C  4     interrupts     68k         level-2 interrupts taken
 *  $20  4     rx_frames      68k         good frames taken from the RX ring
 *  $24  4     tx_frames      68k         TX descriptors reaped without error
 *  $28  4     arp_replies    68k         ARP replies queued
 *  $2C  4     echo_replies   68k         ICMP echo replies queued
 *  $30  4     errors         68k         RX/TX descriptor errors, CSR0.ERR, bad checksums
 *  $34  4     ignored        68k         good frames that were neither ARP nor ping for us
 *  $38  4     tx_full        68k         replies dropped: next TX descriptor still owned
 *  $3C  4     spurious       68k         interrupts with CSR0.INTR clear (shared INT2)
 *  $40  4     idle           68k         main-loop iterations (busy idle mode)
 *  $44  2     last_csr0      68k         CSR0 as read at the start of the last interrupt
 *  $46  2     fault_vector   68k         vector number of an unexpected exception (0 = none)
 *  $48  4     fault_pc       68k         stacked PC of that exception
 *  $4C  4     misses         68k         CSR0.MISS seen
 *  $50  4     reinits        68k         full re-inits (NetBSD style on RXON/TXON=0, MERR, BUFF)
 *  $54  4     tx_queued      68k         frames handed to the chip (OWN set + TDMD)
 */
#ifndef MAILBOX_H
#define MAILBOX_H

#define MB_ADDR     0x0400
#define MB_MAGIC    0x41323635UL   /* 'A265' */
#define MB_VERSION  1

#define ST_BOOT      0x0001
#define ST_NO_BOARD  0x00E1        /* no A2065 in the chain */
#define ST_INIT_FAIL 0x00E2        /* IDON not seen or ERR during INIT */
#define ST_FAULT     0x00EF        /* unexpected exception, see fault_vector/fault_pc */
#define ST_CONFIGURED 0x0002
#define ST_RUNNING   0x0003

#define FL_NETBSD    0x0001        /* NetBSD-style register access and init */
#define FL_BUSY_IDLE 0x0002        /* idle in a counting busy loop instead of STOP */

#ifndef __ASSEMBLER__
#include <stdint.h>
struct mailbox {
    uint32_t magic;
    uint16_t version;
    uint16_t state;
    uint32_t ip;
    uint16_t flags;
    uint16_t boards;
    uint32_t base;
    uint8_t  mac[6];
    uint16_t init_polls;
    uint32_t interrupts;
    uint32_t rx_frames;
    uint32_t tx_frames;
    uint32_t arp_replies;
    uint32_t echo_replies;
    uint32_t errors;
    uint32_t ignored;
    uint32_t tx_full;
    uint32_t spurious;
    uint32_t idle;
    uint16_t last_csr0;
    uint16_t fault_vector;
    uint32_t fault_pc;
    uint32_t misses;
    uint32_t reinits;
    uint32_t tx_queued;
};
#define MB ((volatile struct mailbox *)MB_ADDR)
#else
#define MB_STATE        (MB_ADDR + 0x06)
#define MB_FLAGS        (MB_ADDR + 0x0C)
#define MB_IDLE         (MB_ADDR + 0x40)
#define MB_FAULT_VECTOR (MB_ADDR + 0x46)
#define MB_FAULT_PC     (MB_ADDR + 0x48)
#endif
#endif
