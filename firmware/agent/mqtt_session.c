#include "mqtt_session.h"

#include <string.h>

/* Record layout, little-endian:
 *   header (16 B): magic "MQHS", version u8, 0 u8, body_len u16, seq u32,
 *                  checksum u32 (FNV-1a over the seq bytes and the body)
 *   body: last_pid u16, n_out u8, n_in u8,
 *         n_out x { pid u16, qos u8, state u8, retain u8, props_len u8,
 *                   topic_len u16, payload_len u16, data },
 * props_len (5.0 PUBLISH properties after the payload) was a zero byte in
 * records written before 5.0, so they load unchanged.
 *         n_in x pid u16 */
#define REC_VERSION 1
#define HDR_SIZE 16
#define OUT_HDR 10

static const uint8_t magic[4] = { 'M', 'Q', 'H', 'S' };

static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n)
{
    while (n--) {
        h ^= *p++;
        h *= 16777619u;
    }
    return h;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)v);
    put16(p + 2, (uint16_t)(v >> 16));
}

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return get16(p) | (uint32_t)get16(p + 2) << 16; }

void mqtt_session_init(mqtt_session *s, const mqtt_store *store)
{
    memset(s, 0, sizeof *s);
    s->store = store;
}

void mqtt_session_clear(mqtt_session *s)
{
    s->n_out = 0;
    s->n_in = 0;
}

/* ---- save ------------------------------------------------------------ */

typedef struct {
    const mqtt_store *st;
    uint32_t off, h;
    bool ok;
} sink;

static void emit(sink *k, const uint8_t *p, size_t n)
{
    if (!k->ok || n == 0)
        return;
    k->h = fnv(k->h, p, n);
    k->ok = k->st->write(k->st->ctx, k->off, p, n);
    k->off += (uint32_t)n;
}

bool mqtt_session_save(mqtt_session *s)
{
    const mqtt_store *st = s->store;
    if (!st)
        return true;
    uint8_t slot = s->seq ? (uint8_t)(s->slot ^ 1) : 0;
    uint32_t seq = s->seq + 1;
    uint32_t base = slot * MQTT_STORE_SLOT_SIZE;
    uint8_t b[HDR_SIZE];

    sink k = { st, base + HDR_SIZE, 2166136261u, true };
    put32(b, seq);
    k.h = fnv(k.h, b, 4);
    put16(b, s->last_pid);
    b[2] = s->n_out;
    b[3] = s->n_in;
    emit(&k, b, 4);
    for (size_t i = 0; i < s->n_out; i++) {
        const mqtt_outgoing *o = &s->out[i];
        put16(b, o->pid);
        b[2] = o->qos;
        b[3] = o->state;
        b[4] = o->retain;
        b[5] = o->props_len;
        put16(b + 6, o->topic_len);
        put16(b + 8, o->payload_len);
        emit(&k, b, OUT_HDR);
        emit(&k, o->data, (size_t)o->topic_len + o->payload_len + o->props_len);
    }
    for (size_t i = 0; i < s->n_in; i++) {
        put16(b, s->in[i]);
        emit(&k, b, 2);
    }
    if (!k.ok)
        return false;

    memcpy(b, magic, 4);
    b[4] = REC_VERSION;
    b[5] = 0;
    put16(b + 6, (uint16_t)(k.off - base - HDR_SIZE));
    put32(b + 8, seq);
    put32(b + 12, k.h);
    if (!st->write(st->ctx, base, b, HDR_SIZE))
        return false;
    if (st->commit && !st->commit(st->ctx))
        return false;
    s->seq = seq;
    s->slot = slot;
    return true;
}

/* ---- load ------------------------------------------------------------ */

/* Checks one slot's header and checksum; returns its seq, 0 if invalid. */
static uint32_t slot_valid(const mqtt_store *st, uint8_t slot, uint16_t *body_len)
{
    uint32_t base = slot * MQTT_STORE_SLOT_SIZE;
    uint8_t h[HDR_SIZE], chunk[64];
    if (!st->read(st->ctx, base, h, HDR_SIZE) || memcmp(h, magic, 4) != 0 ||
        h[4] != REC_VERSION)
        return 0;
    uint16_t len = get16(h + 6);
    uint32_t seq = get32(h + 8);
    if (seq == 0 || len < 4 || len > MQTT_STORE_SLOT_SIZE - HDR_SIZE)
        return 0;
    uint32_t sum = fnv(2166136261u, h + 8, 4);
    for (uint32_t off = 0; off < len;) {
        size_t n = len - off < sizeof chunk ? len - off : sizeof chunk;
        if (!st->read(st->ctx, base + HDR_SIZE + off, chunk, n))
            return 0;
        sum = fnv(sum, chunk, n);
        off += (uint32_t)n;
    }
    if (sum != get32(h + 12))
        return 0;
    *body_len = len;
    return seq;
}

/* Parses a checksummed body; still validates every field, since a record
 * from a different build could pass the checksum yet not fit this one. */
static bool parse(mqtt_session *s, uint32_t base, uint16_t len)
{
    const mqtt_store *st = s->store;
    uint8_t b[OUT_HDR];
    uint32_t off = base + HDR_SIZE, end = off + len;
    if (!st->read(st->ctx, off, b, 4))
        return false;
    off += 4;
    s->last_pid = get16(b);
    s->n_out = b[2];
    s->n_in = b[3];
    if (s->n_out > MQTT_MAX_INFLIGHT || s->n_in > MQTT_MAX_INCOMING)
        return false;
    for (size_t i = 0; i < s->n_out; i++) {
        mqtt_outgoing *o = &s->out[i];
        if (end - off < OUT_HDR || !st->read(st->ctx, off, b, OUT_HDR))
            return false;
        off += OUT_HDR;
        o->pid = get16(b);
        o->qos = b[2];
        o->state = b[3];
        o->retain = b[4] != 0;
        o->topic_len = get16(b + 6);
        o->payload_len = get16(b + 8);
        o->props_len = b[5];
        size_t n = (size_t)o->topic_len + o->payload_len + o->props_len;
        bool state_ok = o->qos == 1 ? o->state == MQTT_OUT_AWAIT_PUBACK
                      : o->qos == 2 ? (o->state == MQTT_OUT_AWAIT_PUBREC ||
                                       o->state == MQTT_OUT_AWAIT_PUBCOMP)
                                    : false;
        if (!o->pid || !state_ok || o->topic_len == 0 || n > MQTT_INFLIGHT_DATA ||
            end - off < n || !st->read(st->ctx, off, o->data, n))
            return false;
        off += (uint32_t)n;
    }
    for (size_t i = 0; i < s->n_in; i++) {
        if (end - off < 2 || !st->read(st->ctx, off, b, 2))
            return false;
        off += 2;
        s->in[i] = get16(b);
        if (!s->in[i])
            return false;
    }
    return off == end;
}

int mqtt_session_load(mqtt_session *s)
{
    const mqtt_store *st = s->store;
    mqtt_session_clear(s);
    s->seq = 0;
    if (!st)
        return 0;
    uint16_t len[2] = { 0, 0 };
    uint32_t seq[2] = { slot_valid(st, 0, &len[0]), slot_valid(st, 1, &len[1]) };
    /* Newest first; fall back to the other slot if the newest will not parse. */
    uint8_t order[2] = { 0, 1 };
    if (seq[1] > seq[0]) {
        order[0] = 1;
        order[1] = 0;
    }
    for (int k = 0; k < 2; k++) {
        uint8_t slot = order[k];
        if (!seq[slot])
            continue;
        if (parse(s, slot * MQTT_STORE_SLOT_SIZE, len[slot])) {
            s->seq = seq[slot];
            s->slot = slot;
            return s->n_out + s->n_in;
        }
        mqtt_session_clear(s);
    }
    /* Keep the sequence moving past anything in the store. */
    s->seq = seq[0] > seq[1] ? seq[0] : seq[1];
    s->slot = seq[1] > seq[0];
    return 0;
}

/* ---- tables ---------------------------------------------------------- */

mqtt_outgoing *mqtt_session_find_out(mqtt_session *s, uint16_t pid)
{
    for (size_t i = 0; i < s->n_out; i++)
        if (s->out[i].pid == pid)
            return &s->out[i];
    return NULL;
}

uint16_t mqtt_session_next_pid(mqtt_session *s)
{
    do {
        s->last_pid = (uint16_t)(s->last_pid + 1);
    } while (s->last_pid == 0 || mqtt_session_find_out(s, s->last_pid));
    return s->last_pid;
}

mqtt_outgoing *mqtt_session_add_out(mqtt_session *s, uint16_t pid, uint8_t qos, bool retain,
                                    const uint8_t *topic, size_t topic_len,
                                    const uint8_t *payload, size_t payload_len)
{
    return mqtt_session_add_out_props(s, pid, qos, retain, topic, topic_len, payload,
                                      payload_len, NULL, 0);
}

mqtt_outgoing *mqtt_session_add_out_props(mqtt_session *s, uint16_t pid, uint8_t qos, bool retain,
                                          const uint8_t *topic, size_t topic_len,
                                          const uint8_t *payload, size_t payload_len,
                                          const uint8_t *props, size_t props_len)
{
    if (s->n_out >= MQTT_MAX_INFLIGHT || topic_len > MQTT_INFLIGHT_DATA ||
        payload_len > MQTT_INFLIGHT_DATA - topic_len || props_len > 255 ||
        props_len > MQTT_INFLIGHT_DATA - topic_len - payload_len)
        return NULL;
    mqtt_outgoing *o = &s->out[s->n_out++];
    o->pid = pid;
    o->qos = qos;
    o->state = qos == 1 ? MQTT_OUT_AWAIT_PUBACK : MQTT_OUT_AWAIT_PUBREC;
    o->retain = retain;
    o->topic_len = (uint16_t)topic_len;
    o->payload_len = (uint16_t)payload_len;
    memcpy(o->data, topic, topic_len);
    if (payload_len)
        memcpy(o->data + topic_len, payload, payload_len);
    o->props_len = (uint8_t)props_len;
    if (props_len)
        memcpy(o->data + topic_len + payload_len, props, props_len);
    return o;
}

void mqtt_session_remove_out(mqtt_session *s, uint16_t pid)
{
    for (size_t i = 0; i < s->n_out; i++) {
        if (s->out[i].pid == pid) {
            /* Shift, not swap: resend order must stay the send order. */
            memmove(&s->out[i], &s->out[i + 1], (s->n_out - i - 1) * sizeof s->out[0]);
            s->n_out--;
            return;
        }
    }
}

bool mqtt_session_in_has(const mqtt_session *s, uint16_t pid)
{
    for (size_t i = 0; i < s->n_in; i++)
        if (s->in[i] == pid)
            return true;
    return false;
}

bool mqtt_session_in_add(mqtt_session *s, uint16_t pid)
{
    if (mqtt_session_in_has(s, pid))
        return true;
    if (s->n_in >= MQTT_MAX_INCOMING)
        return false;
    s->in[s->n_in++] = pid;
    return true;
}

bool mqtt_session_in_remove(mqtt_session *s, uint16_t pid)
{
    for (size_t i = 0; i < s->n_in; i++) {
        if (s->in[i] == pid) {
            s->in[i] = s->in[--s->n_in];
            return true;
        }
    }
    return false;
}
