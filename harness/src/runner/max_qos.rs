//! A broker's Maximum QoS over MQTT 5.0, as its profile states it, held
//! against what the broker announces. The profile's figure decides which
//! 5.0 scenarios are skipped (those that need QoS 2 on a broker granting
//! 1, see `unmet_requirement`), so it must not be taken on trust: every
//! successful 5.0 CONNACK of a run carries the broker's own answer
//! (property Maximum QoS; absent means 2), and a profile that says
//! otherwise fails the run as a stale capability — an upgraded broker that
//! now grants QoS 2 would otherwise keep its QoS 2 scenarios skipped for
//! good, and one that grants less than its profile says would fail them
//! for the client's fault.
//!
//! A pure function over the history and the profile; the runner applies
//! [`judge`] after the declared deviations.

use std::collections::HashMap;

use crate::broker::Profile;
use crate::history::{Dir, EventKind};
use crate::mqtt::{props, Packet, Version};

use super::convention::STALE_CAPABILITY;
use super::{Outcome, Status, StepFailure};

/// The first successful 5.0 CONNACK whose Maximum QoS differs from the
/// profile's: (event, connection's actor, announced).
fn mismatch(o: &Outcome, profile: &Profile) -> Option<(u64, String, u8)> {
    let mut v5 = HashMap::new();
    for ev in &o.history.events {
        let EventKind::Packet {
            conn,
            actor,
            dir,
            packet,
            ..
        } = &ev.kind
        else {
            continue;
        };
        match packet {
            Packet::Connect(c) if *dir == Dir::ToBroker => {
                v5.insert(*conn, c.version == Version::V5);
            }
            Packet::ConnAck(a) if *dir == Dir::ToClient && a.code == 0 => {
                if v5.get(conn) != Some(&true) {
                    continue;
                }
                let announced = props::num(&a.properties, props::MAXIMUM_QOS).unwrap_or(2);
                if announced != u32::from(profile.max_qos5) {
                    return Some((ev.seq, actor.clone(), announced.min(2) as u8));
                }
            }
            _ => {}
        }
    }
    None
}

/// Fails an outcome whose 5.0 CONNACKs contradict the profile's Maximum
/// QoS, saying where to correct it.
pub fn judge(mut o: Outcome, profile: &Profile) -> Outcome {
    if matches!(o.status, Status::Skipped(_) | Status::Error(_)) {
        return o;
    }
    let Some((seq, actor, announced)) = mismatch(&o, profile) else {
        return o;
    };
    let fix = if profile.hooked.is_some() {
        format!(
            "declare `maximum_qos = {announced}` in the [capabilities] of deviations/{}.toml",
            profile.name
        )
    } else {
        format!(
            "set `mqtt5_max_qos: {announced}` in the image's entry of harness/src/broker/container.rs (profile `{}`)",
            profile.name
        )
    };
    o.status = Status::Failed;
    o.failures.push(StepFailure {
        step: 0,
        line: 0,
        message: format!(
            "{STALE_CAPABILITY} `maximum_qos = {}` of profile `{}` did not hold: the broker's 5.0 CONNACK to {actor} (event #{seq}) announced Maximum QoS {announced}; {fix}",
            profile.max_qos5, profile.name
        ),
    });
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{ConnId, Fate, History};
    use crate::mqtt::{ConnAck, Connect, PropValue, Properties, Property};
    use bytes::Bytes;

    fn pkt(conn: u32, dir: Dir, packet: Packet) -> EventKind {
        EventKind::Packet {
            conn: ConnId(conn),
            actor: "cloud".into(),
            dir,
            packet,
            raw: Bytes::new(),
            fate: Fate::Forwarded,
        }
    }

    fn connect(version: Version) -> Packet {
        Packet::Connect(Connect {
            version,
            client_id: "c".into(),
            clean_start: true,
            keep_alive: 60,
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        })
    }

    fn connack(max_qos: Option<u8>) -> Packet {
        let mut properties = Properties::default();
        if let Some(q) = max_qos {
            properties.0.push(Property {
                id: props::MAXIMUM_QOS,
                value: PropValue::Byte(q),
            });
        }
        Packet::ConnAck(ConnAck {
            session_present: false,
            code: 0,
            properties,
        })
    }

    fn outcome(version: Version, max_qos: Option<u8>) -> Outcome {
        let h = History::build()
            .push(pkt(1, Dir::ToBroker, connect(version)))
            .push(pkt(1, Dir::ToClient, connack(max_qos)))
            .finish();
        Outcome {
            id: "s@5".into(),
            name: "n".into(),
            path: "s.toml".into(),
            status: Status::Passed,
            failures: Vec::new(),
            verdicts: Vec::new(),
            history: h,
            duration: Default::default(),
        }
    }

    fn granting(q: u8) -> Profile {
        Profile {
            max_qos5: q,
            ..Profile::mosquitto_process()
        }
    }

    #[test]
    fn a_profile_that_matches_the_connack_changes_nothing() {
        let o = judge(outcome(Version::V5, Some(1)), &granting(1));
        assert_eq!(o.status, Status::Passed);
        // No Maximum QoS property means 2.
        let o = judge(outcome(Version::V5, None), &granting(2));
        assert_eq!(o.status, Status::Passed);
        // 3.1.1 announces nothing: nothing to hold the profile against.
        let o = judge(outcome(Version::V311, None), &granting(1));
        assert_eq!(o.status, Status::Passed);
    }

    #[test]
    fn a_broker_that_grants_more_than_its_profile_says_is_a_stale_capability() {
        let o = judge(outcome(Version::V5, None), &granting(1));
        assert_eq!(o.status, Status::Failed);
        let m = &o.failures[0].message;
        assert!(m.starts_with(STALE_CAPABILITY), "{m}");
        assert!(
            m.contains("announced Maximum QoS 2") && m.contains("mqtt5_max_qos: 2"),
            "{m}"
        );
    }

    #[test]
    fn a_broker_that_grants_less_than_its_profile_says_fails_naming_the_fix() {
        let o = judge(outcome(Version::V5, Some(1)), &Profile::external("ext"));
        assert_eq!(o.status, Status::Failed);
        let m = &o.failures[0].message;
        assert!(
            m.contains("maximum_qos = 1") && m.contains("[capabilities]"),
            "{m}"
        );
    }
}
