/* Millisecond/microsecond clock from CCOUNT. QEMU derives CCOUNT from its
 * virtual clock at the core's configured frequency, so it tracks wall time
 * without icount. The 32-bit counter wraps in ~107 s at 40 MHz; it is
 * extended to 64 bits on every read, which the firmware does far more
 * often than that from its main loop. CCOUNT keeps running across a QEMU
 * system reset, so time counts from clock_init() like millis() on a chip. */
#include "board.h"

static uint32_t cpu_hz;
static uint32_t last_ccount;
static uint64_t cycles_hi;
static uint32_t boot_ccount;

static inline uint32_t ccount(void)
{
    uint32_t v;
    __asm__ volatile("rsr %0, ccount" : "=a"(v));
    return v;
}

uint32_t board_cpu_hz(void)
{
    return cpu_hz;
}

void clock_init(void)
{
    /* The XTFPGA register reports the core clock QEMU emulates. */
    cpu_hz = REG32(BOARD_FPGA_BASE + 0x4);
    if (cpu_hz == 0)
        cpu_hz = 40000000;
    boot_ccount = ccount();
    last_ccount = 0;
    cycles_hi = 0;
}

static uint64_t cycles(void)
{
    uint32_t now = ccount() - boot_ccount;
    if (now < last_ccount)
        cycles_hi += 1ull << 32;
    last_ccount = now;
    return cycles_hi | now;
}

uint64_t clock_us(void)
{
    return cycles() / (cpu_hz / 1000000u);
}

uint32_t clock_ms(void)
{
    return (uint32_t)(cycles() / (cpu_hz / 1000u));
}
