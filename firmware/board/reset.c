/* Why the board last reset, kept where the ESP8266 keeps it: RTC memory at
 * 0x60001000 (on QEMU's lx60 board plain RAM that a system reset leaves
 * alone, and that is zero when QEMU starts, i.e. at power-on). Before a
 * reset the firmware causes itself it writes the reason the next boot
 * reports; a reset it did not ask for (QMP system_reset: the reset pin) is
 * an external one. Codes are the SDK's rst_info reasons. */
#include "board.h"

#define RTC_MAGIC 0x52535431u   /* "RST1" */

struct rtc_reset {
    uint32_t magic;
    uint32_t next_reason;   /* what the next boot reports */
    uint32_t exccause, epc1, excvaddr;
};

#define RTC_RESET ((volatile struct rtc_reset *)0x60001000u)

static struct board_reset_info last;

void reset_init(void)
{
    volatile struct rtc_reset *r = RTC_RESET;
    if (r->magic != RTC_MAGIC) {
        last.reason = BOARD_RESET_POWER_ON;
    } else {
        last.reason = r->next_reason;
        last.exccause = r->exccause;
        last.epc1 = r->epc1;
        last.excvaddr = r->excvaddr;
    }
    r->magic = RTC_MAGIC;
    r->next_reason = BOARD_RESET_EXTERNAL;
    r->exccause = r->epc1 = r->excvaddr = 0;
}

void reset_report(void)
{
    /* The chip's ROM prints its cause line on every boot (cause 4 is the
     * hardware watchdog) and "wdt reset" under it; the hardware watchdog
     * itself prints nothing when it fires, so this is the only trace a
     * UART log (and the harness's board event) gets of it. */
    if (last.reason == BOARD_RESET_HW_WDT)
        uart_puts("\r\n ets Jan  8 2013,rst cause:4, boot mode:(3,6)\r\n\r\nwdt reset\r\n");
}

const struct board_reset_info *board_last_reset(void)
{
    return &last;
}

IRAM_ATTR void board_reset_because(uint32_t reason, uint32_t exccause, uint32_t epc1, uint32_t excvaddr)
{
    volatile struct rtc_reset *r = RTC_RESET;
    r->magic = RTC_MAGIC;
    r->next_reason = reason;
    r->exccause = exccause;
    r->epc1 = epc1;
    r->excvaddr = excvaddr;
    board_reset();
}

const char *board_reset_reason_text(uint32_t reason)
{
    /* The ESP8266 core's ESP.getResetReason() wording. */
    switch (reason) {
    case BOARD_RESET_POWER_ON: return "Power On";
    case BOARD_RESET_HW_WDT: return "Hardware Watchdog";
    case BOARD_RESET_EXCEPTION: return "Exception";
    case BOARD_RESET_SOFT_WDT: return "Software Watchdog";
    case BOARD_RESET_SOFT_RESTART: return "Software/System restart";
    case BOARD_RESET_DEEP_SLEEP: return "Deep-Sleep Wake";
    case BOARD_RESET_EXTERNAL: return "External System";
    default: return "Unknown";
    }
}
