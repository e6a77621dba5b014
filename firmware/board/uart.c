/* 16550 UART at BOARD_UART_BASE, registers 4 bytes apart. Receive is polled
 * into a ring so bytes arriving while the sketch is busy are kept; QEMU
 * back-pressures its chardev while the 16-byte FIFO is full, so nothing is
 * lost between polls.
 *
 * The FIFO's receive trigger level sets how much QEMU hands over at once:
 * its 16550 takes from the chardev only up to the trigger level (then one
 * byte at a time), and takes more only after the guest has read the FIFO,
 * a round trip between QEMU's I/O thread and the CPU thread each time. At
 * level 1 that round trip was paid per byte: a 47-byte command line took
 * 5-8 ms on a loaded host, 1.3-1.9 ms at level 14. The cost of 14: a line
 * shorter than that raises the receive interrupt (which ends an idle
 * WAITI, watchdog.c) only at the FIFO's timeout, four character times at
 * 115200 baud (~0.35 ms), or at the nap's end; measured, a 7-byte line to
 * an idle board was answered no later than at level 1 (the two hand-overs
 * level 1 needs cost as much on a loaded host). */
#include "board.h"

#define UART_REG(n)  REG32(BOARD_UART_BASE + 4 * (n))
#define RBR 0
#define THR 0
#define IER 1
#define DLL 0
#define DLM 1
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define LSR_DR   0x01
#define LSR_THRE 0x20
#define FCR_FIFO_ON    0x01
#define FCR_TRIGGER_14 0xc0   /* receive trigger level: see the top */

#define RX_RING 1024

static uint8_t rx_ring[RX_RING];
static volatile uint16_t rx_head, rx_tail;

void uart_init(uint32_t baud)
{
    /* The divisor assumes the 1.8432 MHz reference of the 16550; QEMU ignores
     * the rate but a real-chip-like init keeps the code honest. */
    uint32_t div = 1843200u / (16u * (baud ? baud : 115200u));
    UART_REG(IER) = 0;
    UART_REG(LCR) = 0x80;
    UART_REG(DLL) = div & 0xff;
    UART_REG(DLM) = (div >> 8) & 0xff;
    UART_REG(LCR) = 0x03;          /* 8N1 */
    /* FIFOs on but not cleared, and the ring kept: Serial.begin() in a
     * sketch must not throw away commands that arrived during boot. */
    UART_REG(FCR) = FCR_FIFO_ON | FCR_TRIGGER_14;
    UART_REG(MCR) = 0x03;          /* DTR, RTS */
    /* Received data raises the UART's interrupt line; the CPU only lets it
     * wake an idle board (watchdog.c), reception itself stays polled. */
    UART_REG(IER) = 0x01;
}

IRAM_ATTR void uart_putc(char c)
{
    while (!(UART_REG(LSR) & LSR_THRE))
        ;
    UART_REG(THR) = (uint8_t)c;
}

void uart_write(const void *buf, size_t len)
{
    const char *p = buf;
    while (len--)
        uart_putc(*p++);
}

IRAM_ATTR void uart_puts(const char *s)
{
    while (*s)
        uart_putc(*s++);
}

int uart_poll_rx(void)
{
    while (UART_REG(LSR) & LSR_DR) {
        uint16_t next = (rx_head + 1) % RX_RING;
        if (next == rx_tail)
            break;                 /* ring full: leave bytes in the FIFO */
        rx_ring[rx_head] = (uint8_t)UART_REG(RBR);
        rx_head = next;
    }
    return uart_available();
}

/* Whether a byte in the FIFO could be taken now: the FIFO should only
 * wake an idle board when its bytes have somewhere to go. */
int uart_rx_room(void)
{
    return (rx_head + 1) % RX_RING != rx_tail;
}

int uart_available(void)
{
    return (rx_head + RX_RING - rx_tail) % RX_RING;
}

int uart_peek(void)
{
    uart_poll_rx();
    return rx_head == rx_tail ? -1 : rx_ring[rx_tail];
}

int uart_read(void)
{
    uart_poll_rx();
    if (rx_head == rx_tail)
        return -1;
    int c = rx_ring[rx_tail];
    rx_tail = (rx_tail + 1) % RX_RING;
    return c;
}
