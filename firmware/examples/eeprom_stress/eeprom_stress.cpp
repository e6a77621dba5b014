/* EEPROM log under stress, for run.sh: an endless stream of commits whose
 * contents are a pure function of the commit count n (kept in bytes 0..3),
 * so after any power cut the board can check that the store is exactly
 * the state after some commit n, and run.sh can check that n is the last
 * commit reported done or the one in flight.
 * UART: "stress: boot n=N ok|MISMATCH ..." then "c N" after each commit. */
#include <Arduino.h>
#include <EEPROM.h>

#define STORE 4096

static uint8_t *expect;

static uint32_t rnd(uint32_t &x)
{
    x = x * 1103515245u + 12345u;
    return x >> 8;
}

/* Step n's change: mostly a short run near the count (small records, as
 * the agent writes), sometimes a long one anywhere (fills the log fast, so
 * sectors roll over often), sometimes erased-looking 0xff bytes. */
static void step(uint32_t n, uint8_t *img, bool to_eeprom)
{
    uint32_t x = n * 2654435761u;
    uint32_t kind = rnd(x) % 16, len, off;
    if (kind == 0) {
        len = 256 + rnd(x) % 1792;
        off = 4 + rnd(x) % (STORE - 4 - len);
    } else {
        len = 1 + rnd(x) % 64;
        off = 4 + rnd(x) % (256 - len);
    }
    bool ff = rnd(x) % 4 == 0;
    for (uint32_t i = 0; i < len; i++) {
        uint8_t v = ff ? 0xff : (uint8_t)(n * 7 + i * 31);
        if (to_eeprom)
            EEPROM.write((int)(off + i), v);
        img[off + i] = v;
    }
    memcpy(img, &n, 4);
    if (to_eeprom)
        EEPROM.put(0, n);
}

static uint32_t n;

/* Loads the store afresh and compares it with commits 1..n replayed. */
static bool verify(const char *when)
{
    EEPROM.begin(STORE);
    const uint8_t *got = EEPROM.getConstDataPtr();
    memcpy(&n, got, 4);
    if (n == 0xffffffffu)
        n = 0;
    memset(expect, 0xff, STORE);
    for (uint32_t k = 1; k <= n; k++)
        step(k, expect, false);
    for (uint32_t i = 0; i < STORE; i++)
        if (got[i] != expect[i]) {
            Serial.printf("stress: %s n=%lu MISMATCH at %lu: %02x != %02x\r\n", when,
                          (unsigned long)n, (unsigned long)i, got[i], expect[i]);
            return false;
        }
    Serial.printf("stress: %s n=%lu ok\r\n", when, (unsigned long)n);
    return true;
}

static bool healthy;

void setup()
{
    Serial.begin(115200);
    expect = (uint8_t *)malloc(STORE);
    healthy = expect && verify("boot");
}

void loop()
{
    if (!healthy)
        return;
    n++;
    step(n, expect, true);
    if (!EEPROM.commit()) {
        Serial.printf("stress: commit %lu failed\r\n", (unsigned long)n);
        healthy = false;
        return;
    }
    Serial.printf("c %lu\r\n", (unsigned long)n);
    /* Reloading now and then checks the log replay without a power cut. */
    if (n % 97 == 0)
        healthy = verify("reload");
}
