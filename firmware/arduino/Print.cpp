#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include "Print.h"
#include "Printable.h"
#include "WString.h"
#include "pgmspace.h"

size_t Print::write(const uint8_t *buf, size_t len)
{
    size_t n = 0;
    while (len--) {
        if (!write(*buf++))
            break;
        n++;
    }
    return n;
}

size_t Print::print(const __FlashStringHelper *s)
{
    PGM_P p = reinterpret_cast<PGM_P>(s);
    if (!p)
        return 0;
    char chunk[32];
    size_t n = 0;
    for (;;) {
        size_t k = 0;
        while (k < sizeof chunk && (chunk[k] = (char)pgm_read_byte(p + k)))
            k++;
        n += write((const uint8_t *)chunk, k);
        if (k < sizeof chunk)
            return n;
        p += k;
    }
}

size_t Print::print(const String &s)
{
    return write((const uint8_t *)s.c_str(), s.length());
}

size_t Print::print(unsigned long long n, int base)
{
    char buf[66];
    char *p = buf + sizeof(buf) - 1;
    *p = 0;
    if (base < 2 || base > 36)
        base = 10;
    do {
        unsigned d = (unsigned)(n % (unsigned)base);
        *--p = (char)(d < 10 ? '0' + d : 'A' + d - 10);
        n /= (unsigned)base;
    } while (n);
    return write(p);
}

size_t Print::print(long long n, int base)
{
    if (base != 10)
        return print((unsigned long long)n, base);
    if (n < 0)
        return print('-') + print(0ull - (unsigned long long)n, base);
    return print((unsigned long long)n, base);
}

size_t Print::print(double n, int digits)
{
    char buf[48];
    int len = snprintf(buf, sizeof buf, "%.*f", digits < 0 ? 0 : digits, n);
    if (len < 0)
        return 0;
    if ((size_t)len < sizeof buf)
        return write((const uint8_t *)buf, (size_t)len);
    char *big = (char *)malloc((size_t)len + 1);
    if (!big)
        return 0;
    snprintf(big, (size_t)len + 1, "%.*f", digits < 0 ? 0 : digits, n);
    size_t r = write((const uint8_t *)big, (size_t)len);
    free(big);
    return r;
}

size_t Print::print(const Printable &p)
{
    return p.printTo(*this);
}

size_t Print::vprintf(const char *fmt, va_list ap)
{
    char small[128];
    va_list copy;
    va_copy(copy, ap);
    int len = vsnprintf(small, sizeof(small), fmt, copy);
    va_end(copy);
    if (len < 0)
        return 0;
    if ((size_t)len < sizeof(small))
        return write((const uint8_t *)small, (size_t)len);
    char *big = (char *)malloc((size_t)len + 1);
    if (!big)
        return 0;
    vsnprintf(big, (size_t)len + 1, fmt, ap);
    size_t n = write((const uint8_t *)big, (size_t)len);
    free(big);
    return n;
}

size_t Print::printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = vprintf(fmt, ap);
    va_end(ap);
    return n;
}

size_t Print::printf_P(const char *fmt, ...)
{
    size_t len = strlen_P(fmt);
    char *f = (char *)malloc(len + 1);
    if (!f)
        return 0;
    strcpy_P(f, fmt);
    va_list ap;
    va_start(ap, fmt);
    size_t n = vprintf(f, ap);
    va_end(ap);
    free(f);
    return n;
}
