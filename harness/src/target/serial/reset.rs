//! Reset sequences for the auto-reset circuit of NodeMCU and Wemos D1 mini
//! boards, as data: two transistors cross-wire the adapter's DTR and RTS so
//! that RTS alone pulls EN (reset) low and DTR alone pulls GPIO0 low, while
//! both asserted pull nothing (a terminal that asserts both on open does not
//! hold the chip in reset). Sequences are plain steps, run by whatever owns
//! the port; a port without the lines (a pty answers ENOTTY) makes the
//! caller fall back to the bench's commands.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Assert (true) or release DTR.
    Dtr(bool),
    /// Assert (true) or release RTS.
    Rts(bool),
    Wait(Duration),
}

const fn ms(n: u64) -> Step {
    Step::Wait(Duration::from_millis(n))
}

/// Reset into the application: EN low for 100 ms with GPIO0 high.
pub const RUN: &[Step] = &[Step::Dtr(false), Step::Rts(true), ms(100), Step::Rts(false)];

/// Reset into the ROM's serial loader: EN low, then GPIO0 low while EN
/// rises (the ROM samples GPIO0 at reset), then GPIO0 released.
pub const BOOTLOADER: &[Step] = &[
    Step::Dtr(false),
    Step::Rts(true),
    ms(100),
    Step::Dtr(true),
    Step::Rts(false),
    ms(50),
    Step::Dtr(false),
];

/// Lines released: the chip runs (what to set right after opening a port).
pub const RELEASE: &[Step] = &[Step::Dtr(false), Step::Rts(false)];

/// What a port's control lines look like to the sequences above.
pub trait ControlLines {
    fn set_dtr(&mut self, on: bool) -> std::io::Result<()>;
    fn set_rts(&mut self, on: bool) -> std::io::Result<()>;
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The port has no modem lines (ENOTTY, e.g. a pty or some CDC adapters).
    NoLines,
    Failed(String),
}

/// Runs a sequence on a port, blocking for its waits (at most ~150 ms).
pub fn run(port: &mut dyn ControlLines, steps: &[Step]) -> Outcome {
    for step in steps {
        let r = match *step {
            Step::Dtr(on) => port.set_dtr(on),
            Step::Rts(on) => port.set_rts(on),
            Step::Wait(d) => {
                std::thread::sleep(d);
                Ok(())
            }
        };
        if let Err(e) = r {
            return if no_lines(&e) {
                Outcome::NoLines
            } else {
                Outcome::Failed(e.to_string())
            };
        }
    }
    Outcome::Done
}

/// ENOTTY (and EINVAL, which some USB CDC drivers answer) mean the port has
/// no settable modem lines. serialport passes errno on as text only (nix's
/// wording, "Not a typewriter", or libc's), hence the strings.
pub fn no_lines(e: &std::io::Error) -> bool {
    let text = e.to_string();
    matches!(e.raw_os_error(), Some(libc::ENOTTY) | Some(libc::EINVAL))
        || [
            "Inappropriate ioctl",
            "Not a typewriter",
            "Invalid argument",
        ]
        .iter()
        .any(|w| text.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Models the transistor pair: EN = !(RTS && !DTR), GPIO0 = !(DTR && !RTS).
    #[derive(Default)]
    struct Circuit {
        dtr: bool,
        rts: bool,
        /// (EN, GPIO0) after each change.
        pins: Vec<(bool, bool)>,
        fail: Option<i32>,
    }

    impl Circuit {
        fn change(&mut self) -> std::io::Result<()> {
            if let Some(errno) = self.fail {
                return Err(std::io::Error::from_raw_os_error(errno));
            }
            let en = !(self.rts && !self.dtr);
            let io0 = !(self.dtr && !self.rts);
            self.pins.push((en, io0));
            Ok(())
        }
    }

    impl ControlLines for Circuit {
        fn set_dtr(&mut self, on: bool) -> std::io::Result<()> {
            self.dtr = on;
            self.change()
        }
        fn set_rts(&mut self, on: bool) -> std::io::Result<()> {
            self.rts = on;
            self.change()
        }
    }

    /// GPIO0's level at the moment EN rises: what the ROM samples.
    fn boot_mode(c: &Circuit) -> Option<bool> {
        c.pins
            .windows(2)
            .find(|w| !w[0].0 && w[1].0)
            .map(|w| w[1].1)
    }

    #[test]
    fn run_resets_into_the_application() {
        let mut c = Circuit::default();
        assert_eq!(run(&mut c, RUN), Outcome::Done);
        assert_eq!(boot_mode(&c), Some(true), "GPIO0 high: boot from flash");
        assert_eq!(c.pins.last(), Some(&(true, true)));
    }

    #[test]
    fn bootloader_holds_gpio0_low_while_en_rises() {
        let mut c = Circuit::default();
        assert_eq!(run(&mut c, BOOTLOADER), Outcome::Done);
        assert_eq!(boot_mode(&c), Some(false), "GPIO0 low: ROM serial loader");
        assert_eq!(c.pins.last(), Some(&(true, true)), "lines released after");
    }

    #[test]
    fn a_pty_reports_no_lines_rather_than_failing() {
        let mut c = Circuit {
            fail: Some(libc::ENOTTY),
            ..Default::default()
        };
        assert_eq!(run(&mut c, RUN), Outcome::NoLines);
        let mut c = Circuit {
            fail: Some(libc::EIO),
            ..Default::default()
        };
        assert!(matches!(run(&mut c, RUN), Outcome::Failed(_)));
    }
}
