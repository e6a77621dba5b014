/* mqtt-hil-agent-host: the agent's portable core on Linux. The line protocol
 * runs on stdin/stdout, MQTT over a TCP socket to exactly the address the
 * `connect` command names (numeric, no name lookups), the persistent store
 * is a file. `reboot` exits with status 75 so the harness restarts the
 * process, which then finds its session in the store file as a board would
 * find it in flash. */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define REBOOT_EXIT 75

static int sock = -1;
static int store_fd = -1;
static uint8_t ram_store[AGENT_STORE_SIZE]; /* without --store */

static uint32_t h_millis(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
}

static bool h_net_connect(void *ctx, const char *host, uint16_t port)
{
    (void)ctx;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "mqtt-hil-agent-host: host `%s` is not a numeric IPv4 address\n", host);
        return false;
    }
    sock = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return false;
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(sock, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
        close(sock);
        sock = -1;
        return false;
    }
    return true;
}

static int h_net_connected(void *ctx)
{
    (void)ctx;
    if (sock < 0)
        return -1;
    struct pollfd p = { sock, POLLOUT, 0 };
    if (poll(&p, 1, 0) <= 0)
        return 0;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(sock, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
        return -1;
    return 1;
}

static int h_net_write(void *ctx, const uint8_t *d, size_t n)
{
    (void)ctx;
    if (sock < 0)
        return -1;
    ssize_t w = send(sock, d, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    return (int)w;
}

static int h_net_read(void *ctx, uint8_t *buf, size_t cap)
{
    (void)ctx;
    if (sock < 0)
        return -1;
    ssize_t r = recv(sock, buf, cap, MSG_DONTWAIT);
    if (r == 0)
        return -1;
    if (r < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    return (int)r;
}

static void h_net_close(void *ctx)
{
    (void)ctx;
    if (sock >= 0)
        close(sock);
    sock = -1;
}

static void h_uart_write(void *ctx, const uint8_t *d, size_t n)
{
    (void)ctx;
    while (n) {
        ssize_t w = write(STDOUT_FILENO, d, n);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            exit(1); /* the harness is gone */
        }
        d += w;
        n -= (size_t)w;
    }
}

static bool in_store(uint32_t off, size_t len) { return off <= AGENT_STORE_SIZE && len <= AGENT_STORE_SIZE - off; }

static bool h_store_read(void *ctx, uint32_t off, uint8_t *buf, size_t len)
{
    (void)ctx;
    if (!in_store(off, len))
        return false;
    if (store_fd < 0) {
        memcpy(buf, ram_store + off, len);
        return true;
    }
    /* Past the end of a short file reads as erased flash would: 0xFF. */
    memset(buf, 0xFF, len);
    ssize_t r = pread(store_fd, buf, len, off);
    return r >= 0;
}

static bool h_store_write(void *ctx, uint32_t off, const uint8_t *buf, size_t len)
{
    (void)ctx;
    if (!in_store(off, len))
        return false;
    if (store_fd < 0) {
        memcpy(ram_store + off, buf, len);
        return true;
    }
    /* No fsync: a killed process keeps what it wrote (the page cache holds
     * it); only a host crash would lose it. */
    return pwrite(store_fd, buf, len, off) == (ssize_t)len;
}

static void h_reboot(void *ctx)
{
    (void)ctx;
    exit(REBOOT_EXIT);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mqtt-hil-agent-host [--store PATH]\n"
               "  Speaks the mqtt-hil agent line protocol on stdin/stdout.\n"
               "  --store PATH  persistent session store (a %u-byte file, created if absent);\n"
               "                without it the store lives in memory only.\n"
               "  Exits 75 on `reboot`, 0 at the end of stdin.\n",
            AGENT_STORE_SIZE);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            const char *path = argv[++i];
            store_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (store_fd < 0) {
                fprintf(stderr, "mqtt-hil-agent-host: cannot open store %s: %s\n", path,
                        strerror(errno));
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "mqtt-hil-agent-host: unexpected argument `%s`\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (store_fd < 0)
        memset(ram_store, 0xFF, sizeof ram_store);
    signal(SIGPIPE, SIG_IGN);

    agent_io io = {
        .millis = h_millis,
        .net_connect = h_net_connect,
        .net_connected = h_net_connected,
        .net_write = h_net_write,
        .net_read = h_net_read,
        .net_close = h_net_close,
        .uart_write = h_uart_write,
        .store_read = h_store_read,
        .store_write = h_store_write,
        .reboot = h_reboot,
    };
    agent_init(&io);

    for (;;) {
        struct pollfd p[2] = { { STDIN_FILENO, POLLIN, 0 }, { sock, POLLIN, 0 } };
        /* 10 ms bounds the timer resolution (keepalive, backoff). */
        poll(p, sock >= 0 ? 2 : 1, 10);
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t buf[512];
            ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
            if (r == 0)
                return 0;
            if (r > 0)
                agent_uart_input(buf, (size_t)r);
            else if (errno != EINTR && errno != EAGAIN)
                return 1;
        }
        agent_poll();
    }
}
