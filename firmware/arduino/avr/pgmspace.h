/* avr/pgmspace.h: where AVR sketches look for PROGMEM. */
#include "../pgmspace.h"
