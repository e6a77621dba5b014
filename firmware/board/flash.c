/* The XTFPGA parallel NOR flash, present when QEMU is given
 * `-drive if=pflash,format=raw,file=...`: 4 MiB of CFI flash (QEMU's
 * pflash_cfi01, Intel/Sharp command set, 16-bit bus) in 64 KiB sectors at
 * 0x98000000. QEMU writes every programmed word through to the file, so
 * data survives killing QEMU. Reads are plain loads in read-array mode. */
#include <string.h>
#include "board.h"

#define CMD_READ_ARRAY   0xff
#define CMD_READ_STATUS  0x70
#define CMD_CLEAR_STATUS 0x50
#define CMD_PROGRAM      0x40
#define CMD_ERASE_SETUP  0x20
#define CMD_ERASE_CONFIRM 0xd0
#define CMD_CFI_QUERY    0x98
#define STATUS_READY     0x80
#define STATUS_ERRORS    0x3a

#define FLASH16(off) (*(volatile uint16_t *)(BOARD_FLASH_BASE + (off)))

static int present = -1;

static int wait_ready(uint32_t off)
{
    for (uint32_t i = 0; i < 10000000u; i++) {
        uint16_t st = FLASH16(off);
        if (st & STATUS_READY) {
            FLASH16(off) = CMD_CLEAR_STATUS;
            FLASH16(off) = CMD_READ_ARRAY;
            return (st & STATUS_ERRORS) ? -1 : 0;
        }
    }
    FLASH16(off) = CMD_READ_ARRAY;
    return -1;
}

/* Without a pflash drive the window reads as zeros and ignores writes; the
 * CFI query tells the two apart ("QRY" at word offsets 0x10..0x12). */
int flash_present(void)
{
    if (present < 0) {
        FLASH16(0) = CMD_CFI_QUERY;
        present = FLASH16(0x10 * 2) == 'Q' && FLASH16(0x11 * 2) == 'R' &&
                  FLASH16(0x12 * 2) == 'Y';
        FLASH16(0) = CMD_READ_ARRAY;
    }
    return present;
}

static int in_range(uint32_t off, size_t len)
{
    return off <= BOARD_FLASH_SIZE && len <= BOARD_FLASH_SIZE - off;
}

int flash_read(uint32_t off, void *dst, size_t len)
{
    if (!flash_present() || !in_range(off, len))
        return -1;
    memcpy(dst, (const void *)(BOARD_FLASH_BASE + off), len);
    return 0;
}

int flash_erase_sector(uint32_t off)
{
    if (!flash_present() || !in_range(off, 1))
        return -1;
    off &= ~(BOARD_FLASH_SECTOR - 1);
    FLASH16(off) = CMD_CLEAR_STATUS;
    FLASH16(off) = CMD_ERASE_SETUP;
    FLASH16(off) = CMD_ERASE_CONFIRM;
    return wait_ready(off);
}

/* Programs 16-bit words; unaligned head/tail bytes are merged with what the
 * flash holds, so NOR semantics (bits only go 1->0) are the caller's job. */
int flash_write(uint32_t off, const void *src, size_t len)
{
    const uint8_t *p = src;
    if (!flash_present() || !in_range(off, len))
        return -1;
    while (len > 0) {
        uint32_t w = off & ~1u;
        uint16_t cur = FLASH16(w);
        uint8_t b[2] = { (uint8_t)cur, (uint8_t)(cur >> 8) };
        size_t i = off & 1u;
        for (; i < 2 && len > 0; i++, len--, off++)
            b[i] = *p++;
        FLASH16(w) = CMD_PROGRAM;
        FLASH16(w) = (uint16_t)(b[0] | (b[1] << 8));
        if (wait_ready(w) != 0)
            return -1;
    }
    return 0;
}
