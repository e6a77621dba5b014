#include "agent.h"

#include <string.h>

#include "agent_line.h"
#include "bugs.h"
#include "mqtt_client.h"

#define NET_TX_MAX 2048 /* room for one largest packet plus acks behind it */

static struct {
    agent_io io;
    mqtt_store store;
    mqtt_client client;
    agent_out out;
    uint32_t boot_ms;

    char line[AGENT_LINE_MAX + 1];
    size_t line_len;
    bool discarding; /* inside a line that was too long */

    char host[AGENT_HOST_MAX + 1];
    uint16_t port;
    bool net_failed; /* set by callbacks, acted on in agent_poll */

    uint8_t tx[NET_TX_MAX];
    size_t tx_len;
} A;

/* ---- glue: client <-> io ------------------------------------------------ */

static bool st_read(void *ctx, uint32_t off, uint8_t *buf, size_t len)
{
    (void)ctx;
    return A.io.store_read(A.io.ctx, off, buf, len);
}

static bool st_write(void *ctx, uint32_t off, const uint8_t *buf, size_t len)
{
    (void)ctx;
    return A.io.store_write(A.io.ctx, off, buf, len);
}

static bool st_commit(void *ctx)
{
    (void)ctx;
    return A.io.store_commit ? A.io.store_commit(A.io.ctx) : true;
}

static void uart_write(void *ctx, const uint8_t *d, size_t n)
{
    (void)ctx;
    A.io.uart_write(A.io.ctx, d, n);
}

static uint32_t now_ms(void) { return A.io.millis(A.io.ctx); }

static uint32_t heap(void) { return A.io.free_heap ? A.io.free_heap(A.io.ctx) : 0; }

static void net_flush(void)
{
    if (!A.tx_len || A.net_failed)
        return;
    int n = A.io.net_write(A.io.ctx, A.tx, A.tx_len);
    if (n < 0) {
        A.net_failed = true;
        return;
    }
    memmove(A.tx, A.tx + n, A.tx_len - (size_t)n);
    A.tx_len -= (size_t)n;
}

static void cb_open(void *ctx)
{
    (void)ctx;
    A.tx_len = 0;
    A.net_failed = !A.io.net_connect(A.io.ctx, A.host, A.port);
}

static void cb_close(void *ctx)
{
    (void)ctx;
    /* What is queued (a DISCONNECT just sent) goes out before the close:
     * the stack may take it in several short writes. Bounded, and a write
     * that takes nothing ends it. */
    for (int i = 0; i < 64 && A.tx_len && !A.net_failed; i++) {
        size_t before = A.tx_len;
        net_flush();
        if (A.tx_len == before)
            break;
    }
    A.io.net_close(A.io.ctx);
    A.tx_len = 0;
    A.net_failed = false;
}

static bool cb_send(void *ctx, const uint8_t *d, size_t n)
{
    (void)ctx;
    if (NET_TX_MAX - A.tx_len < n)
        return false;
    memcpy(A.tx + A.tx_len, d, n);
    A.tx_len += n;
    net_flush();
    return true;
}

/* 5.0 extras on an event line: only when there is something to say, so
 * 3.1.1 lines stay exactly as they were. */
static void out_props(agent_out *o, const char *key, mqtt_slice props)
{
    if (props.len)
        out_kv(o, key, props.data, props.len);
}

static void out_codes(agent_out *o, const char *key, mqtt_slice codes)
{
    /* key=0,1,128: digits and commas need no escaping. */
    out_raw(o, " ");
    out_raw(o, key);
    out_raw(o, "=");
    for (size_t i = 0; i < codes.len; i++) {
        char num[5];
        uint8_t g = codes.data[i];
        size_t k = 0;
        if (i)
            num[k++] = ',';
        if (g >= 100)
            num[k++] = (char)('0' + g / 100);
        if (g >= 10)
            num[k++] = (char)('0' + g / 10 % 10);
        num[k++] = (char)('0' + g % 10);
        num[k] = '\0';
        out_raw(o, num);
    }
}

static void cb_event(void *ctx, const mqtt_event *ev)
{
    (void)ctx;
    agent_out *o = &A.out;
    const mqtt_packet *p = ev->packet;
    switch (ev->type) {
    case MQTT_EV_CONNECTED:
        out_raw(o, "@connected");
        out_kv_uint(o, "sp", ev->sp);
        if (p)
            out_props(o, "props", p->props);
        break;
    case MQTT_EV_REFUSED:
        out_raw(o, "@connack");
        out_kv_uint(o, "rc", ev->rc);
        break;
    case MQTT_EV_SUBACK:
        out_raw(o, "@suback");
        out_kv_uint(o, "pid", ev->pid);
        out_codes(o, "granted", p->list);
        out_props(o, "props", p->props);
        break;
    case MQTT_EV_UNSUBACK:
        out_raw(o, "@unsuback");
        out_kv_uint(o, "pid", ev->pid);
        if (p && p->list.len)
            out_codes(o, "codes", p->list); /* 5.0 reason codes */
        if (p)
            out_props(o, "props", p->props);
        break;
    case MQTT_EV_PUBACK:
    case MQTT_EV_PUBREC:
    case MQTT_EV_PUBCOMP:
        out_raw(o, ev->type == MQTT_EV_PUBACK ? "@puback"
                   : ev->type == MQTT_EV_PUBREC ? "@pubrec" : "@pubcomp");
        out_kv_uint(o, "pid", ev->pid);
        if (ev->rc)
            out_kv_uint(o, "rc", ev->rc);
        break;
    case MQTT_EV_MESSAGE:
        out_raw(o, "@msg");
        out_kv(o, "topic", p->topic.data, p->topic.len);
        out_kv_uint(o, "qos", p->qos);
        out_kv_uint(o, "dup", p->dup);
        out_kv_uint(o, "retain", p->retain);
        out_kv_uint(o, "pid", p->pid);
        out_kv(o, "payload", p->payload.data, p->payload.len);
        out_props(o, "props", p->props);
        break;
    case MQTT_EV_DISCONNECTED:
        out_raw(o, "@disconnected");
        out_kv_str(o, "reason", ev->reason);
        if (ev->rc)
            out_kv_uint(o, "rc", ev->rc);
        break;
    case MQTT_EV_LOG:
        out_raw(o, "@log");
        out_kv_str(o, "msg", ev->reason);
        break;
    }
    out_end(o);
}

/* ---- answers ------------------------------------------------------------ */

static void answer_err(const char *verb, const char *reason, const char *detail)
{
    out_raw(&A.out, "@err ");
    out_raw(&A.out, verb);
    out_kv_str(&A.out, "reason", reason);
    if (detail) {
        size_t n = strlen(detail);
        out_kv(&A.out, "detail", (const uint8_t *)detail, n > 48 ? 48 : n);
    }
    out_end(&A.out);
}

static void answer_ok(const char *verb) /* caller may add fields, then out_end */
{
    out_raw(&A.out, "@ok ");
    out_raw(&A.out, verb);
}

/* ---- fields --------------------------------------------------------------- */

typedef struct {
    agent_cmd *cmd;
    const char *bad; /* first bad key, NULL if all fine */
    const char *why;
} fields;

static mqtt_slice get_bytes(fields *f, const char *key, bool *present)
{
    agent_field *x = agent_cmd_get(f->cmd, key);
    mqtt_slice s = { (const uint8_t *)"", 0 };
    if (present)
        *present = x != NULL;
    if (x) {
        s.data = x->val;
        s.len = x->len;
    }
    return s;
}

static uint32_t get_uint(fields *f, const char *key, uint32_t def, uint32_t min, uint32_t max)
{
    agent_field *x = agent_cmd_get(f->cmd, key);
    uint32_t v = def;
    if (x && !agent_parse_uint(x->val, x->len, min, max, &v) && !f->bad) {
        f->bad = key;
        f->why = "bad_value";
    }
    return v;
}

static mqtt_slice require(fields *f, const char *key)
{
    bool present;
    mqtt_slice s = get_bytes(f, key, &present);
    if (!present && !f->bad) {
        f->bad = key;
        f->why = "missing_key";
    }
    return s;
}

/* After all gets: reports a bad or unknown key. True if the command may go on. */
static bool fields_ok(fields *f)
{
    const agent_field *u = agent_cmd_unused(f->cmd);
    if (f->bad) {
        answer_err(f->cmd->verb, f->why, f->bad);
        return false;
    }
    if (u) {
        answer_err(f->cmd->verb, "unknown_key", u->key);
        return false;
    }
    return true;
}

static void answer_result(const char *verb, mqtt_result r, bool with_pid, uint16_t pid)
{
    if (r != MQTT_C_OK) {
        answer_err(verb, mqtt_result_str(r), NULL);
        return;
    }
    answer_ok(verb);
    if (with_pid)
        out_kv_uint(&A.out, "pid", pid);
    out_end(&A.out);
}

/* ---- commands ------------------------------------------------------------- */

static void cmd_connect(fields *f)
{
    mqtt_connect_opts o;
    memset(&o, 0, sizeof o);
    bool has_host, has_wp, has_wq, has_wr;
    o.client_id = require(f, "id");
    o.clean = get_uint(f, "clean", 1, 0, 1);
    o.keepalive = (uint16_t)get_uint(f, "keepalive", 60, 0, 65535);
    mqtt_slice host = get_bytes(f, "host", &has_host);
    uint32_t port = get_uint(f, "port", 1883, 1, 65535);
    o.user = get_bytes(f, "user", &o.has_user);
    o.pass = get_bytes(f, "pass", &o.has_pass);
    o.will_topic = get_bytes(f, "will_topic", &o.has_will);
    o.will_payload = get_bytes(f, "will_payload", &has_wp);
    has_wq = agent_cmd_get(f->cmd, "will_qos") != NULL;
    o.will_qos = (uint8_t)get_uint(f, "will_qos", 0, 0, 2);
    has_wr = agent_cmd_get(f->cmd, "will_retain") != NULL;
    o.will_retain = get_uint(f, "will_retain", 0, 0, 1);
    o.reconnect = get_uint(f, "reconnect", 0, 0, 1);
    o.backoff_ms = get_uint(f, "backoff_ms", 1000, 1, 3600000);
    o.backoff_max_ms = get_uint(f, "backoff_max_ms", 16000, 1, 3600000);
    o.version = (uint8_t)get_uint(f, "version", MQTT_V311, MQTT_V311, MQTT_V5);
    bool has_props, has_will_props;
    o.props = get_bytes(f, "props", &has_props);
    o.will_props = get_bytes(f, "will_props", &has_will_props);
    if (!f->bad && o.version != MQTT_V5 && (has_props || has_will_props)) {
        f->bad = has_props ? "props" : "will_props"; /* 3.1.1 has no properties */
        f->why = "bad_value";
    }
    if (!f->bad && has_props && mqtt_props_check(o.props, MQTT_CONNECT) != MQTT_OK) {
        f->bad = "props";
        f->why = "bad_value";
    }
    if (!f->bad && has_will_props &&
        (!o.has_will || mqtt_props_check(o.will_props, 0) != MQTT_OK)) {
        f->bad = o.has_will ? "will_props" : "will_topic";
        f->why = o.has_will ? "bad_value" : "missing_key";
    }
    if (!f->bad && !o.has_will && (has_wp || has_wq || has_wr)) {
        f->bad = "will_topic";
        f->why = "missing_key";
    }
    if (!f->bad && o.backoff_max_ms < o.backoff_ms) {
        f->bad = "backoff_max_ms";
        f->why = "bad_value";
    }
    if (!f->bad && o.has_pass && !o.has_user && o.version != MQTT_V5) {
        f->bad = "user"; /* 3.1.2-22: no password without a user name */
        f->why = "missing_key";
    }
    if (!f->bad && has_host && (host.len == 0 || host.len > AGENT_HOST_MAX ||
                                memchr(host.data, 0, host.len))) {
        f->bad = "host";
        f->why = "bad_value";
    }
    if (!fields_ok(f))
        return;
    if (A.client.state != MQTT_ST_IDLE && A.client.state != MQTT_ST_BACKOFF) {
        answer_err("connect", "already_connected", NULL);
        return;
    }
    if (has_host) {
        memcpy(A.host, host.data, host.len);
        A.host[host.len] = '\0';
    } else {
        strcpy(A.host, "10.0.2.100");
    }
    A.port = (uint16_t)port;
    answer_result("connect", mqtt_client_connect(&A.client, &o, now_ms()), false, 0);
}

static void cmd_subscribe(fields *f, bool sub)
{
    mqtt_slice filter = require(f, "filter");
    uint8_t qos = sub ? (uint8_t)get_uint(f, "qos", 0, 0, 2) : 0;
    /* 5.0 subscription options (3.8.3.1) and SUBSCRIBE properties. */
    uint8_t opts = 0;
    mqtt_slice props = { NULL, 0 };
    if (sub) {
        if (get_uint(f, "nl", 0, 0, 1))
            opts |= MQTT_SUB_NO_LOCAL;
        if (get_uint(f, "rap", 0, 0, 1))
            opts |= MQTT_SUB_RETAIN_AS_PUBLISHED;
        opts |= MQTT_SUB_RETAIN_HANDLING(get_uint(f, "rh", 0, 0, 2));
        props = get_bytes(f, "props", NULL);
    }
    if (!fields_ok(f))
        return;
    uint16_t pid;
    mqtt_result r = sub ? mqtt_client_subscribe_opts(&A.client, filter.data, filter.len, qos, opts,
                                                     props, &pid, now_ms())
                        : mqtt_client_unsubscribe(&A.client, filter.data, filter.len, &pid,
                                                  now_ms());
    answer_result(f->cmd->verb, r, true, pid);
}

static void cmd_publish(fields *f)
{
    mqtt_slice topic = require(f, "topic");
    uint8_t qos = (uint8_t)get_uint(f, "qos", 0, 0, 2);
    bool retain = get_uint(f, "retain", 0, 0, 1);
    mqtt_slice payload = get_bytes(f, "payload", NULL);
    mqtt_slice props = get_bytes(f, "props", NULL);
    if (!fields_ok(f))
        return;
    uint16_t pid;
    mqtt_result r = mqtt_client_publish_props(&A.client, topic.data, topic.len, payload.data,
                                              payload.len, qos, retain, props, &pid, now_ms());
    answer_result("publish", r, true, pid);
}

static void cmd_status(void)
{
    answer_ok("status");
    out_kv_str(&A.out, "state", mqtt_state_str(A.client.state));
    out_kv_uint(&A.out, "inflight_out", A.client.s.n_out);
    out_kv_uint(&A.out, "inflight_in", A.client.s.n_in);
    out_kv_uint(&A.out, "heap", heap());
    out_kv_uint(&A.out, "uptime_ms", now_ms() - A.boot_ms);
    out_end(&A.out);
}

static void run(agent_cmd *cmd)
{
    fields f = { cmd, NULL, NULL };
    const char *v = cmd->verb;
    uint32_t now = now_ms();
    if (strcmp(v, "connect") == 0) {
        cmd_connect(&f);
    } else if (strcmp(v, "subscribe") == 0 || strcmp(v, "unsubscribe") == 0) {
        cmd_subscribe(&f, v[0] == 's');
    } else if (strcmp(v, "publish") == 0) {
        cmd_publish(&f);
    } else if (strcmp(v, "disconnect") == 0) {
        /* rc: a 5.0 reason code, e.g. 4 to have the broker publish the will;
         * props: DISCONNECT properties (e.g. a new Session Expiry Interval). */
        uint8_t rc = (uint8_t)get_uint(&f, "rc", 0, 0, 255);
        mqtt_slice props = get_bytes(&f, "props", NULL);
        if (fields_ok(&f))
            answer_result(v, mqtt_client_disconnect_props(&A.client, rc, props, now), false, 0);
    } else if (strcmp(v, "drop") == 0) {
        if (fields_ok(&f))
            answer_result(v, mqtt_client_drop(&A.client, now), false, 0);
    } else if (strcmp(v, "erase") == 0) {
        if (fields_ok(&f))
            answer_result(v, mqtt_client_erase(&A.client), false, 0);
    } else if (strcmp(v, "status") == 0) {
        if (fields_ok(&f))
            cmd_status();
    } else if (strcmp(v, "reboot") == 0) {
        if (fields_ok(&f)) {
            answer_result(v, MQTT_C_OK, false, 0);
            A.io.reboot(A.io.ctx);
        }
    } else {
        answer_err(v, "unknown_command", NULL);
    }
}

static void on_line(void)
{
    /* A trailing CR belongs to the line ending, not the command. */
    if (A.line_len && A.line[A.line_len - 1] == '\r')
        A.line_len--;
    agent_cmd cmd;
    const char *where;
    line_err e = agent_line_parse(A.line, A.line_len, &cmd, &where);
    if (e == LINE_EMPTY)
        return;
    if (e != LINE_OK) {
        /* The verb is set only once it parsed: only then is it safe to echo. */
        answer_err(cmd.verb[0] ? cmd.verb : "?", line_err_str(e), where);
        return;
    }
    run(&cmd);
}

/* ---- public --------------------------------------------------------------- */

void agent_init(const agent_io *io)
{
    memset(&A, 0, sizeof A);
    A.io = *io;
    A.out.write = uart_write;
    A.store.read = st_read;
    A.store.write = st_write;
    A.store.commit = st_commit;
    A.boot_ms = now_ms();
    strcpy(A.host, "10.0.2.100");
    A.port = 1883;
    mqtt_client_cb cb = { NULL, cb_open, cb_close, cb_send, cb_event };
    mqtt_client_init(&A.client, &cb, &A.store);

    const char *bug = MQTT_HIL_BUG_NAME;
    size_t blen = strlen(bug);
    if (blen >= 2 && bug[0] == '"') { /* given as a quoted string */
        bug++;
        blen -= 2;
    }
    out_raw(&A.out, "@ready");
    out_kv_str(&A.out, "fw", AGENT_FW);
    out_kv(&A.out, "bug", (const uint8_t *)bug, blen);
    out_kv_uint(&A.out, "heap", heap());
    out_kv_uint(&A.out, "restored", (uint32_t)mqtt_client_restored(&A.client));
    out_end(&A.out);
}

void agent_uart_input(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t b = data[i];
        if (b == '\n') {
            if (A.discarding)
                answer_err("?", "line_too_long", NULL);
            else
                on_line();
            A.discarding = false;
            A.line_len = 0;
        } else if (A.discarding) {
            /* skip to the end of the overlong line */
        } else if (A.line_len == AGENT_LINE_MAX) {
            A.discarding = true;
        } else {
            A.line[A.line_len++] = (char)b;
        }
    }
}

void agent_poll(void)
{
    uint32_t now = now_ms();
    mqtt_client *c = &A.client;
    if (c->state == MQTT_ST_TCP && !A.net_failed) {
        int st = A.io.net_connected(A.io.ctx);
        if (st > 0)
            mqtt_client_on_open(c, now);
        else if (st < 0)
            A.net_failed = true;
    }
    if (c->state == MQTT_ST_CONNACK || c->state == MQTT_ST_UP) {
        net_flush();
        uint8_t buf[256];
        int n;
        while (!A.net_failed && (c->state == MQTT_ST_CONNACK || c->state == MQTT_ST_UP) &&
               (n = A.io.net_read(A.io.ctx, buf, sizeof buf)) != 0) {
            if (n < 0)
                A.net_failed = true;
            else
                mqtt_client_on_bytes(c, buf, (size_t)n, now);
        }
    }
    if (A.net_failed && (c->state == MQTT_ST_TCP || c->state == MQTT_ST_CONNACK ||
                         c->state == MQTT_ST_UP)) {
        A.net_failed = false;
        mqtt_client_on_closed(c, now);
    }
    mqtt_client_tick(c, now);
    net_flush();
}
