//! The Phoenix Channels socket: frame codec, upgrade, and per-socket sessions.

pub mod frame;
