/* pubsub_led: the classic ESP8266 + PubSubClient sketch, our own code in
 * its shape, written against firmware/libraries/HilPubSub: join the Wi-Fi,
 * name the broker by its public host name (on the emulated board the
 * harness's DNS answers and routes it to its broker), reconnect() looping
 * every 5 s while the broker cannot be reached, a callback that switches
 * BUILTIN_LED on "1" and off on anything else, a greeting every 2 s.
 *
 *   esp8266/<id>/hello    "hello world #N" every 2 s, QoS 0
 *   esp8266/<id>/led      commands, subscribed at QoS 1: "1" on, else off
 *   esp8266/<id>/state    "on" / "off" after each command
 *   esp8266/<id>/status   "online" (retained) after connecting; the will,
 *                         "offline" (QoS 1, retained)
 *
 * <id> is "ESP8266Client-" and the chip id in hex. Seeded bugs (bugs.txt)
 * live in the library; build with -D HILPUBSUB_BUG_<BUG>=1. */
#include <ESP8266WiFi.h>
#include <HilPubSub.h>

const char *ssid = "your-ssid";
const char *password = "your-password";
const char *mqtt_server = "broker.mqtt-dashboard.com";

WiFiClient espClient;
HilPubSub client(espClient);
unsigned long lastMsg = 0;
#define MSG_BUFFER_SIZE (50)
char msg[MSG_BUFFER_SIZE];
long value = 0;
String clientId;
String topicHello, topicLed, topicState, topicStatus;

void setup_wifi() {
  delay(10);
  Serial.println();
  Serial.print("Connecting to ");
  Serial.println(ssid);
  WiFi.mode(WIFI_STA);
  WiFi.begin(ssid, password);
  while (WiFi.status() != WL_CONNECTED) {
    delay(500);
    Serial.print(".");
  }
  randomSeed(micros());
  Serial.println("");
  Serial.println("WiFi connected");
  Serial.println("IP address: ");
  Serial.println(WiFi.localIP());
}

void callback(char *topic, byte *payload, unsigned int length) {
  Serial.print("Message arrived [");
  Serial.print(topic);
  Serial.print("] ");
  for (unsigned int i = 0; i < length; i++) {
    Serial.print((char)payload[i]);
  }
  Serial.println();
  // The LED is active low, as on the ESP-01 and NodeMCU boards.
  bool on = length > 0 && (char)payload[0] == '1';
  digitalWrite(BUILTIN_LED, on ? LOW : HIGH);
  client.publish(topicState.c_str(), on ? "on" : "off");
}

void reconnect() {
  while (!client.connected()) {
    Serial.print("Attempting MQTT connection...");
    if (client.connect(clientId.c_str(), topicStatus.c_str(), 1, true, "offline")) {
      Serial.println("connected");
      client.publish(topicStatus.c_str(), "online", true);
      client.subscribe(topicLed.c_str(), 1);
    } else {
      Serial.print("failed, rc=");
      Serial.print(client.state());
      Serial.println(" try again in 5 seconds");
      delay(5000);
    }
  }
}

void setup() {
  pinMode(BUILTIN_LED, OUTPUT);
  Serial.begin(115200);
  setup_wifi();
  clientId = "ESP8266Client-";
  clientId += String(ESP.getChipId(), HEX);
  String base = String(F("esp8266/")) + clientId + '/';
  topicHello = base + "hello";
  topicLed = base + "led";
  topicState = base + "state";
  topicStatus = base + "status";
  client.setServer(mqtt_server, 1883);
  client.setKeepAlive(5);
  // The callback is a std::function: a lambda may capture (here a String,
  // copied along with it).
  String label = clientId;
  client.setCallback([label](char *topic, byte *payload, unsigned int length) {
    Serial.print(label);
    Serial.print(": ");
    callback(topic, payload, length);
  });
}

void loop() {
  if (!client.connected()) {
    reconnect();
  }
  client.loop();

  unsigned long now = millis();
  if (now - lastMsg > 2000) {
    lastMsg = now;
    ++value;
    snprintf(msg, MSG_BUFFER_SIZE, "hello world #%ld", value);
    Serial.print("Publish message: ");
    Serial.println(msg);
    client.publish(topicHello.c_str(), msg);
  }
}
