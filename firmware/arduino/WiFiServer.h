/* A TCP server on lwIP's raw API with the ESP8266 core's interface:
 * begin() listens, accept() (or the older available()) hands out each
 * connection once as a WiFiClient, hasClient() says one is waiting. */
#ifndef WIFISERVER_H
#define WIFISERVER_H

#include "Server.h"
#include "WiFiClient.h"

struct tcp_pcb;

class WiFiServer : public Server {
public:
    explicit WiFiServer(uint16_t port) : port_(port) {}
    WiFiServer(IPAddress, uint16_t port) : port_(port) {}
    ~WiFiServer() override { close(); }
    void begin() override;
    void begin(uint16_t port)
    {
        port_ = port;
        begin();
    }
    bool hasClient();
    WiFiClient accept();
    WiFiClient available() { return accept(); }
    void close();
    void stop() { close(); }
    uint8_t status() { return listener_ != nullptr; }
    uint16_t port() const { return port_; }
    void setNoDelay(bool nodelay) { nodelay_ = nodelay; }
    bool getNoDelay() { return nodelay_; }
    /* Writing to "all clients" is not something the core does either. */
    size_t write(uint8_t) override { return 0; }
    size_t write(const uint8_t *, size_t) override { return 0; }
    using Print::write;

    /* For the accept callback. */
    bool push(tcp_pcb *pcb);

private:
    uint16_t port_;
    bool nodelay_ = false;
    tcp_pcb *listener_ = nullptr;
    static const int QUEUE = 4;
    tcp_pcb *queue_[QUEUE] = {};
    int queued_ = 0;
};

#endif
