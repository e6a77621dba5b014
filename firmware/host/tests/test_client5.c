/* The client speaking MQTT 5.0 against a scripted broker side: properties
 * out and in, the broker's limits kept (receive maximum, maximum packet size,
 * server keep alive, assigned client id), topic aliases, reason codes. */
#include "fake.h"
#include "test.h"

static fake F;
static fake_store ST;

#define SL(s) ((mqtt_slice){ (const uint8_t *)(s), strlen(s) })
#define EQ(sl, s) ((sl).len == strlen(s) && memcmp((sl).data, (s), (sl).len) == 0)

static void setup(void)
{
    fake_store_init(&ST);
    fake_init(&F, &ST);
}

static mqtt_connect_opts opts5(const char *id, bool clean)
{
    mqtt_connect_opts o = fake_opts(id, clean);
    o.version = MQTT_V5;
    return o;
}

/* Connects and answers with a CONNACK carrying `props`. */
static void up_with(const mqtt_connect_opts *o, bool sp, mqtt_slice props)
{
    REQUIRE(mqtt_client_connect(&F.c, o, F.now) == MQTT_C_OK);
    mqtt_client_on_open(&F.c, F.now);
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNACK;
    p.version = MQTT_V5;
    p.session_present = sp;
    p.props = props;
    fake_feed(&F, &p);
}

static mqtt_slice connack_props(uint8_t *buf, size_t cap, uint32_t recv_max, uint32_t max_packet)
{
    mqtt_props_buf b;
    mqtt_props_init(&b, buf, cap);
    if (recv_max)
        mqtt_props_num(&b, MQTT_P_RECEIVE_MAXIMUM, recv_max);
    if (max_packet)
        mqtt_props_num(&b, MQTT_P_MAXIMUM_PACKET_SIZE, max_packet);
    return mqtt_props_slice(&b);
}

static mqtt_result pub5(const char *topic, const char *payload, uint8_t qos, mqtt_slice props,
                        uint16_t *pid)
{
    return mqtt_client_publish_props(&F.c, (const uint8_t *)topic, strlen(topic),
                                     (const uint8_t *)payload, strlen(payload), qos, false, props,
                                     pid, F.now);
}

static const mqtt_slice none = { NULL, 0 };

TEST(client5_connect_properties_and_connack_limits)
{
    setup();
    uint8_t pb[64], wb[64], cb[64];
    mqtt_props_buf props, will, ack;
    mqtt_props_init(&props, pb, sizeof pb);
    mqtt_props_num(&props, MQTT_P_SESSION_EXPIRY, 300);
    mqtt_props_num(&props, MQTT_P_RECEIVE_MAXIMUM, 8);
    mqtt_props_num(&props, MQTT_P_MAXIMUM_PACKET_SIZE, 1536);
    mqtt_props_num(&props, MQTT_P_TOPIC_ALIAS_MAXIMUM, 2);
    mqtt_props_user(&props, SL("site"), SL("lab"));
    mqtt_props_init(&will, wb, sizeof wb);
    mqtt_props_num(&will, MQTT_P_WILL_DELAY, 10);
    mqtt_props_str(&will, MQTT_P_CONTENT_TYPE, SL("text/plain"));
    mqtt_connect_opts o = opts5("", false);
    o.props = mqtt_props_slice(&props);
    o.has_will = true;
    o.will_topic = SL("dut/status");
    o.will_payload = SL("gone");
    o.will_props = mqtt_props_slice(&will);
    o.has_pass = true; /* 5.0: a password without a user name is allowed */
    o.pass = SL("pw");
    o.keepalive = 60;
    o.reconnect = true;
    mqtt_props_init(&ack, cb, sizeof cb);
    mqtt_props_num(&ack, MQTT_P_RECEIVE_MAXIMUM, 2);
    mqtt_props_num(&ack, MQTT_P_SERVER_KEEP_ALIVE, 3);
    mqtt_props_str(&ack, MQTT_P_ASSIGNED_CLIENT_ID, SL("auto-7"));
    up_with(&o, false, mqtt_props_slice(&ack));

    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_CONNECT);
    CHECK_EQ(p.version, MQTT_V5);
    CHECK(p.props.len == props.len && memcmp(p.props.data, pb, props.len) == 0);
    CHECK(p.connect.will_props.len == will.len && memcmp(p.connect.will_props.data, wb, will.len) == 0);
    CHECK(p.connect.has_pass && !p.connect.has_user);
    CHECK_EQ(F.c.state, MQTT_ST_UP);
    CHECK_EQ(F.c.peer_recv_max, 2);
    /* 3.2.2-21: the server's keep alive replaces ours: a PINGREQ after 3 s. */
    fake_clear_sent(&F);
    F.now += 2999;
    mqtt_client_tick(&F.c, F.now);
    CHECK(!fake_next_sent(&F, &p));
    F.now += 1;
    mqtt_client_tick(&F.c, F.now);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK_EQ(p.type, MQTT_PINGREQ);
    /* The assigned id is what a reconnect uses to find its session. */
    mqtt_client_drop(&F.c, F.now);
    fake_clear_sent(&F);
    F.now += 1000;
    mqtt_client_tick(&F.c, F.now);
    mqtt_client_on_open(&F.c, F.now);
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_CONNECT);
    CHECK(EQ(p.connect.client_id, "auto-7"));
}

TEST(client5_rejects_bad_connect_properties)
{
    setup();
    mqtt_connect_opts o = opts5("x", true);
    static const uint8_t alias_in_connect[] = { 0x23, 0x00, 0x01 };
    o.props = (mqtt_slice){ alias_in_connect, sizeof alias_in_connect };
    CHECK_EQ(mqtt_client_connect(&F.c, &o, F.now), MQTT_C_BAD_ARG);
    static const uint8_t will_delay[] = { 0x18, 0x00, 0x00, 0x00, 0x01 };
    o.props = (mqtt_slice){ will_delay, sizeof will_delay }; /* a will property */
    CHECK_EQ(mqtt_client_connect(&F.c, &o, F.now), MQTT_C_BAD_ARG);
    mqtt_connect_opts v3 = fake_opts("x", true);
    v3.props = (mqtt_slice){ will_delay, sizeof will_delay };
    CHECK_EQ(mqtt_client_connect(&F.c, &v3, F.now), MQTT_C_BAD_ARG); /* no properties in 3.1.1 */
    CHECK_EQ(F.opens, 0);
}

TEST(client5_flow_control_never_exceeds_receive_maximum)
{
    setup();
    uint8_t cb[16];
    mqtt_connect_opts o = opts5("fc", false);
    up_with(&o, false, connack_props(cb, sizeof cb, 2, 0));
    uint16_t a, b, c;
    CHECK_EQ(pub5("t", "a", 1, none, &a), MQTT_C_OK);
    CHECK_EQ(pub5("t", "b", 2, none, &b), MQTT_C_OK);
    CHECK_EQ(pub5("t", "c", 1, none, &c), MQTT_C_INFLIGHT_FULL);
    CHECK_EQ(pub5("t", "q0", 0, none, &c), MQTT_C_OK); /* QoS 0 is not counted */
    fake_ack(&F, MQTT_PUBREC, b);
    CHECK_EQ(pub5("t", "c", 1, none, &c), MQTT_C_INFLIGHT_FULL); /* b counts until PUBCOMP */
    fake_ack(&F, MQTT_PUBACK, a);
    CHECK_EQ(pub5("t", "c", 1, none, &c), MQTT_C_OK);
    CHECK_EQ(F.c.s.n_out, 2);
}

TEST(client5_resend_after_reconnect_respects_new_receive_maximum)
{
    setup();
    uint8_t cb[16];
    mqtt_connect_opts o = opts5("fc", false);
    up_with(&o, false, connack_props(cb, sizeof cb, 3, 0));
    uint16_t a, b, c;
    REQUIRE(pub5("t", "a", 1, none, &a) == MQTT_C_OK);
    REQUIRE(pub5("t", "b", 1, none, &b) == MQTT_C_OK);
    REQUIRE(pub5("t", "c", 1, none, &c) == MQTT_C_OK);
    mqtt_client_drop(&F.c, F.now);
    fake_clear_sent(&F);
    F.now += 10;
    up_with(&o, true, connack_props(cb, sizeof cb, 1, 0));
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_CONNECT);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBLISH && p.pid == a && p.dup);
    CHECK(!fake_next_sent(&F, &p)); /* only one unacknowledged allowed */
    fake_ack(&F, MQTT_PUBACK, a);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBLISH && p.pid == b && p.dup);
    CHECK(!fake_next_sent(&F, &p));
    fake_ack(&F, MQTT_PUBACK, b);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBLISH && p.pid == c);
    fake_ack(&F, MQTT_PUBACK, c);
    CHECK(!fake_next_sent(&F, &p));
    CHECK_EQ(F.c.s.n_out, 0);
}

TEST(client5_never_sends_above_maximum_packet_size)
{
    setup();
    uint8_t cb[16];
    mqtt_connect_opts o = opts5("mp", true);
    up_with(&o, false, connack_props(cb, sizeof cb, 0, 16));
    fake_clear_sent(&F);
    uint16_t pid;
    /* PUBLISH t, QoS 1: 2 + 3 + 2 + 1 + payload; 16 fits 8 bytes of payload. */
    CHECK_EQ(pub5("t", "123456789", 1, none, &pid), MQTT_C_TOO_BIG);
    CHECK_EQ(pub5("t", "123456789", 0, none, &pid), MQTT_C_OK); /* 15 bytes at QoS 0 */
    CHECK_EQ(pub5("t", "12345678", 1, none, &pid), MQTT_C_OK);
    CHECK_EQ(mqtt_client_subscribe(&F.c, (const uint8_t *)"a/very/long/filter", 18, 1, &pid, F.now),
             MQTT_C_TOO_BIG);
    mqtt_packet p;
    size_t biggest = 0;
    size_t before = F.sent_read;
    while (fake_next_sent(&F, &p)) {
        CHECK(F.sent_read - before <= 16);
        if (F.sent_read - before > biggest)
            biggest = F.sent_read - before;
        before = F.sent_read;
    }
    CHECK_EQ(biggest, 16);
    CHECK_EQ(F.c.state, MQTT_ST_UP);
}

static void feed_publish5(const char *topic, uint16_t alias, const char *payload)
{
    uint8_t pb[8];
    mqtt_props_buf b;
    mqtt_props_init(&b, pb, sizeof pb);
    if (alias)
        mqtt_props_num(&b, MQTT_P_TOPIC_ALIAS, alias);
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.version = MQTT_V5;
    p.topic = SL(topic);
    p.payload = SL(payload);
    p.props = mqtt_props_slice(&b);
    fake_feed(&F, &p);
}

TEST(client5_incoming_topic_aliases)
{
    setup();
    uint8_t pb[8];
    mqtt_props_buf props;
    mqtt_props_init(&props, pb, sizeof pb);
    mqtt_props_num(&props, MQTT_P_TOPIC_ALIAS_MAXIMUM, 2);
    mqtt_connect_opts o = opts5("al", true);
    o.props = mqtt_props_slice(&props);
    up_with(&o, false, none);
    feed_publish5("a/b", 1, "one");
    feed_publish5("", 1, "two");
    feed_publish5("c", 2, "three");
    feed_publish5("", 2, "four");
    CHECK_EQ(fake_count(&F, "msg a/b q0 d0 r0 pid=0 one"), 1);
    CHECK_EQ(fake_count(&F, "msg a/b q0 d0 r0 pid=0 two"), 1);
    CHECK_EQ(fake_count(&F, "msg c q0 d0 r0 pid=0 four"), 1);
    /* 3.3.2-10: above what we announced is a protocol error, said with 0x94. */
    fake_clear_sent(&F);
    feed_publish5("x", 3, "five");
    CHECK_EQ(fake_count(&F, "five"), 0);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_DISCONNECT && p.rc == 0x94);
    CHECK_EQ(F.c.state, MQTT_ST_IDLE);
    /* Aliases live as long as their connection (3.3.2-7). */
    fake_clear_events(&F);
    up_with(&o, false, none);
    fake_clear_sent(&F);
    feed_publish5("", 1, "six");
    CHECK_EQ(fake_count(&F, "six"), 0);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_DISCONNECT && p.rc == 0x82);
}

TEST(client5_publish_properties_survive_reboot_and_resend)
{
    setup();
    mqtt_connect_opts o = opts5("pp", false);
    up_with(&o, false, none);
    uint8_t pb[64];
    mqtt_props_buf b;
    mqtt_props_init(&b, pb, sizeof pb);
    mqtt_props_num(&b, MQTT_P_MESSAGE_EXPIRY, 30);
    mqtt_props_str(&b, MQTT_P_RESPONSE_TOPIC, SL("reply/to"));
    mqtt_props_str(&b, MQTT_P_CORRELATION_DATA, SL("\x01\x02"));
    mqtt_props_user(&b, SL("k"), SL("1"));
    mqtt_props_user(&b, SL("k"), SL("2"));
    uint16_t pid;
    REQUIRE(pub5("t/p", "body", 2, mqtt_props_slice(&b), &pid) == MQTT_C_OK);
    mqtt_packet p;
    fake_next_sent(&F, &p); /* CONNECT */
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_PUBLISH);
    CHECK(p.props.len == b.len && memcmp(p.props.data, pb, b.len) == 0);
    /* Reboot: a new client over the same flash. */
    fake_init(&F, &ST);
    CHECK_EQ(mqtt_client_restored(&F.c), 1);
    up_with(&o, true, none);
    fake_next_sent(&F, &p); /* CONNECT */
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_PUBLISH);
    CHECK(p.dup && p.pid == pid && EQ(p.payload, "body"));
    CHECK(p.props.len == b.len && memcmp(p.props.data, pb, b.len) == 0);
    /* A client never sends a subscription id or (here) an alias. */
    static const uint8_t sub_id[] = { 0x0B, 0x01 };
    CHECK_EQ(pub5("t", "x", 1, (mqtt_slice){ sub_id, 2 }, &pid), MQTT_C_BAD_ARG);
}

TEST(client5_acks_with_reason_codes)
{
    setup();
    mqtt_connect_opts o = opts5("rc", false);
    up_with(&o, false, none);
    uint16_t a, b;
    REQUIRE(pub5("t", "a", 2, none, &a) == MQTT_C_OK);
    REQUIRE(pub5("t", "b", 1, none, &b) == MQTT_C_OK);
    fake_clear_sent(&F);
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.version = MQTT_V5;
    p.type = MQTT_PUBREC;
    p.pid = a;
    p.rc = 0x87; /* not authorized: the exchange ends, no PUBREL (4.3.3) */
    fake_feed(&F, &p);
    CHECK(!fake_next_sent(&F, &p));
    CHECK_EQ(fake_count(&F, "pubrec pid=1 rc=135"), 1);
    p.type = MQTT_PUBACK;
    p.pid = b;
    p.rc = 0x10; /* no matching subscribers */
    fake_feed(&F, &p);
    CHECK_EQ(fake_count(&F, "puback pid=2 rc=16"), 1);
    CHECK_EQ(F.c.s.n_out, 0);
    /* PUBREL for an id we do not hold: PUBCOMP 0x92. */
    fake_ack(&F, MQTT_PUBREL, 77);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_PUBCOMP && p.pid == 77 && p.rc == 0x92);
}

TEST(client5_disconnect_both_ways)
{
    setup();
    mqtt_connect_opts o = opts5("dc", true);
    up_with(&o, false, none);
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.version = MQTT_V5;
    p.type = MQTT_DISCONNECT;
    p.rc = 0x8E; /* session taken over */
    fake_feed(&F, &p);
    CHECK_EQ(fake_count(&F, "disconnected server_disconnect rc=142"), 1);
    CHECK_EQ(F.c.state, MQTT_ST_IDLE);
    up_with(&o, false, none);
    fake_clear_sent(&F);
    CHECK_EQ(mqtt_client_disconnect_rc(&F.c, 0x04, F.now), MQTT_C_OK);
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_DISCONNECT && p.rc == 0x04);
}

TEST(client5_disconnect_properties)
{
    setup();
    uint8_t cb[8], db[16];
    mqtt_props_buf cp, dp;
    mqtt_props_init(&cp, cb, sizeof cb);
    mqtt_props_num(&cp, MQTT_P_SESSION_EXPIRY, 60);
    mqtt_connect_opts o = opts5("dp", false);
    o.props = mqtt_props_slice(&cp);
    up_with(&o, false, none);
    uint16_t pid;
    REQUIRE(pub5("t", "x", 1, none, &pid) == MQTT_C_OK);
    fake_clear_sent(&F);
    /* Expiry 0 on the DISCONNECT ends the session: ours goes too. */
    mqtt_props_init(&dp, db, sizeof db);
    mqtt_props_num(&dp, MQTT_P_SESSION_EXPIRY, 0);
    CHECK_EQ(mqtt_client_disconnect_props(&F.c, 0, mqtt_props_slice(&dp), F.now), MQTT_C_OK);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p));
    CHECK(p.type == MQTT_DISCONNECT && p.rc == 0);
    CHECK(p.props.len == dp.len && memcmp(p.props.data, db, dp.len) == 0);
    CHECK_EQ(F.c.s.n_out, 0);
    /* A CONNECT without expiry cannot be given one at the end (3.14.2.2.2),
     * and a property not allowed on DISCONNECT is refused. */
    mqtt_connect_opts z = opts5("dz", true);
    up_with(&z, false, none);
    mqtt_props_init(&dp, db, sizeof db);
    mqtt_props_num(&dp, MQTT_P_SESSION_EXPIRY, 30);
    CHECK_EQ(mqtt_client_disconnect_props(&F.c, 0, mqtt_props_slice(&dp), F.now), MQTT_C_BAD_ARG);
    mqtt_props_init(&dp, db, sizeof db);
    mqtt_props_num(&dp, MQTT_P_TOPIC_ALIAS, 1);
    CHECK_EQ(mqtt_client_disconnect_props(&F.c, 0, mqtt_props_slice(&dp), F.now), MQTT_C_BAD_ARG);
    CHECK_EQ(F.c.state, MQTT_ST_UP);
}

static mqtt_slice alias_props(uint8_t *buf, size_t cap, uint16_t alias)
{
    mqtt_props_buf b;
    mqtt_props_init(&b, buf, cap);
    mqtt_props_num(&b, MQTT_P_MESSAGE_EXPIRY, 30);
    mqtt_props_num(&b, MQTT_P_TOPIC_ALIAS, alias);
    return mqtt_props_slice(&b);
}

TEST(client5_outgoing_topic_aliases)
{
    setup();
    uint8_t ab[8], pb[16];
    mqtt_props_buf ack;
    mqtt_props_init(&ack, ab, sizeof ab);
    mqtt_props_num(&ack, MQTT_P_TOPIC_ALIAS_MAXIMUM, 2);
    mqtt_connect_opts o = opts5("ta", false);
    up_with(&o, false, mqtt_props_slice(&ack));
    fake_clear_sent(&F);
    mqtt_packet p;
    mqtt_prop pr;
    uint16_t pid;
    /* First use: the topic and the alias; then the alias alone. */
    REQUIRE(pub5("a/b", "1", 0, alias_props(pb, sizeof pb, 1), &pid) == MQTT_C_OK);
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_PUBLISH);
    CHECK(EQ(p.topic, "a/b") && mqtt_prop_find(p.props, MQTT_P_TOPIC_ALIAS, &pr) && pr.num == 1);
    REQUIRE(pub5("a/b", "2", 1, alias_props(pb, sizeof pb, 1), &pid) == MQTT_C_OK);
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_PUBLISH);
    uint16_t kept = pid;
    CHECK(p.topic.len == 0 && p.pid == kept);
    CHECK(mqtt_prop_find(p.props, MQTT_P_TOPIC_ALIAS, &pr) && pr.num == 1);
    CHECK(mqtt_prop_find(p.props, MQTT_P_MESSAGE_EXPIRY, &pr) && pr.num == 30);
    /* A new topic on the same alias sets it again. */
    REQUIRE(pub5("c", "3", 0, alias_props(pb, sizeof pb, 1), &pid) == MQTT_C_OK);
    REQUIRE(fake_next_sent(&F, &p) && EQ(p.topic, "c"));
    /* Above the broker's maximum, or 0: refused (3.2.2-17, 3.3.2-8). */
    CHECK_EQ(pub5("a/b", "4", 0, alias_props(pb, sizeof pb, 3), &pid), MQTT_C_BAD_ARG);
    CHECK_EQ(pub5("a/b", "4", 0, alias_props(pb, sizeof pb, 0), &pid), MQTT_C_BAD_ARG);
    /* The resend after a reconnect carries the topic and no alias: the
     * mapping died with the connection (3.3.2-7). */
    mqtt_client_drop(&F.c, F.now);
    fake_clear_sent(&F);
    up_with(&o, true, mqtt_props_slice(&ack));
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_CONNECT);
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_PUBLISH);
    CHECK(p.dup && p.pid == kept && EQ(p.topic, "a/b") && EQ(p.payload, "2"));
    CHECK(!mqtt_prop_find(p.props, MQTT_P_TOPIC_ALIAS, &pr));
    CHECK(mqtt_prop_find(p.props, MQTT_P_MESSAGE_EXPIRY, &pr) && pr.num == 30);
    /* And the next use of alias 1 sets it anew. */
    REQUIRE(pub5("a/b", "5", 0, alias_props(pb, sizeof pb, 1), &pid) == MQTT_C_OK);
    REQUIRE(fake_next_sent(&F, &p) && EQ(p.topic, "a/b"));
    /* A broker that allows none (absent maximum): refused. */
    mqtt_client_drop(&F.c, F.now);
    up_with(&o, true, none);
    CHECK_EQ(pub5("a/b", "6", 0, alias_props(pb, sizeof pb, 1), &pid), MQTT_C_BAD_ARG);
}

TEST(client5_subscribe_options_and_identifier)
{
    setup();
    mqtt_connect_opts o = opts5("so", true);
    up_with(&o, false, none);
    fake_clear_sent(&F);
    size_t start = F.sent_len;
    uint8_t pb[8];
    mqtt_props_buf b;
    mqtt_props_init(&b, pb, sizeof pb);
    mqtt_props_num(&b, MQTT_P_SUBSCRIPTION_ID, 300);
    uint16_t pid;
    uint8_t opt = MQTT_SUB_NO_LOCAL | MQTT_SUB_RETAIN_AS_PUBLISHED | MQTT_SUB_RETAIN_HANDLING(1);
    REQUIRE(mqtt_client_subscribe_opts(&F.c, (const uint8_t *)"s/#", 3, 2, opt,
                                       mqtt_props_slice(&b), &pid, F.now) == MQTT_C_OK);
    mqtt_packet p;
    REQUIRE(fake_next_sent(&F, &p) && p.type == MQTT_SUBSCRIBE);
    static const uint8_t want[] = { 0x82, 0x0C, 0x00, 0x01, 0x03, 0x0B, 0xAC, 0x02,
                                    0x00, 0x03, 's', '/', '#', 0x1E };
    CHECK(F.sent_len - start == sizeof want && memcmp(F.sent + start, want, sizeof want) == 0);
    CHECK_EQ(mqtt_client_subscribe_opts(&F.c, (const uint8_t *)"s", 1, 0, MQTT_SUB_RETAIN_HANDLING(3),
                                        none, &pid, F.now),
             MQTT_C_BAD_ARG);
    /* A 3.1.1 connection has no options to give. */
    setup();
    mqtt_connect_opts v3 = fake_opts("so", true);
    fake_connect_up(&F, &v3, false);
    CHECK_EQ(mqtt_client_subscribe_opts(&F.c, (const uint8_t *)"s", 1, 0, MQTT_SUB_NO_LOCAL, none,
                                        &pid, F.now),
             MQTT_C_BAD_ARG);
}
