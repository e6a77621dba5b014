/* lwIP compiler/platform glue for the lx106 with picolibc. */
#ifndef LWIP_ARCH_CC_H
#define LWIP_ARCH_CC_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#define LWIP_TIMEVAL_PRIVATE 0
#ifndef BYTE_ORDER
#define BYTE_ORDER LITTLE_ENDIAN
#endif

void lwip_port_assert(const char *msg, int line, const char *file);
unsigned long lwip_port_rand(void);

#define LWIP_PLATFORM_DIAG(x) do { printf x; } while (0)
#define LWIP_PLATFORM_ASSERT(x) lwip_port_assert((x), __LINE__, __FILE__)
#define LWIP_RAND() ((u32_t)lwip_port_rand())

#endif
