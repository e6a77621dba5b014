/* A TCP client on lwIP's raw API with the ESP8266 core's interface.
 * Copies share one connection (reference counted), as in the core. */
#ifndef WIFICLIENT_H
#define WIFICLIENT_H

#include "Client.h"
#include "IPAddress.h"

struct TcpConn;
struct tcp_pcb;

class WiFiClient : public Client {
public:
    WiFiClient() {}
    WiFiClient(const WiFiClient &other);
    WiFiClient &operator=(const WiFiClient &other);
    ~WiFiClient() override;

    /* Blocks (servicing the network) until connected, refused or timed out
     * after getTimeout() ms (at least 5 s). A host name is resolved with
     * WiFi.hostByName() first. Returns 1 on success, 0 otherwise. */
    int connect(IPAddress ip, uint16_t port) override;
    int connect(const char *host, uint16_t port) override;
    int connect(const String &host, uint16_t port) { return connect(host.c_str(), port); }
    /* An accepted connection (WiFiServer::accept()). */
    explicit WiFiClient(tcp_pcb *accepted);
    size_t write(uint8_t c) override;
    size_t write(const uint8_t *buf, size_t len) override;
    using Print::write;
    /* Bytes write() would take right now without waiting: lets a sketch
     * write without blocking when the peer stops reading. */
    int availableForWrite() override;
    int available() override;
    int read() override;
    int read(uint8_t *buf, size_t len) override;
    int read(char *buf, size_t len) { return read((uint8_t *)buf, len); }
    int peek() override;
    /* Waits until everything written has been acknowledged (or timeout). */
    void flush() override;
    /* Orderly close (FIN). */
    void stop() override;
    /* Reset the connection (RST), for tests that need an abrupt drop. */
    void abort();
    uint8_t connected() override;
    operator bool() override { return connected(); }
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
