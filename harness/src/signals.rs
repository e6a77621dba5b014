//! Cancellation by signal. SIGINT (Ctrl-C), SIGTERM (what CI cancellation,
//! `timeout` and `docker stop` send) and SIGHUP (a closed terminal) all mean
//! the same: stop what runs, write what was recorded, marked interrupted,
//! and exit 128 + the signal's number. A second signal means "now": the
//! containers and networks this process made are removed (they would
//! outlive it) and the process exits at once; child processes die with it
//! (each has a parent-death signal, [`crate::process::guard`]).

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// A signal that asked the run to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal(pub i32);

impl Signal {
    pub const INT: Signal = Signal(libc::SIGINT);
    pub const TERM: Signal = Signal(libc::SIGTERM);
    pub const HUP: Signal = Signal(libc::SIGHUP);

    /// Its name as `kill -l` spells it with the prefix: `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self.0 {
            libc::SIGINT => "SIGINT",
            libc::SIGTERM => "SIGTERM",
            libc::SIGHUP => "SIGHUP",
            _ => "a signal",
        }
    }

    /// The exit status a shell gives a process killed by it: 128 + number.
    pub fn exit_code(self) -> i32 {
        128 + self.0
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The process's stop request: resolves at the first of the three signals.
/// Cloning gives another waiter on the same request.
#[derive(Clone)]
pub struct Interrupts {
    rx: watch::Receiver<Option<Signal>>,
}

impl Interrupts {
    /// Takes over SIGINT, SIGTERM and SIGHUP for the rest of the process.
    /// Must be called inside the runtime.
    pub fn install() -> std::io::Result<Interrupts> {
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut hup = signal(SignalKind::hangup())?;
        let (tx, rx) = watch::channel(None);
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let got = tokio::select! {
                    _ = int.recv() => Signal::INT,
                    _ = term.recv() => Signal::TERM,
                    _ = hup.recv() => Signal::HUP,
                };
                seen += 1;
                if seen == 1 {
                    eprintln!("interrupted by {got}: stopping everything that was started (a second signal ends at once)");
                    let _ = tx.send(Some(got));
                    continue;
                }
                eprintln!("{got} again: removing containers and networks, then exiting now");
                // Bounded: a hung Docker engine must not keep us alive.
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    crate::broker::container::sweep(),
                )
                .await;
                std::process::exit(got.exit_code());
            }
        });
        Ok(Interrupts { rx })
    }

    /// The signal received so far, if any.
    pub fn received(&self) -> Option<Signal> {
        *self.rx.borrow()
    }

    /// Waits for the first signal (at once if one already came).
    pub async fn first(&mut self) -> Signal {
        loop {
            if let Some(s) = *self.rx.borrow_and_update() {
                return s;
            }
            if self.rx.changed().await.is_err() {
                // The watcher is gone (runtime shutting down): never.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_the_number() {
        assert_eq!(Signal::INT.exit_code(), 130);
        assert_eq!(Signal::TERM.exit_code(), 143);
        assert_eq!(Signal::HUP.exit_code(), 129);
        assert_eq!(Signal::TERM.to_string(), "SIGTERM");
    }
}
