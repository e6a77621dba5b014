/* Entry of the emulated board's boot ROM. QEMU's -kernel loader jumps here
 * at power-on and after every system reset, as the ESP8266 starts its mask
 * ROM at 0x40000000. Interrupts stay masked (PS.INTLEVEL=15 from reset);
 * the stack is the top of DRAM, which the application does not use before
 * its own start-up moves the stack. */
    .section .text.entry, "ax"
    .align 4
.Lstack_top:    .word _stack_top
.Lmain:         .word bootrom_main

    .global _start
    .align 4
_start:
    l32r    a1, .Lstack_top
    l32r    a0, .Lmain
    callx0  a0
1:  waiti   15
    j       1b
