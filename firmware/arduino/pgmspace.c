/* The *_P functions: C library semantics, flash read through
 * pgm_read_byte (see pgmspace.h). */
#include <ctype.h>
#include <stdlib.h>
#include "pgmspace.h"

void *memcpy_P(void *dst, PGM_VOID_P src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--)
        *d++ = pgm_read_byte(s++);
    return dst;
}

int memcmp_P(const void *a, PGM_VOID_P b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (; n; n--, x++, y++) {
        uint8_t c = pgm_read_byte(y);
        if (*x != c)
            return *x - c;
    }
    return 0;
}

void *memchr_P(PGM_VOID_P s, int c, size_t n)
{
    const uint8_t *p = s;
    for (; n; n--, p++)
        if (pgm_read_byte(p) == (uint8_t)c)
            return (void *)p;
    return NULL;
}

void *memccpy_P(void *dst, PGM_VOID_P src, int c, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) {
        uint8_t b = pgm_read_byte(s++);
        *d++ = b;
        if (b == (uint8_t)c)
            return d;
    }
    return NULL;
}

size_t strnlen_P(PGM_P s, size_t max)
{
    size_t n = 0;
    while (n < max && pgm_read_byte(s + n))
        n++;
    return n;
}

size_t strlen_P(PGM_P s)
{
    return strnlen_P(s, (size_t)-1);
}

char *strncpy_P(char *dst, PGM_P src, size_t n)
{
    size_t i = 0;
    for (; i < n; i++) {
        char c = (char)pgm_read_byte(src + i);
        dst[i] = c;
        if (!c)
            break;
    }
    for (; i < n; i++)
        dst[i] = 0;
    return dst;
}

char *strcpy_P(char *dst, PGM_P src)
{
    char *d = dst;
    while ((*d++ = (char)pgm_read_byte(src++)))
        ;
    return dst;
}

char *strcat_P(char *dst, PGM_P src)
{
    strcpy_P(dst + strlen(dst), src);
    return dst;
}

char *strncat_P(char *dst, PGM_P src, size_t n)
{
    char *d = dst + strlen(dst);
    while (n-- && (*d = (char)pgm_read_byte(src++)))
        d++;
    *d = 0;
    return dst;
}

int strncmp_P(const char *a, PGM_P b, size_t n)
{
    for (; n; n--, a++, b++) {
        uint8_t x = (uint8_t)*a, y = pgm_read_byte(b);
        if (x != y)
            return x - y;
        if (!x)
            break;
    }
    return 0;
}

int strcmp_P(const char *a, PGM_P b)
{
    return strncmp_P(a, b, (size_t)-1);
}

int strncasecmp_P(const char *a, PGM_P b, size_t n)
{
    for (; n; n--, a++, b++) {
        int x = tolower((uint8_t)*a), y = tolower(pgm_read_byte(b));
        if (x != y)
            return x - y;
        if (!x)
            break;
    }
    return 0;
}

int strcasecmp_P(const char *a, PGM_P b)
{
    return strncasecmp_P(a, b, (size_t)-1);
}

char *strstr_P(const char *hay, PGM_P needle)
{
    size_t n = strlen_P(needle);
    if (!n)
        return (char *)hay;
    for (; *hay; hay++)
        if (memcmp_P(hay, needle, n) == 0)
            return (char *)hay;
    return NULL;
}

char *strchr_P(PGM_P s, int c)
{
    for (;; s++) {
        char b = (char)pgm_read_byte(s);
        if (b == (char)c)
            return (char *)s;
        if (!b)
            return NULL;
    }
}

char *strrchr_P(PGM_P s, int c)
{
    const char *last = NULL;
    for (;; s++) {
        char b = (char)pgm_read_byte(s);
        if (b == (char)c)
            last = s;
        if (!b)
            return (char *)last;
    }
}

/* The format is copied out of flash first, as the core's newlib reads it
 * through the flash-safe path. */
int vsnprintf_P(char *buf, size_t n, PGM_P fmt, va_list ap)
{
    size_t len = strlen_P(fmt);
    char *f = malloc(len + 1);
    if (!f)
        return -1;
    strcpy_P(f, fmt);
    int r = vsnprintf(buf, n, f, ap);
    free(f);
    return r;
}

int snprintf_P(char *buf, size_t n, PGM_P fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf_P(buf, n, fmt, ap);
    va_end(ap);
    return r;
}

int sprintf_P(char *buf, PGM_P fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf_P(buf, (size_t)0x7fffffff, fmt, ap);
    va_end(ap);
    return r;
}

int printf_P(PGM_P fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int r = vsnprintf_P(small, sizeof small, fmt, ap);
    va_end(ap);
    if (r > 0)
        fputs(small, stdout);
    return r;
}
