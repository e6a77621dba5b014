#include "mqtt_client.h"

#include <string.h>

#include "bugs.h"

const char *mqtt_result_str(mqtt_result r)
{
    switch (r) {
    case MQTT_C_OK: return "ok";
    case MQTT_C_NOT_CONNECTED: return "not_connected";
    case MQTT_C_ALREADY_CONNECTED: return "already_connected";
    case MQTT_C_INFLIGHT_FULL: return "inflight_full";
    case MQTT_C_TOO_BIG: return "too_big";
    case MQTT_C_BAD_TOPIC: return "bad_topic";
    case MQTT_C_BAD_ARG: return "bad_value";
    case MQTT_C_STORE_FAILED: return "store_failed";
    case MQTT_C_SEND_FAILED: return "send_failed";
    }
    return "unknown";
}

const char *mqtt_state_str(mqtt_state s)
{
    switch (s) {
    case MQTT_ST_IDLE: return "idle";
    case MQTT_ST_TCP:
    case MQTT_ST_CONNACK: return "connecting";
    case MQTT_ST_UP: return "connected";
    case MQTT_ST_BACKOFF: return "backoff";
    }
    return "?";
}

/* True once `now` has reached `t`, across the counter's wrap. */
static bool reached(uint32_t now, uint32_t t) { return (int32_t)(now - t) >= 0; }

static void emit(mqtt_client *c, mqtt_event ev)
{
    if (c->cb.event)
        c->cb.event(c->cb.ctx, &ev);
}

static void log_msg(mqtt_client *c, const char *text)
{
    mqtt_event ev = { MQTT_EV_LOG, 0, false, 0, NULL, text };
    emit(c, ev);
}

static void enter(mqtt_client *c, mqtt_state st, uint32_t now)
{
    c->state = st;
    c->state_since = now;
}

static void persist(mqtt_client *c)
{
    if (!mqtt_session_save(&c->s))
        log_msg(c, "session store write failed");
}

void mqtt_client_init(mqtt_client *c, const mqtt_client_cb *cb, const mqtt_store *store)
{
    memset(c, 0, sizeof *c);
    c->cb = *cb;
    mqtt_session_init(&c->s, store);
    c->restored = mqtt_session_load(&c->s);
#if MQTT_HIL_BUG_FORGET_INFLIGHT_ON_REBOOT
    /* Seeded bug: the session is set up again after it was loaded. */
    mqtt_session_init(&c->s, store);
    c->restored = 0;
#endif
    mqtt_decoder_init(&c->dec, c->rx, sizeof c->rx);
    enter(c, MQTT_ST_IDLE, 0);
}

int mqtt_client_restored(const mqtt_client *c) { return c->restored; }

/* ---- output ------------------------------------------------------------ */

static void lose(mqtt_client *c, const char *reason, uint32_t now);

static bool v5(const mqtt_client *c) { return c->opts.version == MQTT_V5; }

static bool send_packet(mqtt_client *c, mqtt_packet *p, uint32_t now)
{
    p->version = v5(c) ? MQTT_V5 : MQTT_V311;
    size_t n = mqtt_encode(c->tx, sizeof c->tx, p);
    if (n > c->peer_max_packet) {
        /* 5.0 3.1.2-24: never above the broker's maximum packet size. */
        log_msg(c, "packet above the broker's maximum packet size not sent");
        return false;
    }
    if (n == 0 || !c->cb.send(c->cb.ctx, c->tx, n)) {
        lose(c, "tx_overflow", now);
        return false;
    }
    c->last_tx = now;
    return true;
}

static bool send_ack_rc(mqtt_client *c, uint8_t type, uint16_t pid, uint8_t rc, uint32_t now)
{
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = type;
    p.pid = pid;
    p.rc = v5(c) ? rc : 0;
    return send_packet(c, &p, now);
}

static bool send_ack(mqtt_client *c, uint8_t type, uint16_t pid, uint32_t now)
{
    return send_ack_rc(c, type, pid, 0, now);
}

static bool send_publish(mqtt_client *c, const mqtt_outgoing *o, bool dup, uint32_t now)
{
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.qos = o->qos;
    p.retain = o->retain;
    p.dup = dup;
    p.pid = o->pid;
    p.topic.data = o->data;
    p.topic.len = o->topic_len;
    p.payload.data = o->data + o->topic_len;
    p.payload.len = o->payload_len;
    p.props.data = o->data + o->topic_len + o->payload_len;
    p.props.len = o->props_len;
    return send_packet(c, &p, now);
}

static void send_connect(mqtt_client *c, uint32_t now)
{
    const mqtt_connect_opts *o = &c->opts;
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNECT;
    p.connect.clean = o->clean;
    p.connect.keepalive = o->keepalive;
    p.connect.client_id = o->client_id;
    p.connect.will = o->has_will;
    if (o->has_will) {
        p.connect.will_topic = o->will_topic;
        p.connect.will_payload = o->will_payload;
        p.connect.will_qos = o->will_qos;
        p.connect.will_retain = o->will_retain;
    }
    p.connect.has_user = o->has_user;
    p.connect.user = o->user;
    p.connect.has_pass = o->has_pass;
    p.connect.pass = o->pass;
    p.props = o->props;
    p.connect.will_props = o->will_props;
    if (send_packet(c, &p, now))
        enter(c, MQTT_ST_CONNACK, now);
}

/* ---- connection lifecycle ---------------------------------------------- */

static void start_open(mqtt_client *c, uint32_t now)
{
    enter(c, MQTT_ST_TCP, now);
    mqtt_decoder_reset(&c->dec);
    c->dec.version = v5(c) ? MQTT_V5 : MQTT_V311;
    c->ping_out = false;
    /* Per connection: the broker's limits until its CONNACK says otherwise
     * (none in 3.1.1), and no topic aliases (5.0 3.3.2-7). */
    c->keepalive = c->opts.keepalive;
    c->peer_recv_max = 65535;
    c->peer_max_packet = 0xFFFFFFFFu;
    c->out_sent = 0;
    c->disc_rc = 0;
    memset(c->alias_len, 0, sizeof c->alias_len);
    c->peer_alias_max = 0;
    memset(c->out_alias_len, 0, sizeof c->out_alias_len);
    c->cb.open(c->cb.ctx);
}

/* The connection is gone (or never came): tell the application, then
 * either wait to reconnect or stay down. */
static void lose(mqtt_client *c, const char *reason, uint32_t now)
{
    if (c->state == MQTT_ST_IDLE || c->state == MQTT_ST_BACKOFF)
        return;
    c->cb.close(c->cb.ctx);
    mqtt_decoder_reset(&c->dec);
    /* 3.1.2-6: a clean session lasts as long as its connection; keeping its
     * inflight entries would only fill the table, as nothing resends them. */
    if (c->opts.clean && (c->s.n_out || c->s.n_in)) {
        mqtt_session_clear(&c->s);
        persist(c);
    }
    if (reason) {
        mqtt_event ev = { MQTT_EV_DISCONNECTED, 0, false, c->disc_rc, NULL, reason };
        emit(c, ev);
    }
    c->disc_rc = 0;
    if (!c->opts.reconnect) {
        enter(c, MQTT_ST_IDLE, now);
        return;
    }
    enter(c, MQTT_ST_BACKOFF, now);
    c->backoff_at = now + c->backoff_cur;
    c->backoff_cur = c->backoff_cur > c->opts.backoff_max_ms / 2 ? c->opts.backoff_max_ms
                                                                 : c->backoff_cur * 2;
}

static bool copy_field(mqtt_slice *dst, uint8_t *buf, size_t cap, mqtt_slice src)
{
    if (src.len > cap)
        return false;
    if (src.len)
        memcpy(buf, src.data, src.len);
    dst->data = buf;
    dst->len = src.len;
    return true;
}

mqtt_result mqtt_client_connect(mqtt_client *c, const mqtt_connect_opts *o, uint32_t now)
{
    if (c->state != MQTT_ST_IDLE && c->state != MQTT_ST_BACKOFF)
        return MQTT_C_ALREADY_CONNECTED;
    if (o->has_will && (o->will_qos > 2 || !mqtt_topic_name_valid(o->will_topic.data,
                                                                  o->will_topic.len)))
        return MQTT_C_BAD_TOPIC;
    bool is5 = o->version == MQTT_V5;
    /* 3.1.1 3.1.2-22 needs a user name for a password; 5.0 does not. */
    if (!mqtt_utf8_valid(o->client_id.data, o->client_id.len) ||
        (o->has_user && !mqtt_utf8_valid(o->user.data, o->user.len)) ||
        (!is5 && o->has_pass && !o->has_user) || (o->reconnect && o->backoff_ms == 0) ||
        (o->version && o->version != MQTT_V311 && !is5))
        return MQTT_C_BAD_ARG;
    if (!is5 ? (o->props.len || o->will_props.len)
             : (mqtt_props_check(o->props, MQTT_CONNECT) != MQTT_OK ||
                mqtt_props_check(o->will_props, 0) != MQTT_OK))
        return MQTT_C_BAD_ARG;
    mqtt_prop amax;
    uint16_t alias_max = 0;
    if (is5 && mqtt_prop_find(o->props, MQTT_P_TOPIC_ALIAS_MAXIMUM, &amax)) {
        if (amax.num > MQTT_ALIAS_MAX)
            return MQTT_C_TOO_BIG; /* more aliases than there is room for */
        alias_max = (uint16_t)amax.num;
    }
    mqtt_connect_opts n = *o;
    mqtt_slice will_topic = o->will_topic;
#if MQTT_HIL_BUG_WRONG_WILL_TOPIC
    /* Seeded bug: an off-by-one when copying the will topic drops its last
     * character, as a strlcpy given the string's length instead of its size
     * would. */
    if (will_topic.len)
        will_topic.len--;
#endif
    if (!copy_field(&n.client_id, c->id_buf, sizeof c->id_buf, o->client_id) ||
        !copy_field(&n.user, c->user_buf, sizeof c->user_buf, o->user) ||
        !copy_field(&n.pass, c->pass_buf, sizeof c->pass_buf, o->pass) ||
        !copy_field(&n.will_topic, c->will_topic_buf, sizeof c->will_topic_buf, will_topic) ||
        !copy_field(&n.will_payload, c->will_payload_buf, sizeof c->will_payload_buf,
                    o->will_payload) ||
        !copy_field(&n.props, c->props_buf, sizeof c->props_buf, o->props) ||
        !copy_field(&n.will_props, c->will_props_buf, sizeof c->will_props_buf, o->will_props))
        return MQTT_C_TOO_BIG;
    c->opts = n;
    c->alias_max = alias_max;
    c->backoff_cur = n.backoff_ms;
    /* 3.1.2-6: a clean session starts from nothing, on our side too. */
    if (n.clean && (c->s.n_out || c->s.n_in)) {
        mqtt_session_clear(&c->s);
        persist(c);
    }
    start_open(c, now);
    return MQTT_C_OK;
}

void mqtt_client_on_open(mqtt_client *c, uint32_t now)
{
    if (c->state == MQTT_ST_TCP)
        send_connect(c, now);
}

void mqtt_client_on_closed(mqtt_client *c, uint32_t now)
{
    lose(c, c->state == MQTT_ST_TCP ? "connect_failed" : "peer_closed", now);
}

/* 4.4.0-1: on a resumed session, resend what is unacknowledged, in the order
 * it was first sent: PUBLISH with DUP=1, or PUBREL where PUBREC came. */
static void resend_one(mqtt_client *c, const mqtt_outgoing *o, uint32_t now);

/* How many unacknowledged QoS 1/2 PUBLISH the broker takes (5.0 4.9). */
static uint16_t recv_max(const mqtt_client *c)
{
#if MQTT_HIL_BUG_IGNORE_RECEIVE_MAXIMUM
    /* Seeded bug: the CONNACK's receive maximum is kept but never applied. */
    (void)c;
    return 65535;
#else
    return c->peer_recv_max;
#endif
}

/* Inflight entries not yet sent on this connection go out as the broker's
 * receive maximum allows (5.0 4.9: unacknowledged QoS 1/2 PUBLISH, and a
 * PUBREL's message still counts until PUBCOMP). */
static void send_backlog(mqtt_client *c, uint32_t now)
{
    while (c->state == MQTT_ST_UP && c->out_sent < c->s.n_out && c->out_sent < recv_max(c)) {
        const mqtt_outgoing *o = &c->s.out[c->out_sent++];
        resend_one(c, o, now);
    }
}

/* After an entry left the table: one fewer counts against the maximum. */
static void out_removed(mqtt_client *c, uint32_t now)
{
    if (c->out_sent)
        c->out_sent--;
    send_backlog(c, now);
}

static void resend_inflight(mqtt_client *c, uint32_t now)
{
    c->out_sent = 0;
    send_backlog(c, now);
}

/* 4.4.0-1: PUBLISH with DUP=1, or PUBREL where PUBREC came. */
static void resend_one(mqtt_client *c, const mqtt_outgoing *o, uint32_t now)
{
    if (o->state == MQTT_OUT_AWAIT_PUBCOMP) {
#if !MQTT_HIL_BUG_NO_PUBREL_RESEND
        send_ack(c, MQTT_PUBREL, o->pid, now);
#endif
        /* Seeded bug no_pubrel_resend: the PUBREL is forgotten and the
         * message stays inflight until the broker gives up. */
    } else {
#if MQTT_HIL_BUG_NO_DUP_FLAG
        /* Seeded bug: the resend reuses the first-send call as is. */
        send_publish(c, o, false, now);
#else
        send_publish(c, o, true, now);
#endif
    }
}

/* ---- incoming packets -------------------------------------------------- */

/* 5.0 3.2.2.3: the broker's limits and assignments for this connection. */
static void take_connack_props(mqtt_client *c, const mqtt_packet *p)
{
    mqtt_prop pr;
    if (mqtt_prop_find(p->props, MQTT_P_RECEIVE_MAXIMUM, &pr))
        c->peer_recv_max = (uint16_t)pr.num;
    if (mqtt_prop_find(p->props, MQTT_P_MAXIMUM_PACKET_SIZE, &pr))
        c->peer_max_packet = pr.num;
    if (mqtt_prop_find(p->props, MQTT_P_SERVER_KEEP_ALIVE, &pr))
        c->keepalive = (uint16_t)pr.num; /* 3.2.2-21: the server's value wins */
    if (mqtt_prop_find(p->props, MQTT_P_TOPIC_ALIAS_MAXIMUM, &pr))
        c->peer_alias_max = (uint16_t)pr.num; /* absent: 0, no aliases (3.2.2-18) */
    /* 3.2.2.3.7: reconnects resume the session under the assigned id. */
    if (mqtt_prop_find(p->props, MQTT_P_ASSIGNED_CLIENT_ID, &pr) && c->opts.client_id.len == 0 &&
        pr.str.len <= sizeof c->id_buf) {
        memcpy(c->id_buf, pr.str.data, pr.str.len);
        c->opts.client_id.data = c->id_buf;
        c->opts.client_id.len = pr.str.len;
    }
}

static void on_connack(mqtt_client *c, const mqtt_packet *p, uint32_t now)
{
    if (v5(c))
        take_connack_props(c, p);
    if (p->rc != 0) {
        mqtt_event ev = { MQTT_EV_REFUSED, 0, false, p->rc, NULL, NULL };
        emit(c, ev);
        lose(c, NULL, now);
        return;
    }
    enter(c, MQTT_ST_UP, now);
    c->backoff_cur = c->opts.backoff_ms;
    c->ping_out = false;
    mqtt_event ev = { MQTT_EV_CONNECTED, 0, p->session_present, 0, p, NULL };
    emit(c, ev);
    if (!c->opts.clean)
        resend_inflight(c, now);
}

/* Protocol error found in what the broker sent: 5.0 says why (4.13). */
static void protocol_error(mqtt_client *c, uint8_t rc, const char *why, uint32_t now)
{
    log_msg(c, why);
    if (v5(c))
        send_ack_rc(c, MQTT_DISCONNECT, 0, rc, now);
    lose(c, "protocol_error", now);
}

/* 5.0 3.3.2.3.4: resolves or learns the topic alias of an incoming PUBLISH;
 * false after a protocol error. */
static bool resolve_alias(mqtt_client *c, mqtt_packet *p, uint32_t now)
{
    mqtt_prop pr;
    if (!v5(c) || !mqtt_prop_find(p->props, MQTT_P_TOPIC_ALIAS, &pr))
        return true;
    if (pr.num > c->alias_max) { /* 3.3.2-10 */
        protocol_error(c, 0x94, "topic alias above our maximum", now);
        return false;
    }
    size_t k = pr.num - 1;
    if (p->topic.len) {
        if (p->topic.len > MQTT_ALIAS_TOPIC_MAX) {
            protocol_error(c, 0x95, "aliased topic longer than we can keep", now);
            return false;
        }
        memcpy(c->alias_topic[k], p->topic.data, p->topic.len);
        c->alias_len[k] = (uint8_t)p->topic.len;
        return true;
    }
    if (!c->alias_len[k]) {
        protocol_error(c, 0x82, "topic alias never set on this connection", now);
        return false;
    }
    p->topic.data = c->alias_topic[k];
    p->topic.len = c->alias_len[k];
    return true;
}

static void on_publish(mqtt_client *c, const mqtt_packet *in, uint32_t now)
{
    mqtt_packet resolved = *in;
    const mqtt_packet *p = &resolved;
    if (!resolve_alias(c, &resolved, now))
        return;
    mqtt_event msg = { MQTT_EV_MESSAGE, p->pid, false, 0, p, NULL };
    if (p->qos == 0) {
        emit(c, msg);
        return;
    }
    if (p->qos == 1) {
        emit(c, msg);
        send_ack(c, MQTT_PUBACK, p->pid, now);
        return;
    }
    bool seen = mqtt_session_in_has(&c->s, p->pid);
    if (!seen) {
        if (!mqtt_session_in_add(&c->s, p->pid)) {
            /* Without a place to remember the id, a duplicate could not be
             * told apart; refuse it and let the broker retry later. */
            log_msg(c, "incoming QoS 2 table full");
            lose(c, "protocol_error", now);
            return;
        }
        persist(c);
#if !MQTT_HIL_BUG_QOS2_DOUBLE_DELIVERY
        emit(c, msg);
#endif
    }
#if MQTT_HIL_BUG_QOS2_DOUBLE_DELIVERY
    /* Seeded bug: delivery sits outside the "not seen yet" check, so a
     * retransmitted PUBLISH (DUP=1, same id) is delivered again. */
    emit(c, msg);
#endif
    send_ack(c, MQTT_PUBREC, p->pid, now);
}

static void on_ack(mqtt_client *c, const mqtt_packet *p, uint32_t now)
{
    mqtt_outgoing *o = mqtt_session_find_out(&c->s, p->pid);
    mqtt_event ev = { MQTT_EV_PUBACK, p->pid, false, p->rc, NULL, NULL };
    switch (p->type) {
    case MQTT_PUBACK:
        if (!o || o->qos != 1) {
            log_msg(c, "PUBACK for an unknown packet id");
            return;
        }
        mqtt_session_remove_out(&c->s, p->pid);
        persist(c);
        emit(c, ev);
        out_removed(c, now);
        return;
    case MQTT_PUBREC:
        if (!o || o->qos != 2) {
            log_msg(c, "PUBREC for an unknown packet id");
            return;
        }
        ev.type = MQTT_EV_PUBREC;
        if (p->rc >= 0x80) {
            /* 5.0 4.3.3: a failed PUBREC ends the exchange, no PUBREL. */
            mqtt_session_remove_out(&c->s, p->pid);
            persist(c);
            emit(c, ev);
            out_removed(c, now);
            return;
        }
        if (o->state == MQTT_OUT_AWAIT_PUBREC) {
            o->state = MQTT_OUT_AWAIT_PUBCOMP;
            persist(c);
            emit(c, ev);
        }
        /* A repeated PUBREC gets a repeated PUBREL. */
        send_ack(c, MQTT_PUBREL, p->pid, now);
        return;
    case MQTT_PUBCOMP:
        if (!o || o->state != MQTT_OUT_AWAIT_PUBCOMP) {
            log_msg(c, "PUBCOMP for an unknown packet id");
            return;
        }
        ev.type = MQTT_EV_PUBCOMP;
        mqtt_session_remove_out(&c->s, p->pid);
        persist(c);
        emit(c, ev);
        out_removed(c, now);
        return;
    default:
        return;
    }
}

static void on_packet(mqtt_client *c, const mqtt_packet *p, uint32_t now)
{
    if (c->state == MQTT_ST_CONNACK) {
        if (p->type != MQTT_CONNACK) {
            log_msg(c, "first packet from the broker is not CONNACK");
            lose(c, "protocol_error", now);
            return;
        }
        on_connack(c, p, now);
        return;
    }
    mqtt_event ev = { MQTT_EV_SUBACK, p->pid, false, 0, p, NULL };
    switch (p->type) {
    case MQTT_PUBLISH:
        on_publish(c, p, now);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        on_ack(c, p, now);
        break;
    case MQTT_PUBREL: {
        /* 4.3.3: PUBCOMP answers every PUBREL, known id or not; 5.0
         * says which it was (0x92: packet identifier not found). */
        bool known = mqtt_session_in_remove(&c->s, p->pid);
        if (known)
            persist(c);
        send_ack_rc(c, MQTT_PUBCOMP, p->pid, known ? 0 : 0x92, now);
        break;
    }
    case MQTT_DISCONNECT:
        if (!v5(c))
            goto client_only;
        /* 5.0 3.14: the broker closes with a reason. */
        c->disc_rc = p->rc;
        lose(c, "server_disconnect", now);
        break;
    case MQTT_SUBACK:
        emit(c, ev);
        break;
    case MQTT_UNSUBACK:
        ev.type = MQTT_EV_UNSUBACK;
        emit(c, ev);
        break;
    case MQTT_PINGRESP:
        c->ping_out = false;
        break;
    default:
    client_only:
        log_msg(c, "broker sent a client-only packet");
        lose(c, "protocol_error", now);
        break;
    }
}

void mqtt_client_on_bytes(mqtt_client *c, const uint8_t *data, size_t len, uint32_t now)
{
    while (len && (c->state == MQTT_ST_CONNACK || c->state == MQTT_ST_UP)) {
        size_t took = mqtt_decoder_feed(&c->dec, data, len);
        data += took;
        len -= took;
        for (;;) {
            mqtt_packet p;
            mqtt_err e = mqtt_decoder_next(&c->dec, &p);
            if (e == MQTT_INCOMPLETE)
                break;
            if (e != MQTT_OK) {
                log_msg(c, mqtt_err_str(e));
                lose(c, "protocol_error", now);
                return;
            }
            on_packet(c, &p, now);
            if (c->state != MQTT_ST_CONNACK && c->state != MQTT_ST_UP)
                return;
        }
    }
}

void mqtt_client_tick(mqtt_client *c, uint32_t now)
{
    uint32_t ka = (uint32_t)c->keepalive * 1000u;
    switch (c->state) {
    case MQTT_ST_BACKOFF:
#if MQTT_HIL_BUG_TIGHT_RECONNECT
        /* Seeded bug: compares against when the backoff began, not when it
         * ends, so the reconnect is immediate. */
        if (reached(now, c->state_since))
#else
        if (reached(now, c->backoff_at))
#endif
            start_open(c, now);
        break;
    case MQTT_ST_TCP:
        if (reached(now, c->state_since + MQTT_TCP_TIMEOUT_MS))
            lose(c, "connect_failed", now);
        break;
    case MQTT_ST_CONNACK:
        /* 3.2.0: close if CONNACK does not come within a reasonable time. */
        if (reached(now, c->state_since + (ka ? ka : MQTT_TCP_TIMEOUT_MS)))
            lose(c, "connack_timeout", now);
        break;
    case MQTT_ST_UP:
        if (!ka)
            break;
        if (c->ping_out) {
            if (reached(now, c->ping_at + ka))
                lose(c, "keepalive_timeout", now);
        } else if (reached(now, c->last_tx + ka)) {
            /* 3.1.2-23: never let keepalive pass without sending a packet. */
            if (send_ack(c, MQTT_PINGREQ, 0, now)) {
                c->ping_out = true;
                c->ping_at = now;
            }
        }
        break;
    default:
        break;
    }
}

/* ---- application commands ---------------------------------------------- */

mqtt_result mqtt_client_publish(mqtt_client *c, const uint8_t *topic, size_t topic_len,
                                const uint8_t *payload, size_t payload_len, uint8_t qos,
                                bool retain, uint16_t *pid, uint32_t now)
{
    mqtt_slice none = { NULL, 0 };
    return mqtt_client_publish_props(c, topic, topic_len, payload, payload_len, qos, retain, none,
                                     pid, now);
}

/* A PUBLISH with Topic Alias `a` (0: none) and this topic went out: the
 * broker now maps `a` to it on this connection. */
static void remember_alias(mqtt_client *c, uint32_t a, const uint8_t *topic, size_t len)
{
    if (a == 0 || a > MQTT_ALIAS_MAX || len > MQTT_ALIAS_TOPIC_MAX)
        return;
    memcpy(c->out_alias_topic[a - 1], topic, len);
    c->out_alias_len[a - 1] = (uint8_t)len;
}

mqtt_result mqtt_client_publish_props(mqtt_client *c, const uint8_t *topic, size_t topic_len,
                                      const uint8_t *payload, size_t payload_len, uint8_t qos,
                                      bool retain, mqtt_slice props, uint16_t *pid, uint32_t now)
{
    *pid = 0;
    mqtt_prop pr, alias;
    if (qos > 2)
        return MQTT_C_BAD_ARG;
    /* 3.3.4-6: a client never sends a subscription identifier. */
    if (props.len && (!v5(c) || mqtt_props_check(props, MQTT_PUBLISH) != MQTT_OK ||
                      mqtt_prop_find(props, MQTT_P_SUBSCRIPTION_ID, &pr)))
        return MQTT_C_BAD_ARG;
    bool aliased = props.len && mqtt_prop_find(props, MQTT_P_TOPIC_ALIAS, &alias);
    if (!mqtt_topic_name_valid(topic, topic_len))
        return MQTT_C_BAD_TOPIC;
    if (c->state != MQTT_ST_UP)
        return MQTT_C_NOT_CONNECTED;
    /* 3.2.2-17, 3.3.2-8/-9: an alias from 1 to the broker's maximum (and
     * to what we can remember). */
    if (aliased && (alias.num == 0 || alias.num > c->peer_alias_max || alias.num > MQTT_ALIAS_MAX))
        return MQTT_C_BAD_ARG;
    if (aliased && topic_len > MQTT_ALIAS_TOPIC_MAX)
        return MQTT_C_TOO_BIG;
    /* What is kept for resends: the properties without the alias. */
    uint8_t kept_buf[255];
    mqtt_slice kept = props;
    bool known = false;
    if (aliased) {
        size_t pos = 0, len = 0, start = 0;
        if (props.len > sizeof kept_buf)
            return MQTT_C_TOO_BIG;
        while (mqtt_prop_next(props, &pos, &pr)) {
            if (pr.id != MQTT_P_TOPIC_ALIAS) {
                memcpy(kept_buf + len, props.data + start, pos - start);
                len += pos - start;
            }
            start = pos;
        }
        kept.data = kept_buf;
        kept.len = len;
        size_t k = alias.num - 1;
        known = c->out_alias_len[k] == topic_len &&
                memcmp(c->out_alias_topic[k], topic, topic_len) == 0;
    }
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.version = v5(c) ? MQTT_V5 : MQTT_V311;
    p.qos = qos;
    p.pid = 1;
    p.retain = retain;
    p.topic.data = topic;
    p.topic.len = topic_len;
    p.payload.data = payload;
    p.payload.len = payload_len;
    p.props = props;
    size_t size = mqtt_encode(c->tx, sizeof c->tx, &p);
    if (size == 0 || size > c->peer_max_packet)
        return MQTT_C_TOO_BIG; /* 5.0 3.1.2-24 */
    /* An alias already set on this connection stands for the topic. */
    if (known)
        p.topic.len = 0;
    if (qos == 0) {
        p.pid = 0;
        if (!send_packet(c, &p, now))
            return MQTT_C_SEND_FAILED;
        remember_alias(c, aliased ? alias.num : 0, topic, topic_len);
        return MQTT_C_OK;
    }
    /* 5.0 4.9: no more unacknowledged QoS 1/2 than the broker receives. */
    if (c->s.n_out >= MQTT_MAX_INFLIGHT || c->s.n_out >= recv_max(c))
        return MQTT_C_INFLIGHT_FULL;
    uint16_t id = mqtt_session_next_pid(&c->s);
    mqtt_outgoing *o = mqtt_session_add_out_props(&c->s, id, qos, retain, topic, topic_len,
                                                  payload, payload_len, kept.data, kept.len);
    if (!o)
        return MQTT_C_TOO_BIG;
    /* Stored before it is sent: a reset after sending must find it. */
    if (!mqtt_session_save(&c->s)) {
        mqtt_session_remove_out(&c->s, id);
        return MQTT_C_STORE_FAILED;
    }
    *pid = id;
    /* If the send fails the connection is lost and reported; the message
     * stays inflight and goes out again on the resumed session. */
    c->out_sent++;
    if (aliased) {
        /* The first send carries the alias (and the topic unless known). */
        p.pid = id;
        if (send_packet(c, &p, now))
            remember_alias(c, alias.num, topic, topic_len);
    } else {
        send_publish(c, o, false, now);
    }
    return MQTT_C_OK;
}

static mqtt_result sub_unsub(mqtt_client *c, uint8_t type, const uint8_t *filter, size_t len,
                             uint8_t qos, uint8_t options, mqtt_slice props, uint16_t *pid,
                             uint32_t now)
{
    *pid = 0;
    if (qos > 2 || (options & ~0x3Cu) || (options >> 4 & 3) == 3)
        return MQTT_C_BAD_ARG;
    if ((options || props.len) && (!v5(c) || mqtt_props_check(props, type) != MQTT_OK))
        return MQTT_C_BAD_ARG;
    if (!mqtt_topic_filter_valid(filter, len))
        return MQTT_C_BAD_TOPIC;
    if (c->state != MQTT_ST_UP)
        return MQTT_C_NOT_CONNECTED;
    mqtt_filter f = { { filter, len }, qos, options };
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = type;
    p.version = v5(c) ? MQTT_V5 : MQTT_V311;
    p.pid = mqtt_session_next_pid(&c->s);
    p.filters = &f;
    p.count = 1;
    p.props = props;
    size_t size = mqtt_encode(c->tx, sizeof c->tx, &p);
    if (size == 0 || size > c->peer_max_packet)
        return MQTT_C_TOO_BIG;
    if (!send_packet(c, &p, now))
        return MQTT_C_SEND_FAILED;
    *pid = p.pid;
    return MQTT_C_OK;
}

static const mqtt_slice no_props = { NULL, 0 };

mqtt_result mqtt_client_subscribe(mqtt_client *c, const uint8_t *filter, size_t len,
                                  uint8_t qos, uint16_t *pid, uint32_t now)
{
    return sub_unsub(c, MQTT_SUBSCRIBE, filter, len, qos, 0, no_props, pid, now);
}

mqtt_result mqtt_client_subscribe_opts(mqtt_client *c, const uint8_t *filter, size_t len,
                                       uint8_t qos, uint8_t options, mqtt_slice props,
                                       uint16_t *pid, uint32_t now)
{
    return sub_unsub(c, MQTT_SUBSCRIBE, filter, len, qos, options, props, pid, now);
}

mqtt_result mqtt_client_unsubscribe(mqtt_client *c, const uint8_t *filter, size_t len,
                                    uint16_t *pid, uint32_t now)
{
    return sub_unsub(c, MQTT_UNSUBSCRIBE, filter, len, 0, 0, no_props, pid, now);
}

mqtt_result mqtt_client_disconnect(mqtt_client *c, uint32_t now)
{
    return mqtt_client_disconnect_rc(c, 0, now);
}

mqtt_result mqtt_client_disconnect_rc(mqtt_client *c, uint8_t rc, uint32_t now)
{
    mqtt_slice none = { NULL, 0 };
    return mqtt_client_disconnect_props(c, rc, none, now);
}

mqtt_result mqtt_client_disconnect_props(mqtt_client *c, uint8_t rc, mqtt_slice props,
                                         uint32_t now)
{
    mqtt_prop ours, theirs;
    if (props.len) {
        if (!v5(c) || mqtt_props_check(props, MQTT_DISCONNECT) != MQTT_OK)
            return MQTT_C_BAD_ARG;
        /* 3.14.2.2.2: a session that was to end with the connection cannot
         * be given a lifetime now. */
        if (mqtt_prop_find(props, MQTT_P_SESSION_EXPIRY, &ours) && ours.num != 0 &&
            (!mqtt_prop_find(c->opts.props, MQTT_P_SESSION_EXPIRY, &theirs) || theirs.num == 0))
            return MQTT_C_BAD_ARG;
    }
    if (c->state == MQTT_ST_IDLE)
        return MQTT_C_NOT_CONNECTED;
    c->opts.reconnect = false;
    if (c->state == MQTT_ST_BACKOFF) {
        enter(c, MQTT_ST_IDLE, now);
        return MQTT_C_OK;
    }
    if (c->state == MQTT_ST_UP) {
        mqtt_packet p;
        memset(&p, 0, sizeof p);
        p.type = MQTT_DISCONNECT;
        p.rc = v5(c) ? rc : 0;
        p.props = props;
        send_packet(c, &p, now);
        /* Expiry 0 ends the session with this connection: the broker drops
         * its side, so ours goes too (a resend would start a new session). */
        if (mqtt_prop_find(props, MQTT_P_SESSION_EXPIRY, &ours) && ours.num == 0 &&
            (c->s.n_out || c->s.n_in)) {
            mqtt_session_clear(&c->s);
            persist(c);
        }
    }
    lose(c, "disconnect", now);
    return MQTT_C_OK;
}

mqtt_result mqtt_client_drop(mqtt_client *c, uint32_t now)
{
    if (c->state == MQTT_ST_IDLE || c->state == MQTT_ST_BACKOFF)
        return MQTT_C_NOT_CONNECTED;
    lose(c, "dropped", now);
    return MQTT_C_OK;
}

mqtt_result mqtt_client_erase(mqtt_client *c)
{
    mqtt_session_clear(&c->s);
    return mqtt_session_save(&c->s) ? MQTT_C_OK : MQTT_C_STORE_FAILED;
}
