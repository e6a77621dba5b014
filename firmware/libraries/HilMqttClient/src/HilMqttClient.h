/* HilMqttClient: an MQTT 3.1.1 client with the shape of ArduinoMqttClient's
 * API (our own code). HilMqttClient wraps a network Client and is itself a
 * Client (so a Stream and a Print): a message is written with
 * beginMessage(topic) / print(...) / endMessage(), a will with
 * beginWill() / print() / endWill(), and a received message's payload is
 * read with available() / read() after parseMessage() (or in the
 * onMessage() callback that poll() calls) reported its size. QoS 1/2
 * publishes and subscribe wait for their acks within the connection
 * timeout; poll() pings every keep-alive interval and gives the connection
 * up after two intervals without hearing from the broker.
 *
 * Intervals are in milliseconds, as in the library it imitates
 * (setKeepAliveInterval(60 * 1000L) is the default); CONNECT carries them
 * in seconds. */
#ifndef HILMQTTCLIENT_H
#define HILMQTTCLIENT_H

#include <Arduino.h>
#include <Client.h>
#include <functional>

/* connectError() values. */
#define HILMQTT_CONNECTION_REFUSED -2
#define HILMQTT_CONNECTION_TIMEOUT -1
#define HILMQTT_SUCCESS 0
#define HILMQTT_UNACCEPTABLE_PROTOCOL_VERSION 1
#define HILMQTT_IDENTIFIER_REJECTED 2
#define HILMQTT_SERVER_UNAVAILABLE 3
#define HILMQTT_BAD_USER_NAME_OR_PASSWORD 4
#define HILMQTT_NOT_AUTHORIZED 5

class HilMqttClient : public Client {
public:
    /* Called with the payload's size when a message arrived. */
    typedef std::function<void(int messageSize)> MessageCallback;

    explicit HilMqttClient(Client *client);
    explicit HilMqttClient(Client &client) : HilMqttClient(&client) {}
    ~HilMqttClient() override;

    void onMessage(MessageCallback callback) { on_message = callback; }

    /* The size of a message that arrived (its payload then readable
     * through available()/read()), or 0. Also does poll()'s work. */
    int parseMessage();
    String messageTopic() const;
    int messageDup() const;
    int messageQoS() const;
    int messageRetain() const;

    /* With a size the payload is streamed straight to the network;
     * without, it is buffered (setTxPayloadSize) until endMessage(). */
    int beginMessage(const char *topic, unsigned long size, bool retain = false, uint8_t qos = 0, bool dup = false);
    int beginMessage(const String &topic, unsigned long size, bool retain = false, uint8_t qos = 0, bool dup = false);
    int beginMessage(const char *topic, bool retain = false, uint8_t qos = 0, bool dup = false);
    int beginMessage(const String &topic, bool retain = false, uint8_t qos = 0, bool dup = false);
    /* Sends it; for QoS 1/2 waits for its acks. 1 on success. */
    int endMessage();

    int beginWill(const char *topic, bool retain, uint8_t qos);
    int beginWill(const String &topic, bool retain, uint8_t qos);
    int endWill();

    int subscribe(const char *topic, uint8_t qos = 0);
    int subscribe(const String &topic, uint8_t qos = 0) { return subscribe(topic.c_str(), qos); }
    int unsubscribe(const char *topic);
    int unsubscribe(const String &topic) { return unsubscribe(topic.c_str()); }

    /* Reads what has arrived, calls onMessage's callback, keeps alive. */
    void poll();

    /* Client */
    int connect(IPAddress ip, uint16_t port = 1883) override;
    int connect(const char *host, uint16_t port = 1883) override;
    size_t write(uint8_t b) override;
    size_t write(const uint8_t *buf, size_t size) override;
    using Print::write;
    int available() override;
    int read() override;
    int read(uint8_t *buf, size_t size) override;
    int peek() override;
    void flush() override;
    /* DISCONNECT (if connected), then closes the network client. */
    void stop() override;
    uint8_t connected() override;
    operator bool() override { return true; }

    void setId(const char *id) { client_id = id; }
    void setId(const String &id) { client_id = id; }
    void setUsernamePassword(const char *user, const char *pass)
    {
        username = user;
        password = pass;
    }
    void setUsernamePassword(const String &user, const String &pass)
    {
        username = user;
        password = pass;
    }
    void setCleanSession(bool clean) { clean_session = clean; }
    void setKeepAliveInterval(unsigned long ms) { keep_alive_ms = ms; }
    void setConnectionTimeout(unsigned long ms) { connection_timeout_ms = ms; }
    void setTxPayloadSize(unsigned short size);

    int connectError() const { return connect_error; }
    int subscribeQoS() const { return subscribe_qos; }

private:
    enum RxState {
        RX_TYPE,
        RX_LENGTH,
        RX_BODY,
        RX_TOPIC_LENGTH,
        RX_TOPIC,
        RX_PACKET_ID,
        RX_PAYLOAD, /* a message ready for the sketch to read */
        RX_DISCARD, /* the rest of a message nobody read */
    };
    enum TxTarget { TX_NONE, TX_STREAM, TX_BUFFER, TX_WILL };

    int connectTo(IPAddress ip, const char *host, uint16_t port);
    void rxByte(uint8_t b);
    void packetDone();
    void messageHeaderDone();
    void messageDone();
    void abandonMessage();
    bool sendPublishHeader(size_t payload_len);
    bool sendAck(uint8_t type, uint16_t id);
    bool sendRaw(const uint8_t *p, size_t n);
    /* Polls until the awaited answer (rx_code leaves -1) or the timeout;
     * the answer, or -1. */
    int awaitAnswer();
    uint16_t nextId();

    Client *net;
    MessageCallback on_message;
    String client_id;
    String username;
    String password;
    bool clean_session = true;
    unsigned long keep_alive_ms = 60 * 1000UL;
    unsigned long connection_timeout_ms = 30 * 1000UL;
    int connect_error = HILMQTT_SUCCESS;
    int subscribe_qos = 0x80;
    bool is_connected = false;

    /* Receiving. */
    RxState rx_state = RX_TYPE;
    uint8_t rx_type = 0;
    uint8_t rx_flags = 0;
    size_t rx_length = 0;
    uint32_t rx_multiplier = 1;
    uint8_t rx_body[4];
    size_t rx_index = 0;
    String rx_topic;
    size_t rx_topic_length = 0;
    uint16_t rx_packet_id = 0;
    int rx_code = -1; /* the awaited CONNACK/SUBACK/PUBACK... outcome */
    unsigned long last_rx = 0;

    /* Sending. */
    TxTarget tx_target = TX_NONE;
    String tx_topic;
    bool tx_retain = false;
    uint8_t tx_qos = 0;
    bool tx_dup = false;
    uint16_t tx_packet_id = 0;
    uint16_t awaited_id = 0;
    uint8_t awaited_type = 0;
    uint8_t *tx_payload = nullptr;
    size_t tx_payload_size = 256;
    size_t tx_payload_len = 0;
    unsigned long last_ping_tx = 0;

    /* The will, kept as it goes into CONNECT: topic, payload, flags. */
    String will_topic;
    uint8_t *will_payload = nullptr;
    size_t will_len = 0;
    uint8_t will_flags = 0;
};

#endif
