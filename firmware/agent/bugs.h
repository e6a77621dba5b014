/* Seeded bugs, chosen at build time with -DMQTT_HIL_BUG_<NAME>=1 (names in
 * bugs.txt) so the harness can prove it catches each one. Every flag
 * changes one small piece of real code; grep for the macro to see where. */
#ifndef MQTT_HIL_BUGS_H
#define MQTT_HIL_BUGS_H

#ifndef MQTT_HIL_BUG_QOS2_DOUBLE_DELIVERY
#define MQTT_HIL_BUG_QOS2_DOUBLE_DELIVERY 0
#endif
#ifndef MQTT_HIL_BUG_NO_PUBREL_RESEND
#define MQTT_HIL_BUG_NO_PUBREL_RESEND 0
#endif
#ifndef MQTT_HIL_BUG_FORGET_INFLIGHT_ON_REBOOT
#define MQTT_HIL_BUG_FORGET_INFLIGHT_ON_REBOOT 0
#endif
#ifndef MQTT_HIL_BUG_WRONG_WILL_TOPIC
#define MQTT_HIL_BUG_WRONG_WILL_TOPIC 0
#endif
#ifndef MQTT_HIL_BUG_NO_DUP_FLAG
#define MQTT_HIL_BUG_NO_DUP_FLAG 0
#endif
#ifndef MQTT_HIL_BUG_TIGHT_RECONNECT
#define MQTT_HIL_BUG_TIGHT_RECONNECT 0
#endif
#ifndef MQTT_HIL_BUG_IGNORE_RECEIVE_MAXIMUM
#define MQTT_HIL_BUG_IGNORE_RECEIVE_MAXIMUM 0
#endif

/* The banner's bug=: -DMQTT_HIL_BUG=no_dup_flag or -DMQTT_HIL_BUG='"no_dup_flag"'
 * both work; it is stringified here and the agent strips any quotes. */
#ifndef MQTT_HIL_BUG
#define MQTT_HIL_BUG none
#endif
#define MQTT_HIL_STR_(x) #x
#define MQTT_HIL_STR(x) MQTT_HIL_STR_(x)
#define MQTT_HIL_BUG_NAME MQTT_HIL_STR(MQTT_HIL_BUG)

#endif
