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

    /// The transistor pair: RTS alone pulls EN low, DTR alone pulls GPIO0
    /// low. EN has an RC delay (the board's capacitor), so the chip leaves
    /// reset only when EN stays high across a wait, and the ROM samples
    /// GPIO0 then. Returns GPIO0 at that moment (true: boot from flash).
    fn sampled_gpio0(steps: &[Step]) -> Option<bool> {
        let (mut dtr, mut rts) = (false, false);
        let mut was_in_reset = false;
        let en = |dtr: bool, rts: bool| !rts || dtr;
        let io0 = |dtr: bool, rts: bool| !dtr || rts;
        for step in steps.iter().chain([&Step::Wait(Duration::from_millis(1))]) {
            match *step {
                Step::Dtr(on) => dtr = on,
                Step::Rts(on) => rts = on,
                Step::Wait(_) => {
                    if !en(dtr, rts) {
                        was_in_reset = true;
                    } else if was_in_reset {
                        return Some(io0(dtr, rts));
                    }
                }
            }
        }
        None
    }

    #[test]
    fn run_resets_into_the_application() {
        assert_eq!(
            sampled_gpio0(RUN),
            Some(true),
            "GPIO0 high: boot from flash"
        );
    }

    #[test]
    fn bootloader_holds_gpio0_low_while_en_rises() {
        assert_eq!(
            sampled_gpio0(BOOTLOADER),
            Some(false),
            "GPIO0 low: ROM serial loader"
        );
        let (mut dtr, mut rts) = (true, true);
        for s in BOOTLOADER {
            match *s {
                Step::Dtr(on) => dtr = on,
                Step::Rts(on) => rts = on,
                Step::Wait(_) => {}
            }
        }
        assert!(!dtr && !rts, "lines released after");
    }

    #[test]
    fn release_resets_nothing() {
        assert_eq!(sampled_gpio0(RELEASE), None);
    }

    struct Failing(i32, usize);

    impl ControlLines for Failing {
        fn set_dtr(&mut self, _: bool) -> std::io::Result<()> {
            self.1 += 1;
            Err(std::io::Error::from_raw_os_error(self.0))
        }
        fn set_rts(&mut self, on: bool) -> std::io::Result<()> {
            self.set_dtr(on)
        }
    }

    #[test]
    fn a_pty_reports_no_lines_rather_than_failing() {
        let mut p = Failing(libc::ENOTTY, 0);
        assert_eq!(run(&mut p, RUN), Outcome::NoLines);
        assert_eq!(p.1, 1, "stops at the first refusal");
        assert!(matches!(
            run(&mut Failing(libc::EIO, 0), RUN),
            Outcome::Failed(_)
        ));
        // serialport hands errno on as text only.
        let text = std::io::Error::other("Not a typewriter");
        assert!(no_lines(&text));
    }
}
