//! MQTT for the harness: a packet model and a sans-IO codec of our own for
//! 3.1, 3.1.1 and 5.0. Our own because the harness must also frame and
//! forward packets it cannot fully decode and build packets no library would
//! (malformed ones, chosen packet ids, DUP on a first send).

mod packet;
pub use packet::*;

pub mod codec;
pub mod props;
pub mod topic;

/// 5.0's statement that a will is not published while its will delay runs
/// and the client is back (MQTT-3.1.3-9 in 5.0's numbering; in 3.1.1's the
/// same id is about refusing a client id). Kept here, not in a 3.1.1
/// checker, so that statement coverage does not count it for 3.1.1.
pub const V5_WILL_BEFORE_DELAY: &str = "MQTT-3.1.3-9";
