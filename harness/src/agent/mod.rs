//! The agent line protocol (firmware/agent/PROTOCOL.md), sans-IO: commands
//! rendered as lines, device lines parsed into events. Every target that runs
//! the firmware's agent (host process, emulated board, serial board) shares
//! this, and the driver in [`driver`] is the only I/O around it.

pub mod driver;
mod line;

pub use line::*;
