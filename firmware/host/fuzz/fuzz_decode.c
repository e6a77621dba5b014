/* libFuzzer target: the packet decoder, the streaming decoder and the client
 * state machine fed arbitrary broker bytes.
 * Every input is decoded as MQTT 3.1.1 and as 5.0.
 * Oracles: no sanitizer report; whatever decodes re-encodes to a packet that
 * decodes to the same encoding; the streaming decoder agrees with the
 * one-shot decoder on the first packet. */
#include <stdlib.h>
#include <string.h>

#include "mqtt_client.h"

static void check_round_trip(const mqtt_packet *p)
{
    static uint8_t a[MQTT_RX_MAX + 16], b[MQTT_RX_MAX + 16];
    mqtt_filter fl[64];
    mqtt_packet cp = *p, again;
    if (p->type == MQTT_SUBSCRIBE || p->type == MQTT_UNSUBSCRIBE) {
        size_t pos = 0, k = 0;
        while (k < 64 && mqtt_filter_next(p, &pos, &fl[k]))
            k++;
        if (k != p->count)
            return; /* more filters than this check keeps */
        cp.filters = fl;
    }
    size_t n = mqtt_encode(a, sizeof a, &cp);
    if (!n)
        abort();
    if (mqtt_decode_v(a, n, p->version, &again) != MQTT_OK)
        abort();
    if (again.type == MQTT_SUBSCRIBE || again.type == MQTT_UNSUBSCRIBE)
        again.filters = fl;
    size_t m = mqtt_encode(b, sizeof b, &again);
    if (m != n || memcmp(a, b, n) != 0)
        abort();
}

static uint8_t sink_buf[65536];
static void c_open(void *c) { (void)c; }
static void c_close(void *c) { (void)c; }
static bool c_send(void *c, const uint8_t *d, size_t n)
{
    (void)c;
    if (n > sizeof sink_buf)
        return false;
    memcpy(sink_buf, d, n);
    return true;
}
static void c_event(void *c, const mqtt_event *e) { (void)c; (void)e; }

static uint8_t store_mem[MQTT_STORE_SIZE];
static bool s_read(void *c, uint32_t off, uint8_t *b, size_t n)
{
    (void)c;
    if (off > sizeof store_mem || n > sizeof store_mem - off)
        abort(); /* the session must stay inside its area */
    memcpy(b, store_mem + off, n);
    return true;
}
static bool s_write(void *c, uint32_t off, const uint8_t *b, size_t n)
{
    (void)c;
    if (off > sizeof store_mem || n > sizeof store_mem - off)
        abort();
    memcpy(store_mem + off, b, n);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so reading one byte too far is caught. */
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    mqtt_packet p;
    if (mqtt_decode(copy, size, &p) == MQTT_OK)
        check_round_trip(&p);
    if (mqtt_decode_v(copy, size, MQTT_V5, &p) == MQTT_OK)
        check_round_trip(&p);
    /* The streaming decoder speaks one version or the other. */
    uint8_t version = (size & 2) ? MQTT_V5 : MQTT_V311;

    size_t total;
    mqtt_err fr = mqtt_frame(copy, size, MQTT_RX_MAX, &total);
    static uint8_t dbuf[MQTT_RX_MAX];
    mqtt_decoder d;
    mqtt_decoder_init(&d, dbuf, sizeof dbuf);
    d.version = version;
    size_t chunk = size ? (size_t)(data[0] % 7) + 1 : 1, off = 0;
    bool first = true;
    while (off < size) {
        size_t k = size - off < chunk ? size - off : chunk;
        off += mqtt_decoder_feed(&d, copy + off, k);
        mqtt_err e;
        while ((e = mqtt_decoder_next(&d, &p)) == MQTT_OK) {
            if (first && fr == MQTT_OK && mqtt_decode_v(copy, total, version, &p) != MQTT_OK)
                abort();
            first = false;
        }
        if (e != MQTT_INCOMPLETE) {
            /* The stream is unusable after an error; the one-shot framer
             * must not have accepted this first packet whole. */
            if (first && fr == MQTT_OK && total <= size &&
                mqtt_decode_v(copy, total, version, &p) == MQTT_OK)
                abort();
            break;
        }
    }

    /* The client, connected, eating the same bytes as broker traffic. */
    static mqtt_client c;
    mqtt_store st = { NULL, s_read, s_write, NULL };
    mqtt_client_cb cb = { NULL, c_open, c_close, c_send, c_event };
    memset(store_mem, 0xFF, sizeof store_mem);
    mqtt_client_init(&c, &cb, &st);
    mqtt_connect_opts o;
    memset(&o, 0, sizeof o);
    o.client_id.data = (const uint8_t *)"f";
    o.client_id.len = 1;
    o.keepalive = 1;
    o.reconnect = size & 1;
    o.backoff_ms = o.backoff_max_ms = 10;
    /* 5.0 with two topic aliases and a receive maximum of 1, or 3.1.1. */
    static const uint8_t alias_max[] = { 0x22, 0x00, 0x02 };
    if (version == MQTT_V5) {
        o.version = MQTT_V5;
        o.props.data = alias_max;
        o.props.len = sizeof alias_max;
    }
    mqtt_client_connect(&c, &o, 0);
    mqtt_client_on_open(&c, 0);
    static const uint8_t connack[] = { 0x20, 2, 0, 0 };
    static const uint8_t connack5[] = { 0x20, 6, 0, 0, 3, 0x21, 0x00, 0x01 };
    if (version == MQTT_V5)
        mqtt_client_on_bytes(&c, connack5, sizeof connack5, 0);
    else
        mqtt_client_on_bytes(&c, connack, sizeof connack, 0);
    uint16_t pid;
    mqtt_client_publish(&c, (const uint8_t *)"t", 1, (const uint8_t *)"x", 1, 2, false, &pid, 0);
    mqtt_client_publish(&c, (const uint8_t *)"u", 1, (const uint8_t *)"y", 1, 1, false, &pid, 0);
    mqtt_client_on_bytes(&c, copy, size, 1);
    mqtt_client_tick(&c, 5000);
    /* Whatever was persisted must load back. */
    mqtt_client_init(&c, &cb, &st);
    free(copy);
    return 0;
}
