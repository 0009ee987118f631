/* A2065 test driver for a bare 68000: autoconfig, LANCE bring-up, ARP and ICMP echo replies.
 *
 * Freestanding (no libc, no libgcc): built with
 *   m68k-linux-gnu-gcc -m68000 -Os -ffreestanding -nostdlib -T link.ld crt0.S driver.c
 * Written for this project from the register descriptions in the team reference
 * (am7990-a2065.md sections 1, 2, 10); it reproduces the *sequence* of register accesses the
 * Linux and NetBSD drivers make (that is what the emulated card must cope with), not their code.
 *
 * Two bring-up/access styles, chosen by mailbox.flags & FL_NETBSD before reset:
 *   Linux  (ref: L-a2065): RAP written only when the register changes, CSR1-3 set before the
 *          rings are built, IDON polled <= 100 reads, IDON acked, then INEA|STRT; the interrupt
 *          acks CSR0 with INEA cleared and re-enables it at the end; TX by byte-writing
 *          OWN|STP|ENP into TMD1 then INEA|TDMD.
 *   NetBSD (ref: N-le, N-lance, N-am): RAP written before every RDP access, CSR3 then rings then
 *          CSR1/CSR2, INIT, poll IDON, INEA|STRT|IDON in one write; the interrupt acks keeping
 *          INEA and re-inits if RXON or TXON dropped; TX by copying the whole 8-byte descriptor.
 * Ring layouts follow each driver's (LANCE addresses 0x8000 + card RAM offset, HADR 0).
 */
#include <stdint.h>
#include "mailbox.h"

void idle_stop(void) __attribute__((noreturn));
void idle_busy(void) __attribute__((noreturn));
void lance_isr(void);
int main(void);

/* ---- Zorro II autoconfig (ref: HRM, CR, AROS behaviour as described in the reference) ---- */
#define E_EXPANSIONBASE 0xE80000UL
#define IO_SLOT_FIRST   0xE90000UL
#define IO_SLOT_END     0xF00000UL
#define MEM_FIRST       0x200000UL
#define MEM_END         0xA00000UL
#define MAX_BOARDS      8
#define ERT_TYPEMASK    0xC0
#define ERT_ZORROII     0xC0
#define ERTF_MEMLIST    0x20

/* ---- A2065 board (ref: L-a2065, N-le) ---- */
#define A2065_RDP   0x4000
#define A2065_RAP   0x4002
#define A2065_RAM   0x8000
#define LANCE_VIEW  0x8000          /* LANCE address of card RAM offset 0 */

/* ---- Am7990 (ref: N-reg names) ---- */
#define C0_ERR  0x8000
#define C0_BABL 0x4000
#define C0_CERR 0x2000
#define C0_MISS 0x1000
#define C0_MERR 0x0800
#define C0_RINT 0x0400
#define C0_TINT 0x0200
#define C0_IDON 0x0100
#define C0_INTR 0x0080
#define C0_INEA 0x0040
#define C0_RXON 0x0020
#define C0_TXON 0x0010
#define C0_TDMD 0x0008
#define C0_STOP 0x0004
#define C0_STRT 0x0002
#define C0_INIT 0x0001
#define C3_BSWP 0x0004

/* high byte of RMD1/TMD1 */
#define D1_OWN 0x80
#define D1_ERR 0x40
#define D1_STP 0x02
#define D1_ENP 0x01
#define T3_BUFF 0x8000
#define T3_UFLO 0x4000

#define RX_LOG 4
#define TX_LOG 2
#define RX_N   (1 << RX_LOG)
#define TX_N   (1 << TX_LOG)

static volatile uint16_t *rdp, *rap;
static volatile uint8_t *cram;       /* card RAM as the CPU sees it */
static uint16_t netbsd;
static uint16_t ib_off, rxr_off, txr_off, buf_len;
static uint16_t rxbuf[RX_N], txbuf[TX_N];
static uint8_t rx_new, tx_new, tx_old;
static uint8_t mac[6];
static uint8_t myip[4];

/* ---------------------------------------------------------------- autoconfig ---------- */

static uint8_t ac_byte(uint16_t n)
{
    volatile uint8_t *w = (volatile uint8_t *)E_EXPANSIONBASE;
    uint8_t v = (w[4 * n] & 0xF0) | ((w[4 * n + 2] >> 4) & 0x0F);
    /* every nibble is stored inverted except er_Type ($00/$02) and ec_Interrupt ($40/$42) */
    return (n == 0 || n == 16) ? v : (uint8_t)~v;
}

static void ac_assign(uint32_t base)
{
    volatile uint8_t *w = (volatile uint8_t *)E_EXPANSIONBASE;
    uint8_t hi = (uint8_t)(base >> 16);
    w[0x4A] = (uint8_t)(hi << 4);   /* low nibble of A23-A16 first ... */
    w[0x48] = hi;                   /* ... then the whole byte: the board moves to base */
}

static uint32_t autoconfig(void)
{
    uint32_t io = IO_SLOT_FIRST, memnext = MEM_FIRST, ours = 0;
    uint16_t b;
    for (b = 0; b < MAX_BOARDS; b++) {
        uint8_t type = ac_byte(0), prod, code;
        uint16_t manuf;
        uint32_t serial, size, base = 0;
        if ((type & ERT_TYPEMASK) != ERT_ZORROII)
            break;                                  /* nothing (more) at $E80000 */
        prod = ac_byte(1);
        manuf = ((uint16_t)ac_byte(4) << 8) | ac_byte(5);
        if (ac_byte(3) != 0 || manuf == 0 || manuf == 0xFFFF)
            break;                                  /* not a valid expansion ROM */
        MB->boards++;
        serial = ((uint32_t)ac_byte(6) << 24) | ((uint32_t)ac_byte(7) << 16)
               | ((uint32_t)ac_byte(8) << 8) | ac_byte(9);
        code = type & 7;
        size = code ? (0x8000UL << code) : 0x800000UL;
        if (size == 0x10000UL && !(type & ERTF_MEMLIST)) {
            if (io < IO_SLOT_END) { base = io; io += 0x10000UL; }
        } else {
            uint32_t m = (memnext + size - 1) & ~(size - 1);
            if (m + size <= MEM_END) { base = m; memnext = m + size; }
        }
        if (!base) {
            ((volatile uint8_t *)E_EXPANSIONBASE)[0x4C] = 0;   /* shut up: no room */
            continue;
        }
        if (!ours && ((manuf == 0x0202 && prod == 0x70) || (manuf == 0x041D && prod == 0x01))) {
            ours = base;
            if (manuf == 0x0202) { mac[0] = 0x00; mac[1] = 0x80; mac[2] = 0x10; }
            else                 { mac[0] = 0x00; mac[1] = 0x00; mac[2] = 0x9F; }
            mac[3] = (uint8_t)(serial >> 16);
            mac[4] = (uint8_t)(serial >> 8);
            mac[5] = (uint8_t)serial;
        }
        ac_assign(base);
    }
    return ours;
}

/* ---------------------------------------------------------------- registers ----------- */

/* NetBSD style: RAP before every RDP access (ref: N-le lewrcsr/lerdcsr). */
static void wrcsr(uint16_t r, uint16_t v) { *rap = r; *rdp = v; }
static uint16_t rdcsr(uint16_t r) { *rap = r; return *rdp; }

static inline uint16_t rd16(uint16_t off) { return *(volatile uint16_t *)(cram + off); }
static inline void wr16(uint16_t off, uint16_t v) { *(volatile uint16_t *)(cram + off) = v; }

static void delay(void)         /* roughly 100 us at 7 MHz */
{
    volatile uint16_t i;
    for (i = 0; i < 40; i++)
        ;
}

static void build_rings(void)
{
    uint16_t i, ib = ib_off;
    uint16_t bcnt = (uint16_t)(0 - buf_len) | 0xF000;
    uint16_t rx_l = LANCE_VIEW + rxr_off, tx_l = LANCE_VIEW + txr_off;

    wr16(ib + 0, 0);                                    /* MODE: normal */
    wr16(ib + 2, ((uint16_t)mac[1] << 8) | mac[0]);     /* PADR, low byte first per word */
    wr16(ib + 4, ((uint16_t)mac[3] << 8) | mac[2]);
    wr16(ib + 6, ((uint16_t)mac[5] << 8) | mac[4]);
    wr16(ib + 8, 0); wr16(ib + 10, 0); wr16(ib + 12, 0); wr16(ib + 14, 0);   /* LADRF */
    wr16(ib + 16, rx_l);
    wr16(ib + 18, (RX_LOG << 13) | 0x00);               /* RLEN, RDRA[23:16] = 0 */
    wr16(ib + 20, tx_l);
    wr16(ib + 22, (TX_LOG << 13) | 0x00);

    for (i = 0; i < RX_N; i++) {
        uint16_t d = rxr_off + (i << 3);
        wr16(d + 0, LANCE_VIEW + rxbuf[i]);
        wr16(d + 4, bcnt);
        wr16(d + 6, 0);
        wr16(d + 2, (D1_OWN << 8) | 0x00);              /* OWN last, HADR 0 */
    }
    for (i = 0; i < TX_N; i++) {
        uint16_t d = txr_off + (i << 3);
        wr16(d + 0, LANCE_VIEW + txbuf[i]);
        wr16(d + 2, 0x0000);                            /* not owned, HADR 0 */
        wr16(d + 4, 0xF000);
        wr16(d + 6, 0);
    }
    rx_new = tx_new = tx_old = 0;
}

static void layout(void)
{
    uint16_t i, off;
    if (netbsd) {   /* ref: N-le/N-lance: ib 0, rings 0x20/0xA0, 1536-byte buffers from 0xC0 */
        ib_off = 0x0000; rxr_off = 0x0020; txr_off = 0x00A0; off = 0x00C0; buf_len = 1536;
    } else {        /* ref: L-a2065: ib 0, rings 0x18/0x98, 1544-byte buffers from 0xB8 */
        ib_off = 0x0000; rxr_off = 0x0018; txr_off = 0x0098; off = 0x00B8; buf_len = 1544;
    }
    for (i = 0; i < RX_N; i++) { rxbuf[i] = off; off += buf_len; }
    for (i = 0; i < TX_N; i++) { txbuf[i] = off; off += buf_len; }
}

static int lance_init(void)
{
    uint16_t csr0 = 0;
    uint32_t i;
    if (!netbsd) {
        *rap = 0; *rdp = C0_STOP;
        *rap = 1; *rdp = LANCE_VIEW + ib_off;
        *rap = 2; *rdp = 0;
        *rap = 3; *rdp = C3_BSWP;
        *rap = 0;
        build_rings();
        *rdp = C0_INIT;
        for (i = 0; i < 100; i++) {
            csr0 = *rdp;
            if (csr0 & (C0_ERR | C0_IDON))
                break;
        }
        MB->init_polls = (uint16_t)(i + 1);
        if ((csr0 & C0_ERR) || !(csr0 & C0_IDON))
            return 0;
        *rdp = C0_IDON;
        *rdp = C0_INEA | C0_STRT;
    } else {
        wrcsr(0, C0_STOP);
        delay();
        wrcsr(3, C3_BSWP);
        build_rings();
        wrcsr(1, LANCE_VIEW + ib_off);
        wrcsr(2, 0);
        delay();
        wrcsr(0, C0_INIT);
        for (i = 0; i < 100000UL; i++) {
            csr0 = rdcsr(0);
            if (csr0 & C0_IDON)
                break;
        }
        MB->init_polls = (uint16_t)(i + 1);
        if (!(csr0 & C0_IDON))
            return 0;
        wrcsr(0, C0_INEA | C0_STRT | C0_IDON);
    }
    return 1;
}

static void reinit(void)
{
    MB->reinits++;
    if (!lance_init())
        MB->state = ST_INIT_FAIL;
}

/* ---------------------------------------------------------------- checksums ------------ */

/* RFC 1071 over card RAM; p must be even. Returns the complemented folded sum. */
static uint16_t cksum(const volatile uint8_t *p, uint16_t n)
{
    uint32_t s = 0;
    const volatile uint32_t *l = (const volatile uint32_t *)p;   /* even is enough on a 68000 */
    const volatile uint16_t *w;
    for (; n > 3; n -= 4) { uint32_t v = *l++; s += (v >> 16) + (v & 0xFFFF); }
    w = (const volatile uint16_t *)l;
    while (n > 1) { s += *w++; n -= 2; }
    if (n) s += (uint16_t)(*(const volatile uint8_t *)w) << 8;
    while (s >> 16) s = (s & 0xFFFF) + (s >> 16);
    return (uint16_t)~s;
}

/* ---------------------------------------------------------------- transmit ------------- */

static void tx_reap_ring(void);

static int tx_room(void)        /* 3 of 4 may be in flight, as L-a2065 TX_BUFFS_AVAIL */
{
    return ((tx_old - tx_new - 1) & (TX_N - 1)) != 0
        && !(cram[txr_off + (tx_new << 3) + 2] & D1_OWN);
}

/* The next free TX buffer, or 0. A full ring is reaped first: replies are made inside the
 * interrupt, so a burst of requests would otherwise outrun the TINT that frees the ring. */
static volatile uint8_t *tx_buffer(void)
{
    if (!tx_room()) {
        tx_reap_ring();
        if (!tx_room()) {
            MB->tx_full++;
            return 0;
        }
    }
    return cram + txbuf[tx_new];
}

static void tx_send(uint16_t len)
{
    uint16_t d = txr_off + (tx_new << 3);
    volatile uint8_t *b = cram + txbuf[tx_new];
    while (len < 60) b[len++] = 0;                       /* pad to ETH_ZLEN; chip adds FCS */
    if (!netbsd) {
        wr16(d + 4, (uint16_t)(0 - len) | 0xF000);
        wr16(d + 6, 0);
        cram[d + 2] = D1_OWN | D1_STP | D1_ENP;          /* byte write; HADR byte untouched */
        *rdp = C0_INEA | C0_TDMD;                        /* RAP is 0 here */
    } else {
        /* one 8-byte descriptor copy (two long writes, high word first): OWN before TMD2 */
        volatile uint32_t *dl = (volatile uint32_t *)(cram + d);
        dl[0] = ((uint32_t)(LANCE_VIEW + txbuf[tx_new]) << 16)
              | ((uint32_t)(D1_OWN | D1_STP | D1_ENP) << 8);
        dl[1] = (uint32_t)((uint16_t)(0 - len) | 0xF000) << 16;
        wrcsr(0, C0_INEA | C0_TDMD);
    }
    MB->tx_queued++;
    tx_new = (tx_new + 1) & (TX_N - 1);
}

static void tx_reap_ring(void)
{
    uint16_t n;
    for (n = 0; n < TX_N && tx_old != tx_new; n++) {
        uint16_t d = txr_off + (tx_old << 3);
        uint8_t bits = cram[d + 2];
        if (bits & D1_OWN)
            break;
        if (bits & D1_ERR) {
            MB->errors++;
            if (rd16(d + 6) & (T3_BUFF | T3_UFLO)) {     /* transmitter is off: start again */
                reinit();
                return;
            }
        } else {
            MB->tx_frames++;
            if (!netbsd)
                cram[d + 2] = bits & (uint8_t)~(D1_STP | D1_ENP);
        }
        tx_old = (tx_old + 1) & (TX_N - 1);
    }
}

static void tx_reap(void)
{
    if (!netbsd) *rdp = C0_TINT | C0_INEA;
    tx_reap_ring();
    if (!netbsd) *rdp = C0_TINT | C0_INEA;
}

/* ---------------------------------------------------------------- protocols ------------ */

static int ip_is_mine(const volatile uint8_t *p)
{
    return p[0] == myip[0] && p[1] == myip[1] && p[2] == myip[2] && p[3] == myip[3];
}

static void copy_out(volatile uint8_t *d, const volatile uint8_t *s, uint16_t n)
{
    if (!(((uint32_t)d | (uint32_t)s) & 1)) {            /* both even: words, then a tail byte */
        volatile uint16_t *dw = (volatile uint16_t *)d;
        const volatile uint16_t *sw = (const volatile uint16_t *)s;
        for (; n > 1; n -= 2) *dw++ = *sw++;
        d = (volatile uint8_t *)dw; s = (const volatile uint8_t *)sw;
    }
    while (n--) *d++ = *s++;
}

static void do_arp(const volatile uint8_t *f, uint16_t len)
{
    volatile uint8_t *t;
    uint16_t i;
    if (len < 42 || f[14] != 0 || f[15] != 1 || f[16] != 0x08 || f[17] != 0x00
        || f[18] != 6 || f[19] != 4 || f[20] != 0 || f[21] != 1 || !ip_is_mine(f + 38)) {
        MB->ignored++;
        return;
    }
    if (!(t = tx_buffer()))
        return;
    copy_out(t, f + 22, 6);                              /* to the requester's hardware addr */
    for (i = 0; i < 6; i++) t[6 + i] = mac[i];
    t[12] = 0x08; t[13] = 0x06;
    t[14] = 0; t[15] = 1; t[16] = 0x08; t[17] = 0; t[18] = 6; t[19] = 4; t[20] = 0; t[21] = 2;
    for (i = 0; i < 6; i++) t[22 + i] = mac[i];
    for (i = 0; i < 4; i++) t[28 + i] = myip[i];
    copy_out(t + 32, f + 22, 10);                        /* THA, TPA = requester's SHA, SPA */
    MB->arp_replies++;
    tx_send(42);
}

static void do_ipv4(const volatile uint8_t *f, uint16_t len)
{
    const volatile uint8_t *ip = f + 14, *ic = f + 34;
    volatile uint8_t *t, *tip, *tic;
    uint16_t tot, ilen, i, s;
    if (len < 42 || ip[0] != 0x45 || ip[9] != 1 || !ip_is_mine(ip + 16)
        || (ip[6] & 0x3F) || ip[7]) {                    /* options, not ICMP, not ours, fragment */
        MB->ignored++;
        return;
    }
    tot = ((uint16_t)ip[2] << 8) | ip[3];
    if (tot < 28 || tot > len - 14 || cksum(ip, 20) != 0) {
        MB->errors++;
        return;
    }
    ilen = tot - 20;
    if (ic[0] != 8 || ic[1] != 0) {                      /* only echo requests */
        MB->ignored++;
        return;
    }
    if (cksum(ic, ilen) != 0) {
        MB->errors++;
        return;
    }
    if (!(t = tx_buffer()))
        return;
    tip = t + 14; tic = t + 34;
    copy_out(t, f + 6, 6);                               /* back to the sender */
    for (i = 0; i < 6; i++) t[6 + i] = mac[i];
    t[12] = 0x08; t[13] = 0x00;
    tip[0] = 0x45; tip[1] = ip[1]; tip[2] = ip[2]; tip[3] = ip[3];
    tip[4] = ip[4]; tip[5] = ip[5];                      /* identification echoed */
    tip[6] = 0; tip[7] = 0; tip[8] = 64; tip[9] = 1; tip[10] = 0; tip[11] = 0;
    for (i = 0; i < 4; i++) { tip[12 + i] = myip[i]; tip[16 + i] = ip[12 + i]; }
    s = cksum(tip, 20);
    tip[10] = (uint8_t)(s >> 8); tip[11] = (uint8_t)s;
    tic[0] = 0; tic[1] = 0; tic[2] = 0; tic[3] = 0;
    copy_out(tic + 4, ic + 4, ilen - 4);                 /* identifier, sequence, data */
    s = cksum(tic, ilen);
    tic[2] = (uint8_t)(s >> 8); tic[3] = (uint8_t)s;
    MB->echo_replies++;
    tx_send(14 + tot);
}

static void handle_frame(const volatile uint8_t *f, uint16_t len)
{
    uint16_t type;
    if (len < 14) { MB->errors++; return; }
    type = ((uint16_t)f[12] << 8) | f[13];
    if (type == 0x0806)
        do_arp(f, len);
    else if (type == 0x0800)
        do_ipv4(f, len);
    else
        MB->ignored++;
}

/* ---------------------------------------------------------------- receive -------------- */

static void rx(void)
{
    uint16_t n;
    if (!netbsd) *rdp = C0_RINT | C0_INEA;
    for (n = 0; n < RX_N; n++) {                         /* bounded by the ring length */
        uint16_t d = rxr_off + (rx_new << 3);
        uint8_t bits = cram[d + 2];
        if (bits & D1_OWN)
            break;
        if ((bits & D1_ERR) || (bits & (D1_STP | D1_ENP)) != (D1_STP | D1_ENP)) {
            MB->errors++;                                /* unlike L-a2065 we still advance */
        } else {
            uint16_t mcnt = rd16(d + 6) & 0x0FFF;
            MB->rx_frames++;
            if (mcnt < 4 + 14 || mcnt - 4 > buf_len)
                MB->errors++;
            else
                handle_frame(cram + rxbuf[rx_new], mcnt - 4);
        }
        wr16(d + 6, 0);                                  /* MCNT 0, give it back */
        if (netbsd) {
            wr16(d + 4, (uint16_t)(0 - buf_len) | 0xF000);
            wr16(d + 2, (D1_OWN << 8) | 0x00);
        } else {
            cram[d + 2] = D1_OWN;                        /* byte write, as L-a2065 rmd1_bits */
        }
        rx_new = (rx_new + 1) & (RX_N - 1);
    }
}

/* ---------------------------------------------------------------- interrupt ------------ */

static void isr_linux(void)
{
    uint16_t csr0;
    *rap = 0;
    csr0 = *rdp;
    MB->last_csr0 = csr0;
    if (!(csr0 & C0_INTR)) {                             /* shared INT2: not ours */
        MB->spurious++;
        return;
    }
    *rdp = csr0 & ~(C0_INEA | C0_TDMD | C0_STOP | C0_STRT | C0_INIT);   /* ack, INEA off */
    if (csr0 & C0_ERR) {
        MB->errors++;
        if (csr0 & C0_MISS) MB->misses++;
        *rdp = C0_BABL | C0_ERR | C0_MISS | C0_INEA;
    }
    if (csr0 & C0_RINT) rx();
    if (csr0 & C0_TINT) tx_reap();
    if (csr0 & C0_MERR) *rdp = C0_STRT;
    *rap = 0;
    *rdp = C0_BABL | C0_CERR | C0_MISS | C0_MERR | C0_IDON | C0_INEA;
}

static void isr_netbsd(void)
{
    uint16_t csr0 = rdcsr(0);
    MB->last_csr0 = csr0;
    if (!(csr0 & C0_INTR)) {
        MB->spurious++;
        return;
    }
    wrcsr(0, csr0 & (C0_INEA | C0_BABL | C0_MISS | C0_MERR | C0_RINT | C0_TINT | C0_IDON));
    if (csr0 & C0_ERR) {
        MB->errors++;
        if (csr0 & C0_MISS) MB->misses++;
    }
    if (csr0 & C0_MERR) { reinit(); return; }
    if (!(csr0 & C0_RXON) || !(csr0 & C0_TXON)) { reinit(); return; }
    if (csr0 & C0_RINT) rx();
    if (csr0 & C0_TINT) tx_reap();
}

void lance_isr(void)
{
    MB->interrupts++;
    if (!rdp) { MB->spurious++; return; }
    if (netbsd) isr_netbsd(); else isr_linux();
}

/* ---------------------------------------------------------------- main ----------------- */

int main(void)
{
    uint32_t base, ip;
    uint16_t flags = MB->flags;
    volatile uint8_t *z;
    MB->state = ST_BOOT;
    /* a boot starts its results and counters from zero (RAM survives a reset); the host's
     * parameters ip and flags lie before 'boards' and are kept */
    for (z = (volatile uint8_t *)&MB->boards; z < (volatile uint8_t *)(MB + 1); z++)
        *z = 0;
    netbsd = flags & FL_NETBSD;
    ip = MB->ip;
    myip[0] = (uint8_t)(ip >> 24); myip[1] = (uint8_t)(ip >> 16);
    myip[2] = (uint8_t)(ip >> 8);  myip[3] = (uint8_t)ip;

    base = autoconfig();
    MB->base = base;
    if (!base) {
        MB->state = ST_NO_BOARD;
    } else {
        uint16_t i;
        for (i = 0; i < 6; i++) MB->mac[i] = mac[i];
        MB->state = ST_CONFIGURED;
        cram = (volatile uint8_t *)(base + A2065_RAM);
        layout();
        rdp = (volatile uint16_t *)(base + A2065_RDP);   /* set last: the ISR checks it */
        rap = (volatile uint16_t *)(base + A2065_RAP);
        MB->state = lance_init() ? ST_RUNNING : ST_INIT_FAIL;
    }
    __asm__ volatile ("move.w #0x2000,%%sr" ::: "memory");   /* interrupts on */
    if (flags & FL_BUSY_IDLE)
        idle_busy();
    idle_stop();
}

/* the mailbox image: magic and version are in the binary, the rest is zero */
__attribute__((section(".mailbox"), used))
const struct mailbox mailbox_image = { .magic = MB_MAGIC, .version = MB_VERSION };
