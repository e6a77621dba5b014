/* EEPROM as a log in two flash sectors (see EEPROM.h for the guarantees).
 *
 * Sector layout (offsets in the sector):
 *   0   head: magic, seq, size, crc32(seq, size, snapshot)   -- written last
 *   16  snapshot: `size` bytes, the whole store when the sector was started
 *   16+round4(size)  records, appended one per commit:
 *       off u16, len u16, seq u32, data[len], pad to 4, crc32(header, data)
 *
 * The live contents are the newest valid snapshot with its records applied
 * in order (each record's seq one more than the last). A record is written
 * header first, so an erased header means the log ends there; a header
 * whose record does not check out is a commit a power cut interrupted: it
 * is ignored, and the next commit starts a fresh snapshot in the other
 * sector instead of appending after it. The other sector is only erased to
 * take the next snapshot, so until that snapshot's head is written the old
 * sector still holds the previous contents. */
#include <stdlib.h>
#include "EEPROM.h"
#include "board.h"

EEPROMClass EEPROM;

#define EEPROM_MAX 4096
#define EEPROM_MAGIC 0x4c454532u   /* "2EEL": log format, not the old "EEP1" */
#define HEAD_SIZE 16u
#define REC_HEAD 8u
#define REC_CRC 4u
#define BLANK_AHEAD 4096u   /* bytes past the log end checked at once */

static const uint32_t sector_offset[2] = {
    BOARD_FLASH_SIZE - 2 * BOARD_FLASH_SECTOR,
    BOARD_FLASH_SIZE - BOARD_FLASH_SECTOR,
};

struct SectorHead {
    uint32_t magic;
    uint32_t seq;
    uint32_t size;
    uint32_t crc;
};

struct RecHead {
    uint16_t off;
    uint16_t len;
    uint32_t seq;
};

static uint32_t round4(uint32_t n) { return (n + 3) & ~3u; }
static uint32_t log_start(uint32_t size) { return HEAD_SIZE + round4(size); }
static uint32_t rec_size(uint32_t len) { return REC_HEAD + round4(len) + REC_CRC; }

/* Nibble table: 64 bytes of DRAM instead of 1 KiB, ~4x faster than bitwise
 * when a boot replays a long log. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1db71064u, 0x3b6e20c8u, 0x26d930acu, 0x76dc4190u, 0x6b6b51f4u,
    0x4db26158u, 0x5005713cu, 0xedb88320u, 0xf00f9344u, 0xd6d6a3e8u, 0xcb61b38cu,
    0x9b64c2b0u, 0x86d3d2d4u, 0xa00ae278u, 0xbdbdf21cu,
};

static uint32_t crc32_update(uint32_t c, const uint8_t *p, size_t n)
{
    while (n--) {
        c ^= *p++;
        c = (c >> 4) ^ crc_nibble[c & 15];
        c = (c >> 4) ^ crc_nibble[c & 15];
    }
    return c;
}

/* Chunked so checking flash needs no big buffer. `c` is a running value. */
static uint32_t crc32_flash(uint32_t c, uint32_t off, size_t n)
{
    uint8_t chunk[64];
    while (n) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
        flash_read(off, chunk, k);
        c = crc32_update(c, chunk, k);
        off += k;
        n -= k;
    }
    return c;
}

/* The head's CRC covers seq and size too, so a head cannot pair with
 * another snapshot. */
static uint32_t head_crc_start(const SectorHead &h)
{
    return crc32_update(0xffffffffu, (const uint8_t *)&h.seq, sizeof h.seq + sizeof h.size);
}

static bool blank(uint32_t off, size_t n)
{
    uint8_t chunk[32];
    while (n) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
        if (flash_read(off, chunk, k) != 0)
            return false;
        for (size_t i = 0; i < k; i++)
            if (chunk[i] != 0xff)
                return false;
        off += k;
        n -= k;
    }
    return true;
}

static bool read_head(int s, SectorHead &h)
{
    if (flash_read(sector_offset[s], &h, sizeof h) != 0 || h.magic != EEPROM_MAGIC ||
        h.size > EEPROM_MAX)
        return false;
    return ~crc32_flash(head_crc_start(h), sector_offset[s] + HEAD_SIZE, h.size) == h.crc;
}

void EEPROMClass::touch(size_t from, size_t n)
{
    if (!dirty) {
        lo = from;
        hi = from + n;
    } else {
        lo = from < lo ? from : lo;
        hi = from + n > hi ? from + n : hi;
    }
    dirty = true;
}

void EEPROMClass::begin(size_t want)
{
    if (want == 0 || want > EEPROM_MAX)
        return;
    want = (want + 3) & ~(size_t)3;
    free(data);
    data = static_cast<uint8_t *>(malloc(want));
    if (!data) {
        size = 0;
        return;
    }
    size = want;
    memset(data, 0xff, size);   /* what erased flash reads as, like the core */
    dirty = false;
    sector = -1;
    seq = 0;
    log_pos = 0;
    blank_to = 0;
    fresh_sector = true;

    SectorHead h[2];
    bool ok[2] = { read_head(0, h[0]), read_head(1, h[1]) };
    for (int s = 0; s < 2; s++)
        if (ok[s] && (sector < 0 || (int32_t)(h[s].seq - seq) > 0)) {
            sector = s;
            seq = h[s].seq;
        }
    if (sector < 0)
        return;

    const SectorHead &cur = h[sector];
    uint32_t base = sector_offset[sector];
    flash_read(base + HEAD_SIZE, data, size < cur.size ? size : cur.size);
    uint32_t pos = log_start(cur.size);
    fresh_sector = cur.size != size;   /* records must describe this size */
    while (pos + REC_HEAD <= BOARD_FLASH_SECTOR) {
        RecHead r;
        flash_read(base + pos, &r, sizeof r);
        if (r.off == 0xffff && r.len == 0xffff && r.seq == 0xffffffffu)
            break;   /* erased: the end of the log */
        uint32_t crc_at = pos + REC_HEAD + round4(r.len), stored;
        bool good = r.seq == seq + 1 && r.len > 0 && (uint32_t)r.off + r.len <= cur.size &&
                    pos + rec_size(r.len) <= BOARD_FLASH_SECTOR &&
                    flash_read(base + crc_at, &stored, 4) == 0;
        if (good) {
            uint32_t c = crc32_update(0xffffffffu, (const uint8_t *)&r, sizeof r);
            good = ~crc32_flash(c, base + pos + REC_HEAD, r.len) == stored;
        }
        if (!good) {
            fresh_sector = true;   /* an interrupted commit: never append after it */
            break;
        }
        if (r.off < size)
            flash_read(base + pos + REC_HEAD, data + r.off,
                       r.off + r.len <= size ? r.len : size - r.off);
        seq = r.seq;
        pos += rec_size(r.len);
    }
    log_pos = pos;
    blank_to = pos;   /* what lies beyond the log is read before it is used */
}

uint8_t EEPROMClass::read(int address)
{
    if (!data || address < 0 || (size_t)address >= size)
        return 0;
    return data[address];
}

void EEPROMClass::write(int address, uint8_t value)
{
    if (!data || address < 0 || (size_t)address >= size)
        return;
    if (data[address] != value) {
        data[address] = value;
        touch((size_t)address, 1);
    }
}

uint8_t *EEPROMClass::getDataPtr()
{
    if (data)
        touch(0, size);   /* the caller may write anywhere through the pointer */
    return data;
}

/* Starts the other sector with the whole store: erase, snapshot, then the
 * head that makes it count. */
bool EEPROMClass::snapshot()
{
    int next = sector < 0 ? 0 : sector ^ 1;
    uint32_t base = sector_offset[next];
    SectorHead h = { EEPROM_MAGIC, seq + 1, (uint32_t)size, 0 };
    h.crc = ~crc32_update(head_crc_start(h), data, size);
    if (flash_erase_sector(base) != 0 || flash_write(base + HEAD_SIZE, data, size) != 0 ||
        flash_write(base, &h, sizeof h) != 0)
        return false;
    sector = next;
    seq = h.seq;
    log_pos = log_start(size);
    blank_to = log_pos;   /* an erase is trusted no more than a boot's leftovers */
    fresh_sector = false;
    return true;
}

/* Appends the changed span [lo, hi) as one record; false when it cannot
 * (no room, or the space is not erased), and then nothing was written. */
bool EEPROMClass::append()
{
    uint32_t len = (uint32_t)(hi - lo);
    if (sector < 0 || fresh_sector || log_pos + rec_size(len) > BOARD_FLASH_SECTOR)
        return false;
    uint32_t at = sector_offset[sector] + log_pos;
    if (log_pos + rec_size(len) > blank_to) {
        /* Checked a stretch ahead at a time, not per record: reading puts
         * the flash back in read-array mode, which under QEMU remaps the
         * region (and the next program remaps it again, ~0.1 ms each),
         * while back-to-back programs keep it in command mode. Nothing but
         * this class writes the sector, so space read as erased stays so
         * until an append uses it. */
        uint32_t end = log_pos + (rec_size(len) > BLANK_AHEAD ? rec_size(len) : BLANK_AHEAD);
        end = end < BOARD_FLASH_SECTOR ? end : BOARD_FLASH_SECTOR;
        if (!blank(at, end - log_pos))
            return false;
        blank_to = end;
    }
    RecHead r = { (uint16_t)lo, (uint16_t)len, seq + 1 };
    uint32_t crc = ~crc32_update(crc32_update(0xffffffffu, (const uint8_t *)&r, sizeof r),
                                 data + lo, len);
    /* One program call for the whole record: under QEMU each call's write
     * sequence is a write to the flash file. Order within it does not
     * matter for a power cut: a record whose header is still erased ends
     * the log (after a boot, space past the log is read as erased before
     * an append uses it, so bytes it left are found before anything is
     * written over them, and a snapshot follows), any other partial record fails its CRC, which covers
     * header and data. The padding to 4 is zeros, not left erased,
     * so it does not split the write in two; nothing reads it. */
    static const uint8_t pad[3] = { 0, 0, 0 };
    const flash_chunk rec[] = {
        { &r, sizeof r },
        { data + lo, len },
        { pad, round4(len) - len },
        { &crc, sizeof crc },
    };
    if (flash_writev(at, rec, sizeof rec / sizeof rec[0]) != 0) {
        fresh_sector = true;
        return false;
    }
    seq = r.seq;
    log_pos += rec_size(len);
    return true;
}

bool EEPROMClass::commit()
{
    if (!data || !size)
        return false;
    if (!dirty)
        return true;
    if (!flash_present())
        return false;
    if (!append() && !snapshot())
        return false;
    dirty = false;
    return true;
}

bool EEPROMClass::end()
{
    bool ok = commit();
    free(data);
    data = nullptr;
    size = 0;
    return ok;
}
