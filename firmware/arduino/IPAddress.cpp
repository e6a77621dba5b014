#include <stdio.h>
#include "IPAddress.h"
#include "Print.h"

bool IPAddress::fromString(const char *s)
{
    uint32_t parts[4];
    int n = 0;
    uint32_t cur = 0;
    bool digit = false;
    for (;; s++) {
        if (*s >= '0' && *s <= '9') {
            cur = cur * 10 + (uint32_t)(*s - '0');
            if (cur > 255)
                return false;
            digit = true;
        } else if ((*s == '.' || *s == 0) && digit && n < 4) {
            parts[n++] = cur;
            cur = 0;
            digit = false;
            if (*s == 0)
                break;
        } else {
            return false;
        }
    }
    if (n != 4)
        return false;
    *this = IPAddress((uint8_t)parts[0], (uint8_t)parts[1], (uint8_t)parts[2], (uint8_t)parts[3]);
    return true;
}

const char *IPAddress::toChars(char *buf, size_t len) const
{
    snprintf(buf, len, "%u.%u.%u.%u", (*this)[0], (*this)[1], (*this)[2], (*this)[3]);
    return buf;
}

size_t IPAddress::printTo(Print &p) const
{
    char buf[16];
    return p.print(toChars(buf, sizeof(buf)));
}

#include "WString.h"

bool IPAddress::fromString(const String &s)
{
    return fromString(s.c_str());
}

String IPAddress::toString() const
{
    char buf[16];
    return String(toChars(buf, sizeof(buf)));
}
