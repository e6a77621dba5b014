#include "fake.h"

#include <stdio.h>
#include <string.h>

static bool st_read(void *ctx, uint32_t off, uint8_t *buf, size_t len)
{
    fake_store *s = ctx;
    if (s->fail || off > MQTT_STORE_SIZE || len > MQTT_STORE_SIZE - off)
        return false;
    memcpy(buf, s->mem + off, len);
    return true;
}

static bool st_write(void *ctx, uint32_t off, const uint8_t *buf, size_t len)
{
    fake_store *s = ctx;
    if (s->fail || off > MQTT_STORE_SIZE || len > MQTT_STORE_SIZE - off)
        return false;
    memcpy(s->mem + off, buf, len);
    s->writes++;
    return true;
}

void fake_store_init(fake_store *s)
{
    memset(s, 0, sizeof *s);
    memset(s->mem, 0xFF, sizeof s->mem); /* erased flash */
}

static void cb_open(void *ctx) { ((fake *)ctx)->opens++; }
static void cb_close(void *ctx) { ((fake *)ctx)->closes++; }

static bool cb_send(void *ctx, const uint8_t *d, size_t n)
{
    fake *f = ctx;
    if (sizeof f->sent - f->sent_len < n)
        return false;
    memcpy(f->sent + f->sent_len, d, n);
    f->sent_len += n;
    return true;
}

static void log_line(fake *f, const char *s)
{
    size_t n = strlen(s);
    if (sizeof f->events - f->events_len > n + 1) {
        memcpy(f->events + f->events_len, s, n);
        f->events_len += n;
        f->events[f->events_len++] = '\n';
        f->events[f->events_len] = '\0';
    }
}

static void cb_event(void *ctx, const mqtt_event *ev)
{
    fake *f = ctx;
    char line[600];
    const mqtt_packet *p = ev->packet;
    switch (ev->type) {
    case MQTT_EV_CONNECTED: snprintf(line, sizeof line, "connected sp=%d", ev->sp); break;
    case MQTT_EV_REFUSED: snprintf(line, sizeof line, "refused rc=%d", ev->rc); break;
    case MQTT_EV_SUBACK: snprintf(line, sizeof line, "suback pid=%d", ev->pid); break;
    case MQTT_EV_UNSUBACK: snprintf(line, sizeof line, "unsuback pid=%d", ev->pid); break;
    case MQTT_EV_PUBACK: snprintf(line, sizeof line, "puback pid=%d", ev->pid); break;
    case MQTT_EV_PUBREC: snprintf(line, sizeof line, "pubrec pid=%d", ev->pid); break;
    case MQTT_EV_PUBCOMP: snprintf(line, sizeof line, "pubcomp pid=%d", ev->pid); break;
    case MQTT_EV_MESSAGE:
        snprintf(line, sizeof line, "msg %.*s q%d d%d r%d pid=%d %.*s", (int)p->topic.len,
                 (const char *)p->topic.data, p->qos, p->dup, p->retain, p->pid,
                 (int)p->payload.len, (const char *)p->payload.data);
        break;
    case MQTT_EV_DISCONNECTED: snprintf(line, sizeof line, "disconnected %s", ev->reason); break;
    case MQTT_EV_LOG: snprintf(line, sizeof line, "log %s", ev->reason); break;
    }
    /* 5.0 reason codes, only when not success, so 3.1.1 lines stay as they were. */
    if (ev->rc && ev->type != MQTT_EV_REFUSED && ev->type != MQTT_EV_LOG) {
        size_t n = strlen(line);
        snprintf(line + n, sizeof line - n, " rc=%d", ev->rc);
    }
    log_line(f, line);
}

void fake_init(fake *f, fake_store *store)
{
    memset(f, 0, sizeof *f);
    f->store = store;
    f->store_if.ctx = store;
    f->store_if.read = st_read;
    f->store_if.write = st_write;
    f->now = 1000;
    mqtt_client_cb cb = { f, cb_open, cb_close, cb_send, cb_event };
    mqtt_client_init(&f->c, &cb, &f->store_if);
}

void fake_feed_raw(fake *f, const uint8_t *d, size_t n) { mqtt_client_on_bytes(&f->c, d, n, f->now); }

void fake_feed(fake *f, const mqtt_packet *p)
{
    uint8_t buf[2048];
    size_t n = mqtt_encode(buf, sizeof buf, p);
    fake_feed_raw(f, buf, n);
}

uint8_t fake_version(const fake *f)
{
    return f->c.opts.version == MQTT_V5 ? MQTT_V5 : MQTT_V311;
}

void fake_connack(fake *f, bool sp, uint8_t rc)
{
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.version = fake_version(f);
    p.type = MQTT_CONNACK;
    p.session_present = sp;
    p.rc = rc;
    fake_feed(f, &p);
}

void fake_ack(fake *f, uint8_t type, uint16_t pid)
{
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = type;
    p.pid = pid;
    p.version = fake_version(f);
    fake_feed(f, &p);
}

void fake_publish(fake *f, const char *topic, const char *payload, uint8_t qos, bool dup,
                  uint16_t pid)
{
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.version = fake_version(f);
    p.topic.data = (const uint8_t *)topic;
    p.topic.len = strlen(topic);
    p.payload.data = (const uint8_t *)payload;
    p.payload.len = strlen(payload);
    p.qos = qos;
    p.dup = dup;
    p.pid = pid;
    fake_feed(f, &p);
}

bool fake_next_sent(fake *f, mqtt_packet *p)
{
    size_t total;
    const uint8_t *b = f->sent + f->sent_read;
    size_t left = f->sent_len - f->sent_read;
    if (mqtt_frame(b, left, left, &total) != MQTT_OK)
        return false;
    if (mqtt_decode_v(b, total, fake_version(f), p) != MQTT_OK)
        return false;
    f->sent_read += total;
    return true;
}

void fake_clear_sent(fake *f) { f->sent_read = f->sent_len; }

int fake_count(const fake *f, const char *needle)
{
    int n = 0;
    for (const char *s = f->events; (s = strstr(s, needle)) != NULL; s++)
        n++;
    return n;
}

void fake_clear_events(fake *f)
{
    f->events_len = 0;
    f->events[0] = '\0';
}

mqtt_connect_opts fake_opts(const char *id, bool clean)
{
    mqtt_connect_opts o;
    memset(&o, 0, sizeof o);
    o.client_id.data = (const uint8_t *)id;
    o.client_id.len = strlen(id);
    o.clean = clean;
    o.keepalive = 10;
    o.backoff_ms = 1000;
    o.backoff_max_ms = 8000;
    return o;
}

void fake_connect_up(fake *f, const mqtt_connect_opts *o, bool sp)
{
    mqtt_client_connect(&f->c, o, f->now);
    mqtt_client_on_open(&f->c, f->now);
    fake_connack(f, sp, 0);
}
