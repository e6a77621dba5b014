//! Exit codes of the `mqtt-hil` binary: stable, other tools depend on them.

/// Every scenario passed (skipped ones are listed but do not fail the run).
pub const OK: i32 = 0;
/// At least one scenario failed or errored, or (`--repeat N`) gave
/// different verdicts in different runs (FLAKY). `mqtt-hil diff` and
/// `--baseline`: a cell regressed (did not fail in the baseline, fails
/// now) or a cell new since the baseline fails.
pub const FAILED: i32 = 1;
/// Invalid input (a bad scenario file, a bad flag, a matrix JSON that does
/// not parse or is of another format version) or a missing piece of the
/// environment (no mosquitto, no QEMU): nothing was judged.
pub const INVALID: i32 = 2;
/// Interrupted by Ctrl-C; everything started was stopped. Every stopping
/// signal gives 128 + its number: SIGINT 130, SIGTERM 143, SIGHUP 129
/// ([`crate::signals::Signal::exit_code`]).
pub const INTERRUPTED: i32 = 130;
