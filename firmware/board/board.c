/* Board bring-up, the polled service loop, reset and heap accounting. */
#include <malloc.h>
#include <stdio.h>
#include <unistd.h>
#include "board.h"

extern char __heap_start[], __heap_end[];

void board_init(void)
{
    reset_init();
    clock_init();
    uart_init(115200);
}

int board_poll(void)
{
    static int buffered;
    int now = uart_poll_rx();
    int grew = now > buffered;
    buffered = now;
    (void)clock_ms();
    return grew;
}

#define TIMER0_INT 6   /* XCHAL_TIMER0_INTERRUPT of the lx106 */

/* Sleeps until CCOUNT passes `cycles` from now, with the CPU halted in
 * WAITI so QEMU's host thread idles instead of spinning. Device
 * interrupts stay disabled: anything that arrives meanwhile waits in the
 * UART FIFO or the MAC's RX ring for the next poll. */
void board_idle_cycles(uint32_t cycles)
{
    uint32_t now, after, ps;
    __asm__ volatile("rsr %0, ccount" : "=a"(now));
    __asm__ volatile("wsr %0, ccompare0" :: "a"(now + cycles));
    /* CCOUNT follows the host's clock: if QEMU's thread was descheduled
     * between the read and the write, the deadline is already behind
     * CCOUNT, and QEMU arms the compare timer for the next wrap-around
     * (2^32 cycles, 107 s): WAITI would sleep that long. Then don't wait. */
    __asm__ volatile("rsr %0, ccount" : "=a"(after));
    if ((int32_t)(now + cycles - after) <= 0)
        return;
    __asm__ volatile("wsr %0, intenable; rsync" :: "a"(1u << TIMER0_INT));
    __asm__ volatile("waiti 0" ::: "memory");
    __asm__ volatile("wsr %0, intenable; rsync" :: "a"(0));
    __asm__ volatile("rsil %0, 15" : "=a"(ps));
    (void)ps;
}

void board_idle_ms(uint32_t ms)
{
    board_idle_cycles(ms * (board_cpu_hz() / 1000u));
}

/* Writing 0xdead to the XTFPGA reset register makes QEMU perform a full
 * system reset (qemu_system_reset_request), the same path as QMP
 * system_reset: devices reset, the -kernel image is reloaded and the CPU
 * restarts at its reset vector. */
IRAM_ATTR void board_reset(void)
{
    REG32(BOARD_FPGA_BASE + 0x10) = 0xdead;
    for (;;)
        ;
}

/* Free heap = never-claimed space above the break + free chunks inside it. */
size_t board_free_heap(void)
{
    char *brk = sbrk(0);
    size_t untouched = (brk != (char *)-1 && brk >= __heap_start && brk <= __heap_end)
                           ? (size_t)(__heap_end - brk)
                           : 0;
    struct mallinfo mi = mallinfo();
    return untouched + (size_t)mi.fordblks;
}

static int irq_enabled = 1;

/* The firmware polls and keeps the CPU's interrupts masked outside
 * board_idle_cycles(); what the sketch asked for is kept so that idling
 * honours it. */
void board_interrupts(int enabled)
{
    irq_enabled = enabled;
}

int board_interrupts_enabled(void)
{
    return irq_enabled;
}

void board_sleep_ms(uint32_t ms)
{
    board_idle_ms(ms);
}

static uint32_t wdt_fed_ms;
static int wdt_soft_on = 1;

void board_wdt_feed(void)
{
    wdt_fed_ms = clock_ms();
}

void board_wdt_soft_enable(int on)
{
    wdt_soft_on = on;
    board_wdt_feed();
}
