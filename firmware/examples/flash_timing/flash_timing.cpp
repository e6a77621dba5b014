/* Times the flash and EEPROM paths the agent's session persistence uses, so
 * a change to board/flash.c or arduino/EEPROM.cpp can be judged by numbers.
 * Prints one "timing:" line per measurement (microseconds of CCOUNT time,
 * which follows the host's clock under QEMU) and "timing: done".
 * It rewrites the EEPROM sectors: run it on a scratch flash file. */
#include <Arduino.h>
#include <EEPROM.h>
#include "board.h"

#define ROUNDS 20

struct Stats {
    uint32_t min = 0xffffffffu, max = 0, sum = 0, n = 0;
    void add(uint32_t us)
    {
        min = us < min ? us : min;
        max = us > max ? us : max;
        sum += us;
        n++;
    }
    void print(const char *what) const
    {
        Serial.printf("timing: %-28s n=%lu avg=%lu min=%lu max=%lu us\r\n", what,
                      (unsigned long)n, (unsigned long)(n ? sum / n : 0),
                      (unsigned long)min, (unsigned long)max);
    }
};

/* What mqtt_session_save does to the store: a record of `len` bytes at one
 * of two 2 KiB halves, alternately, with a changing sequence number. */
static void agent_like_record(uint32_t round, size_t len)
{
    uint32_t base = (round & 1) ? 2048 : 0;
    for (size_t i = 0; i < len; i++)
        EEPROM.write((int)(base + i), (uint8_t)(round * 7 + i));
}

void setup()
{
    Serial.begin(115200);
    if (!flash_present()) {
        Serial.printf("timing: no flash (run with -drive if=pflash)\r\n");
        return;
    }
    static uint8_t buf[4096];
    const uint32_t scratch = BOARD_FLASH_SIZE - 4 * BOARD_FLASH_SECTOR;
    Stats erase, prog4k, prog64, commit_small, commit_big, commit_same;

    for (int r = 0; r < 5; r++) {
        uint32_t t0 = (uint32_t)micros();
        flash_erase_sector(scratch);
        erase.add((uint32_t)micros() - t0);
        memset(buf, r, sizeof buf);
        t0 = (uint32_t)micros();
        flash_write(scratch, buf, sizeof buf);
        prog4k.add((uint32_t)micros() - t0);
        t0 = (uint32_t)micros();
        flash_write(scratch + 8192, buf, 64);
        prog64.add((uint32_t)micros() - t0);
    }
    /* Odd offset and length, across a 2 KiB write-buffer window, with
     * erased-looking (0xff) bytes among the data: read back must match. */
    flash_erase_sector(scratch);
    for (size_t i = 0; i < 301; i++)
        buf[i] = (i % 5 == 0) ? 0xff : (uint8_t)(i * 13 + 1);
    flash_write(scratch + 2048 - 151, buf, 301);
    uint8_t back[301];
    flash_read(scratch + 2048 - 151, back, sizeof back);
    uint8_t edge[2];
    flash_read(scratch + 2048 - 152, edge, 1);
    flash_read(scratch + 2048 + 150, edge + 1, 1);
    Serial.printf("timing: readback %s\r\n",
                  memcmp(back, buf, sizeof back) == 0 && edge[0] == 0xff && edge[1] == 0xff
                      ? "ok" : "MISMATCH");

    erase.print("flash_erase_sector 64K");
    prog4k.print("flash_write 4096 B");
    prog64.print("flash_write 64 B");

    EEPROM.begin(4096);
    for (uint32_t r = 0; r < ROUNDS; r++) {
        agent_like_record(r, 40);
        uint32_t t0 = (uint32_t)micros();
        bool ok = EEPROM.commit();
        commit_small.add((uint32_t)micros() - t0);
        if (!ok)
            Serial.printf("timing: commit failed\r\n");
    }
    commit_small.print("commit 40 B changed");
    for (uint32_t r = 0; r < ROUNDS; r++) {
        agent_like_record(r + 1000, 600);
        uint32_t t0 = (uint32_t)micros();
        EEPROM.commit();
        commit_big.add((uint32_t)micros() - t0);
    }
    commit_big.print("commit 600 B changed");
    for (uint32_t r = 0; r < ROUNDS; r++) {
        uint32_t t0 = (uint32_t)micros();
        EEPROM.commit();
        commit_same.add((uint32_t)micros() - t0);
    }
    commit_same.print("commit unchanged");
    uint32_t t0 = (uint32_t)micros();
    EEPROM.begin(4096);
    Serial.printf("timing: %-28s %lu us\r\n", "begin (load)", (unsigned long)((uint32_t)micros() - t0));
    Serial.printf("timing: done\r\n");
}

void loop() {}
