/* A TCP client on lwIP's raw API with the ESP8266 core's interface.
 * Copies share one connection (reference counted), as in the core. */
#ifndef WIFICLIENT_H
#define WIFICLIENT_H

#include "Stream.h"
#include "IPAddress.h"

struct TcpConn;

class WiFiClient : public Stream {
public:
    WiFiClient() {}
    WiFiClient(const WiFiClient &other);
    WiFiClient &operator=(const WiFiClient &other);
    ~WiFiClient() override;

    /* Blocks (servicing the network) until connected, refused or timed out
     * after getTimeout() ms (default 5 s). Host must be a dotted quad: the
     * emulated network has no DNS. Returns 1 on success, 0 otherwise. */
    int connect(IPAddress ip, uint16_t port);
    int connect(const char *host, uint16_t port);
    size_t write(uint8_t c) override;
    size_t write(const uint8_t *buf, size_t len) override;
    using Print::write;
    /* Bytes write() would take right now without waiting: lets a sketch
     * write without blocking when the peer stops reading. */
    int availableForWrite();
    int available() override;
    int read() override;
    int read(uint8_t *buf, size_t len);
    int peek() override;
    /* Waits until everything written has been acknowledged (or timeout). */
    void flush() override;
    /* Orderly close (FIN). */
    void stop();
    /* Reset the connection (RST), for tests that need an abrupt drop. */
    void abort();
    uint8_t connected();
    operator bool() { return connected(); }
    void setNoDelay(bool nodelay);
    bool getNoDelay();
    IPAddress remoteIP();
    uint16_t remotePort();
    uint16_t localPort();

private:
    void release();
    TcpConn *conn = nullptr;
};

#endif
