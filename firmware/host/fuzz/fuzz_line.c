/* libFuzzer target: the agent's line protocol, fed arbitrary UART bytes.
 * Oracles: no sanitizer report; every complete non-blank line gets exactly
 * one @ok/@err answer (the protocol never wedges or stays silent); every
 * output line is a protocol line ending in a newline. */
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "agent_line.h"

static size_t answers, out_lines;
static bool at_line_start = true;
static char line_head[5];
static size_t head_len;

static uint32_t f_millis(void *c) { (void)c; return 0; }
static bool f_connect(void *c, const char *h, uint16_t p) { (void)c; (void)h; (void)p; return true; }
static int f_connected(void *c) { (void)c; return 1; }
static int f_write(void *c, const uint8_t *d, size_t n) { (void)c; (void)d; return (int)n; }
static int f_read(void *c, uint8_t *b, size_t n) { (void)c; (void)b; (void)n; return 0; }
static void f_close(void *c) { (void)c; }
static void f_uart(void *c, const uint8_t *d, size_t n)
{
    (void)c;
    for (size_t i = 0; i < n; i++) {
        if (at_line_start) {
            if (d[i] != '@')
                abort(); /* the agent prints nothing but protocol lines */
            head_len = 0;
            at_line_start = false;
        }
        if (head_len < sizeof line_head)
            line_head[head_len++] = (char)d[i];
        if (d[i] == '\n') {
            out_lines++;
            if ((head_len >= 4 && memcmp(line_head, "@ok ", 4) == 0) ||
                (head_len >= 5 && memcmp(line_head, "@err ", 5) == 0))
                answers++;
            at_line_start = true;
        }
    }
}
static uint8_t store[AGENT_STORE_SIZE];
static bool f_sread(void *c, uint32_t o, uint8_t *b, size_t n)
{
    (void)c;
    if (o > sizeof store || n > sizeof store - o)
        abort();
    memcpy(b, store + o, n);
    return true;
}
static bool f_swrite(void *c, uint32_t o, const uint8_t *b, size_t n)
{
    (void)c;
    if (o > sizeof store || n > sizeof store - o)
        abort();
    memcpy(store + o, b, n);
    return true;
}
static void f_reboot(void *c) { (void)c; }

static const agent_io IO = { NULL, f_millis, f_connect, f_connected, f_write, f_read, f_close,
                             f_uart, f_sread, f_swrite, NULL, f_reboot, NULL };

/* Lines the agent must answer: non-blank (after one trailing CR), or too long. */
static size_t expected_answers(const uint8_t *d, size_t n)
{
    size_t count = 0, start = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] != '\n')
            continue;
        size_t len = i - start;
        if (len > AGENT_LINE_MAX) {
            count++;
        } else {
            size_t l = len;
            if (l && d[start + l - 1] == '\r')
                l--;
            for (size_t k = 0; k < l; k++)
                if (d[start + k] != ' ') {
                    count++;
                    break;
                }
        }
        start = i + 1;
    }
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    memset(store, 0xFF, sizeof store);
    answers = out_lines = 0;
    at_line_start = true;
    agent_init(&IO);
    size_t chunk = size ? (size_t)(data[0] % 13) + 1 : 1;
    for (size_t off = 0; off < size; off += chunk) {
        size_t k = size - off < chunk ? size - off : chunk;
        agent_uart_input(data + off, k);
        agent_poll();
    }
    if (!at_line_start)
        abort(); /* a line left unterminated */
    if (answers != expected_answers(data, size))
        abort();
    return 0;
}
