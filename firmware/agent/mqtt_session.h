/* The client's session state that must survive a board reset for QoS 2 to
 * stay exactly-once: the outgoing inflight table (in send order) and the set
 * of incoming QoS 2 packet ids awaiting PUBREL.
 *
 * Persistence: two slots (A/B) in the store, each a versioned record with a
 * sequence number and a checksum. A save writes the body first and the header
 * last into the slot not holding the newest record, so a reset mid-write
 * leaves the previous record intact. Load takes the valid slot with the
 * highest sequence number; no valid slot means an empty session. */
#ifndef MQTT_SESSION_H
#define MQTT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Sized for an ESP8266: 4 x 448 B of outgoing messages fit one 2 KiB slot. */
#define MQTT_MAX_INFLIGHT 4
#define MQTT_INFLIGHT_DATA 448 /* topic + payload of one QoS 1/2 publish */
#define MQTT_MAX_INCOMING 32
#define MQTT_STORE_SLOT_SIZE 2048u
#define MQTT_STORE_SIZE (2u * MQTT_STORE_SLOT_SIZE)

enum mqtt_out_state {
    MQTT_OUT_AWAIT_PUBACK = 1, /* QoS 1, PUBLISH sent */
    MQTT_OUT_AWAIT_PUBREC = 2, /* QoS 2, PUBLISH sent */
    MQTT_OUT_AWAIT_PUBCOMP = 3 /* QoS 2, PUBREC received, PUBREL sent */
};

typedef struct {
    uint16_t pid;
    uint8_t qos, state;
    bool retain;
    uint16_t topic_len, payload_len;
    uint8_t props_len; /* 5.0 PUBLISH properties, kept for the resend */
    uint8_t data[MQTT_INFLIGHT_DATA]; /* topic, payload, then properties */
} mqtt_outgoing;

/* Byte-addressed persistent area of MQTT_STORE_SIZE bytes. commit may be
 * NULL (for stores that write through, e.g. a file). */
typedef struct {
    void *ctx;
    bool (*read)(void *ctx, uint32_t off, uint8_t *buf, size_t len);
    bool (*write)(void *ctx, uint32_t off, const uint8_t *buf, size_t len);
    bool (*commit)(void *ctx);
} mqtt_store;

typedef struct {
    mqtt_outgoing out[MQTT_MAX_INFLIGHT];
    uint8_t n_out;
    uint16_t in[MQTT_MAX_INCOMING];
    uint8_t n_in;
    uint16_t last_pid;
    uint32_t seq;       /* of the newest record in the store */
    uint8_t slot;       /* where that record is */
    const mqtt_store *store;
} mqtt_session;

void mqtt_session_init(mqtt_session *s, const mqtt_store *store);
/* Loads the newest valid record; returns the number of entries restored
 * (outgoing + incoming), 0 when there was none or it was corrupt. */
int mqtt_session_load(mqtt_session *s);
/* Writes the current state. False if the store failed. */
bool mqtt_session_save(mqtt_session *s);
/* Empties the state (in RAM; call save to make it stick). */
void mqtt_session_clear(mqtt_session *s);

/* Next packet id not used by an outgoing inflight entry (never 0). */
uint16_t mqtt_session_next_pid(mqtt_session *s);
mqtt_outgoing *mqtt_session_find_out(mqtt_session *s, uint16_t pid);
/* Appends a new entry; NULL when the table is full or the message too big. */
mqtt_outgoing *mqtt_session_add_out(mqtt_session *s, uint16_t pid, uint8_t qos, bool retain,
                                    const uint8_t *topic, size_t topic_len,
                                    const uint8_t *payload, size_t payload_len);
/* The same with 5.0 PUBLISH properties (at most 255 bytes). */
mqtt_outgoing *mqtt_session_add_out_props(mqtt_session *s, uint16_t pid, uint8_t qos, bool retain,
                                          const uint8_t *topic, size_t topic_len,
                                          const uint8_t *payload, size_t payload_len,
                                          const uint8_t *props, size_t props_len);
void mqtt_session_remove_out(mqtt_session *s, uint16_t pid);

bool mqtt_session_in_has(const mqtt_session *s, uint16_t pid);
bool mqtt_session_in_add(mqtt_session *s, uint16_t pid); /* false when full */
bool mqtt_session_in_remove(mqtt_session *s, uint16_t pid); /* false if absent */

#ifdef __cplusplus
}
#endif
#endif
