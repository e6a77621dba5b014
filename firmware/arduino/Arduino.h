/* The subset of the ESP8266 Arduino core the mqtt-hil firmware uses, so
 * one sketch builds for a real board (arduino-cli) and for this emulator. */
#ifndef ARDUINO_H
#define ARDUINO_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HIGH 1
#define LOW 0
#define INPUT 0x00
#define OUTPUT 0x01
#define INPUT_PULLUP 0x02
#define LED_BUILTIN 2

#define PROGMEM
#define PSTR(s) (s)
#define F(s) (s)

typedef uint8_t byte;
typedef bool boolean;

unsigned long millis(void);
unsigned long micros(void);
/* Both keep the UART and the network serviced while they wait, as the
 * ESP8266 core's delay()/yield() keep its SDK running. */
void delay(unsigned long ms);
void yield(void);
void delayMicroseconds(unsigned int us);

/* No GPIO on the emulated board: accepted and ignored. */
void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t val);
int digitalRead(uint8_t pin);

/* picolibc already declares C's random(void); Arduino's overloads are C++. */
long arduino_random(long max);
void randomSeed(unsigned long seed);

void setup(void);
void loop(void);

#ifdef __cplusplus
}

inline long random(long max) { return arduino_random(max); }
inline long random(long min, long max) { return max <= min ? min : min + arduino_random(max - min); }
template <typename T> inline T constrain(T x, T lo, T hi) { return x < lo ? lo : (x > hi ? hi : x); }

#include "HardwareSerial.h"
#include "IPAddress.h"
#include "Esp.h"
#endif

#endif
