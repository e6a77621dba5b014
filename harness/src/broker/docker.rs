//! The Docker engine through its own command-line client, `docker`: the
//! one program every machine with the engine has. The container backend
//! ([`super::container`]) needs a dozen engine calls; running the client
//! for each costs ~40 ms of CPU, where a native API client (bollard via
//! testcontainers) cost about 95 crates and 280 CPU-seconds of every cold
//! build.
//!
//! Two halves: what to run is pure (the `*_args` functions build argument
//! lists, the `parse_*` functions read the client's output, both tested
//! without a daemon); [`Docker`] runs them, each call under a deadline so a
//! hung engine cannot hang a run, and puts the client's stderr (the
//! engine's own explanation) into the error.

use std::ffi::OsString;
use std::fmt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

/// How long a call that only asks may take (ping, inspect, list) on a
/// loaded 2-core machine.
pub const QUICK: Duration = Duration::from_secs(15);
/// How long a call that changes something may take: creating or starting
/// a container, pausing it, a network call. Starting is what the old
/// client allowed 60 s for.
pub const CHANGE: Duration = Duration::from_secs(60);
/// The grace a graceful stop gives the broker (SIGTERM, then SIGKILL).
pub const STOP_GRACE_SECS: u32 = 10;

/// What a container is made of; [`create_args`] turns it into one
/// `docker create`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateSpec {
    pub name: String,
    /// `REPO:TAG`; never pulled (`--pull never`): the harness does not
    /// fetch images by surprise.
    pub image: String,
    pub network: String,
    pub labels: Vec<(String, String)>,
    pub hostname: Option<String>,
    pub env: Vec<(String, String)>,
    /// The port inside (TCP), published as `host_port` on 127.0.0.1 only:
    /// nothing outside this machine may reach the broker. `None`: not
    /// published; the harness reaches the container at its address on its
    /// own network (Docker's bridge, which only this machine routes to).
    pub port: u16,
    pub host_port: Option<u16>,
    /// Arguments to the image's entrypoint; empty: the image's own.
    pub cmd: Vec<String>,
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Asks the engine (not only the client) for its version: fails when no
/// engine answers.
pub fn version_args() -> Vec<String> {
    strings(&["version", "--format", "{{.Server.Version}}"])
}

pub fn image_inspect_args(image: &str) -> Vec<String> {
    strings(&["image", "inspect", "--format", "{{.Id}}", image])
}

pub fn create_args(s: &CreateSpec) -> Vec<String> {
    let mut a = strings(&["create", "--pull", "never", "--name", &s.name]);
    a.extend(["--network".into(), s.network.clone()]);
    for (k, v) in &s.labels {
        a.extend(["--label".into(), format!("{k}={v}")]);
    }
    if let Some(h) = &s.hostname {
        a.extend(["--hostname".into(), h.clone()]);
    }
    for (k, v) in &s.env {
        a.extend(["--env".into(), format!("{k}={v}")]);
    }
    a.extend(["--expose".into(), format!("{}/tcp", s.port)]);
    if let Some(host_port) = s.host_port {
        a.extend([
            "--publish".into(),
            format!("127.0.0.1:{host_port}:{}/tcp", s.port),
        ]);
    }
    // Everything after the image goes to the entrypoint, flags included.
    a.push(s.image.clone());
    a.extend(s.cmd.iter().cloned());
    a
}

/// Copies a file of the host into a created container (before it starts).
pub fn cp_args(from: &str, name: &str, to: &str) -> Vec<String> {
    strings(&["cp", from, &format!("{name}:{to}")])
}

/// `start`, `pause`, `unpause`, `wait`: a verb and the container.
pub fn verb_args(verb: &str, name: &str) -> Vec<String> {
    strings(&[verb, name])
}

pub fn stop_args(name: &str, grace_secs: u32) -> Vec<String> {
    strings(&["stop", "--time", &grace_secs.to_string(), name])
}

pub fn kill_args(name: &str, signal: &str) -> Vec<String> {
    strings(&["kill", "--signal", signal, name])
}

/// Removes containers whatever their state, with their anonymous volumes.
pub fn rm_args(names: &[String]) -> Vec<String> {
    let mut a = strings(&["rm", "--force", "--volumes"]);
    a.extend(names.iter().cloned());
    a
}

pub fn logs_args(name: &str, tail: usize) -> Vec<String> {
    strings(&["logs", "--tail", &tail.to_string(), name])
}

pub fn container_inspect_args(name: &str) -> Vec<String> {
    strings(&["container", "inspect", name])
}

pub fn network_create_args(name: &str, labels: &[(String, String)]) -> Vec<String> {
    let mut a = strings(&["network", "create"]);
    for (k, v) in labels {
        a.extend(["--label".into(), format!("{k}={v}")]);
    }
    a.push(name.into());
    a
}

pub fn network_connect_args(network: &str, name: &str) -> Vec<String> {
    strings(&["network", "connect", network, name])
}

pub fn network_disconnect_args(network: &str, name: &str) -> Vec<String> {
    strings(&["network", "disconnect", "--force", network, name])
}

pub fn network_rm_args(names: &[String]) -> Vec<String> {
    let mut a = strings(&["network", "rm"]);
    a.extend(names.iter().cloned());
    a
}

/// Containers (`ps`) or networks (`network ls`) whose name contains
/// `part`, one name a line.
pub fn list_args(networks: bool, part: &str) -> Vec<String> {
    let filter = format!("name={part}");
    if networks {
        strings(&[
            "network",
            "ls",
            "--filter",
            &filter,
            "--format",
            "{{.Name}}",
        ])
    } else {
        strings(&["ps", "--all", "--filter", &filter, "--format", "{{.Names}}"])
    }
}

/// `State.Running` of one container from `docker container inspect`:
/// `None` when the engine did not say.
pub fn parse_running(stdout: &[u8]) -> Result<Option<bool>, String> {
    let v: serde_json::Value = serde_json::from_slice(stdout)
        .map_err(|e| format!("unreadable `docker container inspect` output: {e}"))?;
    let first = v
        .as_array()
        .and_then(|a| a.first())
        .ok_or("`docker container inspect` listed no container")?;
    Ok(first.pointer("/State/Running").and_then(|r| r.as_bool()))
}

/// The container's IPv4 address on `network`, from `docker container
/// inspect`.
pub fn parse_ip(stdout: &[u8], network: &str) -> Result<std::net::Ipv4Addr, String> {
    let v: serde_json::Value = serde_json::from_slice(stdout)
        .map_err(|e| format!("unreadable `docker container inspect` output: {e}"))?;
    let ip = v
        .pointer("/0/NetworkSettings/Networks")
        .and_then(|n| n.get(network))
        .and_then(|n| n.get("IPAddress"))
        .and_then(|a| a.as_str())
        .ok_or_else(|| format!("`docker container inspect` gave no address on {network}"))?;
    ip.parse().map_err(|e| {
        format!("`docker container inspect` gave the address `{ip}` on {network}: {e}")
    })
}

/// Whether a failed create or start failed only because the host port got
/// taken between our check and the engine's bind: worth another port.
pub fn is_port_clash(message: &str) -> bool {
    message.contains("address already in use") || message.contains("port is already allocated")
}

/// Why a call of the client failed.
#[derive(Debug)]
pub enum CallError {
    /// The client could not be run at all (not installed: `NotFound`).
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// No answer within the deadline; the client was killed.
    Timeout { command: String, after: Duration },
    /// The client said no; `stderr` is the engine's explanation.
    Failed {
        command: String,
        status: ExitStatus,
        stderr: String,
    },
    /// It succeeded but its output is not what this module reads.
    Unreadable { command: String, why: String },
}

impl CallError {
    /// The `docker` program is not there (as opposed to failing).
    pub fn is_missing_client(&self) -> bool {
        matches!(self, CallError::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Spawn { program, source } => write!(f, "cannot run `{program}`: {source}"),
            CallError::Timeout { command, after } => {
                write!(f, "`{command}` did not finish within {}s", after.as_secs())
            }
            CallError::Failed {
                command,
                status,
                stderr,
            } if stderr.is_empty() => write!(f, "`{command}` failed ({status})"),
            CallError::Failed { stderr, .. } => f.write_str(stderr),
            CallError::Unreadable { command, why } => write!(f, "`{command}`: {why}"),
        }
    }
}

impl std::error::Error for CallError {}

/// The engine, reached through its client. Cheap to clone; connects
/// nothing until a call runs.
#[derive(Clone, Debug)]
pub struct Docker {
    program: OsString,
}

impl Default for Docker {
    fn default() -> Self {
        Docker::new()
    }
}

impl Docker {
    /// The `docker` on PATH; it reads DOCKER_HOST and the client's
    /// context as usual.
    pub fn new() -> Docker {
        Docker::with_program("docker")
    }

    pub fn with_program(program: impl Into<OsString>) -> Docker {
        Docker {
            program: program.into(),
        }
    }

    fn command(&self, args: &[String]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            // Its own process group: a Ctrl-C at the terminal reaches the
            // harness, which then cleans up through the client; the client
            // calls under way must not die of the same keypress.
            .process_group(0);
        c
    }

    fn describe(&self, args: &[String]) -> String {
        let mut s = self.program.to_string_lossy().into_owned();
        for a in args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    fn spawn_error(&self, source: std::io::Error) -> CallError {
        CallError::Spawn {
            program: self.program.to_string_lossy().into_owned(),
            source,
        }
    }

    /// Runs one call and returns its stdout.
    pub async fn run(&self, args: &[String], deadline: Duration) -> Result<Vec<u8>, CallError> {
        let child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        // On timeout the future, and with it the child, is dropped: killed.
        match tokio::time::timeout(deadline, child.wait_with_output()).await {
            Err(_) => Err(CallError::Timeout {
                command: self.describe(args),
                after: deadline,
            }),
            Ok(Err(e)) => Err(self.spawn_error(e)),
            Ok(Ok(o)) if o.status.success() => Ok(o.stdout),
            Ok(Ok(o)) => Err(CallError::Failed {
                command: self.describe(args),
                status: o.status,
                stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
            }),
        }
    }

    /// Runs one call for its effect only.
    pub async fn call(&self, args: Vec<String>, deadline: Duration) -> Result<(), CallError> {
        self.run(&args, deadline).await.map(|_| ())
    }

    /// Runs one call with stdout and stderr into one file, so lines keep
    /// the order they were written in (a container's log interleaves its
    /// two streams).
    pub async fn run_merged(
        &self,
        args: &[String],
        deadline: Duration,
    ) -> Result<String, CallError> {
        use std::io::{Read, Seek};
        let io = |e| self.spawn_error(e);
        let mut file = tempfile::tempfile().map_err(io)?;
        let out = file.try_clone().map_err(io)?;
        let err = file.try_clone().map_err(io)?;
        let mut child = self
            .command(args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io)?;
        let status = match tokio::time::timeout(deadline, child.wait()).await {
            Err(_) => {
                return Err(CallError::Timeout {
                    command: self.describe(args),
                    after: deadline,
                })
            }
            Ok(r) => r.map_err(io)?,
        };
        let mut text = String::new();
        file.rewind().map_err(io)?;
        file.read_to_string(&mut text).map_err(io)?;
        let text = text.trim_end().to_string();
        if status.success() {
            Ok(text)
        } else {
            Err(CallError::Failed {
                command: self.describe(args),
                status,
                stderr: text,
            })
        }
    }

    /// Starts a call and leaves it running (`docker wait`); killed when
    /// the handle is dropped.
    pub fn spawn(&self, args: &[String]) -> Result<Child, CallError> {
        self.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| self.spawn_error(e))
    }

    pub async fn ping(&self, deadline: Duration) -> Result<(), CallError> {
        self.call(version_args(), deadline).await
    }

    pub async fn inspect_image(&self, image: &str) -> Result<(), CallError> {
        self.call(image_inspect_args(image), QUICK).await
    }

    /// `Some(running)` from the engine's own state of the container.
    pub async fn running(&self, name: &str) -> Result<Option<bool>, CallError> {
        let out = self.run(&container_inspect_args(name), QUICK).await?;
        parse_running(&out).map_err(|why| CallError::Unreadable {
            command: self.describe(&container_inspect_args(name)),
            why,
        })
    }

    /// The container's IPv4 address on `network`.
    pub async fn ip(&self, name: &str, network: &str) -> Result<std::net::Ipv4Addr, CallError> {
        let args = container_inspect_args(name);
        let out = self.run(&args, QUICK).await?;
        parse_ip(&out, network).map_err(|why| CallError::Unreadable {
            command: self.describe(&args),
            why,
        })
    }

    /// Names of the containers and networks whose name contains `part`.
    pub async fn list(&self, part: &str) -> Vec<String> {
        let mut out = Vec::new();
        for networks in [false, true] {
            if let Ok(o) = self.run(&list_args(networks, part), QUICK).await {
                out.extend(
                    String::from_utf8_lossy(&o)
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> CreateSpec {
        CreateSpec {
            name: "mqtt-hil-7-0".into(),
            image: "nats:2.10".into(),
            network: "mqtt-hil-7-0-net".into(),
            labels: vec![("mqtt-hil".into(), "1".into())],
            hostname: None,
            env: vec![("A".into(), "x=y z".into())],
            port: 1883,
            host_port: Some(40001),
            cmd: vec!["-c".into(), "/mqtt-hil.conf".into()],
        }
    }

    #[test]
    fn a_container_is_created_on_loopback_only_and_never_pulled() {
        let a = create_args(&spec());
        assert_eq!(
            a,
            [
                "create",
                "--pull",
                "never",
                "--name",
                "mqtt-hil-7-0",
                "--network",
                "mqtt-hil-7-0-net",
                "--label",
                "mqtt-hil=1",
                "--env",
                "A=x=y z",
                "--expose",
                "1883/tcp",
                "--publish",
                "127.0.0.1:40001:1883/tcp",
                "nats:2.10",
                "-c",
                "/mqtt-hil.conf",
            ]
        );
    }

    #[test]
    fn a_container_reached_on_its_network_publishes_nothing() {
        let a = create_args(&CreateSpec {
            host_port: None,
            ..spec()
        });
        assert!(!a
            .iter()
            .any(|x| x.contains("publish") || x.contains("127.0.0.1")));
        assert!(a.windows(2).any(|w| w == ["--network", "mqtt-hil-7-0-net"]));
    }

    #[test]
    fn the_address_on_a_network_is_read_from_inspect() {
        let out = br#"[{"NetworkSettings": {"Networks": {
            "other": {"IPAddress": "10.1.0.9"},
            "mqtt-hil-7-0-net": {"IPAddress": "172.19.0.2"}}}}]"#;
        assert_eq!(
            parse_ip(out, "mqtt-hil-7-0-net").unwrap(),
            std::net::Ipv4Addr::new(172, 19, 0, 2)
        );
        // Not on that network (disconnected), or no address yet.
        assert!(parse_ip(out, "gone")
            .unwrap_err()
            .contains("no address on gone"));
        let empty = br#"[{"NetworkSettings": {"Networks": {"n": {"IPAddress": ""}}}}]"#;
        assert!(parse_ip(empty, "n").is_err());
        assert!(parse_ip(b"not json", "n").is_err());
    }

    #[test]
    fn a_hostname_is_set_when_given() {
        let s = CreateSpec {
            hostname: Some("rabbit".into()),
            cmd: vec![],
            env: vec![],
            ..spec()
        };
        let a = create_args(&s);
        let at = a.iter().position(|x| x == "--hostname").unwrap();
        assert_eq!(a[at + 1], "rabbit");
        // The image is last when there is no command: the entrypoint's own.
        assert_eq!(a.last().unwrap(), "nats:2.10");
        assert!(!create_args(&spec()).contains(&"--hostname".to_string()));
    }

    #[test]
    fn the_other_calls() {
        assert_eq!(stop_args("c", 10), ["stop", "--time", "10", "c"]);
        assert_eq!(
            kill_args("c", "SIGKILL"),
            ["kill", "--signal", "SIGKILL", "c"]
        );
        assert_eq!(
            rm_args(&["a".into(), "b".into()]),
            ["rm", "--force", "--volumes", "a", "b"]
        );
        assert_eq!(
            network_create_args("n", &[("mqtt-hil".into(), "1".into())]),
            ["network", "create", "--label", "mqtt-hil=1", "n"]
        );
        assert_eq!(
            network_disconnect_args("n", "c"),
            ["network", "disconnect", "--force", "n", "c"]
        );
        assert_eq!(
            network_connect_args("n", "c"),
            ["network", "connect", "n", "c"]
        );
        assert_eq!(logs_args("c", 30), ["logs", "--tail", "30", "c"]);
        assert_eq!(
            cp_args("/tmp/f", "c", "/x.conf"),
            ["cp", "/tmp/f", "c:/x.conf"]
        );
        assert_eq!(
            list_args(true, "mqtt-hil-"),
            [
                "network",
                "ls",
                "--filter",
                "name=mqtt-hil-",
                "--format",
                "{{.Name}}"
            ]
        );
        assert_eq!(
            list_args(false, "mqtt-hil-"),
            [
                "ps",
                "--all",
                "--filter",
                "name=mqtt-hil-",
                "--format",
                "{{.Names}}"
            ]
        );
    }

    #[test]
    fn inspect_output_says_whether_it_runs() {
        let running =
            br#"[{"Id":"abc","State":{"Status":"running","Running":true,"Paused":false}}]"#;
        assert_eq!(parse_running(running), Ok(Some(true)));
        let exited = br#"[{"State":{"Status":"exited","Running":false,"ExitCode":3}}]"#;
        assert_eq!(parse_running(exited), Ok(Some(false)));
        assert_eq!(parse_running(br#"[{"Id":"abc"}]"#), Ok(None));
        assert!(parse_running(b"[]").is_err());
        assert!(parse_running(b"Error: no such container").is_err());
    }

    #[test]
    fn only_a_taken_port_is_worth_another_try() {
        assert!(is_port_clash(
            "Error response from daemon: driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:40001 failed: port is already allocated"
        ));
        assert!(is_port_clash(
            "listen tcp4 127.0.0.1:40001: bind: address already in use"
        ));
        assert!(!is_port_clash(
            "Error response from daemon: No such image: x:1"
        ));
    }

    /// A client that is not installed is told apart from one that fails.
    #[tokio::test]
    async fn a_missing_client_is_recognised() {
        let d = Docker::with_program("/nonexistent/bin/docker");
        let e = d.ping(QUICK).await.unwrap_err();
        assert!(e.is_missing_client(), "{e}");
        assert!(e.to_string().contains("/nonexistent/bin/docker"), "{e}");
        // A program that runs and says no: its stderr is the error.
        let d = Docker::with_program("sh");
        let e = d
            .run(
                &strings(&["-c", "echo out; echo 'engine says no' >&2; exit 3"]),
                QUICK,
            )
            .await
            .unwrap_err();
        assert!(!e.is_missing_client());
        assert_eq!(e.to_string(), "engine says no");
        // One that hangs is killed at the deadline.
        let e = d
            .run(&strings(&["-c", "sleep 30"]), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(e, CallError::Timeout { .. }), "{e}");
    }

    /// Both streams land in one text, in the order they were written.
    #[tokio::test]
    async fn merged_output_keeps_the_order() {
        let d = Docker::with_program("sh");
        let t = d
            .run_merged(&strings(&["-c", "echo 1; echo 2 >&2; echo 3"]), QUICK)
            .await
            .unwrap();
        assert_eq!(t, "1\n2\n3");
    }
}
