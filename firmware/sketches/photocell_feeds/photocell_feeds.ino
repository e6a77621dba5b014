/* photocell_feeds: the classic cloud-feed sketch, our own code in the
 * style of the Adafruit MQTT Library's ESP8266 example: publish a
 * "photocell" reading to a feed, obey an on/off feed, MQTT_connect()
 * retrying every 5 s, the broker named by its cloud host name (resolved by
 * DNS; on the emulated board the harness answers and routes it to its
 * broker). Written against firmware/libraries/HilFeeds.
 *
 *   hil-user/feeds/photocell     a counter standing in for the light
 *                                sensor, one reading per loop (~2 s), QoS 1
 *   hil-user/feeds/onoff         "ON" / "OFF" commands (subscribed QoS 1; the
 *                                library keeps the first 19 bytes, the sketch
 *                                trims blanks)
 *   hil-user/feeds/onoff-state   the new state after each command, QoS 1
 *   hil-user/feeds/status        will "offline"
 */
#include <ESP8266WiFi.h>
#include "HilFeeds.h"
#include "HilFeeds_Client.h"

#define WLAN_SSID "your-ssid"
#define WLAN_PASS "your-password"
#define AIO_SERVER "io.adafruit.com"
#define AIO_SERVERPORT 1883
#define AIO_USERNAME "hil-user"
#define AIO_KEY "hil-key"

WiFiClient client;
HilFeeds_Client mqtt(&client, AIO_SERVER, AIO_SERVERPORT, AIO_USERNAME, AIO_KEY);

HilFeeds_Publish photocell = HilFeeds_Publish(&mqtt, AIO_USERNAME "/feeds/photocell", 1);
HilFeeds_Publish onoffstate = HilFeeds_Publish(&mqtt, AIO_USERNAME "/feeds/onoff-state", 1);
HilFeeds_Subscribe onoffbutton = HilFeeds_Subscribe(&mqtt, AIO_USERNAME "/feeds/onoff", 1);

uint32_t x = 0;

void setup() {
  Serial.begin(115200);
  delay(10);
  pinMode(LED_BUILTIN, OUTPUT);
  Serial.println(F("HilFeeds photocell example"));
  Serial.print(F("Connecting to "));
  Serial.println(WLAN_SSID);
  WiFi.begin(WLAN_SSID, WLAN_PASS);
  while (WiFi.status() != WL_CONNECTED) {
    delay(500);
    Serial.print(".");
  }
  Serial.println();
  Serial.print(F("WiFi connected, IP address: "));
  Serial.println(WiFi.localIP());
  IPAddress broker;
  if (WiFi.hostByName(AIO_SERVER, broker)) {
    Serial.print(F(AIO_SERVER " is "));
    Serial.println(broker);
  }
  mqtt.will(AIO_USERNAME "/feeds/status", "offline", 1, false);
  mqtt.setKeepAliveInterval(10);
  mqtt.subscribe(&onoffbutton);
}

void loop() {
  MQTT_connect();

  HilFeeds_Subscribe *subscription;
  while ((subscription = mqtt.readSubscription(2000))) {
    if (subscription == &onoffbutton) {
      String value = (char *)onoffbutton.lastread;
      value.trim();
      Serial.print(F("Got: "));
      Serial.println(value);
      bool on = value.equalsIgnoreCase("ON");
      digitalWrite(LED_BUILTIN, on ? LOW : HIGH);
      onoffstate.publish(on ? "ON" : "OFF");
    }
  }

  Serial.print(F("\nSending photocell val "));
  Serial.print(x);
  Serial.print("...");
  if (!photocell.publish(x++)) {
    Serial.println(F("Failed"));
  } else {
    Serial.println(F("OK!"));
  }

  if (!mqtt.ping()) {
    mqtt.disconnect();
  }
}

// Connects (and reconnects) to the broker, retrying every 5 s.
void MQTT_connect() {
  int8_t ret;
  if (mqtt.connected()) {
    return;
  }
  Serial.print("Connecting to MQTT... ");
  while ((ret = mqtt.connect()) != 0) {
    Serial.println(mqtt.connectErrorString(ret));
    Serial.println("Retrying MQTT connection in 5 seconds...");
    mqtt.disconnect();
    delay(5000);
  }
  Serial.println("MQTT Connected!");
}
