/* HilFeeds over an Arduino Client (WiFiClient): the transport half. */
#ifndef HILFEEDS_CLIENT_H
#define HILFEEDS_CLIENT_H

#include "HilFeeds.h"

class HilFeeds_Client : public HilFeeds_MQTT {
public:
    HilFeeds_Client(Client *client, const char *server, uint16_t port, const char *user = "", const char *pass = "")
        : HilFeeds_MQTT(server, port, "", user, pass), client(client) {}
    HilFeeds_Client(Client *client, const char *server, uint16_t port, const char *cid, const char *user,
                    const char *pass)
        : HilFeeds_MQTT(server, port, cid, user, pass), client(client) {}
    bool connected() override { return client->connected(); }

protected:
    bool connectServer() override;
    bool disconnectServer() override;
    uint16_t readPacket(uint8_t *buf, uint16_t maxlen, int16_t timeout) override;
    bool sendPacket(uint8_t *buf, uint16_t len) override;

private:
    Client *client;
};

#endif
