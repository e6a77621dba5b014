#include "ESP8266WiFi.h"
#include "board.h"
#include "Esp.h"
#include "net.h"
#include "lwip/netif.h"
#include "lwip/dns.h"

#ifndef MQTT_HIL_DHCP_FALLBACK_MS
#define MQTT_HIL_DHCP_FALLBACK_MS 0
#endif

WiFiClass WiFi;

WiFiClass::WiFiClass() : dhcp_fallback_ms(MQTT_HIL_DHCP_FALLBACK_MS) {}

static void start_static(IPAddress ip, IPAddress gw, IPAddress mask)
{
    ip4_addr_t a, g, m;
    ip4_addr_set_u32(&a, ip.v4());
    ip4_addr_set_u32(&g, gw.v4());
    ip4_addr_set_u32(&m, mask.v4());
    net_up(NET_STATIC, &a, &m, &g);
}

wl_status_t WiFiClass::begin(const char *s, const char *p)
{
    if (s) {
        strncpy(ssid, s, sizeof ssid - 1);
        strncpy(pass, p ? p : "", sizeof pass - 1);
    }
    if (net_init() != 0)
        return WL_NO_SHIELD;
    begun_at = millis();
    fell_back = false;
    started = true;
    if (use_static)
        start_static(st_ip, st_gw, st_mask);
    else
        net_up(NET_DHCP, nullptr, nullptr, nullptr);
    return status();
}

bool WiFiClass::config(IPAddress local, IPAddress gateway, IPAddress subnet, IPAddress dns1,
                       IPAddress dns2)
{
    ip_addr_t d;
    if (dns1.isSet()) {
        ip_addr_set_ip4_u32(&d, dns1.v4());
        dns_setserver(0, &d);
    }
    if (dns2.isSet()) {
        ip_addr_set_ip4_u32(&d, dns2.v4());
        dns_setserver(1, &d);
    }
    use_static = local.isSet();
    st_ip = local;
    st_gw = gateway;
    st_mask = subnet;
    if (started)
        begin(nullptr, nullptr);
    return true;
}

bool WiFiClass::disconnect(bool)
{
    net_down();
    started = false;
    return true;
}

wl_status_t WiFiClass::status()
{
    if (!started)
        return WL_DISCONNECTED;
    /* Association lost: the SDK is reconnecting, which the core reports
     * as WL_DISCONNECTED (and the DHCP address is gone with it). */
    if (!net_link_up())
        return WL_DISCONNECTED;
    if (net_has_address())
        return WL_CONNECTED;
    if (!use_static && !fell_back && dhcp_fallback_ms &&
        millis() - begun_at >= dhcp_fallback_ms) {
        fell_back = true;
        net_up(NET_STATIC, nullptr, nullptr, nullptr);
        return net_has_address() ? WL_CONNECTED : WL_DISCONNECTED;
    }
    return WL_DISCONNECTED;
}

IPAddress WiFiClass::localIP()
{
    struct netif *n = net_netif();
    return n ? IPAddress(ip4_addr_get_u32(netif_ip4_addr(n))) : IPAddress();
}

IPAddress WiFiClass::gatewayIP()
{
    struct netif *n = net_netif();
    return n ? IPAddress(ip4_addr_get_u32(netif_ip4_gw(n))) : IPAddress();
}

IPAddress WiFiClass::subnetMask()
{
    struct netif *n = net_netif();
    return n ? IPAddress(ip4_addr_get_u32(netif_ip4_netmask(n))) : IPAddress();
}

IPAddress WiFiClass::dnsIP(uint8_t n)
{
    const ip_addr_t *a = dns_getserver(n);
    return a ? IPAddress(ip_addr_get_ip4_u32(a)) : IPAddress();
}

struct Lookup {
    bool done = false;
    bool found = false;
    uint32_t addr = 0;
};

static void on_found(const char *, const ip_addr_t *addr, void *arg)
{
    Lookup *l = static_cast<Lookup *>(arg);
    l->done = true;
    if (addr) {
        l->found = true;
        l->addr = ip_addr_get_ip4_u32(addr);
    }
}

int WiFiClass::hostByName(const char *name, IPAddress &result)
{
    return hostByName(name, result, 10000);
}

int WiFiClass::hostByName(const char *name, IPAddress &result, uint32_t timeout_ms)
{
    if (!name || !*name)
        return 0;
    if (result.fromString(name))
        return 1;
    if (net_init() != 0)
        return 0;
    /* lwIP may call back after we gave up: the record must outlive us. */
    static Lookup pending[2];
    static unsigned slot;
    Lookup *l = &pending[slot++ % 2];
    *l = Lookup();
    ip_addr_t addr;
    err_t e = dns_gethostbyname(name, &addr, on_found, l);
    if (e == ERR_OK) {
        result = IPAddress(ip_addr_get_ip4_u32(&addr));
        return 1;
    }
    if (e != ERR_INPROGRESS)
        return 0;
    unsigned long start = millis();
    while (!l->done && millis() - start < timeout_ms)
        delay(1);
    if (!l->found)
        return 0;
    result = IPAddress(l->addr);
    return 1;
}

bool WiFiClass::reconnect()
{
    if (!started)
        return false;
    net_down();
    begin(nullptr, nullptr);
    return true;
}

bool WiFiClass::hostname(const char *name)
{
    if (!name || strlen(name) > 32)
        return false;
    strncpy(host, name, sizeof host - 1);
    struct netif *n = net_netif();
    if (n)
        netif_set_hostname(n, host);
    return true;
}

String WiFiClass::hostname()
{
    return String(getHostname());
}

const char *WiFiClass::getHostname()
{
    if (host[0])
        return host;
    static char def[16];
    snprintf(def, sizeof def, "ESP-%06lX", (unsigned long)(ESP.getChipId() & 0xffffff));
    return def;
}

uint8_t *WiFiClass::macAddress(uint8_t *mac)
{
    const uint8_t *m = net_mac();
    memcpy(mac, m, 6);
    return mac;
}

String WiFiClass::macAddress()
{
    uint8_t m[6];
    macAddress(m);
    char buf[18];
    snprintf(buf, sizeof buf, "%02X:%02X:%02X:%02X:%02X:%02X", m[0], m[1], m[2], m[3], m[4], m[5]);
    return String(buf);
}

uint8_t *WiFiClass::BSSID()
{
    static uint8_t bssid[6] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};
    return bssid;
}

String WiFiClass::BSSIDstr()
{
    uint8_t *b = BSSID();
    char buf[18];
    snprintf(buf, sizeof buf, "%02X:%02X:%02X:%02X:%02X:%02X", b[0], b[1], b[2], b[3], b[4], b[5]);
    return String(buf);
}

String WiFiClass::SSID() const
{
    return String(status_connected() ? ssid : "");
}

String WiFiClass::psk() const
{
    return String(pass);
}

int8_t WiFiClass::waitForConnectResult(unsigned long timeout_ms)
{
    unsigned long start = millis();
    while (status() != WL_CONNECTED && millis() - start < timeout_ms)
        delay(10);
    return (int8_t)status();
}

void WiFiClass::printDiag(Print &p)
{
    p.printf("Mode: STA\r\nChannel: %ld\r\nSSID (%u): %s\r\nAuto connect: 1\r\n", (long)channel(),
             (unsigned)strlen(ssid), ssid);
}
