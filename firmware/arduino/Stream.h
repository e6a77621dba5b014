/* Arduino's Stream: a Print that can also be read, with the core's timed
 * helpers (each waits up to setTimeout() ms, default 1000, keeping the
 * board serviced): readBytes, readBytesUntil, readString(Until), find,
 * findUntil, parseInt, parseFloat. */
#ifndef STREAM_H
#define STREAM_H

#include "Print.h"

class String;

class Stream : public Print {
public:
    virtual int available() = 0;
    virtual int read() = 0;
    virtual int peek() = 0;
    virtual int read(uint8_t *buf, size_t len);
    int read(char *buf, size_t len) { return read((uint8_t *)buf, len); }
    void setTimeout(unsigned long ms) { timeout_ms = ms; }
    unsigned long getTimeout() const { return timeout_ms; }
    virtual size_t readBytes(char *buf, size_t len);
    size_t readBytes(uint8_t *buf, size_t len) { return readBytes((char *)buf, len); }
    size_t readBytesUntil(char term, char *buf, size_t len);
    size_t readBytesUntil(char term, uint8_t *buf, size_t len) { return readBytesUntil(term, (char *)buf, len); }
    String readString();
    String readStringUntil(char term);
    bool find(const char *target) { return findUntil(target, nullptr); }
    bool find(char target) { char t[2] = {target, 0}; return find(t); }
    bool findUntil(const char *target, const char *terminator);
    long parseInt();
    float parseFloat();

protected:
    int timedRead();
    int timedPeek();
    unsigned long timeout_ms = 1000;
};

#endif
