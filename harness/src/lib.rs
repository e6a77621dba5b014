//! mqtt-hil: a hardware-in-the-loop test harness for MQTT devices and brokers.
//!
//! Data flows one way: a scenario file is loaded into a plan, the runner
//! drives a target (the device), a broker and a fault proxy, every
//! observation lands in one [`history::History`], and checkers, the trace
//! normalizer and the reports read that history.

pub mod history;
pub mod mqtt;
