/* lwIP netif over the open_eth driver, polled from the main loop. */
#include <string.h>
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/etharp.h"
#include "lwip/dhcp.h"
#include "lwip/timeouts.h"
#include "lwip/pbuf.h"
#include "lwip/sys.h"
#include "netif/ethernet.h"
#include "board.h"
#include "open_eth.h"
#include "net.h"

static struct netif eth;
static int initialised;
/* How the interface was brought up, to bring it back after a link loss. */
static int up_mode = -1;
static int link_seen;
static uint32_t link_checked_ms;
/* The link (the radio's association, on the emulated board the NIC's
 * link: QMP set_link) is looked at this often. */
#define LINK_POLL_MS 50
/* QEMU's default NIC address; slirp does not care which one we pick. */
static const uint8_t mac_addr[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

static err_t eth_linkoutput(struct netif *nif, struct pbuf *p)
{
    (void)nif;
    if (p->tot_len > OPEN_ETH_FRAME_MAX)
        return ERR_BUF;
    uint8_t *buf = open_eth_tx_buffer();
    pbuf_copy_partial(p, buf, p->tot_len, 0);
    open_eth_tx_send(p->tot_len);
    return ERR_OK;
}

static err_t eth_netif_init(struct netif *nif)
{
    nif->name[0] = 'e';
    nif->name[1] = 'n';
    nif->hostname = "mqtt-hil";
    nif->mtu = 1500;
    nif->hwaddr_len = ETH_HWADDR_LEN;
    memcpy(nif->hwaddr, mac_addr, ETH_HWADDR_LEN);
    nif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    nif->output = etharp_output;
    nif->linkoutput = eth_linkoutput;
    return ERR_OK;
}

int net_init(void)
{
    if (initialised)
        return 0;
    if (open_eth_init(mac_addr) != 0)
        return -1;
    lwip_init();
    if (!netif_add(&eth, IP4_ADDR_ANY4, IP4_ADDR_ANY4, IP4_ADDR_ANY4, NULL,
                   eth_netif_init, ethernet_input))
        return -1;
    netif_set_default(&eth);
    initialised = 1;
    return 0;
}

int net_up(net_mode_t mode, const ip4_addr_t *ip, const ip4_addr_t *mask,
           const ip4_addr_t *gw)
{
    if (net_init() != 0)
        return -1;
    link_seen = open_eth_link_up();
    link_checked_ms = sys_now();
    if (link_seen)
        netif_set_link_up(&eth);
    netif_set_up(&eth);
    up_mode = mode;
    if (mode == NET_DHCP)
        return dhcp_start(&eth) == ERR_OK ? 0 : -1;
    ip4_addr_t sip, smask, sgw;
    if (!ip) {
        ip4addr_aton(NET_STATIC_IP, &sip);
        ip4addr_aton(NET_STATIC_MASK, &smask);
        ip4addr_aton(NET_STATIC_GW, &sgw);
        ip = &sip;
        mask = &smask;
        gw = &sgw;
    }
    dhcp_stop(&eth);
    netif_set_addr(&eth, ip, mask, gw);
    return 0;
}

void net_down(void)
{
    if (!initialised)
        return;
    up_mode = -1;
    dhcp_release_and_stop(&eth);
    netif_set_down(&eth);
}

int net_link_up(void)
{
    return initialised && netif_is_link_up(&eth);
}

/* What the ESP8266 does when its station loses the access point: the link
 * goes down and a DHCP address is given up (its TCP connections die with
 * it: lwIP aborts the PCBs bound to the old address); when the link comes
 * back, DHCP starts over and may hand out another address. A static
 * address stays. */
static void link_changed(int up)
{
    if (!up) {
        netif_set_link_down(&eth);
        if (up_mode == NET_DHCP) {
            dhcp_stop(&eth);
            netif_set_addr(&eth, IP4_ADDR_ANY4, IP4_ADDR_ANY4, IP4_ADDR_ANY4);
        }
        return;
    }
    netif_set_link_up(&eth);
    if (up_mode == NET_DHCP)
        dhcp_start(&eth);
}

static void poll_link(void)
{
    uint32_t now = sys_now();
    if (now - link_checked_ms < LINK_POLL_MS)
        return;
    link_checked_ms = now;
    int up = open_eth_link_up();
    if (up != link_seen) {
        link_seen = up;
        link_changed(up);
    }
}

int net_has_address(void)
{
    return initialised && netif_is_up(&eth) && !ip4_addr_isany_val(*netif_ip4_addr(&eth));
}

struct netif *net_netif(void)
{
    return initialised ? &eth : NULL;
}

int net_poll(void)
{
    if (!initialised)
        return 0;
    const uint8_t *frame;
    size_t len;
    int n;
    /* Bounded so a flood cannot starve the UART and the sketch. */
    for (n = 0; n < 8 && (len = open_eth_rx_peek(&frame)) > 0; n++) {
        struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
        if (p) {
            pbuf_take(p, frame, (u16_t)len);
            if (eth.input(p, &eth) != ERR_OK)
                pbuf_free(p);
        }
        open_eth_rx_release();
    }
    if (up_mode >= 0)
        poll_link();
    sys_check_timeouts();
    return n;
}
