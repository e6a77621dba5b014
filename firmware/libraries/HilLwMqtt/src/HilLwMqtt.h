/* HilLwMqtt: an MQTT 3.1.1 client with the shape of arduino-mqtt's API
 * (our own code): HilMQTTClient over any Arduino Client, begin(host, net),
 * onMessage() with String& topic and payload (a function pointer or a
 * std::function), connect(id, user, pass), publish() of String or char
 * payloads at QoS 0/1/2, subscribe(), loop(). Like that library, publish
 * and subscribe block until their acks arrive or the command timeout
 * (setTimeout, default 1000 ms) passes, every error closes the connection
 * (lastError() says why), and the packets themselves are made and read by
 * a C codec with no I/O (src/lwcodec). */
#ifndef HILLWMQTT_H
#define HILLWMQTT_H

#include <Arduino.h>
#include <Client.h>
#include <IPAddress.h>
#include <functional>

#include "lwcodec/lwcodec.h"

/* lastError() values. */
enum HilMQTTError {
    HILMQTT_SUCCESS = 0,
    HILMQTT_BUFFER_TOO_SHORT = -1,
    HILMQTT_MALFORMED_PACKET = -3,
    HILMQTT_NETWORK_FAILED_CONNECT = -4,
    HILMQTT_NETWORK_TIMEOUT = -5,
    HILMQTT_NETWORK_FAILED_READ = -6,
    HILMQTT_NETWORK_FAILED_WRITE = -7,
    HILMQTT_CONNECTION_DENIED = -8,
    HILMQTT_FAILED_SUBSCRIPTION = -9,
    HILMQTT_PONG_TIMEOUT = -10,
    HILMQTT_NOT_CONNECTED = -11,
};

class HilMQTTClient;
typedef void (*HilMQTTCallbackSimple)(String &topic, String &payload);
typedef void (*HilMQTTCallbackAdvanced)(HilMQTTClient *client, char topic[], char bytes[], int length);
typedef std::function<void(String &topic, String &payload)> HilMQTTCallbackSimpleFunction;
typedef std::function<void(HilMQTTClient *client, char topic[], char bytes[], int length)>
    HilMQTTCallbackAdvancedFunction;

class HilMQTTClient {
public:
    /* Read and write buffers of that many bytes: the largest packet each
     * way (an incoming one that does not fit closes the connection). */
    explicit HilMQTTClient(int bufSize = 128) : HilMQTTClient(bufSize, bufSize) {}
    HilMQTTClient(int readBufSize, int writeBufSize);
    ~HilMQTTClient();

    void begin(Client &net);
    void begin(const char hostname[], Client &net) { begin(hostname, 1883, net); }
    void begin(const char hostname[], int port, Client &net);
    void begin(IPAddress address, Client &net) { begin(address, 1883, net); }
    void begin(IPAddress address, int port, Client &net);

    void onMessage(HilMQTTCallbackSimple cb);
    void onMessage(HilMQTTCallbackSimpleFunction cb);
    void onMessageAdvanced(HilMQTTCallbackAdvanced cb);
    void onMessageAdvanced(HilMQTTCallbackAdvancedFunction cb);

    void setHost(const char hostname[], int port = 1883);
    void setHost(IPAddress address, int port = 1883);
    void setWill(const char topic[]) { setWill(topic, ""); }
    void setWill(const char topic[], const char payload[]) { setWill(topic, payload, false, 0); }
    void setWill(const char topic[], const char payload[], bool retained, int qos);
    void clearWill();
    void setKeepAlive(int seconds) { keep_alive_s = (uint16_t)seconds; }
    void setCleanSession(bool clean) { clean_session = clean; }
    void setTimeout(int ms) { timeout_ms = (uint32_t)ms; }
    void setOptions(int keepAlive, bool cleanSession, int timeout)
    {
        setKeepAlive(keepAlive);
        setCleanSession(cleanSession);
        setTimeout(timeout);
    }

    /* skip: the network client is already connected (e.g. by a TLS
     * handshake the sketch did itself). */
    bool connect(const char clientId[], bool skip = false) { return connect(clientId, nullptr, nullptr, skip); }
    bool connect(const char clientId[], const char username[], bool skip = false)
    {
        return connect(clientId, username, nullptr, skip);
    }
    bool connect(const char clientId[], const char username[], const char password[], bool skip = false);

    bool publish(const String &topic) { return publish(topic.c_str(), ""); }
    bool publish(const char topic[]) { return publish(topic, ""); }
    bool publish(const String &topic, const String &payload) { return publish(topic.c_str(), payload.c_str()); }
    bool publish(const String &topic, const String &payload, bool retained, int qos)
    {
        return publish(topic.c_str(), payload.c_str(), retained, qos);
    }
    bool publish(const char topic[], const String &payload) { return publish(topic, payload.c_str()); }
    bool publish(const char topic[], const String &payload, bool retained, int qos)
    {
        return publish(topic, payload.c_str(), retained, qos);
    }
    bool publish(const char topic[], const char payload[]) { return publish(topic, payload, (int)strlen(payload)); }
    bool publish(const char topic[], const char payload[], bool retained, int qos)
    {
        return publish(topic, payload, (int)strlen(payload), retained, qos);
    }
    bool publish(const char topic[], const char payload[], int length) { return publish(topic, payload, length, false, 0); }
    bool publish(const char topic[], const char payload[], int length, bool retained, int qos);

    bool subscribe(const String &topic) { return subscribe(topic.c_str()); }
    bool subscribe(const String &topic, int qos) { return subscribe(topic.c_str(), qos); }
    bool subscribe(const char topic[]) { return subscribe(topic, 0); }
    bool subscribe(const char topic[], int qos);
    bool unsubscribe(const String &topic) { return unsubscribe(topic.c_str()); }
    bool unsubscribe(const char topic[]);

    /* Handles whatever has arrived and pings when the keep alive is due;
     * false (and the connection closed) on any error. */
    bool loop();
    bool connected();
    bool sessionPresent() const { return session_present; }
    int lastError() const { return last_error; }
    /* The CONNACK's return code of the last connect(). */
    int returnCode() const { return return_code; }
    bool disconnect();

private:
    struct Callback {
        HilMQTTCallbackSimple simple = nullptr;
        HilMQTTCallbackAdvanced advanced = nullptr;
        HilMQTTCallbackSimpleFunction function_simple;
        HilMQTTCallbackAdvancedFunction function_advanced;
    };

    uint16_t nextId();
    /* Sends write_buf[0..len). */
    int send(size_t len);
    /* Reads exactly n bytes before the deadline. */
    int readExactly(uint8_t *dst, size_t n, unsigned long start, uint32_t timeout);
    /* One packet: its body lands in read_buf. */
    int readPacket(unsigned long start, uint32_t timeout, lwc_type_t *type, uint8_t *flags, size_t *len);
    /* Reads packets, handling the ones that are not awaited, until a
     * packet of type `want` (with that id, when id != 0) arrives. */
    int await(lwc_type_t want, uint16_t id, size_t *len);
    /* A packet nobody waits for: deliveries, their acks, PINGRESP. */
    int handle(lwc_type_t type, uint8_t flags, size_t len);
    int ack(lwc_type_t type, uint16_t id);
    bool fail(int err);
    void close();

    uint8_t *read_buf = nullptr;
    uint8_t *write_buf = nullptr;
    size_t read_size = 0;
    size_t write_size = 0;
    Client *net = nullptr;
    const char *hostname = nullptr;
    IPAddress address;
    int port = 1883;
    Callback callback;
    String will_topic;
    String will_payload;
    bool has_will = false;
    bool will_retained = false;
    uint8_t will_qos = 0;
    uint16_t keep_alive_s = 10;
    bool clean_session = true;
    uint32_t timeout_ms = 1000;
    bool is_connected = false;
    bool session_present = false;
    bool pong_pending = false;
    unsigned long last_send = 0;
    uint16_t last_id = 0;
    int last_error = HILMQTT_SUCCESS;
    int return_code = 0;
};

#endif
