/* counter_device: the kind of sketch a bench engineer brings — an ESP8266
 * that publishes a counter every second, obeys on/off commands, leaves a
 * will, and runs its own connect-and-retry loop. It uses its own small MQTT
 * client (MiniMqtt.*), not the mqtt-hil test agent: the harness judges it
 * from its traffic alone (scenarios/black_box/).
 *
 *   devices/<id>/counter   {"count":N} every second, QoS 1; readings taken
 *                          while offline are queued and sent after the
 *                          reconnect, so none is lost (some may repeat)
 *   devices/<id>/cmd       "on" / "off" (subscribed at QoS 1; trailing blanks
 *                          ignored); a packet over its 384-byte buffer drops
 *                          the connection, which it then makes again
 *   devices/<id>/state     the new state after a command, QoS 1
 *   devices/<id>/status    "online" after each connect; the will "offline"
 *
 * <id> is counter-<chip id>; clean session, keep alive 4 s, reconnect with
 * exponential backoff from 1 s to 8 s.
 *
 * Seeded bugs (bugs.txt, one image each):
 *   COUNTER_DEVICE_BUG_NO_RESUBSCRIBE   subscribes once per boot, not per clean
 *                                session, so commands stop working after
 *                                the first reconnect
 *   COUNTER_DEVICE_BUG_TIGHT_RECONNECT  retries every 20 ms, without backoff
 *   COUNTER_DEVICE_BUG_QOS0_READINGS    publishes readings at QoS 0 and drops those
 *                                taken while offline, though the device is
 *                                documented (above) as QoS 1
 *   COUNTER_DEVICE_BUG_SPLIT_PUBLISH    its MQTT client (MiniMqtt.cpp) takes a
 *                                PUBLISH to arrive in one TCP segment: one
 *                                cut into small segments (the network's
 *                                `ip = "mss"`) is mis-parsed and the command
 *                                in it is lost */
#include <Arduino.h>
#include <ESP8266WiFi.h>
#include "MiniMqtt.h"

static const IPAddress BROKER(10, 0, 2, 100);
static const uint16_t BROKER_PORT = 1883;
static const unsigned long READING_PERIOD_MS = 1000;
static const unsigned long ACK_TIMEOUT_MS = 2000;
static const unsigned long BACKOFF_MIN_MS = 1000;
static const unsigned long BACKOFF_MAX_MS = 8000;
static const uint16_t KEEPALIVE_S = 4;

#ifdef COUNTER_DEVICE_BUG_QOS0_READINGS
static const uint8_t READING_QOS = 0;
#else
static const uint8_t READING_QOS = 1;
#endif

static WiFiClient net;
static MiniMqtt mqtt(net);

static char client_id[32];
static char t_counter[64], t_cmd[64], t_state[64], t_status[64];

/* Readings not yet acknowledged, oldest first. pid 0: not sent on the
 * current connection (a clean session forgets everything in flight, so
 * after a reconnect they are published again as new messages). */
struct Reading {
    uint32_t count;
    uint16_t pid;
    unsigned long sent_at;
};
static const int QUEUE_LEN = 32;
static Reading queue[QUEUE_LEN];
static int queued = 0;
static const int WINDOW = 4; /* readings in flight at once */

static uint32_t count = 0;
static unsigned long next_reading = 0;
static bool light_on = false;
static bool subscribed_once = false;
static unsigned long backoff_ms = BACKOFF_MIN_MS;
static unsigned long next_attempt = 0;

static void on_ack(uint16_t pid)
{
    for (int i = 0; i < queued; i++) {
        if (queue[i].pid == pid) {
            memmove(&queue[i], &queue[i + 1], (size_t)(queued - i - 1) * sizeof(Reading));
            queued--;
            return;
        }
    }
}

static void on_message(const char *topic, const uint8_t *payload, unsigned len)
{
    if (strcmp(topic, t_cmd) != 0)
        return;
    /* Trailing blanks (a console's newline, padding) are not part of it. */
    while (len > 0 && (payload[len - 1] == ' ' || payload[len - 1] == '\r' || payload[len - 1] == '\n'))
        len--;
    if (len == 2 && memcmp(payload, "on", 2) == 0)
        light_on = true;
    else if (len == 3 && memcmp(payload, "off", 3) == 0)
        light_on = false;
    else
        return;
    Serial.printf("counter: command -> %s\r\n", light_on ? "on" : "off");
    mqtt.publish(t_state, light_on ? "on" : "off", 1, false);
}

static void take_reading()
{
    count++;
#ifdef COUNTER_DEVICE_BUG_QOS0_READINGS
    /* Fire and forget: a reading taken while offline is simply gone. */
    if (mqtt.connected()) {
        char payload[32];
        snprintf(payload, sizeof(payload), "{\"count\":%lu}", (unsigned long)count);
        mqtt.publish(t_counter, payload, READING_QOS, false);
    }
    return;
#endif
    if (queued == QUEUE_LEN) {
        /* Full after a long outage: the oldest reading makes room. */
        memmove(&queue[0], &queue[1], (QUEUE_LEN - 1) * sizeof(Reading));
        queued--;
    }
    queue[queued++] = Reading{ count, 0, 0 };
}

/* Publishes queued readings, a few in flight at a time. */
static void send_queued()
{
    int in_flight = 0;
    for (int i = 0; i < queued; i++)
        if (queue[i].pid)
            in_flight++;
    for (int i = 0; i < queued && in_flight < WINDOW; i++) {
        if (queue[i].pid)
            continue;
        char payload[32];
        snprintf(payload, sizeof(payload), "{\"count\":%lu}", (unsigned long)queue[i].count);
        int32_t pid = mqtt.publish(t_counter, payload, READING_QOS, false);
        if (pid <= 0)
            return;
        queue[i].pid = (uint16_t)pid;
        queue[i].sent_at = millis();
        in_flight++;
    }
}

/* A reading whose PUBACK is overdue means the broker is out of reach: drop
 * the connection rather than wait for TCP to notice. */
static bool acks_overdue()
{
    for (int i = 0; i < queued; i++)
        if (queue[i].pid && millis() - queue[i].sent_at > ACK_TIMEOUT_MS)
            return true;
    return false;
}

static void on_connected()
{
    for (int i = 0; i < queued; i++)
        queue[i].pid = 0;
    mqtt.publish(t_status, "online", 1, false);
#ifdef COUNTER_DEVICE_BUG_NO_RESUBSCRIBE
    /* The bug: "we already subscribed" survives the clean session that
     * threw the subscription away. */
    if (subscribed_once)
        return;
#endif
    mqtt.subscribe(t_cmd, 1);
    subscribed_once = true;
}

static void try_connect()
{
    if ((long)(millis() - next_attempt) < 0)
        return;
    Serial.printf("counter: connecting as %s\r\n", client_id);
    if (mqtt.connect(client_id, true, t_status, 1, false, "offline")) {
        Serial.println("counter: connected");
        backoff_ms = BACKOFF_MIN_MS;
        on_connected();
        return;
    }
#ifdef COUNTER_DEVICE_BUG_TIGHT_RECONNECT
    next_attempt = millis() + 20;
#else
    Serial.printf("counter: connect failed (CONNACK %d), next try in %lu ms\r\n", mqtt.lastConnackCode(),
                  backoff_ms);
    next_attempt = millis() + backoff_ms;
    backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
#endif
}

void setup()
{
    Serial.begin(115200);
    snprintf(client_id, sizeof(client_id), "counter-%06lx", (unsigned long)(ESP.getChipId() & 0xffffff));
    snprintf(t_counter, sizeof(t_counter), "devices/%s/counter", client_id);
    snprintf(t_cmd, sizeof(t_cmd), "devices/%s/cmd", client_id);
    snprintf(t_state, sizeof(t_state), "devices/%s/state", client_id);
    snprintf(t_status, sizeof(t_status), "devices/%s/status", client_id);
    mqtt.setServer(BROKER, BROKER_PORT);
    mqtt.setKeepAlive(KEEPALIVE_S);
    mqtt.setCallback(on_message);
    mqtt.setAckCallback(on_ack);
    WiFi.begin("bench", "");
    while (WiFi.status() != WL_CONNECTED)
        delay(10);
    Serial.print("counter: address ");
    Serial.println(WiFi.localIP());
    next_reading = millis() + READING_PERIOD_MS;
}

void loop()
{
    /* Readings follow the clock, connected or not; a blocking connect
     * attempt is caught up on afterwards. */
    while ((long)(millis() - next_reading) >= 0) {
        next_reading += READING_PERIOD_MS;
        take_reading();
    }
    if (!mqtt.connected()) {
        try_connect();
        return;
    }
    if (!mqtt.loop())
        return;
    if (acks_overdue()) {
        Serial.println("counter: PUBACK overdue, reconnecting");
        mqtt.abort();
        return;
    }
    send_queued();
}
