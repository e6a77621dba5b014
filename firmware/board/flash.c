/* The XTFPGA parallel NOR flash, present when QEMU is given
 * `-drive if=pflash,format=raw,file=...`: 4 MiB of CFI flash (QEMU's
 * pflash_cfi01, Intel/Sharp command set, 16-bit bus) in 64 KiB sectors at
 * 0x98000000. QEMU writes programmed data through to the file, so data
 * survives killing QEMU. Reads are plain loads in read-array mode.
 *
 * Cost model under QEMU (measured, see examples/flash_timing): every time
 * the chip leaves or re-enters read-array mode QEMU remaps the region
 * (ROMD on/off), which costs far more than the access itself. Programming
 * word by word (0x40) pays that ~4 times per word (~280 us in all per
 * word). So programming uses the write-to-buffer command (0xE8), and the
 * chip goes back to read-array mode only when something reads it: a run
 * of erases and writes pays for one remap in and one out. */
#include <string.h>
#include "board.h"

#define CMD_READ_ARRAY    0xff
#define CMD_CLEAR_STATUS  0x50
#define CMD_ERASE_SETUP   0x20
#define CMD_CONFIRM       0xd0
#define CMD_WRITE_BUFFER  0xe8
#define CMD_CFI_QUERY     0x98
#define STATUS_READY      0x80
#define STATUS_ERRORS     0x3a
/* CFI query, word offsets: "QRY", and log2 of the write buffer in bytes. */
#define CFI_QRY           0x10
#define CFI_BUFFER_LOG2   0x2a
#define WAIT_LIMIT        10000000u

#define FLASH16(off) (*(volatile uint16_t *)(BOARD_FLASH_BASE + (off)))

static int present = -1;
static uint32_t buffer_bytes;
static int array_mode = 1;   /* 0 after a command, until the next read */

/* Every read of the window goes through here first. */
static void read_array(void)
{
    if (!array_mode) {
        FLASH16(0) = CMD_READ_ARRAY;
        array_mode = 1;
    }
}

static int wait_ready(uint32_t off)
{
    for (uint32_t i = 0; i < WAIT_LIMIT; i++) {
        uint16_t st = FLASH16(off);
        if (st & STATUS_READY) {
            if (st & STATUS_ERRORS) {
                FLASH16(off) = CMD_CLEAR_STATUS;
                return -1;
            }
            return 0;
        }
    }
    return -1;
}

/* Without a pflash drive the window reads as zeros and ignores writes; the
 * CFI query tells the two apart. The same query gives the write-buffer
 * size, which bounds (and aligns) one 0xE8 sequence. */
int flash_present(void)
{
    if (present < 0) {
        FLASH16(0) = CMD_CFI_QUERY;
        present = FLASH16(CFI_QRY * 2) == 'Q' && FLASH16((CFI_QRY + 1) * 2) == 'R' &&
                  FLASH16((CFI_QRY + 2) * 2) == 'Y';
        uint16_t lg = present ? FLASH16(CFI_BUFFER_LOG2 * 2) & 0xff : 0;
        /* 0 means no buffered program; the clamp keeps a garbage answer
         * from turning into a huge or odd-sized burst. */
        buffer_bytes = lg >= 1 && lg <= 11 ? 1u << lg : 2;
        FLASH16(0) = CMD_READ_ARRAY;
        array_mode = 1;
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
    read_array();
    memcpy(dst, (const void *)(BOARD_FLASH_BASE + off), len);
    return 0;
}

int flash_erase_sector(uint32_t off)
{
    if (!flash_present() || !in_range(off, 1))
        return -1;
    off &= ~(BOARD_FLASH_SECTOR - 1);
    array_mode = 0;
    FLASH16(off) = CMD_ERASE_SETUP;
    FLASH16(off) = CMD_CONFIRM;
    return wait_ready(off);
}

/* The word to program at word address `w` for flash_writev(off, c, count):
 * the chunks are one run of bytes from `off`; bytes outside [off, end)
 * keep what the flash held (head/tail). */
struct span {
    uint32_t off, end;
    const struct flash_chunk *c;
    uint16_t head, tail;
};

/* Byte `i` of the run (chunks are few: a walk is cheaper than a table). */
static uint8_t byte_at(const struct span *s, uint32_t i)
{
    const struct flash_chunk *c = s->c;
    while (i >= c->len) {
        i -= (uint32_t)c->len;
        c++;
    }
    return ((const uint8_t *)c->p)[i];
}

static uint16_t word_at(const struct span *s, uint32_t w)
{
    uint16_t cur = w < s->off ? s->head : (w + 1 >= s->end ? s->tail : 0xffff);
    uint8_t lo = w >= s->off ? byte_at(s, w - s->off) : (uint8_t)cur;
    uint8_t hi = w + 1 < s->end ? byte_at(s, w + 1 - s->off) : (uint8_t)(cur >> 8);
    return (uint16_t)(lo | hi << 8);
}

/* One write-to-buffer sequence: `n` words from word address `w`, all in
 * one buffer-aligned window (QEMU writes only that window back to the
 * file, and real chips require it). */
static int program_burst(const struct span *s, uint32_t w, uint32_t n)
{
    array_mode = 0;
    FLASH16(w) = CMD_WRITE_BUFFER;
    if (wait_ready(w) != 0)
        return -1;
    FLASH16(w) = (uint16_t)(n - 1);
    for (uint32_t i = 0; i < n; i++)
        FLASH16(w + 2 * i) = word_at(s, w + 2 * i);
    FLASH16(w) = CMD_CONFIRM;
    return wait_ready(w);
}

/* Programs bytes; unaligned head/tail bytes are merged with what the flash
 * holds, so NOR semantics (bits only go 1->0) are the caller's job. Words
 * that would be programmed to 0xFFFF are skipped: on NOR that is a no-op
 * (QEMU would store it, real flash would not change), and it makes writing
 * a mostly-erased image cheap. */
int flash_write(uint32_t off, const void *src, size_t len)
{
    struct flash_chunk c = { src, len };
    return flash_writev(off, &c, 1);
}

/* The chunks as one run of bytes from `off`, in as few write-to-buffer
 * sequences as the buffer windows allow: under QEMU each sequence is one
 * write of its window to the backing file (a round trip through QEMU's
 * I/O thread pool), so a record written as header, data and CRC in one
 * call costs one of those instead of three. */
int flash_writev(uint32_t off, const struct flash_chunk *chunks, size_t count)
{
    size_t len = 0;
    for (size_t i = 0; i < count; i++)
        len += chunks[i].len;
    if (!flash_present() || !in_range(off, len))
        return -1;
    if (len == 0)
        return 0;
    struct span s = { off, off + (uint32_t)len, chunks, 0xffff, 0xffff };
    /* Only an odd start or end needs the neighbouring byte, and reading it
     * costs a remap if a command ran last. */
    if ((off | s.end) & 1u) {
        read_array();
        s.head = FLASH16(off & ~1u);
        s.tail = FLASH16((s.end - 1) & ~1u);
    }
    int rc = 0;
    uint32_t w = off & ~1u;
    while (w < s.end && rc == 0) {
        if (word_at(&s, w) == 0xffff) {
            w += 2;
            continue;
        }
        uint32_t window_end = (w & ~(buffer_bytes - 1)) + buffer_bytes;
        uint32_t n = 1;
        while (w + 2 * n < s.end && w + 2 * n < window_end && word_at(&s, w + 2 * n) != 0xffff)
            n++;
        rc = program_burst(&s, w, n);
        w += 2 * n;
    }
    return rc;
}
