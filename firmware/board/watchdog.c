/* The ESP8266's two watchdogs, as far as the emulated board can have them,
 * and the timer they run on (QEMU's lx60 has no ESP8266 watchdog).
 *
 * The CPU's one timer, CCOMPARE0, interrupts at level 1 every TICK_MS and
 * whenever board_idle_cycles() wants to wake. Each tick checks the soft
 * watchdog: like the SDK's, it is fed whenever the sketch gives the system
 * a turn (yield(), delay(), the end of loop(), ESP.wdtFeed()), and if it
 * has not been fed for SOFT_WDT_MS the board prints what the core prints
 * ("Soft WDT reset" and the stack) and resets with reason 3. Masking
 * interrupts (noInterrupts()) masks the tick too, exactly as it keeps the
 * chip's soft watchdog from firing.
 *
 * The hardware watchdog is what resets the chip then: a counter outside
 * the CPU that the SDK's soft-watchdog interrupt feeds, so it runs out
 * (~8 s) when that interrupt cannot run (interrupts masked) or is stopped
 * (ESP.wdtDisable()) and the sketch does not feed it either. The chip
 * prints nothing when it fires; its ROM says "rst cause:4" and "wdt reset"
 * at the next boot (reset.c). On the lx60 board nothing outside the CPU
 * can be programmed to do that, and every interrupt a timer or device can
 * raise is level 1, masked with the rest (the lx106's NMI, level 3, is
 * wired to nothing). What is left above level 1 is the debug level (2):
 * while the sketch has interrupts masked, noInterrupts() masks at level 1
 * (which on the lx106 is every maskable interrupt, the same set `rsil 15`
 * masks on the chip) and arms the ICOUNT debug exception, which looks at
 * the clock every HW_LOOK_INSNS instructions (start.S, board_hw_wdt_check).
 * With interrupts on, the tick looks instead. ICOUNT costs QEMU a few
 * host instructions per guest instruction, so it is armed only while the
 * sketch has interrupts masked.
 *
 * A tick seen late because QEMU's thread was not scheduled (a loaded host)
 * must not count as a sketch that stopped yielding: each watchdog fires
 * only when the sketch has also run through enough ticks (or ICOUNT
 * looks) unfed. */
#include "board.h"
#include "open_eth.h"

#define TIMER0_INT 6   /* XCHAL_TIMER0_INTERRUPT of the lx106 */
/* QEMU's XTFPGA board wires the UART to external interrupt 0 and the
 * OpenCores MAC to external interrupt 1, which the lx106 numbers 0 and 1
 * (XCHAL_EXTINT0_NUM, XCHAL_EXTINT1_NUM; both level-triggered, level 1). */
#define UART_INT 0
#define ETH_INT 1
#define WAKE_INTS ((1u << UART_INT) | (1u << ETH_INT))
#define TICK_MS 100u
#define SOFT_WDT_MS 3200u
#define MIN_TICKS 16u
#define HW_WDT_MS 8000u
#define HW_MIN_TICKS 40u
/* A look every ~1M instructions: a few ms of emulated code. */
#define HW_LOOK_INSNS 1000000u
#define HW_MIN_LOOKS 16u
#define DEBUG_LEVEL 2  /* XCHAL_DEBUGLEVEL of the lx106 */

static uint32_t tick_cycles;
static volatile uint32_t next_tick;
static volatile uint32_t idle_wake;
static volatile int idling;
static volatile uint32_t fed_at;
static volatile uint32_t ticks_unfed;
static volatile int soft_on = 1;
static volatile uint32_t hw_fed_at;
static volatile uint32_t hw_ticks_unfed;
static volatile uint32_t hw_looks_unfed;
static int irq_on = 1;

extern char _stack_top[];

static inline uint32_t ccount(void)
{
    uint32_t v;
    __asm__ volatile("rsr %0, ccount" : "=a"(v));
    return v;
}

static inline void arm(uint32_t at)
{
    __asm__ volatile("wsr %0, ccompare0; rsync" :: "a"(at));
}

/* The next deadline of the two; compares as signed distances from now. */
static uint32_t next_deadline(uint32_t now)
{
    if (idling && (int32_t)(idle_wake - now) < (int32_t)(next_tick - now))
        return idle_wake;
    return next_tick;
}

static IRAM_ATTR void hex(uint32_t v)
{
    for (int i = 28; i >= 0; i -= 4)
        uart_putc("0123456789abcdef"[(v >> i) & 0xf]);
}

/* What the ESP8266 core's postmortem prints for a soft watchdog reset:
 * the cause, then the stack from the interrupted frame to its top. */
static IRAM_ATTR void soft_wdt_fire(uint32_t *frame)
{
    uint32_t sp = (uint32_t)frame + 80;
    uint32_t end = (uint32_t)_stack_top;
    uart_puts("\r\n--------------- CUT HERE FOR EXCEPTION DECODER ---------------\r\n");
    uart_puts("\r\nSoft WDT reset\r\n\r\n>>>stack>>>\r\n\r\nctx: cont\r\nsp: ");
    hex(sp);
    uart_puts(" end: ");
    hex(end);
    uart_puts(" offset: 0000\r\n");
    for (uint32_t a = sp & ~15u; a < end && a < sp + 1024; a += 16) {
        hex(a);
        uart_puts(": ");
        for (int i = 0; i < 4; i++) {
            uart_putc(' ');
            hex(*(volatile uint32_t *)(a + 4 * i));
        }
        uart_puts("\r\n");
    }
    uart_puts("<<<stack<<<\r\n\r\n--------------- CUT HERE FOR EXCEPTION DECODER ---------------\r\n");
    board_reset_because(BOARD_RESET_SOFT_WDT, 0, frame[16], 0);
}

/* The hardware watchdog ran out: the chip just resets (reason 1; the
 * core's getResetInfo() then shows exception 4, the level-1 interrupt
 * that never came, and where the CPU was). */
static IRAM_ATTR void hw_wdt_fire(uint32_t epc)
{
    board_reset_because(BOARD_RESET_HW_WDT, 4, epc, 0);
}

static IRAM_ATTR int hw_wdt_expired(uint32_t now)
{
    return now - hw_fed_at >= HW_WDT_MS * (tick_cycles / TICK_MS);
}

/* The debug exception (start.S) every HW_LOOK_INSNS instructions while the
 * sketch keeps interrupts masked; returns what ICOUNT starts from next. */
IRAM_ATTR uint32_t board_hw_wdt_check(uint32_t *frame)
{
    hw_looks_unfed++;
    if (hw_looks_unfed >= HW_MIN_LOOKS && hw_wdt_expired(ccount()))
        hw_wdt_fire(frame[16]);
    return 0u - HW_LOOK_INSNS;
}

static inline void intenable(uint32_t mask)
{
    __asm__ volatile("wsr %0, intenable; rsync" :: "a"(mask));
}

/* The level-1 interrupt (start.S): a tick, an idle wake-up (the timer or
 * data for the UART or the MAC), or both. */
IRAM_ATTR void board_tick(uint32_t *frame)
{
    uint32_t pending;
    __asm__ volatile("rsr %0, interrupt" : "=a"(pending));
    if (pending & WAKE_INTS) {
        /* A device only ends WAITI: its lines are level-triggered and stay
         * up until the data is polled, so they are masked again here and
         * the board goes back to polling. */
        intenable(1u << TIMER0_INT);
        if (pending & (1u << ETH_INT))
            open_eth_wake_ack();
        idling = 0;
    }
    uint32_t now = ccount();
    if ((int32_t)(now - next_tick) >= 0) {
        next_tick += tick_cycles;
        if ((int32_t)(next_tick - now) <= 0)
            next_tick = now + tick_cycles;
        ticks_unfed++;
        if (soft_on && ticks_unfed >= MIN_TICKS &&
            now - fed_at >= SOFT_WDT_MS * (tick_cycles / TICK_MS))
            soft_wdt_fire(frame);
        /* The SDK's soft-watchdog interrupt is what feeds the hardware
         * one; stopped (ESP.wdtDisable()), it leaves that to the sketch. */
        if (soft_on) {
            hw_fed_at = now;
            hw_ticks_unfed = 0;
        } else if (++hw_ticks_unfed >= HW_MIN_TICKS && hw_wdt_expired(now)) {
            hw_wdt_fire(frame[16]);
        }
    }
    if (idling && (int32_t)(now - idle_wake) >= 0)
        idling = 0;
    uint32_t at = next_deadline(now);
    if ((int32_t)(at - now) <= 0)
        at = now + 1000;
    arm(at);
}

void watchdog_start(void)
{
    tick_cycles = board_cpu_hz() / 1000u * TICK_MS;
    uint32_t now = ccount();
    fed_at = now;
    hw_fed_at = now;
    next_tick = now + tick_cycles;
    arm(next_tick);
    intenable(1u << TIMER0_INT);
    uint32_t ps;
    __asm__ volatile("rsil %0, 0" : "=a"(ps));
    (void)ps;
}

void board_wdt_feed(void)
{
    uint32_t now = ccount();
    fed_at = now;
    ticks_unfed = 0;
    hw_fed_at = now;
    hw_ticks_unfed = 0;
    hw_looks_unfed = 0;
}

void board_wdt_soft_enable(int on)
{
    board_wdt_feed();
    soft_on = on;
}

/* Masking is at level 1, every maskable interrupt of the lx106, leaving
 * the debug level to the hardware watchdog's ICOUNT look (see the top).
 * ICOUNTLEVEL is written before PS: RSIL ends QEMU's translation block,
 * so the code after it is translated with the counting on (or off). */
void board_interrupts(int enabled)
{
    uint32_t ps;
    if (enabled) {
        __asm__ volatile("wsr %0, icountlevel; isync" :: "a"(0));
        __asm__ volatile("rsil %0, 0" : "=a"(ps));
    } else {
        if (irq_on) {
            __asm__ volatile("wsr %0, icount; wsr %1, icountlevel; isync"
                             :: "a"(0u - HW_LOOK_INSNS), "a"(DEBUG_LEVEL));
        }
        __asm__ volatile("rsil %0, 1" : "=a"(ps));
    }
    (void)ps;
    irq_on = enabled;
}

int board_interrupts_enabled(void)
{
    return irq_on;
}

/* Sleeps until CCOUNT passes `cycles` from now, or until a byte reaches
 * the UART or a frame the MAC, with the CPU halted in WAITI so QEMU's
 * host thread idles instead of spinning. The devices' interrupts are
 * enabled for the WAITI only and do nothing but end it: what arrived is
 * taken by the next poll, at once instead of at the end of the sleep (a
 * sleeping board otherwise answers a round trip up to a millisecond late
 * per hop, as a real ESP8266's interrupt-driven stack does not). With
 * interrupts masked by the sketch nothing can wake WAITI, so it does not
 * wait at all. */
void board_idle_cycles(uint32_t cycles)
{
    if (!irq_on)
        return;
    uint32_t ps;
    /* Armed and halted with the tick masked, so the wake-up cannot slip
     * in between and leave WAITI waiting for the next tick. */
    __asm__ volatile("rsil %0, 15" : "=a"(ps));
    uint32_t now = ccount();
    idle_wake = now + cycles;
    idling = 1;
    arm(next_deadline(now));
    /* CCOUNT follows the host's clock: if QEMU's thread was descheduled
     * since the read, the deadline is already behind CCOUNT and QEMU would
     * arm the compare for the next wrap-around (107 s). Then don't wait. */
    if ((int32_t)(idle_wake - ccount()) > 0 && (int32_t)(next_tick - ccount()) > 0) {
        /* Enabled under rsil 15: a line already up is taken by WAITI's
         * first instant, so nothing that came before the sleep waits. */
        intenable((1u << TIMER0_INT) | (1u << ETH_INT) |
                  (uart_rx_room() ? 1u << UART_INT : 0));
        __asm__ volatile("waiti 0" ::: "memory");
        uint32_t woke;
        __asm__ volatile("rsil %0, 15" : "=a"(woke));
        (void)woke;
        intenable(1u << TIMER0_INT);
    }
    idling = 0;
    now = ccount();
    uint32_t at = next_tick;
    if ((int32_t)(at - now) <= 0)
        at = now + 1000;
    arm(at);
    __asm__ volatile("wsr %0, ps; rsync" :: "a"(ps) : "memory");
}
