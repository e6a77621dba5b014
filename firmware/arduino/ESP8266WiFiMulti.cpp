#include "ESP8266WiFiMulti.h"

bool ESP8266WiFiMulti::addAP(const char *ssid, const char *pass)
{
    if (!ssid || !*ssid || strlen(ssid) > 32 || (pass && strlen(pass) > 64) || count == MAX)
        return false;
    if (existsAP(ssid, pass))
        return true;
    strcpy(aps[count].ssid, ssid);
    strcpy(aps[count].pass, pass ? pass : "");
    count++;
    return true;
}

bool ESP8266WiFiMulti::existsAP(const char *ssid, const char *pass)
{
    for (int i = 0; i < count; i++)
        if (strcmp(aps[i].ssid, ssid) == 0 && strcmp(aps[i].pass, pass ? pass : "") == 0)
            return true;
    return false;
}

void ESP8266WiFiMulti::cleanAPlist()
{
    count = 0;
}

wl_status_t ESP8266WiFiMulti::run(uint32_t connect_timeout_ms)
{
    if (WiFi.status() == WL_CONNECTED)
        return WL_CONNECTED;
    if (count == 0)
        return WL_NO_SSID_AVAIL;
    WiFi.begin(aps[0].ssid, aps[0].pass);
    unsigned long start = millis();
    while (WiFi.status() != WL_CONNECTED && millis() - start < connect_timeout_ms)
        delay(10);
    return WiFi.status();
}
