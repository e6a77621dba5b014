/* lwcodec: MQTT 3.1.1 packets to and from byte buffers, in C, with no I/O
 * and no allocation: every encoder writes into the caller's buffer and
 * says how long the packet is, every decoder reads a packet body the
 * caller has already framed (lwc_fixed_header() tells how much to read).
 * HilLwMqtt's C++ client does the reading and writing around it, the way
 * arduino-mqtt wraps its C core. */
#ifndef LWCODEC_H
#define LWCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LWC_OK = 0,
    LWC_BUFFER_TOO_SHORT = -1, /* the packet does not fit the buffer */
    LWC_INCOMPLETE = -2,       /* more bytes of the fixed header needed */
    LWC_MALFORMED = -3,        /* not a valid packet of that type */
} lwc_err_t;

typedef enum {
    LWC_CONNECT = 1,
    LWC_CONNACK = 2,
    LWC_PUBLISH = 3,
    LWC_PUBACK = 4,
    LWC_PUBREC = 5,
    LWC_PUBREL = 6,
    LWC_PUBCOMP = 7,
    LWC_SUBSCRIBE = 8,
    LWC_SUBACK = 9,
    LWC_UNSUBSCRIBE = 10,
    LWC_UNSUBACK = 11,
    LWC_PINGREQ = 12,
    LWC_PINGRESP = 13,
    LWC_DISCONNECT = 14,
} lwc_type_t;

typedef struct {
    const char *client_id;
    uint16_t keep_alive; /* seconds */
    bool clean_session;
    const char *username; /* NULL: none */
    const char *password; /* NULL: none (only with a username) */
    const char *will_topic; /* NULL: no will */
    const uint8_t *will_payload;
    size_t will_len;
    uint8_t will_qos;
    bool will_retained;
} lwc_connect_t;

typedef struct {
    const char *topic; /* not NUL-terminated when decoded */
    uint16_t topic_len;
    const uint8_t *payload;
    size_t payload_len;
    uint8_t qos;
    bool retained;
    bool dup;
    uint16_t id; /* QoS > 0 only */
} lwc_message_t;

/* The fixed header at buf[0..n): type, flags (low nibble), the header's
 * own length and the remaining length. LWC_INCOMPLETE until n covers it. */
lwc_err_t lwc_fixed_header(const uint8_t *buf, size_t n, lwc_type_t *type, uint8_t *flags, size_t *header_len,
                           size_t *remaining);

lwc_err_t lwc_encode_connect(uint8_t *buf, size_t cap, const lwc_connect_t *c, size_t *len);
lwc_err_t lwc_encode_publish(uint8_t *buf, size_t cap, const lwc_message_t *m, size_t *len);
lwc_err_t lwc_encode_subscribe(uint8_t *buf, size_t cap, uint16_t id, const char *filter, uint8_t qos, size_t *len);
lwc_err_t lwc_encode_unsubscribe(uint8_t *buf, size_t cap, uint16_t id, const char *filter, size_t *len);
/* PUBACK, PUBREC, PUBREL, PUBCOMP. */
lwc_err_t lwc_encode_ack(uint8_t *buf, size_t cap, lwc_type_t type, uint16_t id, size_t *len);
/* PINGREQ, PINGRESP, DISCONNECT. */
lwc_err_t lwc_encode_empty(uint8_t *buf, size_t cap, lwc_type_t type, size_t *len);

/* Bodies (after the fixed header). */
lwc_err_t lwc_decode_connack(const uint8_t *body, size_t n, bool *session_present, uint8_t *return_code);
lwc_err_t lwc_decode_publish(uint8_t flags, const uint8_t *body, size_t n, lwc_message_t *m);
lwc_err_t lwc_decode_ack(const uint8_t *body, size_t n, uint16_t *id);
/* A SUBACK for one filter: its id and granted QoS (0x80: refused). */
lwc_err_t lwc_decode_suback(const uint8_t *body, size_t n, uint16_t *id, uint8_t *granted);

#ifdef __cplusplus
}
#endif

#endif
