/* The test agent: speaks the line protocol of PROTOCOL.md on a UART and
 * drives the MQTT client. Portable: it reaches the board only through the
 * agent_io functions below, so the same code runs on an ESP8266, on the
 * emulated board and on Linux.
 *
 * Use: agent_init(&io) once (prints @ready), then feed every received UART
 * byte to agent_uart_input and call agent_poll often (every few ms). All
 * memory is static; nothing is allocated. Not reentrant: one agent per
 * program. */
#ifndef AGENT_H
#define AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AGENT_FW "mqtt-hil-agent/0.1"
#define AGENT_HOST_MAX 63
/* Bytes of persistent store the agent uses, from offset 0. */
#define AGENT_STORE_SIZE 4096u

typedef struct agent_io {
    void *ctx; /* passed back to every function */

    /* Milliseconds since boot; may wrap. */
    uint32_t (*millis)(void *ctx);

    /* Starts a TCP connection to host:port (host is a dotted IPv4 address or
     * a name). May complete later: the agent polls net_connected. Returns
     * false if it could not even start. */
    bool (*net_connect)(void *ctx, const char *host, uint16_t port);
    /* 1 = connected, 0 = still connecting, -1 = failed or closed. */
    int (*net_connected)(void *ctx);
    /* Writes up to len bytes without blocking; returns how many were taken
     * (0 when the socket's buffer is full), -1 on a broken connection. */
    int (*net_write)(void *ctx, const uint8_t *data, size_t len);
    /* Reads what is available without blocking: >0 bytes read, 0 nothing
     * now, -1 closed by the peer or broken. */
    int (*net_read)(void *ctx, uint8_t *buf, size_t cap);
    /* Closes (or abandons) the connection; harmless when there is none. */
    void (*net_close)(void *ctx);

    /* Writes to the UART; may block until written. */
    void (*uart_write)(void *ctx, const uint8_t *data, size_t len);

    /* Persistent store of AGENT_STORE_SIZE bytes, byte offsets. A fresh
     * (erased) store may read as anything. store_commit makes writes
     * durable (EEPROM.commit); NULL if writes are durable already. */
    bool (*store_read)(void *ctx, uint32_t off, uint8_t *buf, size_t len);
    bool (*store_write)(void *ctx, uint32_t off, const uint8_t *buf, size_t len);
    bool (*store_commit)(void *ctx);

    /* Restarts the board; need not return. The agent has flushed its answer
     * to the UART before calling it. */
    void (*reboot)(void *ctx);
    /* Free heap in bytes, for @ready and status; NULL reads as 0. */
    uint32_t (*free_heap)(void *ctx);
} agent_io;

void agent_init(const agent_io *io);
void agent_uart_input(const uint8_t *data, size_t len);
void agent_poll(void);

#ifdef __cplusplus
}
#endif
#endif
