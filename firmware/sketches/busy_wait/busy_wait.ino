/* busy_wait: a sketch that never calls delay() and never returns from
 * setup(): every wait is a spin on client.available() and
 * client.connected(), as PubSubClient's connect() waits for its CONNACK
 * (`while (!_client->available()) { if (millis() - t > timeout) ... }`).
 * On the ESP8266 core those calls give the network stack its turn; the
 * emulated board must do the same, or the sketch never hears anything.
 *
 * It speaks MQTT 3.1.1 by hand (client id "busy-wait", clean session):
 * CONNECT and wait for the CONNACK, SUBSCRIBE busy/in (QoS 0) and wait
 * for the SUBACK, then echo every message on busy/in to busy/out at
 * once, until the payload "stop": DISCONNECT, a spin on connected()
 * alone until the broker has closed, "BUSY DONE". Each wait
 * prints how long it spun (micros()), for the curious; the harness
 * measures the round trip from its side (`cargo bench --bench board`). */
#include <Arduino.h>
#include <ESP8266WiFi.h>

static const IPAddress BROKER(10, 0, 2, 100);
static const unsigned long TIMEOUT_MS = 5000;

static WiFiClient client;

/* Spins until a byte is there (or the connection or the time is gone). */
static int next_byte()
{
  unsigned long t = millis();
  while (client.connected() && !client.available()) {
    if (millis() - t > TIMEOUT_MS) {
      return -1;
    }
  }
  return client.available() ? client.read() : -1;
}

/* One MQTT packet: type byte, remaining length, body into buf. */
static int read_packet(uint8_t *type, uint8_t *buf, size_t cap)
{
  int b = next_byte();
  if (b < 0) {
    return -1;
  }
  *type = (uint8_t)b;
  size_t len = 0;
  for (int shift = 0; shift < 28; shift += 7) {
    int c = next_byte();
    if (c < 0) {
      return -1;
    }
    len |= (size_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      break;
    }
  }
  if (len > cap) {
    return -1;
  }
  for (size_t i = 0; i < len; i++) {
    int c = next_byte();
    if (c < 0) {
      return -1;
    }
    buf[i] = (uint8_t)c;
  }
  return (int)len;
}

static size_t put_str(uint8_t *p, const char *s, size_t n)
{
  p[0] = (uint8_t)(n >> 8);
  p[1] = (uint8_t)n;
  memcpy(p + 2, s, n);
  return n + 2;
}

static void fail(const char *what)
{
  Serial.print("FAILED: ");
  Serial.println(what);
  client.stop();
  while (true) {
    yield();
  }
}

static void publish(const char *topic, const uint8_t *payload, size_t n)
{
  uint8_t pkt[160];
  size_t tl = strlen(topic);
  size_t rl = 2 + tl + n;
  if (rl > 127 || rl + 2 > sizeof pkt) {
    return;
  }
  pkt[0] = 0x30;
  pkt[1] = (uint8_t)rl;
  size_t at = 2 + put_str(pkt + 2, topic, tl);
  memcpy(pkt + at, payload, n);
  client.write(pkt, at + n);
}

void setup()
{
  Serial.begin(115200);
  WiFi.begin("hil", "hil");
  while (WiFi.status() != WL_CONNECTED) {
    yield();
  }
  Serial.print("ip: ");
  Serial.println(WiFi.localIP());
  while (!client.connect(BROKER, 1883)) {
    Serial.println("connect failed, again");
  }
  client.setNoDelay(true);

  static const char id[] = "busy-wait";
  uint8_t pkt[64];
  size_t at = 2;
  at += put_str(pkt + at, "MQTT", 4);
  pkt[at++] = 4;    /* 3.1.1 */
  pkt[at++] = 0x02; /* clean session */
  pkt[at++] = 0;
  pkt[at++] = 60; /* keep alive */
  at += put_str(pkt + at, id, sizeof id - 1);
  pkt[0] = 0x10;
  pkt[1] = (uint8_t)(at - 2);
  client.write(pkt, at);

  uint8_t type;
  uint8_t body[160];
  unsigned long t0 = micros();
  int n = read_packet(&type, body, sizeof body);
  if (n != 2 || type != 0x20 || body[1] != 0) {
    fail("no CONNACK");
  }
  Serial.printf("connack after %lu us of spinning\n", micros() - t0);

  static const char filter[] = "busy/in";
  at = 2;
  pkt[at++] = 0;
  pkt[at++] = 1; /* packet id 1 */
  at += put_str(pkt + at, filter, sizeof filter - 1);
  pkt[at++] = 0; /* QoS 0 */
  pkt[0] = 0x82;
  pkt[1] = (uint8_t)(at - 2);
  client.write(pkt, at);
  t0 = micros();
  n = read_packet(&type, body, sizeof body);
  if (n != 3 || type != 0x90 || body[2] != 0) {
    fail("no SUBACK");
  }
  Serial.printf("suback after %lu us of spinning\n", micros() - t0);

  unsigned echoed = 0;
  for (;;) {
    /* Waits as long as messages take to come: time out only the bytes
     * of a packet that has started, not the wait for the next one. */
    while (client.connected() && !client.available()) {
    }
    if (!client.connected()) {
      fail("connection lost");
    }
    n = read_packet(&type, body, sizeof body);
    if (n < 2) {
      fail("bad packet");
    }
    if ((type & 0xf0) != 0x30) {
      continue;
    }
    size_t tl = ((size_t)body[0] << 8) | body[1];
    size_t off = 2 + tl + ((type & 0x06) ? 2 : 0);
    if (off > (size_t)n) {
      fail("bad PUBLISH");
    }
    const uint8_t *payload = body + off;
    size_t plen = (size_t)n - off;
    if (plen == 4 && memcmp(payload, "stop", 4) == 0) {
      break;
    }
    publish("busy/out", payload, plen);
    echoed++;
  }
  Serial.printf("echoed %u\n", echoed);
  static const uint8_t disconnect[] = {0xe0, 0x00};
  client.write(disconnect, sizeof disconnect);
  /* The broker closes the network connection on DISCONNECT: spin on
   * connected() alone until it has. */
  unsigned long t = millis();
  while (client.connected()) {
    if (millis() - t > TIMEOUT_MS) {
      fail("the broker did not close");
    }
  }
  Serial.println("broker closed");
  client.stop();
  Serial.println("BUSY DONE");
}

void loop()
{
  yield();
}
