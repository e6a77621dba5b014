/* core_api: exercises the Arduino layer's API groups and prints what each
 * call gave, one "T group name value" line each, so that
 * harness/tests/arduino_api.rs can compare the emulated board with what
 * the ESP8266 core documents; and a table of float/double operations on
 * fixed bit patterns ("F op a b = r", hex), which the test recomputes on
 * the host: soft-float must give the IEEE results bit for bit.
 *
 * No prototypes are written here on purpose: the builder generates them
 * (report() and the groups are called before they are defined).
 *
 * The last group sleeps: ESP.deepSleep() is a timed reset, the board
 * wakes reporting "Deep-Sleep Wake", restarts with ESP.restart() and
 * reports "Software/System restart", and only then prints "API DONE". */
#include <Ticker.h>
#include <EEPROM.h>
#include <ESP8266WiFi.h>
#include <functional>

static const char greeting[] PROGMEM = "hello from flash";
static const uint32_t table[] PROGMEM = {0xdeadbeef, 0x01020304};
static const float pi_f PROGMEM = 3.25f;

Ticker ticker;
volatile int ticks = 0;

void setup() {
  Serial.begin(115200);
  Serial.println();
  String reason = ESP.getResetReason();
  if (reason == "Deep-Sleep Wake") {
    report("esp", "deepSleepWake", reason);
    ESP.restart();
  }
  if (reason == "Software/System restart") {
    report("esp", "restart", reason);
    Serial.println(F("API DONE"));
    return;
  }
  strings();
  printing();
  streams();
  progmem();
  conversions();
  callbacks();
  floats();
  chip();
  storage();
  pins();
  network();
  Serial.flush();
  ESP.deepSleep(200000);
}

void loop() { delay(100); }

void report(const char *group, const char *name, const String &value) {
  Serial.print("T ");
  Serial.print(group);
  Serial.print(' ');
  Serial.print(name);
  Serial.print(' ');
  Serial.println(value);
}

/* A Print that collects into a String, to see exactly what print() wrote. */
class Capture : public Print {
 public:
  String text;
  size_t write(uint8_t c) override { text += (char)c; return 1; }
};

void strings() {
  String s = "Hello";
  s += ", ";
  s += F("world");
  s += '!';
  s += 42;
  report("string", "concat", s);
  report("string", "length", String(s.length()));
  report("string", "indexOf", String(s.indexOf("world")));
  report("string", "indexOfChar", String(s.indexOf('o', 5)));
  report("string", "lastIndexOf", String(s.lastIndexOf('o')));
  report("string", "substring", s.substring(7, 12));
  report("string", "substringSwapped", s.substring(12, 7));
  report("string", "substringPast", "[" + s.substring(100) + "]");
  report("string", "toInt", String(String("  -1234xyz").toInt()));
  report("string", "toFloat", String(String("3.75").toFloat(), 3));
  String t = "  padded \t\n";
  t.trim();
  report("string", "trim", "[" + t + "]");
  String r = "a-b-c";
  r.replace("-", "+=");
  report("string", "replace", r);
  r.remove(1, 2);
  report("string", "remove", r);
  String u = "MiXeD";
  u.toUpperCase();
  report("string", "upper", u);
  report("string", "equalsIgnoreCase", String(u.equalsIgnoreCase("mixed")));
  report("string", "startsWith", String(s.startsWith("Hell")) + String(s.endsWith("42")));
  report("string", "compare", String(String("abc") < String("abd")));
  report("string", "fromFloat", String(1.5f) + "|" + String(-2.125, 3) + "|" + String(2.5, 0));
  report("string", "fromHex", String(255, HEX) + "|" + String(5, BIN));
  String e;
  report("string", "emptyIsTrue", String(e ? 1 : 0) + String(e.length()));
  char buf[6];
  s.toCharArray(buf, sizeof buf);
  report("string", "toCharArray", buf);
  String big;
  report("string", "reserve", String(big.reserve(200)));
}

void printing() {
  Capture c;
  c.print(-42); c.print(' ');
  c.print(255, HEX); c.print(' ');
  c.print(255u, OCT); c.print(' ');
  c.print(5, BIN); c.print(' ');
  c.print(-1L, HEX); c.print(' ');
  c.print(18446744073709551615ull); c.print(' ');
  c.print((long long)-9223372036854775807ll); c.print(' ');
  c.print(1.0 / 3.0); c.print(' ');
  c.print(2.0 / 3.0, 5); c.print(' ');
  c.print(-0.5, 0); c.print(' ');
  c.print(1e20); c.print(' ');
  c.print(NAN); c.print(' ');
  c.print(-INFINITY); c.print(' ');
  c.print(F("flash")); c.print(' ');
  c.print(IPAddress(10, 0, 2, 15)); c.print(' ');
  c.print('x');
  report("print", "mixed", c.text);
  Capture p;
  p.printf("%d|%5.2f|%s|%lu|%x|%e", -7, 3.14159, "str", 4000000000ul, 0xabc, 12345.678);
  report("print", "printf", p.text);
  Capture l;
  l.println(7);
  report("print", "println", String((int)l.text.length()) + String((int)l.text[1]) + String((int)l.text[2]));
}

/* A Stream over a fixed text, to see what the parsing helpers take. */
class TextStream : public Stream {
 public:
  explicit TextStream(const char *t) : text(t) { setTimeout(10); }
  int available() override { return (int)strlen(text + at); }
  int read() override { return text[at] ? (unsigned char)text[at++] : -1; }
  int peek() override { return text[at] ? (unsigned char)text[at] : -1; }
  size_t write(uint8_t) override { return 0; }

 private:
  const char *text;
  size_t at = 0;
};

void streams() {
  // parseInt/parseFloat skip what cannot start a number, stop after it.
  TextStream a("x=-123;y=4.5 z");
  long i = a.parseInt();
  float f = a.parseFloat();
  report("stream", "parse", String(i) + "|" + String(f, 1) + "|[" + a.readString() + "]");
  TextStream b("header\r\nbody: ok\nnext");
  bool found = b.find("body: ");
  String rest = b.readStringUntil('\n');
  report("stream", "find", String(found) + "|" + rest + "|" + b.readString());
  // readBytes stops at the timeout with what it has.
  TextStream c("abc");
  char buf[8] = {0};
  size_t n = c.readBytes(buf, 5);
  report("stream", "readBytes", String(n) + "|" + buf);
  TextStream d("k1,k2");
  char word[8] = {0};
  size_t w = d.readBytesUntil(',', word, sizeof word - 1);
  report("stream", "readBytesUntil", String(w) + "|" + word + "|" + d.readString());
}

static const char name_a[] PROGMEM = "alpha";
static const char name_b[] PROGMEM = "beta";
static const char *const names[] PROGMEM = {name_a, name_b};

void progmem() {
  char name[8];
  strcpy_P(name, (PGM_P)pgm_read_ptr(&names[1]));
  report("pgm", "ptr", String(name) + "|" + String(strlen_P(PSTR("four"))));
  char buf[32];
  strcpy_P(buf, greeting);
  report("pgm", "strcpy_P", buf);
  report("pgm", "strlen_P", String((unsigned)strlen_P(greeting)));
  report("pgm", "byte", String(pgm_read_byte(greeting + 6)));
  report("pgm", "dword", String(pgm_read_dword(&table[0]), HEX));
  report("pgm", "word", String(pgm_read_word((const uint8_t *)&table[1] + 1), HEX));
  report("pgm", "float", String(pgm_read_float(&pi_f), 2));
  report("pgm", "strcmp_P", String(strcmp_P("hello from flash", greeting)) + String(strncmp_P("help", greeting, 3)));
  memcpy_P(buf, greeting, 5);
  buf[5] = 0;
  report("pgm", "memcpy_P", buf);
  snprintf_P(buf, sizeof buf, PSTR("%s=%d"), "n", 3);
  report("pgm", "snprintf_P", buf);
  report("pgm", "inFlash", String((uint32_t)greeting >= 0x40200000u && (uint32_t)greeting < 0x40300000u));
  report("pgm", "F", String(F("flash string")));
}

void conversions() {
  char buf[40];
  report("conv", "itoa", String(itoa(-255, buf, 16)) + "|" + String(itoa(-255, buf, 10)));
  report("conv", "ltoa", ltoa(-123456789L, buf, 10));
  report("conv", "utoa", utoa(4095u, buf, 2));
  report("conv", "ultoa", ultoa(4294967295ul, buf, 36));
  report("conv", "dtostrf", String("[") + dtostrf(3.14159, 8, 3, buf) + "]");
  report("conv", "dtostrfNeg", String("[") + dtostrf(-0.004, 0, 2, buf) + "]");
  report("conv", "ctype", String(isdigit('7') != 0) + String(isalpha('7') != 0) + String((char)toupper('q')));
  report("conv", "map", String(map(5, 0, 10, 0, 100)) + "|" + String(constrain(150, 0, 100)));
  report("conv", "minmax", String(min(3, 9)) + String(max(3, 9)));
  randomSeed(42);
  long a = random(100), b = random(10, 20);
  report("conv", "random", String(a >= 0 && a < 100) + String(b >= 10 && b < 20));
  // The same seed starts the same sequence.
  randomSeed(42);
  long a2 = random(100), b2 = random(10, 20);
  report("conv", "randomSeed", String(a2 == a && b2 == b));
  report("conv", "led", String(LED_BUILTIN) + String(BUILTIN_LED));
}

int add(int x, int y) { return x + y; }

void callbacks() {
  std::function<int(int, int)> f = add;
  int base = 100;
  std::function<int(int, int)> g = [base](int x, int y) { return base + x * y; };
  std::function<int(int, int)> copy = g;
  std::function<void()> empty;
  report("func", "call", String(f(2, 3)) + "|" + String(copy(2, 3)));
  report("func", "empty", String(empty ? 1 : 0) + String(empty == nullptr) + String(f != nullptr));
  ticker.attach_ms(20, []() { ticks++; });
  unsigned long start = millis();
  while (millis() - start < 210) delay(5);
  ticker.detach();
  int seen = ticks;
  delay(60);
  report("ticker", "periodic", String(seen >= 8 && seen <= 11) + String(ticks == seen) + String(ticker.active()));
  unsigned long t0 = micros();
  delayMicroseconds(500);
  unsigned long dt = micros() - t0;
  report("time", "delayMicroseconds", String(dt >= 500 && dt < 5000));
  unsigned long m0 = millis();
  delay(50);
  unsigned long dm = millis() - m0;
  report("time", "delay", String(dm >= 50 && dm < 100));
  // millis() and micros() count the same time; yield() runs what the SDK
  // runs, e.g. a Ticker's callback, without delay().
  unsigned long u0 = micros(), ms0 = millis();
  delay(30);
  unsigned long du = micros() - u0, dms = millis() - ms0;
  report("time", "millisMicros", String(dms >= 30 && dms < 80) + String(du / 1000 + 1 >= dms && du / 1000 <= dms + 1));
  static volatile bool fired = false;
  ticker.once_ms(5, []() { fired = true; });
  unsigned long y0 = millis();
  while (!fired && millis() - y0 < 500) {
    yield();
  }
  report("time", "yieldRunsTimers", String(fired));
}

void fline(const char *op, uint32_t a, uint32_t b, uint32_t r) {
  Serial.printf("F %s %08lx %08lx = %08lx\n", op, (unsigned long)a, (unsigned long)b, (unsigned long)r);
}

void dline(const char *op, uint64_t a, uint64_t b, uint64_t r) {
  Serial.printf("D %s %016llx %016llx = %016llx\n", op, (unsigned long long)a, (unsigned long long)b,
                (unsigned long long)r);
}

/* Bit patterns in and out: nothing here is folded at compile time. */
float fbits(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
uint32_t bitsf(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
double dbits(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
uint64_t bitsd(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }

void floats() {
  static const uint32_t fv[] = {0x3f800000, 0x40490fdb, 0xc2f6e979, 0x3eaaaaab, 0x00000001,
                                0x7f7fffff, 0x80000000, 0x7f800000, 0x4b000001, 0x3dcccccd};
  static const uint64_t dv[] = {0x3ff0000000000000ull, 0x400921fb54442d18ull, 0xc05edd2f1a9fbe77ull,
                                0x3fd5555555555555ull, 0x0000000000000001ull, 0x7fefffffffffffffull,
                                0x8000000000000000ull, 0x7ff0000000000000ull, 0x4330000000000001ull,
                                0x3fb999999999999aull};
  const int nf = sizeof fv / sizeof fv[0], nd = sizeof dv / sizeof dv[0];
  for (int i = 0; i < nf; i++) {
    for (int j = 0; j < nf; j++) {
      volatile float a = fbits(fv[i]), b = fbits(fv[j]);
      fline("add", fv[i], fv[j], bitsf(a + b));
      fline("sub", fv[i], fv[j], bitsf(a - b));
      fline("mul", fv[i], fv[j], bitsf(a * b));
      fline("div", fv[i], fv[j], bitsf(a / b));
      fline("lt", fv[i], fv[j], a < b);
    }
    volatile float a = fbits(fv[i]);
    fline("f2i", fv[i], 0, (uint32_t)(int32_t)(a > 2e9f || a < -2e9f || a != a ? 0.0f : a));
    fline("f2d", fv[i], 0, (uint32_t)(bitsd((double)a) >> 32));
    fline("sqrt", fv[i], 0, bitsf(sqrtf(a)));
  }
  for (int i = 0; i < nd; i++) {
    for (int j = 0; j < nd; j++) {
      volatile double a = dbits(dv[i]), b = dbits(dv[j]);
      dline("add", dv[i], dv[j], bitsd(a + b));
      dline("sub", dv[i], dv[j], bitsd(a - b));
      dline("mul", dv[i], dv[j], bitsd(a * b));
      dline("div", dv[i], dv[j], bitsd(a / b));
    }
    volatile double a = dbits(dv[i]);
    dline("d2f", dv[i], 0, bitsf((float)a));
    dline("d2i", dv[i], 0, (uint64_t)(int64_t)(int32_t)(a > 2e9 || a < -2e9 || a != a ? 0.0 : a));
    dline("sqrt", dv[i], 0, bitsd(sqrt(a)));
  }
  static const int32_t iv[] = {0, 1, -1, 16777217, -2147483647 - 1, 2147483647, 123456789};
  for (unsigned i = 0; i < sizeof iv / sizeof iv[0]; i++) {
    volatile int32_t n = iv[i];
    volatile uint32_t u = (uint32_t)iv[i];
    fline("i2f", (uint32_t)iv[i], 0, bitsf((float)n));
    fline("u2f", (uint32_t)iv[i], 0, bitsf((float)u));
    dline("i2d", (uint32_t)iv[i], 0, bitsd((double)n));
    dline("u2d", (uint32_t)iv[i], 0, bitsd((double)u));
  }
  /* printf("%f") against the host's formatting. */
  for (int i = 0; i < nd; i++) {
    double a = dbits(dv[i]);
    if (a == a && a < 1e30 && a > -1e30)
      Serial.printf("P %016llx %.6f\n", (unsigned long long)dv[i], a);
  }
}

void chip() {
  report("esp", "resetReason", ESP.getResetReason());
  report("esp", "resetInfoReason", String(ESP.getResetInfoPtr()->reason));
  report("esp", "chipId", String(ESP.getChipId(), HEX));
  report("esp", "freeHeap", String(ESP.getFreeHeap() > 10000 && ESP.getFreeHeap() < 81920));
  uint32_t w = 0x12345678, back = 0;
  report("esp", "rtcMemory", String(ESP.rtcUserMemoryWrite(4, &w, 4) && ESP.rtcUserMemoryRead(4, &back, 4) && back == w));
  report("esp", "cpuMHz", String(ESP.getCpuFreqMHz()));
}

struct Settings {
  uint16_t port;
  char name[6];
};

/* EEPROM: what is written reads back before commit() (commit() writes
 * the flash; this board runs without one here, see persist_smoke). */
void storage() {
  EEPROM.begin(64);
  EEPROM.write(3, 0xa5);
  Settings in = {1883, "dut"}, out = {0, ""};
  EEPROM.put(8, in);
  EEPROM.get(8, out);
  report("eeprom", "rw", String(EEPROM.length()) + "|" + String(EEPROM.read(3), HEX) + "|" + String(out.port) + out.name + "|" + String(EEPROM[8]));
  EEPROM.end();
}

/* GPIO: no pins, but the calls are accepted and each change is logged
 * ("[gpio] ..." lines the test looks for); reads give back what was
 * written, and a pull-up input reads HIGH. */
void pins() {
  pinMode(LED_BUILTIN, OUTPUT);
  digitalWrite(LED_BUILTIN, LOW);
  digitalWrite(LED_BUILTIN, LOW);
  int out = digitalRead(LED_BUILTIN);
  pinMode(D5, INPUT_PULLUP);
  report("gpio", "read", String(out) + String(digitalRead(D5)));
}

/* The network calls that need no network: a client that never connected
 * (through its Client base class, as libraries hold it), the station's
 * settings. With a network: tests/arduino_api.rs's networked sketch. */
void network() {
  WiFiClient wc;
  Client &c = wc;
  report("client", "unconnected", String(c.connected()) + String(c.available()) + String(c.read()) + String((bool)c));
  report("wifi", "mac", WiFi.macAddress());
  report("wifi", "mode", String(WiFi.mode(WIFI_STA)) + String((int)WiFi.getMode()));
  report("wifi", "autoReconnect", String(WiFi.setAutoReconnect(false)) + String(WiFi.getAutoReconnect()) + String(WiFi.setAutoReconnect(true)) + String(WiFi.getAutoReconnect()));
}
