/* lwmqtt_relay: a relay board in the style of arduino-mqtt's ESP8266
 * examples, our own code, written against firmware/libraries/HilLwMqtt:
 * begin(host, net) with the broker's public host name (the harness's DNS
 * answers on the emulated board), a connect() that retries every second,
 * onMessage() with String topic and payload that only records the command
 * (as arduino-mqtt advises: no publishing inside the callback), the new
 * state published from loop(), a count every second at QoS 1 that only
 * moves on once the broker acknowledged it (so none is lost). Each answer
 * (CONNACK, PUBACK, SUBACK) is waited for 3 s.
 *
 *   relay/<id>/count    "N" every second, QoS 1; N is sent again until acked
 *   relay/<id>/set      commands "on" / "off", subscribed at QoS 1
 *   relay/<id>/state    the relay's state after each command, QoS 1, retained
 *   relay/<id>/status   the will: "offline", QoS 1, retained
 *
 * <id> is "relay-" and the chip id in hex. Seeded bugs (bugs.txt) live in
 * the library; build with -D HILLWMQTT_BUG_<BUG>=1. */
#include <ESP8266WiFi.h>
#include <HilLwMqtt.h>

#define RELAY_PIN 5

const char ssid[] = "your-ssid";
const char pass[] = "your-password";

WiFiClient net;
HilMQTTClient client;

String id;
String topicCount, topicSet, topicState, topicStatus;
unsigned long lastMillis = 0;
unsigned long count = 1;
int wanted = -1;  // the last command not yet acted on: 1 on, 0 off
bool relayOn = false;

void connect() {
  Serial.print("checking wifi...");
  while (WiFi.status() != WL_CONNECTED) {
    Serial.print(".");
    delay(1000);
  }
  Serial.print("\nconnecting...");
  while (!client.connect(id.c_str(), "relay", "relay-secret")) {
    Serial.print(".");
    Serial.print(client.lastError());
    delay(1000);
  }
  Serial.println("\nconnected!");
  client.subscribe(topicSet, 1);
}

void messageReceived(String &topic, String &payload) {
  Serial.println("incoming: " + topic + " - " + payload);
  payload.trim();
  if (payload.equalsIgnoreCase("on")) {
    wanted = 1;
  } else if (payload.equalsIgnoreCase("off")) {
    wanted = 0;
  }
}

void setup() {
  Serial.begin(115200);
  pinMode(RELAY_PIN, OUTPUT);
  WiFi.begin(ssid, pass);
  id = "relay-" + String(ESP.getChipId(), HEX);
  topicCount = "relay/" + id + "/count";
  topicSet = "relay/" + id + "/set";
  topicState = "relay/" + id + "/state";
  topicStatus = "relay/" + id + "/status";
  client.begin("public.cloud.shiftr.io", net);
  // Keep alive 10 s, clean session, 3 s for each answer (CONNACK, PUBACK...).
  client.setOptions(10, true, 3000);
  client.setWill(topicStatus.c_str(), "offline", true, 1);
  client.onMessage(messageReceived);
  connect();
}

void loop() {
  client.loop();
  if (!client.connected()) {
    connect();
  }

  if (wanted >= 0) {
    relayOn = wanted == 1;
    wanted = -1;
    digitalWrite(RELAY_PIN, relayOn ? HIGH : LOW);
    client.publish(topicState, relayOn ? "on" : "off", true, 1);
  }

  if (millis() - lastMillis >= 1000) {
    lastMillis = millis();
    // publish() waits for the PUBACK: false means not acknowledged (and
    // the connection closed), so the same count goes out again next time.
    if (client.publish(topicCount, String(count), false, 1)) {
      count++;
    }
  }
}
