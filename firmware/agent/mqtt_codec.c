/* MQTT 3.1.1 codec. Section numbers refer to the OASIS MQTT 3.1.1 standard. */
#include "mqtt_codec.h"

#include <string.h>

const char *mqtt_err_str(mqtt_err e)
{
    switch (e) {
    case MQTT_OK: return "ok";
    case MQTT_INCOMPLETE: return "incomplete";
    case MQTT_E_TYPE: return "reserved_type";
    case MQTT_E_FLAGS: return "bad_header_flags";
    case MQTT_E_REMLEN: return "bad_remaining_length";
    case MQTT_E_TOO_BIG: return "packet_too_big";
    case MQTT_E_SHORT: return "truncated_field";
    case MQTT_E_TRAILING: return "trailing_bytes";
    case MQTT_E_UTF8: return "bad_utf8";
    case MQTT_E_PROTOCOL: return "bad_protocol";
    case MQTT_E_CONNECT_FLAGS: return "bad_connect_flags";
    case MQTT_E_QOS: return "bad_qos";
    case MQTT_E_PID: return "zero_packet_id";
    case MQTT_E_TOPIC: return "bad_topic";
    case MQTT_E_EMPTY: return "no_entries";
    case MQTT_E_CODE: return "bad_return_code";
    case MQTT_E_NOSPACE: return "no_space";
    }
    return "unknown";
}

const char *mqtt_type_str(uint8_t t)
{
    static const char *const names[16] = {
        "RESERVED0", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
        "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE",
        "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "RESERVED15",
    };
    return names[t & 15];
}

/* ---- validation ---------------------------------------------------- */

/* 1.5.3: well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF) and no U+0000. */
bool mqtt_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        uint32_t cp;
        size_t n;
        if (b == 0)
            return false;
        if (b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0xC2 && b <= 0xDF) {
            n = 1;
            cp = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            n = 2;
            cp = b & 0x0F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            n = 3;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            uint8_t c = s[i + k];
            if ((c & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (c & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        if (cp >= 0xD800 && cp <= 0xDFFF)
            return false;
        i += n + 1;
    }
    return true;
}

/* 4.7.3: a topic name has at least one character and no wildcards. */
bool mqtt_topic_name_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || !mqtt_utf8_valid(s, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '+' || s[i] == '#')
            return false;
    return true;
}

/* 4.7.1: '#' only as the whole last level, '+' only as a whole level. */
bool mqtt_topic_filter_valid(const uint8_t *s, size_t len)
{
    if (len == 0 || !mqtt_utf8_valid(s, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        bool starts_level = i == 0 || s[i - 1] == '/';
        bool ends_level = i + 1 == len || s[i + 1] == '/';
        if (s[i] == '#' && !(starts_level && i + 1 == len))
            return false;
        if (s[i] == '+' && !(starts_level && ends_level))
            return false;
    }
    return true;
}

/* ---- framing --------------------------------------------------------- */

/* 2.2.2: the flags every packet type but PUBLISH must carry. */
static int required_flags(uint8_t type)
{
    switch (type) {
    case MQTT_PUBLISH: return -1;
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: return 2;
    default: return 0;
    }
}

mqtt_err mqtt_frame(const uint8_t *buf, size_t len, size_t max, size_t *total)
{
    if (len < 1)
        return MQTT_INCOMPLETE;
    uint8_t type = buf[0] >> 4, flags = buf[0] & 15;
    if (type == 0 || type == 15)
        return MQTT_E_TYPE;
    int req = required_flags(type);
    if (req >= 0 && flags != req)
        return MQTT_E_FLAGS;
    if (type == MQTT_PUBLISH) {
        uint8_t qos = (flags >> 1) & 3;
        if (qos == 3 || (qos == 0 && (flags & 8))) /* 3.3.1-4, 3.3.1-2 */
            return MQTT_E_QOS;
    }
    /* 2.2.3: at most four length bytes, 7 bits each, low group first. */
    size_t rem = 0;
    for (size_t i = 0; i < 4; i++) {
        if (len < 2 + i)
            return MQTT_INCOMPLETE;
        uint8_t b = buf[1 + i];
        rem |= (size_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            size_t whole = 2 + i + rem;
            if (whole > max)
                return MQTT_E_TOO_BIG;
            *total = whole;
            return MQTT_OK;
        }
    }
    return MQTT_E_REMLEN;
}

/* ---- decoding -------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t left;
} reader;

static bool rd_u8(reader *r, uint8_t *v)
{
    if (r->left < 1)
        return false;
    *v = *r->p++;
    r->left--;
    return true;
}

static bool rd_u16(reader *r, uint16_t *v)
{
    if (r->left < 2)
        return false;
    *v = (uint16_t)((r->p[0] << 8) | r->p[1]);
    r->p += 2;
    r->left -= 2;
    return true;
}

static bool rd_bytes(reader *r, mqtt_slice *s)
{
    uint16_t n;
    if (!rd_u16(r, &n) || r->left < n)
        return false;
    s->data = r->p;
    s->len = n;
    r->p += n;
    r->left -= n;
    return true;
}

static mqtt_err rd_string(reader *r, mqtt_slice *s)
{
    if (!rd_bytes(r, s))
        return MQTT_E_SHORT;
    return mqtt_utf8_valid(s->data, s->len) ? MQTT_OK : MQTT_E_UTF8;
}

static mqtt_err rd_pid(reader *r, uint16_t *pid)
{
    if (!rd_u16(r, pid))
        return MQTT_E_SHORT;
    return *pid ? MQTT_OK : MQTT_E_PID; /* 2.3.1-1 */
}

static mqtt_err decode_connect(reader *r, mqtt_packet *p)
{
    mqtt_slice name;
    uint8_t level, f;
    mqtt_err e;
    if (!rd_bytes(r, &name) || !rd_u8(r, &level) || !rd_u8(r, &f) ||
        !rd_u16(r, &p->connect.keepalive))
        return MQTT_E_SHORT;
    if (name.len != 4 || memcmp(name.data, "MQTT", 4) != 0 || level != 4)
        return MQTT_E_PROTOCOL;
    if (f & 1) /* 3.1.2-3 */
        return MQTT_E_CONNECT_FLAGS;
    p->connect.clean = f & 2;
    p->connect.will = f & 4;
    p->connect.will_qos = (f >> 3) & 3;
    p->connect.will_retain = f & 0x20;
    p->connect.has_pass = f & 0x40;
    p->connect.has_user = f & 0x80;
    if (p->connect.will_qos == 3)
        return MQTT_E_QOS;
    if (!p->connect.will && (p->connect.will_qos || p->connect.will_retain))
        return MQTT_E_CONNECT_FLAGS; /* 3.1.2-13, 3.1.2-15 */
    if (p->connect.has_pass && !p->connect.has_user)
        return MQTT_E_CONNECT_FLAGS; /* 3.1.2-22 */
    if ((e = rd_string(r, &p->connect.client_id)) != MQTT_OK)
        return e;
    if (p->connect.will) {
        if ((e = rd_string(r, &p->connect.will_topic)) != MQTT_OK)
            return e;
        if (!mqtt_topic_name_valid(p->connect.will_topic.data, p->connect.will_topic.len))
            return MQTT_E_TOPIC;
        if (!rd_bytes(r, &p->connect.will_payload))
            return MQTT_E_SHORT;
    }
    if (p->connect.has_user && (e = rd_string(r, &p->connect.user)) != MQTT_OK)
        return e;
    if (p->connect.has_pass && !rd_bytes(r, &p->connect.pass))
        return MQTT_E_SHORT;
    return MQTT_OK;
}

/* Walks a SUBSCRIBE (with_qos) or UNSUBSCRIBE list, validating each entry. */
static mqtt_err decode_filters(reader *r, mqtt_packet *p, bool with_qos)
{
    p->list.data = r->p;
    p->list.len = r->left;
    p->count = 0;
    while (r->left) {
        mqtt_slice f;
        mqtt_err e = rd_string(r, &f);
        if (e != MQTT_OK)
            return e;
        if (!mqtt_topic_filter_valid(f.data, f.len))
            return MQTT_E_TOPIC;
        if (with_qos) {
            uint8_t q;
            if (!rd_u8(r, &q))
                return MQTT_E_SHORT;
            if (q > 2) /* 3.8.3-4: reserved bits too */
                return MQTT_E_QOS;
        }
        p->count++;
    }
    return p->count ? MQTT_OK : MQTT_E_EMPTY; /* 3.8.3-3, 3.10.3-2 */
}

mqtt_err mqtt_decode(const uint8_t *buf, size_t len, mqtt_packet *p)
{
    size_t total;
    mqtt_err e = mqtt_frame(buf, len, len, &total);
    if (e == MQTT_E_TOO_BIG || e == MQTT_INCOMPLETE)
        return MQTT_E_SHORT;
    if (e != MQTT_OK)
        return e;
    if (total != len)
        return MQTT_E_TRAILING;
    memset(p, 0, sizeof *p);
    p->type = buf[0] >> 4;
    uint8_t flags = buf[0] & 15;
    size_t hdr = 2;
    while (buf[hdr - 1] & 0x80)
        hdr++;
    reader r = { buf + hdr, len - hdr };

    switch (p->type) {
    case MQTT_CONNECT:
        e = decode_connect(&r, p);
        break;
    case MQTT_CONNACK: {
        uint8_t ack, rc;
        if (!rd_u8(&r, &ack) || !rd_u8(&r, &rc)) {
            e = MQTT_E_SHORT;
            break;
        }
        if (ack & 0xFE) {
            e = MQTT_E_FLAGS;
            break;
        }
        p->session_present = ack & 1;
        p->rc = rc;
        /* 3.2.2-4: a refusal never claims a session. */
        e = (rc > 5 || (rc && p->session_present)) ? MQTT_E_CODE : MQTT_OK;
        break;
    }
    case MQTT_PUBLISH:
        p->dup = flags & 8;
        p->qos = (flags >> 1) & 3;
        p->retain = flags & 1;
        if ((e = rd_string(&r, &p->topic)) != MQTT_OK)
            break;
        if (!mqtt_topic_name_valid(p->topic.data, p->topic.len)) {
            e = MQTT_E_TOPIC;
            break;
        }
        if (p->qos && (e = rd_pid(&r, &p->pid)) != MQTT_OK)
            break;
        p->payload.data = r.p;
        p->payload.len = r.left;
        r.left = 0;
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        e = rd_pid(&r, &p->pid);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        if ((e = rd_pid(&r, &p->pid)) == MQTT_OK)
            e = decode_filters(&r, p, p->type == MQTT_SUBSCRIBE);
        break;
    case MQTT_SUBACK:
        if ((e = rd_pid(&r, &p->pid)) != MQTT_OK)
            break;
        p->list.data = r.p;
        p->list.len = p->count = r.left;
        for (size_t i = 0; i < r.left; i++)
            if (r.p[i] > 2 && r.p[i] != 0x80) /* 3.9.3-2 */
                e = MQTT_E_CODE;
        r.left = 0;
        if (e == MQTT_OK && p->count == 0)
            e = MQTT_E_EMPTY;
        break;
    default: /* PINGREQ, PINGRESP, DISCONNECT: no body */
        break;
    }
    if (e == MQTT_OK && r.left)
        e = MQTT_E_TRAILING;
    return e;
}

bool mqtt_filter_next(const mqtt_packet *p, size_t *pos, mqtt_filter *out)
{
    if (p->type != MQTT_SUBSCRIBE && p->type != MQTT_UNSUBSCRIBE)
        return false;
    reader r = { p->list.data + *pos, p->list.len - *pos };
    if (*pos >= p->list.len || !rd_bytes(&r, &out->filter))
        return false;
    out->qos = 0;
    if (p->type == MQTT_SUBSCRIBE && !rd_u8(&r, &out->qos))
        return false;
    *pos = p->list.len - r.left;
    return true;
}

/* ---- encoding -------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t cap, len;
    bool overflow;
} writer;

static void wr(writer *w, const void *src, size_t n)
{
    if (w->overflow || w->cap - w->len < n) {
        w->overflow = true;
        return;
    }
    if (n)
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void wr_u8(writer *w, uint8_t v) { wr(w, &v, 1); }

static void wr_u16(writer *w, uint16_t v)
{
    uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
    wr(w, b, 2);
}

static void wr_bytes(writer *w, mqtt_slice s)
{
    if (s.len > 0xFFFF) {
        w->overflow = true;
        return;
    }
    wr_u16(w, (uint16_t)s.len);
    wr(w, s.data, s.len);
}

static size_t slice2(mqtt_slice s) { return 2 + s.len; }

/* Size of everything after the fixed header. */
static size_t body_size(const mqtt_packet *p)
{
    size_t n = 0;
    switch (p->type) {
    case MQTT_CONNECT:
        n = 10 + slice2(p->connect.client_id);
        if (p->connect.will)
            n += slice2(p->connect.will_topic) + slice2(p->connect.will_payload);
        if (p->connect.has_user)
            n += slice2(p->connect.user);
        if (p->connect.has_pass)
            n += slice2(p->connect.pass);
        return n;
    case MQTT_CONNACK:
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        return 2;
    case MQTT_PUBLISH:
        return slice2(p->topic) + (p->qos ? 2 : 0) + p->payload.len;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        n = 2;
        for (size_t i = 0; i < p->count; i++)
            n += slice2(p->filters[i].filter) + (p->type == MQTT_SUBSCRIBE);
        return n;
    case MQTT_SUBACK:
        return 2 + p->list.len;
    default:
        return 0;
    }
}

size_t mqtt_encode(uint8_t *out, size_t cap, const mqtt_packet *p)
{
    writer w = { out, cap, 0, false };
    size_t rem = body_size(p);
    if (p->type == 0 || p->type > MQTT_DISCONNECT || rem > 268435455u)
        return 0;
    uint8_t flags = 0;
    if (p->type == MQTT_PUBLISH)
        flags = (uint8_t)((p->dup ? 8 : 0) | ((p->qos & 3) << 1) | (p->retain ? 1 : 0));
    else if (required_flags(p->type) > 0)
        flags = 2;
    wr_u8(&w, (uint8_t)(p->type << 4 | flags));
    do {
        uint8_t b = rem & 0x7F;
        rem >>= 7;
        wr_u8(&w, rem ? b | 0x80 : b);
    } while (rem);

    switch (p->type) {
    case MQTT_CONNECT: {
        static const uint8_t name[] = { 0, 4, 'M', 'Q', 'T', 'T', 4 };
        wr(&w, name, sizeof name);
        uint8_t f = (uint8_t)((p->connect.clean ? 2 : 0) | (p->connect.will ? 4 : 0) |
                              ((p->connect.will_qos & 3) << 3) |
                              (p->connect.will_retain ? 0x20 : 0) |
                              (p->connect.has_pass ? 0x40 : 0) | (p->connect.has_user ? 0x80 : 0));
        wr_u8(&w, f);
        wr_u16(&w, p->connect.keepalive);
        wr_bytes(&w, p->connect.client_id);
        if (p->connect.will) {
            wr_bytes(&w, p->connect.will_topic);
            wr_bytes(&w, p->connect.will_payload);
        }
        if (p->connect.has_user)
            wr_bytes(&w, p->connect.user);
        if (p->connect.has_pass)
            wr_bytes(&w, p->connect.pass);
        break;
    }
    case MQTT_CONNACK:
        wr_u8(&w, p->session_present ? 1 : 0);
        wr_u8(&w, p->rc);
        break;
    case MQTT_PUBLISH:
        wr_bytes(&w, p->topic);
        if (p->qos)
            wr_u16(&w, p->pid);
        wr(&w, p->payload.data, p->payload.len);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        wr_u16(&w, p->pid);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        wr_u16(&w, p->pid);
        for (size_t i = 0; i < p->count; i++) {
            wr_bytes(&w, p->filters[i].filter);
            if (p->type == MQTT_SUBSCRIBE)
                wr_u8(&w, p->filters[i].qos);
        }
        break;
    case MQTT_SUBACK:
        wr_u16(&w, p->pid);
        wr(&w, p->list.data, p->list.len);
        break;
    default:
        break;
    }
    return w.overflow ? 0 : w.len;
}

/* ---- streaming ------------------------------------------------------- */

void mqtt_decoder_init(mqtt_decoder *d, uint8_t *buf, size_t cap)
{
    d->buf = buf;
    d->cap = cap;
    d->len = d->used = 0;
}

void mqtt_decoder_reset(mqtt_decoder *d) { d->len = d->used = 0; }

static void drop_used(mqtt_decoder *d)
{
    if (d->used) {
        memmove(d->buf, d->buf + d->used, d->len - d->used);
        d->len -= d->used;
        d->used = 0;
    }
}

size_t mqtt_decoder_feed(mqtt_decoder *d, const uint8_t *data, size_t len)
{
    drop_used(d);
    size_t n = d->cap - d->len < len ? d->cap - d->len : len;
    memcpy(d->buf + d->len, data, n);
    d->len += n;
    return n;
}

mqtt_err mqtt_decoder_next(mqtt_decoder *d, mqtt_packet *out)
{
    drop_used(d);
    size_t total;
    mqtt_err e = mqtt_frame(d->buf, d->len, d->cap, &total);
    if (e != MQTT_OK)
        return e;
    if (d->len < total)
        return MQTT_INCOMPLETE;
    e = mqtt_decode(d->buf, total, out);
    d->used = total;
    return e;
}
