/* picolibc's stdio writes through a FILE the application provides; route
 * printf() and friends to the UART. */
#include <stdio.h>
#include "board.h"

static int stdio_put(char c, FILE *f)
{
    (void)f;
    if (c == '\n')
        uart_putc('\r');
    uart_putc(c);
    return (unsigned char)c;
}

static int stdio_get(FILE *f)
{
    (void)f;
    int c;
    while ((c = uart_read()) < 0)
        board_poll();
    return c;
}

static FILE uart_file = FDEV_SETUP_STREAM(stdio_put, stdio_get, NULL, _FDEV_SETUP_RW);
FILE *const stdin = &uart_file;
FILE *const stdout = &uart_file;
FILE *const stderr = &uart_file;

void _exit(int status)
{
    (void)status;
    board_reset();
}
