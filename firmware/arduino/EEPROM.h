/* EEPROM emulation in flash with the ESP8266 core's interface: begin(size)
 * loads up to 4096 bytes into RAM, commit() writes them back.
 *
 * On this board the store lives in the pflash's last two 64 KiB sectors as
 * a log: a sector starts with a snapshot of the whole store, and each
 * commit() appends one record with the bytes changed since the last one
 * (the span from the first to the last changed byte). Only when a sector
 * is full does a commit erase the other sector and start it with a new
 * snapshot, so an erase happens once per several hundred small commits
 * instead of every time. Every record and snapshot is CRC-checked: a power
 * cut at any point of commit() leaves the previous or the new contents.
 * A commit with no changed byte writes nothing. Layout: EEPROM.cpp. */
#ifndef EEPROM_H
#define EEPROM_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

class EEPROMClass {
public:
    void begin(size_t size);
    uint8_t read(int address);
    void write(int address, uint8_t value);
    bool commit();
    bool end();
    /* Marks the whole store changed, as the caller may write through it;
     * prefer write()/put() so commit() records only what changed. */
    uint8_t *getDataPtr();
    const uint8_t *getConstDataPtr() const { return data; }
    size_t length() const { return size; }
    uint8_t &operator[](int address) { return getDataPtr()[address]; }

    template <typename T> T &get(int address, T &t)
    {
        if (address >= 0 && address + sizeof(T) <= size)
            memcpy((uint8_t *)&t, data + address, sizeof(T));
        return t;
    }
    template <typename T> const T &put(int address, const T &t)
    {
        if (address >= 0 && address + sizeof(T) <= size) {
            if (memcmp(data + address, (const uint8_t *)&t, sizeof(T)) != 0) {
                touch((size_t)address, sizeof(T));
                memcpy(data + address, (const uint8_t *)&t, sizeof(T));
            }
        }
        return t;
    }

private:
    void touch(size_t from, size_t n);
    bool append();
    bool snapshot();

    uint8_t *data = nullptr;
    size_t size = 0;
    bool dirty = false;
    size_t lo = 0, hi = 0;      /* changed span since the last commit, when dirty */
    uint32_t seq = 0;           /* of the newest snapshot or record */
    int sector = -1;            /* index of the sector holding the log */
    uint32_t log_pos = 0;       /* where the next record goes in it */
    uint32_t blank_to = 0;      /* [log_pos, blank_to) is known to be erased */
    bool fresh_sector = true;   /* the next commit must start a new snapshot */
};

extern EEPROMClass EEPROM;

#endif
