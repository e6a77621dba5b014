#include "MiniMqtt.h"

enum {
    CONNECT = 0x10,
    CONNACK = 0x20,
    PUBLISH = 0x30,
    PUBACK = 0x40,
    SUBSCRIBE = 0x82,
    SUBACK = 0x90,
    PINGREQ = 0xc0,
    PINGRESP = 0xd0,
    DISCONNECT = 0xe0,
};

static size_t put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

static size_t put_str(uint8_t *p, const char *s, size_t len)
{
    put_u16(p, (uint16_t)len);
    memcpy(p + 2, s, len);
    return len + 2;
}

bool MiniMqtt::writePacket(uint8_t header, const uint8_t *body, size_t len)
{
    uint8_t fixed[5];
    size_t n = 0;
    fixed[n++] = header;
    size_t rem = len;
    do {
        uint8_t b = rem % 128;
        rem /= 128;
        fixed[n++] = (uint8_t)(rem ? b | 0x80 : b);
    } while (rem && n < sizeof(fixed));
    /* One write for header and body keeps them in one TCP segment. */
    uint8_t out[sizeof(fixed) + 320];
    if (n + len > sizeof(out))
        return false;
    memcpy(out, fixed, n);
    memcpy(out + n, body, len);
    if (net.write(out, n + len) != n + len)
        return false;
    last_out = millis();
    return true;
}

uint16_t MiniMqtt::nextPid()
{
    if (++pid == 0)
        pid = 1;
    return pid;
}

bool MiniMqtt::connect(const char *client_id, bool clean_session, const char *will_topic,
                       uint8_t will_qos, bool will_retain, const char *will_payload)
{
    session = false;
    connack_code = -1;
    have = 0;
    if (!net.connect(server, server_port))
        return false;
    net.setNoDelay(true);
    uint8_t body[256];
    size_t n = 0;
    n += put_str(body + n, "MQTT", 4);
    body[n++] = 4; /* 3.1.1 */
    uint8_t flags = clean_session ? 0x02 : 0;
    if (will_topic)
        flags |= 0x04 | (uint8_t)((will_qos & 3) << 3) | (will_retain ? 0x20 : 0);
    body[n++] = flags;
    n += put_u16(body + n, keepalive_s);
    size_t id_len = strlen(client_id);
    size_t wt_len = will_topic ? strlen(will_topic) : 0;
    size_t wp_len = will_topic ? strlen(will_payload) : 0;
    if (n + 6 + id_len + wt_len + wp_len > sizeof(body)) {
        net.stop();
        return false;
    }
    n += put_str(body + n, client_id, id_len);
    if (will_topic) {
        n += put_str(body + n, will_topic, wt_len);
        n += put_str(body + n, will_payload, wp_len);
    }
    if (!writePacket(CONNECT, body, n)) {
        net.abort();
        return false;
    }
    unsigned long start = millis();
    while (!session && connack_code < 0 && millis() - start < connack_timeout_ms) {
        if (!net.connected())
            break;
        readPacket(10);
    }
    if (!session) {
        /* Refused, closed, or no answer (the network is gone): the next
         * attempt needs a fresh connection. */
        net.abort();
        return false;
    }
    last_in = millis();
    ping_outstanding = false;
    return true;
}

void MiniMqtt::disconnect()
{
    uint8_t none[1] = { 0 };
    writePacket(DISCONNECT, none, 0);
    net.flush();
    net.stop();
    session = false;
}

void MiniMqtt::abort()
{
    net.abort();
    session = false;
}

bool MiniMqtt::connected()
{
    if (session && !net.connected())
        session = false;
    return session;
}

int32_t MiniMqtt::publish(const char *topic, const uint8_t *payload, unsigned len, uint8_t qos,
                          bool retain)
{
    if (!connected())
        return -1;
    uint8_t body[300];
    size_t tlen = strlen(topic);
    if (tlen + len + 4 > sizeof(body))
        return -1;
    size_t n = put_str(body, topic, tlen);
    uint16_t id = 0;
    if (qos > 0) {
        id = nextPid();
        n += put_u16(body + n, id);
    }
    memcpy(body + n, payload, len);
    n += len;
    uint8_t header = (uint8_t)(PUBLISH | ((qos & 3) << 1) | (retain ? 1 : 0));
    if (!writePacket(header, body, n))
        return -1;
    return id;
}

bool MiniMqtt::subscribe(const char *filter, uint8_t qos)
{
    if (!connected())
        return false;
    uint8_t body[160];
    size_t flen = strlen(filter);
    if (flen + 5 > sizeof(body))
        return false;
    size_t n = put_u16(body, nextPid());
    n += put_str(body + n, filter, flen);
    body[n++] = qos;
    return writePacket(SUBSCRIBE, body, n);
}

bool MiniMqtt::loop()
{
    if (!connected())
        return false;
    while (readPacket(0)) {
    }
    if (!connected())
        return false;
    unsigned long now = millis();
    unsigned long ka = (unsigned long)keepalive_s * 1000;
    if (ka) {
        /* 1.5 x keep alive without a byte from the broker: the link is dead
         * even if TCP has not noticed (a network outage). */
        if (now - last_in > ka + ka / 2) {
            Serial.printf("mqtt: broker silent for %lu ms, dropping the connection\r\n", now - last_in);
            abort();
            return false;
        }
        /* Ping when either direction has been quiet for a keep alive: a
         * device that only publishes at QoS 0 hears nothing otherwise. */
        if (!ping_outstanding && (now - last_out >= ka || now - last_in >= ka)) {
            uint8_t none[1] = { 0 };
            if (writePacket(PINGREQ, none, 0))
                ping_outstanding = true;
        }
    }
    return true;
}

/* Pulls bytes into the buffer and handles one complete frame, waiting up to
 * wait_ms for it. Returns whether a frame was handled. */
bool MiniMqtt::readPacket(unsigned long wait_ms)
{
    unsigned long start = millis();
    for (;;) {
        int avail = net.available();
        if (avail > 0 && have < sizeof(buf)) {
            int got = net.read(buf + have, sizeof(buf) - have);
            if (got > 0)
                have += (size_t)got;
        }
        if (have >= 2) {
            size_t rem = 0, mult = 1, i = 1;
            bool complete = false;
            while (i < have && i < 5) {
                rem += (buf[i] & 0x7f) * mult;
                mult *= 128;
                if (!(buf[i++] & 0x80)) {
                    complete = true;
                    break;
                }
            }
            if (complete) {
                if (i + rem > sizeof(buf)) {
                    Serial.printf("mqtt: %u-byte packet is too large for this client\r\n", (unsigned)(i + rem));
                    abort();
                    return false;
                }
#ifdef COUNTER_DEVICE_BUG_SPLIT_PUBLISH
                /* The bug: a PUBLISH is taken to arrive in one piece, so
                 * whatever the reads brought so far is handled as the whole
                 * packet and the rest is later parsed as new packets. It
                 * never shows while a PUBLISH fits one TCP segment. */
                if ((buf[0] & 0xf0) == PUBLISH && have < i + rem) {
                    last_in = millis();
                    handle(buf[0], buf + i, have - i);
                    have = 0;
                    return true;
                }
#endif
                if (have >= i + rem) {
                    last_in = millis();
                    handle(buf[0], buf + i, rem);
                    memmove(buf, buf + i + rem, have - (i + rem));
                    have -= i + rem;
                    return true;
                }
            }
        }
        if (millis() - start >= wait_ms || !net.connected())
            return false;
        delay(1);
    }
}

void MiniMqtt::handle(uint8_t header, const uint8_t *body, size_t len)
{
    switch (header & 0xf0) {
    case CONNACK:
        if (len >= 2) {
            connack_code = body[1];
            session = body[1] == 0;
        }
        break;
    case PUBACK:
        if (len >= 2 && on_ack)
            on_ack((uint16_t)(body[0] << 8 | body[1]));
        break;
    case PINGRESP:
        ping_outstanding = false;
        break;
    case PUBLISH: {
        uint8_t qos = (header >> 1) & 3;
        if (len < 2)
            return;
        size_t tlen = (size_t)(body[0] << 8 | body[1]);
        size_t off = 2 + tlen;
        uint16_t id = 0;
        if (qos > 0) {
            if (off + 2 > len)
                return;
            id = (uint16_t)(body[off] << 8 | body[off + 1]);
            off += 2;
        }
        if (off > len)
            return;
        char topic[128];
        if (tlen >= sizeof(topic))
            tlen = sizeof(topic) - 1;
        memcpy(topic, body + 2, tlen);
        topic[tlen] = 0;
        /* Acknowledge first: whatever the callback publishes goes after. */
        if (qos == 1) {
            uint8_t ack[2];
            put_u16(ack, id);
            writePacket(PUBACK, ack, 2);
        }
        if (on_message)
            on_message(topic, body + off, (unsigned)(len - off));
        /* QoS 2 is not offered: subscriptions ask for at most QoS 1. */
        break;
    }
    default: /* SUBACK and anything else: nothing to do. */
        break;
    }
}
