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
    j       _vec_debug
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
    /* The only interrupt ever enabled is the CCOMPARE0 timer that wakes
     * board_idle() from WAITI; writing CCOMPARE0 acknowledges it. */
_vec_level1:
    rsr     a0, ccount
    wsr     a0, ccompare0
    rsr     a0, excsave1
    rfe

    .section .iram.text, "ax"
    .align 4
.Lstack_top:    .word _stack_top
.Lvecbase:      .word _vectors
.Lboard_start:  .word board_start
.Lpanic:        .word board_panic

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
