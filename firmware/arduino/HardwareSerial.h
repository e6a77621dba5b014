/* Serial: the board's UART (16550 on the emulator). */
#ifndef HARDWARESERIAL_H
#define HARDWARESERIAL_H

#include "Stream.h"

class HardwareSerial : public Stream {
public:
    void begin(unsigned long baud);
    void end() {}
    int available() override;
    int read() override;
    int peek() override;
    size_t write(uint8_t c) override;
    size_t write(const uint8_t *buf, size_t len) override;
    using Print::write;
    void flush() override {}
    operator bool() const { return true; }
};

extern HardwareSerial Serial;

#endif
