#include <stdio.h>
#include <string.h>
#include "Print.h"
#include "IPAddress.h"

size_t Print::write(const uint8_t *buf, size_t len)
{
    size_t n = 0;
    while (len--)
        n += write(*buf++);
    return n;
}

size_t Print::write(const char *s)
{
    return s ? write((const uint8_t *)s, strlen(s)) : 0;
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
    if (n < 0 && base == 10)
        return print('-') + print((unsigned long long)(-(n + 1)) + 1, base);
    return print((unsigned long long)n, base);
}

size_t Print::print(long n, int base)
{
    /* Like Arduino: negative numbers in other bases print as unsigned. */
    if (base != 10)
        return print((unsigned long long)(unsigned long)n, base);
    return print((long long)n, base);
}

size_t Print::print(unsigned long n, int base)
{
    return print((unsigned long long)n, base);
}

size_t Print::print(const IPAddress &ip)
{
    return ip.printTo(*this);
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
    char *big = new char[(size_t)len + 1];
    if (!big)
        return 0;
    vsnprintf(big, (size_t)len + 1, fmt, ap);
    size_t n = write((const uint8_t *)big, (size_t)len);
    delete[] big;
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
