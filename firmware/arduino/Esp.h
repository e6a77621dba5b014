/* ESP: the chip-level calls of the ESP8266 core that make sense here. */
#ifndef ESP_H
#define ESP_H

#include <stdint.h>

class EspClass {
public:
    /* A full board reset: QEMU resets every device and restarts the CPU at
     * its reset vector (the same path as QMP system_reset). */
    [[noreturn]] void restart();
    [[noreturn]] void reset() { restart(); }
    uint32_t getFreeHeap();
    uint32_t getChipId() { return 0x00e5e266; }
    uint32_t getCpuFreqMHz();
    uint32_t getCycleCount();
    uint32_t getFlashChipSize();
};

extern EspClass ESP;

#endif
