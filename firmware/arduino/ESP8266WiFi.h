/* WiFi on the emulated board is the open_eth NIC: "joining" brings the
 * lwIP interface up and runs DHCP (QEMU's user network answers). */
#ifndef ESP8266WIFI_H
#define ESP8266WIFI_H

#include "Arduino.h"
#include "IPAddress.h"
#include "WiFiClient.h"

typedef enum {
    WL_IDLE_STATUS = 0,
    WL_NO_SSID_AVAIL = 1,
    WL_SCAN_COMPLETED = 2,
    WL_CONNECTED = 3,
    WL_CONNECT_FAILED = 4,
    WL_CONNECTION_LOST = 5,
    WL_WRONG_PASSWORD = 6,
    WL_DISCONNECTED = 7,
    WL_NO_SHIELD = 255,
} wl_status_t;

typedef enum { WIFI_OFF = 0, WIFI_STA = 1, WIFI_AP = 2, WIFI_AP_STA = 3 } WiFiMode_t;

class WiFiClass {
public:
    wl_status_t begin(const char *ssid, const char *pass = nullptr);
    /* Static address instead of DHCP, as on the ESP8266 (call before or
     * after begin()). All zero returns to DHCP. */
    bool config(IPAddress local, IPAddress gateway, IPAddress subnet);
    /* If DHCP has not answered within ms, fall back to 10.0.2.15/24 gw
     * 10.0.2.2 (0 disables; the default is MQTT_HIL_DHCP_FALLBACK_MS). */
    void setDhcpFallback(unsigned long ms) { dhcp_fallback_ms = ms; }
    bool disconnect(bool wifioff = false);
    wl_status_t status();
    bool isConnected() { return status() == WL_CONNECTED; }
    IPAddress localIP();
    IPAddress gatewayIP();
    IPAddress subnetMask();
    bool mode(WiFiMode_t) { return true; }
    bool setAutoReconnect(bool) { return true; }
    bool persistent(bool) { return true; }
    void hostname(const char *) {}
    int8_t RSSI() { return -40; }

private:
    bool started = false;
    bool use_static = false;
    bool fell_back = false;
    IPAddress st_ip, st_gw, st_mask;
    unsigned long begun_at = 0;
    unsigned long dhcp_fallback_ms;
public:
    WiFiClass();
};

extern WiFiClass WiFi;

#endif
