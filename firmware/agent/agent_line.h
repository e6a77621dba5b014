/* Parsing and formatting of agent protocol lines (see PROTOCOL.md):
 * `verb key=value ...` with percent-encoded values. Parsing works in place:
 * decoded values overwrite the line buffer, never growing it. */
#ifndef AGENT_LINE_H
#define AGENT_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AGENT_LINE_MAX 1024
#define AGENT_MAX_FIELDS 20
#define AGENT_WORD_MAX 16

typedef struct {
    const char *key; /* NUL-terminated, [a-z0-9_]+ */
    const uint8_t *val;
    size_t len;
    bool used;
} agent_field;

typedef struct {
    const char *verb; /* NUL-terminated, [a-z_]+ */
    agent_field f[AGENT_MAX_FIELDS];
    size_t n;
} agent_cmd;

typedef enum {
    LINE_OK = 0,
    LINE_EMPTY,      /* blank line: not a command, nothing to answer */
    LINE_BAD_VERB,   /* verb not [a-z_]{1,16} */
    LINE_BAD_SYNTAX, /* a field is not key=value, or a control byte */
    LINE_BAD_KEY,    /* key not [a-z0-9_]{1,16} */
    LINE_DUP_KEY,
    LINE_BAD_ESCAPE, /* % not followed by two hex digits */
    LINE_TOO_MANY,   /* more than AGENT_MAX_FIELDS fields */
} line_err;

const char *line_err_str(line_err e);

/* Parses line[0..len) (no newline) in place; line must have room for one
 * more byte (a terminator is written). On error, *where points at the
 * offending token's text (NUL-terminated) when there is one. */
line_err agent_line_parse(char *line, size_t len, agent_cmd *out, const char **where);

/* Returns the field, or NULL; marks it used for agent_cmd_unused. */
agent_field *agent_cmd_get(agent_cmd *c, const char *key);
/* The first field no handler asked for, or NULL: an unknown key. */
const agent_field *agent_cmd_unused(const agent_cmd *c);

/* Strict unsigned decimal within [min, max]. */
bool agent_parse_uint(const uint8_t *s, size_t len, uint32_t min, uint32_t max, uint32_t *out);

/* Writes protocol lines in small chunks, so a long @msg needs no line-sized
 * buffer. */
typedef struct {
    void (*write)(void *ctx, const uint8_t *data, size_t len);
    void *ctx;
    uint8_t buf[96];
    size_t len;
} agent_out;

void out_raw(agent_out *o, const char *s);
void out_kv(agent_out *o, const char *key, const uint8_t *val, size_t len); /* encodes */
void out_kv_str(agent_out *o, const char *key, const char *val);
void out_kv_uint(agent_out *o, const char *key, uint32_t v);
void out_end(agent_out *o); /* newline + flush */

#ifdef __cplusplus
}
#endif
#endif
