//! REST handlers by resource, and the JSON views of records (api.md shapes).

pub mod admin;
pub mod attachments;
pub mod auth;
pub mod bots;
pub mod conversations;
pub mod hooks;
pub mod ignores;
pub mod me;
pub mod password;
pub mod rooms;
pub mod search;
pub mod users;
pub mod views;
