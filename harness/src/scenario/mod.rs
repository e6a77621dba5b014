//! Scenario files: the format (TOML, one scenario a file), the loader that
//! rejects bad files with file, line and field, and the checked model the
//! runner executes. The format is documented in `scenarios/README.md`.

pub mod duration;
pub(crate) mod fields;
mod load;
mod model;

pub use fields::closest as closest_word;
pub use load::{
    discover, load, load_checks, parse, parse_network_command, parse_with, CheckFile, Expander,
    Part, CAPABILITIES, NETWORK_FAMILIES,
};
pub use model::*;
