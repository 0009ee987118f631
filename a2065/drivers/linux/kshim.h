/* The kernel as a Linux network driver for a Zorro board sees it, reduced to what the A2065 driver
 * (drivers/net/ethernet/amd/a2065.c) uses: types, the structures it touches (only the fields it
 * uses, laid out our way), inline helpers and the prototypes of the functions kshim.c provides.
 *
 * Written for this harness from the kernel's documented interfaces; no kernel header is copied.
 * Every <linux/...> and <asm/...> header the driver includes is an empty stand-in made at build
 * time that includes this file, so the driver source compiles unmodified.
 */
#ifndef KSHIM_H
#define KSHIM_H

#include "hostif.h"

/* ---------------------------------------------------------------- basic types */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef signed char s8;
typedef short s16;
typedef int s32;
typedef unsigned short __be16;
typedef unsigned int __be32;
typedef unsigned long size_t;
typedef long ssize_t;
typedef unsigned long resource_size_t;
typedef unsigned long kernel_ulong_t;
typedef unsigned int gfp_t;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

#define __init
#define __exit
#define __iomem
#define __user
#define __force
#define __maybe_unused __attribute__((unused))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define barrier() __asm__ __volatile__("" ::: "memory")

#define offsetof(t, m) __builtin_offsetof(t, m)
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define max_t(type, a, b) ((type)(a) > (type)(b) ? (type)(a) : (type)(b))
#define min_t(type, a, b) ((type)(a) < (type)(b) ? (type)(a) : (type)(b))
#define ALIGN(x, a) (((x) + (a) - 1) & ~((a) - 1))

/* big-endian CPU: the byte-order helpers are identities */
#define be32_to_cpu(x) ((u32)(x))
#define cpu_to_be32(x) ((u32)(x))
#define be16_to_cpu(x) ((u16)(x))
#define cpu_to_be16(x) ((u16)(x))
#define htons(x) ((u16)(x))
#define ntohs(x) ((u16)(x))

#define EIO 5
#define ENOMEM 12
#define EBUSY 16
#define ENODEV 19
#define EINVAL 22
#define EADDRNOTAVAIL 99

#define GFP_KERNEL 0u
#define GFP_ATOMIC 1u

/* ---------------------------------------------------------------- library */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);

/* ---------------------------------------------------------------- printk */
#define KERN_ERR "<3>"
#define KERN_WARNING "<4>"
#define KERN_INFO "<6>"
#define KERN_DEBUG "<7>"
int printk(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#ifndef pr_fmt
#define pr_fmt(fmt) fmt
#endif
#define pr_err(fmt, ...) printk(KERN_ERR pr_fmt(fmt), ##__VA_ARGS__)
#define pr_warn(fmt, ...) printk(KERN_WARNING pr_fmt(fmt), ##__VA_ARGS__)
#define pr_info(fmt, ...) printk(KERN_INFO pr_fmt(fmt), ##__VA_ARGS__)
/* debug output compiles away (the driver is built without DEBUG), arguments still checked */
#define pr_debug(fmt, ...) do { if (0) printk(KERN_DEBUG pr_fmt(fmt), ##__VA_ARGS__); } while (0)
#define netdev_err(dev, fmt, ...) printk(KERN_ERR "%s: " fmt, (dev)->name, ##__VA_ARGS__)
#define netdev_info(dev, fmt, ...) printk(KERN_INFO "%s: " fmt, (dev)->name, ##__VA_ARGS__)
#define netdev_dbg(dev, fmt, ...) \
    do { if (0) printk(KERN_DEBUG "%s: " fmt, (dev)->name, ##__VA_ARGS__); } while (0)
#define DUMP_PREFIX_NONE 0
#define print_hex_dump_debug(prefix, type, rowsize, groupsize, buf, len, ascii) \
    do { (void)(prefix); (void)(buf); } while (0)

/* ---------------------------------------------------------------- interrupts */
typedef enum { IRQ_NONE = 0, IRQ_HANDLED = 1 } irqreturn_t;
typedef irqreturn_t (*irq_handler_t)(int irq, void *dev_id);
#define IRQF_SHARED 0x80u
#define IRQ_AUTO_2 2
#define IRQ_AMIGA_PORTS IRQ_AUTO_2   /* Zorro /INT2 -> Paula PORTS -> 68000 level 2 */
int request_irq(unsigned int irq, irq_handler_t handler, unsigned long flags, const char *name,
                void *dev_id);
void free_irq(unsigned int irq, void *dev_id);

/* 68000 status register: the interrupt mask is bits 10-8 */
#define local_irq_save(flags) do { \
        unsigned short __sr; \
        __asm__ __volatile__("move.w %%sr,%0\n\tori.w #0x0700,%%sr" : "=d"(__sr) :: "memory"); \
        (flags) = __sr; \
    } while (0)
#define local_irq_restore(flags) do { \
        unsigned short __sr = (unsigned short)(flags); \
        __asm__ __volatile__("move.w %0,%%sr" :: "d"(__sr) : "memory"); \
    } while (0)

/* ---------------------------------------------------------------- time and timers */
#define HZ 100
#define jiffies (HI->jiffies)
#define time_after(a, b) ((long)((b) - (a)) < 0)
#define time_after_eq(a, b) ((long)((a) - (b)) >= 0)

struct timer_list {
    struct timer_list *next;          /* pending list */
    unsigned long expires;
    void (*function)(struct timer_list *t);
    unsigned int flags;
    int pending;
};
void timer_setup(struct timer_list *t, void (*fn)(struct timer_list *), unsigned int flags);
int mod_timer(struct timer_list *t, unsigned long expires);
int del_timer_sync(struct timer_list *t);
#define from_timer(var, callback_timer, field) \
    container_of(callback_timer, __typeof__(*var), field)

/* ---------------------------------------------------------------- resources */
#define IORESOURCE_MEM 0x200ul
struct resource {
    resource_size_t start;
    resource_size_t end;
    const char *name;
    unsigned long flags;
};
struct resource *request_mem_region(resource_size_t start, resource_size_t n, const char *name);
void release_mem_region(resource_size_t start, resource_size_t n);

/* ---------------------------------------------------------------- Zorro */
typedef u32 zorro_id;
#define ZORRO_ID(manuf, prod, epc) ((zorro_id)(((manuf) << 16) | ((prod) << 8) | (epc)))
#define ZORRO_MANUF_COMMODORE_WEST_CHESTER_1 0x0202
#define ZORRO_PROD_CBM_A2065_1 ZORRO_ID(ZORRO_MANUF_COMMODORE_WEST_CHESTER_1, 0x5A, 0)
#define ZORRO_PROD_CBM_A2065_2 ZORRO_ID(ZORRO_MANUF_COMMODORE_WEST_CHESTER_1, 0x70, 0)
#define ZORRO_MANUF_AMERISTAR 0x041D
#define ZORRO_PROD_AMERISTAR_A2065 ZORRO_ID(ZORRO_MANUF_AMERISTAR, 0x01, 0)
#define ZTWO_VADDR(x) ((unsigned long)(x))     /* Zorro II space is mapped 1:1 here */
#define ZTWO_PADDR(x) ((unsigned long)(x))

struct ExpansionRom {                   /* the logical (decoded) autoconfig ROM */
    u8 er_Type;
    u8 er_Product;
    u8 er_Flags;
    u8 er_Reserved03;
    u16 er_Manufacturer;
    u32 er_SerialNumber;
    u16 er_InitDiagVec;
    u8 er_Reserved0c, er_Reserved0d, er_Reserved0e, er_Reserved0f;
};

struct zorro_device_id {
    zorro_id id;
    kernel_ulong_t driver_data;
};

struct zorro_dev {
    struct ExpansionRom rom;
    zorro_id id;
    struct resource resource;
    struct zorro_driver *driver;
    void *drvdata;
};

struct zorro_driver {
    const char *name;
    const struct zorro_device_id *id_table;
    int (*probe)(struct zorro_dev *z, const struct zorro_device_id *id);
    void (*remove)(struct zorro_dev *z);
};
int zorro_register_driver(struct zorro_driver *drv);
void zorro_unregister_driver(struct zorro_driver *drv);
static inline void zorro_set_drvdata(struct zorro_dev *z, void *data) { z->drvdata = data; }
static inline void *zorro_get_drvdata(struct zorro_dev *z) { return z->drvdata; }

/* ---------------------------------------------------------------- modules */
#define MODULE_LICENSE(x)
#define MODULE_AUTHOR(x)
#define MODULE_DESCRIPTION(x)
#define MODULE_DEVICE_TABLE(type, name)
/* the harness calls the driver's init and exit functions through these two pointers */
#define module_init(fn) int (*const kshim_module_init)(void) = fn
#define module_exit(fn) void (*const kshim_module_exit)(void) = fn

/* ---------------------------------------------------------------- Ethernet */
#define ETH_ALEN 6
#define ETH_HLEN 14
#define ETH_ZLEN 60
#define ETH_DATA_LEN 1500
#define ETH_P_802_3 0x0001
#define ETH_P_802_2 0x0004
#define ETH_P_802_3_MIN 0x0600

u32 crc32_le(u32 crc, const unsigned char *p, size_t len);
#define ether_crc_le(length, data) crc32_le(~0u, data, length)

/* ---------------------------------------------------------------- socket buffers */
#define PACKET_HOST 0
#define PACKET_BROADCAST 1
#define PACKET_MULTICAST 2
#define PACKET_OTHERHOST 3

struct net_device;
struct sk_buff {
    struct sk_buff *next;               /* pool free list */
    struct net_device *dev;
    unsigned char *head;                /* buffer start */
    unsigned char *data;
    unsigned char *tail;
    unsigned char *end;
    unsigned char *mac_header;          /* set by eth_type_trans */
    unsigned int len;
    __be16 protocol;
    u8 pkt_type;
    u8 in_use;
};

struct sk_buff *netdev_alloc_skb(struct net_device *dev, unsigned int length);
void kfree_skb(struct sk_buff *skb);
#define dev_kfree_skb(skb) kfree_skb(skb)
#define dev_kfree_skb_any(skb) kfree_skb(skb)
#define dev_kfree_skb_irq(skb) kfree_skb(skb)

static inline void skb_reserve(struct sk_buff *skb, int len)
{
    skb->data += len;
    skb->tail += len;
}

static inline unsigned char *skb_put(struct sk_buff *skb, unsigned int len)
{
    unsigned char *old = skb->tail;
    skb->tail += len;
    skb->len += len;
    return old;
}

static inline void skb_copy_to_linear_data(struct sk_buff *skb, const void *from, unsigned int len)
{
    memcpy(skb->data, from, len);
}

static inline void skb_copy_from_linear_data(const struct sk_buff *skb, void *to, unsigned int len)
{
    memcpy(to, skb->data, len);
}

/* Zero the bytes between len and the padded length without changing len; on failure the skb is
 * freed and the result is non-zero (the caller must not touch it again). */
static inline int skb_padto(struct sk_buff *skb, unsigned int len)
{
    if (skb->len >= len)
        return 0;
    if (skb->data + len > skb->end) {
        kfree_skb(skb);
        return -ENOMEM;
    }
    memset(skb->data + skb->len, 0, len - skb->len);
    return 0;
}

/* ---------------------------------------------------------------- net devices */
#define IFNAMSIZ 16
#define IFF_UP 0x1
#define IFF_BROADCAST 0x2
#define IFF_PROMISC 0x100
#define IFF_ALLMULTI 0x200
#define IFF_MULTICAST 0x1000

typedef enum { NETDEV_TX_OK = 0x00, NETDEV_TX_BUSY = 0x10 } netdev_tx_t;

struct net_device_stats {
    unsigned long rx_packets;
    unsigned long tx_packets;
    unsigned long rx_bytes;
    unsigned long tx_bytes;
    unsigned long rx_errors;
    unsigned long tx_errors;
    unsigned long rx_dropped;
    unsigned long tx_dropped;
    unsigned long multicast;
    unsigned long collisions;
    unsigned long rx_length_errors;
    unsigned long rx_over_errors;
    unsigned long rx_crc_errors;
    unsigned long rx_frame_errors;
    unsigned long rx_fifo_errors;
    unsigned long rx_missed_errors;
    unsigned long tx_aborted_errors;
    unsigned long tx_carrier_errors;
    unsigned long tx_fifo_errors;
    unsigned long tx_heartbeat_errors;
    unsigned long tx_window_errors;
};

struct netdev_hw_addr {
    struct netdev_hw_addr *next;
    unsigned char addr[ETH_ALEN];
};

struct net_device;
struct net_device_ops {
    int (*ndo_open)(struct net_device *dev);
    int (*ndo_stop)(struct net_device *dev);
    netdev_tx_t (*ndo_start_xmit)(struct sk_buff *skb, struct net_device *dev);
    void (*ndo_tx_timeout)(struct net_device *dev, unsigned int txqueue);
    void (*ndo_set_rx_mode)(struct net_device *dev);
    int (*ndo_validate_addr)(struct net_device *dev);
    int (*ndo_set_mac_address)(struct net_device *dev, void *addr);
};

/* state bits */
#define KSHIM_RUNNING 0x1u
#define KSHIM_QUEUE_STOPPED 0x2u
#define KSHIM_REGISTERED 0x4u

struct net_device {
    char name[IFNAMSIZ];
    unsigned long base_addr;
    unsigned long mem_start;
    unsigned long mem_end;
    unsigned char dma;
    unsigned char addr_len;
    unsigned short pad;
    unsigned int flags;                 /* IFF_* */
    unsigned int state;                 /* KSHIM_* */
    int watchdog_timeo;
    unsigned long trans_start;          /* jiffies of the last transmit (queue 0) */
    const struct net_device_ops *netdev_ops;
    struct net_device_stats stats;
    struct netdev_hw_addr *mc_list;
    int mc_count;
    int index;                          /* harness device index */
    unsigned char dev_addr[ETH_ALEN];
    unsigned char broadcast[ETH_ALEN];
};

#define NETDEV_PRIV_ALIGN 32
static inline void *netdev_priv(const struct net_device *dev)
{
    return (char *)dev + ALIGN(sizeof(struct net_device), NETDEV_PRIV_ALIGN);
}

struct net_device *alloc_etherdev(int sizeof_priv);
void free_netdev(struct net_device *dev);
int register_netdev(struct net_device *dev);
void unregister_netdev(struct net_device *dev);
int netif_rx(struct sk_buff *skb);
__be16 eth_type_trans(struct sk_buff *skb, struct net_device *dev);
int eth_validate_addr(struct net_device *dev);
int eth_mac_addr(struct net_device *dev, void *p);

static inline void eth_hw_addr_set(struct net_device *dev, const u8 *addr)
{
    memcpy(dev->dev_addr, addr, ETH_ALEN);
}

static inline bool netif_running(const struct net_device *dev)
{
    return (dev->state & KSHIM_RUNNING) != 0;
}

static inline void netif_start_queue(struct net_device *dev)
{
    dev->state &= ~KSHIM_QUEUE_STOPPED;
}

static inline void netif_wake_queue(struct net_device *dev)
{
    dev->state &= ~KSHIM_QUEUE_STOPPED;  /* the kernel loop looks at the queue on its next pass */
}

static inline void netif_stop_queue(struct net_device *dev)
{
    dev->state |= KSHIM_QUEUE_STOPPED;
}

static inline bool netif_queue_stopped(const struct net_device *dev)
{
    return (dev->state & KSHIM_QUEUE_STOPPED) != 0;
}

static inline void netif_trans_update(struct net_device *dev)
{
    dev->trans_start = jiffies;
}

#define netdev_for_each_mc_addr(ha, dev) for ((ha) = (dev)->mc_list; (ha); (ha) = (ha)->next)

#endif
