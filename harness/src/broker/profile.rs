//! What a broker offers the scenarios, known before it starts: which
//! lifecycle and network faults the harness can apply to it, whether it
//! persists sessions, and which conventions outside MQTT 3.1.1 (`$share/`,
//! `$queue/`, `$local/`) it is known to implement. `requires = [...]` in a
//! scenario and the broker steps it uses are checked against this; anything
//! missing skips the scenario with the reason, never fails it.
//!
//! The brokers the harness runs itself have their profile here, in code.
//! An external broker starts from [`Profile::external`] — nothing
//! controllable, nothing promised, every convention unknown — and takes
//! what its profile file declares (`[capabilities]`, `[hooks]`, see
//! [`Declared`] and [`super::hooks`]). An unknown convention is not a
//! reason to skip: the scenario runs and the result says whether the
//! broker has it (`runner::convention`). How a broker behaves against the
//! spec is measured by the scenarios and recorded in the same file's
//! `[[deviation]]`s.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::container::ImageRef;
use super::hooks::Hooks;

/// A convention outside MQTT 3.1.1 that some brokers implement, recognised
/// by the prefix of a subscription's filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Convention {
    /// `$share/<group>/<filter>`: MQTT 5.0's shared subscriptions, which
    /// many 3.1.1 brokers also offer.
    Share,
    /// `$queue/<filter>`: EMQX's shared subscription with one implicit group.
    Queue,
    /// `$local/<filter>`: EMQX's node-local subscription.
    Local,
}

impl Convention {
    pub const ALL: [Convention; 3] = [Convention::Share, Convention::Queue, Convention::Local];

    pub fn prefix(self) -> &'static str {
        match self {
            Convention::Share => "$share/",
            Convention::Queue => "$queue/",
            Convention::Local => "$local/",
        }
    }

    /// Its name as a capability (`requires`, `[capabilities]`).
    pub fn capability(self) -> &'static str {
        match self {
            Convention::Share => "shared_subscriptions",
            Convention::Queue => "queue_subscriptions",
            Convention::Local => "local_subscriptions",
        }
    }

    /// The convention a filter uses, if any.
    pub fn of_filter(filter: &str) -> Option<Convention> {
        Convention::ALL
            .into_iter()
            .find(|c| filter.starts_with(c.prefix()))
    }

    /// The plain filter a convention filter subscribes to
    /// (`$share/g/a/+` → `a/+`, `$queue/a/b` → `a/b`).
    pub fn strip(self, filter: &str) -> &str {
        let rest = &filter[self.prefix().len()..];
        match self {
            Convention::Share => rest.split_once('/').map_or("", |(_, f)| f),
            Convention::Queue | Convention::Local => rest,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Profile file name (`deviations/<name>.toml`) and matrix column family.
    pub name: String,
    /// stop, start, restart, kill, kill_restart.
    pub control: bool,
    /// pause, unpause (container freezer or SIGSTOP).
    pub pause: bool,
    /// disconnect, reconnect from its network (containers only).
    pub network: bool,
    /// Speaks MQTT 5.0: 5.0 scenarios are UNSUP (skipped, with the
    /// reason) against a broker that does not.
    pub mqtt5: bool,
    /// The highest QoS the broker grants over 5.0 (its CONNACK's Maximum
    /// QoS; 2 when it announces none). A 5.0 scenario that needs QoS 2 is
    /// skipped, with this as the reason, on a broker that grants less: a
    /// client that publishes above it is the one breaking the rules.
    pub max_qos5: u8,
    /// Persistent sessions survive a graceful restart.
    pub persistence: bool,
    /// ... and a SIGKILL.
    pub persistence_across_kill: bool,
    /// Conventions known to be implemented (true) or known to be missing
    /// (false); a convention in neither is measured.
    pub conventions: Vec<(Convention, bool)>,
    /// Broker steps carried out by profile hooks (an external broker):
    /// then exactly these actions are available, whatever `control`,
    /// `pause` and `network` say.
    pub hooked: Option<BTreeSet<String>>,
}

impl Profile {
    fn builtin(name: &str) -> Profile {
        Profile {
            name: name.to_string(),
            control: false,
            pause: false,
            network: false,
            mqtt5: false,
            max_qos5: 2,
            persistence: false,
            persistence_across_kill: false,
            conventions: Vec::new(),
            hooked: None,
        }
    }

    pub fn mosquitto_process() -> Profile {
        Profile {
            control: true,
            pause: true,
            mqtt5: true,
            persistence: true,
            ..Profile::builtin("mosquitto")
        }
    }

    /// The embedded broker listens with rumqttd's 3.1.1 (v4) server only.
    pub fn embedded() -> Profile {
        Profile::builtin("rumqttd")
    }

    /// A broker someone else runs, before its profile file is read:
    /// nothing the harness can do to it, nothing promised, 5.0 given the
    /// chance to show, every convention unknown.
    pub fn external(name: &str) -> Profile {
        Profile {
            mqtt5: true,
            hooked: Some(BTreeSet::new()),
            ..Profile::builtin(name)
        }
    }

    pub fn container(image: &ImageRef) -> Profile {
        let (name, promises, mqtt5, max_qos5) = match image.known() {
            Some(k) => (k.profile.to_string(), k.promises, k.mqtt5, k.mqtt5_max_qos),
            // An image we know nothing about is its own profile, named
            // after its repository (`deviations/<name>.toml`), and is given
            // the chance to show 5.0.
            None => (image.profile(), super::Promises::default(), true, 2),
        };
        Profile {
            control: true,
            pause: true,
            network: true,
            mqtt5,
            max_qos5,
            persistence: promises.persists_across_restart,
            persistence_across_kill: promises.persists_across_kill,
            ..Profile::builtin(&name)
        }
    }

    /// Takes what a profile file declares and the hooks it gives.
    pub fn declare(mut self, declared: Option<&Declared>, hooks: Option<&Hooks>) -> Profile {
        if let Some(d) = declared {
            let set = |v: &mut bool, d: Option<bool>| {
                if let Some(d) = d {
                    *v = d
                }
            };
            set(&mut self.mqtt5, d.mqtt5);
            if let Some(q) = d.maximum_qos {
                self.max_qos5 = q;
            }
            set(&mut self.persistence, d.persistence);
            set(&mut self.persistence_across_kill, d.persistence_across_kill);
            for (c, v) in [
                (Convention::Share, d.shared_subscriptions),
                (Convention::Queue, d.queue_subscriptions),
                (Convention::Local, d.local_subscriptions),
            ] {
                if let Some(v) = v {
                    self.conventions.retain(|(x, _)| *x != c);
                    self.conventions.push((c, v));
                }
            }
        }
        if let Some(h) = hooks {
            self.hooked = Some(h.actions());
        }
        self
    }

    /// What the profile says about a convention: `None` = unknown.
    pub fn convention(&self, c: Convention) -> Option<bool> {
        self.conventions
            .iter()
            .find(|(x, _)| *x == c)
            .map(|(_, v)| *v)
    }

    /// Whether the harness can carry out a broker step on this broker.
    pub fn can(&self, action: &str) -> bool {
        match &self.hooked {
            Some(h) => match action {
                "kill_restart" => h.contains("kill") && h.contains("start"),
                other => h.contains(other),
            },
            None => match Profile::needed_for(action) {
                "broker_pause" => self.pause,
                "broker_network" => self.network,
                _ => self.control,
            },
        }
    }

    /// Whether the broker offers a scenario capability (`requires`).
    /// Conventions are never missing: unless declared supported they are
    /// measured, and the verdict says what was found.
    pub fn offers(&self, capability: &str) -> bool {
        let control = self.can("restart") || (self.can("stop") && self.can("start"));
        match capability {
            "broker_control" => control,
            "persistence" => control && self.persistence,
            "persistence_across_kill" => control && self.persistence_across_kill,
            "broker_pause" => self.can("pause") && self.can("unpause"),
            "broker_network" => self.can("disconnect") && self.can("reconnect"),
            "mqtt5" => self.mqtt5,
            _ => true,
        }
    }

    /// Why a capability is missing, in the user's terms: for a broker with
    /// hooks, which hook to add.
    pub fn missing_because(&self, capability: &str) -> String {
        match (&self.hooked, capability) {
            (Some(_), "broker_control") => format!(
                "needs `broker_control`: give profile `{}` a `restart` hook (or `stop` and `start`) in its [hooks]",
                self.name
            ),
            (Some(_), "broker_pause") => format!(
                "needs `broker_pause`: give profile `{}` `pause` and `unpause` hooks in its [hooks]",
                self.name
            ),
            (Some(_), "broker_network") => format!(
                "needs `broker_network`: give profile `{}` `disconnect` and `reconnect` hooks in its [hooks]",
                self.name
            ),
            (Some(_), "persistence" | "persistence_across_kill") if !self.offers("broker_control") => {
                format!(
                    "needs `{capability}`: give profile `{}` a `restart` hook in its [hooks] and declare `{capability} = true` in its [capabilities]",
                    self.name
                )
            }
            (Some(_), "persistence" | "persistence_across_kill") => format!(
                "needs `{capability}`, which profile `{}` does not declare ([capabilities] {capability} = true)",
                self.name
            ),
            _ => format!("needs `{capability}`"),
        }
    }

    /// The capability a broker step needs, for the skip reason.
    pub fn needed_for(action: &str) -> &'static str {
        match action {
            "pause" | "unpause" => "broker_pause",
            "disconnect" | "reconnect" => "broker_network",
            _ => "broker_control",
        }
    }
}

/// `[capabilities]` of an external broker's profile file: what the user
/// knows about the broker they test. Anything left out keeps the external
/// default (5.0 tried; no persistence promised; conventions measured).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declared {
    /// Free text for the report, e.g. "amqtt 0.12.1 from PyPI".
    pub description: Option<String>,
    pub mqtt5: Option<bool>,
    /// The Maximum QoS its 5.0 CONNACK announces (0, 1 or 2; default 2):
    /// 5.0 scenarios that need more are skipped.
    pub maximum_qos: Option<u8>,
    /// Persistent sessions and their queued messages survive the
    /// `restart` hook (and `stop`/`start`).
    pub persistence: Option<bool>,
    /// ... and the `kill` hook.
    pub persistence_across_kill: Option<bool>,
    /// `$share/<group>/<filter>`.
    pub shared_subscriptions: Option<bool>,
    /// `$queue/<filter>`.
    pub queue_subscriptions: Option<bool>,
    /// `$local/<filter>`.
    pub local_subscriptions: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convention_filters() {
        assert_eq!(
            Convention::of_filter("$share/g/a/+"),
            Some(Convention::Share)
        );
        assert_eq!(Convention::Share.strip("$share/g/a/+"), "a/+");
        assert_eq!(Convention::Queue.strip("$queue/a/b"), "a/b");
        assert_eq!(Convention::Local.strip("$local/a/#"), "a/#");
        assert_eq!(Convention::of_filter("$SYS/x"), None);
        assert_eq!(Convention::of_filter("a/$queue/x"), None);
    }

    #[test]
    fn an_external_broker_offers_what_its_hooks_and_declarations_say() {
        let bare = Profile::external("external");
        assert!(!bare.offers("broker_control"));
        assert!(!bare.can("restart"));
        assert!(bare.offers("mqtt5"));
        assert_eq!(bare.convention(Convention::Share), None);
        // Conventions are measured, never a reason to skip.
        assert!(bare.offers("shared_subscriptions"));

        let hooks: Hooks = toml::from_str("restart = \"true\"\npause = \"true\"").unwrap();
        let declared: Declared =
            toml::from_str("persistence = true\nmqtt5 = false\nqueue_subscriptions = false")
                .unwrap();
        let p = Profile::external("amqtt").declare(Some(&declared), Some(&hooks));
        assert!(p.offers("broker_control"));
        assert!(p.offers("persistence"));
        assert!(!p.offers("persistence_across_kill"));
        assert!(p.can("restart"));
        assert!(!p.can("stop"));
        assert!(!p.can("kill_restart"));
        // pause without unpause would leave the broker frozen.
        assert!(!p.offers("broker_pause"));
        assert!(!p.offers("mqtt5"));
        assert_eq!(p.convention(Convention::Queue), Some(false));
        assert!(p.missing_because("broker_pause").contains("`unpause`"));
    }

    #[test]
    fn builtin_brokers_keep_their_own_capabilities() {
        let m = Profile::mosquitto_process();
        assert!(m.can("restart") && m.can("pause") && !m.can("disconnect"));
        assert!(m.offers("persistence") && !m.offers("persistence_across_kill"));
        let e = Profile::embedded();
        assert!(!e.offers("broker_control") && !e.offers("mqtt5"));
    }
}
