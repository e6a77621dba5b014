/* Polled driver for the OpenCores ethmac as QEMU models it: descriptors
 * live in the MAC (0x9d030400, TX first, RX from TX_BD_NUM on), frame
 * buffers in the board's 16 KiB packet RAM, which is what the MAC can DMA
 * to on the real XTFPGA. QEMU drops a frame when the next RX descriptor is
 * still owned by software, so the ring is sized to absorb a TCP window. */
#include "board.h"
#include "open_eth.h"

#define R_MODER      0x00
#define R_INT_SOURCE 0x04
#define R_INT_MASK   0x08
#define R_PACKETLEN  0x18
#define R_TX_BD_NUM  0x20
#define R_MIIMODER   0x28
#define R_MIICOMMAND 0x2c
#define R_MIIADDRESS 0x30
#define R_MIITX_DATA 0x34
#define R_MIIRX_DATA 0x38
#define R_MIISTATUS  0x3c
#define R_MAC_ADDR0  0x40
#define R_MAC_ADDR1  0x44

#define MODER_RXEN  0x0001
#define MODER_TXEN  0x0002
#define MODER_FULLD 0x0400
#define MODER_RST   0x0800
#define MODER_CRCEN 0x2000
#define MODER_PAD   0x8000

#define BD_LEN_SHIFT 16
#define TXD_RD  0x8000
#define TXD_WR  0x2000
#define TXD_PAD 0x1000
#define TXD_CRC 0x0800
#define RXD_E   0x8000
#define RXD_IRQ 0x4000   /* raise INT_SOURCE.RXB when this buffer fills */
#define RXD_WR  0x2000
#define INT_RXB 0x0004
#define RXD_ERR 0x01ff   /* status bits; M (0x80, address miss) included */

#define MIICMD_WCTRLDATA 0x4
#define MIICMD_RSTAT     0x2
#define PHY_ADDR 1       /* QEMU's model answers only at PHY address 1 */
#define MII_BMCR 0
#define MII_BMSR 1
#define MII_PHYID1 2
#define MII_PHYID2 3
#define BMCR_RESET  0x8000
#define BMCR_ANEN   0x1000
#define BMSR_LINK   0x0004

#define N_TX 1
#define N_RX 9
#define BUF_SZ OPEN_ETH_FRAME_MAX

#define ETH_REG(off) REG32(BOARD_ETH_REGS + (off))
#define BD_FLAGS(i)  REG32(BOARD_ETH_DESC + 8 * (i))
#define BD_PTR(i)    REG32(BOARD_ETH_DESC + 8 * (i) + 4)
#define BUF(i)       ((uint8_t *)(BOARD_ETH_BUF + (i) * BUF_SZ))

_Static_assert((N_TX + N_RX) * BUF_SZ <= BOARD_ETH_BUF_SIZE, "packet RAM");

static unsigned rx_next;       /* RX ring index, 0..N_RX-1 */
static uint32_t rx_dropped;

static void mii_write(unsigned reg, uint16_t val)
{
    ETH_REG(R_MIIADDRESS) = (reg << 8) | PHY_ADDR;
    ETH_REG(R_MIITX_DATA) = val;
    ETH_REG(R_MIICOMMAND) = MIICMD_WCTRLDATA;
}

static uint16_t mii_read(unsigned reg)
{
    ETH_REG(R_MIIADDRESS) = (reg << 8) | PHY_ADDR;
    ETH_REG(R_MIICOMMAND) = MIICMD_RSTAT;
    return (uint16_t)ETH_REG(R_MIIRX_DATA);
}

uint32_t open_eth_phy_id(void)
{
    return ((uint32_t)mii_read(MII_PHYID1) << 16) | mii_read(MII_PHYID2);
}

int open_eth_link_up(void)
{
    return (mii_read(MII_BMSR) & BMSR_LINK) != 0;
}

int open_eth_init(const uint8_t mac[6])
{
    ETH_REG(R_MODER) = MODER_RST;
    ETH_REG(R_MODER) = 0;
    /* Without -net nic the region is unassigned and reads back zero;
     * after reset the model reports its documented PACKETLEN default. */
    if (ETH_REG(R_PACKETLEN) != 0x00400600)
        return -1;

    mii_write(MII_BMCR, BMCR_RESET);
    mii_write(MII_BMCR, BMCR_ANEN);

    /* A received frame raises the MAC's interrupt line; the CPU only lets
     * it wake an idle board (watchdog.c), reception itself stays polled. */
    ETH_REG(R_INT_MASK) = INT_RXB;
    ETH_REG(R_INT_SOURCE) = 0xffffffff;
    ETH_REG(R_MAC_ADDR0) = ((uint32_t)mac[2] << 24) | ((uint32_t)mac[3] << 16) |
                           ((uint32_t)mac[4] << 8) | mac[5];
    ETH_REG(R_MAC_ADDR1) = ((uint32_t)mac[0] << 8) | mac[1];
    ETH_REG(R_TX_BD_NUM) = N_TX;

    BD_PTR(0) = (uint32_t)BUF(0);
    BD_FLAGS(0) = TXD_WR;
    for (unsigned i = 0; i < N_RX; i++) {
        BD_PTR(N_TX + i) = (uint32_t)BUF(N_TX + i);
        BD_FLAGS(N_TX + i) = RXD_E | RXD_IRQ | (i == N_RX - 1 ? RXD_WR : 0);
    }
    rx_next = 0;
    ETH_REG(R_MODER) = MODER_PAD | MODER_CRCEN | MODER_FULLD | MODER_TXEN | MODER_RXEN;
    return 0;
}

uint8_t *open_eth_tx_buffer(void)
{
    while (BD_FLAGS(0) & TXD_RD)
        ;
    return BUF(0);
}

void open_eth_tx_send(size_t len)
{
    if (len > BUF_SZ)
        len = BUF_SZ;
    BD_FLAGS(0) = ((uint32_t)len << BD_LEN_SHIFT) | TXD_RD | TXD_WR | TXD_PAD | TXD_CRC;
}

size_t open_eth_rx_peek(const uint8_t **frame)
{
    for (;;) {
        uint32_t f = BD_FLAGS(N_TX + rx_next);
        if (f & RXD_E)
            return 0;
        if (f & (RXD_ERR & ~0x80u)) {
            rx_dropped++;
            open_eth_rx_release();
            continue;
        }
        *frame = BUF(N_TX + rx_next);
        return f >> BD_LEN_SHIFT;
    }
}

void open_eth_rx_release(void)
{
    BD_FLAGS(N_TX + rx_next) = RXD_E | RXD_IRQ | (rx_next == N_RX - 1 ? RXD_WR : 0);
    rx_next = (rx_next + 1) % N_RX;
}

/* The level line stays up until RXB is cleared (write one to clear). */
IRAM_ATTR void open_eth_wake_ack(void)
{
    ETH_REG(R_INT_SOURCE) = INT_RXB;
}

uint32_t open_eth_rx_overruns(void)
{
    return rx_dropped;
}
