/* Arduino run-time: main(), time, and the service step that stands in for
 * the ESP8266 SDK's background work. */
#include "Arduino.h"
#include "board.h"
#include "net.h"
#include "Ticker.h"
#include <new>

extern "C" {

unsigned long millis(void)
{
    return clock_ms();
}

unsigned long micros(void)
{
    return (unsigned long)clock_us();
}

/* Counts what the sketch got to work on: UART bytes that arrived or were
 * taken, frames at the MAC, TCP data read. main() naps after a round of
 * loop() that did not move it. */
static unsigned activity;

void arduino_note_activity(void)
{
    activity++;
}

void yield(void)
{
    board_wdt_feed();
    if (board_poll() + net_poll() > 0)
        activity++;
    ticker_service();
}

uint64_t micros64(void)
{
    return clock_us();
}

/* The ESP8266 core yields here only when the sketch has run for longer
 * than interval_us since it last gave the SDK a turn; the emulated board
 * services the network on every call, which is cheaper than the real
 * SDK's context switch and keeps spinning loops responsive. */
void optimistic_yield(uint32_t interval_us)
{
    (void)interval_us;
    yield();
}

void interrupts(void)
{
    board_interrupts(1);
}

void noInterrupts(void)
{
    board_interrupts(0);
}

/* Waits in 1 ms WAITI naps between service steps: the network and UART
 * are still serviced every millisecond, but an idle board costs the host
 * almost no CPU (many QEMU boards share two cores in CI). */
void delay(unsigned long ms)
{
    unsigned long start = millis();
    yield();
    while (millis() - start < ms) {
        board_idle_ms(1);
        yield();
    }
}

void delayMicroseconds(unsigned int us)
{
    uint64_t end = clock_us() + us;
    while (clock_us() < end)
        ;
}

/* GPIO: no pins here. What the sketch asks for is logged once per change
 * so a run's UART log shows it (an LED blinking every second prints a
 * line a second, as a logic analyser on the pin would show). */
static uint8_t pin_mode[NUM_DIGITAL_PINS + 1];
static uint8_t pin_level[NUM_DIGITAL_PINS + 1];
static uint32_t mode_known, level_known;

static int gpio_pin_ok(uint8_t pin)
{
    return pin <= NUM_DIGITAL_PINS;
}

void pinMode(uint8_t pin, uint8_t mode)
{
    if (!gpio_pin_ok(pin))
        return;
    if (!(mode_known & (1u << pin)) || pin_mode[pin] != mode) {
        static const char *const names[] = {"INPUT", "OUTPUT", "INPUT_PULLUP", "OUTPUT_OPEN_DRAIN",
                                            "INPUT_PULLDOWN_16", "WAKEUP_PULLUP", "?", "WAKEUP_PULLDOWN"};
        printf("[gpio] pinMode(%u, %s)\n", pin, mode < 8 ? names[mode] : "?");
    }
    mode_known |= 1u << pin;
    pin_mode[pin] = mode;
}

void digitalWrite(uint8_t pin, uint8_t val)
{
    if (!gpio_pin_ok(pin))
        return;
    uint8_t v = val ? HIGH : LOW;
    if (pin_level[pin] != v || !(level_known & (1u << pin)))
        printf("[gpio] digitalWrite(%u, %s)\n", pin, v ? "HIGH" : "LOW");
    level_known |= 1u << pin;
    pin_level[pin] = v;
}

/* Reads back what was written; an input reads its pull (HIGH with a
 * pull-up, else LOW). */
int digitalRead(uint8_t pin)
{
    if (!gpio_pin_ok(pin))
        return LOW;
    if (pin_mode[pin] == OUTPUT || pin_mode[pin] == OUTPUT_OPEN_DRAIN)
        return pin_level[pin];
    return pin_mode[pin] == INPUT_PULLUP ? HIGH : LOW;
}

int analogRead(uint8_t) { return 0; }
void analogWrite(uint8_t pin, int val)
{
    printf("[gpio] analogWrite(%u, %d)\n", pin, val);
}
void analogWriteRange(uint32_t) {}
void analogWriteFreq(uint32_t) {}
void analogWriteResolution(int) {}
void attachInterrupt(uint8_t pin, void (*)(void), int mode)
{
    printf("[gpio] attachInterrupt(%u, mode %d): no edges on the emulated board\n", pin, mode);
}
void detachInterrupt(uint8_t) {}
unsigned long pulseIn(uint8_t, uint8_t, unsigned long timeout)
{
    delayMicroseconds((unsigned)(timeout > 1000000ul ? 1000000ul : timeout));
    return 0;
}
unsigned long pulseInLong(uint8_t pin, uint8_t state, unsigned long timeout)
{
    return pulseIn(pin, state, timeout);
}
void shiftOut(uint8_t, uint8_t, uint8_t, uint8_t) {}
uint8_t shiftIn(uint8_t, uint8_t, uint8_t) { return 0; }
void tone(uint8_t pin, unsigned int frequency, unsigned long)
{
    printf("[gpio] tone(%u, %u Hz)\n", pin, frequency);
}
void noTone(uint8_t) {}

long map(long x, long in_min, long in_max, long out_min, long out_max)
{
    if (in_max == in_min)
        return out_min;
    return (x - in_min) * (out_max - out_min) / (in_max - in_min) + out_min;
}

static uint32_t rng = 2463534242u;

void randomSeed(unsigned long seed)
{
    if (seed)
        rng = (uint32_t)seed;
}

static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

long arduino_random(long max)
{
    return max <= 0 ? 0 : (long)(next_random() % (uint32_t)max);
}

int main(void)
{
    printf("\n[board] mqtt-hil emulated ESP8266 (lx106 @ %lu Hz), free heap %u bytes, flash %s, reset: %s\n",
           (unsigned long)board_cpu_hz(), (unsigned)board_free_heap(),
           flash_present() ? "present" : "absent",
           board_reset_reason_text(board_last_reset()->reason));
    setup();
    for (;;) {
        unsigned before = activity;
        loop();
        /* The end of loop() is where the core's SDK gets its turn. */
        yield();
        /* A sketch that polls without delay() would spin the host CPU: a
         * round of loop() in which nothing arrived and nothing was read
         * ends in a nap of up to 1 ms, which a UART byte or a frame ends
         * at once (watchdog.c). The board used to spin on for 20 ms after
         * the last activity; on a loaded host that spinning CPU thread
         * competed with QEMU's I/O thread, the harness and the broker, and
         * the QoS 2 round trip of `cargo bench --bench board` took 8-9 ms
         * instead of 4-5 ms (load ~10). */
        if (activity == before)
            board_idle_ms(1);
    }
}

}

unsigned long pulseIn(uint8_t pin, uint8_t state)
{
    return pulseIn(pin, state, 1000000ul);
}
void tone(uint8_t pin, unsigned int frequency)
{
    tone(pin, frequency, 0);
}
void attachInterruptArg(uint8_t pin, void (*)(void *), void *, int mode)
{
    attachInterrupt(pin, nullptr, mode);
}

/* Calling an empty std::function: where libstdc++ would throw
 * bad_function_call (and, without exceptions, abort). */
extern "C" void __mqtt_hil_bad_function_call(void)
{
    printf("\nabort: an empty std::function was called\n");
    board_reset();
}

namespace std {
const nothrow_t nothrow{};
}
void *operator new(size_t n, const std::nothrow_t &) noexcept { return malloc(n); }
void *operator new[](size_t n, const std::nothrow_t &) noexcept { return malloc(n); }

/* C++ run-time without libstdc++: allocation and the pure-virtual trap. */
void *operator new(size_t n) { return malloc(n); }
void *operator new[](size_t n) { return malloc(n); }
void operator delete(void *p) noexcept { free(p); }
void operator delete[](void *p) noexcept { free(p); }
void operator delete(void *p, size_t) noexcept { free(p); }
void operator delete[](void *p, size_t) noexcept { free(p); }
extern "C" void __cxa_pure_virtual(void) { board_reset(); }
