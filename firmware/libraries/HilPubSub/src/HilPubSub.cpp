/* HilPubSub's implementation. Outgoing packets are built in `buf` from
 * offset HEAD (room for the largest fixed header), and the fixed header is
 * written just in front of the body before sending, so nothing is copied;
 * an incoming packet is read whole into `buf` from offset 0. */
#include "HilPubSub.h"

#include <pgmspace.h>

/* Packet types, already shifted into the fixed header's high nibble. */
enum : uint8_t {
    P_CONNECT = 0x10,
    P_CONNACK = 0x20,
    P_PUBLISH = 0x30,
    P_PUBACK = 0x40,
    P_SUBSCRIBE = 0x80,
    P_SUBACK = 0x90,
    P_UNSUBSCRIBE = 0xA0,
    P_UNSUBACK = 0xB0,
    P_PINGREQ = 0xC0,
    P_PINGRESP = 0xD0,
    P_DISCONNECT = 0xE0,
};

/* Fixed header: one type byte and up to four remaining-length bytes. */
static const uint16_t HEAD = 5;

HilPubSub::HilPubSub()
{
    setBufferSize(HILPUBSUB_BUFFER_SIZE);
}

HilPubSub::HilPubSub(Client &c) : HilPubSub()
{
    client = &c;
    /* As sketches and libraries of this style write it: NULL (an integer
     * constant in C++) must reach std::function's nullptr overload. */
    callback = NULL;
}

HilPubSub::HilPubSub(const char *h, uint16_t p, Callback cb, Client &c) : HilPubSub(c)
{
    setServer(h, p);
    setCallback(cb);
}

HilPubSub::~HilPubSub()
{
    free(buf);
}

HilPubSub &HilPubSub::setServer(const char *h, uint16_t p)
{
    host = h;
    port = p;
    return *this;
}

HilPubSub &HilPubSub::setServer(IPAddress addr, uint16_t p)
{
    host = nullptr;
    ip = addr;
    port = p;
    return *this;
}

HilPubSub &HilPubSub::setCallback(Callback cb)
{
    callback = cb;
    return *this;
}

HilPubSub &HilPubSub::setClient(Client &c)
{
    client = &c;
    return *this;
}

HilPubSub &HilPubSub::setKeepAlive(uint16_t seconds)
{
    keepalive_s = seconds;
    return *this;
}

HilPubSub &HilPubSub::setSocketTimeout(uint16_t seconds)
{
    socket_timeout_s = seconds;
    return *this;
}

bool HilPubSub::setBufferSize(uint16_t size)
{
    if (size <= HEAD)
        return false;
    uint8_t *b = (uint8_t *)realloc(buf, size);
    if (!b)
        return false;
    buf = b;
    buf_size = size;
    return true;
}

uint16_t HilPubSub::nextId()
{
    if (++last_id == 0)
        last_id = 1;
    return last_id;
}

/* A length-prefixed UTF-8 string at buf[at]; the index after it, or 0 if
 * it does not fit. */
uint16_t HilPubSub::putString(uint16_t at, const char *s)
{
    size_t n = strlen(s);
    if (at == 0 || (size_t)at + 2 + n > buf_size)
        return 0;
    buf[at] = (uint8_t)(n >> 8);
    buf[at + 1] = (uint8_t)n;
    memcpy(buf + at + 2, s, n);
    return (uint16_t)(at + 2 + n);
}

bool HilPubSub::sendPacket(uint8_t header, uint16_t body_len)
{
    uint8_t len[4];
    uint8_t n = 0;
    uint32_t x = body_len;
    do {
        uint8_t digit = x & 0x7f;
        x >>= 7;
        len[n++] = x ? (uint8_t)(digit | 0x80) : digit;
    } while (x);
    uint8_t *start = buf + HEAD - 1 - n;
    start[0] = header;
    memcpy(start + 1, len, n);
    size_t total = 1u + n + body_len;
    size_t sent = client->write(start, total);
    last_out = millis();
    return sent == total;
}

bool HilPubSub::connect(const char *id)
{
    return connect(id, nullptr, nullptr, nullptr, 0, false, nullptr, true);
}

bool HilPubSub::connect(const char *id, const char *user, const char *pass)
{
    return connect(id, user, pass, nullptr, 0, false, nullptr, true);
}

bool HilPubSub::connect(const char *id, const char *wt, uint8_t wq, bool wr, const char *wm)
{
    return connect(id, nullptr, nullptr, wt, wq, wr, wm, true);
}

bool HilPubSub::connect(const char *id, const char *user, const char *pass, const char *wt, uint8_t wq, bool wr,
                        const char *wm, bool clean)
{
    if (!client)
        return false;
    if (connected())
        return true;
    int up = host ? client->connect(host, port) : client->connect(ip, port);
    if (up != 1) {
        state_ = HILPUBSUB_CONNECT_FAILED;
        return false;
    }
    uint16_t at = putString(HEAD, "MQTT");
    if (at + 4 > buf_size)
        at = 0;
    if (at) {
        uint8_t flags = clean ? 0x02 : 0;
        if (wt) {
            flags |= (uint8_t)(0x04 | ((wq & 3) << 3) | (wr ? 0x20 : 0));
        }
        if (user) {
            flags |= 0x80;
            if (pass)
                flags |= 0x40;
        }
        buf[at++] = 4; /* protocol level: 3.1.1 */
        buf[at++] = flags;
        buf[at++] = (uint8_t)(keepalive_s >> 8);
        buf[at++] = (uint8_t)keepalive_s;
        at = putString(at, id ? id : "");
        if (wt) {
            at = putString(at, wt);
            at = putString(at, wm ? wm : "");
        }
        if (user) {
            at = putString(at, user);
            if (pass)
                at = putString(at, pass);
        }
    }
    if (!at || !sendPacket(P_CONNECT, (uint16_t)(at - HEAD))) {
        /* Too big for the buffer, or the socket went away. */
        client->stop();
        state_ = HILPUBSUB_CONNECT_FAILED;
        return false;
    }
    last_in = millis();
    /* The CONNACK: spin on available() as long as the socket timeout. */
    while (!client->available()) {
        if (millis() - last_in >= socket_timeout_s * 1000UL) {
            client->stop();
            state_ = HILPUBSUB_CONNECTION_TIMEOUT;
            return false;
        }
    }
    uint8_t hl = 0;
    uint32_t n = readPacket(&hl);
    if (n == 4 && buf[0] == P_CONNACK) {
        if (buf[3] == 0) {
            last_in = millis();
            ping_outstanding = false;
            state_ = HILPUBSUB_CONNECTED;
            return true;
        }
        state_ = buf[3];
    } else {
        state_ = HILPUBSUB_CONNECT_FAILED;
    }
    client->stop();
    return false;
}

bool HilPubSub::readByte(uint8_t *out)
{
    unsigned long start = millis();
    while (!client->available()) {
        if (millis() - start >= socket_timeout_s * 1000UL || !client->connected())
            return false;
    }
    int c = client->read();
    if (c < 0)
        return false;
    *out = (uint8_t)c;
    return true;
}

uint32_t HilPubSub::readPacket(uint8_t *header_len)
{
    uint8_t b;
    if (!readByte(&b))
        return 0;
    buf[0] = b;
    uint32_t remaining = 0;
    uint32_t scale = 1;
    uint16_t at = 1;
    do {
        if (at == HEAD || !readByte(&b))
            return 0;
        buf[at++] = b;
        remaining += (b & 0x7f) * scale;
        scale <<= 7;
    } while (b & 0x80);
    *header_len = (uint8_t)at;
    uint32_t total = at + remaining;
    bool fits = total <= buf_size;
    for (uint32_t i = 0; i < remaining; i++) {
        if (!readByte(&b))
            return 0;
        if (fits)
            buf[at + i] = b;
    }
    last_in = millis();
    return fits ? total : 0;
}

bool HilPubSub::connected()
{
    if (!client)
        return false;
    bool up = client->connected();
    if (!up && state_ == HILPUBSUB_CONNECTED) {
        state_ = HILPUBSUB_CONNECTION_LOST;
        client->stop();
    }
    return up && state_ == HILPUBSUB_CONNECTED;
}

void HilPubSub::dropConnection(int why)
{
    state_ = why;
    client->stop();
}

bool HilPubSub::loop()
{
    if (!connected())
        return false;
    unsigned long now = millis();
    unsigned long ka = keepalive_s * 1000UL;
    if (ka && (now - last_in > ka || now - last_out > ka)) {
        if (ping_outstanding) {
            /* A whole keep-alive period without an answer: the broker (or
             * the network) is gone. */
            dropConnection(HILPUBSUB_CONNECTION_TIMEOUT);
            return false;
        }
        buf[HEAD - 2] = P_PINGREQ;
        buf[HEAD - 1] = 0;
        client->write(buf + HEAD - 2, 2);
        last_out = last_in = now;
        ping_outstanding = true;
    }
    if (!client->available())
        return true;
    uint8_t hl = 0;
    uint32_t n = readPacket(&hl);
    if (n == 0)
        return connected();
    ping_outstanding = false;
    uint8_t type = buf[0] & 0xF0;
    if (type == P_PUBLISH && n >= (uint32_t)hl + 2) {
        uint8_t qos = (buf[0] >> 1) & 3;
        uint16_t tl = (uint16_t)((buf[hl] << 8) | buf[hl + 1]);
        uint32_t payload_at = hl + 2u + tl + (qos ? 2u : 0u);
        if (payload_at > n)
            return true;
        uint16_t id = qos ? (uint16_t)((buf[hl + 2 + tl] << 8) | buf[hl + 3 + tl]) : 0;
        /* NUL-terminate the topic in place: move it down over the second
         * length byte, which frees the byte after it. */
        memmove(buf + hl + 1, buf + hl + 2, tl);
        buf[hl + 1 + tl] = 0;
        if (callback)
            callback((char *)buf + hl + 1, buf + payload_at, (unsigned int)(n - payload_at));
        if (qos == 1 && connected()) {
            uint8_t ack[4] = {P_PUBACK, 2, (uint8_t)(id >> 8), (uint8_t)id};
#ifdef HILPUBSUB_BUG_PUBACK_SWAPPED_ID
            /* Seeded bug: the packet id acknowledged in the wrong byte order. */
            ack[2] = (uint8_t)id;
            ack[3] = (uint8_t)(id >> 8);
#endif
            client->write(ack, 4);
            last_out = millis();
        }
    } else if (type == P_PINGREQ) {
        uint8_t resp[2] = {P_PINGRESP, 0};
        client->write(resp, 2);
        last_out = millis();
    }
    /* PINGRESP, SUBACK, UNSUBACK: nothing to do beyond noting the broker
     * answered (ping_outstanding cleared above). */
    return true;
}

bool HilPubSub::publish(const char *topic, const char *payload)
{
    return publish(topic, (const uint8_t *)payload, payload ? strlen(payload) : 0, false);
}

bool HilPubSub::publish(const char *topic, const char *payload, bool retained)
{
    return publish(topic, (const uint8_t *)payload, payload ? strlen(payload) : 0, retained);
}

bool HilPubSub::publish(const char *topic, const uint8_t *payload, unsigned int length)
{
    return publish(topic, payload, length, false);
}

bool HilPubSub::publish(const char *topic, const uint8_t *payload, unsigned int length, bool retained)
{
    if (!connected())
        return false;
    uint16_t at = putString(HEAD, topic);
    if (!at || (size_t)at + length > buf_size)
        return false;
    memcpy(buf + at, payload, length);
    return sendPacket((uint8_t)(P_PUBLISH | (retained ? 1 : 0)), (uint16_t)(at + length - HEAD));
}

bool HilPubSub::publish_P(const char *topic, const char *payload, bool retained)
{
    if (!connected())
        return false;
    size_t length = strlen_P(payload);
    uint16_t at = putString(HEAD, topic);
    if (!at || (size_t)at + length > buf_size)
        return false;
    memcpy_P(buf + at, payload, length);
    return sendPacket((uint8_t)(P_PUBLISH | (retained ? 1 : 0)), (uint16_t)(at + length - HEAD));
}

bool HilPubSub::beginPublish(const char *topic, unsigned int length, bool retained)
{
    if (!connected())
        return false;
    uint16_t at = putString(HEAD, topic);
    if (!at)
        return false;
    /* Send the header and topic now; the payload follows through write(). */
    uint8_t len[4];
    uint8_t n = 0;
    uint32_t x = (uint32_t)(at - HEAD) + length;
    do {
        uint8_t digit = x & 0x7f;
        x >>= 7;
        len[n++] = x ? (uint8_t)(digit | 0x80) : digit;
    } while (x);
    uint8_t *start = buf + HEAD - 1 - n;
    start[0] = (uint8_t)(P_PUBLISH | (retained ? 1 : 0));
    memcpy(start + 1, len, n);
    size_t total = (size_t)(at - (start - buf));
    last_out = millis();
    return client->write(start, total) == total;
}

int HilPubSub::endPublish()
{
    return connected() ? 1 : 0;
}

size_t HilPubSub::write(uint8_t b)
{
    last_out = millis();
    return client ? client->write(b) : 0;
}

size_t HilPubSub::write(const uint8_t *data, size_t size)
{
    last_out = millis();
    return client ? client->write(data, size) : 0;
}

bool HilPubSub::subscribe(const char *topic, uint8_t qos)
{
    if (qos > 1 || !connected())
        return false;
    uint16_t id = nextId();
    buf[HEAD] = (uint8_t)(id >> 8);
    buf[HEAD + 1] = (uint8_t)id;
    uint16_t at = putString(HEAD + 2, topic);
    if (!at || at + 1 > buf_size)
        return false;
    buf[at++] = qos;
    return sendPacket(P_SUBSCRIBE | 0x02, (uint16_t)(at - HEAD));
}

bool HilPubSub::unsubscribe(const char *topic)
{
    if (!connected())
        return false;
    uint16_t id = nextId();
    buf[HEAD] = (uint8_t)(id >> 8);
    buf[HEAD + 1] = (uint8_t)id;
    uint16_t at = putString(HEAD + 2, topic);
    if (!at)
        return false;
    return sendPacket(P_UNSUBSCRIBE | 0x02, (uint16_t)(at - HEAD));
}

void HilPubSub::disconnect()
{
    if (client && client->connected()) {
        uint8_t pkt[2] = {P_DISCONNECT, 0};
        client->write(pkt, 2);
        client->flush();
    }
    if (client)
        client->stop();
    state_ = HILPUBSUB_DISCONNECTED;
    last_in = last_out = millis();
}
