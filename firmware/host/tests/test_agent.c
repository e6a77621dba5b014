/* The agent's line protocol through a fake board: UART text in and out, a
 * scripted network, a RAM store. */
#include "agent.h"
#include "agent_line.h"
#include "mqtt_codec.h"
#include "test.h"

static struct {
    char uart[16384];
    size_t uart_len;
    uint32_t now;
    char host[64];
    uint16_t port;
    int connect_calls, closes, reboots;
    int conn_state; /* what net_connected reports */
    uint8_t net_out[8192];
    size_t net_out_len;
    uint8_t net_in[2048];
    size_t net_in_len;
    uint8_t store[AGENT_STORE_SIZE];
} B;

static uint32_t b_millis(void *c) { (void)c; return B.now; }
static bool b_connect(void *c, const char *h, uint16_t p)
{
    (void)c;
    snprintf(B.host, sizeof B.host, "%s", h);
    B.port = p;
    B.connect_calls++;
    return true;
}
static int b_connected(void *c) { (void)c; return B.conn_state; }
static int b_write(void *c, const uint8_t *d, size_t n)
{
    (void)c;
    if (B.conn_state < 0)
        return -1;
    /* Takes at most 7 bytes a call: the agent must cope with short writes. */
    size_t k = n < 7 ? n : 7;
    if (sizeof B.net_out - B.net_out_len < k)
        return 0;
    memcpy(B.net_out + B.net_out_len, d, k);
    B.net_out_len += k;
    return (int)k;
}
static int b_read(void *c, uint8_t *buf, size_t cap)
{
    (void)c;
    if (B.conn_state < 0)
        return -1;
    size_t n = B.net_in_len < cap ? B.net_in_len : cap;
    memcpy(buf, B.net_in, n);
    memmove(B.net_in, B.net_in + n, B.net_in_len - n);
    B.net_in_len -= n;
    return (int)n;
}
static void b_close(void *c) { (void)c; B.closes++; }
static void b_uart(void *c, const uint8_t *d, size_t n)
{
    (void)c;
    if (sizeof B.uart - 1 - B.uart_len >= n) {
        memcpy(B.uart + B.uart_len, d, n);
        B.uart_len += n;
        B.uart[B.uart_len] = '\0';
    }
}
static bool b_sread(void *c, uint32_t off, uint8_t *buf, size_t len)
{
    (void)c;
    if (off > AGENT_STORE_SIZE || len > AGENT_STORE_SIZE - off)
        return false;
    memcpy(buf, B.store + off, len);
    return true;
}
static bool b_swrite(void *c, uint32_t off, const uint8_t *buf, size_t len)
{
    (void)c;
    if (off > AGENT_STORE_SIZE || len > AGENT_STORE_SIZE - off)
        return false;
    memcpy(B.store + off, buf, len);
    return true;
}
static void b_reboot(void *c) { (void)c; B.reboots++; }
static uint32_t b_heap(void *c) { (void)c; return 31337; }

static const agent_io IO = { NULL, b_millis, b_connect, b_connected, b_write, b_read, b_close,
                             b_uart, b_sread, b_swrite, NULL, b_reboot, b_heap };

static void boot(bool wipe)
{
    uint8_t keep[AGENT_STORE_SIZE];
    memcpy(keep, B.store, sizeof keep);
    memset(&B, 0, sizeof B);
    if (wipe)
        memset(B.store, 0xFF, sizeof B.store);
    else
        memcpy(B.store, keep, sizeof keep);
    B.now = 5;
    agent_init(&IO);
}

static void say(const char *s)
{
    agent_uart_input((const uint8_t *)s, strlen(s));
    agent_poll();
}

/* True if the UART output so far contains this exact line. */
static bool saw(const char *line)
{
    size_t n = strlen(line);
    for (const char *p = B.uart; (p = strstr(p, line)) != NULL; p++)
        if ((p == B.uart || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static void clear_uart(void)
{
    B.uart_len = 0;
    B.uart[0] = '\0';
}

static void broker_send(const uint8_t *d, size_t n)
{
    memcpy(B.net_in + B.net_in_len, d, n);
    B.net_in_len += n;
    for (int i = 0; i < 5; i++)
        agent_poll();
}

static void bring_up(const char *connect_line)
{
    say(connect_line);
    B.conn_state = 1;
    agent_poll();
    static const uint8_t connack[] = { 0x20, 2, 0, 0 };
    broker_send(connack, sizeof connack);
}

TEST(agent_banner)
{
    boot(true);
    CHECK(saw("@ready fw=mqtt-hil-agent/0.1 bug=none heap=31337 restored=0"));
}

TEST(agent_rejects_bad_lines_and_keeps_going)
{
    boot(true);
    clear_uart();
    say("frobnicate\n");
    CHECK(saw("@err frobnicate reason=unknown_command"));
    say("publish topic=a qos=1 colour=red\n");
    CHECK(saw("@err publish reason=unknown_key detail=colour"));
    say("publish qos=1\n");
    CHECK(saw("@err publish reason=missing_key detail=topic"));
    say("publish topic=a qos=3\n");
    CHECK(saw("@err publish reason=bad_value detail=qos"));
    say("publish topic=a qos=01x\n");
    CHECK(saw("@err publish reason=bad_value detail=qos"));
    say("publish topic=a%2 qos=1\n");
    CHECK(saw("@err publish reason=bad_escape detail=topic%3Da%252"));
    say("publish topic=a topic=b\n");
    CHECK(saw("@err publish reason=duplicate_key detail=topic%3Db"));
    say("publish topic\n");
    CHECK(saw("@err publish reason=bad_syntax detail=topic"));
    say("PUBLISH topic=a\n");
    CHECK(saw("@err ? reason=bad_verb"));
    say("publish \x01topic=a\n");
    CHECK(saw("@err ? reason=bad_syntax"));
    say("connect id=x will_payload=y\n");
    CHECK(saw("@err connect reason=missing_key detail=will_topic"));
    say("connect id=x pass=y\n");
    CHECK(saw("@err connect reason=missing_key detail=user"));
    say("connect id=x backoff_ms=5000 backoff_max_ms=10\n");
    CHECK(saw("@err connect reason=bad_value detail=backoff_max_ms"));
    say("status extra=1\n");
    CHECK(saw("@err status reason=unknown_key detail=extra"));
    say("publish topic=a qos=1\n");
    CHECK(saw("@err publish reason=not_connected"));
    /* Blank lines are not commands. */
    size_t before = B.uart_len;
    say("\n\r\n   \n");
    CHECK_EQ(B.uart_len, before);
    say("status\r\n");
    CHECK(saw("@ok status state=idle inflight_out=0 inflight_in=0 heap=31337 uptime_ms=0"));
}

TEST(agent_discards_overlong_lines)
{
    boot(true);
    clear_uart();
    static char longline[3000];
    memset(longline, 'x', sizeof longline - 1);
    agent_uart_input((const uint8_t *)"publish payload=", 16);
    say(longline);
    CHECK_EQ(B.uart_len, 0); /* still discarding, no answer yet */
    say("\nstatus\n");
    CHECK(saw("@err ? reason=line_too_long"));
    CHECK(saw("@ok status state=idle inflight_out=0 inflight_in=0 heap=31337 uptime_ms=0"));
    /* Exactly the limit is fine. */
    clear_uart();
    static char exact[AGENT_LINE_MAX + 2];
    memset(exact, ' ', AGENT_LINE_MAX);
    memcpy(exact, "status", 6);
    exact[AGENT_LINE_MAX] = '\n';
    say(exact);
    CHECK(!saw("@err ? reason=line_too_long"));
    CHECK(strstr(B.uart, "@ok status") != NULL);
}

TEST(agent_connect_publish_and_events)
{
    boot(true);
    clear_uart();
    say("connect id=dut%201 host=127.0.0.1 port=18831 keepalive=0 will_topic=d/s "
        "will_payload=bye\n");
    CHECK(saw("@ok connect"));
    CHECK_EQ(B.connect_calls, 1);
    CHECK(strcmp(B.host, "127.0.0.1") == 0);
    CHECK_EQ(B.port, 18831);
    agent_poll(); /* still connecting: nothing sent */
    CHECK_EQ(B.net_out_len, 0);
    say("status\n");
    CHECK(strstr(B.uart, "@ok status state=connecting") != NULL);
    B.conn_state = 1;
    for (int i = 0; i < 10; i++)
        agent_poll();
    mqtt_packet p;
    size_t total;
    REQUIRE(mqtt_frame(B.net_out, B.net_out_len, sizeof B.net_out, &total) == MQTT_OK);
    REQUIRE(mqtt_decode(B.net_out, total, &p) == MQTT_OK);
    CHECK_EQ(p.type, MQTT_CONNECT);
    CHECK(p.connect.client_id.len == 5 && memcmp(p.connect.client_id.data, "dut 1", 5) == 0);
    static const uint8_t connack[] = { 0x20, 2, 0, 0 };
    broker_send(connack, sizeof connack);
    CHECK(saw("@connected sp=0"));

    B.net_out_len = 0;
    say("publish topic=a/b qos=1 payload=%00%FFx%20y\n");
    CHECK(saw("@ok publish pid=1"));
    for (int i = 0; i < 10; i++)
        agent_poll();
    REQUIRE(mqtt_frame(B.net_out, B.net_out_len, sizeof B.net_out, &total) == MQTT_OK);
    REQUIRE(mqtt_decode(B.net_out, total, &p) == MQTT_OK);
    CHECK(p.type == MQTT_PUBLISH && p.qos == 1 && p.pid == 1);
    CHECK(p.payload.len == 5 && memcmp(p.payload.data, "\0\xffx y", 5) == 0);

    static const uint8_t puback[] = { 0x40, 2, 0, 1 };
    broker_send(puback, sizeof puback);
    CHECK(saw("@puback pid=1"));
    static const uint8_t suback[] = { 0x90, 4, 0, 2, 1, 0x80 };
    broker_send(suback, sizeof suback);
    CHECK(saw("@suback pid=2 granted=1,128"));
    static const uint8_t msg[] = { 0x3B, 10, 0, 3, 'a', '=', 'b', 0, 9, '%', ' ', 0 };
    broker_send(msg, sizeof msg);
    CHECK(saw("@msg topic=a%3Db qos=1 dup=1 retain=1 pid=9 payload=%25%20%00"));

    say("drop\n");
    CHECK(saw("@disconnected reason=dropped"));
    CHECK(saw("@ok drop"));
    CHECK_EQ(B.closes, 1);
}

TEST(agent_peer_close_and_reboot)
{
    boot(true);
    bring_up("connect id=x host=127.0.0.1 port=1 clean=0 keepalive=0\n");
    CHECK(saw("@connected sp=0"));
    say("publish topic=t qos=2 payload=p\n");
    CHECK(saw("@ok publish pid=1"));
    B.conn_state = -1; /* the broker went away */
    agent_poll();
    CHECK(saw("@disconnected reason=peer_closed"));
    say("status\n");
    CHECK(saw("@ok status state=idle inflight_out=1 inflight_in=0 heap=31337 uptime_ms=0"));
    clear_uart();
    say("reboot\n");
    CHECK(saw("@ok reboot"));
    CHECK_EQ(B.reboots, 1);
    boot(false);
    CHECK(saw("@ready fw=mqtt-hil-agent/0.1 bug=none heap=31337 restored=1"));
    say("erase\n");
    CHECK(saw("@ok erase"));
    boot(false);
    CHECK(saw("@ready fw=mqtt-hil-agent/0.1 bug=none heap=31337 restored=0"));
}

TEST(agent_connect_failure_reported)
{
    boot(true);
    say("connect id=x host=127.0.0.1 port=1\n");
    B.conn_state = -1;
    agent_poll();
    CHECK(saw("@disconnected reason=connect_failed"));
    B.conn_state = 0;
    say("connect id=x host=127.0.0.1 port=1\n");
    say("connect id=x host=127.0.0.1 port=1\n");
    CHECK(saw("@err connect reason=already_connected"));
}

/* The first packet in B.net_out, decoded as 5.0, then dropped from it. */
static bool next_out5(mqtt_packet *p, uint8_t *copy, size_t cap)
{
    for (int i = 0; i < 10; i++)
        agent_poll();
    size_t total;
    if (mqtt_frame(B.net_out, B.net_out_len, sizeof B.net_out, &total) != MQTT_OK || total > cap)
        return false;
    memcpy(copy, B.net_out, total);
    memmove(B.net_out, B.net_out + total, B.net_out_len - total);
    B.net_out_len -= total;
    return mqtt_decode_v(copy, total, MQTT_V5, p) == MQTT_OK;
}

TEST(agent_speaks_mqtt5_lines)
{
    boot(true);
    clear_uart();
    /* props= carries the raw 5.0 property bytes: session expiry 60, user a=b. */
    say("connect id=d5 version=5 keepalive=0 host=127.0.0.1 "
        "props=%11%00%00%00%3C%26%00%01a%00%01b will_topic=w will_payload=x "
        "will_props=%18%00%00%00%05 pass=pw\n");
    CHECK(saw("@ok connect"));
    B.conn_state = 1;
    mqtt_packet p;
    uint8_t copy[256];
    REQUIRE(next_out5(&p, copy, sizeof copy));
    CHECK_EQ(p.type, MQTT_CONNECT);
    CHECK_EQ(p.version, MQTT_V5);
    CHECK(p.props.len == 12 && p.props.data[0] == 0x11);
    CHECK(p.connect.will_props.len == 5 && p.connect.will_props.data[0] == 0x18);
    CHECK(p.connect.has_pass && !p.connect.has_user);
    /* CONNACK with receive maximum 1: its properties are reported raw. */
    static const uint8_t connack[] = { 0x20, 6, 0, 0, 3, 0x21, 0x00, 0x01 };
    broker_send(connack, sizeof connack);
    CHECK(saw("@connected sp=0 props=!%00%01"));

    say("publish topic=t qos=1 payload=a props=%08%00%01r%09%00%01c\n");
    CHECK(saw("@ok publish pid=1"));
    say("publish topic=t qos=1 payload=b\n");
    CHECK(saw("@err publish reason=inflight_full")); /* the broker's receive maximum */
    REQUIRE(next_out5(&p, copy, sizeof copy));
    CHECK(p.type == MQTT_PUBLISH && p.props.len == 8);
    static const uint8_t puback[] = { 0x40, 3, 0, 1, 0x10 };
    broker_send(puback, sizeof puback);
    CHECK(saw("@puback pid=1 rc=16"));

    say("subscribe filter=s/%23 qos=1 nl=1 rap=1 rh=2 props=%0B%07\n");
    CHECK(saw("@ok subscribe pid=2"));
    REQUIRE(next_out5(&p, copy, sizeof copy));
    REQUIRE(p.type == MQTT_SUBSCRIBE);
    size_t pos = 0;
    mqtt_filter fl;
    REQUIRE(mqtt_filter_next(&p, &pos, &fl));
    CHECK_EQ(fl.qos, 1);
    CHECK_EQ(fl.options, MQTT_SUB_NO_LOCAL | MQTT_SUB_RETAIN_AS_PUBLISHED | MQTT_SUB_RETAIN_HANDLING(2));
    static const uint8_t suback[] = { 0x90, 4, 0, 2, 0, 0x87 };
    broker_send(suback, sizeof suback);
    CHECK(saw("@suback pid=2 granted=135"));
    /* A delivery with a subscription identifier and a user property. */
    static const uint8_t msg[] = { 0x30, 14, 0, 1, 'm', 9, 0x0B, 0x07, 0x26, 0, 1, 'k', 0, 1, 'v', 'z' };
    broker_send(msg, sizeof msg);
    CHECK(saw("@msg topic=m qos=0 dup=0 retain=0 pid=0 payload=z props=%0B%07&%00%01k%00%01v"));
    say("subscribe filter=x rh=3\n");
    CHECK(saw("@err subscribe reason=bad_value detail=rh"));
    say("publish topic=t props=%23%00%01\n"); /* the CONNACK allowed no aliases */
    CHECK(saw("@err publish reason=bad_value"));

    say("disconnect rc=4 props=%1F%00%01x\n");
    CHECK(saw("@ok disconnect"));
    REQUIRE(next_out5(&p, copy, sizeof copy));
    CHECK(p.type == MQTT_DISCONNECT && p.rc == 4 && p.props.len == 4);

    /* A broker's DISCONNECT with a reason. */
    clear_uart();
    say("connect id=d5 version=5 keepalive=0 host=127.0.0.1\n");
    static const uint8_t connack0[] = { 0x20, 3, 0, 0, 0 };
    for (int i = 0; i < 10; i++)
        agent_poll();
    broker_send(connack0, sizeof connack0);
    CHECK(saw("@connected sp=0"));
    static const uint8_t disc[] = { 0xE0, 1, 0x8E };
    broker_send(disc, sizeof disc);
    CHECK(saw("@disconnected reason=server_disconnect rc=142"));
    /* 3.1.1 has no properties. */
    say("connect id=d3 props=%11%00%00%00%3C\n");
    CHECK(saw("@err connect reason=bad_value detail=props"));
}
