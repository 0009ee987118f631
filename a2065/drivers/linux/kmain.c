/* The mini kernel: boots, runs the driver's module init (which probes through Zorro autoconfig),
 * then loops forever doing what the network core would do for the driver:
 *   - host commands: open (dev_open), close (dev_close), set the receive mode, remove the driver;
 *   - the transmit queue: frames the host placed in the transmit slots go to ndo_start_xmit while
 *     the driver has not stopped the queue; the time of the last transmit is kept for the watchdog;
 *   - the transmit watchdog: a queue stopped for longer than watchdog_timeo -> ndo_tx_timeout;
 *   - timers (mod_timer) whose time has come;
 *   - receive slots the host has taken: their skbs go back to the pool.
 * The host writes jiffies; the loop polls (no timer interrupt is modelled).
 */
#include "kshim.h"

extern int (*const kshim_module_init)(void);
extern void (*const kshim_module_exit)(void);
extern struct net_device *kshim_devs[2];
void kshim_log_init(void);
void kshim_skb_init(void);
void kshim_run_timers(void);
void kshim_free_received(void);
int kshim_rx_unfreed(void);

/* the host interface block itself: magic and version are in the image, the rest is zero */
__attribute__((section(".hostif"), used)) struct hostif kshim_hostif = {
    .magic = HI_MAGIC,
    .version = HI_VERSION,
};

#define TXQ_SLOTS 8
#define RXQ_SLOTS 32
#define MC_MAX 64

static struct hi_slot txq[TXQ_SLOTS];
static struct hi_slot rxq[RXQ_SLOTS];
static unsigned char mc_addrs[MC_MAX][ETH_ALEN];
static struct netdev_hw_addr mc_nodes[2][MC_MAX];
static unsigned long tx_refill;         /* next transmit slot to give an skb */

static struct net_device *dev_at(unsigned long i)
{
    return i < 2 ? kshim_devs[i] : 0;
}

static void tx_refill_slots(void)
{
    while (tx_refill != HI->txq_tail + TXQ_SLOTS) {
        struct hi_slot *s = &txq[tx_refill & (TXQ_SLOTS - 1)];
        if (!s->skb) {
            struct sk_buff *skb = netdev_alloc_skb(0, ETH_DATA_LEN + 64);
            if (!skb)
                return;         /* pool empty: try again on the next pass */
            s->data = (unsigned long)skb->data;
            s->len = 0;
            s->skb = (unsigned long)skb;
        }
        tx_refill++;
    }
}

/* dev_open: the core marks the device running, calls ndo_open, then programs the receive mode */
static int dev_open(struct net_device *dev)
{
    int ret;
    if (dev->state & KSHIM_RUNNING)
        return 0;
    if (dev->netdev_ops->ndo_validate_addr && (ret = dev->netdev_ops->ndo_validate_addr(dev)))
        return ret;
    dev->state |= KSHIM_RUNNING;
    ret = dev->netdev_ops->ndo_open(dev);
    if (ret) {
        dev->state &= ~KSHIM_RUNNING;
        return ret;
    }
    dev->flags |= IFF_UP;
    dev->trans_start = jiffies;
    if (dev->netdev_ops->ndo_set_rx_mode)
        dev->netdev_ops->ndo_set_rx_mode(dev);
    return 0;
}

int kshim_dev_close(struct net_device *dev)
{
    if (!(dev->state & KSHIM_RUNNING))
        return 0;
    dev->state &= ~KSHIM_RUNNING;
    dev->netdev_ops->ndo_stop(dev);
    dev->flags &= ~IFF_UP;
    return 0;
}

static int set_rx_mode(struct net_device *dev)
{
    int i, n = HI->mc_count;
    struct netdev_hw_addr *nodes = mc_nodes[dev->index & 1];
    if (n > MC_MAX)
        return -EINVAL;
    for (i = 0; i < n; i++) {
        memcpy(nodes[i].addr, mc_addrs[i], ETH_ALEN);
        nodes[i].next = i + 1 < n ? &nodes[i + 1] : 0;
    }
    dev->mc_list = n ? &nodes[0] : 0;
    dev->mc_count = n;
    dev->flags = (dev->flags & ~(IFF_PROMISC | IFF_ALLMULTI)) |
                 (HI->dev_flags & (IFF_PROMISC | IFF_ALLMULTI));
    if ((dev->flags & IFF_UP) && dev->netdev_ops->ndo_set_rx_mode)
        dev->netdev_ops->ndo_set_rx_mode(dev);
    return 0;
}

static void do_command(void)
{
    struct net_device *dev = dev_at(HI->cmd_arg);
    int ret = -ENODEV;
    switch (HI->cmd) {
    case HC_OPEN:
        if (dev)
            ret = dev_open(dev);
        break;
    case HC_CLOSE:
        if (dev)
            ret = kshim_dev_close(dev);
        break;
    case HC_SET_RX_MODE:
        if (dev)
            ret = set_rx_mode(dev);
        break;
    case HC_REMOVE:
        kshim_module_exit();
        ret = 0;
        break;
    default:
        ret = -EINVAL;
    }
    HI->cmd_result = (short)ret;
    HI->cmd = 0;
}

static void transmit_queue(void)
{
    int budget;
    for (budget = 0; budget < TXQ_SLOTS && HI->txq_tail != HI->txq_head; budget++) {
        struct hi_slot *s = &txq[HI->txq_tail & (TXQ_SLOTS - 1)];
        struct sk_buff *skb = (struct sk_buff *)s->skb;
        struct net_device *dev = dev_at(s->dev);
        if (!skb)
            return;             /* the host wrote into a slot without an skb: wait */
        if (dev && netif_running(dev) && netif_queue_stopped(dev))
            return;             /* the qdisc holds the frame until the driver wakes the queue */
        s->skb = 0;
        HI->txq_tail = HI->txq_tail + 1;
        if (!dev || !netif_running(dev) || s->len > ETH_DATA_LEN + 64) {
            kfree_skb(skb);
            continue;
        }
        skb->dev = dev;
        skb->len = 0;
        skb->tail = skb->data;
        skb_put(skb, s->len);
        HI->xmit_calls = HI->xmit_calls + 1;
        if (dev->netdev_ops->ndo_start_xmit(skb, dev) == NETDEV_TX_OK)
            dev->trans_start = jiffies;
    }
}

static void watchdog(void)
{
    int i;
    for (i = 0; i < 2; i++) {
        struct net_device *dev = kshim_devs[i];
        if (!dev || !netif_running(dev) || !netif_queue_stopped(dev) || dev->watchdog_timeo <= 0)
            continue;
        if (time_after(jiffies, dev->trans_start + (unsigned long)dev->watchdog_timeo)) {
            HI->tx_timeouts = HI->tx_timeouts + 1;
            if (dev->netdev_ops->ndo_tx_timeout)
                dev->netdev_ops->ndo_tx_timeout(dev, 0);
            dev->trans_start = jiffies;
        }
    }
}

/* Work the loop would do now; timers and the watchdog only change with jiffies (the tick rings). */
static int work_pending(unsigned long j)
{
    if (HI->cmd || jiffies != j || kshim_rx_unfreed())
        return 1;
    if (tx_refill != HI->txq_tail + TXQ_SLOTS && HI->skb_free)
        return 1;
    if (HI->txq_tail != HI->txq_head) {
        struct hi_slot *s = &txq[HI->txq_tail & (TXQ_SLOTS - 1)];
        struct net_device *dev = dev_at(s->dev);
        if (s->skb && !(dev && netif_running(dev) && netif_queue_stopped(dev)))
            return 1;
    }
    return 0;
}

void kmain(void)
{
    HI->state = HS_BOOT;
    kshim_log_init();
    kshim_skb_init();
    HI->txq = (unsigned long)txq;
    HI->txq_slots = TXQ_SLOTS;
    HI->txq_head = HI->txq_tail = 0;
    HI->rxq = (unsigned long)rxq;
    HI->rxq_slots = RXQ_SLOTS;
    HI->rxq_head = HI->rxq_tail = 0;
    HI->mc_addrs = (unsigned long)mc_addrs;
    HI->mc_max = MC_MAX;
    tx_refill_slots();
    __asm__ __volatile__("move.w #0x2000,%%sr" ::: "memory");  /* interrupts on */
    HI->probe_result = kshim_module_init();
    HI->state = HS_READY;
    for (;;) {
        unsigned long j = jiffies;
        HI->loops = HI->loops + 1;
        if (HI->cmd)
            do_command();
        kshim_free_received();
        transmit_queue();
        tx_refill_slots();
        kshim_run_timers();
        watchdog();
        /* Sleep until an interrupt unless work came in meanwhile. Interrupts are masked while
         * looking, and STOP unmasks them in the same instruction, so a doorbell or card interrupt
         * raised after the look is taken at once and wakes the loop (no lost wake-up). */
        __asm__ __volatile__("ori.w #0x0700,%%sr" ::: "memory");
        if (!work_pending(j))
            __asm__ __volatile__("stop #0x2000" ::: "memory");
        else
            __asm__ __volatile__("andi.w #0xF8FF,%%sr" ::: "memory");
    }
}
