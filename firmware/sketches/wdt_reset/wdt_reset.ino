/* wdt_reset: a sketch that stops yielding, as the Adafruit example's
 * "wait for WDT to reset me" does.
 *
 * By default, the soft watchdog: it must reset the sketch (the core
 * prints "Soft WDT reset") and the next boot must report "Software
 * Watchdog"; a loop that keeps yielding is never reset.
 *
 * Built with -D WDT_RESET_HW=1, the hardware watchdog: interrupts masked
 * for 5 s (longer than the soft watchdog's 3.2 s, which cannot fire then)
 * is not reset, `noInterrupts(); while (1);` is, after ~8 s, and so is a
 * non-yielding loop with the soft watchdog stopped (ESP.wdtDisable()):
 * the ROM prints "rst cause:4" and "wdt reset", and the next boot reports
 * "Hardware Watchdog". RTC user memory counts the hardware resets. */
#ifndef WDT_RESET_HW
#define WDT_RESET_HW 0
#endif

void setup() {
  Serial.begin(115200);
  Serial.print("reason: ");
  Serial.println(ESP.getResetReason());
#if WDT_RESET_HW
  uint32_t hw_resets = 0;
  if (ESP.getResetReason() == "Hardware Watchdog") {
    ESP.rtcUserMemoryRead(0, &hw_resets, sizeof hw_resets);
    hw_resets++;
    Serial.print("info: ");
    Serial.println(ESP.getResetInfo());
  }
  ESP.rtcUserMemoryWrite(0, &hw_resets, sizeof hw_resets);
  Serial.printf("hardware watchdog resets: %u\n", (unsigned)hw_resets);
  if (hw_resets == 0) {
    // Masked for longer than the soft watchdog's 3.2 s, shorter than the
    // hardware one's 8 s: neither fires.
    noInterrupts();
    unsigned long t0 = millis();
    while (millis() - t0 < 5000) {
    }
    interrupts();
    Serial.println("masked 5 s: not reset");
    Serial.println("mask and spin");
    noInterrupts();
    while (1) {
    }
  } else if (hw_resets == 1) {
    Serial.println("soft WDT off, spin");
    ESP.wdtDisable();
    while (1) {
    }
  }
  Serial.println("WDT DONE");
#else
  if (ESP.getResetReason() == "Software Watchdog") {
    Serial.println("WDT DONE");
    return;
  }
  // Yielding for longer than the watchdog's 3.2 s is fine...
  unsigned long t0 = millis();
  while (millis() - t0 < 4000) {
    yield();
  }
  Serial.println("yielded 4 s: not reset");
  // ...and so is a busy loop that feeds it...
  t0 = millis();
  while (millis() - t0 < 4000) {
    ESP.wdtFeed();
  }
  Serial.println("fed 4 s: not reset");
  // ...but not one that does neither.
  Serial.println("stop yielding");
  while (1) {
  }
#endif
}

void loop() { delay(100); }
