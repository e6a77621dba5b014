/* The abstract network client of the Arduino API: what MQTT libraries take
 * (PubSubClient(Client&), Adafruit_MQTT_Client(Client*), ...). WiFiClient
 * is one. */
#ifndef CLIENT_H
#define CLIENT_H

#include "Stream.h"
#include "IPAddress.h"

class Client : public Stream {
public:
    virtual int connect(IPAddress ip, uint16_t port) = 0;
    virtual int connect(const char *host, uint16_t port) = 0;
    virtual size_t write(uint8_t c) = 0;
    virtual size_t write(const uint8_t *buf, size_t size) = 0;
    using Print::write;
    virtual int available() = 0;
    virtual int read() = 0;
    virtual int read(uint8_t *buf, size_t size) = 0;
    int read(char *buf, size_t size) { return read((uint8_t *)buf, size); }
    virtual int peek() = 0;
    virtual void flush() = 0;
    virtual void stop() = 0;
    virtual uint8_t connected() = 0;
    virtual operator bool() = 0;

protected:
    uint8_t *rawIPAddress(IPAddress &addr) { return addr.raw_address(); }
};

#endif
