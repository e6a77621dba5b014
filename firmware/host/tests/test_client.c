#include "fake.h"
#include "test.h"

static fake F, G;
static fake_store ST;

static void setup(void)
{
    fake_store_init(&ST);
    fake_init(&F, &ST);
}

#define SL(s) ((mqtt_slice){ (const uint8_t *)(s), strlen(s) })
#define EQ(sl, s) ((sl).len == strlen(s) && memcmp((sl).data, (s), (sl).len) == 0)

static uint16_t pub(fake *f, const char *topic, const char *payload, uint8_t qos)
{
    uint16_t pid = 0;
    mqtt_result r = mqtt_client_publish(&f->c, (const uint8_t *)topic, strlen(topic),
                                        (const uint8_t *)payload, strlen(payload), qos, false,
                                        &pid, f->now);
    CHECK_EQ(r, MQTT_C_OK);
    return pid;
}

TEST(client_connect_carries_will_user_pass)
{
    setup();
    mqtt_connect_opts o = fake_opts("dut-1", true);
    o.has_will = true;
    o.will_topic = SL("dut/1/status");
    o.will_payload = SL("offline");
    o.will_qos = 1;
    o.will_retain = true;
    o.has_user = o.has_pass = true;
    o.user = SL("user");
    o.pass = SL("secret");
    o.keepalive = 7;
    REQUIRE(mqtt_client_connect(&F.c, &o, F.now) == MQTT_C_OK);
    CHECK_EQ(F.opens, 1);
    CHECK_EQ(F.c.state, MQTT_ST_TCP);
    mqtt_client_on_open(&F.c, F.now);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p));
    REQUIRE(p.type == MQTT_CONNECT);
    CHECK(EQ(p.connect.client_id, "dut-1"));
    CHECK(p.connect.clean);
    CHECK_EQ(p.connect.keepalive, 7);
    CHECK(p.connect.will && p.connect.will_retain);
    CHECK_EQ(p.connect.will_qos, 1);
    CHECK(EQ(p.connect.will_topic, "dut/1/status"));
    CHECK(EQ(p.connect.will_payload, "offline"));
    CHECK(EQ(p.connect.user, "user") && EQ(p.connect.pass, "secret"));
    fake_connack(&F, false, 0);
    CHECK_EQ(F.c.state, MQTT_ST_UP);
    CHECK_EQ(fake_count(&F, "connected sp=0"), 1);
}

TEST(client_refused_connack_goes_idle)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", true);
    mqtt_client_connect(&F.c, &o, F.now);
    mqtt_client_on_open(&F.c, F.now);
    fake_connack(&F, false, 5);
    CHECK_EQ(fake_count(&F, "refused rc=5"), 1);
    CHECK_EQ(F.c.state, MQTT_ST_IDLE);
    CHECK_EQ(F.closes, 1);
}

TEST(client_first_packet_must_be_connack)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", true);
    mqtt_client_connect(&F.c, &o, F.now);
    mqtt_client_on_open(&F.c, F.now);
    fake_ack(&F, MQTT_PUBACK, 1);
    CHECK_EQ(fake_count(&F, "disconnected protocol_error"), 1);
    CHECK_EQ(F.c.state, MQTT_ST_IDLE);
}

TEST(client_garbage_from_broker_closes_cleanly)
{
    static const uint8_t junk[][6] = {
        { 0xF0, 0, 0, 0, 0, 0 },          /* reserved type */
        { 0x20, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F }, /* too long to buffer */
        { 0x20, 3, 0, 0, 0, 0 },          /* CONNACK with a trailing byte */
        { 0x10, 0, 0, 0, 0, 0 },          /* CONNECT from the broker */
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        setup();
        mqtt_connect_opts o = fake_opts("x", true);
        fake_connect_up(&F, &o, false);
        fake_feed_raw(&F, junk[i], sizeof junk[i]);
        CHECK_EQ(fake_count(&F, "disconnected protocol_error"), 1);
        CHECK_EQ(F.c.state, MQTT_ST_IDLE);
    }
}

TEST(client_qos1_publish_and_puback)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", true);
    fake_connect_up(&F, &o, false);
    fake_clear_sent(&F);
    uint16_t pid = pub(&F, "a/b", "one", 1);
    CHECK(pid != 0);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBLISH && p.qos == 1 && p.pid == pid && !p.dup);
    CHECK(EQ(p.topic, "a/b") && EQ(p.payload, "one"));
    CHECK_EQ(F.c.s.n_out, 1);
    fake_ack(&F, MQTT_PUBACK, pid);
    CHECK_EQ(F.c.s.n_out, 0);
    CHECK_EQ(fake_count(&F, "puback"), 1);
    /* A second PUBACK for the same id is not a second completion. */
    fake_ack(&F, MQTT_PUBACK, pid);
    CHECK_EQ(fake_count(&F, "puback"), 1);
}

TEST(client_qos2_publish_full_flow)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", true);
    fake_connect_up(&F, &o, false);
    fake_clear_sent(&F);
    uint16_t pid = pub(&F, "a/b", "two", 2);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_PUBLISH && p.qos == 2);
    fake_ack(&F, MQTT_PUBREC, pid);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBREL && p.pid == pid);
    CHECK_EQ(F.c.s.out[0].state, MQTT_OUT_AWAIT_PUBCOMP);
    fake_ack(&F, MQTT_PUBCOMP, pid);
    CHECK_EQ(F.c.s.n_out, 0);
    CHECK_EQ(fake_count(&F, "pubrec pid="), 1);
    CHECK_EQ(fake_count(&F, "pubcomp pid="), 1);
}

TEST(client_inflight_table_limit)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", true);
    fake_connect_up(&F, &o, false);
    for (int i = 0; i < MQTT_MAX_INFLIGHT; i++)
        pub(&F, "t", "p", 1);
    uint16_t pid;
    CHECK_EQ(mqtt_client_publish(&F.c, (const uint8_t *)"t", 1, NULL, 0, 1, false, &pid, F.now),
             MQTT_C_INFLIGHT_FULL);
    static uint8_t big[MQTT_INFLIGHT_DATA];
    memset(big, 'x', sizeof big);
    setup();
    fake_connect_up(&F, &o, false);
    CHECK_EQ(mqtt_client_publish(&F.c, (const uint8_t *)"t", 1, big, sizeof big, 1, false, &pid,
                                 F.now),
             MQTT_C_TOO_BIG);
    CHECK_EQ(mqtt_client_publish(&F.c, (const uint8_t *)"t", 1, big, sizeof big, 0, false, &pid,
                                 F.now),
             MQTT_C_OK);
    CHECK_EQ(mqtt_client_publish(&F.c, (const uint8_t *)"a/+", 3, NULL, 0, 0, false, &pid, F.now),
             MQTT_C_BAD_TOPIC);
}

/* 4.4.0-1: a resumed session resends, in the original order, PUBLISH with
 * DUP=1 for what got no PUBACK/PUBREC and PUBREL for what got PUBREC. */
TEST(client_resumed_session_resends_in_order)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", false);
    fake_connect_up(&F, &o, false);
    uint16_t a = pub(&F, "t/a", "A", 2);
    uint16_t b = pub(&F, "t/b", "B", 1);
    uint16_t c = pub(&F, "t/c", "C", 2);
    fake_ack(&F, MQTT_PUBREC, a); /* a now awaits PUBCOMP */
    CHECK_EQ(mqtt_client_drop(&F.c, F.now), MQTT_C_OK);
    CHECK_EQ(fake_count(&F, "disconnected dropped"), 1);
    fake_clear_sent(&F);
    F.now += 50;
    fake_connect_up(&F, &o, true);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_CONNECT);
    CHECK(!p.connect.clean);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBREL && p.pid == a);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBLISH && p.pid == b && p.dup && p.qos == 1 && EQ(p.payload, "B"));
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBLISH && p.pid == c && p.dup && p.qos == 2 && EQ(p.topic, "t/c"));
    CHECK(!fake_next_sent(&F, &p));
}

TEST(client_clean_connect_wipes_session)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", false);
    fake_connect_up(&F, &o, false);
    pub(&F, "t", "x", 2);
    fake_publish(&F, "in", "y", 2, false, 9);
    mqtt_client_drop(&F.c, F.now);
    CHECK_EQ(F.c.s.n_out, 1);
    CHECK_EQ(F.c.s.n_in, 1);
    o.clean = true;
    fake_clear_sent(&F);
    fake_connect_up(&F, &o, false);
    CHECK_EQ(F.c.s.n_out, 0);
    CHECK_EQ(F.c.s.n_in, 0);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_CONNECT);
    CHECK(!fake_next_sent(&F, &p)); /* nothing resent */
    fake_init(&G, &ST);
    CHECK_EQ(mqtt_client_restored(&G.c), 0);
}

TEST(client_qos2_retransmission_is_not_delivered_again)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", false);
    fake_connect_up(&F, &o, false);
    fake_clear_sent(&F);
    fake_publish(&F, "in/q2", "once", 2, false, 7);
    CHECK_EQ(fake_count(&F, "msg in/q2 q2 d0 r0 pid=7 once"), 1);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBREC && p.pid == 7);
    /* The PUBREC was lost: the broker retransmits with DUP=1. */
    fake_publish(&F, "in/q2", "once", 2, true, 7);
    CHECK_EQ(fake_count(&F, "msg in/q2"), 1);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBREC && p.pid == 7);
    fake_ack(&F, MQTT_PUBREL, 7);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBCOMP && p.pid == 7);
    CHECK_EQ(F.c.s.n_in, 0);
    /* After PUBREL the id is free: a new message with it is new. */
    fake_publish(&F, "in/q2", "again", 2, false, 7);
    CHECK_EQ(fake_count(&F, "msg in/q2"), 2);
}

TEST(client_qos1_incoming_is_acked)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", true);
    fake_connect_up(&F, &o, false);
    fake_clear_sent(&F);
    fake_publish(&F, "in/q1", "m", 1, false, 300);
    CHECK_EQ(fake_count(&F, "msg in/q1 q1 d0 r0 pid=300 m"), 1);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBACK && p.pid == 300);
    /* An unknown PUBREL is still answered. */
    fake_ack(&F, MQTT_PUBREL, 55);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBCOMP && p.pid == 55);
}

TEST(client_inflight_survives_reboot)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", false);
    fake_connect_up(&F, &o, false);
    uint16_t a = pub(&F, "t/a", "A", 2);
    uint16_t b = pub(&F, "t/b", "B", 2);
    fake_ack(&F, MQTT_PUBREC, a);
    fake_publish(&F, "in", "I", 2, false, 40);
    /* Board reset: a new client over the same store. */
    fake_init(&G, &ST);
    CHECK_EQ(mqtt_client_restored(&G.c), 3);
    fake_connect_up(&G, &o, true);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&G, &p) && p.type == MQTT_CONNECT);
    REQUIRE(fake_next_sent(&G, &p));
    CHECK(p.type == MQTT_PUBREL && p.pid == a);
    REQUIRE(fake_next_sent(&G, &p));
    CHECK(p.type == MQTT_PUBLISH && p.pid == b && p.dup && EQ(p.payload, "B"));
    fake_publish(&G, "in", "I", 2, true, 40);
    CHECK_EQ(fake_count(&G, "msg in"), 0);
    /* New packet ids do not collide with restored ones. */
    uint16_t c = pub(&G, "t/c", "C", 1);
    CHECK(c != a && c != b);
}

TEST(client_store_corruption_means_empty_or_previous)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", false);
    fake_connect_up(&F, &o, false);
    pub(&F, "t", "1", 1); /* record seq 1 in slot 0 */
    pub(&F, "t", "2", 1); /* record seq 2 in slot 1 */
    fake_init(&G, &ST);
    CHECK_EQ(mqtt_client_restored(&G.c), 2);
    /* A torn write of the newest record: fall back to the previous one. */
    ST.mem[MQTT_STORE_SLOT_SIZE + 20] ^= 0x55;
    fake_init(&G, &ST);
    CHECK_EQ(mqtt_client_restored(&G.c), 1);
    /* Both corrupt: empty, and saving still works afterwards. */
    ST.mem[20] ^= 0x55;
    fake_init(&G, &ST);
    CHECK_EQ(mqtt_client_restored(&G.c), 0);
    fake_connect_up(&G, &o, false);
    pub(&G, "t", "3", 1);
    fake_init(&F, &ST);
    CHECK_EQ(mqtt_client_restored(&F.c), 1);
    /* A failing store refuses QoS>0 publishes rather than losing them. */
    fake_connect_up(&F, &o, false);
    ST.fail = true;
    uint16_t pid;
    CHECK_EQ(mqtt_client_publish(&F.c, (const uint8_t *)"t", 1, NULL, 0, 2, false, &pid, F.now),
             MQTT_C_STORE_FAILED);
}

TEST(client_keepalive_ping_and_timeout)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", true);
    o.keepalive = 2;
    fake_connect_up(&F, &o, false);
    fake_clear_sent(&F);
    mqtt_packet p;
    F.now += 1999;
    mqtt_client_tick(&F.c, F.now);
    CHECK(!fake_next_sent(&F, &p));
    F.now += 1;
    mqtt_client_tick(&F.c, F.now);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK_EQ(p.type, MQTT_PINGREQ);
    fake_ack(&F, MQTT_PINGRESP, 0);
    F.now += 2000;
    mqtt_client_tick(&F.c, F.now);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK_EQ(p.type, MQTT_PINGREQ);
    /* No PINGRESP this time. */
    F.now += 1999;
    mqtt_client_tick(&F.c, F.now);
    CHECK_EQ(F.c.state, MQTT_ST_UP);
    F.now += 1;
    mqtt_client_tick(&F.c, F.now);
    CHECK_EQ(fake_count(&F, "disconnected keepalive_timeout"), 1);
    CHECK_EQ(F.c.state, MQTT_ST_IDLE);
}

TEST(client_connack_timeout)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", true);
    o.keepalive = 3;
    mqtt_client_connect(&F.c, &o, F.now);
    mqtt_client_on_open(&F.c, F.now);
    F.now += 3000;
    mqtt_client_tick(&F.c, F.now);
    CHECK_EQ(fake_count(&F, "disconnected connack_timeout"), 1);
}

TEST(client_reconnect_backs_off_exponentially)
{
    setup();
    /* Start near the wrap of the millisecond counter. */
    F.now = 0xFFFFF000u;
    mqtt_connect_opts o = fake_opts("x", true);
    o.reconnect = true;
    o.backoff_ms = 1000;
    o.backoff_max_ms = 4000;
    mqtt_client_connect(&F.c, &o, F.now);
    uint32_t expect[] = { 1000, 2000, 4000, 4000 };
    for (int i = 0; i < 4; i++) {
        int opens = F.opens;
        mqtt_client_on_closed(&F.c, F.now); /* connection refused */
        CHECK_EQ(F.c.state, MQTT_ST_BACKOFF);
        F.now += expect[i] - 1;
        mqtt_client_tick(&F.c, F.now);
        CHECK_EQ(F.opens, opens);
        F.now += 1;
        mqtt_client_tick(&F.c, F.now);
        CHECK_EQ(F.opens, opens + 1);
    }
    CHECK_EQ(fake_count(&F, "disconnected connect_failed"), 4);
    /* A good connection resets the delay. */
    mqtt_client_on_open(&F.c, F.now);
    fake_connack(&F, false, 0);
    mqtt_client_on_closed(&F.c, F.now);
    CHECK_EQ(fake_count(&F, "disconnected peer_closed"), 1);
    int opens = F.opens;
    F.now += 999;
    mqtt_client_tick(&F.c, F.now);
    CHECK_EQ(F.opens, opens);
    F.now += 1;
    mqtt_client_tick(&F.c, F.now);
    CHECK_EQ(F.opens, opens + 1);
    /* disconnect stops reconnecting. */
    mqtt_client_on_open(&F.c, F.now);
    fake_connack(&F, false, 0);
    CHECK_EQ(mqtt_client_disconnect(&F.c, F.now), MQTT_C_OK);
    F.now += 100000;
    mqtt_client_tick(&F.c, F.now);
    CHECK_EQ(F.c.state, MQTT_ST_IDLE);
}

TEST(client_bytes_one_at_a_time)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", true);
    mqtt_client_connect(&F.c, &o, F.now);
    mqtt_client_on_open(&F.c, F.now);
    static const uint8_t in[] = { 0x20, 2, 0, 0, 0x90, 3, 0, 1, 2, 0x30, 5, 0, 1, 't', 'h', 'i' };
    for (size_t i = 0; i < sizeof in; i++)
        fake_feed_raw(&F, in + i, 1);
    CHECK_EQ(fake_count(&F, "connected sp=0"), 1);
    CHECK_EQ(fake_count(&F, "suback pid=1"), 1);
    CHECK_EQ(fake_count(&F, "msg t q0 d0 r0 pid=0 hi"), 1);
}

TEST(client_commands_need_a_connection)
{
    setup();
    uint16_t pid;
    CHECK_EQ(mqtt_client_publish(&F.c, (const uint8_t *)"t", 1, NULL, 0, 1, false, &pid, F.now),
             MQTT_C_NOT_CONNECTED);
    CHECK_EQ(mqtt_client_subscribe(&F.c, (const uint8_t *)"t", 1, 1, &pid, F.now),
             MQTT_C_NOT_CONNECTED);
    CHECK_EQ(mqtt_client_drop(&F.c, F.now), MQTT_C_NOT_CONNECTED);
    CHECK_EQ(mqtt_client_disconnect(&F.c, F.now), MQTT_C_NOT_CONNECTED);
    mqtt_connect_opts o = fake_opts("x", true);
    fake_connect_up(&F, &o, false);
    CHECK_EQ(mqtt_client_connect(&F.c, &o, F.now), MQTT_C_ALREADY_CONNECTED);
    CHECK_EQ(mqtt_client_subscribe(&F.c, (const uint8_t *)"a/#/b", 5, 1, &pid, F.now),
             MQTT_C_BAD_TOPIC);
}

TEST(client_clean_session_ends_with_its_connection)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", true);
    o.reconnect = true;
    fake_connect_up(&F, &o, false);
    pub(&F, "t", "x", 2);
    fake_publish(&F, "in", "y", 2, false, 3);
    mqtt_client_on_closed(&F.c, F.now);
    CHECK_EQ(F.c.s.n_out, 0);
    CHECK_EQ(F.c.s.n_in, 0);
    fake_init(&G, &ST);
    CHECK_EQ(mqtt_client_restored(&G.c), 0);
}

/* The two halves of 4.4.0-1 on their own, so each seeded bug has a guard
 * that checks nothing else. */
static void resume_with(uint8_t first_state_ack, mqtt_packet *first_resent)
{
    setup();
    mqtt_connect_opts o = fake_opts("x", false);
    fake_connect_up(&F, &o, false);
    uint16_t a = pub(&F, "t/a", "A", 2);
    if (first_state_ack)
        fake_ack(&F, first_state_ack, a);
    mqtt_client_drop(&F.c, F.now);
    fake_clear_sent(&F);
    fake_connect_up(&F, &o, true);
    mqtt_packet p;
    first_resent->type = 0;
    if (fake_next_sent(&F, &p) && p.type == MQTT_CONNECT)
        fake_next_sent(&F, first_resent);
}

TEST(client_resent_publish_has_dup)
{
    mqtt_packet p;
    resume_with(0, &p);
    REQUIRE(p.type == MQTT_PUBLISH);
    CHECK(p.dup);
}

TEST(client_resent_pubrel_after_pubrec)
{
    mqtt_packet p;
    resume_with(MQTT_PUBREC, &p);
    CHECK_EQ(p.type, MQTT_PUBREL);
}
