#include "Arduino.h"
#include "ESP8266WiFi.h"
#include "lwip/tcp.h"
#include "net.h"

/* Until the sketch accepts it, a waiting connection buffers nothing: its
 * receive callback holds the data back (lwIP keeps it and retries). */
static err_t hold_recv(void *, struct tcp_pcb *, struct pbuf *, err_t)
{
    return ERR_MEM;
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    WiFiServer *s = static_cast<WiFiServer *>(arg);
    if (err != ERR_OK || !pcb || !s)
        return ERR_VAL;
    tcp_recv(pcb, hold_recv);
    if (!s->push(pcb)) {
        tcp_abort(pcb);
        return ERR_ABRT;
    }
    return ERR_OK;
}

void WiFiServer::begin()
{
    close();
    if (net_init() != 0)
        return;
    struct tcp_pcb *pcb = tcp_new();
    if (!pcb)
        return;
    if (tcp_bind(pcb, IP_ADDR_ANY, port_) != ERR_OK) {
        tcp_close(pcb);
        return;
    }
    listener_ = tcp_listen(pcb);
    if (!listener_) {
        tcp_close(pcb);
        return;
    }
    tcp_arg(listener_, this);
    tcp_accept(listener_, on_accept);
}

bool WiFiServer::push(tcp_pcb *pcb)
{
    if (queued_ == QUEUE)
        return false;
    queue_[queued_++] = pcb;
    return true;
}

bool WiFiServer::hasClient()
{
    yield();
    return queued_ > 0;
}

WiFiClient WiFiServer::accept()
{
    yield();
    if (!queued_)
        return WiFiClient();
    tcp_pcb *pcb = queue_[0];
    memmove(&queue_[0], &queue_[1], (size_t)(queued_ - 1) * sizeof(queue_[0]));
    queued_--;
    if (nodelay_)
        tcp_nagle_disable(pcb);
    return WiFiClient(pcb);
}

void WiFiServer::close()
{
    for (int i = 0; i < queued_; i++)
        tcp_abort(queue_[i]);
    queued_ = 0;
    if (listener_) {
        tcp_arg(listener_, nullptr);
        tcp_close(listener_);
        listener_ = nullptr;
    }
}
