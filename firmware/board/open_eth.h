/* OpenCores 10/100 Ethernet MAC (QEMU's open_eth) on the XTFPGA board. */
#ifndef OPEN_ETH_H
#define OPEN_ETH_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OPEN_ETH_FRAME_MAX 1536

/* Resets MAC and PHY, sets the station address, enables RX and TX.
 * Returns 0 when the MAC answers, -1 when the board has no NIC. */
int open_eth_init(const uint8_t mac[6]);
int open_eth_link_up(void);
uint32_t open_eth_phy_id(void);
/* Transmit: fill the buffer, then send. The buffer is free again once
 * open_eth_tx_buffer() returns it (QEMU sends synchronously). */
uint8_t *open_eth_tx_buffer(void);
void open_eth_tx_send(size_t len);
/* Receive: length of the oldest pending frame (0 if none) and its bytes;
 * open_eth_rx_release() hands the buffer back to the MAC. */
size_t open_eth_rx_peek(const uint8_t **frame);
void open_eth_rx_release(void);
uint32_t open_eth_rx_overruns(void);
/* Lowers the receive interrupt an idle board woke on (watchdog.c). */
void open_eth_wake_ack(void);

#ifdef __cplusplus
}
#endif
#endif
