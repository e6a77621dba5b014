/* lwIP configuration for the emulated ESP8266: bare metal (NO_SYS, no
 * threads, no interrupts: the main loop polls), IPv4 + DHCP + TCP for an
 * MQTT client, sized to leave most of the 80 KiB DRAM to the application. */
#ifndef LWIPOPTS_H
#define LWIPOPTS_H

#define NO_SYS                      1
#define SYS_LIGHTWEIGHT_PROT        0
#define LWIP_SOCKET                 0
#define LWIP_NETCONN                0
#define LWIP_NETIF_API              0

#define LWIP_IPV4                   1
#define LWIP_IPV6                   0
#define LWIP_ARP                    1
#define LWIP_ETHERNET               1
#define LWIP_ICMP                   1
#define LWIP_RAW                    0
#define LWIP_UDP                    1   /* DHCP */
#define LWIP_TCP                    1
#define LWIP_DHCP                   1
/* QEMU's user network has no other hosts; the ARP probe only costs time. */
#define DHCP_DOES_ARP_CHECK         0
/* WiFi.hostByName() and WiFiClient::connect(host): lwIP's DNS client,
 * servers from DHCP (or WiFi.config()). */
#define LWIP_DNS                    1
#define DNS_TABLE_SIZE              2
#define DNS_MAX_NAME_LENGTH         128
#define LWIP_IGMP                   0
#define LWIP_AUTOIP                 0
#define LWIP_NETIF_HOSTNAME         1
#define LWIP_NETIF_STATUS_CALLBACK  1
#define LWIP_NETIF_LINK_CALLBACK    1

#define MEM_ALIGNMENT               4
#define MEM_SIZE                    (10 * 1024)
#define MEMP_NUM_PBUF               8
#define MEMP_NUM_UDP_PCB            3   /* DHCP, DNS, one for the sketch */
#define MEMP_NUM_TCP_PCB            4
#define MEMP_NUM_TCP_PCB_LISTEN     1
#define MEMP_NUM_TCP_SEG            16
#define MEMP_NUM_SYS_TIMEOUT        8
#define PBUF_POOL_SIZE              10
#define PBUF_POOL_BUFSIZE           LWIP_MEM_ALIGN_SIZE(TCP_MSS + 40 + PBUF_LINK_ENCAPSULATION_HLEN + PBUF_LINK_HLEN)

#define TCP_MSS                     1460
#define TCP_WND                     (4 * TCP_MSS)
#define TCP_SND_BUF                 (2 * TCP_MSS)
#define TCP_SND_QUEUELEN            ((4 * TCP_SND_BUF + TCP_MSS - 1) / TCP_MSS)
#define TCP_QUEUE_OOSEQ             0
#define LWIP_TCP_KEEPALIVE          1
/* A rebooted board must not reuse the port of its previous life: the
 * far side (QEMU's slirp) may still hold that connection. */
#define LWIP_RANDOMIZE_INITIAL_LOCAL_PORTS 1

#define LWIP_CHECKSUM_ON_COPY       1
#define LWIP_STATS                  0
#define LWIP_NOASSERT_ON_ERROR      0
#define LWIP_DEBUG                  0

#endif
