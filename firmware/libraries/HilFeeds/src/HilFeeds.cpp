#include "HilFeeds.h"

#define T_CONNECT 1
#define T_CONNACK 2
#define T_PUBLISH 3
#define T_PUBACK 4
#define T_SUBSCRIBE 8
#define T_SUBACK 9
#define T_UNSUBSCRIBE 10
#define T_UNSUBACK 11
#define T_PINGREQ 12
#define T_PINGRESP 13
#define T_DISCONNECT 14

static uint8_t *put_string(uint8_t *p, const char *s, uint16_t n)
{
    *p++ = (uint8_t)(n >> 8);
    *p++ = (uint8_t)n;
    memcpy(p, s, n);
    return p + n;
}

/* Fixed header with the remaining length in front of a body already at
 * buf + 5; returns where the packet starts. */
static uint8_t *frame(uint8_t *buf, uint8_t header, uint16_t body, uint16_t *total)
{
    uint8_t len[4];
    int n = 0;
    uint32_t x = body;
    do {
        uint8_t d = x % 128;
        x /= 128;
        len[n++] = (uint8_t)(x ? d | 0x80 : d);
    } while (x);
    uint8_t *start = buf + 5 - 1 - n;
    start[0] = header;
    memcpy(start + 1, len, (size_t)n);
    *total = (uint16_t)(1 + n + body);
    return start;
}

HilFeeds_MQTT::HilFeeds_MQTT(const char *server, uint16_t port, const char *cid, const char *user, const char *pass)
    : servername(server), portnum(port), clientid(cid), username(user), password(pass)
{
}

bool HilFeeds_MQTT::will(const char *topic, const char *payload, uint8_t qos, bool retain)
{
    if (connected())
        return false;
    will_topic = topic;
    will_payload = payload;
    will_qos = qos;
    will_retain = retain;
    return true;
}

uint16_t HilFeeds_MQTT::nextPid()
{
    if (++pid == 0)
        pid = 1;
    return pid;
}

int8_t HilFeeds_MQTT::connect(const char *user, const char *pass)
{
    username = user;
    password = pass;
    return connect();
}

int8_t HilFeeds_MQTT::connect()
{
    if (!connectServer())
        return -1;
    uint8_t *b = buffer + 5, *p = b;
    p = put_string(p, "MQTT", 4);
    *p++ = 4;
    uint8_t flags = 0x02; /* clean session */
    if (will_topic) {
        flags |= 0x04 | (uint8_t)(will_qos << 3) | (will_retain ? 0x20 : 0);
    }
    if (username && *username)
        flags |= 0x80;
    if (password && *password)
        flags |= 0x40;
    *p++ = flags;
    *p++ = (uint8_t)(keepalive_s >> 8);
    *p++ = (uint8_t)keepalive_s;
    /* An empty client id asks the broker to choose (allowed with a clean
     * session); the Adafruit-style sketches give none. */
    p = put_string(p, clientid ? clientid : "", clientid ? (uint16_t)strlen(clientid) : 0);
    if (will_topic) {
        p = put_string(p, will_topic, (uint16_t)strlen(will_topic));
        p = put_string(p, will_payload, (uint16_t)strlen(will_payload));
    }
    if (flags & 0x80)
        p = put_string(p, username, (uint16_t)strlen(username));
    if (flags & 0x40)
        p = put_string(p, password, (uint16_t)strlen(password));
    uint16_t total;
    uint8_t *pkt = frame(buffer, T_CONNECT << 4, (uint16_t)(p - b), &total);
    if (!sendPacket(pkt, total))
        return -1;
    last_sent = millis();
    uint16_t len = processPacketsUntil(buffer, T_CONNACK, 6000);
    if (len != 4)
        return -1;
    if (buffer[3] != 0)
        return (int8_t)buffer[3];
    /* Subscriptions do not survive a clean session: make them again. */
    for (HilFeeds_Subscribe *s : subs)
        if (s && !subscribe(s))
            return -2;
    return 0;
}

const __FlashStringHelper *HilFeeds_MQTT::connectErrorString(int8_t code)
{
    switch (code) {
    case 1: return F("The Server does not support the level of the MQTT protocol requested");
    case 2: return F("The Client identifier is correct UTF-8 but not allowed by the Server");
    case 3: return F("The MQTT service is unavailable");
    case 4: return F("The data in the user name or password is malformed");
    case 5: return F("Not authorized to connect");
    case 6: return F("Exceeded reconnect rate limit. Please try again later.");
    case 7: return F("You have been banned from connecting. Please contact the MQTT server administrator for more details.");
    case -1: return F("Connection failed");
    case -2: return F("Failed to subscribe");
    default: return F("Unknown error");
    }
}

bool HilFeeds_MQTT::disconnect()
{
    uint8_t pkt[2] = {T_DISCONNECT << 4, 0};
    if (connected())
        sendPacket(pkt, 2);
    return disconnectServer();
}

bool HilFeeds_MQTT::publish(const char *topic, const char *payload, uint8_t qos, bool retain)
{
    return publish(topic, (const uint8_t *)payload, (uint16_t)strlen(payload), qos, retain);
}

bool HilFeeds_MQTT::publish(const char *topic, const uint8_t *payload, uint16_t plen, uint8_t qos, bool retain)
{
    uint16_t tlen = (uint16_t)strlen(topic);
    if ((size_t)tlen + plen + 4 + 5 > sizeof buffer)
        return false;
    uint8_t *b = buffer + 5, *p = b;
    p = put_string(p, topic, tlen);
    uint16_t id = 0;
    if (qos > 0) {
        id = nextPid();
        *p++ = (uint8_t)(id >> 8);
        *p++ = (uint8_t)id;
    }
    memcpy(p, payload, plen);
    p += plen;
    uint16_t total;
    uint8_t *pkt = frame(buffer, (uint8_t)(T_PUBLISH << 4 | qos << 1 | (retain ? 1 : 0)), (uint16_t)(p - b), &total);
    if (!sendPacket(pkt, total))
        return false;
    last_sent = millis();
    if (qos == 0)
        return true;
    uint16_t len = processPacketsUntil(buffer, T_PUBACK, 500);
    return len == 4 && ((uint16_t)(buffer[2] << 8 | buffer[3])) == id;
}

bool HilFeeds_MQTT::subscribe(HilFeeds_Subscribe *sub)
{
    int slot = -1;
    for (int i = 0; i < HILFEEDS_MAX_SUBSCRIPTIONS; i++) {
        if (subs[i] == sub) {
            slot = i;
            break;
        }
        if (!subs[i] && slot < 0)
            slot = i;
    }
    if (slot < 0)
        return false;
    subs[slot] = sub;
    if (!connected())
        return true; /* sent on connect() */
    uint8_t *b = buffer + 5, *p = b;
    uint16_t id = nextPid();
    *p++ = (uint8_t)(id >> 8);
    *p++ = (uint8_t)id;
    p = put_string(p, sub->topic, (uint16_t)strlen(sub->topic));
    *p++ = sub->qos;
    uint16_t total;
    uint8_t *pkt = frame(buffer, T_SUBSCRIBE << 4 | 0x02, (uint16_t)(p - b), &total);
    if (!sendPacket(pkt, total))
        return false;
    last_sent = millis();
    uint16_t len = processPacketsUntil(buffer, T_SUBACK, 1000);
    return len == 5 && buffer[4] != 0x80;
}

bool HilFeeds_MQTT::unsubscribe(HilFeeds_Subscribe *sub)
{
    for (HilFeeds_Subscribe *&s : subs)
        if (s == sub)
            s = nullptr;
    if (!connected())
        return true;
    uint8_t *b = buffer + 5, *p = b;
    uint16_t id = nextPid();
    *p++ = (uint8_t)(id >> 8);
    *p++ = (uint8_t)id;
    p = put_string(p, sub->topic, (uint16_t)strlen(sub->topic));
    uint16_t total;
    uint8_t *pkt = frame(buffer, T_UNSUBSCRIBE << 4 | 0x02, (uint16_t)(p - b), &total);
    if (!sendPacket(pkt, total))
        return false;
    return processPacketsUntil(buffer, T_UNSUBACK, 1000) == 4;
}

bool HilFeeds_MQTT::ping(uint8_t tries)
{
    while (tries--) {
        uint8_t pkt[2] = {T_PINGREQ << 4, 0};
        if (!sendPacket(pkt, 2))
            continue;
        last_sent = millis();
        if (processPacketsUntil(buffer, T_PINGRESP, 500) == 2)
            return true;
    }
    return false;
}

/* One whole packet: header, remaining length, body. */
uint16_t HilFeeds_MQTT::readFullPacket(uint8_t *buf, uint16_t maxsize, uint16_t timeout)
{
    uint8_t *p = buf;
    if (readPacket(p, 1, (int16_t)timeout) != 1)
        return 0;
    p++;
    uint32_t value = 0, mult = 1;
    uint8_t d;
    do {
        if (readPacket(p, 1, (int16_t)timeout) != 1)
            return 0;
        d = *p++;
        value += (uint32_t)(d & 0x7f) * mult;
        mult *= 128;
    } while ((d & 0x80) && mult < 128u * 128u * 128u * 128u);
    uint16_t head = (uint16_t)(p - buf);
    if (value > (uint32_t)(maxsize - head)) {
        /* Too big for the buffer: read and drop it whole. */
        uint8_t sink[16];
        uint32_t left = value;
        while (left) {
            uint16_t n = readPacket(sink, (uint16_t)(left > sizeof sink ? sizeof sink : left), (int16_t)timeout);
            if (!n)
                return 0;
            left -= n;
        }
        return 0;
    }
    if (value && readPacket(p, (uint16_t)value, (int16_t)timeout) != value)
        return 0;
    return (uint16_t)(head + value);
}

/* Reads packets until one of `type`; PUBLISHes met on the way are kept
 * for their feeds. */
uint16_t HilFeeds_MQTT::processPacketsUntil(uint8_t *buf, uint8_t type, uint16_t timeout)
{
    unsigned long start = millis();
    while (millis() - start < timeout) {
        uint16_t len = readFullPacket(buf, HILFEEDS_PACKET_SIZE, timeout);
        if (!len) {
            if (!connected())
                return 0;
            continue;
        }
        uint8_t t = buf[0] >> 4;
        if (t == type)
            return len;
        if (t == T_PUBLISH)
            handlePublish(buf, len);
    }
    return 0;
}

HilFeeds_Subscribe *HilFeeds_MQTT::handlePublish(uint8_t *buf, uint16_t len)
{
    uint8_t qos = (buf[0] >> 1) & 3;
    uint16_t i = 1;
    while (i < len && (buf[i] & 0x80))
        i++;
    i++;
    if (i + 2 > len)
        return nullptr;
    uint16_t tlen = (uint16_t)(buf[i] << 8 | buf[i + 1]);
    const char *topic = (const char *)&buf[i + 2];
    uint16_t pos = (uint16_t)(i + 2 + tlen);
    uint16_t id = 0;
    if (qos > 0) {
        id = (uint16_t)(buf[pos] << 8 | buf[pos + 1]);
        pos = (uint16_t)(pos + 2);
    }
    if (pos > len)
        return nullptr;
    if (qos == 1) {
        uint8_t ack[4] = {T_PUBACK << 4, 2, (uint8_t)(id >> 8), (uint8_t)id};
        sendPacket(ack, 4);
    }
    for (HilFeeds_Subscribe *s : subs) {
        if (s && strlen(s->topic) == tlen && strncmp(s->topic, topic, tlen) == 0) {
            uint16_t n = (uint16_t)(len - pos);
            if (n > HILFEEDS_READ_BUFFER - 1)
                n = HILFEEDS_READ_BUFFER - 1;
            memcpy(s->lastread, &buf[pos], n);
            s->lastread[n] = 0;
            s->datalen = n;
            return s;
        }
    }
    return nullptr;
}

HilFeeds_Subscribe *HilFeeds_MQTT::readSubscription(int16_t timeout)
{
    unsigned long start = millis();
    do {
        uint16_t len = readFullPacket(buffer, HILFEEDS_PACKET_SIZE, (uint16_t)(timeout > 0 ? 10 : 0));
        if (len && (buffer[0] >> 4) == T_PUBLISH) {
            HilFeeds_Subscribe *s = handlePublish(buffer, len);
            if (s)
                return s;
        }
        if (!connected())
            return nullptr;
    } while ((long)(millis() - start) < timeout);
    return nullptr;
}

void HilFeeds_MQTT::processPackets(int16_t timeout)
{
    readSubscription(timeout);
    if (keepalive_s && millis() - last_sent > (unsigned long)keepalive_s * 1000ul / 2)
        ping();
}

bool HilFeeds_Publish::publish(double f, uint8_t precision)
{
    char buf[41];
    dtostrf(f, 0, precision, buf);
    return publish(buf);
}

bool HilFeeds_Publish::publish(int32_t i)
{
    char buf[12];
    ltoa(i, buf, 10);
    return publish(buf);
}

bool HilFeeds_Publish::publish(uint32_t i)
{
    char buf[12];
    ultoa(i, buf, 10);
    return publish(buf);
}
