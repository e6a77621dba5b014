/* HilPubSub: an MQTT 3.1.1 client with the shape of PubSubClient's API
 * (our own code): one object over any Arduino Client, setServer() and
 * setCallback() (a std::function, so lambdas with captures work),
 * connect() with an optional will and credentials, loop() to be called
 * every pass of the sketch's loop(), QoS 0 publish (also streamed through
 * Print: beginPublish/print/endPublish), QoS 0/1 subscribe, and state()
 * codes with the same values as the library it imitates, so sketches that
 * print them read the same.
 *
 * Like that library it blocks: connect() and reading a packet spin on
 * Client::available() until the socket timeout, calling nothing but the
 * client (the ESP8266 core services the network inside available()). */
#ifndef HILPUBSUB_H
#define HILPUBSUB_H

#include <Arduino.h>
#include <Client.h>
#include <IPAddress.h>
#include <functional>

/* state() values. */
#define HILPUBSUB_CONNECTION_TIMEOUT -4
#define HILPUBSUB_CONNECTION_LOST -3
#define HILPUBSUB_CONNECT_FAILED -2
#define HILPUBSUB_DISCONNECTED -1
#define HILPUBSUB_CONNECTED 0
#define HILPUBSUB_BAD_PROTOCOL 1
#define HILPUBSUB_BAD_CLIENT_ID 2
#define HILPUBSUB_UNAVAILABLE 3
#define HILPUBSUB_BAD_CREDENTIALS 4
#define HILPUBSUB_UNAUTHORIZED 5

#ifndef HILPUBSUB_BUFFER_SIZE
#define HILPUBSUB_BUFFER_SIZE 256
#endif
#ifndef HILPUBSUB_KEEPALIVE
#define HILPUBSUB_KEEPALIVE 15
#endif
#ifndef HILPUBSUB_SOCKET_TIMEOUT
#define HILPUBSUB_SOCKET_TIMEOUT 15
#endif

class HilPubSub : public Print {
public:
    /* topic (NUL-terminated), payload (not terminated), payload length. */
    typedef std::function<void(char *, uint8_t *, unsigned int)> Callback;

    HilPubSub();
    explicit HilPubSub(Client &client);
    HilPubSub(const char *host, uint16_t port, Callback callback, Client &client);
    ~HilPubSub() override;

    HilPubSub &setServer(const char *host, uint16_t port);
    HilPubSub &setServer(IPAddress ip, uint16_t port);
    HilPubSub &setCallback(Callback callback);
    HilPubSub &setClient(Client &client);
    HilPubSub &setKeepAlive(uint16_t seconds);
    HilPubSub &setSocketTimeout(uint16_t seconds);
    /* Largest packet in or out; false (and the old buffer kept) if the heap
     * cannot hold it. */
    bool setBufferSize(uint16_t size);
    uint16_t getBufferSize() const { return buf_size; }

    bool connect(const char *id);
    bool connect(const char *id, const char *user, const char *pass);
    bool connect(const char *id, const char *will_topic, uint8_t will_qos, bool will_retain, const char *will_message);
    bool connect(const char *id, const char *user, const char *pass, const char *will_topic, uint8_t will_qos,
                 bool will_retain, const char *will_message, bool clean_session = true);
    void disconnect();

    bool publish(const char *topic, const char *payload);
    bool publish(const char *topic, const char *payload, bool retained);
    bool publish(const char *topic, const uint8_t *payload, unsigned int length);
    bool publish(const char *topic, const uint8_t *payload, unsigned int length, bool retained);
    /* A payload in flash (PROGMEM / PSTR). */
    bool publish_P(const char *topic, const char *payload, bool retained);

    /* A QoS 0 PUBLISH whose payload of exactly `length` bytes is then
     * written through Print (write/print) and finished by endPublish(). */
    bool beginPublish(const char *topic, unsigned int length, bool retained);
    int endPublish();
    size_t write(uint8_t b) override;
    size_t write(const uint8_t *buf, size_t size) override;
    using Print::write;

    bool subscribe(const char *topic, uint8_t qos = 0);
    bool unsubscribe(const char *topic);

    /* Reads what has arrived, hands PUBLISHes to the callback, keeps the
     * connection alive. false once the connection is gone. */
    bool loop();
    bool connected();
    int state() const { return state_; }

private:
    bool readByte(uint8_t *out);
    /* One whole packet into buf; its length, 0 on timeout or overflow
     * (the packet is then read and dropped). */
    uint32_t readPacket(uint8_t *header_len);
    bool sendPacket(uint8_t header, uint16_t body_len);
    uint16_t putString(uint16_t at, const char *s);
    uint16_t nextId();
    void dropConnection(int why);

    Client *client = nullptr;
    uint8_t *buf = nullptr;
    uint16_t buf_size = 0;
    uint16_t keepalive_s = HILPUBSUB_KEEPALIVE;
    uint16_t socket_timeout_s = HILPUBSUB_SOCKET_TIMEOUT;
    const char *host = nullptr;
    IPAddress ip;
    uint16_t port = 1883;
    Callback callback;
    uint16_t last_id = 0;
    unsigned long last_in = 0;
    unsigned long last_out = 0;
    bool ping_outstanding = false;
    int state_ = HILPUBSUB_DISCONNECTED;
};

#endif
