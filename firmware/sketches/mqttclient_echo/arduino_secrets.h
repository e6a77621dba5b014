// The network's name and password (on the emulated board any will do).
#define SECRET_SSID "your-ssid"
#define SECRET_PASS "your-password"
