//! Broker control for a broker the harness does not run: shell commands
//! from the `[hooks]` table of its profile file, one per broker step
//! (`restart`, `stop`, `start`, `kill`, `pause`, `unpause`, `disconnect`,
//! `reconnect`), so that broker-fault scenarios run against it too. A
//! step without its hook is not available, and a scenario that needs it
//! is skipped with the hook to add.
//!
//! ```toml
//! [hooks]
//! restart = "systemctl restart mosquitto"
//! pause = "docker pause my-broker"
//! unpause = "docker unpause my-broker"
//! timeout = "30s"        # per hook, and for the broker to answer again
//! ```
//!
//! A hook runs as `sh -c COMMAND` in the current folder, in its own
//! process group, with `MQTT_HIL_BROKER_HOST`, `MQTT_HIL_BROKER_PORT`,
//! `MQTT_HIL_BROKER_ACTION` and `MQTT_HIL_PROFILE_DIR` (the profile file's
//! folder) set; its output goes to `hooks.log` in the scenario's work
//! folder (a file, not a pipe: a hook that leaves a broker running in the
//! background must not hold the harness up). It must exit 0 within the
//! timeout. The harness then checks the effect over MQTT itself: after
//! `restart`, `start`, `unpause` and `reconnect` the broker must answer a
//! CONNECT with a CONNACK, after `stop` and `kill` it must not; a step
//! whose effect did not happen fails the scenario.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};

/// The broker steps a hook can carry out.
pub const ACTIONS: &[&str] = &[
    "restart",
    "stop",
    "start",
    "kill",
    "pause",
    "unpause",
    "disconnect",
    "reconnect",
];

/// How long a hook may take, and the broker to answer after it, unless the
/// profile says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    pub restart: Option<String>,
    pub stop: Option<String>,
    pub start: Option<String>,
    /// kill -9 or the like: what persists across it is
    /// `persistence_across_kill`.
    pub kill: Option<String>,
    pub pause: Option<String>,
    pub unpause: Option<String>,
    pub disconnect: Option<String>,
    pub reconnect: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    pub timeout: Option<Duration>,
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    crate::scenario::duration::parse(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl Hooks {
    pub fn get(&self, action: &str) -> Option<&str> {
        match action {
            "restart" => self.restart.as_deref(),
            "stop" => self.stop.as_deref(),
            "start" => self.start.as_deref(),
            "kill" => self.kill.as_deref(),
            "pause" => self.pause.as_deref(),
            "unpause" => self.unpause.as_deref(),
            "disconnect" => self.disconnect.as_deref(),
            "reconnect" => self.reconnect.as_deref(),
            _ => None,
        }
        .filter(|c| !c.trim().is_empty())
    }

    /// The actions that have a hook.
    pub fn actions(&self) -> BTreeSet<String> {
        ACTIONS
            .iter()
            .filter(|a| self.get(a).is_some())
            .map(|a| a.to_string())
            .collect()
    }

    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }
}

/// Where and for whom hooks run.
#[derive(Clone, Debug)]
pub struct HookContext {
    pub hooks: Hooks,
    /// The profile file's folder (`MQTT_HIL_PROFILE_DIR`).
    pub profile_dir: PathBuf,
    /// The output of every hook of the scenario, appended.
    pub log: PathBuf,
}

/// What the broker must look like after an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Answers,
    Silent,
    Unchecked,
}

fn after(action: &str) -> After {
    match action {
        "restart" | "start" | "unpause" | "reconnect" => After::Answers,
        "stop" | "kill" => After::Silent,
        _ => After::Unchecked,
    }
}

impl HookContext {
    /// Carries out a broker step on the broker at `addr` (`host`:`port` as
    /// the user gave it), `kill_restart` as `kill` then `start`.
    pub async fn act(&self, action: &str, host: &str, addr: SocketAddr) -> Result<()> {
        if action == "kill_restart" {
            self.run_one("kill", host, addr).await?;
            return self.run_one("start", host, addr).await;
        }
        self.run_one(action, host, addr).await
    }

    async fn run_one(&self, action: &str, host: &str, addr: SocketAddr) -> Result<()> {
        let Some(command) = self.hooks.get(action) else {
            return Err(Error::Usage(format!(
                "broker step `{action}` has no hook in the profile's [hooks]"
            )));
        };
        let timeout = self.hooks.timeout();
        let failed = |what: String| {
            Error::Usage(format!(
                "hook `{action}` (`{command}`) {what}{}",
                self.log_tail()
            ))
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io(format!("opening {}", self.log.display()), e))?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .env("MQTT_HIL_BROKER_HOST", host)
            .env("MQTT_HIL_BROKER_PORT", addr.port().to_string())
            .env("MQTT_HIL_BROKER_ACTION", action)
            .env("MQTT_HIL_PROFILE_DIR", &self.profile_dir)
            .stdout(
                log.try_clone()
                    .map_err(|e| Error::io("duplicating the hook log", e))?,
            )
            .stderr(log);
        crate::process::guard(&mut cmd);
        let mut child = cmd
            .spawn()
            .map_err(|e| failed(format!("could not start: {e}")))?;
        // A hook cut short (its timeout, the scenario's, Ctrl-C) is killed
        // with everything it started; one that finished keeps what it
        // started (a broker it launched in the background).
        let group = GroupGuard(child.id());
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(failed(format!("could not be waited for: {e}"))),
            Err(_) => {
                return Err(failed(format!(
                    "did not finish within {} (the profile's [hooks] timeout)",
                    crate::scenario::duration::format(timeout)
                )));
            }
        };
        group.disarm();
        if !status.success() {
            return Err(failed(format!("failed ({status})")));
        }
        match after(action) {
            After::Answers => super::probe::wait_ready(addr, timeout, || async { Ok(()) })
                .await
                .map(|_| ())
                .map_err(|e| failed(format!("exited 0, but the broker did not come back: {e}"))),
            After::Silent => wait_silent(addr, timeout)
                .await
                .map_err(|e| failed(format!("exited 0, but {e}"))),
            After::Unchecked => Ok(()),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        if lines.is_empty() {
            return String::new();
        }
        let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
        format!("; its output ({}):\n    {tail}", self.log.display())
    }
}

/// Kills a hook's process group when dropped, unless disarmed.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: plain syscall on the process group this hook leads
            // (process::guard made it its own group).
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    }
}

/// Until the broker stops answering CONNECT (refused, closed, or silent).
async fn wait_silent(addr: SocketAddr, deadline: Duration) -> Result<(), String> {
    let started = tokio::time::Instant::now();
    while started.elapsed() < deadline {
        if super::probe::connack(addr, Duration::from_millis(500))
            .await
            .is_err()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "the broker on {addr} still answers CONNECT after {}",
        crate::scenario::duration::format(deadline)
    ))
}

/// The profile file's folder, for `MQTT_HIL_PROFILE_DIR`.
pub fn profile_dir(file: Option<&Path>) -> PathBuf {
    file.and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_parse_and_list_their_actions() {
        let h: Hooks = toml::from_str("restart = \"x\"\nstop = \"  \"\ntimeout = \"5s\"").unwrap();
        assert_eq!(h.actions(), BTreeSet::from(["restart".to_string()]));
        assert_eq!(h.timeout(), Duration::from_secs(5));
        let e = toml::from_str::<Hooks>("restrat = \"x\"").unwrap_err();
        assert!(e.to_string().contains("restrat"), "{e}");
        let e = toml::from_str::<Hooks>("timeout = \"soon\"").unwrap_err();
        assert!(e.to_string().contains("timeout"), "{e}");
    }

    #[tokio::test]
    async fn a_failing_hook_says_which_hook_and_quotes_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = HookContext {
            hooks: toml::from_str(
                "pause = \"echo cannot pause $MQTT_HIL_BROKER_PORT >&2; exit 3\"",
            )
            .unwrap(),
            profile_dir: dir.path().into(),
            log: dir.path().join("hooks.log"),
        };
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let e = ctx.act("pause", "127.0.0.1", addr).await.unwrap_err();
        let e = e.to_string();
        assert!(e.contains("hook `pause`"), "{e}");
        assert!(e.contains("exit status: 3"), "{e}");
        assert!(e.contains("cannot pause 9"), "{e}");
        let e = ctx.act("stop", "127.0.0.1", addr).await.unwrap_err();
        assert!(e.to_string().contains("no hook"), "{e}");
    }

    #[tokio::test]
    async fn a_hook_that_hangs_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child.pid");
        let ctx = HookContext {
            hooks: toml::from_str(&format!(
                "restart = \"sleep 30 & echo $! > {}; wait\"\ntimeout = \"300ms\"",
                marker.display()
            ))
            .unwrap(),
            profile_dir: dir.path().into(),
            log: dir.path().join("hooks.log"),
        };
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let e = ctx.act("restart", "127.0.0.1", addr).await.unwrap_err();
        assert!(e.to_string().contains("did not finish within 300ms"), "{e}");
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background `sleep` went with it (reaped by init, or a zombie
        // of the killed shell at worst: either way not running).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            if matches!(state, None | Some('Z') | Some('X')) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sleep {pid} still runs: {stat}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_restart_hook_whose_broker_does_not_come_back_fails() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens on the port: the hook "succeeds" but nothing answers.
        let port = crate::broker::free_port().unwrap();
        let ctx = HookContext {
            hooks: toml::from_str("restart = \"true\"\ntimeout = \"300ms\"").unwrap(),
            profile_dir: dir.path().into(),
            log: dir.path().join("hooks.log"),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let e = ctx.act("restart", "127.0.0.1", addr).await.unwrap_err();
        assert!(e.to_string().contains("did not come back"), "{e}");
        // ...and a stop hook on a port nobody answers is met at once.
        let ctx = HookContext {
            hooks: toml::from_str("stop = \"true\"").unwrap(),
            ..ctx
        };
        ctx.act("stop", "127.0.0.1", addr).await.unwrap();
    }
}
