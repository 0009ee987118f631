/* The kernel functions the A2065 driver calls, written for this harness (see kshim.h).
 *
 * Memory: skbs come from a fixed pool of equal blocks (no general heap); net devices from a bump
 * allocator. Interrupts: request_irq keeps a shared handler list per level that the level-2
 * autovector walks. Zorro: zorro_register_driver configures the real autoconfig chain at $E80000
 * (reading the nibble-wide ROM, assigning bases) and probes every board the driver's table names.
 */
#include "kshim.h"

/* ---------------------------------------------------------------- library */
void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    /* the 68000 moves words and longs at any even address */
    if ((((unsigned long)d | (unsigned long)s) & 1) == 0) {
        unsigned long *dl = (unsigned long *)d;
        const unsigned long *sl = (const unsigned long *)s;
        for (; n >= 16; n -= 16) {
            *dl++ = *sl++;
            *dl++ = *sl++;
            *dl++ = *sl++;
            *dl++ = *sl++;
        }
        for (; n >= 4; n -= 4)
            *dl++ = *sl++;
        d = (unsigned char *)dl;
        s = (const unsigned char *)sl;
    }
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    if (((unsigned long)d & 1) == 0) {
        unsigned long v = (unsigned char)c;
        unsigned long *dl = (unsigned long *)d;
        v |= v << 8;
        v |= v << 16;
        for (; n >= 4; n -= 4)
            *dl++ = v;
        d = (unsigned char *)dl;
    }
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x - *y;
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* 32-bit multiply and divide: the 68000 has only 16-bit MULU/DIVU, and the cross compiler's
 * libgcc is built for the 68020, so gcc's helper calls land here. Shift-and-add only. */
unsigned long __mulsi3(unsigned long a, unsigned long b)
{
    unsigned long r = 0;
    while (b) {
        if (b & 1)
            r += a;
        a <<= 1;
        b >>= 1;
    }
    return r;
}

static unsigned long udivmod(unsigned long n, unsigned long d, unsigned long *rem)
{
    unsigned long q = 0, r = 0;
    int i;
    if (d == 0) {
        *rem = n;
        return 0xFFFFFFFFul;
    }
    for (i = 31; i >= 0; i--) {
        r = (r << 1) | ((n >> i) & 1);
        if (r >= d) {
            r -= d;
            q |= 1ul << i;
        }
    }
    *rem = r;
    return q;
}

unsigned long __udivsi3(unsigned long n, unsigned long d)
{
    unsigned long r;
    return udivmod(n, d, &r);
}

unsigned long __umodsi3(unsigned long n, unsigned long d)
{
    unsigned long r;
    udivmod(n, d, &r);
    return r;
}

long __divsi3(long n, long d)
{
    unsigned long r, q = udivmod(n < 0 ? -(unsigned long)n : (unsigned long)n,
                                 d < 0 ? -(unsigned long)d : (unsigned long)d, &r);
    return ((n < 0) != (d < 0)) ? -(long)q : (long)q;
}

long __modsi3(long n, long d)
{
    unsigned long r;
    udivmod(n < 0 ? -(unsigned long)n : (unsigned long)n,
            d < 0 ? -(unsigned long)d : (unsigned long)d, &r);
    return n < 0 ? -(long)r : (long)r;
}

/* ---------------------------------------------------------------- printk into a ring */
#define LOG_SIZE 4096
static char log_ring[LOG_SIZE];

static void log_putc(char c)
{
    log_ring[HI->log_head & (LOG_SIZE - 1)] = c;
    HI->log_head = HI->log_head + 1;
}

static void log_puts(const char *s)
{
    while (*s)
        log_putc(*s++);
}

static void log_unsigned(unsigned long v, unsigned base, int width, char pad, int upper)
{
    char buf[12];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        unsigned long r;
        if (base == 16) {
            r = v & 15;
            v >>= 4;
        } else {
            v = udivmod(v, 10, &r);
        }
        buf[n++] = digits[r];
    } while (v && n < 12);
    while (width-- > n)
        log_putc(pad);
    while (n)
        log_putc(buf[--n]);
}

/* %s %c %d %i %u %x %X %p %pM, with an optional '0' flag, width and 'l' modifier */
int printk(const char *fmt, ...)
{
    __builtin_va_list ap;
    unsigned long start = HI->log_head;
    unsigned short sr;
    local_irq_save(sr);
    __builtin_va_start(ap, fmt);
    for (; *fmt; fmt++) {
        char pad = ' ';
        int width = 0;
        if (*fmt != '%') {
            log_putc(*fmt);
            continue;
        }
        fmt++;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l')
            fmt++;
        switch (*fmt) {
        case 's':
            log_puts(__builtin_va_arg(ap, const char *));
            break;
        case 'c':
            log_putc((char)__builtin_va_arg(ap, int));
            break;
        case 'd':
        case 'i': {
            long v = __builtin_va_arg(ap, long);
            if (v < 0) {
                log_putc('-');
                v = -v;
            }
            log_unsigned((unsigned long)v, 10, width, pad, 0);
            break;
        }
        case 'u':
            log_unsigned(__builtin_va_arg(ap, unsigned long), 10, width, pad, 0);
            break;
        case 'x':
        case 'X':
            log_unsigned(__builtin_va_arg(ap, unsigned long), 16, width, pad, *fmt == 'X');
            break;
        case 'p':
            if (fmt[1] == 'M') {
                const unsigned char *m = __builtin_va_arg(ap, const unsigned char *);
                int i;
                fmt++;
                for (i = 0; i < 6; i++) {
                    if (i)
                        log_putc(':');
                    log_unsigned(m[i], 16, 2, '0', 0);
                }
            } else {
                log_unsigned((unsigned long)__builtin_va_arg(ap, void *), 16, 8, '0', 0);
            }
            break;
        case '%':
            log_putc('%');
            break;
        case 0:
            fmt--;
            break;
        default:
            log_putc('%');
            log_putc(*fmt);
        }
    }
    __builtin_va_end(ap);
    local_irq_restore(sr);
    return (int)(HI->log_head - start);
}

void kshim_log_init(void)
{
    HI->log_buf = (unsigned long)log_ring;
    HI->log_size = LOG_SIZE;
    HI->log_head = 0;
}

/* ---------------------------------------------------------------- CRC-32 (little-endian) */
/* Bit-reflected CRC-32, polynomial 0xEDB88320, no final inversion: crc32_le(~0, p, n). */
u32 crc32_le(u32 crc, const unsigned char *p, size_t len)
{
    while (len--) {
        int i;
        crc ^= *p++;
        for (i = 0; i < 8; i++)
            crc = (crc >> 1) ^ ((crc & 1) ? 0xEDB88320u : 0);
    }
    return crc;
}

/* ---------------------------------------------------------------- skb pool */
#define SKB_HEADROOM 16
#define SKB_BUF 1600
#define SKB_POOL 96

struct skb_block {
    struct sk_buff skb;
    unsigned char buf[SKB_BUF];
};
static struct skb_block skb_pool[SKB_POOL];
static struct sk_buff *skb_free_list;

void kshim_skb_init(void)
{
    int i;
    skb_free_list = 0;
    for (i = SKB_POOL - 1; i >= 0; i--) {
        skb_pool[i].skb.next = skb_free_list;
        skb_free_list = &skb_pool[i].skb;
    }
    HI->skb_free = SKB_POOL;
}

struct sk_buff *netdev_alloc_skb(struct net_device *dev, unsigned int length)
{
    struct sk_buff *skb;
    unsigned short sr;
    if (length > SKB_BUF - SKB_HEADROOM) {
        HI->skb_fail = HI->skb_fail + 1;
        return 0;
    }
    local_irq_save(sr);
    skb = skb_free_list;
    if (skb) {
        skb_free_list = skb->next;
        HI->skb_free = HI->skb_free - 1;
    } else {
        HI->skb_fail = HI->skb_fail + 1;
    }
    local_irq_restore(sr);
    if (!skb)
        return 0;
    skb->next = 0;
    skb->dev = dev;
    skb->head = ((struct skb_block *)skb)->buf;
    skb->data = skb->tail = skb->head + SKB_HEADROOM;
    skb->end = skb->head + SKB_BUF;
    skb->mac_header = skb->data;
    skb->len = 0;
    skb->protocol = 0;
    skb->pkt_type = PACKET_HOST;
    skb->in_use = 1;
    return skb;
}

void kfree_skb(struct sk_buff *skb)
{
    unsigned short sr;
    if (!skb)
        return;
    local_irq_save(sr);
    if (skb->in_use) {          /* a double free is ignored rather than corrupting the pool */
        skb->in_use = 0;
        skb->next = skb_free_list;
        skb_free_list = skb;
        HI->skb_free = HI->skb_free + 1;
    }
    local_irq_restore(sr);
}

/* ---------------------------------------------------------------- bump allocator */
extern char __heap_start[], __heap_end[];
static char *heap_next = __heap_start;

static void *bump_alloc(unsigned long n)
{
    char *p = (char *)ALIGN((unsigned long)heap_next, 4);
    if (p + n > __heap_end)
        return 0;
    heap_next = p + n;
    memset(p, 0, n);
    return p;
}

/* ---------------------------------------------------------------- net devices */
#define MAX_DEVS 2
struct net_device *kshim_devs[MAX_DEVS];
static int ndevs_made;

struct net_device *alloc_etherdev(int sizeof_priv)
{
    unsigned long n = ALIGN(sizeof(struct net_device), NETDEV_PRIV_ALIGN) + (unsigned long)sizeof_priv;
    struct net_device *dev = bump_alloc(n);
    if (!dev)
        return 0;
    memcpy(dev->name, "eth%d", 6);
    dev->addr_len = ETH_ALEN;
    dev->flags = IFF_BROADCAST | IFF_MULTICAST;
    dev->index = -1;
    memset(dev->broadcast, 0xFF, ETH_ALEN);
    return dev;
}

void free_netdev(struct net_device *dev)
{
    (void)dev;                  /* the bump allocator does not reuse memory */
}

int register_netdev(struct net_device *dev)
{
    int i = ndevs_made;
    if (i >= MAX_DEVS)
        return -ENOMEM;
    ndevs_made++;
    dev->name[3] = (char)('0' + i);     /* "eth%d" -> eth0, eth1 */
    dev->name[4] = 0;
    dev->index = i;
    dev->state |= KSHIM_REGISTERED;
    kshim_devs[i] = dev;
    HI->dev[i] = (unsigned long)dev;
    HI->stats[i] = (unsigned long)&dev->stats;
    HI->ndev = (unsigned short)ndevs_made;
    return 0;
}

int kshim_dev_close(struct net_device *dev);

void unregister_netdev(struct net_device *dev)
{
    if (dev->state & KSHIM_RUNNING)
        kshim_dev_close(dev);
    dev->state &= ~KSHIM_REGISTERED;
    if (dev->index >= 0 && dev->index < MAX_DEVS) {
        kshim_devs[dev->index] = 0;
        HI->dev[dev->index] = 0;
    }
}

int eth_validate_addr(struct net_device *dev)
{
    const unsigned char *a = dev->dev_addr;
    if ((a[0] & 1) || !(a[0] | a[1] | a[2] | a[3] | a[4] | a[5]))
        return -EADDRNOTAVAIL;
    return 0;
}

int eth_mac_addr(struct net_device *dev, void *p)
{
    const unsigned char *a = (const unsigned char *)p + 2;     /* struct sockaddr: family, data */
    if (a[0] & 1)
        return -EADDRNOTAVAIL;
    memcpy(dev->dev_addr, a, ETH_ALEN);
    return 0;
}

/* Set the packet type and protocol, pull the Ethernet header (its start stays in mac_header). */
__be16 eth_type_trans(struct sk_buff *skb, struct net_device *dev)
{
    const unsigned char *h = skb->data;
    unsigned short proto = (unsigned short)((h[12] << 8) | h[13]);
    skb->dev = dev;
    skb->mac_header = skb->data;
    if (h[0] & 1) {
        static const unsigned char bc[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
        skb->pkt_type = memcmp(h, bc, 6) == 0 ? PACKET_BROADCAST : PACKET_MULTICAST;
    } else if (memcmp(h, dev->dev_addr, 6) != 0) {
        skb->pkt_type = PACKET_OTHERHOST;
    }
    skb->data += ETH_HLEN;
    skb->len -= ETH_HLEN;
    if (proto >= ETH_P_802_3_MIN)
        return proto;
    /* a length field: raw 802.3 (IPX) if the payload starts FF FF, else 802.2 LLC */
    if (skb->len >= 2 && skb->data[0] == 0xFF && skb->data[1] == 0xFF)
        return ETH_P_802_3;
    return ETH_P_802_2;
}

/* Give back the skbs of receive slots the host has taken (the upper layers are done with them).
 * Runs from the kernel loop and from netif_rx, so a driver that stays in its interrupt handler
 * while frames keep coming still finds skbs. */
static unsigned long rx_freed;

void kshim_free_received(void)
{
    unsigned short sr;
    local_irq_save(sr);
    while (rx_freed != HI->rxq_tail && rx_freed != HI->rxq_head) {
        volatile struct hi_slot *s = (volatile struct hi_slot *)HI->rxq;
        s += rx_freed & (HI->rxq_slots - 1);
        kfree_skb((struct sk_buff *)s->skb);
        s->skb = 0;
        rx_freed++;
    }
    local_irq_restore(sr);
}

int kshim_rx_unfreed(void)
{
    return rx_freed != HI->rxq_tail && rx_freed != HI->rxq_head;
}

/* netif_rx: hand the whole frame (header included) to the host through the receive slots. */
int netif_rx(struct sk_buff *skb)
{
    volatile struct hi_slot *q = (volatile struct hi_slot *)HI->rxq;
    unsigned long head;
    unsigned short sr;
    kshim_free_received();
    local_irq_save(sr);
    head = HI->rxq_head;
    if (head - HI->rxq_tail >= HI->rxq_slots) {
        HI->rx_host_drops = HI->rx_host_drops + 1;
        local_irq_restore(sr);
        kfree_skb(skb);
        return 1;               /* NET_RX_DROP */
    }
    q += head & (HI->rxq_slots - 1);
    q->skb = (unsigned long)skb;
    q->data = (unsigned long)skb->mac_header;
    q->len = (unsigned short)(skb->len + (skb->data - skb->mac_header));
    q->dev = (unsigned short)(skb->dev ? skb->dev->index : 0);
    HI->rxq_head = head + 1;
    local_irq_restore(sr);
    return 0;                   /* NET_RX_SUCCESS */
}

/* ---------------------------------------------------------------- interrupts */
#define MAX_ACTIONS 4
static struct irq_action {
    irq_handler_t handler;
    void *dev_id;
    unsigned int irq;
} actions[MAX_ACTIONS];

int request_irq(unsigned int irq, irq_handler_t handler, unsigned long flags, const char *name,
                void *dev_id)
{
    int i, free_i = -1;
    unsigned short sr;
    (void)name;
    if (irq != IRQ_AMIGA_PORTS || !handler)
        return -EINVAL;
    local_irq_save(sr);
    for (i = 0; i < MAX_ACTIONS; i++) {
        if (actions[i].handler) {
            if (!(flags & IRQF_SHARED)) {
                local_irq_restore(sr);
                return -EBUSY;
            }
        } else if (free_i < 0) {
            free_i = i;
        }
    }
    if (free_i < 0) {
        local_irq_restore(sr);
        return -EBUSY;
    }
    actions[free_i].irq = irq;
    actions[free_i].dev_id = dev_id;
    actions[free_i].handler = handler;
    local_irq_restore(sr);
    return 0;
}

void free_irq(unsigned int irq, void *dev_id)
{
    int i;
    unsigned short sr;
    local_irq_save(sr);
    for (i = 0; i < MAX_ACTIONS; i++)
        if (actions[i].handler && actions[i].irq == irq && actions[i].dev_id == dev_id) {
            actions[i].handler = 0;
            break;
        }
    local_irq_restore(sr);
}

/* Level-2 autovector (called from crt0 with the interrupt mask at 2): every handler on the
 * shared line runs, as Linux does for a shared IRQ. */
void kshim_irq2(void)
{
    int i, handled = 0;
    HI->irqs = HI->irqs + 1;
    for (i = 0; i < MAX_ACTIONS; i++)
        if (actions[i].handler)
            handled |= actions[i].handler(IRQ_AMIGA_PORTS, actions[i].dev_id) == IRQ_HANDLED;
    if (!handled)
        HI->irq_unclaimed = HI->irq_unclaimed + 1;
}

/* ---------------------------------------------------------------- timers */
static struct timer_list *timers;

void timer_setup(struct timer_list *t, void (*fn)(struct timer_list *), unsigned int flags)
{
    t->next = 0;
    t->function = fn;
    t->flags = flags;
    t->expires = 0;
    t->pending = 0;
}

static int timer_unlink(struct timer_list *t)
{
    struct timer_list **pp;
    for (pp = &timers; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            t->next = 0;
            t->pending = 0;
            return 1;
        }
    return 0;
}

int mod_timer(struct timer_list *t, unsigned long expires)
{
    unsigned short sr;
    int was;
    local_irq_save(sr);
    was = timer_unlink(t);
    t->expires = expires;
    t->next = timers;
    t->pending = 1;
    timers = t;
    local_irq_restore(sr);
    return was;
}

int del_timer_sync(struct timer_list *t)
{
    unsigned short sr;
    int was;
    local_irq_save(sr);
    was = timer_unlink(t);
    local_irq_restore(sr);
    return was;
}

/* Run every timer whose time has come (from the kernel loop, interrupts enabled). */
void kshim_run_timers(void)
{
    int guard;
    for (guard = 0; guard < 16; guard++) {
        struct timer_list *t;
        unsigned short sr;
        local_irq_save(sr);
        for (t = timers; t; t = t->next)
            if (time_after_eq(jiffies, t->expires))
                break;
        if (t)
            timer_unlink(t);
        local_irq_restore(sr);
        if (!t)
            return;
        HI->timer_runs = HI->timer_runs + 1;
        t->function(t);
    }
}

/* ---------------------------------------------------------------- resources */
#define MAX_REGIONS 8
static struct resource regions[MAX_REGIONS];

struct resource *request_mem_region(resource_size_t start, resource_size_t n, const char *name)
{
    int i, free_i = -1;
    resource_size_t end = start + n - 1;
    for (i = 0; i < MAX_REGIONS; i++) {
        struct resource *r = &regions[i];
        if (!r->flags) {
            if (free_i < 0)
                free_i = i;
            continue;
        }
        if (start <= r->end && r->start <= end)
            return 0;           /* overlaps a region already claimed */
    }
    if (free_i < 0)
        return 0;
    regions[free_i].start = start;
    regions[free_i].end = end;
    regions[free_i].name = name;
    regions[free_i].flags = IORESOURCE_MEM;
    return &regions[free_i];
}

void release_mem_region(resource_size_t start, resource_size_t n)
{
    int i;
    for (i = 0; i < MAX_REGIONS; i++)
        if (regions[i].flags && regions[i].start == start && regions[i].end == start + n - 1) {
            regions[i].flags = 0;
            return;
        }
}

/* ---------------------------------------------------------------- Zorro II autoconfig */
#define E_EXPANSIONBASE 0xE80000ul
#define EZ2_IO_BASE 0xE90000ul          /* 64 KB I/O boards: $E90000-$EFFFFF */
#define EZ2_IO_END 0xF00000ul
#define EZ2_MEM_BASE 0x200000ul         /* memory boards: $200000-$9FFFFF */
#define EZ2_MEM_END 0xA00000ul
#define ERTF_MEMLIST 0x20
#define MAX_ZORRO 8

static struct zorro_dev zorro_devs[MAX_ZORRO];
static int zorro_count;

/* Logical byte n of the ROM: high nibble in D7-D4 at $4n, low nibble at $4n+2; stored inverted
 * except er_Type (byte 0). */
static u8 ac_byte(int n)
{
    volatile u8 *w = (volatile u8 *)E_EXPANSIONBASE;
    u8 v = (u8)((w[4 * n] & 0xF0) | ((w[4 * n + 2] >> 4) & 0x0F));
    return n == 0 ? v : (u8)~v;
}

static void ac_read(struct ExpansionRom *r)
{
    r->er_Type = ac_byte(0);
    r->er_Product = ac_byte(1);
    r->er_Flags = ac_byte(2);
    r->er_Reserved03 = ac_byte(3);
    r->er_Manufacturer = (u16)((ac_byte(4) << 8) | ac_byte(5));
    r->er_SerialNumber = ((u32)ac_byte(6) << 24) | ((u32)ac_byte(7) << 16) |
                         ((u32)ac_byte(8) << 8) | ac_byte(9);
    r->er_InitDiagVec = (u16)((ac_byte(10) << 8) | ac_byte(11));
}

/* Configure every board of the chain once (the first call); later calls reuse the list. */
static void zorro_scan(void)
{
    static int scanned;
    unsigned long io_next = EZ2_IO_BASE, mem_next = EZ2_MEM_BASE;
    volatile u8 *w = (volatile u8 *)E_EXPANSIONBASE;
    if (scanned)
        return;
    scanned = 1;
    while (zorro_count < MAX_ZORRO) {
        struct zorro_dev *z = &zorro_devs[zorro_count];
        unsigned long size, base;
        int code;
        ac_read(&z->rom);
        if ((z->rom.er_Type & 0xC0) != 0xC0 || z->rom.er_Manufacturer == 0 ||
            z->rom.er_Manufacturer == 0xFFFF || z->rom.er_Reserved03 != 0)
            break;              /* nothing (more) at $E80000 */
        code = z->rom.er_Type & 7;
        size = code == 0 ? 0x800000ul : 0x8000ul << code;
        if (!(z->rom.er_Type & ERTF_MEMLIST) && size <= 0x10000ul && io_next < EZ2_IO_END) {
            base = io_next;
            io_next += 0x10000ul;
        } else {
            base = ALIGN(mem_next, size);
            if (base + size > EZ2_MEM_END) {
                w[0x4C] = 0;    /* no room: shut it up, the next board appears */
                continue;
            }
            mem_next = base + size;
        }
        z->id = ZORRO_ID((u32)z->rom.er_Manufacturer, (u32)z->rom.er_Product, 0);
        z->resource.start = base;
        z->resource.end = base + size - 1;
        z->resource.flags = IORESOURCE_MEM;
        z->resource.name = "zorro";
        w[0x4A] = (u8)(base >> 12);             /* A19-A16 in D7-D4 */
        w[0x48] = (u8)(base >> 16);             /* A23-A16: the board moves there */
        zorro_count++;
    }
    HI->zorro_boards = (unsigned short)zorro_count;
    HI->zorro_bases = (unsigned long)zorro_devs;
}

int zorro_register_driver(struct zorro_driver *drv)
{
    int i;
    zorro_scan();
    for (i = 0; i < zorro_count; i++) {
        struct zorro_dev *z = &zorro_devs[i];
        const struct zorro_device_id *id;
        if (z->driver)
            continue;
        for (id = drv->id_table; id->id; id++)
            if (id->id == z->id)
                break;
        if (!id->id)
            continue;
        if (drv->probe(z, id) == 0)
            z->driver = drv;
    }
    return 0;                   /* as the driver core: registering succeeds without devices */
}

void zorro_unregister_driver(struct zorro_driver *drv)
{
    int i;
    for (i = 0; i < zorro_count; i++)
        if (zorro_devs[i].driver == drv) {
            if (drv->remove)
                drv->remove(&zorro_devs[i]);
            zorro_devs[i].driver = 0;
        }
}
