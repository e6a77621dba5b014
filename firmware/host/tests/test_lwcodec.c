/* HilLwMqtt's C packet codec (firmware/libraries/HilLwMqtt/src/lwcodec),
 * checked byte for byte against MQTT 3.1.1's encodings, on the host. */
#include "lwcodec.h"
#include "test.h"

static const uint8_t CONNECT_FULL[] = {
    0x10, 0x28,                                /* CONNECT, remaining 40 */
    0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,      /* protocol name, level 4 */
    0xf6,                                      /* user, pass, will retain, will QoS 2, will, clean */
    0x00, 0x0a,                                /* keep alive 10 */
    0x00, 0x03, 'd', 'e', 'v',                 /* client id */
    0x00, 0x04, 'w', '/', 's', 't',            /* will topic */
    0x00, 0x03, 'o', 'f', 'f',                 /* will payload */
    0x00, 0x04, 'u', 's', 'e', 'r',            /* user name */
    0x00, 0x06, 's', 'e', 'c', 'r', 'e', 't',  /* password */
};

TEST(lwcodec_connect_with_will_and_credentials)
{
    lwc_connect_t c = {0};
    c.client_id = "dev";
    c.keep_alive = 10;
    c.clean_session = true;
    c.username = "user";
    c.password = "secret";
    c.will_topic = "w/st";
    c.will_payload = (const uint8_t *)"off";
    c.will_len = 3;
    c.will_qos = 2;
    c.will_retained = true;
    uint8_t buf[64];
    size_t n = 0;
    REQUIRE(lwc_encode_connect(buf, sizeof buf, &c, &n) == LWC_OK);
    CHECK_EQ(n, sizeof CONNECT_FULL);
    CHECK(memcmp(buf, CONNECT_FULL, sizeof CONNECT_FULL) == 0);
    /* One byte short of the packet: refused, nothing claimed written. */
    CHECK(lwc_encode_connect(buf, sizeof CONNECT_FULL - 1, &c, &n) == LWC_BUFFER_TOO_SHORT);
}

TEST(lwcodec_connect_minimal_has_an_empty_client_id)
{
    lwc_connect_t c = {0};
    uint8_t buf[32];
    size_t n = 0;
    REQUIRE(lwc_encode_connect(buf, sizeof buf, &c, &n) == LWC_OK);
    const uint8_t want[] = {0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x00, 0, 0, 0, 0};
    CHECK_EQ(n, sizeof want);
    CHECK(memcmp(buf, want, sizeof want) == 0);
}

TEST(lwcodec_publish_round_trip_qos1_with_two_byte_length)
{
    uint8_t payload[200];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)i;
    lwc_message_t m = {0};
    m.topic = "a/b";
    m.topic_len = 3;
    m.payload = payload;
    m.payload_len = sizeof payload;
    m.qos = 1;
    m.retained = true;
    m.id = 0x1234;
    uint8_t buf[256];
    size_t n = 0;
    REQUIRE(lwc_encode_publish(buf, sizeof buf, &m, &n) == LWC_OK);
    /* 2 + 3 + 2 + 200 = 207 = 0xcf 0x01 */
    CHECK_EQ(buf[0], 0x33);
    CHECK_EQ(buf[1], 0xcf);
    CHECK_EQ(buf[2], 0x01);
    CHECK_EQ(n, 3 + 207);

    lwc_type_t type;
    uint8_t flags;
    size_t hl = 0, rem = 0;
    CHECK(lwc_fixed_header(buf, 2, &type, &flags, &hl, &rem) == LWC_INCOMPLETE);
    REQUIRE(lwc_fixed_header(buf, n, &type, &flags, &hl, &rem) == LWC_OK);
    CHECK_EQ(type, LWC_PUBLISH);
    CHECK_EQ(hl, 3);
    CHECK_EQ(rem, 207);
    lwc_message_t got;
    REQUIRE(lwc_decode_publish(flags, buf + hl, rem, &got) == LWC_OK);
    CHECK_EQ(got.qos, 1);
    CHECK(got.retained);
    CHECK(!got.dup);
    CHECK_EQ(got.id, 0x1234);
    CHECK_EQ(got.topic_len, 3);
    CHECK(memcmp(got.topic, "a/b", 3) == 0);
    CHECK_EQ(got.payload_len, sizeof payload);
    CHECK(memcmp(got.payload, payload, sizeof payload) == 0);
}

TEST(lwcodec_publish_refuses_qos_without_packet_id)
{
    lwc_message_t m = {0};
    m.topic = "t";
    m.topic_len = 1;
    m.qos = 1;
    uint8_t buf[16];
    size_t n;
    CHECK(lwc_encode_publish(buf, sizeof buf, &m, &n) == LWC_MALFORMED);
}

TEST(lwcodec_subscribe_unsubscribe_and_acks)
{
    uint8_t buf[32];
    size_t n = 0;
    REQUIRE(lwc_encode_subscribe(buf, sizeof buf, 7, "x/#", 1, &n) == LWC_OK);
    const uint8_t sub[] = {0x82, 0x08, 0x00, 0x07, 0x00, 0x03, 'x', '/', '#', 0x01};
    CHECK_EQ(n, sizeof sub);
    CHECK(memcmp(buf, sub, sizeof sub) == 0);

    REQUIRE(lwc_encode_unsubscribe(buf, sizeof buf, 8, "x/#", &n) == LWC_OK);
    const uint8_t unsub[] = {0xa2, 0x07, 0x00, 0x08, 0x00, 0x03, 'x', '/', '#'};
    CHECK_EQ(n, sizeof unsub);
    CHECK(memcmp(buf, unsub, sizeof unsub) == 0);

    /* PUBREL carries the reserved flags 0010 [MQTT-3.6.1-1], the others 0. */
    REQUIRE(lwc_encode_ack(buf, sizeof buf, LWC_PUBREL, 0x0102, &n) == LWC_OK);
    const uint8_t rel[] = {0x62, 0x02, 0x01, 0x02};
    CHECK(n == 4 && memcmp(buf, rel, 4) == 0);
    REQUIRE(lwc_encode_ack(buf, sizeof buf, LWC_PUBACK, 0x0102, &n) == LWC_OK);
    CHECK_EQ(buf[0], 0x40);
    CHECK(lwc_encode_ack(buf, sizeof buf, LWC_SUBACK, 1, &n) == LWC_MALFORMED);

    REQUIRE(lwc_encode_empty(buf, sizeof buf, LWC_PINGREQ, &n) == LWC_OK);
    CHECK(n == 2 && buf[0] == 0xc0 && buf[1] == 0);
    CHECK(lwc_encode_empty(buf, sizeof buf, LWC_PUBACK, &n) == LWC_MALFORMED);
}

TEST(lwcodec_decodes_answers)
{
    bool sp = false;
    uint8_t rc = 0xff;
    const uint8_t connack[] = {0x01, 0x00};
    REQUIRE(lwc_decode_connack(connack, 2, &sp, &rc) == LWC_OK);
    CHECK(sp);
    CHECK_EQ(rc, 0);
    const uint8_t bad_flags[] = {0x02, 0x00};
    CHECK(lwc_decode_connack(bad_flags, 2, &sp, &rc) == LWC_MALFORMED);

    uint16_t id = 0;
    uint8_t granted = 0;
    const uint8_t suback[] = {0x00, 0x05, 0x80};
    REQUIRE(lwc_decode_suback(suback, 3, &id, &granted) == LWC_OK);
    CHECK_EQ(id, 5);
    CHECK_EQ(granted, 0x80);
    CHECK(lwc_decode_ack(suback, 3, &id) == LWC_MALFORMED);
}

TEST(lwcodec_fixed_header_rejects_bad_types_and_long_lengths)
{
    lwc_type_t type;
    uint8_t flags;
    size_t hl, rem;
    const uint8_t reserved[] = {0x00, 0x00};
    CHECK(lwc_fixed_header(reserved, 2, &type, &flags, &hl, &rem) == LWC_MALFORMED);
    const uint8_t five[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK(lwc_fixed_header(five, sizeof five, &type, &flags, &hl, &rem) == LWC_MALFORMED);
    const uint8_t max[] = {0x30, 0xff, 0xff, 0xff, 0x7f};
    REQUIRE(lwc_fixed_header(max, sizeof max, &type, &flags, &hl, &rem) == LWC_OK);
    CHECK_EQ(rem, 268435455);
    CHECK_EQ(hl, 5);
}
