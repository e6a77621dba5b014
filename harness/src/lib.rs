//! mqtt-hil: a hardware-in-the-loop test harness for MQTT devices and brokers.
//!
//! Data flows one way: a scenario file is loaded into a plan, the runner
//! drives a target (the device), a broker and a fault proxy, every
//! observation lands in one [`history::History`], and checkers, the trace
//! normalizer and the reports read that history.

pub mod agent;
pub mod broker;
pub mod check;
pub mod client;
pub mod device;
pub mod emulator;
pub mod error;
pub mod esp;
pub mod exit_codes;
pub mod history;
pub mod matrix;
pub mod mqtt;
pub mod net;
pub mod observe;
pub mod process;
pub mod proxy;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod signals;
pub mod sketch;
pub mod splice;
pub mod target;
pub mod trace;
