/* Host interface of the Linux-driver harness: the fixed RAM block shared by the 68000 and the host.
 *
 * Lives at HI_ADDR ($0400); every field is big-endian (the 68000's order). a2065/drivers/linux/
 * __init__.py mirrors this layout (HOSTIF) -- change both together and bump HI_VERSION.
 *
 *  off  size  name            who writes  meaning
 *  $00  4     magic           image       HI_MAGIC ('LNX1')
 *  $04  2     version         image       HI_VERSION
 *  $06  2     state           68k         HS_* progress / failure code
 *  $08  4     jiffies         host        kernel tick count (HZ per second of emulated time)
 *  $0C  2     cmd             host/68k    HC_* command; the 68k writes 0 when it is done
 *  $0E  2     cmd_result      68k         the command's int result (low 16 bits)
 *  $10  4     cmd_arg         host        device index of the command
 *  $14  2     ndev            68k         net devices registered by the driver's probe
 *  $16  2     fault_vector    68k         vector number of an unexpected exception (0 = none)
 *  $18  4     fault_pc        68k         stacked PC of that exception
 *  $1C  4     log_buf         68k         address of the kernel log ring (printk)
 *  $20  4     log_head        68k         bytes ever written to it
 *  $24  4     log_size        68k         its size (a power of two)
 *  $28  8     dev[2]          68k         struct net_device addresses
 *  $30  8     stats[2]        68k         their struct net_device_stats addresses
 *  $38  4     txq             68k         address of the transmit slots (struct hi_slot[])
 *  $3C  2     txq_slots       68k         their number (a power of two)
 *  $40  4     txq_head        host        slots filled by the host (free-running)
 *  $44  4     txq_tail        68k         slots handed to ndo_start_xmit (free-running)
 *  $48  4     rxq             68k         address of the receive slots (struct hi_slot[])
 *  $4C  2     rxq_slots       68k         their number (a power of two)
 *  $50  4     rxq_head        68k         frames netif_rx passed up (free-running)
 *  $54  4     rxq_tail        host        frames the host has taken (free-running)
 *  $58  2     mc_count        host        multicast addresses in mc_addrs for HC_SET_RX_MODE
 *  $5A  2     dev_flags       host        IFF_PROMISC / IFF_ALLMULTI for HC_SET_RX_MODE
 *  $5C  4     mc_addrs        68k         where the host writes them, 6 bytes each
 *  $60  2     mc_max          68k         room for this many
 *  $62  2     zorro_boards    68k         boards found in the autoconfig chain
 *  $64  4     irqs            68k         level-2 interrupts taken
 *  $68  4     irq_unclaimed   68k         of them, interrupts no handler claimed (IRQ_NONE)
 *  $6C  4     tx_timeouts     68k         watchdog calls of ndo_tx_timeout
 *  $70  4     rx_host_drops   68k         netif_rx frames dropped: receive slots full
 *  $74  4     skb_fail        68k         skb allocations refused (pool empty / too large)
 *  $78  4     loops           68k         kernel loop iterations
 *  $7C  4     probe_result    68k         zorro_register_driver's result
 *  $80  4     xmit_calls      68k         ndo_start_xmit calls
 *  $84  4     timer_runs      68k         timer callbacks run
 *  $88  4     skb_free        68k         skbs free in the pool now
 *  $8C  4     zorro_bases     68k         address of the zorro_dev table (debug)
 *
 * struct hi_slot (12 bytes): skb address, frame address, frame length, device index.
 * Transmit: the 68k keeps an empty skb in every free slot; the host writes the frame at `data`,
 * its length and device, then advances txq_head. Receive: netif_rx fills the slot at rxq_head with
 * the frame (Ethernet header included); the 68k frees the skb once the host has advanced rxq_tail.
 */
#ifndef HOSTIF_H
#define HOSTIF_H

#define HI_ADDR     0x0400
#define HI_MAGIC    0x4C4E5831UL   /* 'LNX1' */
#define HI_VERSION  1

#define HS_BOOT     0x0001
#define HS_READY    0x0003         /* driver registered, kernel loop running */
#define HS_FAULT    0x00EF         /* unexpected exception, see fault_vector/fault_pc */

/* The host's doorbell: a level-6 interrupt (the Amiga's EXTER level, where the CIA timer that
 * drives the Linux tick lives), acknowledged by writing EXTER (bit 13) to INTREQ. The host rings
 * it when a jiffy goes by and whenever it leaves work (transmit slots, a command, taken frames). */
#define HI_INTREQ       0xDFF09C
#define HI_INTF_EXTER   0x2000

#define HC_OPEN         1
#define HC_CLOSE        2
#define HC_SET_RX_MODE  3
#define HC_REMOVE       4          /* zorro_unregister_driver: the driver's remove for every board */

#ifndef __ASSEMBLER__
struct hi_slot {
    unsigned long skb;
    unsigned long data;
    unsigned short len;
    unsigned short dev;
};

struct hostif {
    unsigned long magic;
    unsigned short version;
    unsigned short state;
    unsigned long jiffies;
    unsigned short cmd;
    short cmd_result;
    unsigned long cmd_arg;
    unsigned short ndev;
    unsigned short fault_vector;
    unsigned long fault_pc;
    unsigned long log_buf;
    unsigned long log_head;
    unsigned long log_size;
    unsigned long dev[2];
    unsigned long stats[2];
    unsigned long txq;
    unsigned short txq_slots;
    unsigned short pad0;
    unsigned long txq_head;
    unsigned long txq_tail;
    unsigned long rxq;
    unsigned short rxq_slots;
    unsigned short pad1;
    unsigned long rxq_head;
    unsigned long rxq_tail;
    unsigned short mc_count;
    unsigned short dev_flags;
    unsigned long mc_addrs;
    unsigned short mc_max;
    unsigned short zorro_boards;
    unsigned long irqs;
    unsigned long irq_unclaimed;
    unsigned long tx_timeouts;
    unsigned long rx_host_drops;
    unsigned long skb_fail;
    unsigned long loops;
    long probe_result;
    unsigned long xmit_calls;
    unsigned long timer_runs;
    unsigned long skb_free;
    unsigned long zorro_bases;
};
#define HI ((volatile struct hostif *)HI_ADDR)
#else
#define HI_STATE        (HI_ADDR + 0x06)
#define HI_FAULT_VECTOR (HI_ADDR + 0x16)
#define HI_FAULT_PC     (HI_ADDR + 0x18)
#define HI_IRQS         (HI_ADDR + 0x64)
#endif
#endif
