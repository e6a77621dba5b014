/* The ESP8266 Arduino core's API as sketches and libraries see it through
 * Arduino.h, for the emulated board; see firmware/README.md ("Arduino
 * layer") for what differs from a chip. */
#ifndef ARDUINO_H
#define ARDUINO_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <math.h>
#include <ctype.h>
#include "pgmspace.h"
#include "stdlib_noniso.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HIGH 0x1
#define LOW 0x0
#define INPUT 0x00
#define INPUT_PULLUP 0x02
#define INPUT_PULLDOWN_16 0x04
#define OUTPUT 0x01
#define OUTPUT_OPEN_DRAIN 0x03
#define WAKEUP_PULLUP 0x05
#define WAKEUP_PULLDOWN 0x07
#define CHANGE 0x03
#define FALLING 0x02
#define RISING 0x01
#define LSBFIRST 0
#define MSBFIRST 1

/* The generic ESP8266 module with the NodeMCU's pin names. */
#ifndef LED_BUILTIN
#define LED_BUILTIN 2
#endif
#define BUILTIN_LED LED_BUILTIN
#define D0 16
#define D1 5
#define D2 4
#define D3 0
#define D4 2
#define D5 14
#define D6 12
#define D7 13
#define D8 15
#define D9 3
#define D10 1
#define A0 17
#define NUM_DIGITAL_PINS 17
#define digitalPinToInterrupt(p) (((p) < NUM_DIGITAL_PINS) ? (p) : -1)

#define PI 3.1415926535897932384626433832795
#define HALF_PI 1.5707963267948966192313216916398
#define TWO_PI 6.283185307179586476925286766559
#define DEG_TO_RAD 0.017453292519943295769236907684886
#define RAD_TO_DEG 57.295779513082320876798154814105
#define EULER 2.718281828459045235360287471352
#define radians(deg) ((deg) * DEG_TO_RAD)
#define degrees(rad) ((rad) * RAD_TO_DEG)
#define sq(x) ((x) * (x))
#define lowByte(w) ((uint8_t)((w) & 0xff))
#define highByte(w) ((uint8_t)((w) >> 8))
#define bitRead(value, bit) (((value) >> (bit)) & 0x01)
#define bitSet(value, bit) ((value) |= (1UL << (bit)))
#define bitClear(value, bit) ((value) &= ~(1UL << (bit)))
#define bitWrite(value, bit, bitvalue) ((bitvalue) ? bitSet(value, bit) : bitClear(value, bit))
#define bit(b) (1UL << (b))
#define _BV(b) (1UL << (b))
#define clockCyclesPerMicrosecond() (F_CPU / 1000000L)
#define clockCyclesToMicroseconds(a) ((a) / clockCyclesPerMicrosecond())
#define microsecondsToClockCycles(a) ((a) * clockCyclesPerMicrosecond())
#define _min(a, b) ({ __typeof__(a) _a = (a); __typeof__(b) _b = (b); _a < _b ? _a : _b; })
#define _max(a, b) ({ __typeof__(a) _a = (a); __typeof__(b) _b = (b); _a > _b ? _a : _b; })
#define constrain(amt, low, high) ((amt) < (low) ? (low) : ((amt) > (high) ? (high) : (amt)))

typedef uint8_t byte;
typedef bool boolean;
typedef unsigned int word;

unsigned long millis(void);
unsigned long micros(void);
uint64_t micros64(void);
/* Both keep the network, the UART and the watchdog serviced while they
 * wait, as the ESP8266 core's delay()/yield() hand control to its SDK. */
void delay(unsigned long ms);
void yield(void);
void optimistic_yield(uint32_t interval_us);
/* The Arduino layer's own: input the sketch consumed (keeps main() from
 * napping between rounds of loop() that still have data to read). */
void arduino_note_activity(void);
void delayMicroseconds(unsigned int us);

/* Interrupts: masked and unmasked for real (the watchdog tick is one). */
void interrupts(void);
void noInterrupts(void);
#define sei() interrupts()
#define cli() noInterrupts()

/* No GPIO on the emulated board: calls are accepted, changes are logged
 * on the UART as "[gpio] ..." lines. */
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t val);
int digitalRead(uint8_t pin);
int analogRead(uint8_t pin);
void analogWrite(uint8_t pin, int val);
void analogWriteRange(uint32_t range);
void analogWriteFreq(uint32_t freq);
void analogWriteResolution(int res);
void attachInterrupt(uint8_t pin, void (*handler)(void), int mode);
void detachInterrupt(uint8_t pin);
unsigned long pulseIn(uint8_t pin, uint8_t state, unsigned long timeout);
unsigned long pulseInLong(uint8_t pin, uint8_t state, unsigned long timeout);
void shiftOut(uint8_t data_pin, uint8_t clock_pin, uint8_t bit_order, uint8_t val);
uint8_t shiftIn(uint8_t data_pin, uint8_t clock_pin, uint8_t bit_order);
void tone(uint8_t pin, unsigned int frequency, unsigned long duration);
void noTone(uint8_t pin);

/* picolibc already declares C's random(void); Arduino's overloads are C++. */
long arduino_random(long max);
void randomSeed(unsigned long seed);
long map(long x, long in_min, long in_max, long out_min, long out_max);

void setup(void);
void loop(void);

#ifdef __cplusplus
}

#include <algorithm>
#include <cmath>
#include <functional>

using std::min;
using std::max;
using std::round;
using std::abs;

inline long random(long max) { return arduino_random(max); }
inline long random(long min, long max) { return max <= min ? min : min + arduino_random(max - min); }
inline unsigned int makeWord(uint16_t w) { return w; }
inline unsigned int makeWord(uint8_t h, uint8_t l) { return (unsigned)(h << 8) | l; }
#define word(...) makeWord(__VA_ARGS__)
unsigned long pulseIn(uint8_t pin, uint8_t state);
void tone(uint8_t pin, unsigned int frequency);
void attachInterruptArg(uint8_t pin, void (*handler)(void *), void *arg, int mode);

#include "WString.h"
#include "Printable.h"
#include "HardwareSerial.h"
#include "IPAddress.h"
#include "Esp.h"
#endif

#endif
