// arduino-cli needs a <folder>.ino in a sketch folder; the agent's code is in
// agent_sketch.cpp and the *.c files beside it, which arduino-cli compiles
// too. Build for a real board, e.g.:
//   arduino-cli compile --fqbn esp8266:esp8266:nodemcuv2 firmware/agent \
//     --build-property 'compiler.cpp.extra_flags=-DMQTT_HIL_WIFI_SSID="..." -DMQTT_HIL_WIFI_PASS="..."'
// (add -DMQTT_HIL_BUG_<NAME>=1 -DMQTT_HIL_BUG=<name> to both compiler.c and
// compiler.cpp extra_flags for a seeded-bug image).
