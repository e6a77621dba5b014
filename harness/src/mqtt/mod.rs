//! MQTT for the harness: a packet model and a sans-IO codec of our own for
//! 3.1, 3.1.1 and 5.0. Our own because the harness must also frame and
//! forward packets it cannot fully decode and build packets no library would
//! (malformed ones, chosen packet ids, DUP on a first send).

mod packet;
pub use packet::*;

pub mod codec;
pub mod props;
pub mod topic;
