/* Test doubles for the client: a RAM store, a recorder of what the client
 * sends and reports, and a broker side that feeds it packets. */
#ifndef HOST_FAKE_H
#define HOST_FAKE_H

#include "mqtt_client.h"

typedef struct {
    uint8_t mem[MQTT_STORE_SIZE];
    int writes;
    bool fail;
} fake_store;

typedef struct {
    mqtt_client c;
    mqtt_store store_if;
    fake_store *store;
    uint8_t sent[16384];
    size_t sent_len, sent_read;
    int opens, closes;
    char events[8192]; /* one event per line, e.g. "msg a/b q2 d0 r0 pid=1 hi" */
    size_t events_len;
    uint32_t now;
} fake;

void fake_store_init(fake_store *s);
/* The version the client speaks, for what the broker side encodes/decodes. */
uint8_t fake_version(const fake *f);
/* Sets up a client over `store` (which persists across fake_init calls, as
 * flash persists across a reboot). */
void fake_init(fake *f, fake_store *store);

/* Broker side. */
void fake_feed(fake *f, const mqtt_packet *p);
void fake_feed_raw(fake *f, const uint8_t *d, size_t n);
void fake_connack(fake *f, bool sp, uint8_t rc);
void fake_ack(fake *f, uint8_t type, uint16_t pid);
void fake_publish(fake *f, const char *topic, const char *payload, uint8_t qos, bool dup,
                  uint16_t pid);

/* The next packet the client sent, decoded; false if none. */
bool fake_next_sent(fake *f, mqtt_packet *p);
/* Drops everything sent so far. */
void fake_clear_sent(fake *f);
/* How many times `needle` occurs in the event log. */
int fake_count(const fake *f, const char *needle);
void fake_clear_events(fake *f);

/* A connect with defaults that tests tweak. */
mqtt_connect_opts fake_opts(const char *id, bool clean);
/* Connects and completes the handshake (CONNACK with sp). */
void fake_connect_up(fake *f, const mqtt_connect_opts *o, bool sp);

#endif
