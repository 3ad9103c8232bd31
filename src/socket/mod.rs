//! The Phoenix Channels socket: frame codec, handshake, per-socket session,
//! frame routing, channel events and the push rate limit.

pub mod events;
pub mod frame;
pub mod limits;
pub mod longpoll;
pub mod router;
pub mod session;
pub mod upgrade;
