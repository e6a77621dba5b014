/* Ticker (the ESP8266 core's library): call a function periodically or
 * once. As on the chip, where Ticker runs on the SDK's software timers,
 * callbacks run when the sketch gives the system a turn — in yield(),
 * delay() and between loop() calls — never in the middle of its code. */
#ifndef TICKER_H
#define TICKER_H

#include <stdint.h>
#include <functional>

#ifdef __cplusplus
extern "C" void ticker_service(void);

class Ticker {
public:
    typedef std::function<void(void)> callback_function_t;
    Ticker() {}
    ~Ticker() { detach(); }
    Ticker(const Ticker &) = delete;
    Ticker &operator=(const Ticker &) = delete;

    void attach(float seconds, callback_function_t cb) { arm((uint32_t)(seconds * 1000.0f), true, cb); }
    void attach_ms(uint32_t ms, callback_function_t cb) { arm(ms, true, cb); }
    void attach_scheduled(float seconds, callback_function_t cb) { attach(seconds, cb); }
    void attach_ms_scheduled(uint32_t ms, callback_function_t cb) { attach_ms(ms, cb); }
    void once(float seconds, callback_function_t cb) { arm((uint32_t)(seconds * 1000.0f), false, cb); }
    void once_ms(uint32_t ms, callback_function_t cb) { arm(ms, false, cb); }
    void once_scheduled(float seconds, callback_function_t cb) { once(seconds, cb); }
    void once_ms_scheduled(uint32_t ms, callback_function_t cb) { once_ms(ms, cb); }
    template <typename T> void attach(float seconds, void (*cb)(T), T arg)
    {
        attach(seconds, [cb, arg]() { cb(arg); });
    }
    template <typename T> void attach_ms(uint32_t ms, void (*cb)(T), T arg)
    {
        attach_ms(ms, [cb, arg]() { cb(arg); });
    }
    template <typename T> void once(float seconds, void (*cb)(T), T arg)
    {
        once(seconds, [cb, arg]() { cb(arg); });
    }
    template <typename T> void once_ms(uint32_t ms, void (*cb)(T), T arg)
    {
        once_ms(ms, [cb, arg]() { cb(arg); });
    }
    void detach();
    bool active() const { return armed; }

    /* For ticker_service(). */
    void fire(uint64_t now_us);
    Ticker *next_active = nullptr;

private:
    void arm(uint32_t ms, bool repeat, callback_function_t cb);
    callback_function_t callback;
    uint64_t due_us = 0;
    uint32_t period_ms = 0;
    bool repeat = false;
    bool armed = false;
};
#endif

#endif
