/* The board's one network interface: open_eth under lwIP. */
#ifndef NET_H
#define NET_H

#include <stdint.h>
#include "lwip/netif.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Selects how net_up() gets an address. The default is DHCP (QEMU's user
 * network answers with 10.0.2.15); the static fallback uses the same
 * addresses slirp would have handed out. */
typedef enum { NET_DHCP, NET_STATIC } net_mode_t;

#define NET_STATIC_IP   "10.0.2.15"
#define NET_STATIC_MASK "255.255.255.0"
#define NET_STATIC_GW   "10.0.2.2"

int net_init(void);                  /* MAC + lwIP; 0 on success */
int net_up(net_mode_t mode, const ip4_addr_t *ip, const ip4_addr_t *mask,
           const ip4_addr_t *gw);
void net_down(void);
int net_has_address(void);
/* The link (the radio's association) is up. */
int net_link_up(void);
struct netif *net_netif(void);
/* Moves received frames into lwIP and runs its timers; call often.
 * Returns the number of frames taken in. */
int net_poll(void);

#ifdef __cplusplus
}
#endif
#endif
