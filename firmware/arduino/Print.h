/* Arduino's Print: formatting on top of a byte sink. */
#ifndef PRINT_H
#define PRINT_H

#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>

#define DEC 10
#define HEX 16
#define OCT 8
#define BIN 2

class IPAddress;

class Print {
public:
    virtual ~Print() {}
    virtual size_t write(uint8_t c) = 0;
    virtual size_t write(const uint8_t *buf, size_t len);
    size_t write(const char *s);
    size_t write(const char *buf, size_t len) { return write((const uint8_t *)buf, len); }
    virtual void flush() {}

    size_t print(const char *s) { return write(s); }
    size_t print(char c) { return write((uint8_t)c); }
    size_t print(int n, int base = DEC) { return print((long)n, base); }
    size_t print(unsigned int n, int base = DEC) { return print((unsigned long)n, base); }
    size_t print(long n, int base = DEC);
    size_t print(unsigned long n, int base = DEC);
    size_t print(long long n, int base = DEC);
    size_t print(unsigned long long n, int base = DEC);
    size_t print(unsigned char n, int base = DEC) { return print((unsigned long)n, base); }
    size_t print(const IPAddress &ip);

    size_t println() { return write("\r\n"); }
    template <typename T> size_t println(const T &v) { size_t n = print(v); return n + println(); }
    template <typename T> size_t println(const T &v, int base) { size_t n = print(v, base); return n + println(); }

    size_t printf(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    size_t vprintf(const char *fmt, va_list ap);
};

#endif
