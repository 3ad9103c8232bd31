//! Chat semantics independent of transport: who may use which topic, and
//! what posting, editing, reading and paging messages do.

pub mod mentions;
pub mod messages;
pub mod notify;
pub mod reactions;
pub mod topic;
pub mod views;
