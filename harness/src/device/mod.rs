//! Device descriptions: a TOML file telling what a user's device does on
//! the wire — the topics it publishes (and where a reading's number is),
//! the commands it obeys and how it shows it did, its keep alive, will and
//! buffer limits — and the generic suite (`scenarios/device/`) those
//! descriptions fill in, so one suite judges any device. The format is
//! documented in `scenarios/device/README.md`.

mod load;
mod model;
pub mod suite;

pub use load::{load, parse};
pub use model::*;
