/* lwcodec: see lwcodec.h. Encoders first compute the body's length, so
 * the remaining-length field is written once, in front, without moving
 * bytes; every write is checked against the capacity first. */
#include "lwcodec.h"

#include <string.h>

static size_t varint_len(size_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/* Writes the fixed header; the offset of the body, or 0 if the whole
 * packet would not fit. */
static size_t put_header(uint8_t *buf, size_t cap, uint8_t first, size_t body)
{
    size_t total = 1 + varint_len(body) + body;
    if (body > 268435455u || total > cap)
        return 0;
    size_t at = 0;
    buf[at++] = first;
    do {
        uint8_t d = (uint8_t)(body & 0x7f);
        body >>= 7;
        buf[at++] = body ? (uint8_t)(d | 0x80) : d;
    } while (body);
    return at;
}

static size_t put_u16(uint8_t *buf, size_t at, uint16_t v)
{
    buf[at] = (uint8_t)(v >> 8);
    buf[at + 1] = (uint8_t)v;
    return at + 2;
}

static size_t put_bytes(uint8_t *buf, size_t at, const void *data, size_t n)
{
    at = put_u16(buf, at, (uint16_t)n);
    if (n)
        memcpy(buf + at, data, n);
    return at + n;
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

lwc_err_t lwc_fixed_header(const uint8_t *buf, size_t n, lwc_type_t *type, uint8_t *flags, size_t *header_len,
                           size_t *remaining)
{
    if (n < 2)
        return LWC_INCOMPLETE;
    size_t value = 0;
    unsigned shift = 0;
    for (size_t i = 1; i < 5; i++) {
        if (i >= n)
            return LWC_INCOMPLETE;
        value |= (size_t)(buf[i] & 0x7f) << shift;
        shift += 7;
        if (!(buf[i] & 0x80)) {
            uint8_t t = buf[0] >> 4;
            if (t < LWC_CONNECT || t > LWC_DISCONNECT)
                return LWC_MALFORMED;
            *type = (lwc_type_t)t;
            *flags = buf[0] & 0x0f;
            *header_len = i + 1;
            *remaining = value;
            return LWC_OK;
        }
    }
    return LWC_MALFORMED;
}

lwc_err_t lwc_encode_connect(uint8_t *buf, size_t cap, const lwc_connect_t *c, size_t *len)
{
    const char *id = c->client_id ? c->client_id : "";
    size_t body = 10 + 2 + strlen(id);
    uint8_t flags = c->clean_session ? 0x02 : 0;
    if (c->will_topic) {
        if (c->will_qos > 2)
            return LWC_MALFORMED;
        body += 2 + strlen(c->will_topic) + 2 + c->will_len;
        flags |= (uint8_t)(0x04 | (c->will_qos << 3) | (c->will_retained ? 0x20 : 0));
    }
    if (c->username) {
        body += 2 + strlen(c->username);
        flags |= 0x80;
        if (c->password) {
            body += 2 + strlen(c->password);
            flags |= 0x40;
        }
    }
    size_t at = put_header(buf, cap, LWC_CONNECT << 4, body);
    if (!at)
        return LWC_BUFFER_TOO_SHORT;
    at = put_bytes(buf, at, "MQTT", 4);
    buf[at++] = 4;
    buf[at++] = flags;
    at = put_u16(buf, at, c->keep_alive);
    at = put_bytes(buf, at, id, strlen(id));
    if (c->will_topic) {
        at = put_bytes(buf, at, c->will_topic, strlen(c->will_topic));
        at = put_bytes(buf, at, c->will_payload, c->will_len);
    }
    if (c->username) {
        at = put_bytes(buf, at, c->username, strlen(c->username));
        if (c->password)
            at = put_bytes(buf, at, c->password, strlen(c->password));
    }
    *len = at;
    return LWC_OK;
}

lwc_err_t lwc_encode_publish(uint8_t *buf, size_t cap, const lwc_message_t *m, size_t *len)
{
    if (m->qos > 2 || (m->qos && m->id == 0))
        return LWC_MALFORMED;
    size_t body = 2 + m->topic_len + (m->qos ? 2 : 0) + m->payload_len;
    uint8_t first = (uint8_t)((LWC_PUBLISH << 4) | (m->dup ? 0x08 : 0) | (m->qos << 1) | (m->retained ? 1 : 0));
    size_t at = put_header(buf, cap, first, body);
    if (!at)
        return LWC_BUFFER_TOO_SHORT;
    at = put_bytes(buf, at, m->topic, m->topic_len);
    if (m->qos)
        at = put_u16(buf, at, m->id);
    if (m->payload_len)
        memcpy(buf + at, m->payload, m->payload_len);
    *len = at + m->payload_len;
    return LWC_OK;
}

lwc_err_t lwc_encode_subscribe(uint8_t *buf, size_t cap, uint16_t id, const char *filter, uint8_t qos, size_t *len)
{
    size_t n = strlen(filter);
    if (qos > 2)
        return LWC_MALFORMED;
    size_t at = put_header(buf, cap, (LWC_SUBSCRIBE << 4) | 0x02, 2 + 2 + n + 1);
    if (!at)
        return LWC_BUFFER_TOO_SHORT;
    at = put_u16(buf, at, id);
    at = put_bytes(buf, at, filter, n);
    buf[at++] = qos;
    *len = at;
    return LWC_OK;
}

lwc_err_t lwc_encode_unsubscribe(uint8_t *buf, size_t cap, uint16_t id, const char *filter, size_t *len)
{
    size_t n = strlen(filter);
    size_t at = put_header(buf, cap, (LWC_UNSUBSCRIBE << 4) | 0x02, 2 + 2 + n);
    if (!at)
        return LWC_BUFFER_TOO_SHORT;
    at = put_u16(buf, at, id);
    *len = put_bytes(buf, at, filter, n);
    return LWC_OK;
}

lwc_err_t lwc_encode_ack(uint8_t *buf, size_t cap, lwc_type_t type, uint16_t id, size_t *len)
{
    if (type < LWC_PUBACK || type > LWC_PUBCOMP)
        return LWC_MALFORMED;
    /* PUBREL's reserved flags are 0010 [MQTT-3.6.1-1]. */
    uint8_t first = (uint8_t)((type << 4) | (type == LWC_PUBREL ? 0x02 : 0));
    size_t at = put_header(buf, cap, first, 2);
    if (!at)
        return LWC_BUFFER_TOO_SHORT;
    *len = put_u16(buf, at, id);
    return LWC_OK;
}

lwc_err_t lwc_encode_empty(uint8_t *buf, size_t cap, lwc_type_t type, size_t *len)
{
    if (type != LWC_PINGREQ && type != LWC_PINGRESP && type != LWC_DISCONNECT)
        return LWC_MALFORMED;
    size_t at = put_header(buf, cap, (uint8_t)(type << 4), 0);
    if (!at)
        return LWC_BUFFER_TOO_SHORT;
    *len = at;
    return LWC_OK;
}

lwc_err_t lwc_decode_connack(const uint8_t *body, size_t n, bool *session_present, uint8_t *return_code)
{
    if (n != 2 || (body[0] & 0xfe))
        return LWC_MALFORMED;
    *session_present = body[0] & 1;
    *return_code = body[1];
    return LWC_OK;
}

lwc_err_t lwc_decode_publish(uint8_t flags, const uint8_t *body, size_t n, lwc_message_t *m)
{
    m->qos = (flags >> 1) & 3;
    m->dup = (flags & 0x08) != 0;
    m->retained = (flags & 1) != 0;
    if (m->qos > 2 || n < 2)
        return LWC_MALFORMED;
    m->topic_len = get_u16(body);
    size_t at = 2 + (size_t)m->topic_len;
    if (at + (m->qos ? 2 : 0) > n)
        return LWC_MALFORMED;
    m->topic = (const char *)body + 2;
    m->id = 0;
    if (m->qos) {
        m->id = get_u16(body + at);
        at += 2;
    }
    m->payload = body + at;
    m->payload_len = n - at;
    return LWC_OK;
}

lwc_err_t lwc_decode_ack(const uint8_t *body, size_t n, uint16_t *id)
{
    if (n != 2)
        return LWC_MALFORMED;
    *id = get_u16(body);
    return LWC_OK;
}

lwc_err_t lwc_decode_suback(const uint8_t *body, size_t n, uint16_t *id, uint8_t *granted)
{
    if (n != 3)
        return LWC_MALFORMED;
    *id = get_u16(body);
    *granted = body[2];
    return LWC_OK;
}
