/* PROGMEM and friends, with the ESP8266 core's semantics: PROGMEM data and
 * F()/PSTR() strings live in flash (so they cost no DRAM), and the
 * pgm_read_* and *_P functions read them with aligned 32-bit loads, the
 * only loads the ESP8266's flash cache allows (the emulated board's flash
 * window would take any load; a sketch that reads PROGMEM directly works
 * here but faults on a chip). */
#ifndef PGMSPACE_H
#define PGMSPACE_H

#include <stdint.h>
#include <stddef.h>
#include <stdarg.h>
#include <string.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MQTT_HIL_STR2(x) #x
#define MQTT_HIL_STR(x) MQTT_HIL_STR2(x)
/* One section per object (flash-mapped, garbage-collected when unused). */
#define PROGMEM __attribute__((section(".irom.text.pgm." MQTT_HIL_STR(__LINE__) "." MQTT_HIL_STR(__COUNTER__)), aligned(4)))
#define PGM_P const char *
#define PGM_VOID_P const void *
#define PSTR(s) (__extension__({ static const char __pstr__[] PROGMEM = (s); &__pstr__[0]; }))
#define FPSTR(p) ((const __FlashStringHelper *)(p))
#define ICACHE_RODATA_ATTR PROGMEM
#define ICACHE_FLASH_ATTR
#define ICACHE_RAM_ATTR __attribute__((section(".iram.text")))
#define IRAM_ATTR_SKETCH ICACHE_RAM_ATTR

static inline uint8_t pgm_read_byte_inlined(const void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    uint32_t w = *(const volatile uint32_t *)(a & ~(uintptr_t)3);
    return (uint8_t)(w >> ((a & 3u) * 8u));
}

static inline uint16_t pgm_read_word_inlined(const void *addr)
{
    const uint8_t *p = (const uint8_t *)addr;
    return (uint16_t)(pgm_read_byte_inlined(p) | (pgm_read_byte_inlined(p + 1) << 8));
}

static inline uint32_t pgm_read_dword_inlined(const void *addr)
{
    const uint8_t *p = (const uint8_t *)addr;
    return (uint32_t)pgm_read_word_inlined(p) | ((uint32_t)pgm_read_word_inlined(p + 2) << 16);
}

static inline float pgm_read_float_inlined(const void *addr)
{
    uint32_t w = pgm_read_dword_inlined(addr);
    float f;
    memcpy(&f, &w, sizeof f);
    return f;
}

#define pgm_read_byte(addr) pgm_read_byte_inlined((const void *)(addr))
#define pgm_read_word(addr) pgm_read_word_inlined((const void *)(addr))
#define pgm_read_dword(addr) pgm_read_dword_inlined((const void *)(addr))
#define pgm_read_float(addr) pgm_read_float_inlined((const void *)(addr))
#define pgm_read_ptr(addr) ((void *)pgm_read_dword_inlined((const void *)(addr)))
#define pgm_read_byte_near(addr) pgm_read_byte(addr)
#define pgm_read_word_near(addr) pgm_read_word(addr)
#define pgm_read_dword_near(addr) pgm_read_dword(addr)
#define pgm_read_float_near(addr) pgm_read_float(addr)
#define pgm_read_ptr_near(addr) pgm_read_ptr(addr)
#define pgm_read_byte_far(addr) pgm_read_byte(addr)
#define pgm_read_word_far(addr) pgm_read_word(addr)
#define pgm_read_dword_far(addr) pgm_read_dword(addr)

void *memcpy_P(void *dst, PGM_VOID_P src, size_t n);
int memcmp_P(const void *a, PGM_VOID_P b, size_t n);
void *memchr_P(PGM_VOID_P s, int c, size_t n);
void *memccpy_P(void *dst, PGM_VOID_P src, int c, size_t n);
size_t strlen_P(PGM_P s);
size_t strnlen_P(PGM_P s, size_t max);
char *strcpy_P(char *dst, PGM_P src);
char *strncpy_P(char *dst, PGM_P src, size_t n);
char *strcat_P(char *dst, PGM_P src);
char *strncat_P(char *dst, PGM_P src, size_t n);
int strcmp_P(const char *a, PGM_P b);
int strncmp_P(const char *a, PGM_P b, size_t n);
int strcasecmp_P(const char *a, PGM_P b);
int strncasecmp_P(const char *a, PGM_P b, size_t n);
char *strstr_P(const char *hay, PGM_P needle);
char *strchr_P(PGM_P s, int c);
char *strrchr_P(PGM_P s, int c);
int vsnprintf_P(char *buf, size_t n, PGM_P fmt, va_list ap);
int snprintf_P(char *buf, size_t n, PGM_P fmt, ...) __attribute__((format(printf, 3, 4)));
int sprintf_P(char *buf, PGM_P fmt, ...) __attribute__((format(printf, 2, 3)));
int printf_P(PGM_P fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif
#endif
