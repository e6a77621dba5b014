/* The emulated ESP8266's boot ROM: loads the firmware image from flash the
 * way the chip's ROM does, so the .bin a flasher writes boots here as it
 * would on a board. It reads the v1 image at flash offset 0 (0xE9 magic,
 * segment count, flash mode and size, entry; segments of address, length
 * and bytes for IRAM and DRAM; a checksum byte, 0xEF xor every segment
 * byte, at the next offset that is 15 mod 16), copies the segments, checks
 * the checksum, maps the flash's first MiB at 0x40200000 where the chip's
 * cache would show it (here: a copy into the board's instrom RAM), and
 * jumps to the entry point. A bad image is reported on the UART and the
 * boot ROM halts instead of running garbage (it does not retry: reflash).
 *
 * It prints in the spirit of the real ROM's boot lines ("load 0x..., len
 * ..."), which a harness keeps as UART log, never as protocol. */
#include <stdint.h>

#define UART_BASE   0x9d050020u
#define UART_THR    (*(volatile uint32_t *)(UART_BASE + 0))
#define UART_LSR    (*(volatile uint32_t *)(UART_BASE + 4 * 5))
#define FLASH_BASE  0x98000000u
#define FLASH_MAP   0x40200000u
#define FLASH_MAPPED (1024u * 1024u)

void bootrom_main(void);

static void put(char c)
{
    while (!(UART_LSR & 0x20))
        ;
    UART_THR = (uint8_t)c;
}

static void puts_(const char *s)
{
    while (*s)
        put(*s++);
}

static void hex_n(uint32_t v, int digits)
{
    puts_("0x");
    for (int i = 4 * (digits - 1); i >= 0; i -= 4)
        put("0123456789abcdef"[(v >> i) & 0xf]);
}

static void hex(uint32_t v) { hex_n(v, 8); }
static void hex8(uint8_t v) { hex_n(v, 2); }

static void dec(uint32_t v)
{
    char buf[11];
    int n = 0;
    do {
        /* No division helpers in this toolchain's libgcc: subtract. */
        uint32_t q = 0, r = v;
        while (r >= 10) {
            r -= 10;
            q++;
        }
        buf[n++] = (char)('0' + r);
        v = q;
    } while (v && n < 10);
    while (n)
        put(buf[--n]);
}

static uint8_t flash8(uint32_t off)
{
    return *(volatile uint8_t *)(FLASH_BASE + off);
}

static uint32_t flash32(uint32_t off)
{
    return (uint32_t)flash8(off) | (uint32_t)flash8(off + 1) << 8 |
           (uint32_t)flash8(off + 2) << 16 | (uint32_t)flash8(off + 3) << 24;
}

static int in_ram(uint32_t addr, uint32_t len)
{
    uint32_t end = addr + len;
    if (end < addr)
        return 0;
    return (addr >= 0x3FFE8000u && end <= 0x3FFFC000u) ||
           (addr >= 0x40100000u && end <= 0x40108000u);
}

static void halt(const char *why)
{
    puts_("\r\nbootrom: ");
    puts_(why);
    puts_("; not booting (flash the board again)\r\n");
    for (;;)
        __asm__ volatile("waiti 15");
}

void bootrom_main(void)
{
    /* Read-array mode, whatever command the flash was left in. */
    *(volatile uint16_t *)FLASH_BASE = 0x00FF;
    puts_("\r\n ets (mqtt-hil emulated ROM), boot mode:(3,6)\r\n");
    uint8_t magic = flash8(0);
    if (magic != 0xE9) {
        puts_("bootrom: no image at flash 0x0: first byte ");
        hex8(magic);
        halt(magic == 0xFF ? "the flash is erased" : "bad magic (not an ESP8266 v1 image)");
    }
    uint32_t count = flash8(1);
    if (count > 16)
        halt("more than 16 segments in the header");
    uint32_t entry = flash32(4);
    uint32_t pos = 8;
    uint8_t sum = 0xEF;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t addr = flash32(pos), len = flash32(pos + 4);
        pos += 8;
        puts_("load ");
        hex(addr);
        puts_(", len ");
        dec(len);
        puts_("\r\n");
        if (!in_ram(addr, len) || len > 0x20000u)
            halt("segment outside IRAM/DRAM");
        volatile uint8_t *dst = (volatile uint8_t *)addr;
        for (uint32_t k = 0; k < len; k++) {
            uint8_t b = flash8(pos + k);
            dst[k] = b;
            sum ^= b;
        }
        pos += len;
    }
    pos += 15 - (pos & 15);
    uint8_t stored = flash8(pos);
    puts_("chksum ");
    hex8(stored);
    puts_(" csum ");
    hex8(sum);
    puts_("\r\n");
    if (stored != sum)
        halt("image checksum mismatch (a corrupted or interrupted flash)");
    /* What the flash cache shows the CPU: flash offset X at 0x40200000+X. */
    volatile uint32_t *map = (volatile uint32_t *)FLASH_MAP;
    volatile uint32_t *src = (volatile uint32_t *)FLASH_BASE;
    for (uint32_t k = 0; k < FLASH_MAPPED / 4; k++)
        map[k] = src[k];
    puts_("jump to run user code @ ");
    hex(entry);
    puts_("\r\n");
    ((void (*)(void))entry)();
    halt("the application returned");
}
