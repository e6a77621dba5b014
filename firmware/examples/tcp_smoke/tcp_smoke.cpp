/* Proves the network path the harness relies on: DHCP from QEMU's user
 * network, then two successive TCP connections to the guestfwd address
 * 10.0.2.100:1883 (each one is a fresh run of the guestfwd command), each
 * writing a line and printing the reply. */
#include <Arduino.h>
#include <ESP8266WiFi.h>

static const IPAddress broker(10, 0, 2, 100);
static int round_no = 0;

void setup()
{
    Serial.begin(115200);
    unsigned long t0 = millis();
#ifdef SMOKE_STATIC_IP
    /* The static fallback: the addresses QEMU's DHCP would hand out. */
    WiFi.config(IPAddress(10, 0, 2, 15), IPAddress(10, 0, 2, 2), IPAddress(255, 255, 255, 0));
#endif
    WiFi.begin("qemu", "");
    while (WiFi.status() != WL_CONNECTED) {
        if (millis() - t0 > 20000) {
            Serial.println("smoke: FAIL no address");
            return;
        }
        delay(10);
    }
    Serial.printf("smoke: address ");
    Serial.print(WiFi.localIP());
    Serial.printf(" after %lu ms, heap %u\r\n", millis() - t0, (unsigned)ESP.getFreeHeap());
}

static bool one_round(int n)
{
    WiFiClient client;
    unsigned long t0 = millis();
    if (!client.connect(broker, 1883)) {
        Serial.printf("smoke: round %d connect FAILED\r\n", n);
        return false;
    }
    client.setNoDelay(true);
    Serial.printf("smoke: round %d connected in %lu ms, local port %u\r\n", n, millis() - t0,
                  client.localPort());
    client.printf("hello %d from %s\n", n, "lx106");
    char line[128];
    size_t len = 0;
    unsigned long start = millis();
    while (millis() - start < 5000 && len < sizeof(line) - 1) {
        int c = client.read();
        if (c < 0) {
            if (!client.connected())
                break;
            delay(1);
            continue;
        }
        if (c == '\n')
            break;
        line[len++] = (char)c;
    }
    line[len] = 0;
    Serial.printf("smoke: round %d got \"%s\"\r\n", n, line);
    client.stop();
    return len > 0;
}

void loop()
{
    if (round_no >= 2 || WiFi.status() != WL_CONNECTED) {
        delay(100);
        return;
    }
    round_no++;
    bool ok = one_round(round_no);
    if (round_no == 2 || !ok)
        Serial.printf("smoke: %s heap %u\r\n", ok ? "DONE" : "FAIL", (unsigned)ESP.getFreeHeap());
    delay(200);
}
