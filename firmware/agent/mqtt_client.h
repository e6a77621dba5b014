/* MQTT 3.1.1 and 5.0 client state machine, sans-IO.
 *
 * 5.0 (opts.version = MQTT_V5): CONNECT and will properties are the
 * caller's (raw, checked); from CONNACK the client keeps the broker's receive
 * maximum (never more unacknowledged QoS 1/2 PUBLISH than that, also when
 * resending after a reconnect), maximum packet size (nothing larger is sent),
 * server keep alive and assigned client identifier; it resolves incoming topic
 * aliases up to the maximum it announced; acks, SUBACK/UNSUBACK and a
 * broker's DISCONNECT report their reason codes. A PUBLISH given a Topic
 * Alias (within the broker's Topic Alias Maximum) sets the alias on its first
 * send on a connection and goes by alias only after that; QoS 1/2 messages
 * are kept without the alias, so a resend after a reconnect carries the whole
 * topic and needs no mapping from the old connection (3.3.2-7).
 *
 * The owner feeds it events (connection opened/closed, bytes received, the
 * time, application commands); it answers through callbacks: open/close the
 * TCP connection, send bytes, report application events. Time is a free
 * running millisecond counter that may wrap.
 *
 * QoS 2 receive uses method B of the spec (4.3.3, figure 4.3): the message is
 * delivered when its PUBLISH first arrives and its packet id is remembered
 * (persisted) until PUBREL; a PUBLISH with a remembered id is acknowledged
 * with PUBREC but not delivered again. The id is persisted before delivery,
 * so a reset between the two loses at most that one delivery instead of
 * duplicating it. */
#ifndef MQTT_CLIENT_H
#define MQTT_CLIENT_H

#include "mqtt_codec.h"
#include "mqtt_session.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MQTT_RX_MAX 1536  /* largest packet accepted from the broker */
#define MQTT_TX_MAX 1280  /* largest packet we build */
#define MQTT_ID_MAX 64
#define MQTT_USER_MAX 64
#define MQTT_PASS_MAX 64
#define MQTT_WILL_TOPIC_MAX 128
#define MQTT_WILL_PAYLOAD_MAX 256
#define MQTT_TCP_TIMEOUT_MS 10000u
#define MQTT_PROPS_MAX 128      /* 5.0 CONNECT properties, and will properties */
#define MQTT_ALIAS_MAX 4        /* incoming topic aliases we can remember */
#define MQTT_ALIAS_TOPIC_MAX 64 /* longest topic an incoming alias can stand for */

typedef enum {
    MQTT_ST_IDLE,    /* no connection, none wanted */
    MQTT_ST_TCP,     /* TCP connection being opened */
    MQTT_ST_CONNACK, /* CONNECT sent, waiting for CONNACK */
    MQTT_ST_UP,      /* connected */
    MQTT_ST_BACKOFF, /* lost, waiting to reconnect */
} mqtt_state;

typedef enum {
    MQTT_C_OK = 0,
    MQTT_C_NOT_CONNECTED,
    MQTT_C_ALREADY_CONNECTED,
    MQTT_C_INFLIGHT_FULL,
    MQTT_C_TOO_BIG,
    MQTT_C_BAD_TOPIC,
    MQTT_C_BAD_ARG,
    MQTT_C_STORE_FAILED,
    MQTT_C_SEND_FAILED,
} mqtt_result;

const char *mqtt_result_str(mqtt_result r);
const char *mqtt_state_str(mqtt_state s);

typedef struct {
    mqtt_slice client_id, user, pass, will_topic, will_payload;
    bool has_user, has_pass, has_will, will_retain, clean;
    uint8_t will_qos;
    uint16_t keepalive; /* seconds, 0 = off */
    bool reconnect;
    uint32_t backoff_ms, backoff_max_ms;
    uint8_t version;              /* MQTT_V311 (or 0) or MQTT_V5 */
    mqtt_slice props, will_props; /* 5.0 only */
} mqtt_connect_opts;

typedef enum {
    MQTT_EV_CONNECTED,    /* sp, packet (the CONNACK, for its 5.0 properties) */
    MQTT_EV_REFUSED,      /* rc: CONNACK with a non-zero return/reason code */
    MQTT_EV_SUBACK,       /* pid, packet (list = granted codes) */
    MQTT_EV_UNSUBACK,     /* pid, packet (5.0: list = reason codes) */
    MQTT_EV_PUBACK,       /* pid, rc (5.0 reason code, else 0) */
    MQTT_EV_PUBREC,       /* pid, rc */
    MQTT_EV_PUBCOMP,      /* pid, rc */
    MQTT_EV_MESSAGE,      /* packet (a PUBLISH; an aliased topic resolved) */
    MQTT_EV_DISCONNECTED, /* reason; rc = a 5.0 broker DISCONNECT's reason code */
    MQTT_EV_LOG,          /* reason = free text */
} mqtt_event_type;

typedef struct {
    mqtt_event_type type;
    uint16_t pid;
    bool sp;
    uint8_t rc;
    const mqtt_packet *packet;
    const char *reason;
} mqtt_event;

typedef struct {
    void *ctx;
    /* Start opening the TCP connection; report the outcome later with
     * mqtt_client_on_open or mqtt_client_on_closed. */
    void (*open)(void *ctx);
    void (*close)(void *ctx);
    /* Queue bytes for the connection; all or nothing. */
    bool (*send)(void *ctx, const uint8_t *data, size_t len);
    void (*event)(void *ctx, const mqtt_event *ev);
} mqtt_client_cb;

typedef struct {
    mqtt_client_cb cb;
    mqtt_session s;
    mqtt_state state;
    int restored;

    /* The connect options, copied: reconnects need them after the command
     * line that carried them is gone. */
    mqtt_connect_opts opts;
    uint8_t id_buf[MQTT_ID_MAX], user_buf[MQTT_USER_MAX], pass_buf[MQTT_PASS_MAX];
    uint8_t will_topic_buf[MQTT_WILL_TOPIC_MAX], will_payload_buf[MQTT_WILL_PAYLOAD_MAX];
    uint8_t props_buf[MQTT_PROPS_MAX], will_props_buf[MQTT_PROPS_MAX];

    /* 5.0, per connection: what the broker's CONNACK allows (defaults when
     * absent, 3.2.2.3), and our incoming topic alias map (3.3.2.3.4). */
    uint16_t keepalive;      /* effective: ours, or the server's keep alive */
    uint16_t peer_recv_max;
    uint32_t peer_max_packet;
    uint16_t alias_max;      /* what we announced */
    uint8_t out_sent;        /* leading inflight entries sent on this connection */
    uint8_t disc_rc;         /* reason code of the broker's DISCONNECT */
    uint8_t alias_len[MQTT_ALIAS_MAX];
    uint8_t alias_topic[MQTT_ALIAS_MAX][MQTT_ALIAS_TOPIC_MAX];
    /* Outgoing topic aliases: the broker's maximum and what we set. */
    uint16_t peer_alias_max;
    uint8_t out_alias_len[MQTT_ALIAS_MAX];
    uint8_t out_alias_topic[MQTT_ALIAS_MAX][MQTT_ALIAS_TOPIC_MAX];

    uint32_t state_since;  /* when the current state was entered */
    uint32_t backoff_at;   /* BACKOFF: when to reconnect */
    uint32_t backoff_cur;  /* the next backoff delay */
    uint32_t last_tx;
    uint32_t ping_at;
    bool ping_out;

    mqtt_decoder dec;
    uint8_t rx[MQTT_RX_MAX];
    uint8_t tx[MQTT_TX_MAX];
} mqtt_client;

/* Loads the persisted session; mqtt_client_restored tells how much. */
void mqtt_client_init(mqtt_client *c, const mqtt_client_cb *cb, const mqtt_store *store);
int mqtt_client_restored(const mqtt_client *c);

mqtt_result mqtt_client_connect(mqtt_client *c, const mqtt_connect_opts *o, uint32_t now);
void mqtt_client_on_open(mqtt_client *c, uint32_t now);
/* The connection closed, or (in MQTT_ST_TCP) could not be opened. */
void mqtt_client_on_closed(mqtt_client *c, uint32_t now);
void mqtt_client_on_bytes(mqtt_client *c, const uint8_t *data, size_t len, uint32_t now);
void mqtt_client_tick(mqtt_client *c, uint32_t now);

mqtt_result mqtt_client_publish(mqtt_client *c, const uint8_t *topic, size_t topic_len,
                                const uint8_t *payload, size_t payload_len, uint8_t qos,
                                bool retain, uint16_t *pid, uint32_t now);
/* 5.0: with PUBLISH properties (no subscription id; a topic alias at most
 * the broker's Topic Alias Maximum and MQTT_ALIAS_MAX, for a topic of at
 * most MQTT_ALIAS_TOPIC_MAX bytes). */
mqtt_result mqtt_client_publish_props(mqtt_client *c, const uint8_t *topic, size_t topic_len,
                                      const uint8_t *payload, size_t payload_len, uint8_t qos,
                                      bool retain, mqtt_slice props, uint16_t *pid, uint32_t now);
mqtt_result mqtt_client_subscribe(mqtt_client *c, const uint8_t *filter, size_t len,
                                  uint8_t qos, uint16_t *pid, uint32_t now);
/* 5.0: subscription options (MQTT_SUB_*) and SUBSCRIBE properties
 * (subscription identifier, user properties). */
mqtt_result mqtt_client_subscribe_opts(mqtt_client *c, const uint8_t *filter, size_t len,
                                       uint8_t qos, uint8_t options, mqtt_slice props,
                                       uint16_t *pid, uint32_t now);
mqtt_result mqtt_client_unsubscribe(mqtt_client *c, const uint8_t *filter, size_t len,
                                    uint16_t *pid, uint32_t now);
/* Sends DISCONNECT (if connected), closes, stops reconnecting. */
mqtt_result mqtt_client_disconnect(mqtt_client *c, uint32_t now);
/* The same with a 5.0 reason code (0x04: publish the will). */
mqtt_result mqtt_client_disconnect_rc(mqtt_client *c, uint8_t rc, uint32_t now);
/* The same with 5.0 DISCONNECT properties (checked; a Session Expiry
 * Interval other than 0 when the CONNECT's was 0 is refused, 3.14.2.2.2). */
mqtt_result mqtt_client_disconnect_props(mqtt_client *c, uint8_t rc, mqtt_slice props,
                                         uint32_t now);
/* Closes without DISCONNECT, as a network loss would; reconnects if set. */
mqtt_result mqtt_client_drop(mqtt_client *c, uint32_t now);
/* Wipes the session in RAM and in the store. */
mqtt_result mqtt_client_erase(mqtt_client *c);

#ifdef __cplusplus
}
#endif
#endif
