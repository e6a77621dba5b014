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
    reset_report();
}

int board_poll(void)
{
    static int buffered;
    int now = uart_poll_rx();
    /* Arrived, or taken by the sketch: either way the sketch has input
     * to work through (a sketch that never reads does not count). */
    int moved = now != buffered;
    buffered = now;
    (void)clock_ms();
    return moved;
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

void board_sleep_ms(uint32_t ms)
{
    board_idle_ms(ms);
}

