/* wifi_api: the network half of the core's API groups, on the harness's
 * network (it needs DHCP, DNS and the broker): ESP8266WiFiMulti, the
 * WiFi.* station calls, hostByName, a WiFiClient used through its Client
 * base class (connect by host name, a hand-made MQTT CONNECT and its
 * CONNACK, a PUBLISH of "done" that ends the scenario) and WiFiServer.
 * One "T group name value" line each, judged by
 * harness/tests/arduino_api.rs against what the core documents. */
#include <ESP8266WiFi.h>
#include <ESP8266WiFiMulti.h>

ESP8266WiFiMulti multi;

void report(const char *group, const char *name, const String &value) {
  Serial.print("T ");
  Serial.print(group);
  Serial.print(' ');
  Serial.print(name);
  Serial.print(' ');
  Serial.println(value);
}

bool wait_connected(unsigned long ms) {
  unsigned long t = millis();
  while (WiFi.status() != WL_CONNECTED && millis() - t < ms) {
    delay(10);
  }
  return WiFi.status() == WL_CONNECTED;
}

/* Spins for the next byte, up to 5 s. */
int next_byte(Client &c) {
  unsigned long t = millis();
  while (!c.available()) {
    if (!c.connected() || millis() - t > 5000) {
      return -1;
    }
  }
  return c.read();
}

void setup() {
  Serial.begin(115200);
  Serial.println();
  // WiFiMulti: run() joins a listed network (the harness's is open: any
  // name joins it) and reports WL_CONNECTED once DHCP has answered.
  multi.addAP("hil-lab", "secret");
  multi.addAP("backup", "secret2");
  unsigned long t = millis();
  while (multi.run() != WL_CONNECTED && millis() - t < 20000) {
    delay(100);
  }
  report("multi", "run", String(multi.run() == WL_CONNECTED));
  report("wifi", "status", String(WiFi.status() == WL_CONNECTED) + String(WiFi.isConnected()));
  report("wifi", "addresses", WiFi.localIP().toString() + "|" + WiFi.gatewayIP().toString() + "|" +
                              WiFi.subnetMask().toString() + "|" + WiFi.dnsIP().toString());
  report("wifi", "ssid", WiFi.SSID());
  int rssi = WiFi.RSSI();
  report("wifi", "rssi", String(rssi < 0 && rssi > -100));
  // hostByName: a name through the DNS server DHCP named (the harness's
  // answers every name with its broker's address), a dotted quad
  // without a query, and a name that does not resolve.
  IPAddress a, b;
  int ok = WiFi.hostByName("io.adafruit.com", a);
  int lit = WiFi.hostByName("192.168.7.9", b);
  report("wifi", "hostByName", String(ok) + "|" + a.toString() + "|" + String(lit) + "|" + b.toString());

  // reconnect() drops the association and joins the same network again.
  bool again = WiFi.reconnect();
  report("wifi", "reconnect", String(again) + String(wait_connected(20000)));
  // disconnect() leaves the network (not connected, the address gone);
  // begin() joins again.
  WiFi.disconnect();
  bool down = WiFi.status() != WL_CONNECTED && WiFi.localIP()[0] == 0;
  WiFi.begin("hil-lab", "secret");
  report("wifi", "disconnect", String(down) + String(wait_connected(20000)));

  // A server listens; with nobody connecting, available() is a client
  // that is false.
  WiFiServer server(8080);
  server.begin();
  WiFiClient none = server.available();
  report("server", "listen", String(server.status()) + String((bool)none));

  // A client through Client&: connect by name, CONNECT, CONNACK.
  WiFiClient wc;
  Client &c = wc;
  int conn = c.connect("broker.example.com", 1883);
  static const uint8_t connect_pkt[] = {0x10, 0x12, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 30,
                                        0, 6, 'a', 'p', 'i', '-', 'c', 'l'};
  size_t wrote = c.write(connect_pkt, sizeof connect_pkt);
  String connack;
  for (int i = 0; i < 4; i++) {
    int v = next_byte(c);
    connack += String(v, HEX);
  }
  report("client", "connect", String(conn) + "|" + String(wrote) + "|" + connack + "|" + String(c.connected()) +
                              String((bool)c) + "|" + wc.remoteIP().toString());
  // Everything is printed before the PUBLISH that ends the scenario.
  Serial.println("WIFI API DONE");
  Serial.flush();
  static const uint8_t publish_pkt[] = {0x30, 0x0c, 0, 8, 'a', 'p', 'i', '/', 'd', 'o', 'n', 'e', 'o', 'k'};
  c.write(publish_pkt, sizeof publish_pkt);
  static const uint8_t disconnect_pkt[] = {0xe0, 0x00};
  c.write(disconnect_pkt, sizeof disconnect_pkt);
  c.flush();
  c.stop();
}

void loop() { delay(100); }
