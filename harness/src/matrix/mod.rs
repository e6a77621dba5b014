//! The cross-broker conformance matrix: every scenario against every
//! broker, one verdict per cell, printed as one table (terminal, Markdown,
//! JSON) and one JUnit file.
//!
//! The parts: [`plan`] decides which brokers this machine can run and
//! which cells this runner takes (`--partition K/N`); [`run`] runs the
//! cells; [`results`] is the JSON form that partitions write and `mqtt-hil
//! merge` joins; [`table`] renders it; [`diff`] compares two results
//! (`mqtt-hil diff`, `--baseline`) and [`diff_report`] renders that. Deviations are per broker profile
//! (`scenarios/deviations/<profile>.toml`): a cell that fails exactly as
//! declared is DEV, a declared deviation that did not happen is STALE (a
//! failure, so the file stays true).

pub mod diff;
pub mod diff_report;
pub mod plan;
pub mod results;
mod run;
pub mod table;

pub use plan::{available_brokers, Cell, Partition};
pub use results::{CellResult, Matrix, Verdict};
pub use run::{run, MatrixConfig};
