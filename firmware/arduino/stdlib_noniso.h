/* The ESP8266 core's non-standard conversions (stdlib_noniso.h):
 * itoa/ltoa/utoa/ultoa in any base 2..36, dtostrf as printf's "%W.Pf". */
#ifndef STDLIB_NONISO_H
#define STDLIB_NONISO_H

#ifdef __cplusplus
extern "C" {
#endif

char *itoa(int value, char *result, int base);
char *ltoa(long value, char *result, int base);
char *utoa(unsigned value, char *result, int base);
char *ultoa(unsigned long value, char *result, int base);
char *lltoa(long long value, char *result, int base);
char *ulltoa(unsigned long long value, char *result, int base);
char *dtostrf(double number, signed char width, unsigned char prec, char *s);

#ifdef __cplusplus
}
#endif
#endif
