/* Emulated ESP8266 board: the lx106 core on QEMU's XTFPGA "lx60-nommu"
 * machine. Addresses below were read from `info mtree` on QEMU 7.2. */
#ifndef BOARD_H
#define BOARD_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BOARD_IO_BASE        0x90000000u
#define BOARD_FPGA_BASE      0x9d020000u
#define BOARD_ETH_REGS       0x9d030000u
#define BOARD_ETH_DESC       0x9d030400u
#define BOARD_ETH_BUF        0x9d800000u
#define BOARD_ETH_BUF_SIZE   0x4000u
#define BOARD_UART_BASE      0x9d050020u
#define BOARD_FLASH_BASE     0x98000000u
#define BOARD_FLASH_SIZE     0x00400000u
#define BOARD_FLASH_SECTOR   0x00010000u

#define REG32(addr) (*(volatile uint32_t *)(addr))

/* Hot code that must run from IRAM (vectors, start-up, panic path). */
#define IRAM_ATTR __attribute__((section(".iram.text")))

void board_init(void);
/* Runs the periodic work the firmware relies on without interrupts:
 * drains the UART into its ring and keeps the 64-bit clock extended.
 * Returns nonzero when UART input arrived or was taken since the last call. */
int board_poll(void);
/* Halts the CPU (WAITI) for about that long; the host CPU idles too. */
void board_idle_ms(uint32_t ms);
void board_idle_cycles(uint32_t cycles);
__attribute__((noreturn)) void board_reset(void);
/* watchdog.c: the tick, the soft watchdog, interrupts. */
void watchdog_start(void);
void board_tick(uint32_t *frame);
/* The hardware watchdog's look from the ICOUNT debug exception (start.S);
 * returns the next ICOUNT. */
uint32_t board_hw_wdt_check(uint32_t *frame);
/* Halts the CPU for about ms without servicing anything (deep sleep). */
void board_sleep_ms(uint32_t ms);
/* The watchdog's feed (yield, delay, between loop() calls, ESP.wdtFeed)
 * and the soft watchdog's switch (ESP.wdtDisable/wdtEnable). */
void board_wdt_feed(void);
void board_wdt_soft_enable(int on);
/* noInterrupts()/interrupts(): whether the sketch has masked interrupts. */
void board_interrupts(int enabled);
int board_interrupts_enabled(void);
uint32_t board_cpu_hz(void);
size_t board_free_heap(void);

/* reset.c: the SDK's reset reasons (rst_info.reason). */
#define BOARD_RESET_POWER_ON     0
#define BOARD_RESET_HW_WDT       1
#define BOARD_RESET_EXCEPTION    2
#define BOARD_RESET_SOFT_WDT     3
#define BOARD_RESET_SOFT_RESTART 4
#define BOARD_RESET_DEEP_SLEEP   5
#define BOARD_RESET_EXTERNAL     6
struct board_reset_info {
    uint32_t reason, exccause, epc1, excvaddr;
};
void reset_init(void);
/* Prints what the ESP8266's ROM prints at boot for the last reset, where
 * that says more than our banner (after a hardware watchdog reset). */
void reset_report(void);
const struct board_reset_info *board_last_reset(void);
const char *board_reset_reason_text(uint32_t reason);
__attribute__((noreturn)) void board_reset_because(uint32_t reason, uint32_t exccause, uint32_t epc1,
                                                   uint32_t excvaddr);

/* clock.c */
void clock_init(void);
uint64_t clock_us(void);
uint32_t clock_ms(void);

/* uart.c: 16550, polled. */
void uart_init(uint32_t baud);
void uart_putc(char c);
void uart_write(const void *buf, size_t len);
void uart_puts(const char *s);
int uart_poll_rx(void);        /* moves hardware FIFO into the ring; returns bytes buffered */
int uart_available(void);
int uart_rx_room(void);         /* the ring can take another byte */
int uart_read(void);            /* -1 when empty */
int uart_peek(void);

/* flash.c: CFI (Intel command set) pflash; offsets are from BOARD_FLASH_BASE. */
int flash_present(void);
int flash_read(uint32_t offset, void *dst, size_t len);
int flash_erase_sector(uint32_t offset);
int flash_write(uint32_t offset, const void *src, size_t len);
/* flash_write of one run of bytes given in pieces (a record's header,
 * data and CRC): as few program sequences as one flash_write of it. */
struct flash_chunk {
    const void *p;
    size_t len;
};
int flash_writev(uint32_t offset, const struct flash_chunk *chunks, size_t n);

#ifdef __cplusplus
}
#endif
#endif
