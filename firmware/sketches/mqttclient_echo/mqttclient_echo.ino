/* mqttclient_echo: an echo device in the style of ArduinoMqttClient's
 * WiFiEcho/WiFiSimpleReceiveCallback examples, our own code, written
 * against firmware/libraries/HilMqttClient: the MQTT client wraps the
 * WiFiClient and is itself a Stream, messages go out as
 * beginMessage()/print()/endMessage() and come in through onMessage()
 * and poll(), their payload read byte by byte with available()/read().
 * When the connection is lost it reconnects with a backoff doubling from
 * 1 s to 16 s. The broker is named by its public host name (the
 * harness's DNS answers on the emulated board).
 *
 *   echo/<id>/in      anything; subscribed at QoS 1
 *   echo/<id>/out     each message on in, echoed back, QoS 1
 *   echo/<id>/count   "N" every 2 s, QoS 0, written with print(int)
 *   echo/<id>/status  the will: "offline", QoS 1, retained
 *
 * <id> is "echo-" and the chip id in hex. Seeded bugs (bugs.txt) live in
 * the library; build with -D HILMQTTCLIENT_BUG_<BUG>=1. */
#include <HilMqttClient.h>
#if defined(ARDUINO_ARCH_ESP8266)
#include <ESP8266WiFi.h>
#endif

#include "arduino_secrets.h"
char ssid[] = SECRET_SSID;
char pass[] = SECRET_PASS;

WiFiClient wifiClient;
HilMqttClient mqttClient(wifiClient);

const char broker[] = "test.mosquitto.org";
int port = 1883;
String inTopic, outTopic, countTopic, statusTopic;

const long interval = 2000;
unsigned long previousMillis = 0;
unsigned long backoff = 1000;
unsigned long nextAttempt = 0;
int count = 0;

// The echo of a message that arrived, sent from loop() rather than from
// inside the callback (poll() is still reading the message then).
String pending;
bool hasPending = false;

void onMqttMessage(int messageSize) {
  Serial.print("Received a message with topic '");
  Serial.print(mqttClient.messageTopic());
  Serial.print("', length ");
  Serial.print(messageSize);
  Serial.println(" bytes:");
  String body;
  body.reserve(messageSize);
  while (mqttClient.available()) {
    body += (char)mqttClient.read();
  }
  Serial.println(body);
  pending = body;
  hasPending = true;
}

bool connectBroker() {
  Serial.print("Attempting to connect to the MQTT broker: ");
  Serial.println(broker);
  mqttClient.beginWill(statusTopic, true, 1);
  mqttClient.print("offline");
  mqttClient.endWill();
  if (!mqttClient.connect(broker, port)) {
    Serial.print("MQTT connection failed! Error code = ");
    Serial.println(mqttClient.connectError());
    return false;
  }
  Serial.println("You're connected to the MQTT broker!");
  mqttClient.subscribe(inTopic, 1);
  return true;
}

void setup() {
  Serial.begin(9600);
  while (!Serial) {
    ;
  }
  Serial.print("Attempting to connect to WPA SSID: ");
  Serial.println(ssid);
  WiFi.begin(ssid, pass);
  while (WiFi.status() != WL_CONNECTED) {
    Serial.print(".");
    delay(500);
  }
  Serial.println("You're connected to the network");

  String id = "echo-" + String(ESP.getChipId(), HEX);
  inTopic = "echo/" + id + "/in";
  outTopic = "echo/" + id + "/out";
  countTopic = "echo/" + id + "/count";
  statusTopic = "echo/" + id + "/status";
  mqttClient.setId(id);
  mqttClient.setKeepAliveInterval(5 * 1000L);
  mqttClient.setConnectionTimeout(5 * 1000L);
  mqttClient.onMessage(onMqttMessage);
}

void loop() {
  if (!mqttClient.connected()) {
    if ((long)(millis() - nextAttempt) < 0) {
      return;
    }
    if (!connectBroker()) {
      nextAttempt = millis() + backoff;
      backoff = backoff < 16000 ? backoff * 2 : 16000;
      return;
    }
    backoff = 1000;
  }

  // Reads what arrived, calls onMqttMessage, keeps the connection alive.
  mqttClient.poll();

  if (hasPending) {
    hasPending = false;
    mqttClient.beginMessage(outTopic, false, 1);
    mqttClient.print(pending);
    mqttClient.endMessage();
  }

  unsigned long currentMillis = millis();
  if (currentMillis - previousMillis >= (unsigned long)interval) {
    previousMillis = currentMillis;
    count++;
    mqttClient.beginMessage(countTopic);
    mqttClient.print(count);
    mqttClient.endMessage();
  }
}
