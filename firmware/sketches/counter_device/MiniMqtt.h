/* A small MQTT 3.1.1 client in the style of the Arduino libraries sketches
 * use (PubSubClient and friends): it owns no socket of its own, works over
 * any Arduino `Client` (here a WiFiClient), and is driven from loop().
 *
 * It is deliberately the kind of client a device vendor writes: QoS 0 and 1
 * outgoing, QoS 0/1 incoming, a will, keep alive with PINGREQ and a dead-peer
 * timeout. It is not the mqtt-hil test agent and shares no code with it: the
 * harness must judge it from its traffic alone. */
#ifndef MINI_MQTT_H
#define MINI_MQTT_H

#include <Arduino.h>
#include <ESP8266WiFi.h>

class MiniMqtt {
public:
    typedef void (*MessageCallback)(const char *topic, const uint8_t *payload, unsigned len);
    typedef void (*AckCallback)(uint16_t pid);

    explicit MiniMqtt(WiFiClient &client) : net(client) {}

    void setServer(IPAddress ip, uint16_t port)
    {
        server = ip;
        server_port = port;
    }
    void setCallback(MessageCallback cb) { on_message = cb; }
    /* Called with the packet id of every PUBACK. */
    void setAckCallback(AckCallback cb) { on_ack = cb; }
    void setKeepAlive(uint16_t seconds) { keepalive_s = seconds; }
    /* How long connect() waits for the CONNACK. */
    void setConnectTimeout(unsigned long ms) { connack_timeout_ms = ms; }

    /* Opens TCP, sends CONNECT and waits for the CONNACK (blocking, as
     * PubSubClient does). A null will topic means no will. */
    bool connect(const char *client_id, bool clean_session, const char *will_topic, uint8_t will_qos,
                 bool will_retain, const char *will_payload);
    void disconnect();
    /* Drops the TCP connection without DISCONNECT (the will is due). */
    void abort();
    bool connected();

    /* Returns the packet id used (0 for QoS 0), or -1 when the packet could
     * not be written. */
    int32_t publish(const char *topic, const uint8_t *payload, unsigned len, uint8_t qos, bool retain);
    int32_t publish(const char *topic, const char *payload, uint8_t qos, bool retain)
    {
        return publish(topic, (const uint8_t *)payload, strlen(payload), qos, retain);
    }
    bool subscribe(const char *filter, uint8_t qos);

    /* Reads and handles incoming packets, sends PINGREQ when idle, and
     * drops the connection when the broker has been silent too long.
     * Returns whether the client is still connected. */
    bool loop();

    /* CONNACK return code of the last connect() (-1: none arrived). */
    int lastConnackCode() const { return connack_code; }

private:
    bool writePacket(uint8_t header, const uint8_t *body, size_t len);
    bool readPacket(unsigned long wait_ms);
    void handle(uint8_t header, const uint8_t *body, size_t len);
    uint16_t nextPid();

    WiFiClient &net;
    IPAddress server;
    uint16_t server_port = 1883;
    MessageCallback on_message = nullptr;
    AckCallback on_ack = nullptr;
    uint16_t keepalive_s = 15;
    unsigned long connack_timeout_ms = 3000;
    uint16_t pid = 0;
    bool session = false;
    int connack_code = -1;
    unsigned long last_out = 0;
    unsigned long last_in = 0;
    bool ping_outstanding = false;
    /* One incoming frame at a time; larger ones are skipped. */
    uint8_t buf[384];
    size_t have = 0;
};

#endif
