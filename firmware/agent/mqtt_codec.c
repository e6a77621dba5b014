/* MQTT 3.1.1 and 5.0 codec. Section numbers refer to the OASIS MQTT 3.1.1
 * standard unless marked 5.0 (the OASIS MQTT 5.0 standard). */
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
    case MQTT_E_PROPERTY: return "bad_property";
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

/* ---- 5.0 properties ------------------------------------------------ */

enum { PT_BYTE = 1, PT_U16, PT_U32, PT_VARINT, PT_STR, PT_BIN, PT_PAIR };

/* Packet masks: bit n = packet type n, bit 0 = will properties. */
#define PK(t) (1u << (t))
#define PK_WILL 1u
#define PK_ACKS (PK(MQTT_PUBACK) | PK(MQTT_PUBREC) | PK(MQTT_PUBREL) | PK(MQTT_PUBCOMP))

typedef struct {
    uint8_t id, type;
    uint16_t where;
    uint8_t max; /* byte properties: largest allowed value */
} prop_def;

/* 5.0 2.2.2.2, table 2-4. */
static const prop_def prop_defs[] = {
    { MQTT_P_PAYLOAD_FORMAT, PT_BYTE, PK(MQTT_PUBLISH) | PK_WILL, 1 },
    { MQTT_P_MESSAGE_EXPIRY, PT_U32, PK(MQTT_PUBLISH) | PK_WILL, 0 },
    { MQTT_P_CONTENT_TYPE, PT_STR, PK(MQTT_PUBLISH) | PK_WILL, 0 },
    { MQTT_P_RESPONSE_TOPIC, PT_STR, PK(MQTT_PUBLISH) | PK_WILL, 0 },
    { MQTT_P_CORRELATION_DATA, PT_BIN, PK(MQTT_PUBLISH) | PK_WILL, 0 },
    { MQTT_P_SUBSCRIPTION_ID, PT_VARINT, PK(MQTT_PUBLISH) | PK(MQTT_SUBSCRIBE), 0 },
    { MQTT_P_SESSION_EXPIRY, PT_U32, PK(MQTT_CONNECT) | PK(MQTT_CONNACK) | PK(MQTT_DISCONNECT), 0 },
    { MQTT_P_ASSIGNED_CLIENT_ID, PT_STR, PK(MQTT_CONNACK), 0 },
    { MQTT_P_SERVER_KEEP_ALIVE, PT_U16, PK(MQTT_CONNACK), 0 },
    { MQTT_P_AUTH_METHOD, PT_STR, PK(MQTT_CONNECT) | PK(MQTT_CONNACK), 0 },
    { MQTT_P_AUTH_DATA, PT_BIN, PK(MQTT_CONNECT) | PK(MQTT_CONNACK), 0 },
    { MQTT_P_REQUEST_PROBLEM_INFO, PT_BYTE, PK(MQTT_CONNECT), 1 },
    { MQTT_P_WILL_DELAY, PT_U32, PK_WILL, 0 },
    { MQTT_P_REQUEST_RESPONSE_INFO, PT_BYTE, PK(MQTT_CONNECT), 1 },
    { MQTT_P_RESPONSE_INFO, PT_STR, PK(MQTT_CONNACK), 0 },
    { MQTT_P_SERVER_REFERENCE, PT_STR, PK(MQTT_CONNACK) | PK(MQTT_DISCONNECT), 0 },
    { MQTT_P_REASON_STRING, PT_STR,
      PK(MQTT_CONNACK) | PK_ACKS | PK(MQTT_SUBACK) | PK(MQTT_UNSUBACK) | PK(MQTT_DISCONNECT), 0 },
    { MQTT_P_RECEIVE_MAXIMUM, PT_U16, PK(MQTT_CONNECT) | PK(MQTT_CONNACK), 0 },
    { MQTT_P_TOPIC_ALIAS_MAXIMUM, PT_U16, PK(MQTT_CONNECT) | PK(MQTT_CONNACK), 0 },
    { MQTT_P_TOPIC_ALIAS, PT_U16, PK(MQTT_PUBLISH), 0 },
    { MQTT_P_MAXIMUM_QOS, PT_BYTE, PK(MQTT_CONNACK), 1 },
    { MQTT_P_RETAIN_AVAILABLE, PT_BYTE, PK(MQTT_CONNACK), 1 },
    { MQTT_P_USER_PROPERTY, PT_PAIR, 0x7FFF, 0 },
    { MQTT_P_MAXIMUM_PACKET_SIZE, PT_U32, PK(MQTT_CONNECT) | PK(MQTT_CONNACK), 0 },
    { MQTT_P_WILDCARD_SUB_AVAILABLE, PT_BYTE, PK(MQTT_CONNACK), 1 },
    { MQTT_P_SUB_ID_AVAILABLE, PT_BYTE, PK(MQTT_CONNACK), 1 },
    { MQTT_P_SHARED_SUB_AVAILABLE, PT_BYTE, PK(MQTT_CONNACK), 1 },
};

static const prop_def *prop_def_of(uint8_t id)
{
    for (size_t i = 0; i < sizeof prop_defs / sizeof prop_defs[0]; i++)
        if (prop_defs[i].id == id)
            return &prop_defs[i];
    return NULL;
}

/* 1.5.5 (5.0): at most four bytes, minimal encoding (1.5.5-1). */
static bool rd_varint(reader *r, uint32_t *v)
{
    uint32_t x = 0;
    for (unsigned i = 0; i < 4; i++) {
        uint8_t b;
        if (!rd_u8(r, &b))
            return false;
        x |= (uint32_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            if (i && b == 0)
                return false; /* a redundant zero group */
            *v = x;
            return true;
        }
    }
    return false;
}

size_t mqtt_varint_size(uint32_t v)
{
    return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : v < 268435456u ? 4 : 0;
}

/* Reads one property; NULL def or a short field is an error. */
static mqtt_err rd_prop(reader *r, mqtt_prop *out, const prop_def **def)
{
    uint32_t id;
    memset(out, 0, sizeof *out);
    if (!rd_varint(r, &id))
        return MQTT_E_SHORT;
    *def = id < 256 ? prop_def_of((uint8_t)id) : NULL;
    if (!*def)
        return MQTT_E_PROPERTY;
    out->id = (uint8_t)id;
    uint8_t b;
    uint16_t h;
    switch ((*def)->type) {
    case PT_BYTE:
        if (!rd_u8(r, &b))
            return MQTT_E_SHORT;
        out->num = b;
        return MQTT_OK;
    case PT_U16:
        if (!rd_u16(r, &h))
            return MQTT_E_SHORT;
        out->num = h;
        return MQTT_OK;
    case PT_U32:
        if (r->left < 4)
            return MQTT_E_SHORT;
        out->num = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
        r->p += 4;
        r->left -= 4;
        return MQTT_OK;
    case PT_VARINT:
        return rd_varint(r, &out->num) ? MQTT_OK : MQTT_E_SHORT;
    case PT_BIN:
        return rd_bytes(r, &out->str) ? MQTT_OK : MQTT_E_SHORT;
    case PT_STR:
        return rd_string(r, &out->str);
    default: {
        mqtt_err e = rd_string(r, &out->str);
        return e == MQTT_OK ? rd_string(r, &out->val) : e;
    }
    }
}

mqtt_err mqtt_props_check(mqtt_slice props, uint8_t type)
{
    reader r = { props.data, props.len };
    uint64_t seen = 0;
    while (r.left) {
        mqtt_prop p;
        const prop_def *d = NULL;
        mqtt_err e = rd_prop(&r, &p, &d);
        if (e != MQTT_OK)
            return e;
        if (!(d->where & (type ? PK(type) : PK_WILL)))
            return MQTT_E_PROPERTY; /* 5.0 2.2.2.2: not on this packet */
        bool repeatable = p.id == MQTT_P_USER_PROPERTY ||
                          (p.id == MQTT_P_SUBSCRIPTION_ID && type == MQTT_PUBLISH);
        if (!repeatable && (seen & (1ull << p.id)))
            return MQTT_E_PROPERTY; /* "more than once is a Protocol Error" */
        seen |= 1ull << p.id;
        if (d->type == PT_BYTE && p.num > d->max)
            return MQTT_E_PROPERTY;
        /* Zero is a Protocol Error for these (3.1.2-?, 3.3.2-8, 3.8.2.1.2). */
        if (p.num == 0 && (p.id == MQTT_P_RECEIVE_MAXIMUM || p.id == MQTT_P_MAXIMUM_PACKET_SIZE ||
                           p.id == MQTT_P_TOPIC_ALIAS || p.id == MQTT_P_SUBSCRIPTION_ID))
            return MQTT_E_PROPERTY;
        if (p.id == MQTT_P_RESPONSE_TOPIC && !mqtt_topic_name_valid(p.str.data, p.str.len))
            return MQTT_E_PROPERTY; /* 3.3.2-14: a topic name, no wildcards */
    }
    return MQTT_OK;
}

bool mqtt_prop_next(mqtt_slice props, size_t *pos, mqtt_prop *out)
{
    if (*pos >= props.len)
        return false;
    reader r = { props.data + *pos, props.len - *pos };
    const prop_def *d;
    if (rd_prop(&r, out, &d) != MQTT_OK)
        return false;
    *pos = props.len - r.left;
    return true;
}

bool mqtt_prop_find(mqtt_slice props, uint8_t id, mqtt_prop *out)
{
    size_t pos = 0;
    while (mqtt_prop_next(props, &pos, out))
        if (out->id == id)
            return true;
    return false;
}

/* A property section: varint length, then the properties, checked for `type`. */
static mqtt_err rd_props(reader *r, uint8_t type, mqtt_slice *out)
{
    uint32_t n;
    if (!rd_varint(r, &n) || r->left < n)
        return MQTT_E_SHORT;
    out->data = r->p;
    out->len = n;
    r->p += n;
    r->left -= n;
    return mqtt_props_check(*out, type);
}

void mqtt_props_init(mqtt_props_buf *b, uint8_t *buf, size_t cap)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->overflow = false;
}

static void pb_put(mqtt_props_buf *b, const void *src, size_t n)
{
    if (b->overflow || b->cap - b->len < n) {
        b->overflow = true;
        return;
    }
    if (n)
        memcpy(b->buf + b->len, src, n);
    b->len += n;
}

static void pb_varint(mqtt_props_buf *b, uint32_t v)
{
    do {
        uint8_t x = v & 0x7F;
        v >>= 7;
        if (v)
            x |= 0x80;
        pb_put(b, &x, 1);
    } while (v);
}

static void pb_bytes(mqtt_props_buf *b, mqtt_slice s)
{
    if (s.len > 0xFFFF) {
        b->overflow = true;
        return;
    }
    uint8_t h[2] = { (uint8_t)(s.len >> 8), (uint8_t)s.len };
    pb_put(b, h, 2);
    pb_put(b, s.data, s.len);
}

void mqtt_props_num(mqtt_props_buf *b, uint8_t id, uint32_t v)
{
    const prop_def *d = prop_def_of(id);
    uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    if (!d || d->type > PT_VARINT || (d->type == PT_VARINT && !mqtt_varint_size(v))) {
        b->overflow = true;
        return;
    }
    pb_put(b, &id, 1);
    switch (d->type) {
    case PT_BYTE: pb_put(b, x + 3, 1); break;
    case PT_U16: pb_put(b, x + 2, 2); break;
    case PT_U32: pb_put(b, x, 4); break;
    default: pb_varint(b, v); break;
    }
}

void mqtt_props_str(mqtt_props_buf *b, uint8_t id, mqtt_slice s)
{
    const prop_def *d = prop_def_of(id);
    if (!d || (d->type != PT_STR && d->type != PT_BIN)) {
        b->overflow = true;
        return;
    }
    pb_put(b, &id, 1);
    pb_bytes(b, s);
}

void mqtt_props_user(mqtt_props_buf *b, mqtt_slice key, mqtt_slice val)
{
    uint8_t id = MQTT_P_USER_PROPERTY;
    pb_put(b, &id, 1);
    pb_bytes(b, key);
    pb_bytes(b, val);
}

mqtt_slice mqtt_props_slice(const mqtt_props_buf *b)
{
    mqtt_slice s = { b->buf, b->overflow ? 0 : b->len };
    return s;
}

static mqtt_err decode_connect(reader *r, mqtt_packet *p)
{
    mqtt_slice name;
    uint8_t level, f;
    mqtt_err e;
    if (!rd_bytes(r, &name) || !rd_u8(r, &level) || !rd_u8(r, &f) ||
        !rd_u16(r, &p->connect.keepalive))
        return MQTT_E_SHORT;
    if (name.len != 4 || memcmp(name.data, "MQTT", 4) != 0 || (level != 4 && level != 5))
        return MQTT_E_PROTOCOL;
    p->version = level;
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
    if (level == 4 && p->connect.has_pass && !p->connect.has_user)
        return MQTT_E_CONNECT_FLAGS; /* 3.1.2-22; 5.0 allows it */
    if (level == 5 && (e = rd_props(r, MQTT_CONNECT, &p->props)) != MQTT_OK)
        return e;
    if ((e = rd_string(r, &p->connect.client_id)) != MQTT_OK)
        return e;
    if (p->connect.will) {
        if (level == 5 && (e = rd_props(r, 0, &p->connect.will_props)) != MQTT_OK)
            return e;
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
            if (p->version != MQTT_V5 && q > 2) /* 3.8.3-4: reserved bits too */
                return MQTT_E_QOS;
            /* 5.0 3.8.3-5: reserved bits 6-7 zero; QoS 3 and retain
             * handling 3 are Protocol Errors (3.8.3.1). */
            if (p->version == MQTT_V5 && ((q & 3) == 3 || (q & 0xC0) || (q >> 4 & 3) == 3))
                return MQTT_E_QOS;
        }
        p->count++;
    }
    return p->count ? MQTT_OK : MQTT_E_EMPTY; /* 3.8.3-3, 3.10.3-2 */
}

/* Whether code is one of the n codes in set. */
static bool code_in(uint8_t code, const char *set, size_t n)
{
    return memchr(set, code, n) != NULL;
}
#define CODE_IN(code, lit) code_in((code), (lit), sizeof(lit) - 1)

/* 5.0 reason codes allowed per packet (2.4, table 2-6). */
#define RC_CONNACK "\x00\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8A\x8C\x90\x95\x97\x99\x9A\x9B\x9C\x9D\x9F"
#define RC_PUBACK "\x00\x10\x80\x83\x87\x90\x91\x97\x99"
#define RC_PUBREL "\x00\x92"
#define RC_SUBACK "\x00\x01\x02\x80\x83\x87\x8F\x91\x97\x9E\xA1\xA2"
#define RC_UNSUBACK "\x00\x11\x80\x83\x87\x8F\x91"
#define RC_DISCONNECT "\x00\x04\x80\x81\x82\x83\x87\x89\x8B\x8D\x8E\x8F\x90\x93\x94\x95\x96\x97\x98\x99\x9A\x9B\x9C\x9D\x9E\x9F\xA0\xA1\xA2"

/* The body of a 5.0 packet other than CONNECT and PUBLISH. */
static mqtt_err decode_v5_body(reader *r, mqtt_packet *p)
{
    mqtt_err e = MQTT_OK;
    switch (p->type) {
    case MQTT_CONNACK: {
        uint8_t ack;
        if (!rd_u8(r, &ack) || !rd_u8(r, &p->rc))
            return MQTT_E_SHORT;
        if (ack & 0xFE)
            return MQTT_E_FLAGS;
        p->session_present = ack & 1;
        if (!CODE_IN(p->rc, RC_CONNACK) || (p->rc && p->session_present))
            return MQTT_E_CODE; /* 3.2.2-6 */
        return rd_props(r, MQTT_CONNACK, &p->props);
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: {
        /* 3.4.2.1: the reason code and properties may be left off. */
        if ((e = rd_pid(r, &p->pid)) != MQTT_OK || !r->left)
            return e;
        rd_u8(r, &p->rc);
        bool rel = p->type == MQTT_PUBREL || p->type == MQTT_PUBCOMP;
        if (rel ? !CODE_IN(p->rc, RC_PUBREL) : !CODE_IN(p->rc, RC_PUBACK))
            return MQTT_E_CODE;
        return r->left ? rd_props(r, p->type, &p->props) : MQTT_OK;
    }
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        if ((e = rd_pid(r, &p->pid)) != MQTT_OK || (e = rd_props(r, p->type, &p->props)) != MQTT_OK)
            return e;
        return decode_filters(r, p, p->type == MQTT_SUBSCRIBE);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        if ((e = rd_pid(r, &p->pid)) != MQTT_OK || (e = rd_props(r, p->type, &p->props)) != MQTT_OK)
            return e;
        p->list.data = r->p;
        p->list.len = p->count = r->left;
        for (size_t i = 0; i < r->left; i++)
            if (p->type == MQTT_SUBACK ? !CODE_IN(r->p[i], RC_SUBACK) : !CODE_IN(r->p[i], RC_UNSUBACK))
                e = MQTT_E_CODE;
        r->left = 0;
        return e == MQTT_OK && p->count == 0 ? MQTT_E_EMPTY : e;
    case MQTT_DISCONNECT:
        if (!r->left)
            return MQTT_OK; /* 3.14.2.1: no reason code means 0 */
        rd_u8(r, &p->rc);
        if (!CODE_IN(p->rc, RC_DISCONNECT))
            return MQTT_E_CODE;
        return r->left ? rd_props(r, MQTT_DISCONNECT, &p->props) : MQTT_OK;
    default: /* PINGREQ, PINGRESP: no body */
        return MQTT_OK;
    }
}

mqtt_err mqtt_decode(const uint8_t *buf, size_t len, mqtt_packet *p)
{
    return mqtt_decode_v(buf, len, MQTT_V311, p);
}

mqtt_err mqtt_decode_v(const uint8_t *buf, size_t len, uint8_t version, mqtt_packet *p)
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
    p->version = version == MQTT_V5 ? MQTT_V5 : MQTT_V311;
    uint8_t flags = buf[0] & 15;
    size_t hdr = 2;
    while (buf[hdr - 1] & 0x80)
        hdr++;
    reader r = { buf + hdr, len - hdr };

    if (p->version == MQTT_V5 && p->type != MQTT_CONNECT && p->type != MQTT_PUBLISH) {
        e = decode_v5_body(&r, p);
        if (e == MQTT_OK && r.left)
            e = MQTT_E_TRAILING;
        return e;
    }
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
        /* 5.0: an empty topic stands for a topic alias (3.3.2-?), checked below. */
        if (!mqtt_topic_name_valid(p->topic.data, p->topic.len) &&
            !(p->version == MQTT_V5 && p->topic.len == 0)) {
            e = MQTT_E_TOPIC;
            break;
        }
        if (p->qos && (e = rd_pid(&r, &p->pid)) != MQTT_OK)
            break;
        if (p->version == MQTT_V5) {
            mqtt_prop alias;
            if ((e = rd_props(&r, MQTT_PUBLISH, &p->props)) != MQTT_OK)
                break;
            if (p->topic.len == 0 && !mqtt_prop_find(p->props, MQTT_P_TOPIC_ALIAS, &alias)) {
                e = MQTT_E_TOPIC; /* 5.0 3.3.4: no topic and no alias */
                break;
            }
        }
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
    out->qos = out->options = 0;
    if (p->type == MQTT_SUBSCRIBE && !rd_u8(&r, &out->qos))
        return false;
    if (p->version == MQTT_V5) {
        out->options = out->qos & 0x3C;
        out->qos &= 3;
    }
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

/* A 5.0 property section: its length, then the properties. */
static size_t props_size(mqtt_slice s) { return mqtt_varint_size((uint32_t)s.len) + s.len; }

static void wr_varint(writer *w, size_t v)
{
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        wr_u8(w, v ? b | 0x80 : b);
    } while (v);
}

static void wr_props(writer *w, mqtt_slice s)
{
    if (s.len > 268435455u) {
        w->overflow = true;
        return;
    }
    wr_varint(w, s.len);
    wr(w, s.data, s.len);
}

/* 5.0 acks and DISCONNECT leave off what is default (3.4.2.1, 3.14.2.1):
 * 0 = nothing, 1 = the reason code, 2 = reason code and properties. */
static int v5_tail(const mqtt_packet *p)
{
    return p->props.len ? 2 : p->rc ? 1 : 0;
}

static size_t body_size_v5(const mqtt_packet *p)
{
    size_t n = 0;
    switch (p->type) {
    case MQTT_CONNECT:
        n = 10 + props_size(p->props) + slice2(p->connect.client_id);
        if (p->connect.will)
            n += props_size(p->connect.will_props) + slice2(p->connect.will_topic) +
                 slice2(p->connect.will_payload);
        if (p->connect.has_user)
            n += slice2(p->connect.user);
        if (p->connect.has_pass)
            n += slice2(p->connect.pass);
        return n;
    case MQTT_CONNACK:
        return 2 + props_size(p->props);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return 2 + (v5_tail(p) ? 1 : 0) + (v5_tail(p) == 2 ? props_size(p->props) : 0);
    case MQTT_DISCONNECT:
        return (v5_tail(p) ? 1 : 0) + (v5_tail(p) == 2 ? props_size(p->props) : 0);
    case MQTT_PUBLISH:
        return slice2(p->topic) + (p->qos ? 2 : 0) + props_size(p->props) + p->payload.len;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        n = 2 + props_size(p->props);
        for (size_t i = 0; i < p->count; i++)
            n += slice2(p->filters[i].filter) + (p->type == MQTT_SUBSCRIBE);
        return n;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return 2 + props_size(p->props) + p->list.len;
    default:
        return 0;
    }
}

/* Size of everything after the fixed header. */
static size_t body_size(const mqtt_packet *p)
{
    size_t n = 0;
    if (p->version == MQTT_V5)
        return body_size_v5(p);
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

    bool v5 = p->version == MQTT_V5;
    switch (p->type) {
    case MQTT_CONNECT: {
        static const uint8_t name[] = { 0, 4, 'M', 'Q', 'T', 'T' };
        wr(&w, name, sizeof name);
        wr_u8(&w, v5 ? 5 : 4);
        uint8_t f = (uint8_t)((p->connect.clean ? 2 : 0) | (p->connect.will ? 4 : 0) |
                              ((p->connect.will_qos & 3) << 3) |
                              (p->connect.will_retain ? 0x20 : 0) |
                              (p->connect.has_pass ? 0x40 : 0) | (p->connect.has_user ? 0x80 : 0));
        wr_u8(&w, f);
        wr_u16(&w, p->connect.keepalive);
        if (v5)
            wr_props(&w, p->props);
        wr_bytes(&w, p->connect.client_id);
        if (p->connect.will) {
            if (v5)
                wr_props(&w, p->connect.will_props);
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
        if (v5)
            wr_props(&w, p->props);
        break;
    case MQTT_PUBLISH:
        wr_bytes(&w, p->topic);
        if (p->qos)
            wr_u16(&w, p->pid);
        if (v5)
            wr_props(&w, p->props);
        wr(&w, p->payload.data, p->payload.len);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        wr_u16(&w, p->pid);
        if (v5 && v5_tail(p))
            wr_u8(&w, p->rc);
        if (v5 && v5_tail(p) == 2)
            wr_props(&w, p->props);
        break;
    case MQTT_DISCONNECT:
        if (v5 && v5_tail(p))
            wr_u8(&w, p->rc);
        if (v5 && v5_tail(p) == 2)
            wr_props(&w, p->props);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        wr_u16(&w, p->pid);
        if (v5)
            wr_props(&w, p->props);
        for (size_t i = 0; i < p->count; i++) {
            wr_bytes(&w, p->filters[i].filter);
            if (p->type == MQTT_SUBSCRIBE)
                wr_u8(&w, (uint8_t)((p->filters[i].qos & 3) | (v5 ? p->filters[i].options & 0x3C : 0)));
        }
        break;
    case MQTT_UNSUBACK:
        wr_u16(&w, p->pid);
        if (v5) {
            wr_props(&w, p->props);
            wr(&w, p->list.data, p->list.len);
        }
        break;
    case MQTT_SUBACK:
        wr_u16(&w, p->pid);
        if (v5)
            wr_props(&w, p->props);
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
    d->version = MQTT_V311;
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
    e = mqtt_decode_v(d->buf, total, d->version, out);
    d->used = total;
    return e;
}
