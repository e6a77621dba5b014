/* The two things lwIP needs from a NO_SYS platform: time and failure. */
#include "lwip/opt.h"
#include "lwip/sys.h"
#include "board.h"

u32_t sys_now(void)
{
    return clock_ms();
}

void lwip_port_assert(const char *msg, int line, const char *file)
{
    printf("lwIP assert: %s at %s:%d\n", msg, file, line);
    board_reset();
}

/* CCOUNT keeps counting across resets and the moment of each call depends
 * on network timing, which is enough entropy for ports and ISNs here. */
unsigned long lwip_port_rand(void)
{
    static uint32_t state = 0x9e3779b9u;
    uint32_t c;
    __asm__ volatile("rsr %0, ccount" : "=a"(c));
    state ^= c;
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}
