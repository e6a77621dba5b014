/* Reset entry and exception vectors for the lx106 (call0 ABI, no register
 * windows). QEMU's -kernel loader jumps to _start through a trampoline it
 * places at the core's reset vector; a real ESP8266 boot ROM jumps to the
 * image entry likewise, so _start assumes nothing about CPU state. */

    .section .vectors, "ax"
    .align 256
    .global _vectors
_vectors:
    /* Offsets are the lx106 configuration's XCHAL_*_VECOFS. */
    .org 0x10                       /* debug / level-2 */
    wsr     a0, excsave2
    j       _debug_handler
    .org 0x20                       /* NMI: nothing raises it here */
    rfi     3
    .org 0x30                       /* kernel exception (PS.UM=0) */
    wsr     a0, excsave1
    j       _vec_fatal
    .org 0x50                       /* user exception (PS.UM=1) */
    wsr     a0, excsave1
    rsr     a0, exccause
    beqi    a0, 4, _vec_level1      /* EXCCAUSE 4: level-1 interrupt */
    j       _vec_fatal
    .org 0x70                       /* double exception */
    wsr     a0, excsave1
    j       _vec_fatal

    .org 0x80
    /* The only interrupt enabled is the CCOMPARE0 timer: the watchdog's
     * tick and board_idle()'s wake-up (watchdog.c). */
_vec_level1:
    j       _level1_handler

    .section .iram.text, "ax"
    .align 4
.Lstack_top:    .word _stack_top
.Lvecbase:      .word _vectors
.Lboard_start:  .word board_start
.Lpanic:        .word board_panic
.Ltick:         .word board_tick
.Lhwdt:         .word board_hw_wdt_check

    /* Level-1 interrupt: the interrupted code's registers are all saved
     * (call0 leaves a2-a11 to the caller, and this caller did not expect
     * a call), then board_tick(frame) runs on the interrupted stack. */
    .align 4
_level1_handler:
    addi    a1, a1, -80
    s32i    a2, a1, 8
    s32i    a3, a1, 12
    s32i    a4, a1, 16
    s32i    a5, a1, 20
    s32i    a6, a1, 24
    s32i    a7, a1, 28
    s32i    a8, a1, 32
    s32i    a9, a1, 36
    s32i    a10, a1, 40
    s32i    a11, a1, 44
    s32i    a12, a1, 48
    s32i    a13, a1, 52
    s32i    a14, a1, 56
    s32i    a15, a1, 60
    rsr     a0, excsave1
    s32i    a0, a1, 0
    rsr     a0, sar
    s32i    a0, a1, 4
    rsr     a0, epc1
    s32i    a0, a1, 64
    mov     a2, a1
    l32r    a0, .Ltick
    callx0  a0
    l32i    a0, a1, 64
    wsr     a0, epc1
    l32i    a0, a1, 4
    wsr     a0, sar
    l32i    a2, a1, 8
    l32i    a3, a1, 12
    l32i    a4, a1, 16
    l32i    a5, a1, 20
    l32i    a6, a1, 24
    l32i    a7, a1, 28
    l32i    a8, a1, 32
    l32i    a9, a1, 36
    l32i    a10, a1, 40
    l32i    a11, a1, 44
    l32i    a12, a1, 48
    l32i    a13, a1, 52
    l32i    a14, a1, 56
    l32i    a15, a1, 60
    l32i    a0, a1, 0
    addi    a1, a1, 80
    rsync
    rfe

    /* Debug exception (level 2, above every maskable interrupt of the
     * lx106): an ICOUNT overflow is the hardware watchdog's look at the
     * clock while the sketch keeps interrupts masked (watchdog.c); any
     * other cause (BREAK, IBREAK) is fatal as before. */
    .align 4
_debug_handler:
    rsr     a0, debugcause
    bbsi    a0, 0, 1f                  /* DEBUGCAUSE.IC */
    rsr     a0, excsave2
    j       _vec_debug
1:  addi    a1, a1, -80
    s32i    a2, a1, 8
    s32i    a3, a1, 12
    s32i    a4, a1, 16
    s32i    a5, a1, 20
    s32i    a6, a1, 24
    s32i    a7, a1, 28
    s32i    a8, a1, 32
    s32i    a9, a1, 36
    s32i    a10, a1, 40
    s32i    a11, a1, 44
    s32i    a12, a1, 48
    s32i    a13, a1, 52
    s32i    a14, a1, 56
    s32i    a15, a1, 60
    rsr     a0, excsave2
    s32i    a0, a1, 0
    rsr     a0, sar
    s32i    a0, a1, 4
    rsr     a0, epc2
    s32i    a0, a1, 64
    mov     a2, a1
    l32r    a0, .Lhwdt
    callx0  a0                         /* returns the next ICOUNT */
    wsr     a2, icount
    l32i    a0, a1, 4
    wsr     a0, sar
    l32i    a2, a1, 8
    l32i    a3, a1, 12
    l32i    a4, a1, 16
    l32i    a5, a1, 20
    l32i    a6, a1, 24
    l32i    a7, a1, 28
    l32i    a8, a1, 32
    l32i    a9, a1, 36
    l32i    a10, a1, 40
    l32i    a11, a1, 44
    l32i    a12, a1, 48
    l32i    a13, a1, 52
    l32i    a14, a1, 56
    l32i    a15, a1, 60
    l32i    a0, a1, 0
    addi    a1, a1, 80
    isync
    rfi     2

    .align 4
    .global _start
_start:
    /* INTLEVEL=15 keeps every interrupt masked (the firmware polls), UM=1
     * routes exceptions to the user vector, EXCM=0 so they are taken. */
    movi    a0, 0x2f
    wsr     a0, ps
    rsync
    l32r    a0, .Lvecbase
    wsr     a0, vecbase
    movi    a0, 0
    wsr     a0, intenable
    wsr     a0, icountlevel             /* no hardware-watchdog look yet */
    l32r    a1, .Lstack_top
    l32r    a2, .Lboard_start
    callx0  a2
1:  j       1b

_vec_debug:
    movi    a2, 0xff
    j       _vec_report
_vec_fatal:
    rsr     a2, exccause
_vec_report:
    /* The faulting context is not resumable, so reuse the top of the stack
     * for the report and let the C side reset the board. */
    rsr     a3, epc1
    rsr     a4, excvaddr
    rsr     a5, excsave1
    l32r    a1, .Lstack_top
    movi    a0, 0x2f
    wsr     a0, ps
    rsync
    l32r    a0, .Lpanic
    callx0  a0
2:  j       2b
