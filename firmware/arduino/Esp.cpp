#include "Esp.h"
#include "board.h"

EspClass ESP;

void EspClass::restart()
{
    board_reset();
}

uint32_t EspClass::getFreeHeap()
{
    return (uint32_t)board_free_heap();
}

uint32_t EspClass::getCpuFreqMHz()
{
    return board_cpu_hz() / 1000000u;
}

uint32_t EspClass::getCycleCount()
{
    uint32_t c;
    __asm__ volatile("rsr %0, ccount" : "=a"(c));
    return c;
}

uint32_t EspClass::getFlashChipSize()
{
    return flash_present() ? BOARD_FLASH_SIZE : 0;
}
