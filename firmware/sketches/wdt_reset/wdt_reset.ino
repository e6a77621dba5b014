/* wdt_reset: a sketch that stops yielding, as the Adafruit example's
 * "wait for WDT to reset me" does. The soft watchdog must reset it (the
 * core prints "Soft WDT reset") and the next boot must report
 * "Software Watchdog"; a loop that keeps yielding is never reset, and
 * with the soft watchdog disabled (ESP.wdtDisable()) neither is a
 * non-yielding one (until the hardware watchdog, not emulated yet). */
void setup() {
  Serial.begin(115200);
  Serial.print("reason: ");
  Serial.println(ESP.getResetReason());
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
}

void loop() { delay(100); }
