#include "Arduino.h"
#include "Stream.h"

int Stream::timedRead()
{
    unsigned long start = millis();
    do {
        int c = read();
        if (c >= 0)
            return c;
        yield();
    } while (millis() - start < timeout_ms);
    return -1;
}

size_t Stream::readBytes(uint8_t *buf, size_t len)
{
    size_t n = 0;
    while (n < len) {
        int c = timedRead();
        if (c < 0)
            break;
        buf[n++] = (uint8_t)c;
    }
    return n;
}

size_t Stream::readBytesUntil(char term, char *buf, size_t len)
{
    size_t n = 0;
    while (n < len) {
        int c = timedRead();
        if (c < 0 || c == term)
            break;
        buf[n++] = (char)c;
    }
    return n;
}
