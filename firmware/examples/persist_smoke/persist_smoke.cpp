/* Checks what survives a board reset and a power cut: a boot counter in
 * EEPROM (pflash), the network after a reset, and ESP.restart().
 * UART commands: "reboot" -> ESP.restart(), "ping" -> one TCP round trip. */
#include <Arduino.h>
#include <ESP8266WiFi.h>
#include <EEPROM.h>

struct Persisted {
    uint32_t magic;
    uint32_t boots;
};

static bool round_trip()
{
    WiFiClient c;
    if (!c.connect(IPAddress(10, 0, 2, 100), 1883))
        return false;
    c.printf("boot ping\n");
    unsigned long t0 = millis();
    while (!c.available() && c.connected() && millis() - t0 < 3000)
        delay(1);
    char buf[64];
    int n = c.read((uint8_t *)buf, sizeof(buf) - 1);
    c.stop();
    buf[n > 0 ? n : 0] = 0;
    Serial.printf("persist: tcp reply %s", n > 0 ? buf : "(none)\r\n");
    return n > 0;
}

void setup()
{
    Serial.begin(115200);
    EEPROM.begin(64);
    Persisted p = {};
    EEPROM.get(0, p);
    if (p.magic != 0xb007c0deu)
        p = Persisted{ 0xb007c0deu, 0 };
    p.boots++;
    EEPROM.put(0, p);
    bool committed = EEPROM.commit();
    Serial.printf("persist: boot=%lu commit=%d\r\n", (unsigned long)p.boots, committed);

    unsigned long t0 = millis();
    WiFi.begin("qemu", "");
    while (WiFi.status() != WL_CONNECTED && millis() - t0 < 10000)
        delay(5);
    Serial.printf("persist: wifi=%d after %lu ms\r\n", WiFi.status(), millis() - t0);
    round_trip();
    Serial.printf("persist: ready boot=%lu heap=%u\r\n", (unsigned long)p.boots,
                  (unsigned)ESP.getFreeHeap());
}

void loop()
{
    static char line[32];
    static size_t len = 0;
    while (Serial.available()) {
        int c = Serial.read();
        if (c == '\r')
            continue;
        if (c != '\n') {
            if (len < sizeof(line) - 1)
                line[len++] = (char)c;
            continue;
        }
        line[len] = 0;
        len = 0;
        if (strcmp(line, "reboot") == 0) {
            Serial.println("persist: restarting");
            ESP.restart();
        } else if (strcmp(line, "ping") == 0) {
            round_trip();
        }
    }
}
