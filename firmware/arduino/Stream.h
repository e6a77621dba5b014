/* Arduino's Stream: a Print that can also be read. */
#ifndef STREAM_H
#define STREAM_H

#include "Print.h"

class Stream : public Print {
public:
    virtual int available() = 0;
    virtual int read() = 0;
    virtual int peek() = 0;
    void setTimeout(unsigned long ms) { timeout_ms = ms; }
    unsigned long getTimeout() const { return timeout_ms; }
    /* Blocking reads that keep the network serviced while they wait. */
    size_t readBytes(uint8_t *buf, size_t len);
    size_t readBytes(char *buf, size_t len) { return readBytes((uint8_t *)buf, len); }
    size_t readBytesUntil(char term, char *buf, size_t len);

protected:
    int timedRead();
    unsigned long timeout_ms = 1000;
};

#endif
