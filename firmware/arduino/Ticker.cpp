#include "Arduino.h"
#include "Ticker.h"

static Ticker *active_list;
static bool servicing;

void Ticker::arm(uint32_t ms, bool rep, callback_function_t cb)
{
    detach();
    callback = cb;
    period_ms = ms ? ms : 1;
    repeat = rep;
    due_us = micros64() + (uint64_t)period_ms * 1000u;
    armed = true;
    next_active = active_list;
    active_list = this;
}

void Ticker::detach()
{
    if (!armed)
        return;
    armed = false;
    for (Ticker **p = &active_list; *p; p = &(*p)->next_active) {
        if (*p == this) {
            *p = next_active;
            break;
        }
    }
    next_active = nullptr;
}

void Ticker::fire(uint64_t now_us)
{
    if (now_us < due_us)
        return;
    /* Periodic tickers keep their phase; a late one fires once, not in a
     * burst of catch-ups. */
    if (repeat) {
        due_us += (uint64_t)period_ms * 1000u;
        if (due_us <= now_us)
            due_us = now_us + (uint64_t)period_ms * 1000u;
    } else {
        detach();
    }
    callback_function_t cb = callback;
    if (cb)
        cb();
}

extern "C" void ticker_service(void)
{
    if (servicing || !active_list)
        return;
    servicing = true;
    uint64_t now = micros64();
    for (Ticker *t = active_list; t;) {
        /* The callback may detach or re-arm tickers, this one included. */
        Ticker *next = t->next_active;
        t->fire(now);
        t = next;
    }
    servicing = false;
}
