/* WiFi on the emulated board is the open_eth NIC: "joining" brings the
 * lwIP interface up and runs DHCP (QEMU's user network answers). */
#ifndef ESP8266WIFI_H
#define ESP8266WIFI_H

#include "Arduino.h"
#include "IPAddress.h"
#include "WiFiClient.h"
#include "WiFiServer.h"
#include "net.h"

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
typedef enum { WIFI_NONE_SLEEP = 0, WIFI_LIGHT_SLEEP = 1, WIFI_MODEM_SLEEP = 2 } WiFiSleepType_t;

class WiFiClass {
public:
    wl_status_t begin(const char *ssid, const char *pass = nullptr);
    /* Static address instead of DHCP, as on the ESP8266 (call before or
     * after begin()). All zero returns to DHCP. */
    bool config(IPAddress local, IPAddress gateway, IPAddress subnet,
                IPAddress dns1 = IPAddress(), IPAddress dns2 = IPAddress());
    /* If DHCP has not answered within ms, fall back to 10.0.2.15/24 gw
     * 10.0.2.2 (0 disables; the default is MQTT_HIL_DHCP_FALLBACK_MS). */
    void setDhcpFallback(unsigned long ms) { dhcp_fallback_ms = ms; }
    bool disconnect(bool wifioff = false);
    wl_status_t status();
    bool isConnected() { return status() == WL_CONNECTED; }
    bool status_connected() const { return started && net_has_address(); }
    IPAddress localIP();
    IPAddress gatewayIP();
    IPAddress subnetMask();
    IPAddress dnsIP(uint8_t n = 0);
    /* Resolves through lwIP's DNS client (the servers DHCP gave, or
     * config()'s); a dotted quad is taken as it is. 1 on success, 0 on
     * failure or after timeout_ms, as on the core. */
    int hostByName(const char *name, IPAddress &result);
    int hostByName(const char *name, IPAddress &result, uint32_t timeout_ms);
    /* The emulated "station": one access point, always in range. */
    bool mode(WiFiMode_t m)
    {
        wifi_mode = m;
        return true;
    }
    WiFiMode_t getMode() { return wifi_mode; }
    bool reconnect();
    bool setAutoReconnect(bool on)
    {
        auto_reconnect = on;
        return true;
    }
    bool getAutoReconnect() { return auto_reconnect; }
    bool setAutoConnect(bool) { return true; }
    bool persistent(bool) { return true; }
    bool hostname(const char *name);
    bool hostname(const String &name) { return hostname(name.c_str()); }
    bool setHostname(const char *name) { return hostname(name); }
    String hostname();
    const char *getHostname();
    uint8_t *macAddress(uint8_t *mac);
    String macAddress();
    uint8_t *BSSID();
    String BSSIDstr();
    String SSID() const;
    String psk() const;
    int32_t channel() { return 6; }
    /* A strong, steady signal. */
    int8_t RSSI() { return -40; }
    int8_t waitForConnectResult(unsigned long timeout_ms = 60000);
    bool setSleepMode(int) { return true; }
    bool setOutputPower(float) { return true; }
    void printDiag(Print &p);

private:
    bool started = false;
    bool use_static = false;
    bool fell_back = false;
    IPAddress st_ip, st_gw, st_mask;
    unsigned long begun_at = 0;
    unsigned long dhcp_fallback_ms;
    WiFiMode_t wifi_mode = WIFI_STA;
    bool auto_reconnect = true;
    char ssid[33] = "";
    char pass[65] = "";
    char host[33] = "";
public:
    WiFiClass();
};

extern WiFiClass WiFi;

#endif
