/* Arduino run-time: main(), time, and the service step that stands in for
 * the ESP8266 SDK's background work. */
#include "Arduino.h"
#include "board.h"
#include "net.h"

extern "C" {

unsigned long millis(void)
{
    return clock_ms();
}

unsigned long micros(void)
{
    return (unsigned long)clock_us();
}

static unsigned long last_activity;

void yield(void)
{
    if (board_poll() + net_poll() > 0)
        last_activity = millis();
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

void pinMode(uint8_t, uint8_t) {}
void digitalWrite(uint8_t, uint8_t) {}
int digitalRead(uint8_t) { return LOW; }

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
    printf("\n[board] mqtt-hil emulated ESP8266 (lx106 @ %lu Hz), free heap %u bytes, flash %s\n",
           (unsigned long)board_cpu_hz(), (unsigned)board_free_heap(),
           flash_present() ? "present" : "absent");
    setup();
    for (;;) {
        loop();
        yield();
        /* A sketch that polls without delay() would spin the host CPU; once
         * nothing has arrived for a while, pace loop() at ~1 kHz. */
        if (millis() - last_activity > 20)
            board_idle_ms(1);
    }
}

}

/* C++ run-time without libstdc++: allocation and the pure-virtual trap. */
void *operator new(size_t n) { return malloc(n); }
void *operator new[](size_t n) { return malloc(n); }
void operator delete(void *p) noexcept { free(p); }
void operator delete[](void *p) noexcept { free(p); }
void operator delete(void *p, size_t) noexcept { free(p); }
void operator delete[](void *p, size_t) noexcept { free(p); }
extern "C" void __cxa_pure_virtual(void) { board_reset(); }
