#include "mqtt_codec.h"
#include "test.h"

#define S(str) ((mqtt_slice){ (const uint8_t *)(str), sizeof(str) - 1 })

static mqtt_err dec(const uint8_t *b, size_t n, mqtt_packet *p) { return mqtt_decode(b, n, p); }

#define DECODE_ERR(expect, ...)                                                       \
    do {                                                                              \
        static const uint8_t raw_[] = { __VA_ARGS__ };                                \
        mqtt_packet p_;                                                               \
        CHECK_EQ(dec(raw_, sizeof raw_, &p_), expect);                                \
    } while (0)

/* Encodes, decodes, re-encodes; the bytes must match and decode must be OK. */
static size_t round_trip(const mqtt_packet *in, mqtt_packet *out, uint8_t *buf, size_t cap)
{
    size_t n = mqtt_encode(buf, cap, in);
    if (!n)
        return 0;
    if (mqtt_decode(buf, n, out) != MQTT_OK)
        return 0;
    uint8_t again[512];
    mqtt_filter fl[4];
    mqtt_packet cp = *out;
    if (out->type == MQTT_SUBSCRIBE || out->type == MQTT_UNSUBSCRIBE) {
        size_t pos = 0, k = 0;
        while (k < 4 && mqtt_filter_next(out, &pos, &fl[k]))
            k++;
        cp.filters = fl;
        cp.count = k;
    }
    size_t m = mqtt_encode(again, sizeof again, &cp);
    if (m != n || memcmp(again, buf, n) != 0)
        return 0;
    return n;
}

TEST(codec_round_trips_all_14_types)
{
    uint8_t buf[512];
    mqtt_packet in, out;
    for (uint8_t t = MQTT_CONNECT; t <= MQTT_DISCONNECT; t++) {
        memset(&in, 0, sizeof in);
        in.type = t;
        in.pid = 0x1234;
        mqtt_filter f[2] = { { S("a/+/c"), 1, 0 }, { S("#"), 2, 0 } };
        switch (t) {
        case MQTT_CONNECT:
            in.connect.clean = true;
            in.connect.keepalive = 30;
            in.connect.client_id = S("dut-1");
            in.connect.will = true;
            in.connect.will_qos = 1;
            in.connect.will_retain = true;
            in.connect.will_topic = S("dut/1/status");
            in.connect.will_payload = S("off\0line");
            in.connect.has_user = in.connect.has_pass = true;
            in.connect.user = S("u");
            in.connect.pass = S("p\xff");
            break;
        case MQTT_CONNACK:
            in.session_present = true;
            break;
        case MQTT_PUBLISH:
            in.qos = 2;
            in.dup = in.retain = true;
            in.topic = S("a/b");
            in.payload = S("x\0y");
            break;
        case MQTT_SUBSCRIBE:
        case MQTT_UNSUBSCRIBE:
            in.filters = f;
            in.count = 2;
            break;
        case MQTT_SUBACK:
            in.list = S("\x00\x01\x02\x80");
            break;
        default:
            break;
        }
        size_t n = round_trip(&in, &out, buf, sizeof buf);
        if (!n)
            printf("    type %s does not round-trip\n", mqtt_type_str(t));
        CHECK(n > 0);
        CHECK_EQ(out.type, t);
    }
}

TEST(codec_decoded_fields_are_right)
{
    /* PUBLISH QoS 1, retain, topic "a/b", pid 10, payload "hi" */
    static const uint8_t pub[] = { 0x33, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i' };
    mqtt_packet p;
    REQUIRE(dec(pub, sizeof pub, &p) == MQTT_OK);
    CHECK_EQ(p.qos, 1);
    CHECK(p.retain && !p.dup);
    CHECK_EQ(p.pid, 10);
    CHECK(p.topic.len == 3 && memcmp(p.topic.data, "a/b", 3) == 0);
    CHECK(p.payload.len == 2 && memcmp(p.payload.data, "hi", 2) == 0);
    static const uint8_t connack[] = { 0x20, 2, 1, 0 };
    REQUIRE(dec(connack, sizeof connack, &p) == MQTT_OK);
    CHECK(p.session_present);
    CHECK_EQ(p.rc, 0);
}

TEST(codec_frame_says_incomplete_for_every_prefix)
{
    uint8_t buf[300];
    mqtt_packet in;
    memset(&in, 0, sizeof in);
    in.type = MQTT_PUBLISH;
    in.topic = S("t");
    static uint8_t payload[200];
    in.payload.data = payload;
    in.payload.len = sizeof payload; /* two-byte remaining length */
    size_t n = mqtt_encode(buf, sizeof buf, &in), total;
    REQUIRE(n > 0);
    for (size_t k = 0; k < 3; k++)
        CHECK_EQ(mqtt_frame(buf, k, sizeof buf, &total), MQTT_INCOMPLETE);
    CHECK_EQ(mqtt_frame(buf, 3, sizeof buf, &total), MQTT_OK);
    CHECK_EQ(total, n);
    CHECK_EQ(mqtt_frame(buf, 3, 100, &total), MQTT_E_TOO_BIG);
    /* A truncated frame handed to decode is an error, not a read past it. */
    mqtt_packet p;
    for (size_t k = 0; k < n; k++)
        CHECK(mqtt_decode(buf, k, &p) != MQTT_OK);
}

TEST(codec_rejects_malformed_fixed_headers)
{
    DECODE_ERR(MQTT_E_TYPE, 0x00, 0);
    DECODE_ERR(MQTT_E_TYPE, 0xF0, 0);
    DECODE_ERR(MQTT_E_FLAGS, 0x60, 2, 0, 1);       /* PUBREL needs flags 2 */
    DECODE_ERR(MQTT_E_FLAGS, 0x41, 2, 0, 1);       /* PUBACK with flags */
    DECODE_ERR(MQTT_E_FLAGS, 0x80, 6, 0, 1, 0, 1, 'a', 0); /* SUBSCRIBE flags 0 */
    DECODE_ERR(MQTT_E_QOS, 0x36, 5, 0, 1, 'a', 0, 1); /* QoS 3 */
    DECODE_ERR(MQTT_E_QOS, 0x38, 3, 0, 1, 'a');       /* DUP on QoS 0 */
    DECODE_ERR(MQTT_E_REMLEN, 0xC0, 0xFF, 0xFF, 0xFF, 0xFF, 0x01);
    DECODE_ERR(MQTT_E_SHORT, 0xC0);                   /* no length at all */
    DECODE_ERR(MQTT_E_TRAILING, 0xC0, 0, 0);          /* bytes after the frame */
    DECODE_ERR(MQTT_E_TRAILING, 0xC0, 1, 0);          /* PINGREQ with a body */
    DECODE_ERR(MQTT_E_TRAILING, 0x40, 3, 0, 1, 0);    /* PUBACK too long */
    DECODE_ERR(MQTT_E_SHORT, 0x40, 1, 0);             /* PUBACK too short */
}

TEST(codec_rejects_malformed_bodies)
{
    DECODE_ERR(MQTT_E_PID, 0x40, 2, 0, 0);                      /* pid 0 */
    DECODE_ERR(MQTT_E_PID, 0x32, 5, 0, 1, 'a', 0, 0);           /* QoS 1 pid 0 */
    DECODE_ERR(MQTT_E_SHORT, 0x30, 3, 0, 5, 'a');               /* topic past end */
    DECODE_ERR(MQTT_E_TOPIC, 0x30, 3, 0, 1, '#');               /* wildcard */
    DECODE_ERR(MQTT_E_TOPIC, 0x30, 2, 0, 0);                    /* empty topic */
    DECODE_ERR(MQTT_E_UTF8, 0x30, 4, 0, 2, 0xC0, 0x80);         /* overlong NUL */
    DECODE_ERR(MQTT_E_UTF8, 0x30, 5, 0, 3, 0xED, 0xA0, 0x80);   /* surrogate */
    DECODE_ERR(MQTT_E_UTF8, 0x30, 3, 0, 1, 0x00);               /* U+0000 */
    DECODE_ERR(MQTT_E_UTF8, 0x30, 3, 0, 1, 0xE2);               /* cut sequence */
    DECODE_ERR(MQTT_E_CODE, 0x20, 2, 0, 6);                     /* rc 6 */
    DECODE_ERR(MQTT_E_CODE, 0x20, 2, 1, 5);                     /* sp with refusal */
    DECODE_ERR(MQTT_E_FLAGS, 0x20, 2, 2, 0);                    /* reserved ack bit */
    DECODE_ERR(MQTT_E_EMPTY, 0x82, 2, 0, 1);                    /* no filters */
    DECODE_ERR(MQTT_E_EMPTY, 0xA2, 2, 0, 1);
    DECODE_ERR(MQTT_E_QOS, 0x82, 6, 0, 1, 0, 1, 'a', 3);        /* requested QoS 3 */
    DECODE_ERR(MQTT_E_SHORT, 0x82, 5, 0, 1, 0, 1, 'a');         /* QoS byte missing */
    DECODE_ERR(MQTT_E_TOPIC, 0x82, 8, 0, 1, 0, 3, 'a', '#', 'b', 0);
    DECODE_ERR(MQTT_E_CODE, 0x90, 3, 0, 1, 3);                  /* SUBACK code 3 */
    DECODE_ERR(MQTT_E_EMPTY, 0x90, 2, 0, 1);
    /* CONNECT: wrong name, wrong level, reserved bit, password without user,
     * will QoS without will */
    DECODE_ERR(MQTT_E_PROTOCOL, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 0, 0, 0);
    DECODE_ERR(MQTT_E_PROTOCOL, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 3, 2, 0, 0, 0, 0);
    DECODE_ERR(MQTT_E_CONNECT_FLAGS, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 3, 0, 0, 0, 0);
    DECODE_ERR(MQTT_E_CONNECT_FLAGS, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x42, 0, 0, 0, 0);
    DECODE_ERR(MQTT_E_CONNECT_FLAGS, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x0A, 0, 0, 0, 0);
    DECODE_ERR(MQTT_E_SHORT, 0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x06, 0, 0, 0, 0);
}

TEST(codec_topic_filter_rules)
{
#define F(s) mqtt_topic_filter_valid((const uint8_t *)(s), strlen(s))
    CHECK(F("#") && F("+") && F("a/#") && F("+/+") && F("/") && F("a/+/b"));
    CHECK(!F("") && !F("a#") && !F("a/#/b") && !F("a+") && !F("+a") && !F("##"));
#undef F
}

TEST(codec_streaming_decoder_handles_any_chunking)
{
    uint8_t stream[64];
    size_t n = 0;
    static const uint8_t a[] = { 0x20, 2, 0, 0 };
    static const uint8_t b[] = { 0x30, 5, 0, 1, 't', 'h', 'i' };
    static const uint8_t c[] = { 0xD0, 0 };
    memcpy(stream + n, a, sizeof a), n += sizeof a;
    memcpy(stream + n, b, sizeof b), n += sizeof b;
    memcpy(stream + n, c, sizeof c), n += sizeof c;
    for (size_t chunk = 1; chunk <= n; chunk++) {
        uint8_t buf[16];
        mqtt_decoder d;
        mqtt_decoder_init(&d, buf, sizeof buf);
        uint8_t types[3];
        int got = 0;
        for (size_t off = 0; off < n;) {
            size_t k = n - off < chunk ? n - off : chunk;
            size_t took = mqtt_decoder_feed(&d, stream + off, k);
            off += took;
            mqtt_packet p;
            mqtt_err e;
            while ((e = mqtt_decoder_next(&d, &p)) == MQTT_OK && got < 3)
                types[got++] = p.type;
            CHECK_EQ(e, MQTT_INCOMPLETE);
        }
        CHECK_EQ(got, 3);
        if (got == 3)
            CHECK(types[0] == MQTT_CONNACK && types[1] == MQTT_PUBLISH &&
                  types[2] == MQTT_PINGRESP);
    }
}

TEST(codec_streaming_decoder_rejects_oversized_packet)
{
    uint8_t buf[16];
    mqtt_decoder d;
    mqtt_decoder_init(&d, buf, sizeof buf);
    static const uint8_t big[] = { 0x30, 100, 0, 1, 't' };
    mqtt_decoder_feed(&d, big, sizeof big);
    mqtt_packet p;
    CHECK_EQ(mqtt_decoder_next(&d, &p), MQTT_E_TOO_BIG);
}

TEST(codec_encode_reports_no_space)
{
    mqtt_packet in;
    memset(&in, 0, sizeof in);
    in.type = MQTT_PUBLISH;
    in.topic = S("abc");
    in.payload = S("0123456789");
    uint8_t buf[64];
    size_t n = mqtt_encode(buf, sizeof buf, &in);
    REQUIRE(n == 17);
    for (size_t cap = 0; cap < n; cap++)
        CHECK_EQ(mqtt_encode(buf, cap, &in), 0);
}
