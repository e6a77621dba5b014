//! A broker in a container (`--broker container:IMAGE[:TAG]`), started with
//! the Docker engine's own client (`docker`, see [`super::docker`]). The
//! container joins the Docker network this process's containers share (one
//! that a scenario cuts off gets its own), its MQTT port published on
//! 127.0.0.1 only, and counts as ready when it answers a real CONNECT with a
//! CONNACK. Everything made is removed on every way out: `shutdown` after a
//! run, [`sweep`] after Ctrl-C or a panic (main calls it), and each object is
//! named `mqtt-hil-…` so `docker ps -a --filter name=mqtt-hil-` shows leaks.
//!
//! The images the matrix knows, with the configuration each needs, are
//! described once, in [`KNOWN`]. Images are never pulled by surprise: the
//! image must exist locally (`make images` builds ours from Debian packages);
//! on a machine with a registry, pull the upstream ones first.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use super::docker::{self, Docker};
use super::{probe, Promises};
use crate::error::{Error, Result};

/// What the harness must know to run one broker image.
#[derive(Debug)]
pub struct KnownImage {
    /// Repository names this entry describes (without tag).
    pub repos: &'static [&'static str],
    /// The tags it describes, the first being the one the matrix runs;
    /// empty: every tag. Our images carry the broker's version
    /// (`mqtt-hil/mosquitto:2.0.21`), so two versions of one broker are
    /// two entries with their own profile.
    pub tags: &'static [&'static str],
    /// The broker's profile: its deviations file and capabilities.
    pub profile: &'static str,
    /// The MQTT port inside the container.
    pub port: u16,
    pub env: &'static [(&'static str, &'static str)],
    /// Command (arguments to the image's entrypoint), when the default
    /// does not serve anonymous MQTT on all interfaces.
    pub cmd: &'static [&'static str],
    /// Files written into the container before it starts.
    pub files: &'static [(&'static str, &'static str)],
    /// How long a cold start may take on a busy 2-core machine.
    pub startup: Duration,
    pub promises: Promises,
    /// Speaks MQTT 5.0: the matrix runs its 5.0 scenarios (else UNSUP).
    pub mqtt5: bool,
    /// The Maximum QoS its 5.0 CONNACK announces (2 when it announces
    /// none): a 5.0 scenario that needs QoS 2 is skipped on a broker that
    /// grants 1, since a client publishing above it breaks 5.0's rules, not
    /// the broker (checked against every 5.0 CONNACK of a run, see
    /// `runner::convention::judge_max_qos`).
    pub mqtt5_max_qos: u8,
    /// Built by `make images` (ci/images/); others come from a registry.
    pub local: bool,
    /// Scenarios that need no broker of their own can run as tenants of
    /// one running container (see [`super::tenancy`]); `None`: every
    /// scenario gets a container.
    pub tenants: Option<Tenants>,
}

/// Isolated MQTT namespaces inside one container: `count` listeners from
/// `first_port` on, each its own virtual host (RabbitMQ: sessions, queues
/// and retained messages are per vhost), none used by two scenarios.
#[derive(Debug)]
pub struct Tenants {
    pub first_port: u16,
    pub count: u16,
    /// Whether tenants of one container may run at the same time.
    pub at_once: AtOnce,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtOnce {
    Many,
    /// One tenant at a time: the broker shares something between its
    /// namespaces that scenarios would see (RabbitMQ 3.10 tracks client ids
    /// across vhosts: a CONNECT on one closes a connection of the same
    /// client id on another).
    One,
}

const NATS_CONF: &str = "server_name: mqtt_hil\nlisten: 0.0.0.0:4222\n\
    jetstream { store_dir: /data }\nmqtt { listen: 0.0.0.0:1883 }\n";

/// Every image the harness knows how to configure. Short names
/// (`container:mosquitto`) mean the locally built `mqtt-hil/…` images.
pub const KNOWN: &[KnownImage] = &[
    KnownImage {
        repos: &["mqtt-hil/mosquitto"],
        tags: &["latest", "2.0.11"],
        profile: "mosquitto",
        port: 1883,
        env: &[],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(20),
        // persistence on, database in /data, saved on a graceful stop.
        promises: Promises {
            persists_across_restart: true,
            persists_across_kill: false,
        },
        mqtt5: true,
        mqtt5_max_qos: 2,
        local: true,
        tenants: None,
    },
    KnownImage {
        repos: &["mqtt-hil/rabbitmq"],
        tags: &["latest", "3.10"],
        profile: "rabbitmq",
        port: 1883,
        env: &[],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(90),
        // Sessions of clean_session=false clients are durable queues.
        promises: Promises {
            persists_across_restart: true,
            persists_across_kill: true,
        },
        mqtt5: false,
        mqtt5_max_qos: 2,
        local: true,
        // ci/images/build.sh's rabbitmq_tenants, as the recipe calls it.
        tenants: Some(Tenants {
            first_port: 2000,
            count: 32,
            at_once: AtOnce::One,
        }),
    },
    KnownImage {
        repos: &["mqtt-hil/nats"],
        tags: &["latest", "2.9"],
        profile: "nats",
        port: 1883,
        env: &[],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(20),
        // MQTT sessions live in JetStream streams in /data.
        promises: Promises {
            persists_across_restart: true,
            persists_across_kill: true,
        },
        mqtt5: false,
        mqtt5_max_qos: 2,
        local: true,
        tenants: None,
    },
    // Debian 13's versions (ci/images/*-VERSION/), each its own profile:
    // what changed between two versions of a broker shows as two columns.
    KnownImage {
        repos: &["mqtt-hil/mosquitto"],
        tags: &["2.0.21"],
        profile: "mosquitto-2.0.21",
        port: 1883,
        env: &[],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(20),
        // The same configuration as 2.0.11's image.
        promises: Promises {
            persists_across_restart: true,
            persists_across_kill: false,
        },
        mqtt5: true,
        mqtt5_max_qos: 2,
        local: true,
        tenants: None,
    },
    KnownImage {
        repos: &["mqtt-hil/rabbitmq"],
        tags: &["4.0"],
        profile: "rabbitmq-4.0",
        port: 1883,
        env: &[],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(90),
        promises: Promises {
            persists_across_restart: true,
            persists_across_kill: true,
        },
        // rabbitmq_mqtt speaks 5.0 since RabbitMQ 3.13, without QoS 2: its
        // 5.0 CONNACK says maximum_qos=1 (and it answers a 3.1.1 QoS 2
        // PUBLISH with PUBACK, a deviation of 3.1.1 recorded in its file).
        mqtt5: true,
        mqtt5_max_qos: 1,
        local: true,
        // As 3.10's; 4.0 tracks client ids per vhost.
        tenants: Some(Tenants {
            first_port: 2000,
            count: 32,
            at_once: AtOnce::Many,
        }),
    },
    KnownImage {
        repos: &["mqtt-hil/nats"],
        tags: &["2.10"],
        profile: "nats-2.10",
        port: 1883,
        env: &[],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(20),
        promises: Promises {
            persists_across_restart: true,
            persists_across_kill: true,
        },
        // NATS's MQTT gateway is 3.1.1 only.
        mqtt5: false,
        mqtt5_max_qos: 2,
        local: true,
        tenants: None,
    },
    // amqtt from PyPI on Debian 13's Python (ci/images/amqtt/). Its profile
    // is not `amqtt`, the external broker's, whose [capabilities] and
    // missing hooks describe a broker the harness cannot control.
    KnownImage {
        repos: &["mqtt-hil/amqtt"],
        tags: &["0.12.1", "latest"],
        profile: "amqtt-container",
        port: 1883,
        env: &[],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(30),
        // Sessions live in memory only.
        promises: Promises {
            persists_across_restart: false,
            persists_across_kill: false,
        },
        // 3.1.1 only: a 5.0 CONNECT is refused.
        mqtt5: false,
        mqtt5_max_qos: 2,
        local: true,
        tenants: None,
    },
    KnownImage {
        repos: &["eclipse-mosquitto", "library/eclipse-mosquitto"],
        tags: &[],
        profile: "mosquitto",
        port: 1883,
        env: &[],
        // 2.x listens on localhost only unless told otherwise; the image
        // ships this file for exactly that.
        cmd: &["mosquitto", "-c", "/mosquitto-no-auth.conf"],
        files: &[],
        startup: Duration::from_secs(20),
        promises: Promises {
            persists_across_restart: false,
            persists_across_kill: false,
        },
        mqtt5: true,
        mqtt5_max_qos: 2,
        local: false,
        tenants: None,
    },
    KnownImage {
        repos: &["nats", "library/nats"],
        tags: &[],
        profile: "nats",
        port: 1883,
        env: &[],
        cmd: &["-c", "/mqtt-hil.conf"],
        files: &[("/mqtt-hil.conf", NATS_CONF)],
        startup: Duration::from_secs(20),
        promises: Promises {
            persists_across_restart: true,
            persists_across_kill: true,
        },
        mqtt5: false,
        mqtt5_max_qos: 2,
        local: false,
        tenants: None,
    },
    KnownImage {
        repos: &["emqx", "emqx/emqx"],
        tags: &[],
        profile: "emqx",
        port: 1883,
        env: &[],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(90),
        promises: Promises {
            persists_across_restart: false,
            persists_across_kill: false,
        },
        mqtt5: true,
        mqtt5_max_qos: 2,
        local: false,
        tenants: None,
    },
    KnownImage {
        repos: &["hivemq/hivemq-ce", "hivemq-ce"],
        tags: &[],
        profile: "hivemq-ce",
        port: 1883,
        env: &[],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(90),
        // The community edition persists sessions to disk by default.
        promises: Promises {
            persists_across_restart: true,
            persists_across_kill: false,
        },
        mqtt5: true,
        mqtt5_max_qos: 2,
        local: false,
        tenants: None,
    },
    KnownImage {
        repos: &["vernemq/vernemq", "vernemq"],
        tags: &[],
        profile: "vernemq",
        port: 1883,
        env: &[
            ("DOCKER_VERNEMQ_ACCEPT_EULA", "yes"),
            ("DOCKER_VERNEMQ_ALLOW_ANONYMOUS", "on"),
        ],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(90),
        promises: Promises {
            persists_across_restart: true,
            persists_across_kill: false,
        },
        mqtt5: true,
        mqtt5_max_qos: 2,
        local: false,
        tenants: None,
    },
    KnownImage {
        repos: &["emqx/nanomq", "nanomq"],
        tags: &[],
        profile: "nanomq",
        port: 1883,
        env: &[],
        cmd: &[],
        files: &[],
        startup: Duration::from_secs(30),
        promises: Promises {
            persists_across_restart: false,
            persists_across_kill: false,
        },
        mqtt5: true,
        mqtt5_max_qos: 2,
        local: false,
        tenants: None,
    },
];

/// The image a `container:` broker names, resolved against [`KNOWN`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    pub repo: String,
    pub tag: String,
}

impl ImageRef {
    /// `IMAGE[:TAG]`; a registry host with a port (`host:5000/x`) is kept
    /// in the repository. Short names of our own images expand:
    /// `mosquitto` → `mqtt-hil/mosquitto:latest`, `rabbitmq:4.0` →
    /// `mqtt-hil/rabbitmq:4.0`.
    pub fn parse(s: &str) -> Result<ImageRef> {
        if s.is_empty() {
            return Err(Error::Usage(
                "broker `container:`: name an image, e.g. container:mosquitto".into(),
            ));
        }
        let (repo, tag) = match s.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') && !r.is_empty() && !t.is_empty() => (r, t),
            _ => (s, "latest"),
        };
        let repo = match repo {
            "mosquitto" | "rabbitmq" | "nats" | "amqtt" => format!("mqtt-hil/{repo}"),
            r => r.to_string(),
        };
        Ok(ImageRef {
            repo,
            tag: tag.to_string(),
        })
    }

    pub fn known(&self) -> Option<&'static KnownImage> {
        let repo = self.repo.strip_prefix("docker.io/").unwrap_or(&self.repo);
        KNOWN.iter().find(|k| {
            k.repos.contains(&repo) && (k.tags.is_empty() || k.tags.contains(&self.tag.as_str()))
        })
    }

    /// The short form our own images are typed in (`mosquitto`,
    /// `rabbitmq:4.0`), or the full name.
    pub fn short(&self) -> String {
        match self.repo.strip_prefix("mqtt-hil/") {
            Some(short) if self.tag == "latest" => short.to_string(),
            Some(short) => format!("{short}:{}", self.tag),
            None => self.to_string(),
        }
    }

    /// Whether getting it ready costs the machine little. Measured on 2
    /// cores (CPU time the container's cgroup used until the broker was
    /// ready): a mosquitto or NATS container ~40 ms, amqtt's Python ~0.3 s
    /// (its bytecode compiled into the image; ~0.8 s before), RabbitMQ's
    /// Erlang ~2 s (3.10: ~5.7 s before its image kept only the MQTT plugin
    /// and a node database made at build time; README.md, "What bounds the
    /// full matrix on 2 cores"). An image we do not know counts as costly.
    /// What `-j` defaults to for it follows
    /// ([`crate::runner::pool::default_jobs`]).
    pub fn light_start(&self) -> bool {
        self.known().is_some_and(|k| {
            matches!(
                k.profile,
                "mosquitto" | "mosquitto-2.0.21" | "nats" | "nats-2.10" | "amqtt-container"
            )
        })
    }

    /// The profile name: a known image's, else the repository's last part.
    pub fn profile(&self) -> String {
        match self.known() {
            Some(k) => k.profile.to_string(),
            None => self
                .repo
                .rsplit('/')
                .next()
                .unwrap_or(&self.repo)
                .to_string(),
        }
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.repo, self.tag)
    }
}

/// An unknown image is tried with these: MQTT on 1883, no configuration.
const UNKNOWN: KnownImage = KnownImage {
    repos: &[],
    tags: &[],
    profile: "",
    port: 1883,
    env: &[],
    cmd: &[],
    files: &[],
    startup: Duration::from_secs(60),
    promises: Promises {
        persists_across_restart: false,
        persists_across_kill: false,
    },
    // Given the chance to show.
    mqtt5: true,
    mqtt5_max_qos: 2,
    local: false,
    tenants: None,
};

/// Names of everything this process created, for [`sweep`].
static CREATED: Mutex<Vec<Created>> = Mutex::new(Vec::new());

#[derive(Clone, Debug, PartialEq, Eq)]
enum Created {
    Container(String),
    Network(String),
}

fn remember(c: Created) {
    CREATED.lock().expect("registry").push(c);
}

fn forget(c: &Created) {
    CREATED.lock().expect("registry").retain(|x| x != c);
}

/// Finds the Docker engine's client and checks the engine answers, or
/// explains how to get one. With `MQTT_HIL_REQUIRE_DOCKER=1` callers treat
/// this error as fatal; tests without it report themselves skipped.
pub async fn docker() -> Result<Docker> {
    reach(Docker::new()).await
}

async fn reach(d: Docker) -> Result<Docker> {
    let hint = "start the Docker engine (Debian package docker.io; `service docker start`), or use --broker mosquitto / --broker embedded";
    let deadline = Duration::from_secs(5);
    match d.ping(deadline).await {
        Ok(()) => Ok(d),
        Err(e) if e.is_missing_client() => Err(Error::env(
            format!("cannot reach the Docker engine: its client `docker` is not installed ({e})"),
            "install the Docker engine and its client (Debian package docker.io, or docker-ce-cli from Docker's repository), or use --broker mosquitto / --broker embedded",
        )),
        Err(docker::CallError::Timeout { .. }) => Err(Error::env(
            format!("the Docker engine did not answer within {}s", deadline.as_secs()),
            hint,
        )),
        Err(e) => Err(Error::env(
            format!("the Docker engine does not answer: {e}"),
            hint,
        )),
    }
}

/// Whether the image is present locally; a clear error if not.
pub async fn ensure_image(docker: &Docker, image: &ImageRef) -> Result<()> {
    match docker.inspect_image(&image.to_string()).await {
        Ok(_) => Ok(()),
        Err(e) => {
            // Our repositories, whatever the tag: say which tags exist.
            let ours: Vec<&str> = KNOWN
                .iter()
                .filter(|k| k.local && k.repos.contains(&image.repo.as_str()))
                .flat_map(|k| k.tags.iter().copied())
                .collect();
            let hint = if !ours.is_empty() {
                format!(
                    "build it with `make images` (ci/images/build.sh; about 4 minutes the first time), which tags {} as {}",
                    image.repo,
                    ours.join(", ")
                )
            } else {
                format!(
                    "pull it first (`docker pull {image}`) on a machine with a registry; this harness never pulls by itself"
                )
            };
            Err(Error::env(
                format!("the image {image} is not on this machine ({e})"),
                hint,
            ))
        }
    }
}

pub struct Container {
    docker: Docker,
    image: ImageRef,
    known: &'static KnownImage,
    name: String,
    network: String,
    /// The network is this container's alone (removed with it).
    owns_network: bool,
    /// Where the harness reaches it: its published port on 127.0.0.1, or
    /// (a host of tenants) its address on its own network.
    addr: SocketAddr,
    /// Its MQTT port is published on loopback (see [`Container::start`]).
    published: bool,
    /// The container exists (created and started once); dropped without
    /// [`Container::shutdown`] (a cancelled run), its names stay in the
    /// registry for [`sweep`].
    created: bool,
    /// Frozen by a `pause` action: thawed before removal.
    paused: bool,
    /// Time from the start request to the first CONNACK, for benches.
    pub ready_after: Duration,
}

impl Container {
    pub const fn promises_of(known: &KnownImage) -> Promises {
        known.promises
    }

    /// How long bringing a broker of `known` up again may take: a
    /// graceful stop (up to 10 s) plus a start.
    pub fn startup_allowance_of(known: &KnownImage) -> Duration {
        known.startup + Duration::from_secs(10)
    }

    /// A container for one scenario, its MQTT port published on a fixed
    /// loopback port so a restart keeps the address the proxy forwards to,
    /// on the network this process's containers share ([`shared_network`]).
    pub async fn start(image: &ImageRef) -> Result<Container> {
        Container::start_as(image, true, false).await
    }

    /// [`Container::start`] on a Docker network of its own, for a scenario
    /// that cuts the broker off its network (`disconnect`): reconnected,
    /// it finds its address free on a network only it uses.
    pub async fn start_alone(image: &ImageRef) -> Result<Container> {
        Container::start_as(image, true, true).await
    }

    /// A container whose tenants ([`Tenants`]) serve scenarios
    /// ([`super::tenancy`]): nothing published (no `docker-proxy` per
    /// port), reached at its address on its own network; never restarted,
    /// so that address holds. Ready when its main port and its last
    /// tenant's both answer.
    pub async fn start_host(image: &ImageRef) -> Result<Container> {
        Container::start_as(image, false, false).await
    }

    async fn start_as(image: &ImageRef, published: bool, alone: bool) -> Result<Container> {
        let docker = docker().await?;
        ensure_image(&docker, image).await?;
        let known = image.known().unwrap_or(&UNKNOWN);
        let name = unique_name("mqtt-hil");
        let network = if alone {
            let network = format!("{name}-net");
            create_network(&docker, &network).await?;
            network
        } else {
            shared_network(&docker).await?
        };
        let mut c = Container {
            docker,
            image: image.clone(),
            known,
            name,
            network,
            owns_network: alone,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            published,
            created: false,
            paused: false,
            ready_after: Duration::ZERO,
        };
        match c.create().await {
            Ok(()) => Ok(c),
            Err(e) => {
                c.remove().await;
                Err(e)
            }
        }
    }

    /// The `docker create` for one attempt on `host_port`.
    fn spec(&self, host_port: Option<u16>) -> docker::CreateSpec {
        let strs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        docker::CreateSpec {
            name: self.name.clone(),
            image: self.image.to_string(),
            network: self.network.clone(),
            labels: labels(),
            hostname: None,
            env: strs(self.known.env),
            port: self.known.port,
            host_port,
            cmd: self.known.cmd.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Creates the container, writes its files, starts it.
    async fn create_and_start(&self, host_port: Option<u16>) -> std::result::Result<(), String> {
        let d = &self.docker;
        d.call(docker::create_args(&self.spec(host_port)), docker::CHANGE)
            .await
            .map_err(|e| e.to_string())?;
        if !self.known.files.is_empty() {
            let dir = tempfile::tempdir().map_err(|e| format!("a scratch folder: {e}"))?;
            for (i, (path, content)) in self.known.files.iter().enumerate() {
                let from = dir.path().join(i.to_string());
                std::fs::write(&from, content).map_err(|e| format!("writing {path}: {e}"))?;
                // Readable by whatever user the image runs as.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&from, std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| format!("writing {path}: {e}"))?;
                d.call(
                    docker::cp_args(&from.to_string_lossy(), &self.name, path),
                    docker::CHANGE,
                )
                .await
                .map_err(|e| e.to_string())?;
            }
        }
        d.call(docker::verb_args("start", &self.name), docker::CHANGE)
            .await
            .map_err(|e| e.to_string())
    }

    /// Creates and starts the container on a fixed free loopback port (so a
    /// restart keeps the address the proxy forwards to), then waits for
    /// MQTT.
    async fn create(&mut self) -> Result<()> {
        let mut last = String::new();
        for _ in 0..3 {
            let port = if self.published {
                Some(super::free_port()?)
            } else {
                None
            };
            remember(Created::Container(self.name.clone()));
            let started = tokio::time::Instant::now();
            match self.create_and_start(port).await {
                Ok(()) => {
                    self.created = true;
                    self.addr = match port {
                        Some(port) => SocketAddr::from(([127, 0, 0, 1], port)),
                        None => self.address_on_network().await?,
                    };
                    self.ready_after = self.wait_ready(started).await?;
                    if let Some(last) = self.last_tenant() {
                        self.wait_ready_at(last, started).await?;
                    }
                    return Ok(());
                }
                Err(e) => {
                    last = e;
                    // A port taken between our check and Docker's bind is
                    // worth another try; anything else is not.
                    self.force_remove_container().await;
                    if !docker::is_port_clash(&last) {
                        break;
                    }
                }
            }
        }
        Err(Error::env(
            format!("starting a container from {}: {last}", self.image),
            "see `docker logs`; check that the image runs (`make images` rebuilds ours)",
        ))
    }

    async fn address_on_network(&self) -> Result<SocketAddr> {
        match self.docker.ip(&self.name, &self.network).await {
            Ok(ip) => Ok(SocketAddr::from((ip, self.known.port))),
            Err(e) => Err(self.failed("finding the address of", e)),
        }
    }

    /// The address of the tenant with index `index` (see [`Tenants`]).
    pub fn tenant_addr(&self, index: u16) -> Option<SocketAddr> {
        let t = self.known.tenants.as_ref()?;
        (index < t.count).then(|| SocketAddr::new(self.addr.ip(), t.first_port + index))
    }

    fn last_tenant(&self) -> Option<SocketAddr> {
        let t = self.known.tenants.as_ref()?;
        (!self.published && t.count > 0)
            .then(|| self.tenant_addr(t.count - 1))
            .flatten()
    }

    async fn wait_ready(&self, started: tokio::time::Instant) -> Result<Duration> {
        self.wait_ready_at(self.addr, started).await
    }

    async fn wait_ready_at(
        &self,
        addr: SocketAddr,
        started: tokio::time::Instant,
    ) -> Result<Duration> {
        let deadline = self.known.startup.saturating_sub(started.elapsed());
        let watch = std::sync::Arc::new(Mutex::new(Exit::watch(&self.docker, &self.name)));
        let docker = self.docker.clone();
        let name = self.name.clone();
        let r = probe::wait_ready(addr, deadline, || {
            let docker = docker.clone();
            let name = name.clone();
            let watch = watch.clone();
            async move {
                if watch.lock().expect("watch").pending() {
                    return Ok(());
                }
                // `docker wait` returned: ask what happened.
                match docker.running(&name).await {
                    Ok(Some(false)) => Err("the container exited".to_string()),
                    Ok(_) => {
                        *watch.lock().expect("watch") = Exit::watch(&docker, &name);
                        Ok(())
                    }
                    Err(e) => Err(format!("the container is gone ({e})")),
                }
            }
        })
        .await;
        match r {
            Ok(_) => Ok(started.elapsed()),
            Err(why) => Err(Error::env(
                format!(
                    "{} ({}) did not become ready: {why}; its last output:\n{}",
                    self.image,
                    self.name,
                    self.log_tail(30).await
                ),
                "see the output above; `make images` rebuilds the local images",
            )),
        }
    }

    /// The container's last output lines (stdout and stderr as it wrote
    /// them), for error reports.
    pub async fn log_tail(&self, lines: usize) -> String {
        match self
            .docker
            .run_merged(&docker::logs_args(&self.name, lines), docker::QUICK)
            .await
        {
            Ok(text) => text,
            Err(e) => format!("(no output: {e})"),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn network(&self) -> &str {
        &self.network
    }

    pub fn describe(&self) -> String {
        format!(
            "{} in container {} on {}",
            self.image,
            self.name,
            self.addr()
        )
    }

    pub fn startup_allowance(&self) -> Duration {
        Container::startup_allowance_of(self.known)
    }

    pub fn promises(&self) -> Promises {
        self.known.promises
    }

    fn exists(&self) -> Result<()> {
        if self.created {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "container {} is already removed",
                self.name
            )))
        }
    }

    fn failed(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::env(
            format!("{what} container {}: {e}", self.name),
            "see `docker ps -a --filter name=mqtt-hil-`",
        )
    }

    /// One client call on this container, its failure phrased as `what`.
    async fn engine(&self, what: &str, args: Vec<String>, deadline: Duration) -> Result<()> {
        self.exists()?;
        self.docker
            .call(args, deadline)
            .await
            .map_err(|e| self.failed(what, e))
    }

    /// A lifecycle or network action from a scenario.
    pub async fn act(&mut self, action: &str) -> Result<()> {
        match action {
            // Graceful: the broker gets SIGTERM and saves what it persists.
            "stop" => self.stop().await,
            "start" => self.start_again().await,
            "restart" => {
                self.stop().await?;
                self.start_again().await
            }
            "kill" => self.kill().await,
            "kill_restart" => {
                self.kill().await?;
                self.start_again().await
            }
            // Frozen: sockets stay open, nothing is answered (SIGSTOP-like,
            // via the cgroup freezer).
            "pause" => {
                let args = docker::verb_args("pause", &self.name);
                self.engine("pausing", args, docker::CHANGE).await?;
                self.paused = true;
                Ok(())
            }
            "unpause" => {
                let args = docker::verb_args("unpause", &self.name);
                self.engine("unpausing", args, docker::CHANGE).await?;
                self.paused = false;
                Ok(())
            }
            // Cut from its network: its interface is gone, connections stall
            // and new ones are refused, as when a broker host loses its link.
            "disconnect" => {
                let args = docker::network_disconnect_args(&self.network, &self.name);
                self.engine("disconnecting", args, docker::CHANGE).await
            }
            "reconnect" => {
                let args = docker::network_connect_args(&self.network, &self.name);
                self.engine("reconnecting", args, docker::CHANGE).await?;
                self.wait_ready(tokio::time::Instant::now())
                    .await
                    .map(|_| ())
            }
            other => Err(Error::Usage(format!("unknown broker action `{other}`"))),
        }
    }

    async fn stop(&self) -> Result<()> {
        let grace = docker::STOP_GRACE_SECS;
        let args = docker::stop_args(&self.name, grace);
        self.engine(
            "stopping",
            args,
            docker::CHANGE + Duration::from_secs(grace.into()),
        )
        .await
    }

    /// SIGKILL: a crash, the broker saves nothing.
    async fn kill(&self) -> Result<()> {
        let args = docker::kill_args(&self.name, "SIGKILL");
        self.engine("killing", args, docker::CHANGE).await
    }

    async fn start_again(&mut self) -> Result<()> {
        let args = docker::verb_args("start", &self.name);
        self.engine("starting", args, docker::CHANGE).await?;
        self.wait_ready(tokio::time::Instant::now())
            .await
            .map(|_| ())
    }

    async fn force_remove_container(&self) {
        let _ = self
            .docker
            .call(
                docker::rm_args(std::slice::from_ref(&self.name)),
                docker::CHANGE,
            )
            .await;
        forget(&Created::Container(self.name.clone()));
    }

    /// Removes the container and its network, whatever state they are in.
    async fn remove(&mut self) {
        if std::mem::take(&mut self.created) && std::mem::take(&mut self.paused) {
            // Frozen containers cannot be stopped; thaw first.
            let _ = self
                .docker
                .call(docker::verb_args("unpause", &self.name), docker::CHANGE)
                .await;
        }
        self.force_remove_container().await;
        if !self.owns_network {
            return;
        }
        let _ = self
            .docker
            .call(
                docker::network_rm_args(std::slice::from_ref(&self.network)),
                docker::CHANGE,
            )
            .await;
        forget(&Created::Network(self.network.clone()));
    }

    pub async fn shutdown(mut self) {
        self.remove().await;
    }
}

/// Creates a Docker network, registered for [`sweep`] first.
async fn create_network(docker: &Docker, network: &str) -> Result<()> {
    // Remembered first: a signal during the call must still find it.
    remember(Created::Network(network.to_string()));
    if let Err(e) = docker
        .call(
            docker::network_create_args(network, &labels()),
            docker::CHANGE,
        )
        .await
    {
        let _ = docker
            .call(
                docker::network_rm_args(&[network.to_string()]),
                docker::QUICK,
            )
            .await;
        forget(&Created::Network(network.to_string()));
        return Err(Error::env(
            format!("creating Docker network {network}: {e}"),
            "check `docker network ls`; remove leftovers with `docker network prune`",
        ));
    }
    Ok(())
}

/// The network this process's containers share, made on first use and
/// removed by [`sweep`]. One network per container ran Docker out of
/// address pools: its defaults hold about 30 bridge networks, and the
/// full matrix, with 16 cells at once, the containers started ahead and
/// the shared RabbitMQ nodes, had more up at once (`could not find an
/// available, non-overlapping IPv4 address pool`, 105 cells of 675). A
/// container's network only matters to a scenario that cuts it
/// ([`Container::start_alone`]); containers on one network never talk to
/// each other. Also cheaper: a network's create and removal cost ~0.1
/// CPU-seconds of Docker's.
static SHARED_NETWORK: tokio::sync::Mutex<Option<String>> = tokio::sync::Mutex::const_new(None);

async fn shared_network(docker: &Docker) -> Result<String> {
    let mut shared = SHARED_NETWORK.lock().await;
    if let Some(name) = &*shared {
        return Ok(name.clone());
    }
    let name = format!("mqtt-hil-{}-net", std::process::id());
    create_network(docker, &name).await?;
    *shared = Some(name.clone());
    Ok(name)
}

/// The labels on everything the harness makes.
fn labels() -> Vec<(String, String)> {
    vec![("mqtt-hil".to_string(), "1".to_string())]
}

/// A `docker wait` on the container while readiness is awaited: it
/// returns when the container stops, so a dead broker is noticed between
/// two probes without asking the engine each time (a client call per
/// 20 ms probe would cost a core while RabbitMQ boots).
enum Exit {
    Waiting(tokio::process::Child),
    /// It returned, or could not run: ask the engine.
    Ask,
}

impl Exit {
    fn watch(docker: &Docker, name: &str) -> Exit {
        match docker.spawn(&docker::verb_args("wait", name)) {
            Ok(child) => Exit::Waiting(child),
            Err(_) => Exit::Ask,
        }
    }

    /// Whether the `docker wait` is still waiting (the container runs).
    fn pending(&mut self) -> bool {
        match self {
            Exit::Waiting(child) => matches!(child.try_wait(), Ok(None)),
            Exit::Ask => false,
        }
    }
}

/// Removes every container and network this process made that is still
/// there. Main calls it on every exit path, so Ctrl-C, a timeout or a panic
/// leaves nothing behind.
pub async fn sweep() {
    // One sweep at a time: a second signal's sweep (signals.rs) waits for
    // the one main runs instead of finding the list empty and exiting
    // while containers are still being removed.
    static SWEEPING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = SWEEPING.lock().await;
    let leftovers: Vec<Created> = std::mem::take(&mut *CREATED.lock().expect("registry"));
    if leftovers.is_empty() {
        return;
    }
    let docker = Docker::new();
    // One call for all containers, then one for all networks (a network
    // in use cannot go): each call costs a client start.
    let containers: Vec<String> = leftovers
        .iter()
        .filter_map(|c| match c {
            Created::Container(n) => Some(n.clone()),
            Created::Network(_) => None,
        })
        .collect();
    let networks: Vec<String> = leftovers
        .iter()
        .filter_map(|c| match c {
            Created::Network(n) => Some(n.clone()),
            Created::Container(_) => None,
        })
        .collect();
    if !containers.is_empty() {
        let _ = docker
            .call(docker::rm_args(&containers), docker::CHANGE)
            .await;
    }
    if !networks.is_empty() {
        let _ = docker
            .call(docker::network_rm_args(&networks), docker::CHANGE)
            .await;
    }
    // Made again by the next container this process starts.
    *SHARED_NETWORK.lock().await = None;
}

/// Names of the `mqtt-hil-` containers and networks on this engine (any
/// process's): what tests check is empty after a run.
pub async fn leftovers(docker: &Docker) -> Vec<String> {
    docker.list("mqtt-hil-").await
}

fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        let r = ImageRef::parse("mosquitto").unwrap();
        assert_eq!(r.to_string(), "mqtt-hil/mosquitto:latest");
        assert_eq!(r.profile(), "mosquitto");
        let r = ImageRef::parse("eclipse-mosquitto:2.0").unwrap();
        assert_eq!(
            (r.repo.as_str(), r.tag.as_str()),
            ("eclipse-mosquitto", "2.0")
        );
        assert_eq!(r.profile(), "mosquitto");
        let r = ImageRef::parse("registry:5000/team/broker").unwrap();
        assert_eq!(r.repo, "registry:5000/team/broker");
        assert_eq!(r.tag, "latest");
        assert_eq!(r.profile(), "broker");
        assert_eq!(ImageRef::parse("emqx/emqx:5.8").unwrap().profile(), "emqx");
        assert!(ImageRef::parse("").is_err());
    }

    #[test]
    fn every_known_image_has_one_entry() {
        let mut seen = std::collections::BTreeSet::new();
        for k in KNOWN {
            for r in k.repos {
                // An entry for every tag rules out any other for the repo.
                let tags: Vec<&str> = if k.tags.is_empty() {
                    vec!["*"]
                } else {
                    k.tags.to_vec()
                };
                for t in tags {
                    assert!(seen.insert((*r, t)), "{r}:{t} described twice");
                }
            }
        }
        for (r, _) in &seen {
            assert!(
                !seen.contains(&(r, "*")) || seen.iter().filter(|(x, _)| x == r).count() == 1,
                "{r} has an any-tag entry and tagged ones"
            );
        }
        for upstream in [
            "eclipse-mosquitto",
            "emqx/emqx",
            "hivemq/hivemq-ce",
            "vernemq/vernemq",
            "emqx/nanomq",
        ] {
            assert!(
                seen.contains(&(upstream, "*")),
                "{upstream} has no description"
            );
        }
        // Every recipe in ci/images/ is described, under its image's tags.
        let recipes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/images");
        for e in std::fs::read_dir(&recipes).unwrap() {
            let recipe = e.unwrap().path().join("recipe");
            let Ok(text) = std::fs::read_to_string(&recipe) else {
                continue;
            };
            let image = text
                .lines()
                .find_map(|l| l.strip_prefix("IMAGE="))
                .unwrap_or_else(|| panic!("{}: no IMAGE=", recipe.display()));
            let r = ImageRef::parse(image).unwrap();
            let k = r
                .known()
                .unwrap_or_else(|| panic!("{image} ({}) is not in KNOWN", recipe.display()));
            assert!(k.local, "{image}");
            assert_eq!(
                k.tags.first(),
                Some(&r.tag.as_str()),
                "{image}: the matrix runs the recipe's own tag"
            );
        }
    }

    #[test]
    fn versions_of_one_image_are_told_apart_by_tag() {
        let p = |s: &str| ImageRef::parse(s).unwrap();
        assert_eq!(p("mosquitto").profile(), "mosquitto");
        assert_eq!(p("mosquitto:2.0.11").profile(), "mosquitto");
        assert_eq!(p("mosquitto:2.0.21").profile(), "mosquitto-2.0.21");
        assert_eq!(p("rabbitmq:4.0").to_string(), "mqtt-hil/rabbitmq:4.0");
        assert_eq!(p("rabbitmq:4.0").profile(), "rabbitmq-4.0");
        assert!(p("rabbitmq:4.0").known().unwrap().mqtt5);
        assert!(!p("rabbitmq").known().unwrap().mqtt5);
        assert_eq!(p("nats:2.10").profile(), "nats-2.10");
        assert_eq!(p("amqtt").profile(), "amqtt-container");
        assert_eq!(p("amqtt:0.12.1").short(), "amqtt:0.12.1");
        assert_eq!(p("mosquitto").short(), "mosquitto");
        // A tag nobody described: configured as an unknown image.
        assert!(p("mosquitto:9.9").known().is_none());
    }
}
