/* MQTT 3.1.1 packet codec: sans-IO, no allocation.
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
} mqtt_err;

const char *mqtt_err_str(mqtt_err e);
const char *mqtt_type_str(uint8_t type);

typedef struct {
    const uint8_t *data;
    size_t len;
} mqtt_slice;

/* One entry of a SUBSCRIBE (filter + requested QoS) or UNSUBSCRIBE. */
typedef struct {
    mqtt_slice filter;
    uint8_t qos;
} mqtt_filter;

typedef struct {
    uint8_t type;
    uint16_t pid;

    /* PUBLISH */
    bool dup, retain;
    uint8_t qos;
    mqtt_slice topic, payload;

    /* CONNACK */
    bool session_present;
    uint8_t rc;

    /* CONNECT */
    struct {
        bool clean, will, will_retain, has_user, has_pass;
        uint8_t will_qos;
        uint16_t keepalive;
        mqtt_slice client_id, will_topic, will_payload, user, pass;
    } connect;

    /* SUBSCRIBE/UNSUBSCRIBE: `list` is the raw, already validated entry list
     * (walk it with mqtt_filter_next); SUBACK: `list` holds the return codes.
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

/* Decodes exactly one whole packet of `len` bytes (as framed above). */
mqtt_err mqtt_decode(const uint8_t *buf, size_t len, mqtt_packet *out);

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
