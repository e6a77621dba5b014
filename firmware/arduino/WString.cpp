#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include "WString.h"
#include "pgmspace.h"
#include "stdlib_noniso.h"

String::String(const char *s)
{
    assign(s ? s : "", s ? strlen(s) : 0);
}

String::String(const char *s, size_t n)
{
    assign(s, s ? n : 0);
}

String::String(const String &s)
{
    if (s.valid_)
        assign(s.c_str(), s.len_);
    else
        invalidate();
}

String::String(String &&s) noexcept : buf_(s.buf_), len_(s.len_), cap_(s.cap_), valid_(s.valid_)
{
    s.buf_ = nullptr;
    s.len_ = s.cap_ = 0;
    s.valid_ = true;
}

String::String(const __FlashStringHelper *s)
{
    *this = s;
}

String::String(char c)
{
    assign(&c, 1);
}

#define NUMBER_CTOR(T, conv)                         \
    String::String(T n, unsigned char base)          \
    {                                                \
        char b[68];                                  \
        conv;                                        \
        assign(b, strlen(b));                        \
    }
NUMBER_CTOR(unsigned char, ulltoa(n, b, base))
NUMBER_CTOR(int, itoa(n, b, base))
NUMBER_CTOR(unsigned int, utoa(n, b, base))
NUMBER_CTOR(long, ltoa(n, b, base))
NUMBER_CTOR(unsigned long, ultoa(n, b, base))
NUMBER_CTOR(long long, lltoa(n, b, base))
NUMBER_CTOR(unsigned long long, ulltoa(n, b, base))

String::String(float n, unsigned char places) : String((double)n, places) {}

String::String(double n, unsigned char places)
{
    char b[64];
    /* As the core: dtostrf with a width of places + 2. */
    snprintf(b, sizeof b, "%*.*f", places + 2, places, n);
    assign(b, strlen(b));
}

String::~String()
{
    free(buf_);
}

void String::invalidate()
{
    free(buf_);
    buf_ = nullptr;
    len_ = cap_ = 0;
    valid_ = false;
}

bool String::reserve(size_t size)
{
    if (buf_ && cap_ >= size)
        return true;
    char *n = (char *)realloc(buf_, size + 1);
    if (!n) {
        invalidate();
        return false;
    }
    if (!buf_)
        n[0] = 0;
    buf_ = n;
    cap_ = size;
    valid_ = true;
    return true;
}

bool String::assign(const char *s, size_t n)
{
    if (!reserve(n))
        return false;
    memmove(buf_, s, n);
    buf_[n] = 0;
    len_ = n;
    return true;
}

void String::clear()
{
    len_ = 0;
    if (buf_)
        buf_[0] = 0;
}

String &String::operator=(const String &s)
{
    if (this == &s)
        return *this;
    if (s.valid_)
        assign(s.c_str(), s.len_);
    else
        invalidate();
    return *this;
}

String &String::operator=(String &&s) noexcept
{
    if (this != &s) {
        free(buf_);
        buf_ = s.buf_;
        len_ = s.len_;
        cap_ = s.cap_;
        valid_ = s.valid_;
        s.buf_ = nullptr;
        s.len_ = s.cap_ = 0;
        s.valid_ = true;
    }
    return *this;
}

String &String::operator=(const char *s)
{
    if (s)
        assign(s, strlen(s));
    else
        invalidate();
    return *this;
}

String &String::operator=(const __FlashStringHelper *s)
{
    PGM_P p = reinterpret_cast<PGM_P>(s);
    if (!p) {
        invalidate();
        return *this;
    }
    size_t n = strlen_P(p);
    if (reserve(n)) {
        memcpy_P(buf_, p, n + 1);
        len_ = n;
    }
    return *this;
}

String &String::operator=(char c)
{
    assign(&c, 1);
    return *this;
}

bool String::concat(const char *s, size_t n)
{
    if (!s)
        return false;
    if (n == 0)
        return true;
    /* s may point into this string. */
    size_t off = buf_ && s >= buf_ && s < buf_ + len_ ? (size_t)(s - buf_) : (size_t)-1;
    if (!reserve(len_ + n))
        return false;
    memmove(buf_ + len_, off != (size_t)-1 ? buf_ + off : s, n);
    len_ += n;
    buf_[len_] = 0;
    return true;
}

bool String::concat(const __FlashStringHelper *s)
{
    PGM_P p = reinterpret_cast<PGM_P>(s);
    if (!p)
        return false;
    size_t n = strlen_P(p);
    if (!reserve(len_ + n))
        return false;
    memcpy_P(buf_ + len_, p, n + 1);
    len_ += n;
    return true;
}

bool String::concat(unsigned char n) { return concat(String(n)); }
bool String::concat(int n) { return concat(String(n)); }
bool String::concat(unsigned int n) { return concat(String(n)); }
bool String::concat(long n) { return concat(String(n)); }
bool String::concat(unsigned long n) { return concat(String(n)); }
bool String::concat(long long n) { return concat(String(n)); }
bool String::concat(unsigned long long n) { return concat(String(n)); }
bool String::concat(float n) { return concat(String(n)); }
bool String::concat(double n) { return concat(String(n)); }

int String::compareTo(const String &s) const
{
    return strcmp(c_str(), s.c_str());
}

bool String::equalsIgnoreCase(const String &s) const
{
    if (len_ != s.len_)
        return false;
    for (size_t i = 0; i < len_; i++)
        if (tolower((unsigned char)buf_[i]) != tolower((unsigned char)s.buf_[i]))
            return false;
    return true;
}

bool String::equalsConstantTime(const String &s) const
{
    if (len_ != s.len_)
        return false;
    unsigned diff = 0;
    for (size_t i = 0; i < len_; i++)
        diff |= (unsigned char)(buf_[i] ^ s.buf_[i]);
    return diff == 0;
}

bool String::startsWith(const String &p, size_t offset) const
{
    if (offset > len_ || p.len_ > len_ - offset)
        return false;
    return strncmp(c_str() + offset, p.c_str(), p.len_) == 0;
}

bool String::endsWith(const String &s) const
{
    if (s.len_ > len_)
        return false;
    return strcmp(c_str() + len_ - s.len_, s.c_str()) == 0;
}

char &String::operator[](size_t i)
{
    static char dummy;
    if (i >= len_) {
        dummy = 0;
        return dummy;
    }
    return buf_[i];
}

void String::getBytes(unsigned char *out, size_t size, size_t index) const
{
    if (!size || !out)
        return;
    if (index >= len_) {
        out[0] = 0;
        return;
    }
    size_t n = len_ - index;
    if (n > size - 1)
        n = size - 1;
    memcpy(out, buf_ + index, n);
    out[n] = 0;
}

int String::indexOf(char c, size_t from) const
{
    if (from >= len_)
        return -1;
    const char *p = strchr(buf_ + from, c);
    return p ? (int)(p - buf_) : -1;
}

int String::indexOf(const char *s, size_t from) const
{
    if (from >= len_ || !s)
        return -1;
    const char *p = strstr(buf_ + from, s);
    return p ? (int)(p - buf_) : -1;
}

int String::lastIndexOf(char c, size_t from) const
{
    if (from >= len_)
        return -1;
    for (size_t i = from + 1; i-- > 0;)
        if (buf_[i] == c)
            return (int)i;
    return -1;
}

int String::lastIndexOf(const String &s, size_t from) const
{
    if (s.len_ == 0 || len_ == 0 || s.len_ > len_)
        return -1;
    if (from >= len_)
        from = len_ - 1;
    for (size_t i = from + 1; i-- > 0;)
        if (i + s.len_ <= len_ && strncmp(buf_ + i, s.buf_, s.len_) == 0)
            return (int)i;
    return -1;
}

String String::substring(size_t from, size_t to) const
{
    if (from > to) {
        size_t t = from;
        from = to;
        to = t;
    }
    if (from >= len_)
        return String("");
    if (to > len_)
        to = len_;
    return String(buf_ + from, to - from);
}

void String::replace(char find, char with)
{
    for (size_t i = 0; i < len_; i++)
        if (buf_[i] == find)
            buf_[i] = with;
}

void String::replace(const String &find, const String &with)
{
    if (len_ == 0 || find.len_ == 0)
        return;
    String out;
    size_t i = 0;
    while (i < len_) {
        const char *hit = strstr(buf_ + i, find.c_str());
        if (!hit) {
            out.concat(buf_ + i, len_ - i);
            break;
        }
        out.concat(buf_ + i, (size_t)(hit - (buf_ + i)));
        out.concat(with);
        i = (size_t)(hit - buf_) + find.len_;
    }
    *this = std::move(out);
}

void String::remove(size_t index, size_t count)
{
    if (index >= len_)
        return;
    if (count > len_ - index)
        count = len_ - index;
    memmove(buf_ + index, buf_ + index + count, len_ - index - count + 1);
    len_ -= count;
}

void String::toLowerCase()
{
    for (size_t i = 0; i < len_; i++)
        buf_[i] = (char)tolower((unsigned char)buf_[i]);
}

void String::toUpperCase()
{
    for (size_t i = 0; i < len_; i++)
        buf_[i] = (char)toupper((unsigned char)buf_[i]);
}

void String::trim()
{
    if (!len_)
        return;
    size_t b = 0, e = len_;
    while (b < e && isspace((unsigned char)buf_[b]))
        b++;
    while (e > b && isspace((unsigned char)buf_[e - 1]))
        e--;
    memmove(buf_, buf_ + b, e - b);
    len_ = e - b;
    buf_[len_] = 0;
}

long String::toInt() const
{
    return buf_ ? atol(buf_) : 0;
}

float String::toFloat() const
{
    return (float)toDouble();
}

double String::toDouble() const
{
    return buf_ ? atof(buf_) : 0;
}

String operator+(const char *a, const String &b)
{
    String r(a);
    r.concat(b);
    return r;
}

String operator+(char a, const String &b)
{
    String r(a);
    r.concat(b);
    return r;
}

String operator+(const __FlashStringHelper *a, const String &b)
{
    String r(a);
    r.concat(b);
    return r;
}
