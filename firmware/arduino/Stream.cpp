#include "Arduino.h"
#include "Stream.h"
#include "WString.h"

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

int Stream::timedPeek()
{
    unsigned long start = millis();
    do {
        int c = peek();
        if (c >= 0)
            return c;
        yield();
    } while (millis() - start < timeout_ms);
    return -1;
}

int Stream::read(uint8_t *buf, size_t len)
{
    size_t n = 0;
    while (n < len) {
        int c = read();
        if (c < 0)
            break;
        buf[n++] = (uint8_t)c;
    }
    return (int)n;
}

size_t Stream::readBytes(char *buf, size_t len)
{
    size_t n = 0;
    while (n < len) {
        int c = timedRead();
        if (c < 0)
            break;
        buf[n++] = (char)c;
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

String Stream::readString()
{
    String s;
    int c;
    while ((c = timedRead()) >= 0)
        s += (char)c;
    return s;
}

String Stream::readStringUntil(char term)
{
    String s;
    int c;
    while ((c = timedRead()) >= 0 && c != term)
        s += (char)c;
    return s;
}

bool Stream::findUntil(const char *target, const char *terminator)
{
    size_t tlen = strlen(target), mlen = terminator ? strlen(terminator) : 0;
    size_t ti = 0, mi = 0;
    if (tlen == 0)
        return true;
    int c;
    while ((c = timedRead()) >= 0) {
        ti = c == target[ti] ? ti + 1 : (c == target[0] ? 1 : 0);
        if (ti == tlen)
            return true;
        if (mlen) {
            mi = c == terminator[mi] ? mi + 1 : (c == terminator[0] ? 1 : 0);
            if (mi == mlen)
                return false;
        }
    }
    return false;
}

long Stream::parseInt()
{
    int c;
    /* Skip what cannot start a number. */
    while ((c = timedPeek()) >= 0 && c != '-' && !isdigit(c))
        read();
    if (c < 0)
        return 0;
    bool neg = false;
    long v = 0;
    if (c == '-') {
        neg = true;
        read();
    }
    while ((c = timedPeek()) >= 0 && isdigit(c)) {
        v = v * 10 + (c - '0');
        read();
    }
    return neg ? -v : v;
}

float Stream::parseFloat()
{
    int c;
    while ((c = timedPeek()) >= 0 && c != '-' && c != '.' && !isdigit(c))
        read();
    if (c < 0)
        return 0;
    char buf[40];
    size_t n = 0;
    bool dot = false;
    while ((c = timedPeek()) >= 0 && n < sizeof buf - 1 &&
           (isdigit(c) || (c == '-' && n == 0) || (c == '.' && !dot))) {
        dot = dot || c == '.';
        buf[n++] = (char)c;
        read();
    }
    buf[n] = 0;
    return (float)atof(buf);
}
