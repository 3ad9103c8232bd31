//! The local admin socket: how the `confab user|room|bot|hook|reindex|export`
//! commands reach a running server on the same machine. The server listens on
//! `<data_dir>/admin.sock` (mode 0600, same OS user only); the CLI sends one
//! JSON request line and reads JSON response lines back.
//!
//! - [`listener`]: the server side (bind, peer check, run the command).
//! - [`client`]: the CLI side (connect, send, print the reply).
//!
//! Protocol: the client writes one [`Request`] as a JSON line. The server
//! answers with zero or more `{"chunk": "..."}` lines (the export, streamed)
//! and one final [`Reply`] line `{"exit": N, "stdout": "...", "stderr": "..."}`
//! holding exactly what the offline command would have printed and its exit
//! code.

pub mod client;
pub mod listener;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

/// Longest request line accepted (passwords are at most 1024 characters).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// `<data_dir>/admin.sock`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// One store command, as parsed by the CLI. Passwords read from stdin travel
/// in the request; `None` means "generate one" (printed in the reply).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    UserAdd {
        username: String,
        admin: bool,
        email: Option<String>,
        display_name: Option<String>,
        password: Option<String>,
    },
    UserPasswd {
        username: String,
        password: Option<String>,
    },
    UserList,
    UserDisable {
        username: String,
    },
    UserEnable {
        username: String,
    },
    RoomAdd {
        name: String,
        private: bool,
        description: Option<String>,
    },
    RoomList,
    BotAdd {
        name: String,
        display_name: Option<String>,
        webhook_url: Option<String>,
        all_messages: bool,
    },
    BotList,
    BotKey {
        name: String,
    },
    BotDelete {
        name: String,
    },
    BotLimit {
        name: String,
        /// Messages a second, or `default`; `None` shows the limit.
        rate: Option<String>,
        burst: Option<u32>,
    },
    HookAdd {
        room: String,
        as_bot: Option<String>,
    },
    HookList {
        room: String,
    },
    HookDelete {
        room: String,
        id: String,
    },
    Reindex,
    Export,
}

/// One line of the server's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Frame {
    /// A piece of the export (whole JSON Lines records).
    Chunk { chunk: String },
    /// The end: what to print and the exit code.
    Reply(Reply),
}

/// The final answer: the command's output and exit code.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    pub exit: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Reply {
    /// A command's outcome as the offline command prints it: stdout text on
    /// success; `confab: LINE` on stderr and exit 1 on failure.
    pub fn from_outcome(outcome: Result<String, String>) -> Reply {
        match outcome {
            Ok(stdout) => Reply {
                exit: 0,
                stdout,
                stderr: String::new(),
            },
            Err(line) => Reply::failure(&line),
        }
    }

    /// Exit 1 with `confab: LINE` on stderr.
    pub fn failure(line: &str) -> Reply {
        Reply {
            exit: 1,
            stdout: String::new(),
            stderr: format!("confab: {line}\n"),
        }
    }
}

impl Request {
    /// The command's name for the log (never its arguments: passwords).
    pub fn name(&self) -> &'static str {
        match self {
            Request::UserAdd { .. } => "user_add",
            Request::UserPasswd { .. } => "user_passwd",
            Request::UserList => "user_list",
            Request::UserDisable { .. } => "user_disable",
            Request::UserEnable { .. } => "user_enable",
            Request::RoomAdd { .. } => "room_add",
            Request::RoomList => "room_list",
            Request::BotAdd { .. } => "bot_add",
            Request::BotList => "bot_list",
            Request::BotKey { .. } => "bot_key",
            Request::BotDelete { .. } => "bot_delete",
            Request::BotLimit { .. } => "bot_limit",
            Request::HookAdd { .. } => "hook_add",
            Request::HookList { .. } => "hook_list",
            Request::HookDelete { .. } => "hook_delete",
            Request::Reindex => "reindex",
            Request::Export => "export",
        }
    }
}
