/* Serial: the board's UART (16550 on the emulator). */
#ifndef HARDWARESERIAL_H
#define HARDWARESERIAL_H

#include "Stream.h"

#define SERIAL_8N1 0x1c
#define SERIAL_8E1 0x1e
#define SERIAL_8O1 0x1f
#define SERIAL_FULL 0
#define SERIAL_RX_ONLY 1
#define SERIAL_TX_ONLY 2

class HardwareSerial : public Stream {
public:
    void begin(unsigned long baud);
    void begin(unsigned long baud, int config) { (void)config; begin(baud); }
    void begin(unsigned long baud, int config, int mode) { (void)config; (void)mode; begin(baud); }
    unsigned long baudRate() { return baud_; }
    void setDebugOutput(bool) {}
    void swap() {}
    int availableForWrite() override { return 128; }
    size_t setRxBufferSize(size_t size) { return size; }
    void end() {}
    int available() override;
    int read() override;
    int peek() override;
    size_t write(uint8_t c) override;
    size_t write(const uint8_t *buf, size_t len) override;
    using Print::write;
    void flush() override {}
    operator bool() const { return true; }

private:
    unsigned long baud_ = 115200;
};

extern HardwareSerial Serial;

#endif
