/* MQTT 3.1.1 and 5.0 packet codec: sans-IO, no allocation.
 *
 * A packet's `version` (4 = 3.1.1, the default when 0; 5 = 5.0) selects the
 * encoding. 5.0 properties travel as a validated raw slice (`props`, and
 * `connect.will_props`): build them with mqtt_props_*, read them with
 * mqtt_prop_next/mqtt_prop_find. Keeping them raw keeps the packet struct
 * small on the ESP8266 and preserves their order (user properties, 3.3.2-18).
 *
 * Decoding never copies: a decoded packet's slices point into the frame the
 * caller passed in, so the frame must outlive the packet. Every length read
 * from the wire is checked against the frame before use; malformed input
 * yields an error code, never an out-of-bounds read. */
#ifndef MQTT_CODEC_H
#define MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
};

typedef enum {
    MQTT_OK = 0,
    MQTT_INCOMPLETE,     /* not an error: more bytes are needed */
    MQTT_E_TYPE,         /* reserved packet type 0 or 15 */
    MQTT_E_FLAGS,        /* fixed-header flags not as the spec fixes them */
    MQTT_E_REMLEN,       /* remaining length longer than 4 bytes */
    MQTT_E_TOO_BIG,      /* frame larger than the caller's limit */
    MQTT_E_SHORT,        /* a field runs past the end of the packet */
    MQTT_E_TRAILING,     /* bytes left over after the last field */
    MQTT_E_UTF8,         /* ill-formed UTF-8 or U+0000 in a string */
    MQTT_E_PROTOCOL,     /* CONNECT protocol name or level not 3.1.1 */
    MQTT_E_CONNECT_FLAGS,/* reserved bit, will or password flags inconsistent */
    MQTT_E_QOS,          /* QoS 3, or DUP set on QoS 0 */
    MQTT_E_PID,          /* packet identifier 0 where one is required */
    MQTT_E_TOPIC,        /* empty topic, or wildcards where not allowed */
    MQTT_E_EMPTY,        /* SUBSCRIBE/UNSUBSCRIBE/SUBACK with no entries */
    MQTT_E_CODE,         /* CONNACK return code or SUBACK code out of range */
    MQTT_E_NOSPACE,      /* encoder: output buffer too small */
    MQTT_E_PROPERTY,     /* 5.0: unknown property, on the wrong packet,
                            repeated where once is allowed, or value out of range */
} mqtt_err;

#define MQTT_V311 4
#define MQTT_V5 5

/* 5.0 property identifiers (2.2.2.2). */
enum mqtt_prop_id {
    MQTT_P_PAYLOAD_FORMAT = 0x01,
    MQTT_P_MESSAGE_EXPIRY = 0x02,
    MQTT_P_CONTENT_TYPE = 0x03,
    MQTT_P_RESPONSE_TOPIC = 0x08,
    MQTT_P_CORRELATION_DATA = 0x09,
    MQTT_P_SUBSCRIPTION_ID = 0x0B,
    MQTT_P_SESSION_EXPIRY = 0x11,
    MQTT_P_ASSIGNED_CLIENT_ID = 0x12,
    MQTT_P_SERVER_KEEP_ALIVE = 0x13,
    MQTT_P_AUTH_METHOD = 0x15,
    MQTT_P_AUTH_DATA = 0x16,
    MQTT_P_REQUEST_PROBLEM_INFO = 0x17,
    MQTT_P_WILL_DELAY = 0x18,
    MQTT_P_REQUEST_RESPONSE_INFO = 0x19,
    MQTT_P_RESPONSE_INFO = 0x1A,
    MQTT_P_SERVER_REFERENCE = 0x1C,
    MQTT_P_REASON_STRING = 0x1F,
    MQTT_P_RECEIVE_MAXIMUM = 0x21,
    MQTT_P_TOPIC_ALIAS_MAXIMUM = 0x22,
    MQTT_P_TOPIC_ALIAS = 0x23,
    MQTT_P_MAXIMUM_QOS = 0x24,
    MQTT_P_RETAIN_AVAILABLE = 0x25,
    MQTT_P_USER_PROPERTY = 0x26,
    MQTT_P_MAXIMUM_PACKET_SIZE = 0x27,
    MQTT_P_WILDCARD_SUB_AVAILABLE = 0x28,
    MQTT_P_SUB_ID_AVAILABLE = 0x29,
    MQTT_P_SHARED_SUB_AVAILABLE = 0x2A,
};

/* 5.0 subscription options above the QoS bits (3.8.3.1). */
#define MQTT_SUB_NO_LOCAL 0x04
#define MQTT_SUB_RETAIN_AS_PUBLISHED 0x08
#define MQTT_SUB_RETAIN_HANDLING(rh) ((uint8_t)(((rh) & 3) << 4))

const char *mqtt_err_str(mqtt_err e);
const char *mqtt_type_str(uint8_t type);

typedef struct {
    const uint8_t *data;
    size_t len;
} mqtt_slice;

/* One entry of a SUBSCRIBE (filter + requested QoS) or UNSUBSCRIBE.
 * `options` (5.0 only) holds the MQTT_SUB_* bits, never the QoS bits. */
typedef struct {
    mqtt_slice filter;
    uint8_t qos;
    uint8_t options;
} mqtt_filter;

/* One decoded property: `num` for byte/two-byte/four-byte/varint values,
 * `str` for strings and binary data, `str` + `val` for a user property. */
typedef struct {
    uint8_t id;
    uint32_t num;
    mqtt_slice str, val;
} mqtt_prop;

typedef struct {
    uint8_t type;
    uint8_t version; /* MQTT_V311 (or 0) or MQTT_V5 */
    uint16_t pid;
    /* 5.0: the properties (without their length prefix). */
    mqtt_slice props;

    /* PUBLISH */
    bool dup, retain;
    uint8_t qos;
    mqtt_slice topic, payload;

    /* CONNACK: return code (3.1.1) or reason code (5.0); 5.0 PUBACK,
     * PUBREC, PUBREL, PUBCOMP and DISCONNECT: reason code. */
    bool session_present;
    uint8_t rc;

    /* CONNECT */
    struct {
        bool clean, will, will_retain, has_user, has_pass;
        uint8_t will_qos;
        uint16_t keepalive;
        mqtt_slice client_id, will_topic, will_payload, user, pass;
        mqtt_slice will_props; /* 5.0 */
    } connect;

    /* SUBSCRIBE/UNSUBSCRIBE: `list` is the raw, already validated entry list
     * (walk it with mqtt_filter_next); SUBACK (and 5.0 UNSUBACK): `list`
     * holds the return/reason codes.
     * `count` is the number of entries in both cases. */
    mqtt_slice list;
    size_t count;
    /* Encoder input for SUBSCRIBE/UNSUBSCRIBE (ignored by the decoder). */
    const mqtt_filter *filters;
} mqtt_packet;

/* Frames the packet at the start of buf: MQTT_OK with *total set to the
 * whole packet's size, MQTT_INCOMPLETE, or an error (bad type/flags/length,
 * or larger than max). Only the fixed header is looked at. */
mqtt_err mqtt_frame(const uint8_t *buf, size_t len, size_t max, size_t *total);

/* Decodes exactly one whole packet of `len` bytes (as framed above) as
 * 3.1.1, except a CONNECT, whose protocol level says which version it is. */
mqtt_err mqtt_decode(const uint8_t *buf, size_t len, mqtt_packet *out);
/* The same for a connection that speaks `version` (MQTT_V311 or MQTT_V5). */
mqtt_err mqtt_decode_v(const uint8_t *buf, size_t len, uint8_t version, mqtt_packet *out);

/* Walks validated properties; *pos starts at 0. False at the end. */
bool mqtt_prop_next(mqtt_slice props, size_t *pos, mqtt_prop *out);
/* The first property with this id, if any. */
bool mqtt_prop_find(mqtt_slice props, uint8_t id, mqtt_prop *out);
/* Checks a property list as it may appear on packet `type` (0 = will
 * properties): known ids, right types, allowed values, no forbidden repeats. */
mqtt_err mqtt_props_check(mqtt_slice props, uint8_t type);

/* Builds a property list in a caller's buffer. A failed add (no room, or an
 * id the codec does not know) sets `overflow`; the list is then unusable. */
typedef struct {
    uint8_t *buf;
    size_t cap, len;
    bool overflow;
} mqtt_props_buf;
void mqtt_props_init(mqtt_props_buf *b, uint8_t *buf, size_t cap);
/* Byte, two-byte, four-byte or varint property: the width comes from the id. */
void mqtt_props_num(mqtt_props_buf *b, uint8_t id, uint32_t v);
/* String or binary property. */
void mqtt_props_str(mqtt_props_buf *b, uint8_t id, mqtt_slice s);
void mqtt_props_user(mqtt_props_buf *b, mqtt_slice key, mqtt_slice val);
mqtt_slice mqtt_props_slice(const mqtt_props_buf *b);
/* Size of a variable byte integer (1..4), 0 above 268435455. */
size_t mqtt_varint_size(uint32_t v);

/* Walks a decoded SUBSCRIBE/UNSUBSCRIBE list; *pos starts at 0. Returns
 * false at the end. Safe because mqtt_decode validated the list. */
bool mqtt_filter_next(const mqtt_packet *p, size_t *pos, mqtt_filter *out);

/* Encodes p into out; returns the byte count, or 0 if it does not fit or p is
 * not encodable (e.g. a string over 65535 bytes). Encodes what it is given,
 * without validating semantics, so tests can also build invalid packets. */
size_t mqtt_encode(uint8_t *out, size_t cap, const mqtt_packet *p);

/* Validation helpers, also used by the client for what it sends. */
bool mqtt_utf8_valid(const uint8_t *s, size_t len);
bool mqtt_topic_name_valid(const uint8_t *s, size_t len);
bool mqtt_topic_filter_valid(const uint8_t *s, size_t len);

/* Streaming: bytes are fed in as they arrive; a packet comes out whole.
 * The buffer is the caller's (static on the device). */
typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t len;   /* bytes buffered */
    size_t used;  /* bytes of the packet last returned, dropped on next call */
    uint8_t version; /* what the connection speaks: MQTT_V311 or MQTT_V5 */
} mqtt_decoder;

void mqtt_decoder_init(mqtt_decoder *d, uint8_t *buf, size_t cap);
void mqtt_decoder_reset(mqtt_decoder *d);
/* Appends up to len bytes; returns how many were taken (fewer when the
 * buffer is full: call mqtt_decoder_next to drain, then feed the rest). */
size_t mqtt_decoder_feed(mqtt_decoder *d, const uint8_t *data, size_t len);
/* MQTT_OK with *out valid until the next call, MQTT_INCOMPLETE, or an error
 * after which the stream cannot be trusted (the connection must close). */
mqtt_err mqtt_decoder_next(mqtt_decoder *d, mqtt_packet *out);

#ifdef __cplusplus
}
#endif
#endif
