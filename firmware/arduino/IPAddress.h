/* IPv4 address value type, as in the Arduino core. */
#ifndef IPADDRESS_H
#define IPADDRESS_H

#include <stdint.h>
#include <stddef.h>
#include "Printable.h"

class Print;
class String;

class IPAddress : public Printable {
public:
    IPAddress() : addr(0) {}
    IPAddress(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
        : addr((uint32_t)a | ((uint32_t)b << 8) | ((uint32_t)c << 16) | ((uint32_t)d << 24)) {}
    /* Network byte order as stored by lwIP (first octet in the low byte). */
    IPAddress(uint32_t raw) : addr(raw) {}
    operator uint32_t() const { return addr; }
    uint32_t v4() const { return addr; }
    uint8_t operator[](int i) const { return (uint8_t)(addr >> (8 * (i & 3))); }
    bool operator==(const IPAddress &o) const { return addr == o.addr; }
    bool operator!=(const IPAddress &o) const { return addr != o.addr; }
    bool isSet() const { return addr != 0; }
    bool fromString(const char *s);
    bool fromString(const String &s);
    String toString() const;
    uint8_t *raw_address() { return reinterpret_cast<uint8_t *>(&addr); }
    /* Dotted quad into buf (at least 16 bytes); returns buf. */
    const char *toChars(char *buf, size_t len) const;
    size_t printTo(Print &p) const override;

private:
    uint32_t addr;
};

#endif
