/* HilLwMqtt's client: the network and timing around the codec. Reads spin
 * on the network client (the ESP8266 core services the network inside
 * read() and available()), bounded by the command timeout; nothing here
 * calls delay(). */
#include "HilLwMqtt.h"

HilMQTTClient::HilMQTTClient(int readBufSize, int writeBufSize)
{
    read_size = readBufSize > 0 ? (size_t)readBufSize : 0;
    write_size = writeBufSize > 0 ? (size_t)writeBufSize : 0;
    read_buf = (uint8_t *)malloc(read_size);
    write_buf = (uint8_t *)malloc(write_size);
    if (!read_buf)
        read_size = 0;
    if (!write_buf)
        write_size = 0;
}

HilMQTTClient::~HilMQTTClient()
{
    free(read_buf);
    free(write_buf);
}

void HilMQTTClient::begin(Client &c)
{
    net = &c;
}

void HilMQTTClient::begin(const char h[], int p, Client &c)
{
    begin(c);
    setHost(h, p);
}

void HilMQTTClient::begin(IPAddress a, int p, Client &c)
{
    begin(c);
    setHost(a, p);
}

void HilMQTTClient::setHost(const char h[], int p)
{
    hostname = h;
    port = p;
}

void HilMQTTClient::setHost(IPAddress a, int p)
{
    hostname = nullptr;
    address = a;
    port = p;
}

void HilMQTTClient::onMessage(HilMQTTCallbackSimple cb)
{
    callback = Callback();
    callback.simple = cb;
}

void HilMQTTClient::onMessage(HilMQTTCallbackSimpleFunction cb)
{
    callback = Callback();
    callback.function_simple = cb;
}

void HilMQTTClient::onMessageAdvanced(HilMQTTCallbackAdvanced cb)
{
    callback = Callback();
    callback.advanced = cb;
}

void HilMQTTClient::onMessageAdvanced(HilMQTTCallbackAdvancedFunction cb)
{
    callback = Callback();
    callback.function_advanced = cb;
}

void HilMQTTClient::setWill(const char topic[], const char payload[], bool retained, int qos)
{
    has_will = topic != nullptr;
    will_topic = topic ? topic : "";
    will_payload = payload ? payload : "";
    will_retained = retained;
    will_qos = (uint8_t)qos;
}

void HilMQTTClient::clearWill()
{
    has_will = false;
    will_topic = "";
    will_payload = "";
}

uint16_t HilMQTTClient::nextId()
{
    if (++last_id == 0)
        last_id = 1;
    return last_id;
}

bool HilMQTTClient::fail(int err)
{
    last_error = err;
    close();
    return false;
}

void HilMQTTClient::close()
{
    is_connected = false;
    if (net)
        net->stop();
}

bool HilMQTTClient::connected()
{
    return net && net->connected() && is_connected;
}

int HilMQTTClient::send(size_t len)
{
    if (net->write(write_buf, len) != len)
        return HILMQTT_NETWORK_FAILED_WRITE;
    last_send = millis();
    return HILMQTT_SUCCESS;
}

int HilMQTTClient::readExactly(uint8_t *dst, size_t n, unsigned long start, uint32_t timeout)
{
    while (n > 0) {
        int r = net->read(dst, n);
        if (r > 0) {
            dst += r;
            n -= (size_t)r;
            continue;
        }
        if (!net->connected())
            return HILMQTT_NETWORK_FAILED_READ;
        if (millis() - start >= timeout)
            return HILMQTT_NETWORK_TIMEOUT;
    }
    return HILMQTT_SUCCESS;
}

int HilMQTTClient::readPacket(unsigned long start, uint32_t timeout, lwc_type_t *type, uint8_t *flags, size_t *len)
{
    uint8_t head[5];
    size_t have = 0;
    size_t head_len = 0;
    size_t remaining = 0;
    for (;;) {
        int err = readExactly(head + have, 1, start, timeout);
        if (err)
            return err;
        have++;
        lwc_err_t e = lwc_fixed_header(head, have, type, flags, &head_len, &remaining);
        if (e == LWC_OK)
            break;
        if (e != LWC_INCOMPLETE || have == sizeof head)
            return HILMQTT_MALFORMED_PACKET;
    }
    if (remaining > read_size)
        return HILMQTT_BUFFER_TOO_SHORT;
    *len = remaining;
    return readExactly(read_buf, remaining, start, timeout);
}

int HilMQTTClient::ack(lwc_type_t type, uint16_t id)
{
    size_t n;
    if (lwc_encode_ack(write_buf, write_size, type, id, &n) != LWC_OK)
        return HILMQTT_BUFFER_TOO_SHORT;
    return send(n);
}

int HilMQTTClient::handle(lwc_type_t type, uint8_t flags, size_t len)
{
    switch (type) {
    case LWC_PUBLISH: {
        lwc_message_t m;
        if (lwc_decode_publish(flags, read_buf, len, &m) != LWC_OK)
            return HILMQTT_MALFORMED_PACKET;
        /* The callbacks get NUL-terminated copies: topic and payload sit
         * side by side in the read buffer. */
        String topic(m.topic, m.topic_len);
        if (callback.simple || callback.function_simple) {
            String payload((const char *)m.payload, m.payload_len);
            if (callback.simple)
                callback.simple(topic, payload);
            else
                callback.function_simple(topic, payload);
        } else if (callback.advanced || callback.function_advanced) {
            char *bytes = (char *)malloc(m.payload_len + 1);
            if (bytes) {
                memcpy(bytes, m.payload, m.payload_len);
                bytes[m.payload_len] = 0;
                if (callback.advanced)
                    callback.advanced(this, (char *)topic.c_str(), bytes, (int)m.payload_len);
                else
                    callback.function_advanced(this, (char *)topic.c_str(), bytes, (int)m.payload_len);
                free(bytes);
            }
        }
#ifdef HILLWMQTT_BUG_ACK_LAST_SENT_ID
        /* Seeded bug: the PUBACK carries the id of the last packet this
         * client sent instead of the one it received. */
        if (m.qos == 1)
            return ack(LWC_PUBACK, last_id);
#endif
        if (m.qos == 1)
            return ack(LWC_PUBACK, m.id);
        if (m.qos == 2)
            return ack(LWC_PUBREC, m.id);
        return HILMQTT_SUCCESS;
    }
    case LWC_PUBREL: {
        uint16_t id;
        if (lwc_decode_ack(read_buf, len, &id) != LWC_OK)
            return HILMQTT_MALFORMED_PACKET;
        return ack(LWC_PUBCOMP, id);
    }
    case LWC_PINGRESP:
        pong_pending = false;
        return HILMQTT_SUCCESS;
    default:
        /* A late ack of something we gave up waiting for. */
        return HILMQTT_SUCCESS;
    }
}

int HilMQTTClient::await(lwc_type_t want, uint16_t id, size_t *len)
{
    unsigned long start = millis();
    for (;;) {
        lwc_type_t type;
        uint8_t flags;
        int err = readPacket(start, timeout_ms, &type, &flags, len);
        if (err)
            return err;
        /* Acks and SUBACK/UNSUBACK all start with the packet id. */
        if (type == want && (id == 0 || (*len >= 2 && (uint16_t)((read_buf[0] << 8) | read_buf[1]) == id)))
            return HILMQTT_SUCCESS;
        err = handle(type, flags, *len);
        if (err)
            return err;
    }
}

bool HilMQTTClient::connect(const char clientId[], const char username[], const char password[], bool skip)
{
    if (!net)
        return fail(HILMQTT_NOT_CONNECTED);
    if (!skip) {
        if (connected())
            close();
        int up = hostname ? net->connect(hostname, (uint16_t)port) : net->connect(address, (uint16_t)port);
        if (up <= 0) {
            last_error = HILMQTT_NETWORK_FAILED_CONNECT;
            return false;
        }
    }
    lwc_connect_t c = {};
    c.client_id = clientId;
    c.keep_alive = keep_alive_s;
    c.clean_session = clean_session;
    c.username = username;
    c.password = username ? password : nullptr;
    if (has_will) {
        c.will_topic = will_topic.c_str();
        c.will_payload = (const uint8_t *)will_payload.c_str();
        c.will_len = will_payload.length();
        c.will_qos = will_qos;
        c.will_retained = will_retained;
    }
    size_t n;
    if (lwc_encode_connect(write_buf, write_size, &c, &n) != LWC_OK)
        return fail(HILMQTT_BUFFER_TOO_SHORT);
    int err = send(n);
    if (err)
        return fail(err);
    size_t len;
    err = await(LWC_CONNACK, 0, &len);
    if (err)
        return fail(err);
    bool sp;
    uint8_t rc;
    if (lwc_decode_connack(read_buf, len, &sp, &rc) != LWC_OK)
        return fail(HILMQTT_MALFORMED_PACKET);
    return_code = rc;
    if (rc != 0)
        return fail(HILMQTT_CONNECTION_DENIED);
    session_present = sp;
    pong_pending = false;
    is_connected = true;
    last_error = HILMQTT_SUCCESS;
    return true;
}

bool HilMQTTClient::publish(const char topic[], const char payload[], int length, bool retained, int qos)
{
    if (!connected()) {
        last_error = HILMQTT_NOT_CONNECTED;
        return false;
    }
    lwc_message_t m = {};
    m.topic = topic;
    m.topic_len = (uint16_t)strlen(topic);
    m.payload = (const uint8_t *)payload;
    m.payload_len = length > 0 ? (size_t)length : 0;
    m.retained = retained;
    m.qos = (uint8_t)qos;
    m.id = qos ? nextId() : 0;
    size_t n;
    lwc_err_t e = lwc_encode_publish(write_buf, write_size, &m, &n);
    if (e != LWC_OK)
        return fail(e == LWC_BUFFER_TOO_SHORT ? HILMQTT_BUFFER_TOO_SHORT : HILMQTT_MALFORMED_PACKET);
    int err = send(n);
    if (!err && qos == 1)
        err = await(LWC_PUBACK, m.id, &n);
    if (!err && qos == 2) {
        err = await(LWC_PUBREC, m.id, &n);
        if (!err)
            err = ack(LWC_PUBREL, m.id);
        if (!err)
            err = await(LWC_PUBCOMP, m.id, &n);
    }
    if (err)
        return fail(err);
    return true;
}

bool HilMQTTClient::subscribe(const char topic[], int qos)
{
    if (!connected()) {
        last_error = HILMQTT_NOT_CONNECTED;
        return false;
    }
    uint16_t id = nextId();
    size_t n;
    if (lwc_encode_subscribe(write_buf, write_size, id, topic, (uint8_t)qos, &n) != LWC_OK)
        return fail(HILMQTT_BUFFER_TOO_SHORT);
    int err = send(n);
    if (!err)
        err = await(LWC_SUBACK, id, &n);
    if (err)
        return fail(err);
    uint16_t got;
    uint8_t granted;
    if (lwc_decode_suback(read_buf, n, &got, &granted) != LWC_OK)
        return fail(HILMQTT_MALFORMED_PACKET);
    if (granted == 0x80)
        return fail(HILMQTT_FAILED_SUBSCRIPTION);
    return true;
}

bool HilMQTTClient::unsubscribe(const char topic[])
{
    if (!connected()) {
        last_error = HILMQTT_NOT_CONNECTED;
        return false;
    }
    uint16_t id = nextId();
    size_t n;
    if (lwc_encode_unsubscribe(write_buf, write_size, id, topic, &n) != LWC_OK)
        return fail(HILMQTT_BUFFER_TOO_SHORT);
    int err = send(n);
    if (!err)
        err = await(LWC_UNSUBACK, id, &n);
    if (err)
        return fail(err);
    return true;
}

bool HilMQTTClient::loop()
{
    if (!connected())
        return false;
    /* Everything that has arrived, each packet read whole. */
    while (net->available() > 0) {
        lwc_type_t type;
        uint8_t flags;
        size_t len;
        int err = readPacket(millis(), timeout_ms, &type, &flags, &len);
        if (!err)
            err = handle(type, flags, len);
        if (err)
            return fail(err);
    }
    /* Keep alive: a PINGREQ when nothing was sent for the interval; a
     * second interval without its PINGRESP ends the connection. */
    if (keep_alive_s && millis() - last_send >= keep_alive_s * 1000UL) {
        if (pong_pending)
            return fail(HILMQTT_PONG_TIMEOUT);
        size_t n;
        lwc_encode_empty(write_buf, write_size, LWC_PINGREQ, &n);
        int err = send(n);
        if (err)
            return fail(err);
        pong_pending = true;
    }
    return true;
}

bool HilMQTTClient::disconnect()
{
    if (!connected())
        return false;
    size_t n;
    int err = HILMQTT_SUCCESS;
    if (lwc_encode_empty(write_buf, write_size, LWC_DISCONNECT, &n) == LWC_OK)
        err = send(n);
    last_error = err;
    close();
    return err == HILMQTT_SUCCESS;
}
