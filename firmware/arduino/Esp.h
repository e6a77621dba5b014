/* ESP: the ESP8266 core's chip-level calls, on the emulated board. */
#ifndef ESP_H
#define ESP_H

#include <stdint.h>
#include <stddef.h>

class String;

/* The SDK's rst_info (user_interface.h). */
enum rst_reason {
    REASON_DEFAULT_RST = 0,
    REASON_WDT_RST = 1,
    REASON_EXCEPTION_RST = 2,
    REASON_SOFT_WDT_RST = 3,
    REASON_SOFT_RESTART = 4,
    REASON_DEEP_SLEEP_AWAKE = 5,
    REASON_EXT_SYS_RST = 6,
};

struct rst_info {
    uint32_t reason;
    uint32_t exccause;
    uint32_t epc1;
    uint32_t epc2;
    uint32_t epc3;
    uint32_t excvaddr;
    uint32_t depc;
};

enum RFMode { RF_DEFAULT = 0, RF_CAL = 1, RF_NO_CAL = 2, RF_DISABLED = 4 };
#define WAKE_RF_DEFAULT RF_DEFAULT
#define WAKE_RFCAL RF_CAL
#define WAKE_NO_RFCAL RF_NO_CAL
#define WAKE_RF_DISABLED RF_DISABLED

class EspClass {
public:
    /* A full board reset: QEMU resets every device and restarts the CPU at
     * its reset vector. The next boot reports "Software/System restart". */
    [[noreturn]] void restart();
    [[noreturn]] void reset() { restart(); }
    /* Deep sleep: the network and the CPU stop for `us` microseconds
     * (0: until an external reset), then the board resets and reports
     * "Deep-Sleep Wake" (GPIO16 wired to RST, as sketches assume). */
    [[noreturn]] void deepSleep(uint64_t us, RFMode mode = RF_DEFAULT);
    [[noreturn]] void deepSleepInstant(uint64_t us, RFMode mode = RF_DEFAULT) { deepSleep(us, mode); }
    uint64_t deepSleepMax() { return 12000000000ull; }
    String getResetReason();
    String getResetInfo();
    struct rst_info *getResetInfoPtr();
    void wdtEnable(uint32_t timeout_ms = 0);
    void wdtDisable();
    void wdtFeed();
    uint32_t getFreeHeap();
    uint32_t getMaxFreeBlockSize();
    uint8_t getHeapFragmentation();
    uint32_t getChipId() { return 0x00e5e266; }
    uint32_t getFlashChipId() { return 0x001640ef; }
    uint32_t getCpuFreqMHz();
    uint32_t getCycleCount();
    uint32_t getFlashChipSize();
    uint32_t getFlashChipRealSize() { return getFlashChipSize(); }
    uint32_t getFlashChipSpeed() { return 40000000; }
    uint32_t getSketchSize();
    uint32_t getFreeSketchSpace();
    const char *getSdkVersion() { return "mqtt-hil-emulated"; }
    String getCoreVersion();
    String getFullVersion();
    uint8_t getBootVersion() { return 0; }
    uint16_t getVcc() { return 3300; }
    bool rtcUserMemoryRead(uint32_t offset, uint32_t *data, size_t size);
    bool rtcUserMemoryWrite(uint32_t offset, uint32_t *data, size_t size);
};

extern EspClass ESP;

#endif
