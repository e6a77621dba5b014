#include "Arduino.h"
#include "Esp.h"
#include "board.h"
#include "net.h"

EspClass ESP;

/* User RTC memory: 512 bytes after the SDK's 256 at 0x60001000, kept
 * across resets and deep sleep, lost at power-off (see board/reset.c). */
#define RTC_USER ((volatile uint32_t *)0x60001100u)
#define RTC_USER_BYTES 512u

void EspClass::restart()
{
    board_reset_because(BOARD_RESET_SOFT_RESTART, 0, 0, 0);
}

void EspClass::deepSleep(uint64_t us, RFMode)
{
    net_down();
    Serial.flush();
    /* Asleep, the chip answers nothing; here the CPU halts the same way
     * (no service, no watchdog) until the wake-up. */
    uint64_t end = clock_us() + us;
    while (us == 0 || clock_us() < end) {
        uint64_t left = us == 0 ? 1000000u : end - clock_us();
        board_sleep_ms((uint32_t)(left / 1000u > 1000u ? 1000u : left / 1000u + 1u));
    }
    board_reset_because(BOARD_RESET_DEEP_SLEEP, 0, 0, 0);
}

struct rst_info *EspClass::getResetInfoPtr()
{
    static struct rst_info info;
    const struct board_reset_info *r = board_last_reset();
    info.reason = r->reason;
    info.exccause = r->exccause;
    info.epc1 = r->epc1;
    info.excvaddr = r->excvaddr;
    return &info;
}

String EspClass::getResetReason()
{
    return String(board_reset_reason_text(board_last_reset()->reason));
}

String EspClass::getResetInfo()
{
    const struct board_reset_info *r = board_last_reset();
    char buf[160];
    /* After a hardware watchdog reset the core reports exception 4 (the
     * level-1 interrupt that could not run) and where the CPU was. */
    if (r->reason == BOARD_RESET_EXCEPTION || r->reason == BOARD_RESET_HW_WDT)
        snprintf(buf, sizeof buf, "Fatal exception:%lu flag:%lu (%s) epc1:0x%08lx epc2:0x00000000 epc3:0x00000000 excvaddr:0x%08lx depc:0x00000000",
                 (unsigned long)r->exccause, (unsigned long)r->reason, board_reset_reason_text(r->reason),
                 (unsigned long)r->epc1, (unsigned long)r->excvaddr);
    else
        snprintf(buf, sizeof buf, "Fatal exception:0 flag:%lu (%s) epc1:0x00000000 epc2:0x00000000 epc3:0x00000000 excvaddr:0x00000000 depc:0x00000000",
                 (unsigned long)r->reason, board_reset_reason_text(r->reason));
    return String(buf);
}

void EspClass::wdtEnable(uint32_t)
{
    board_wdt_soft_enable(1);
}

void EspClass::wdtDisable()
{
    board_wdt_soft_enable(0);
}

void EspClass::wdtFeed()
{
    board_wdt_feed();
}

uint32_t EspClass::getFreeHeap()
{
    return (uint32_t)board_free_heap();
}

uint32_t EspClass::getMaxFreeBlockSize()
{
    return (uint32_t)board_free_heap();
}

uint8_t EspClass::getHeapFragmentation()
{
    return 0;
}

uint32_t EspClass::getCpuFreqMHz()
{
    return board_cpu_hz() / 1000000u;
}

uint32_t EspClass::getCycleCount()
{
    uint32_t c;
    __asm__ volatile("rsr %0, ccount" : "=a"(c));
    return c;
}

uint32_t EspClass::getFlashChipSize()
{
    return flash_present() ? BOARD_FLASH_SIZE : 0;
}

extern "C" char _data_end[], _data_start[];
extern "C" char _iram_start[], _iram_end[];
extern "C" char __text_start[] __attribute__((weak));

uint32_t EspClass::getSketchSize()
{
    return (uint32_t)((_iram_end - _iram_start) + (_data_end - _data_start));
}

uint32_t EspClass::getFreeSketchSpace()
{
    return 1024u * 1024u - 64u * 1024u - getSketchSize();
}

String EspClass::getCoreVersion()
{
    return String("mqtt-hil");
}

String EspClass::getFullVersion()
{
    return String("SDK:mqtt-hil-emulated/Core:mqtt-hil/lwIP:2.1.3");
}

bool EspClass::rtcUserMemoryRead(uint32_t offset, uint32_t *data, size_t size)
{
    if (offset * 4u + size > RTC_USER_BYTES || (size & 3u))
        return false;
    for (size_t i = 0; i < size / 4; i++)
        data[i] = RTC_USER[offset + i];
    return true;
}

bool EspClass::rtcUserMemoryWrite(uint32_t offset, uint32_t *data, size_t size)
{
    if (offset * 4u + size > RTC_USER_BYTES || (size & 3u))
        return false;
    for (size_t i = 0; i < size / 4; i++)
        RTC_USER[offset + i] = data[i];
    return true;
}
