#include "HardwareSerial.h"
#include "board.h"

HardwareSerial Serial;

void HardwareSerial::begin(unsigned long baud)
{
    baud_ = baud;
    uart_init((uint32_t)baud);
}

int HardwareSerial::available()
{
    return uart_poll_rx();
}

int HardwareSerial::read()
{
    return uart_read();
}

int HardwareSerial::peek()
{
    return uart_peek();
}

size_t HardwareSerial::write(uint8_t c)
{
    uart_putc((char)c);
    return 1;
}

size_t HardwareSerial::write(const uint8_t *buf, size_t len)
{
    uart_write(buf, len);
    return len;
}
