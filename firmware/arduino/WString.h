/* Arduino's String (WString.h) with the ESP8266 core's semantics: a heap
 * string that never fails loudly (a failed allocation leaves it invalid:
 * `if (s)` is false, c_str() is ""), numbers converted like print() does
 * (floats as dtostrf with decimalPlaces, default 2), indexOf/substring with
 * Arduino's clamping, toInt() as atol, toFloat() as atof. */
#ifndef WSTRING_H
#define WSTRING_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <utility>

class __FlashStringHelper;
#define F(string_literal) (reinterpret_cast<const __FlashStringHelper *>(PSTR(string_literal)))

class String {
    typedef void (String::*BoolType)() const;
    void truthy() const {}

public:
    String(const char *s = "");
    String(const char *s, size_t len);
    String(const String &s);
    String(String &&s) noexcept;
    String(const __FlashStringHelper *s);
    explicit String(char c);
    explicit String(unsigned char n, unsigned char base = 10);
    explicit String(int n, unsigned char base = 10);
    explicit String(unsigned int n, unsigned char base = 10);
    explicit String(long n, unsigned char base = 10);
    explicit String(unsigned long n, unsigned char base = 10);
    explicit String(long long n, unsigned char base = 10);
    explicit String(unsigned long long n, unsigned char base = 10);
    explicit String(float n, unsigned char decimalPlaces = 2);
    explicit String(double n, unsigned char decimalPlaces = 2);
    ~String();

    String &operator=(const String &s);
    String &operator=(String &&s) noexcept;
    String &operator=(const char *s);
    String &operator=(const __FlashStringHelper *s);
    String &operator=(char c);

    bool reserve(size_t size);
    size_t length() const { return len_; }
    bool isEmpty() const { return len_ == 0; }
    void clear();
    const char *c_str() const { return buf_ ? buf_ : ""; }
    char *begin() { return buf_; }
    char *end() { return buf_ ? buf_ + len_ : nullptr; }
    const char *begin() const { return c_str(); }
    const char *end() const { return c_str() + len_; }
    operator BoolType() const { return valid_ ? &String::truthy : nullptr; }

    bool concat(const String &s) { return concat(s.c_str(), s.len_); }
    bool concat(const char *s) { return s ? concat(s, strlen(s)) : false; }
    bool concat(const char *s, size_t n);
    bool concat(const __FlashStringHelper *s);
    bool concat(char c) { return concat(&c, 1); }
    bool concat(unsigned char n);
    bool concat(int n);
    bool concat(unsigned int n);
    bool concat(long n);
    bool concat(unsigned long n);
    bool concat(long long n);
    bool concat(unsigned long long n);
    bool concat(float n);
    bool concat(double n);
    template <class T> String &operator+=(const T &v)
    {
        concat(v);
        return *this;
    }

    int compareTo(const String &s) const;
    bool equals(const String &s) const { return len_ == s.len_ && compareTo(s) == 0; }
    bool equals(const char *s) const { return strcmp(c_str(), s ? s : "") == 0; }
    bool equalsIgnoreCase(const String &s) const;
    bool equalsConstantTime(const String &s) const;
    bool operator==(const String &s) const { return equals(s); }
    bool operator==(const char *s) const { return equals(s); }
    bool operator!=(const String &s) const { return !equals(s); }
    bool operator!=(const char *s) const { return !equals(s); }
    bool operator<(const String &s) const { return compareTo(s) < 0; }
    bool operator>(const String &s) const { return compareTo(s) > 0; }
    bool operator<=(const String &s) const { return compareTo(s) <= 0; }
    bool operator>=(const String &s) const { return compareTo(s) >= 0; }
    bool startsWith(const String &prefix) const { return startsWith(prefix, 0); }
    bool startsWith(const String &prefix, size_t offset) const;
    bool endsWith(const String &suffix) const;

    char charAt(size_t i) const { return i < len_ ? buf_[i] : 0; }
    void setCharAt(size_t i, char c)
    {
        if (i < len_)
            buf_[i] = c;
    }
    char operator[](size_t i) const { return charAt(i); }
    char &operator[](size_t i);
    void getBytes(unsigned char *buf, size_t size, size_t index = 0) const;
    void toCharArray(char *buf, size_t size, size_t index = 0) const { getBytes((unsigned char *)buf, size, index); }

    int indexOf(char c, size_t from = 0) const;
    int indexOf(const char *s, size_t from = 0) const;
    int indexOf(const String &s, size_t from = 0) const { return indexOf(s.c_str(), from); }
    int lastIndexOf(char c) const { return lastIndexOf(c, len_ ? len_ - 1 : 0); }
    int lastIndexOf(char c, size_t from) const;
    int lastIndexOf(const String &s) const { return lastIndexOf(s, len_ ? len_ - 1 : 0); }
    int lastIndexOf(const String &s, size_t from) const;
    String substring(size_t from) const { return substring(from, len_); }
    String substring(size_t from, size_t to) const;

    void replace(char find, char with);
    void replace(const String &find, const String &with);
    void remove(size_t index) { remove(index, (size_t)-1); }
    void remove(size_t index, size_t count);
    void toLowerCase();
    void toUpperCase();
    void trim();

    long toInt() const;
    float toFloat() const;
    double toDouble() const;

private:
    bool assign(const char *s, size_t n);
    void invalidate();
    char *buf_ = nullptr;
    size_t len_ = 0;
    size_t cap_ = 0;
    bool valid_ = true;
};

template <class T> String operator+(const String &a, const T &b)
{
    String r(a);
    r.concat(b);
    return r;
}
template <class T> String operator+(String &&a, const T &b)
{
    String r(std::move(a));
    r.concat(b);
    return r;
}
String operator+(const char *a, const String &b);
String operator+(char a, const String &b);
String operator+(const __FlashStringHelper *a, const String &b);
inline bool operator==(const char *a, const String &b) { return b.equals(a); }
inline bool operator!=(const char *a, const String &b) { return !b.equals(a); }

#endif
