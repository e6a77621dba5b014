/* ESP8266WiFiMulti: a list of access points; run() joins the strongest
 * one in range. The emulated board has one access point in range, which
 * every listed network is: run() joins the first and reports WiFi's
 * status, as on the chip once an AP is found. */
#ifndef ESP8266WIFIMULTI_H
#define ESP8266WIFIMULTI_H

#include "ESP8266WiFi.h"

class ESP8266WiFiMulti {
public:
    bool addAP(const char *ssid, const char *pass = nullptr);
    bool existsAP(const char *ssid, const char *pass = nullptr);
    void cleanAPlist();
    /* Blocks up to connect_timeout_ms for the connection, like the core. */
    wl_status_t run(uint32_t connect_timeout_ms = 5000);

private:
    struct Ap {
        char ssid[33];
        char pass[65];
    };
    static const int MAX = 8;
    Ap aps[MAX];
    int count = 0;
};

#endif
