//! The Phoenix Channels socket: frame codec, handshake, per-socket session,
//! frame routing, channel events, the push rate limit, and the WebSocket
//! framing itself; LongPoll, and its routing between the nodes of a cluster.

pub mod events;
pub mod frame;
pub mod limits;
pub mod longpoll;
pub mod longpoll_route;
pub mod reply_order;
pub mod router;
pub mod session;
pub mod upgrade;
pub mod ws_codec;
pub mod ws_deflate;
pub mod ws_stream;
