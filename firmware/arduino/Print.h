/* Arduino's Print with the ESP8266 core's overloads: every integer type in
 * any base 2..36 (negative numbers signed in base 10 only), double with a
 * number of digits as printf's "%.Nf" does (nan, inf, no "ovf"), F()
 * strings read from flash, Printable, String, printf and printf_P. */
#ifndef PRINT_H
#define PRINT_H

#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>
#include <string.h>

#define DEC 10
#define HEX 16
#define OCT 8
#define BIN 2

class IPAddress;
class String;
class Printable;
class __FlashStringHelper;

class Print {
public:
    virtual ~Print() {}
    virtual size_t write(uint8_t c) = 0;
    virtual size_t write(const uint8_t *buf, size_t len);
    size_t write(const char *s) { return s ? write((const uint8_t *)s, strlen(s)) : 0; }
    size_t write(const char *buf, size_t len) { return write((const uint8_t *)buf, len); }
    virtual int availableForWrite() { return 0; }
    virtual void flush() {}

    int getWriteError() { return write_error; }
    void clearWriteError() { write_error = 0; }

    size_t print(const __FlashStringHelper *s);
    size_t print(const String &s);
    size_t print(const char s[]) { return write(s); }
    size_t print(char c) { return write((uint8_t)c); }
    size_t print(unsigned char n, int base = DEC) { return print((unsigned long long)n, base); }
    /* Outside base 10 a negative number prints as its own width's bit
     * pattern: print(-1L, HEX) is FFFFFFFF. */
    size_t print(int n, int base = DEC)
    {
        return base == 10 ? print((long long)n, base) : print((unsigned long long)(unsigned int)n, base);
    }
    size_t print(unsigned int n, int base = DEC) { return print((unsigned long long)n, base); }
    size_t print(long n, int base = DEC)
    {
        return base == 10 ? print((long long)n, base) : print((unsigned long long)(unsigned long)n, base);
    }
    size_t print(unsigned long n, int base = DEC) { return print((unsigned long long)n, base); }
    size_t print(long long n, int base = DEC);
    size_t print(unsigned long long n, int base = DEC);
    size_t print(double n, int digits = 2);
    size_t print(const Printable &p);

    size_t println() { return write("\r\n"); }
    size_t println(const __FlashStringHelper *s) { return print(s) + println(); }
    size_t println(const String &s) { return print(s) + println(); }
    size_t println(const char s[]) { return print(s) + println(); }
    size_t println(char c) { return print(c) + println(); }
    size_t println(unsigned char n, int base = DEC) { return print(n, base) + println(); }
    size_t println(int n, int base = DEC) { return print(n, base) + println(); }
    size_t println(unsigned int n, int base = DEC) { return print(n, base) + println(); }
    size_t println(long n, int base = DEC) { return print(n, base) + println(); }
    size_t println(unsigned long n, int base = DEC) { return print(n, base) + println(); }
    size_t println(long long n, int base = DEC) { return print(n, base) + println(); }
    size_t println(unsigned long long n, int base = DEC) { return print(n, base) + println(); }
    size_t println(double n, int digits = 2) { return print(n, digits) + println(); }
    size_t println(const Printable &p) { return print(p) + println(); }

    size_t printf(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    size_t printf_P(const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    size_t vprintf(const char *fmt, va_list ap);

protected:
    void setWriteError(int err = 1) { write_error = err; }

private:
    int write_error = 0;
};

#endif
