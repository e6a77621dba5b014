#include "agent_line.h"

#include <stdio.h>
#include <string.h>

const char *line_err_str(line_err e)
{
    switch (e) {
    case LINE_OK: return "ok";
    case LINE_EMPTY: return "empty";
    case LINE_BAD_VERB: return "bad_verb";
    case LINE_BAD_SYNTAX: return "bad_syntax";
    case LINE_BAD_KEY: return "bad_key";
    case LINE_DUP_KEY: return "duplicate_key";
    case LINE_BAD_ESCAPE: return "bad_escape";
    case LINE_TOO_MANY: return "too_many_fields";
    }
    return "unknown";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool word_ok(const char *s, size_t n, bool digits)
{
    if (n == 0 || n > AGENT_WORD_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || c == '_' || (digits && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

line_err agent_line_parse(char *line, size_t len, agent_cmd *out, const char **where)
{
    out->n = 0;
    out->verb = "";
    *where = NULL;
    line[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
            return LINE_BAD_SYNTAX;

    size_t i = 0;
    while (i < len && line[i] == ' ')
        i++;
    if (i == len)
        return LINE_EMPTY;
    size_t v0 = i;
    while (i < len && line[i] != ' ')
        i++;
    bool verb_ok = word_ok(line + v0, i - v0, false);
    if (i < len)
        line[i++] = '\0';
    if (!verb_ok)
        return LINE_BAD_VERB;
    out->verb = line + v0;

    while (i < len) {
        if (line[i] == ' ') {
            i++;
            continue;
        }
        size_t t0 = i;
        while (i < len && line[i] != ' ')
            i++;
        size_t t1 = i;
        if (i < len)
            line[i++] = '\0'; /* ends the token; the value is decoded in place */
        *where = line + t0;
        char *eq = memchr(line + t0, '=', t1 - t0);
        if (!eq)
            return LINE_BAD_SYNTAX;
        if (!word_ok(line + t0, (size_t)(eq - (line + t0)), true))
            return LINE_BAD_KEY;
        if (out->n == AGENT_MAX_FIELDS)
            return LINE_TOO_MANY;
        *eq = '\0';
        for (size_t k = 0; k < out->n; k++)
            if (strcmp(out->f[k].key, line + t0) == 0) {
                *eq = '=';
                return LINE_DUP_KEY;
            }
        uint8_t *dst = (uint8_t *)eq + 1;
        size_t n = 0;
        for (char *s = eq + 1; s < line + t1; s++) {
            if (*s == '%') {
                int hi = s + 1 < line + t1 ? hexval(s[1]) : -1;
                int lo = s + 2 < line + t1 ? hexval(s[2]) : -1;
                if (hi < 0 || lo < 0) {
                    *eq = '=';
                    return LINE_BAD_ESCAPE;
                }
                dst[n++] = (uint8_t)(hi << 4 | lo);
                s += 2;
            } else {
                dst[n++] = (uint8_t)*s;
            }
        }
        agent_field *f = &out->f[out->n++];
        f->key = line + t0;
        f->val = dst;
        f->len = n;
        f->used = false;
    }
    *where = NULL;
    return LINE_OK;
}

agent_field *agent_cmd_get(agent_cmd *c, const char *key)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->f[i].key, key) == 0) {
            c->f[i].used = true;
            return &c->f[i];
        }
    return NULL;
}

const agent_field *agent_cmd_unused(const agent_cmd *c)
{
    for (size_t i = 0; i < c->n; i++)
        if (!c->f[i].used)
            return &c->f[i];
    return NULL;
}

bool agent_parse_uint(const uint8_t *s, size_t len, uint32_t min, uint32_t max, uint32_t *out)
{
    if (len == 0 || len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* ---- output ------------------------------------------------------------ */

static void flush(agent_out *o)
{
    if (o->len)
        o->write(o->ctx, o->buf, o->len);
    o->len = 0;
}

static void put(agent_out *o, uint8_t b)
{
    if (o->len == sizeof o->buf)
        flush(o);
    o->buf[o->len++] = b;
}

void out_raw(agent_out *o, const char *s)
{
    while (*s)
        put(o, (uint8_t)*s++);
}

void out_kv(agent_out *o, const char *key, const uint8_t *val, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    put(o, ' ');
    out_raw(o, key);
    put(o, '=');
    for (size_t i = 0; i < len; i++) {
        uint8_t b = val[i];
        if (b > 0x20 && b < 0x7f && b != '%' && b != '=') {
            put(o, b);
        } else {
            put(o, '%');
            put(o, (uint8_t)hex[b >> 4]);
            put(o, (uint8_t)hex[b & 15]);
        }
    }
}

void out_kv_str(agent_out *o, const char *key, const char *val)
{
    out_kv(o, key, (const uint8_t *)val, strlen(val));
}

void out_kv_uint(agent_out *o, const char *key, uint32_t v)
{
    char num[12];
    snprintf(num, sizeof num, "%lu", (unsigned long)v);
    out_kv_str(o, key, num);
}

void out_end(agent_out *o)
{
    put(o, '\n');
    flush(o);
}
