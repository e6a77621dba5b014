/* Printable: a value that knows how to print itself (Print::print calls
 * printTo), as in the Arduino core. */
#ifndef PRINTABLE_H
#define PRINTABLE_H

#include <stddef.h>

class Print;

class Printable {
public:
    virtual ~Printable() {}
    virtual size_t printTo(Print &p) const = 0;
};

#endif
