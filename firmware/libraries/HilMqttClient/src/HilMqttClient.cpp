/* HilMqttClient's implementation. Receiving is a byte-at-a-time state
 * machine (rxByte), so poll() never blocks on a partial packet: it takes
 * what the network client has, and a PUBLISH stops it at the payload,
 * which the sketch then reads through this object's Stream interface. */
#include "HilMqttClient.h"

enum : uint8_t {
    T_CONNECT = 1,
    T_CONNACK = 2,
    T_PUBLISH = 3,
    T_PUBACK = 4,
    T_PUBREC = 5,
    T_PUBREL = 6,
    T_PUBCOMP = 7,
    T_SUBSCRIBE = 8,
    T_SUBACK = 9,
    T_UNSUBSCRIBE = 10,
    T_UNSUBACK = 11,
    T_PINGREQ = 12,
    T_PINGRESP = 13,
    T_DISCONNECT = 14,
};

/* Appends the remaining length in MQTT's variable-length encoding. */
static size_t put_length(uint8_t *p, size_t v)
{
    size_t n = 0;
    do {
        uint8_t d = v & 0x7f;
        v >>= 7;
        p[n++] = v ? (uint8_t)(d | 0x80) : d;
    } while (v);
    return n;
}

static size_t put_string(uint8_t *p, const char *s, size_t n)
{
    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    memcpy(p + 2, s, n);
    return n + 2;
}

HilMqttClient::HilMqttClient(Client *client) : net(client)
{
    tx_payload = (uint8_t *)malloc(tx_payload_size);
    if (!tx_payload)
        tx_payload_size = 0;
}

HilMqttClient::~HilMqttClient()
{
    free(tx_payload);
    free(will_payload);
}

void HilMqttClient::setTxPayloadSize(unsigned short size)
{
    uint8_t *p = (uint8_t *)realloc(tx_payload, size ? size : 1);
    if (p) {
        tx_payload = p;
        tx_payload_size = size;
    }
}

uint16_t HilMqttClient::nextId()
{
    if (++tx_packet_id == 0)
        tx_packet_id = 1;
    return tx_packet_id;
}

bool HilMqttClient::sendRaw(const uint8_t *p, size_t n)
{
    return net->write(p, n) == n;
}

bool HilMqttClient::sendAck(uint8_t type, uint16_t id)
{
    uint8_t p[4] = {(uint8_t)(type << 4 | (type == T_PUBREL ? 0x02 : 0)), 2, (uint8_t)(id >> 8), (uint8_t)id};
    return sendRaw(p, 4);
}

int HilMqttClient::connect(IPAddress ip, uint16_t port)
{
    return connectTo(ip, nullptr, port);
}

int HilMqttClient::connect(const char *host, uint16_t port)
{
    return connectTo(IPAddress(), host, port);
}

int HilMqttClient::connectTo(IPAddress ip, const char *host, uint16_t port)
{
    is_connected = false;
    rx_state = RX_TYPE;
    tx_target = TX_NONE;
    int up = host ? net->connect(host, port) : net->connect(ip, port);
    if (up != 1) {
        connect_error = HILMQTT_CONNECTION_REFUSED;
        return 0;
    }
    /* A client id is required by some brokers when empty; make one from
     * the clock, as the library we imitate does. */
    String id = client_id.length() ? client_id : String("Arduino-") + String(millis());
    size_t body = 10 + 2 + id.length();
    uint8_t flags = clean_session ? 0x02 : 0;
    if (will_topic.length()) {
        body += 2 + will_topic.length() + 2 + will_len;
        flags |= will_flags;
    }
    if (username.length()) {
        body += 2 + username.length();
        flags |= 0x80;
        if (password.length()) {
            body += 2 + password.length();
            flags |= 0x40;
        }
    }
    uint8_t *pkt = (uint8_t *)malloc(body + 5);
    if (!pkt) {
        net->stop();
        connect_error = HILMQTT_SERVER_UNAVAILABLE;
        return 0;
    }
    size_t at = 0;
    pkt[at++] = T_CONNECT << 4;
    at += put_length(pkt + at, body);
    at += put_string(pkt + at, "MQTT", 4);
    pkt[at++] = 4;
    pkt[at++] = flags;
    uint16_t ka = (uint16_t)(keep_alive_ms / 1000);
    pkt[at++] = (uint8_t)(ka >> 8);
    pkt[at++] = (uint8_t)ka;
    at += put_string(pkt + at, id.c_str(), id.length());
    if (will_topic.length()) {
        at += put_string(pkt + at, will_topic.c_str(), will_topic.length());
        at += put_string(pkt + at, (const char *)will_payload, will_len);
    }
    if (flags & 0x80)
        at += put_string(pkt + at, username.c_str(), username.length());
    if (flags & 0x40)
        at += put_string(pkt + at, password.c_str(), password.length());
    bool sent = sendRaw(pkt, at);
    free(pkt);
    if (!sent) {
        net->stop();
        connect_error = HILMQTT_SERVER_UNAVAILABLE;
        return 0;
    }
    awaited_type = T_CONNACK;
    awaited_id = 0;
    last_rx = millis();
    int rc = awaitAnswer();
    connect_error = rc < 0 ? HILMQTT_CONNECTION_TIMEOUT : rc;
    if (rc != 0) {
        net->stop();
        return 0;
    }
    is_connected = true;
    last_ping_tx = millis();
    return 1;
}

int HilMqttClient::awaitAnswer()
{
    rx_code = -1;
    unsigned long start = millis();
    while (millis() - start < connection_timeout_ms && net->connected()) {
        poll();
        if (rx_code != -1)
            break;
    }
    awaited_type = 0;
    return rx_code;
}

void HilMqttClient::poll()
{
    /* A message the sketch left half read is thrown away first. */
    abandonMessage();
    while (rx_state != RX_PAYLOAD && net->available() > 0) {
        int b = net->read();
        if (b < 0)
            break;
        rxByte((uint8_t)b);
    }
    if (rx_state == RX_PAYLOAD && on_message) {
        on_message((int)rx_length);
        abandonMessage();
    }
    if (!is_connected)
        return;
    unsigned long now = millis();
#ifdef HILMQTTCLIENT_BUG_KEEPALIVE_UNITS
    /* Seeded bug: the interval (milliseconds) taken for seconds, as in
     * CONNECT: a PINGREQ a thousand times too often. */
    unsigned long interval = keep_alive_ms / 1000;
#else
    unsigned long interval = keep_alive_ms;
#endif
    if (now - last_ping_tx >= interval) {
        last_ping_tx = now;
        uint8_t ping[2] = {T_PINGREQ << 4, 0};
        sendRaw(ping, 2);
    } else if (now - last_rx >= 2 * keep_alive_ms) {
        /* Two intervals without a word from the broker. */
        stop();
    }
}

int HilMqttClient::parseMessage()
{
    poll();
    return rx_state == RX_PAYLOAD ? (int)rx_length : 0;
}

void HilMqttClient::rxByte(uint8_t b)
{
    switch (rx_state) {
    case RX_TYPE:
        rx_type = b >> 4;
        rx_flags = b & 0x0f;
        rx_length = 0;
        rx_multiplier = 1;
        rx_state = RX_LENGTH;
        break;
    case RX_LENGTH:
        rx_length += (b & 0x7f) * rx_multiplier;
        rx_multiplier <<= 7;
        if (b & 0x80)
            break;
        rx_index = 0;
        if (rx_type == T_PUBLISH) {
            rx_topic = "";
            rx_state = RX_TOPIC_LENGTH;
        } else if (rx_length == 0) {
            packetDone();
        } else {
            rx_state = RX_BODY;
        }
        break;
    case RX_BODY:
        if (rx_index < sizeof rx_body)
            rx_body[rx_index] = b;
        if (++rx_index == rx_length)
            packetDone();
        break;
    case RX_TOPIC_LENGTH:
        rx_body[rx_index++] = b;
        if (rx_index == 2) {
            rx_topic_length = (size_t)(rx_body[0] << 8 | rx_body[1]);
            rx_length -= 2;
            rx_index = 0;
            if (rx_topic_length)
                rx_topic.reserve(rx_topic_length);
            else
                messageHeaderDone();
            if (rx_topic_length)
                rx_state = RX_TOPIC;
        }
        break;
    case RX_TOPIC:
        rx_topic += (char)b;
        rx_length--;
        if (++rx_index == rx_topic_length)
            messageHeaderDone();
        break;
    case RX_PACKET_ID:
        rx_body[rx_index++] = b;
        if (rx_index == 2) {
            rx_packet_id = (uint16_t)(rx_body[0] << 8 | rx_body[1]);
            rx_length -= 2;
            rx_state = RX_PAYLOAD;
            if (rx_length == 0 && !on_message)
                messageDone();
        }
        break;
    case RX_DISCARD:
        if (--rx_length == 0)
            messageDone();
        break;
    case RX_PAYLOAD:
        break;
    }
}

void HilMqttClient::messageHeaderDone()
{
    if ((rx_flags >> 1) & 3) {
        rx_index = 0;
        rx_state = RX_PACKET_ID;
        return;
    }
    rx_packet_id = 0;
    rx_state = RX_PAYLOAD;
    if (rx_length == 0 && !on_message)
        messageDone();
}

/* What the sketch did not read of a message is skipped (and then the
 * message acknowledged). */
void HilMqttClient::abandonMessage()
{
    if (rx_state != RX_PAYLOAD)
        return;
    if (rx_length == 0)
        messageDone();
    else
        rx_state = RX_DISCARD;
}

/* The whole PUBLISH is in (payload read or discarded): acknowledge it. */
void HilMqttClient::messageDone()
{
    rx_state = RX_TYPE;
    last_rx = millis();
    uint8_t qos = (rx_flags >> 1) & 3;
    if (qos == 1)
        sendAck(T_PUBACK, rx_packet_id);
    else if (qos == 2)
        sendAck(T_PUBREC, rx_packet_id);
}

void HilMqttClient::packetDone()
{
    rx_state = RX_TYPE;
    last_rx = millis();
    uint16_t id = rx_length >= 2 ? (uint16_t)(rx_body[0] << 8 | rx_body[1]) : 0;
    switch (rx_type) {
    case T_CONNACK:
        if (awaited_type == T_CONNACK && rx_length == 2)
            rx_code = rx_body[1];
        break;
    case T_SUBACK:
        if (awaited_type == T_SUBACK && id == awaited_id && rx_length >= 3)
            rx_code = rx_body[2];
        break;
    case T_UNSUBACK:
    case T_PUBACK:
    case T_PUBCOMP:
        if (awaited_type == rx_type && id == awaited_id)
            rx_code = 0;
        break;
    case T_PUBREC:
        if (awaited_type == T_PUBREC && id == awaited_id)
            rx_code = 0;
        break;
    case T_PUBREL:
        sendAck(T_PUBCOMP, id);
        break;
    default:
        /* PINGRESP: last_rx is all it is for. */
        break;
    }
}

String HilMqttClient::messageTopic() const
{
    return rx_state == RX_PAYLOAD ? rx_topic : String();
}

int HilMqttClient::messageDup() const
{
    return rx_state == RX_PAYLOAD ? (rx_flags >> 3) & 1 : -1;
}

int HilMqttClient::messageQoS() const
{
    return rx_state == RX_PAYLOAD ? (rx_flags >> 1) & 3 : -1;
}

int HilMqttClient::messageRetain() const
{
    return rx_state == RX_PAYLOAD ? rx_flags & 1 : -1;
}

int HilMqttClient::available()
{
    if (rx_state != RX_PAYLOAD)
        return 0;
    int n = net->available();
    return (size_t)n > rx_length ? (int)rx_length : n;
}

int HilMqttClient::read()
{
    uint8_t b;
    return read(&b, 1) == 1 ? b : -1;
}

int HilMqttClient::read(uint8_t *buf, size_t size)
{
    if (rx_state != RX_PAYLOAD)
        return -1;
    if (size > rx_length)
        size = rx_length;
    if (size == 0)
        return 0;
    int n = net->read(buf, size);
    if (n > 0) {
        rx_length -= (size_t)n;
        if (rx_length == 0)
            messageDone();
    }
    return n;
}

int HilMqttClient::peek()
{
    return rx_state == RX_PAYLOAD && rx_length ? net->peek() : -1;
}

int HilMqttClient::beginMessage(const char *topic, unsigned long size, bool retain, uint8_t qos, bool dup)
{
    if (qos > 2 || !connected())
        return 0;
    tx_topic = topic;
    tx_retain = retain;
    tx_qos = qos;
    tx_dup = dup;
    tx_target = TX_STREAM;
    if (!sendPublishHeader(size)) {
        tx_target = TX_NONE;
        stop();
        return 0;
    }
    return 1;
}

int HilMqttClient::beginMessage(const String &topic, unsigned long size, bool retain, uint8_t qos, bool dup)
{
    return beginMessage(topic.c_str(), size, retain, qos, dup);
}

int HilMqttClient::beginMessage(const char *topic, bool retain, uint8_t qos, bool dup)
{
    if (qos > 2)
        return 0;
    tx_topic = topic;
    tx_retain = retain;
    tx_qos = qos;
    tx_dup = dup;
    tx_payload_len = 0;
    tx_target = TX_BUFFER;
    return 1;
}

int HilMqttClient::beginMessage(const String &topic, bool retain, uint8_t qos, bool dup)
{
    return beginMessage(topic.c_str(), retain, qos, dup);
}

bool HilMqttClient::sendPublishHeader(size_t payload_len)
{
    size_t body = 2 + tx_topic.length() + (tx_qos ? 2 : 0) + payload_len;
    uint8_t head[5 + 2];
    size_t at = 0;
    head[at++] = (uint8_t)(T_PUBLISH << 4 | (tx_dup ? 0x08 : 0) | tx_qos << 1 | (tx_retain ? 1 : 0));
    at += put_length(head + at, body);
    head[at++] = (uint8_t)(tx_topic.length() >> 8);
    head[at++] = (uint8_t)tx_topic.length();
    if (!sendRaw(head, at) || !sendRaw((const uint8_t *)tx_topic.c_str(), tx_topic.length()))
        return false;
    if (tx_qos) {
        uint16_t id = nextId();
        uint8_t pid[2] = {(uint8_t)(id >> 8), (uint8_t)id};
        return sendRaw(pid, 2);
    }
    return true;
}

int HilMqttClient::endMessage()
{
    TxTarget target = tx_target;
    tx_target = TX_NONE;
    if (target == TX_BUFFER) {
        if (!connected() || !sendPublishHeader(tx_payload_len) || !sendRaw(tx_payload, tx_payload_len)) {
            stop();
            return 0;
        }
    } else if (target != TX_STREAM) {
        return 0;
    }
    if (tx_qos == 0)
        return 1;
    awaited_id = tx_packet_id;
    if (tx_qos == 2) {
        awaited_type = T_PUBREC;
        if (awaitAnswer() != 0)
            return 0;
        sendAck(T_PUBREL, awaited_id);
        awaited_id = tx_packet_id;
    }
    awaited_type = tx_qos == 1 ? T_PUBACK : T_PUBCOMP;
    return awaitAnswer() == 0 ? 1 : 0;
}

size_t HilMqttClient::write(uint8_t b)
{
    return write(&b, 1);
}

size_t HilMqttClient::write(const uint8_t *buf, size_t size)
{
    switch (tx_target) {
    case TX_STREAM:
        return net->write(buf, size);
    case TX_BUFFER:
        if (tx_payload_len + size > tx_payload_size)
            size = tx_payload_size - tx_payload_len;
        memcpy(tx_payload + tx_payload_len, buf, size);
        tx_payload_len += size;
        return size;
    case TX_WILL: {
        uint8_t *p = (uint8_t *)realloc(will_payload, will_len + size);
        if (!p)
            return 0;
        will_payload = p;
        memcpy(will_payload + will_len, buf, size);
        will_len += size;
        return size;
    }
    default:
        return 0;
    }
}

int HilMqttClient::beginWill(const char *topic, bool retain, uint8_t qos)
{
    if (qos > 2)
        return 0;
    will_topic = topic;
    will_len = 0;
    will_flags = (uint8_t)(0x04 | qos << 3 | (retain ? 0x20 : 0));
    tx_target = TX_WILL;
    return 1;
}

int HilMqttClient::beginWill(const String &topic, bool retain, uint8_t qos)
{
    return beginWill(topic.c_str(), retain, qos);
}

int HilMqttClient::endWill()
{
    tx_target = TX_NONE;
    return 1;
}

int HilMqttClient::subscribe(const char *topic, uint8_t qos)
{
    if (qos > 2 || !connected())
        return 0;
    size_t n = strlen(topic);
    uint16_t id = nextId();
    uint8_t head[5 + 2 + 2];
    size_t at = 0;
    head[at++] = T_SUBSCRIBE << 4 | 0x02;
    at += put_length(head + at, 2 + 2 + n + 1);
    head[at++] = (uint8_t)(id >> 8);
    head[at++] = (uint8_t)id;
    head[at++] = (uint8_t)(n >> 8);
    head[at++] = (uint8_t)n;
    if (!sendRaw(head, at) || !sendRaw((const uint8_t *)topic, n) || !sendRaw(&qos, 1)) {
        stop();
        return 0;
    }
    awaited_type = T_SUBACK;
    awaited_id = id;
    int granted = awaitAnswer();
    subscribe_qos = granted < 0 ? 0x80 : granted;
    if (granted < 0) {
        stop();
        return 0;
    }
    return granted <= 2;
}

int HilMqttClient::unsubscribe(const char *topic)
{
    if (!connected())
        return 0;
    size_t n = strlen(topic);
    uint16_t id = nextId();
    uint8_t head[5 + 2 + 2];
    size_t at = 0;
    head[at++] = T_UNSUBSCRIBE << 4 | 0x02;
    at += put_length(head + at, 2 + 2 + n);
    head[at++] = (uint8_t)(id >> 8);
    head[at++] = (uint8_t)id;
    head[at++] = (uint8_t)(n >> 8);
    head[at++] = (uint8_t)n;
    if (!sendRaw(head, at) || !sendRaw((const uint8_t *)topic, n)) {
        stop();
        return 0;
    }
    awaited_type = T_UNSUBACK;
    awaited_id = id;
    if (awaitAnswer() != 0) {
        stop();
        return 0;
    }
    return 1;
}

void HilMqttClient::flush()
{
    net->flush();
}

void HilMqttClient::stop()
{
    if (is_connected && net->connected()) {
        uint8_t pkt[2] = {T_DISCONNECT << 4, 0};
        sendRaw(pkt, 2);
        net->flush();
    }
    is_connected = false;
    rx_state = RX_TYPE;
    net->stop();
}

uint8_t HilMqttClient::connected()
{
    return net->connected() && is_connected;
}
