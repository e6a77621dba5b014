/* HilFeeds: an MQTT 3.1.1 client with the shape of the Adafruit MQTT
 * Library's API (our own code): a client object over any Arduino Client,
 * publish and subscribe "feeds" declared as objects, connect() returning 0
 * or an error code with connectErrorString(), readSubscription(timeout)
 * handing back the feed a message came in on. QoS 0 and 1 out, QoS 0/1 in,
 * one packet at a time, blocking like the library it imitates. */
#ifndef HILFEEDS_H
#define HILFEEDS_H

#include <Arduino.h>
#include <Client.h>

#define HILFEEDS_MAX_SUBSCRIPTIONS 5
#define HILFEEDS_READ_BUFFER 20
#define HILFEEDS_PACKET_SIZE 256

class HilFeeds_Subscribe;

class HilFeeds_MQTT {
public:
    HilFeeds_MQTT(const char *server, uint16_t port, const char *client_id, const char *user, const char *pass);
    virtual ~HilFeeds_MQTT() {}

    /* 0 on success; otherwise a code for connectErrorString(). */
    int8_t connect();
    int8_t connect(const char *user, const char *pass);
    const __FlashStringHelper *connectErrorString(int8_t code);
    bool disconnect();
    virtual bool connected() = 0;
    bool will(const char *topic, const char *payload, uint8_t qos = 0, bool retain = false);
    void setKeepAliveInterval(uint16_t seconds) { keepalive_s = seconds; }

    bool publish(const char *topic, const char *payload, uint8_t qos = 0, bool retain = false);
    bool publish(const char *topic, const uint8_t *payload, uint16_t len, uint8_t qos = 0, bool retain = false);
    bool subscribe(HilFeeds_Subscribe *sub);
    bool unsubscribe(HilFeeds_Subscribe *sub);
    /* Waits up to timeout ms for a PUBLISH on a subscribed feed. */
    HilFeeds_Subscribe *readSubscription(int16_t timeout = 0);
    bool ping(uint8_t tries = 1);
    /* Keeps the connection alive: pings when keepalive is due. */
    void processPackets(int16_t timeout);

protected:
    virtual bool connectServer() = 0;
    virtual bool disconnectServer() = 0;
    virtual uint16_t readPacket(uint8_t *buf, uint16_t maxlen, int16_t timeout) = 0;
    virtual bool sendPacket(uint8_t *buf, uint16_t len) = 0;

    const char *servername;
    uint16_t portnum;
    const char *clientid;
    const char *username;
    const char *password;
    uint8_t buffer[HILFEEDS_PACKET_SIZE];

private:
    uint16_t readFullPacket(uint8_t *buf, uint16_t maxsize, uint16_t timeout);
    uint16_t processPacketsUntil(uint8_t *buf, uint8_t type, uint16_t timeout);
    HilFeeds_Subscribe *handlePublish(uint8_t *buf, uint16_t len);
    uint16_t nextPid();
    HilFeeds_Subscribe *subs[HILFEEDS_MAX_SUBSCRIPTIONS] = {};
    const char *will_topic = nullptr;
    const char *will_payload = nullptr;
    uint8_t will_qos = 0;
    bool will_retain = false;
    uint16_t keepalive_s = 300;
    uint16_t pid = 0;
    unsigned long last_sent = 0;
};

/* A feed to publish to. */
class HilFeeds_Publish {
public:
    HilFeeds_Publish(HilFeeds_MQTT *mqtt, const char *feed, uint8_t qos = 0) : mqtt(mqtt), topic(feed), qos(qos) {}
    bool publish(const char *s) { return mqtt->publish(topic, s, qos); }
    bool publish(double f, uint8_t precision = 2);
    bool publish(int32_t i);
    bool publish(uint32_t i);

private:
    HilFeeds_MQTT *mqtt;
    const char *topic;
    uint8_t qos;
};

/* A feed subscribed to; lastread holds the last message (NUL-terminated). */
class HilFeeds_Subscribe {
public:
    HilFeeds_Subscribe(HilFeeds_MQTT *mqtt, const char *feed, uint8_t qos = 0) : topic(feed), qos(qos) { (void)mqtt; }
    const char *topic;
    uint8_t qos;
    uint8_t lastread[HILFEEDS_READ_BUFFER];
    uint16_t datalen = 0;
};

#endif
