//! Scenario files: the format (TOML, one scenario a file), the loader that
//! rejects bad files with file, line and field, and the checked model the
//! runner executes. The format is documented in `scenarios/README.md`.

pub mod duration;
mod fields;
mod load;
mod model;

pub use load::{discover, load, parse, CAPABILITIES};
pub use model::*;
