//! Files a run leaves behind for people and tools.

pub mod junit;
