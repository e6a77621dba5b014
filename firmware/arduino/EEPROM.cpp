#include <stdlib.h>
#include "EEPROM.h"
#include "board.h"

EEPROMClass EEPROM;

#define EEPROM_MAX 4096
#define EEPROM_MAGIC 0x45455031u   /* "EEP1" */

static const uint32_t slot_offset[2] = {
    BOARD_FLASH_SIZE - 2 * BOARD_FLASH_SECTOR,
    BOARD_FLASH_SIZE - BOARD_FLASH_SECTOR,
};

/* Stored after the data, so it is the last thing a commit programs. */
struct Trailer {
    uint32_t magic;
    uint32_t seq;
    uint32_t size;
    uint32_t crc;
};

static uint32_t crc32_update(uint32_t c, const uint8_t *p, size_t n)
{
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return c;
}

static uint32_t crc32(const uint8_t *p, size_t n)
{
    return ~crc32_update(0xffffffffu, p, n);
}

/* Chunked so checking a slot needs no 4 KiB buffer. */
static uint32_t crc32_flash(uint32_t off, size_t n)
{
    uint8_t chunk[64];
    uint32_t c = 0xffffffffu;
    while (n) {
        size_t k = n < sizeof(chunk) ? n : sizeof(chunk);
        flash_read(off, chunk, k);
        c = crc32_update(c, chunk, k);
        off += k;
        n -= k;
    }
    return ~c;
}

static bool read_trailer(int s, Trailer &t)
{
    return flash_read(slot_offset[s] + EEPROM_MAX, &t, sizeof(t)) == 0 &&
           t.magic == EEPROM_MAGIC && t.size <= EEPROM_MAX;
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
    slot = -1;
    seq = 0;

    Trailer t[2];
    bool ok[2];
    for (int s = 0; s < 2; s++) {
        ok[s] = read_trailer(s, t[s]);
        if (ok[s])
            ok[s] = crc32_flash(slot_offset[s], t[s].size) == t[s].crc;
    }
    for (int s = 0; s < 2; s++)
        if (ok[s] && (slot < 0 || (int32_t)(t[s].seq - seq) > 0)) {
            slot = s;
            seq = t[s].seq;
        }
    if (slot >= 0)
        flash_read(slot_offset[slot], data, size < t[slot].size ? size : t[slot].size);
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
        dirty = true;
    }
}

uint8_t *EEPROMClass::getDataPtr()
{
    dirty = true;   /* the caller may write through the pointer */
    return data;
}

bool EEPROMClass::commit()
{
    if (!data || !size)
        return false;
    if (!dirty)
        return true;
    if (!flash_present())
        return false;
    int next = slot == 0 ? 1 : 0;
    Trailer t = { EEPROM_MAGIC, seq + 1, (uint32_t)size, crc32(data, size) };
    if (flash_erase_sector(slot_offset[next]) != 0 ||
        flash_write(slot_offset[next], data, size) != 0 ||
        flash_write(slot_offset[next] + EEPROM_MAX, &t, sizeof(t)) != 0)
        return false;
    slot = next;
    seq = t.seq;
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
