/* See stdlib_noniso.h. Negative numbers keep their sign in base 10 only;
 * in other bases they print as the unsigned bit pattern (as the core). */
#include <stdio.h>
#include "stdlib_noniso.h"

char *ulltoa(unsigned long long v, char *out, int base)
{
    char tmp[66];
    int n = 0;
    if (base < 2 || base > 36) {
        *out = 0;
        return out;
    }
    do {
        unsigned d = (unsigned)(v % (unsigned)base);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= (unsigned)base;
    } while (v);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = 0;
    return out;
}

char *lltoa(long long v, char *out, int base)
{
    if (v < 0 && base == 10) {
        out[0] = '-';
        ulltoa(0ull - (unsigned long long)v, out + 1, base);
        return out;
    }
    return ulltoa((unsigned long long)v, out, base);
}

char *itoa(int v, char *out, int base)
{
    if (base != 10)
        return ulltoa((unsigned)v, out, base);
    return lltoa(v, out, base);
}

char *ltoa(long v, char *out, int base)
{
    if (base != 10)
        return ulltoa((unsigned long)v, out, base);
    return lltoa(v, out, base);
}

char *utoa(unsigned v, char *out, int base)
{
    return ulltoa(v, out, base);
}

char *ultoa(unsigned long v, char *out, int base)
{
    return ulltoa(v, out, base);
}

char *dtostrf(double number, signed char width, unsigned char prec, char *s)
{
    sprintf(s, "%*.*f", (int)width, (int)prec, number);
    return s;
}
