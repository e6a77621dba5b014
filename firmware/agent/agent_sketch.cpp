/* The test agent as an Arduino sketch: binds agent_io to the ESP8266 Arduino
 * core's API (Serial, WiFi, WiFiClient, EEPROM, ESP). The same file builds
 * for a real ESP8266 with arduino-cli (the sketch folder is firmware/agent,
 * see agent.ino) and for the emulated board against firmware/arduino.
 *
 * Wi-Fi credentials for a real board: -DMQTT_HIL_WIFI_SSID='"..."' and
 * -DMQTT_HIL_WIFI_PASS='"..."' (the emulator ignores them). */
#include <Arduino.h>
#include <EEPROM.h>
#include <ESP8266WiFi.h>

#include "agent.h"

#ifndef MQTT_HIL_WIFI_SSID
#define MQTT_HIL_WIFI_SSID "qemu"
#endif
#ifndef MQTT_HIL_WIFI_PASS
#define MQTT_HIL_WIFI_PASS ""
#endif
#define WIFI_WAIT_MS 20000UL

static WiFiClient client;
static bool client_up;

static uint32_t io_millis(void *) { return (uint32_t)millis(); }

/* WiFiClient::connect blocks until connected or timed out (both cores), so
 * the outcome is known here; net_connected just reports it. */
static bool io_net_connect(void *, const char *host, uint16_t port)
{
    client.stop();
    if (WiFi.status() != WL_CONNECTED)
        return false;
    client_up = client.connect(host, port) == 1;
    if (client_up)
        client.setNoDelay(true); /* acks and pings must not wait for Nagle */
    return client_up;
}

static int io_net_connected(void *) { return client_up && client.connected() ? 1 : -1; }

static int io_net_write(void *, const uint8_t *data, size_t len)
{
    if (!client_up || !client.connected())
        return -1;
    /* Never block in write: a stalled peer (a blackholed link) must not
     * freeze the UART side, or the harness could not even ask for status. */
    int room = client.availableForWrite();
    if (room <= 0)
        return 0;
    size_t n = len < (size_t)room ? len : (size_t)room;
    return (int)client.write(data, n);
}

static int io_net_read(void *, uint8_t *buf, size_t cap)
{
    if (!client_up)
        return -1;
    int avail = client.available();
    if (avail > 0) {
        size_t n = (size_t)avail < cap ? (size_t)avail : cap;
        return client.read(buf, n);
    }
    return client.connected() ? 0 : -1;
}

static void io_net_close(void *)
{
    client.stop();
    client_up = false;
}

static void io_uart_write(void *, const uint8_t *data, size_t len) { Serial.write(data, len); }

static bool io_store_read(void *, uint32_t off, uint8_t *buf, size_t len)
{
    if (off > AGENT_STORE_SIZE || len > AGENT_STORE_SIZE - off)
        return false;
    for (size_t i = 0; i < len; i++)
        buf[i] = EEPROM.read((int)(off + i));
    return true;
}

static bool io_store_write(void *, uint32_t off, const uint8_t *buf, size_t len)
{
    if (off > AGENT_STORE_SIZE || len > AGENT_STORE_SIZE - off)
        return false;
    for (size_t i = 0; i < len; i++)
        EEPROM.write((int)(off + i), buf[i]);
    return true;
}

static bool io_store_commit(void *) { return EEPROM.commit(); }

static void io_reboot(void *)
{
    Serial.flush();
    ESP.restart();
}

static uint32_t io_free_heap(void *) { return ESP.getFreeHeap(); }

static const agent_io io = {
    nullptr,        io_millis,      io_net_connect, io_net_connected, io_net_write,
    io_net_read,    io_net_close,   io_uart_write,  io_store_read,    io_store_write,
    io_store_commit, io_reboot,     io_free_heap,
};

void setup()
{
    Serial.begin(115200);
    EEPROM.begin(AGENT_STORE_SIZE);
    WiFi.mode(WIFI_STA);
    WiFi.begin(MQTT_HIL_WIFI_SSID, MQTT_HIL_WIFI_PASS);
    /* @ready promises a usable agent: wait for the network first. Lines
     * without '@' are not protocol; the harness keeps them as UART log. */
    unsigned long t0 = millis();
    while (WiFi.status() != WL_CONNECTED && millis() - t0 < WIFI_WAIT_MS)
        delay(10);
    Serial.print(WiFi.status() == WL_CONNECTED ? "agent: wifi up\r\n"
                                               : "agent: wifi not up, connect will fail\r\n");
    agent_init(&io);
}

void loop()
{
    uint8_t buf[64];
    size_t n = 0;
    while (n < sizeof buf && Serial.available() > 0) {
        int c = Serial.read();
        if (c < 0)
            break;
        buf[n++] = (uint8_t)c;
    }
    if (n)
        agent_uart_input(buf, n);
    agent_poll();
    /* Feeds the ESP8266's SDK (Wi-Fi, watchdog) between rounds. */
    yield();
}
