//! `no_watchdog_reset`: the board was never reset by a watchdog. A sketch
//! that stops yielding is reset by the ESP8266's soft watchdog (3.2 s) or,
//! with interrupts masked, by its hardware watchdog (~8 s); the device
//! then reboots and often reconnects as if nothing happened, so traffic
//! alone may look healthy. The target records each such reset as a board
//! event (`watchdog reset (soft WDT)`, `watchdog reset (hw WDT)`, from the
//! lines the board prints); every one is a violation (`watchdog-reset`).
//! A scenario that provokes one on purpose waits for it with
//! `expect = "board"` instead.

use super::{Checker, Verdict};
use crate::history::{EventKind, History};

/// What the targets call a watchdog reset (the start of the board event).
pub const WATCHDOG_RESET: &str = "watchdog reset";

pub struct NoWatchdogResetChecker;

impl Checker for NoWatchdogResetChecker {
    fn name(&self) -> &str {
        "no_watchdog_reset"
    }

    fn check(&self, history: &History) -> Verdict {
        let mut v = Verdict::new(self.name());
        let mut resets = 0;
        for ev in &history.events {
            let EventKind::Board { what } = &ev.kind else {
                continue;
            };
            if !what.starts_with(WATCHDOG_RESET) {
                continue;
            }
            resets += 1;
            v.fail(
                "watchdog-reset",
                format!(
                    "the board was reset by its watchdog at {}: {what} (the firmware stopped \
                     yielding; its UART log shows where)",
                    super::fmt_d(ev.at)
                ),
                vec![ev.seq],
            );
        }
        if resets == 0 {
            v.note("no watchdog reset");
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board(what: &str) -> EventKind {
        EventKind::Board { what: what.into() }
    }

    #[test]
    fn each_watchdog_reset_is_a_violation() {
        let h = History::build()
            .push(board("booted"))
            .push(board("watchdog reset (soft WDT)"))
            .push(board("watchdog reset (hw WDT)"))
            .finish();
        let v = NoWatchdogResetChecker.check(&h);
        assert_eq!(v.rules(), vec!["watchdog-reset", "watchdog-reset"], "{v:?}");
        assert!(v.violations[1].message.contains("hw WDT"), "{v:?}");
    }

    /// Resets the scenario asked for (a QMP reset, a power cut) and the
    /// UART merely mentioning the watchdog are not watchdog resets.
    #[test]
    fn scripted_resets_and_uart_lines_are_not() {
        let h = History::build()
            .push(board("booted"))
            .push(board("reset"))
            .push(board("power_cycle"))
            .push(EventKind::Uart {
                line: "watchdog reset (soft WDT) is what we avoid".into(),
            })
            .finish();
        let v = NoWatchdogResetChecker.check(&h);
        assert!(v.ok(), "{v:?}");
    }
}
