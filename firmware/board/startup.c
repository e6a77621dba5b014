/* C side of start-up: builds the C/C++ run-time environment the linker
 * script describes, then hands over to main(). */
#include <string.h>
#include <stdio.h>
#include "board.h"

extern uint32_t _data_start[], _data_end[], _data_load[];
extern uint32_t _bss_start[], _bss_end[];
typedef void (*ctor_fn)(void);
extern ctor_fn __init_array_start[], __init_array_end[];

int main(void);
void board_start(void);
void board_panic(uint32_t cause, uint32_t epc, uint32_t vaddr, uint32_t a0);

/* Runs from IRAM: until .data is copied and .bss zeroed, nothing written in
 * C may rely on initialised globals. Word copies because the real flash
 * window only allows aligned 32-bit loads. */
IRAM_ATTR void board_start(void)
{
    volatile uint32_t *src = _data_load;
    uint32_t *dst = _data_start;
    while (dst < _data_end)
        *dst++ = *src++;
    for (dst = _bss_start; dst < _bss_end; )
        *dst++ = 0;

    board_init();
    for (ctor_fn *f = __init_array_start; f < __init_array_end; f++)
        (*f)();
    watchdog_start();
    main();
    board_reset();
}

static IRAM_ATTR void panic_hex(uint32_t v)
{
    for (int i = 28; i >= 0; i -= 4)
        uart_putc("0123456789abcdef"[(v >> i) & 0xf]);
}

/* A fault is reported on the UART, then the board resets like a real
 * ESP8266's exception handler does, so a harness sees a reboot. */
IRAM_ATTR void board_panic(uint32_t cause, uint32_t epc, uint32_t vaddr, uint32_t a0)
{
    uart_puts("\r\n!! exception cause=0x");
    panic_hex(cause);
    uart_puts(" epc=0x");
    panic_hex(epc);
    uart_puts(" vaddr=0x");
    panic_hex(vaddr);
    uart_puts(" a0=0x");
    panic_hex(a0);
    uart_puts("\r\n");
    board_reset_because(BOARD_RESET_EXCEPTION, cause, epc, vaddr);
}
