//! What a broker offers the scenarios, known before it starts: which
//! lifecycle and network faults the harness can apply to it, and whether
//! it persists sessions. `requires = [...]` in a scenario and the fault
//! steps it uses are checked against this; anything missing skips the
//! scenario with the reason, never fails it. How a broker behaves (its
//! deviations from the spec, its support for `$share`, `$queue/`, `$local/`)
//! is measured by the scenarios and recorded in
//! `scenarios/deviations/<profile>.toml`.

use super::container::ImageRef;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Profile {
    /// Deviations file name and matrix column family.
    pub name: &'static str,
    /// stop, start, restart, kill, kill_restart.
    pub control: bool,
    /// pause, unpause (container freezer or SIGSTOP).
    pub pause: bool,
    /// disconnect, reconnect from its network (containers only).
    pub network: bool,
    /// Speaks MQTT 5.0: 5.0 scenarios are UNSUP (skipped, with the
    /// reason) against a broker that does not.
    pub mqtt5: bool,
    /// Persistent sessions survive a graceful restart.
    pub persistence: bool,
    /// ... and a SIGKILL.
    pub persistence_across_kill: bool,
}

impl Profile {
    pub const MOSQUITTO_PROCESS: Profile = Profile {
        name: "mosquitto",
        control: true,
        pause: true,
        network: false,
        mqtt5: true,
        persistence: true,
        persistence_across_kill: false,
    };
    pub const EMBEDDED: Profile = Profile {
        name: "rumqttd",
        control: false,
        pause: false,
        network: false,
        // The embedded broker listens with rumqttd's 3.1.1 (v4) server only.
        mqtt5: false,
        persistence: false,
        persistence_across_kill: false,
    };
    pub const EXTERNAL: Profile = Profile {
        name: "external",
        control: false,
        pause: false,
        network: false,
        mqtt5: true,
        persistence: false,
        persistence_across_kill: false,
    };

    pub fn container(image: &ImageRef) -> Profile {
        let (name, promises) = match image.known() {
            Some(k) => (k.profile, k.promises),
            // An image we know nothing about is its own profile, named
            // after its repository (`deviations/<name>.toml`); the name is
            // leaked, a few bytes once per lookup of an unknown image.
            None => (
                &*Box::leak(image.profile().into_boxed_str()),
                super::Promises::default(),
            ),
        };
        Profile {
            name,
            control: true,
            pause: true,
            network: true,
            // Debian 12's RabbitMQ 3.10 MQTT plugin and NATS 2.9 speak
            // 3.1.1 only; an unknown image is given the chance to show.
            mqtt5: !matches!(name, "rabbitmq" | "nats"),
            persistence: promises.persists_across_restart,
            persistence_across_kill: promises.persists_across_kill,
        }
    }

    /// Whether the broker offers a scenario capability (`requires`).
    pub fn offers(&self, capability: &str) -> bool {
        match capability {
            "broker_control" => self.control,
            "persistence" => self.control && self.persistence,
            "persistence_across_kill" => self.control && self.persistence_across_kill,
            "broker_pause" => self.pause,
            "broker_network" => self.network,
            "mqtt5" => self.mqtt5,
            _ => true,
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
