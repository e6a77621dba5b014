#include "ESP8266WiFi.h"
#include "board.h"
#include "net.h"
#include "lwip/netif.h"

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

wl_status_t WiFiClass::begin(const char *, const char *)
{
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

bool WiFiClass::config(IPAddress local, IPAddress gateway, IPAddress subnet)
{
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
