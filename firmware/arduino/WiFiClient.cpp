#include "Arduino.h"
#include "ESP8266WiFi.h"
#include "lwip/tcp.h"
#include "lwip/pbuf.h"

enum ConnState { CONN_CONNECTING, CONN_OPEN, CONN_CLOSED };

/* lwIP callbacks keep this in sync with the PCB; the client only ever
 * touches it from the main loop, never from inside lwIP. */
struct TcpConn {
    struct tcp_pcb *pcb = nullptr;
    struct pbuf *rx = nullptr;     /* received, not yet read */
    uint16_t rx_off = 0;           /* bytes of rx already read */
    ConnState state = CONN_CONNECTING;
    int refs = 1;
    uint32_t remote = 0;
    uint16_t rport = 0;
};

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    TcpConn *c = static_cast<TcpConn *>(arg);
    if (!c) {
        if (p)
            pbuf_free(p);
        return ERR_OK;
    }
    if (!p || err != ERR_OK) {
        if (p)
            pbuf_free(p);
        /* Peer closed: close our side now (no PCB leak if the sketch never
         * calls stop()); buffered bytes stay readable. */
        tcp_arg(pcb, nullptr);
        tcp_recv(pcb, nullptr);
        tcp_err(pcb, nullptr);
        c->pcb = nullptr;
        c->state = CONN_CLOSED;
        if (tcp_close(pcb) != ERR_OK) {
            tcp_abort(pcb);
            return ERR_ABRT;
        }
        return ERR_OK;
    }
    if (c->rx)
        pbuf_cat(c->rx, p);
    else
        c->rx = p;
    return ERR_OK;
}

static void on_err(void *arg, err_t)
{
    /* lwIP has already freed the PCB. */
    TcpConn *c = static_cast<TcpConn *>(arg);
    if (c) {
        c->pcb = nullptr;
        c->state = CONN_CLOSED;
    }
}

static err_t on_connected(void *arg, struct tcp_pcb *, err_t err)
{
    TcpConn *c = static_cast<TcpConn *>(arg);
    if (c)
        c->state = err == ERR_OK ? CONN_OPEN : CONN_CLOSED;
    return ERR_OK;
}

static void detach(TcpConn *c, bool hard)
{
    if (c->pcb) {
        struct tcp_pcb *pcb = c->pcb;
        c->pcb = nullptr;
        tcp_arg(pcb, nullptr);
        tcp_recv(pcb, nullptr);
        tcp_err(pcb, nullptr);
        if (hard || tcp_close(pcb) != ERR_OK)
            tcp_abort(pcb);
    }
    if (c->rx) {
        pbuf_free(c->rx);
        c->rx = nullptr;
        c->rx_off = 0;
    }
    c->state = CONN_CLOSED;
}

WiFiClient::WiFiClient(const WiFiClient &other) : Client(other), conn(other.conn)
{
    if (conn)
        conn->refs++;
}

WiFiClient &WiFiClient::operator=(const WiFiClient &other)
{
    if (this != &other) {
        if (other.conn)
            other.conn->refs++;
        release();
        conn = other.conn;
        timeout_ms = other.timeout_ms;
    }
    return *this;
}

WiFiClient::~WiFiClient()
{
    release();
}

void WiFiClient::release()
{
    if (conn && --conn->refs == 0) {
        detach(conn, false);
        delete conn;
    }
    conn = nullptr;
}

int WiFiClient::connect(const char *host, uint16_t port)
{
    IPAddress ip;
    if (!host || !WiFi.hostByName(host, ip))
        return 0;
    return connect(ip, port);
}

WiFiClient::WiFiClient(struct tcp_pcb *pcb)
{
    conn = new TcpConn;
    if (!conn) {
        tcp_abort(pcb);
        return;
    }
    conn->pcb = pcb;
    conn->state = CONN_OPEN;
    conn->remote = ip4_addr_get_u32(ip_2_ip4(&pcb->remote_ip));
    conn->rport = pcb->remote_port;
    tcp_arg(pcb, conn);
    tcp_recv(pcb, on_recv);
    tcp_err(pcb, on_err);
}

int WiFiClient::connect(IPAddress ip, uint16_t port)
{
    if (conn && conn->refs == 1)
        detach(conn, false);
    release();
    conn = new TcpConn;
    if (!conn)
        return 0;
    struct tcp_pcb *pcb = tcp_new();
    if (!pcb) {
        release();
        return 0;
    }
    conn->pcb = pcb;
    conn->remote = ip.v4();
    conn->rport = port;
    tcp_arg(pcb, conn);
    tcp_recv(pcb, on_recv);
    tcp_err(pcb, on_err);
    ip_addr_t addr;
    ip_addr_set_ip4_u32(&addr, ip.v4());
    if (tcp_connect(pcb, &addr, port, on_connected) != ERR_OK) {
        detach(conn, true);
        release();
        return 0;
    }
    unsigned long start = millis();
    unsigned long limit = timeout_ms < 5000 ? 5000 : timeout_ms;
    while (conn->state == CONN_CONNECTING && millis() - start < limit)
        yield();
    if (conn->state != CONN_OPEN) {
        detach(conn, true);
        release();
        return 0;
    }
    return 1;
}

size_t WiFiClient::write(uint8_t c)
{
    return write(&c, 1);
}

size_t WiFiClient::write(const uint8_t *buf, size_t len)
{
    size_t done = 0;
    unsigned long start = millis();
    while (done < len && conn && conn->pcb && conn->state == CONN_OPEN) {
        size_t room = tcp_sndbuf(conn->pcb);
        if (room > len - done)
            room = len - done;
        if (room > 0xffff)
            room = 0xffff;
        /* lwIP cuts a write into segments of the peer's MSS and refuses
         * (ERR_MEM) one that would need more than the send queue's free
         * segments: against a small MSS, write no more than they hold. */
        size_t slots = tcp_sndqueuelen(conn->pcb) < TCP_SND_QUEUELEN
                           ? (size_t)(TCP_SND_QUEUELEN - tcp_sndqueuelen(conn->pcb))
                           : 0;
        size_t mss = tcp_mss(conn->pcb) ? tcp_mss(conn->pcb) : 1;
        if (room > slots * mss)
            room = slots * mss;
        if (room == 0 || tcp_sndqueuelen(conn->pcb) >= TCP_SND_QUEUELEN) {
            if (millis() - start > (timeout_ms < 5000 ? 5000 : timeout_ms))
                break;
            tcp_output(conn->pcb);
            yield();
            continue;
        }
        err_t e = tcp_write(conn->pcb, buf + done, (u16_t)room, TCP_WRITE_FLAG_COPY);
        if (e == ERR_MEM) {
            if (millis() - start > (timeout_ms < 5000 ? 5000 : timeout_ms))
                break;
            tcp_output(conn->pcb);
            yield();
            continue;
        }
        if (e != ERR_OK)
            break;
        done += room;
        start = millis();
    }
    if (done && conn && conn->pcb)
        tcp_output(conn->pcb);
    return done;
}

int WiFiClient::availableForWrite()
{
    if (!conn || !conn->pcb || conn->state != CONN_OPEN ||
        tcp_sndqueuelen(conn->pcb) >= TCP_SND_QUEUELEN)
        return 0;
    return tcp_sndbuf(conn->pcb);
}

int WiFiClient::available()
{
    if (!conn)
        return 0;
    if (!conn->rx)
        yield();
    return conn->rx ? conn->rx->tot_len - conn->rx_off : 0;
}

int WiFiClient::read(uint8_t *buf, size_t len)
{
    if (conn && !conn->rx)
        yield();
    if (!conn || !conn->rx)
        return -1;
    size_t avail = conn->rx->tot_len - conn->rx_off;
    if (len > avail)
        len = avail;
    pbuf_copy_partial(conn->rx, buf, (u16_t)len, conn->rx_off);
    conn->rx_off = (uint16_t)(conn->rx_off + len);
    /* Drop fully read pbufs from the head of the chain. */
    while (conn->rx && conn->rx_off >= conn->rx->len) {
        struct pbuf *head = conn->rx;
        conn->rx_off = (uint16_t)(conn->rx_off - head->len);
        conn->rx = head->next;
        if (conn->rx)
            pbuf_ref(conn->rx);
        pbuf_free(head);
    }
    if (conn->pcb)
        tcp_recved(conn->pcb, (u16_t)len);
    arduino_note_activity();
    return (int)len;
}

int WiFiClient::read()
{
    uint8_t c;
    return read(&c, 1) == 1 ? c : -1;
}

int WiFiClient::peek()
{
    if (!conn || !conn->rx)
        return -1;
    return pbuf_get_at(conn->rx, conn->rx_off);
}

void WiFiClient::flush()
{
    unsigned long start = millis();
    while (conn && conn->pcb && conn->state == CONN_OPEN &&
           tcp_sndbuf(conn->pcb) < TCP_SND_BUF && millis() - start < timeout_ms)
        yield();
}

void WiFiClient::stop()
{
    if (conn)
        detach(conn, false);
}

void WiFiClient::abort()
{
    if (conn)
        detach(conn, true);
}

uint8_t WiFiClient::connected()
{
    if (!conn)
        return 0;
    /* The core's connected() is "open, or data still unread", and asks the
     * second through available(), which gives the SDK a turn: a sketch
     * spinning on connected() alone (waiting for the broker to close) must
     * see the close without calling delay(). */
    if (!conn->rx)
        yield();
    return conn->state == CONN_OPEN || (conn->rx && conn->rx->tot_len > conn->rx_off);
}

void WiFiClient::setNoDelay(bool nodelay)
{
    if (conn && conn->pcb) {
        if (nodelay)
            tcp_nagle_disable(conn->pcb);
        else
            tcp_nagle_enable(conn->pcb);
    }
}

bool WiFiClient::getNoDelay()
{
    return conn && conn->pcb && tcp_nagle_disabled(conn->pcb);
}

IPAddress WiFiClient::remoteIP()
{
    return conn ? IPAddress(conn->remote) : IPAddress();
}

uint16_t WiFiClient::remotePort()
{
    return conn ? conn->rport : 0;
}

uint16_t WiFiClient::localPort()
{
    return conn && conn->pcb ? conn->pcb->local_port : 0;
}
