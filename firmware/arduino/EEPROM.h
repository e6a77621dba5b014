/* EEPROM emulation in flash with the ESP8266 core's interface: begin(size)
 * loads up to 4096 bytes into RAM, commit() writes them back. On this board
 * it is stored in the pflash's last two 64 KiB sectors, alternately, with a
 * sequence number and CRC written after the data, so a power cut during
 * commit() leaves the previous contents intact. */
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
                dirty = true;
                memcpy(data + address, (const uint8_t *)&t, sizeof(T));
            }
        }
        return t;
    }

private:
    uint8_t *data = nullptr;
    size_t size = 0;
    bool dirty = false;
    uint32_t seq = 0;
    int slot = -1;          /* sector index holding the current copy */
};

extern EEPROMClass EEPROM;

#endif
