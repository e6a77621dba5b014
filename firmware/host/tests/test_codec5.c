/* The agent's codec speaking MQTT 5.0, byte for byte against encodings
 * worked out by hand from the OASIS MQTT 5.0 standard (sections cited). */
#include "mqtt_codec.h"
#include "test.h"

#define S(str) ((mqtt_slice){ (const uint8_t *)(str), sizeof(str) - 1 })
#define BYTES(name, ...) static const uint8_t name[] = { __VA_ARGS__ }

static bool slice_eq(mqtt_slice s, const char *lit, size_t n)
{
    return s.len == n && (n == 0 || memcmp(s.data, lit, n) == 0);
}
#define SLICE_IS(s, lit) slice_eq((s), (lit), sizeof(lit) - 1)

static mqtt_err dec5(const uint8_t *b, size_t n, mqtt_packet *p) { return mqtt_decode_v(b, n, MQTT_V5, p); }

#define DECODE5_ERR(expect, ...)                                                      \
    do {                                                                              \
        static const uint8_t raw_[] = { __VA_ARGS__ };                                \
        mqtt_packet p_;                                                               \
        CHECK_EQ(dec5(raw_, sizeof raw_, &p_), expect);                               \
    } while (0)

/* Encodes p; the bytes must be exactly `want`, and must decode (as 5.0) and
 * re-encode to themselves. */
static void check_encodes(const mqtt_packet *p, const uint8_t *want, size_t n, int line)
{
    uint8_t buf[256], again[256];
    size_t got = mqtt_encode(buf, sizeof buf, p);
    if (got != n || memcmp(buf, want, n) != 0) {
        printf("    line %d: encoding differs (%zu bytes, want %zu):", line, got, n);
        for (size_t i = 0; i < got; i++)
            printf(" %02x", buf[i]);
        printf("\n");
        test_failures_in_current++;
        return;
    }
    mqtt_packet d;
    mqtt_filter fl[4];
    if (mqtt_decode_v(buf, got, MQTT_V5, &d) != MQTT_OK) {
        printf("    line %d: own encoding does not decode\n", line);
        test_failures_in_current++;
        return;
    }
    if (d.type == MQTT_SUBSCRIBE || d.type == MQTT_UNSUBSCRIBE) {
        size_t pos = 0, k = 0;
        while (k < 4 && mqtt_filter_next(&d, &pos, &fl[k]))
            k++;
        d.filters = fl;
        d.count = k;
    }
    size_t m = mqtt_encode(again, sizeof again, &d);
    if (m != n || memcmp(again, want, n) != 0) {
        printf("    line %d: decode/re-encode differs\n", line);
        test_failures_in_current++;
    }
}
#define CHECK_ENCODES(p, want) check_encodes((p), (want), sizeof(want), __LINE__)

TEST(codec5_connect_with_properties_and_will_properties)
{
    /* 5.0 3.1.2 / 3.1.3: properties after keep alive, will properties
     * before the will topic. */
    BYTES(want,
          0x10, 0x4E, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x0E, 0x00, 0x3C,
          0x17,                                     /* property length 23 */
          0x11, 0x00, 0x00, 0x00, 0x78,             /* session expiry 120 */
          0x21, 0x00, 0x0A,                         /* receive maximum 10 */
          0x27, 0x00, 0x00, 0x04, 0x00,             /* maximum packet size 1024 */
          0x22, 0x00, 0x05,                         /* topic alias maximum 5 */
          0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v',   /* user property k=v */
          0x00, 0x01, 'd',                          /* client id */
          0x22,                                     /* will property length 34 */
          0x18, 0x00, 0x00, 0x00, 0x05,             /* will delay 5 */
          0x02, 0x00, 0x00, 0x00, 0x3C,             /* message expiry 60 */
          0x01, 0x01,                               /* payload format utf-8 */
          0x03, 0x00, 0x03, 't', '/', 'p',          /* content type */
          0x08, 0x00, 0x01, 'r',                    /* response topic */
          0x09, 0x00, 0x02, 0x01, 0x02,             /* correlation data */
          0x26, 0x00, 0x01, 'a', 0x00, 0x01, 'b',   /* will user property */
          0x00, 0x01, 'w', 0x00, 0x01, 'x');
    uint8_t pb[64], wb[64];
    mqtt_props_buf props, will;
    mqtt_props_init(&props, pb, sizeof pb);
    mqtt_props_num(&props, MQTT_P_SESSION_EXPIRY, 120);
    mqtt_props_num(&props, MQTT_P_RECEIVE_MAXIMUM, 10);
    mqtt_props_num(&props, MQTT_P_MAXIMUM_PACKET_SIZE, 1024);
    mqtt_props_num(&props, MQTT_P_TOPIC_ALIAS_MAXIMUM, 5);
    mqtt_props_user(&props, S("k"), S("v"));
    mqtt_props_init(&will, wb, sizeof wb);
    mqtt_props_num(&will, MQTT_P_WILL_DELAY, 5);
    mqtt_props_num(&will, MQTT_P_MESSAGE_EXPIRY, 60);
    mqtt_props_num(&will, MQTT_P_PAYLOAD_FORMAT, 1);
    mqtt_props_str(&will, MQTT_P_CONTENT_TYPE, S("t/p"));
    mqtt_props_str(&will, MQTT_P_RESPONSE_TOPIC, S("r"));
    mqtt_props_str(&will, MQTT_P_CORRELATION_DATA, S("\x01\x02"));
    mqtt_props_user(&will, S("a"), S("b"));
    REQUIRE(!props.overflow && !will.overflow);
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNECT;
    p.version = MQTT_V5;
    p.props = mqtt_props_slice(&props);
    p.connect.clean = p.connect.will = true;
    p.connect.will_qos = 1;
    p.connect.keepalive = 60;
    p.connect.client_id = S("d");
    p.connect.will_props = mqtt_props_slice(&will);
    p.connect.will_topic = S("w");
    p.connect.will_payload = S("x");
    CHECK_ENCODES(&p, want);

    /* The broker's side: the level says 5.0 even through mqtt_decode. */
    mqtt_packet d;
    REQUIRE(mqtt_decode(want, sizeof want, &d) == MQTT_OK);
    CHECK_EQ(d.version, MQTT_V5);
    mqtt_prop pr;
    REQUIRE(mqtt_prop_find(d.props, MQTT_P_MAXIMUM_PACKET_SIZE, &pr));
    CHECK_EQ(pr.num, 1024);
    REQUIRE(mqtt_prop_find(d.connect.will_props, MQTT_P_CORRELATION_DATA, &pr));
    CHECK(SLICE_IS(pr.str, "\x01\x02"));
    REQUIRE(mqtt_prop_find(d.connect.will_props, MQTT_P_WILL_DELAY, &pr));
    CHECK_EQ(pr.num, 5);
    CHECK(!mqtt_prop_find(d.props, MQTT_P_WILL_DELAY, &pr));
}

TEST(codec5_connect_rejects_will_property_in_connect_properties)
{
    /* Will delay belongs to the will properties only (5.0 3.1.3.2.2). */
    DECODE5_ERR(MQTT_E_PROPERTY, 0x10, 0x13, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x02, 0x00,
                0x00, 0x05, 0x18, 0x00, 0x00, 0x00, 0x05, 0x00, 0x01, 'd');
    /* 5.0 allows a password without a user name (3.1.2.9); 3.1.1 does not. */
    BYTES(pass_only, 0x10, 0x10, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, 0x42, 0x00, 0x00, 0x00,
          0x00, 0x00, 0x00, 0x01, 'p');
    mqtt_packet p;
    CHECK_EQ(mqtt_decode(pass_only, sizeof pass_only, &p), MQTT_OK);
    CHECK(p.connect.has_pass && !p.connect.has_user);
}

TEST(codec5_connack_properties_are_read)
{
    BYTES(raw, 0x20, 0x17, 0x00, 0x00, 0x14,
          0x21, 0x00, 0x14,                    /* receive maximum 20 */
          0x27, 0x00, 0x00, 0x02, 0x00,        /* maximum packet size 512 */
          0x13, 0x00, 0x1E,                    /* server keep alive 30 */
          0x12, 0x00, 0x03, 'a', 'b', 'c',     /* assigned client id */
          0x22, 0x00, 0x03);                   /* topic alias maximum 3 */
    mqtt_packet p;
    REQUIRE(dec5(raw, sizeof raw, &p) == MQTT_OK);
    CHECK_EQ(p.rc, 0);
    CHECK(!p.session_present);
    mqtt_prop pr;
    CHECK(mqtt_prop_find(p.props, MQTT_P_RECEIVE_MAXIMUM, &pr) && pr.num == 20);
    CHECK(mqtt_prop_find(p.props, MQTT_P_MAXIMUM_PACKET_SIZE, &pr) && pr.num == 512);
    CHECK(mqtt_prop_find(p.props, MQTT_P_SERVER_KEEP_ALIVE, &pr) && pr.num == 30);
    CHECK(mqtt_prop_find(p.props, MQTT_P_ASSIGNED_CLIENT_ID, &pr) && SLICE_IS(pr.str, "abc"));
    CHECK(mqtt_prop_find(p.props, MQTT_P_TOPIC_ALIAS_MAXIMUM, &pr) && pr.num == 3);
    CHECK(!mqtt_prop_find(p.props, MQTT_P_SESSION_EXPIRY, &pr));
    /* The same bytes are not a 3.1.1 CONNACK. */
    CHECK_EQ(mqtt_decode(raw, sizeof raw, &p), MQTT_E_TRAILING);

    BYTES(refused, 0x20, 0x03, 0x00, 0x87, 0x00); /* not authorized */
    REQUIRE(dec5(refused, sizeof refused, &p) == MQTT_OK);
    CHECK_EQ(p.rc, 0x87);
}

TEST(codec5_bad_properties_and_codes_are_rejected)
{
    DECODE5_ERR(MQTT_E_PROPERTY, 0x20, 0x09, 0x00, 0x00, 0x06, 0x21, 0x00, 0x01, 0x21, 0x00, 0x02); /* twice */
    DECODE5_ERR(MQTT_E_PROPERTY, 0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00); /* receive max 0 */
    DECODE5_ERR(MQTT_E_PROPERTY, 0x20, 0x08, 0x00, 0x00, 0x05, 0x27, 0x00, 0x00, 0x00, 0x00); /* max size 0 */
    DECODE5_ERR(MQTT_E_PROPERTY, 0x20, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01); /* alias on CONNACK */
    DECODE5_ERR(MQTT_E_PROPERTY, 0x20, 0x05, 0x00, 0x00, 0x02, 0x05, 0x00);       /* unknown id */
    DECODE5_ERR(MQTT_E_PROPERTY, 0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02);       /* maximum QoS 2 */
    DECODE5_ERR(MQTT_E_SHORT, 0x20, 0x04, 0x00, 0x00, 0x05, 0x21);               /* runs past the end */
    DECODE5_ERR(MQTT_E_SHORT, 0x20, 0x04, 0x00, 0x00, 0x80, 0x00);               /* non-minimal length */
    DECODE5_ERR(MQTT_E_CODE, 0x20, 0x03, 0x01, 0x80, 0x00); /* refusal with a session (3.2.2-6) */
    DECODE5_ERR(MQTT_E_CODE, 0x20, 0x03, 0x00, 0x05, 0x00); /* 3.1.1's code 5 is not a 5.0 code */
    DECODE5_ERR(MQTT_E_UTF8, 0x20, 0x08, 0x00, 0x00, 0x05, 0x12, 0x00, 0x02, 0xC0, 0x80);
    /* User properties may repeat. */
    DECODE5_ERR(MQTT_OK, 0x20, 0x0F, 0x00, 0x00, 0x0C, 0x26, 0x00, 0x01, 'a', 0x00, 0x00, 0x26,
                0x00, 0x01, 'a', 0x00, 0x00);
}

TEST(codec5_publish_properties_keep_their_order)
{
    BYTES(want, 0x32, 0x2C, 0x00, 0x01, 't', 0x00, 0x07, 0x24,
          0x23, 0x00, 0x02,                         /* topic alias 2 */
          0x02, 0x00, 0x00, 0x00, 0x0A,             /* message expiry 10 */
          0x08, 0x00, 0x02, 'r', 's',               /* response topic */
          0x09, 0x00, 0x01, 'c',                    /* correlation data */
          0x26, 0x00, 0x01, 'x', 0x00, 0x01, '1',   /* user x=1 */
          0x26, 0x00, 0x01, 'x', 0x00, 0x01, '2',   /* user x=2 */
          0x0B, 0x81, 0x01,                         /* subscription id 129 */
          0x0B, 0x05,                               /* subscription id 5 */
          'h', 'i');
    uint8_t pb[64];
    mqtt_props_buf b;
    mqtt_props_init(&b, pb, sizeof pb);
    mqtt_props_num(&b, MQTT_P_TOPIC_ALIAS, 2);
    mqtt_props_num(&b, MQTT_P_MESSAGE_EXPIRY, 10);
    mqtt_props_str(&b, MQTT_P_RESPONSE_TOPIC, S("rs"));
    mqtt_props_str(&b, MQTT_P_CORRELATION_DATA, S("c"));
    mqtt_props_user(&b, S("x"), S("1"));
    mqtt_props_user(&b, S("x"), S("2"));
    mqtt_props_num(&b, MQTT_P_SUBSCRIPTION_ID, 129);
    mqtt_props_num(&b, MQTT_P_SUBSCRIPTION_ID, 5);
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.version = MQTT_V5;
    p.qos = 1;
    p.pid = 7;
    p.topic = S("t");
    p.payload = S("hi");
    p.props = mqtt_props_slice(&b);
    CHECK_ENCODES(&p, want);

    mqtt_packet d;
    REQUIRE(dec5(want, sizeof want, &d) == MQTT_OK);
    CHECK(SLICE_IS(d.payload, "hi"));
    size_t pos = 0;
    mqtt_prop pr;
    char users[4] = { 0 };
    uint32_t subs[2] = { 0, 0 };
    int nu = 0, ns = 0;
    while (mqtt_prop_next(d.props, &pos, &pr)) {
        if (pr.id == MQTT_P_USER_PROPERTY && nu < 3)
            users[nu++] = (char)pr.val.data[0];
        if (pr.id == MQTT_P_SUBSCRIPTION_ID && ns < 2)
            subs[ns++] = pr.num;
    }
    CHECK(strcmp(users, "12") == 0);
    CHECK_EQ(subs[0], 129);
    CHECK_EQ(subs[1], 5);
    /* Subscription ids may repeat on PUBLISH only; aliases may not. */
    DECODE5_ERR(MQTT_E_PROPERTY, 0x30, 0x0A, 0x00, 0x01, 't', 0x06, 0x23, 0x00, 0x01, 0x23, 0x00, 0x02);
    DECODE5_ERR(MQTT_E_PROPERTY, 0x30, 0x07, 0x00, 0x01, 't', 0x03, 0x23, 0x00, 0x00); /* alias 0 */
    DECODE5_ERR(MQTT_E_PROPERTY, 0x30, 0x08, 0x00, 0x01, 't', 0x04, 0x08, 0x00, 0x01, '#');
}

TEST(codec5_publish_by_topic_alias_alone)
{
    /* 5.0 3.3.2.3.4: an empty topic name plus a topic alias. */
    BYTES(raw, 0x30, 0x07, 0x00, 0x00, 0x03, 0x23, 0x00, 0x02, 'p');
    mqtt_packet p;
    REQUIRE(dec5(raw, sizeof raw, &p) == MQTT_OK);
    CHECK_EQ(p.topic.len, 0);
    CHECK(SLICE_IS(p.payload, "p"));
    CHECK_EQ(mqtt_decode(raw, sizeof raw, &p), MQTT_E_TOPIC); /* not in 3.1.1 */
    DECODE5_ERR(MQTT_E_TOPIC, 0x30, 0x04, 0x00, 0x00, 0x00, 'p'); /* no alias */
}

TEST(codec5_acks_carry_reason_codes)
{
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.version = MQTT_V5;
    p.pid = 7;
    p.type = MQTT_PUBACK;
    BYTES(ok_short, 0x40, 0x02, 0x00, 0x07); /* 3.4.2.1: success, no properties */
    CHECK_ENCODES(&p, ok_short);
    p.rc = 0x10;
    BYTES(no_match, 0x40, 0x03, 0x00, 0x07, 0x10);
    CHECK_ENCODES(&p, no_match);
    p.type = MQTT_PUBREL;
    p.rc = 0x92;
    BYTES(rel, 0x62, 0x03, 0x00, 0x07, 0x92);
    CHECK_ENCODES(&p, rel);
    uint8_t pb[8];
    mqtt_props_buf b;
    mqtt_props_init(&b, pb, sizeof pb);
    mqtt_props_str(&b, MQTT_P_REASON_STRING, S("e"));
    p.type = MQTT_PUBREC;
    p.rc = 0x80;
    p.props = mqtt_props_slice(&b);
    BYTES(rec, 0x50, 0x08, 0x00, 0x07, 0x80, 0x04, 0x1F, 0x00, 0x01, 'e');
    CHECK_ENCODES(&p, rec);

    mqtt_packet d;
    BYTES(rc_no_props, 0x50, 0x04, 0x00, 0x07, 0x80, 0x00);
    REQUIRE(dec5(rc_no_props, sizeof rc_no_props, &d) == MQTT_OK);
    CHECK_EQ(d.rc, 0x80);
    CHECK_EQ(d.pid, 7);
    DECODE5_ERR(MQTT_E_CODE, 0x40, 0x03, 0x00, 0x07, 0x92);    /* PUBREL's code on PUBACK */
    DECODE5_ERR(MQTT_E_CODE, 0x70, 0x03, 0x00, 0x07, 0x10);    /* PUBACK's code on PUBCOMP */
    DECODE5_ERR(MQTT_E_PROPERTY, 0x40, 0x07, 0x00, 0x07, 0x00, 0x03, 0x23, 0x00, 0x01);
    /* 3.1.1 acks are exactly two bytes. */
    CHECK_EQ(mqtt_decode(no_match, sizeof no_match, &d), MQTT_E_TRAILING);
}

TEST(codec5_subscribe_options_and_identifier)
{
    /* 5.0 3.8.3.1: QoS 1, no local, retain as published, retain handling 2. */
    BYTES(want, 0x82, 0x0B, 0x00, 0x0A, 0x02, 0x0B, 0x07, 0x00, 0x03, 'a', '/', '#', 0x2D);
    uint8_t pb[8];
    mqtt_props_buf b;
    mqtt_props_init(&b, pb, sizeof pb);
    mqtt_props_num(&b, MQTT_P_SUBSCRIPTION_ID, 7);
    mqtt_filter f = { S("a/#"), 1,
                      MQTT_SUB_NO_LOCAL | MQTT_SUB_RETAIN_AS_PUBLISHED | MQTT_SUB_RETAIN_HANDLING(2) };
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_SUBSCRIBE;
    p.version = MQTT_V5;
    p.pid = 10;
    p.props = mqtt_props_slice(&b);
    p.filters = &f;
    p.count = 1;
    CHECK_ENCODES(&p, want);

    mqtt_packet d;
    REQUIRE(dec5(want, sizeof want, &d) == MQTT_OK);
    size_t pos = 0;
    mqtt_filter got;
    REQUIRE(mqtt_filter_next(&d, &pos, &got));
    CHECK_EQ(got.qos, 1);
    CHECK_EQ(got.options, 0x2C);
    CHECK_EQ(mqtt_decode(want, sizeof want, &d), MQTT_E_SHORT); /* 3.1.1 reads 0x02 0x0B as a filter */
    DECODE5_ERR(MQTT_E_QOS, 0x82, 0x07, 0x00, 0x0A, 0x00, 0x00, 0x01, 'a', 0xC1); /* reserved bits */
    DECODE5_ERR(MQTT_E_QOS, 0x82, 0x07, 0x00, 0x0A, 0x00, 0x00, 0x01, 'a', 0x31); /* retain handling 3 */
    DECODE5_ERR(MQTT_E_QOS, 0x82, 0x07, 0x00, 0x0A, 0x00, 0x00, 0x01, 'a', 0x03); /* QoS 3 */
    DECODE5_ERR(MQTT_E_PROPERTY, 0x82, 0x09, 0x00, 0x0A, 0x02, 0x0B, 0x00, 0x00, 0x01, 'a', 0x01); /* id 0 */
}

TEST(codec5_suback_unsuback_reason_codes)
{
    BYTES(suback, 0x90, 0x06, 0x00, 0x0A, 0x00, 0x01, 0x02, 0x87);
    mqtt_packet p;
    REQUIRE(dec5(suback, sizeof suback, &p) == MQTT_OK);
    CHECK_EQ(p.count, 3);
    CHECK_EQ(p.list.data[2], 0x87);
    CHECK_EQ(mqtt_decode(suback, sizeof suback, &p), MQTT_E_CODE); /* 0x87 is not 3.1.1 */
    BYTES(unsuback, 0xB0, 0x05, 0x00, 0x0B, 0x00, 0x00, 0x11);
    REQUIRE(dec5(unsuback, sizeof unsuback, &p) == MQTT_OK);
    CHECK_EQ(p.count, 2);
    CHECK_EQ(p.list.data[1], 0x11); /* no subscription existed */
    memset(&p, 0, sizeof p);
    p.type = MQTT_UNSUBACK;
    p.version = MQTT_V5;
    p.pid = 11;
    p.list = S("\x00\x11");
    CHECK_ENCODES(&p, unsuback);
    DECODE5_ERR(MQTT_E_CODE, 0x90, 0x04, 0x00, 0x0A, 0x00, 0x11); /* UNSUBACK's code */
    DECODE5_ERR(MQTT_E_EMPTY, 0xB0, 0x03, 0x00, 0x0B, 0x00);
}

TEST(codec5_disconnect_both_ways_with_reason)
{
    mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_DISCONNECT;
    p.version = MQTT_V5;
    BYTES(normal, 0xE0, 0x00);
    CHECK_ENCODES(&p, normal);
    p.rc = 0x04; /* disconnect with will message */
    BYTES(with_will, 0xE0, 0x01, 0x04);
    CHECK_ENCODES(&p, with_will);
    BYTES(moved, 0xE0, 0x06, 0x9C, 0x04, 0x1C, 0x00, 0x01, 's');
    REQUIRE(dec5(moved, sizeof moved, &p) == MQTT_OK);
    CHECK_EQ(p.rc, 0x9C);
    mqtt_prop pr;
    CHECK(mqtt_prop_find(p.props, MQTT_P_SERVER_REFERENCE, &pr) && SLICE_IS(pr.str, "s"));
    DECODE5_ERR(MQTT_E_CODE, 0xE0, 0x01, 0x05);
    CHECK_EQ(mqtt_decode(with_will, sizeof with_will, &p), MQTT_E_TRAILING);
}

TEST(codec5_streaming_decoder_follows_its_version)
{
    static uint8_t buf[64];
    mqtt_decoder d;
    mqtt_decoder_init(&d, buf, sizeof buf);
    d.version = MQTT_V5;
    static const uint8_t two[] = { 0x40, 0x03, 0x00, 0x07, 0x10, 0xE0, 0x01, 0x8E };
    REQUIRE(mqtt_decoder_feed(&d, two, sizeof two) == sizeof two);
    mqtt_packet p;
    REQUIRE(mqtt_decoder_next(&d, &p) == MQTT_OK);
    CHECK_EQ(p.type, MQTT_PUBACK);
    CHECK_EQ(p.rc, 0x10);
    REQUIRE(mqtt_decoder_next(&d, &p) == MQTT_OK);
    CHECK_EQ(p.type, MQTT_DISCONNECT);
    CHECK_EQ(p.rc, 0x8E); /* session taken over */
}

TEST(codec5_property_builder_refuses_what_it_cannot_encode)
{
    uint8_t pb[4];
    mqtt_props_buf b;
    mqtt_props_init(&b, pb, sizeof pb);
    mqtt_props_num(&b, MQTT_P_SESSION_EXPIRY, 1); /* 5 bytes into 4 */
    CHECK(b.overflow);
    CHECK_EQ(mqtt_props_slice(&b).len, 0);
    mqtt_props_init(&b, pb, sizeof pb);
    mqtt_props_num(&b, 0x05, 1); /* no such property */
    CHECK(b.overflow);
    mqtt_props_init(&b, pb, sizeof pb);
    mqtt_props_str(&b, MQTT_P_RECEIVE_MAXIMUM, S("x")); /* a number, not a string */
    CHECK(b.overflow);
}
