//! The server's settings: built-in defaults, loading from `config.toml`,
//! `CONFAB_*` environment variables and command-line overrides, and
//! validation.
//!
//! Precedence, lowest to highest:
//!
//! 1. built-in defaults ([`Config::default`]),
//! 2. the config file (`--config FILE`, else `./config.toml` if present),
//! 3. environment variables `CONFAB_<KEY>`, the key in upper case
//!    (`CONFAB_LISTEN`, `CONFAB_DATA_DIR`, ...),
//! 4. command-line flags ([`Overrides`]).
//!
//! All keys are flat (no TOML tables). An unknown key in the file is an error.
//! In the environment, list values (`allowed_origins`) are comma-separated and
//! booleans accept `true`/`false`, `1`/`0`, `yes`/`no`. The secrets
//! (`jwt_secret`, `metrics_token`, `database_url`) can also be read from a
//! file named by `CONFAB_<KEY>_FILE`; setting both forms is an error.
//! `database_url` is shown only with its password replaced (see
//! [`redact_database_url`]).
//!
//! An unknown `CONFAB_*` environment variable is not an error: [`Config::load`]
//! ignores it, and [`unknown_env_keys`] lists such variables so the caller can
//! log a warning. `CONFAB_LOG` is reserved for the log filter and is never
//! reported.
//!
//! Every error is a [`ConfigError`] whose `Display` is one line naming the
//! source, the key, the bad value (never a secret) and the reason.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::num::{IntErrorKind, ParseIntError};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

/// Name of the redb file inside `data_dir`.
pub const STORE_FILE: &str = "confab.redb";

/// The file read by [`ConfigSource::DefaultIfPresent`], relative to the
/// working directory.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

/// Prefix of every environment variable this module reads.
pub const ENV_PREFIX: &str = "CONFAB_";

/// `CONFAB_*` variables that are read elsewhere and are not config keys.
const RESERVED_ENV: &[&str] = &[
    "CONFAB_LOG",
    crate::fault::PANIC_EVENT_ENV,
    crate::fault::CORES_ENV,
    crate::fault::LINK_SECS_ENV,
];

/// Keys holding secrets: redacted in `Debug`, never echoed in errors, and also
/// settable as `CONFAB_<KEY>_FILE`.
const SECRET_KEYS: &[&str] = &[
    "jwt_secret",
    "metrics_token",
    "database_url",
    "smtp_password",
];

/// Every key, in the order of the struct and of the shipped `config.toml`.
const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "log_level",
    "log_format",
    "registration",
    "jwt_secret",
    "token_ttl_secs",
    "allowed_origins",
    "heartbeat_timeout_secs",
    "shutdown_grace_secs",
    "max_http_body_bytes",
    "header_read_timeout_secs",
    "max_frame_bytes",
    "websocket_compression",
    "max_body_chars",
    "push_burst",
    "push_refill_per_sec",
    "max_topics_per_socket",
    "max_sockets_per_user",
    "outbound_queue_frames",
    "presence_state_limit",
    "join_history_limit",
    "login_max_failures",
    "login_window_secs",
    "argon2_memory_kib",
    "argon2_iterations",
    "argon2_parallelism",
    "store_cache_mib",
    "search_index",
    "database_url",
    "database_pool_size",
    "metrics_token",
    "trust_forwarded_for",
    "webhook_allowed_hosts",
    "webhook_retry_hours",
    "webhook_retry_base_ms",
    "webhook_max_in_flight",
    "webhook_ca_file",
    "smtp_url",
    "smtp_password",
    "mail_from",
    "public_url",
    "welcome_link_hours",
    "reset_link_minutes",
    "nats_url",
    "node_name",
    "cluster_heartbeat_ms",
    "cluster_down_after",
];

/// A key set in the config file and the 1-based line where it is set.
type KeyLine = (&'static str, usize);

/// Minimum length of a configured `jwt_secret`, in bytes.
const MIN_SECRET_BYTES: usize = 32;

/// The server's settings. Field names are the TOML keys.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on, as IP:port (must parse as a socket address).
    pub listen: String,
    /// Data directory; created on first run; holds `confab.redb`.
    pub data_dir: PathBuf,
    /// Tracing filter directive, e.g. "info", "debug", "confab=debug,info".
    pub log_level: String,
    /// Log line format: text or json.
    pub log_format: LogFormat,
    /// Whether `POST /api/register` is allowed: open or closed.
    pub registration: Registration,
    /// HS256 secret for signing tokens; empty = generate one once and keep it
    /// in the store. If set, at least 32 bytes.
    pub jwt_secret: String,
    /// Token lifetime in seconds (default 14 days); at least 1.
    pub token_ttl_secs: u64,
    /// WebSocket `Origin` allow-list; empty = same origin only; `["*"]` = any.
    pub allowed_origins: Vec<String>,
    /// Close a socket that has been silent this many seconds; at least 1.
    pub heartbeat_timeout_secs: u64,
    /// Seconds to drain connections on SIGTERM/SIGINT; 1 to 300.
    pub shutdown_grace_secs: u64,
    /// Larger request bodies get 413; at least 1024.
    pub max_http_body_bytes: usize,
    /// Seconds a client may take to send the request headers; at least 1.
    pub header_read_timeout_secs: u64,
    /// Largest WebSocket frame accepted, in bytes; at least 1024.
    pub max_frame_bytes: usize,
    /// Offer permessage-deflate (RFC 7692) to WebSocket clients that ask.
    pub websocket_compression: bool,
    /// Longest message body, in characters; at least 1.
    pub max_body_chars: usize,
    /// Token-bucket burst of client pushes per socket; at least 1.
    pub push_burst: u32,
    /// Token-bucket refill of client pushes per socket per second; at least 1.
    pub push_refill_per_sec: u32,
    /// Most topics one socket may join; at least 1.
    pub max_topics_per_socket: usize,
    /// Most open sockets per user; at least 1.
    pub max_sockets_per_user: usize,
    /// Outbound queue per socket, in frames; a socket whose queue fills is
    /// closed as a slow consumer; at least 16.
    pub outbound_queue_frames: usize,
    /// Most presences (one per socket) listed in the `presence_state` a
    /// joining socket receives (the most recently joined); 0 = all.
    pub presence_state_limit: usize,
    /// Messages in a join reply without `last_seq`; 1 to 1000.
    pub join_history_limit: usize,
    /// Failed logins per IP or per username within the window before 429;
    /// at least 1.
    pub login_max_failures: u32,
    /// Length of the failed-login window in seconds; at least 1.
    pub login_window_secs: u64,
    /// argon2id memory cost m, in KiB; at least 8192.
    pub argon2_memory_kib: u32,
    /// argon2id iterations t; at least 1.
    pub argon2_iterations: u32,
    /// argon2id parallelism p; 1 to 16.
    pub argon2_parallelism: u32,
    /// redb page cache in MiB; at least 1.
    pub store_cache_mib: usize,
    /// Keep the full-text index of messages (`GET /api/search`) up to date.
    pub search_index: bool,
    /// Empty = the embedded store in `data_dir`; else a PostgreSQL URL
    /// `postgres://user[:password]@host:port/db`. A secret: shown only with
    /// the password redacted.
    pub database_url: String,
    /// PostgreSQL connections per node; at least 1.
    pub database_pool_size: usize,
    /// If set, `/metrics` requires `Authorization: Bearer <metrics_token>`;
    /// empty = `/metrics` is open.
    pub metrics_token: String,
    /// Use `X-Forwarded-For` for client IPs (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Hosts (names or IPs) and CIDR networks outgoing webhooks may reach
    /// even when private; by default loopback, link-local, private and
    /// unspecified addresses are refused.
    pub webhook_allowed_hosts: Vec<String>,
    /// Hours an undelivered outgoing webhook event is retried; at least 1.
    pub webhook_retry_hours: u64,
    /// First retry delay of an outgoing webhook in milliseconds, doubled per
    /// attempt (with jitter, at most one hour); at least 1.
    pub webhook_retry_base_ms: u64,
    /// Most outgoing webhook requests in flight per bot; at least 1.
    pub webhook_max_in_flight: usize,
    /// A PEM bundle of certificates trusted for `https://` webhooks besides
    /// the public roots (e.g. a private CA); empty = the public roots only.
    pub webhook_ca_file: String,
    /// Outgoing mail server; empty = no mail. `smtps://` (TLS), `smtp://`
    /// (STARTTLS, required) or `smtp+plain://` (no TLS, no credentials).
    pub smtp_url: String,
    /// Password for the `smtp_url` user. A secret.
    pub smtp_password: String,
    /// The `From:` of outgoing mail, e.g. `Confab <chat@example.com>`.
    pub mail_from: String,
    /// Base URL of the web UI for links in mail, e.g. `https://chat.example.com`.
    pub public_url: String,
    /// Validity of the link in a welcome mail, in hours; at least 1.
    pub welcome_link_hours: u64,
    /// Validity of a password-reset link, in minutes; at least 1.
    pub reset_link_minutes: u64,
    /// NATS servers of the cluster bus (`nats://host:port`, several for
    /// failover); empty = a single node. Needs `database_url` and
    /// `jwt_secret`, shared by every node.
    pub nats_url: Vec<String>,
    /// This node's name in the cluster; empty = host name and process id.
    pub node_name: String,
    /// Milliseconds between a node's presence heartbeats.
    pub cluster_heartbeat_ms: u64,
    /// Heartbeats a node may miss before it counts as down and its
    /// presences leave.
    pub cluster_down_after: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:4000".to_owned(),
            data_dir: PathBuf::from("./data"),
            log_level: "info".to_owned(),
            log_format: LogFormat::Text,
            registration: Registration::Open,
            jwt_secret: String::new(),
            token_ttl_secs: 14 * 24 * 60 * 60,
            allowed_origins: Vec::new(),
            heartbeat_timeout_secs: 60,
            shutdown_grace_secs: 8,
            max_http_body_bytes: 1024 * 1024,
            header_read_timeout_secs: 10,
            max_frame_bytes: 64 * 1024,
            websocket_compression: false,
            max_body_chars: 4000,
            push_burst: 50,
            push_refill_per_sec: 20,
            max_topics_per_socket: 100,
            max_sockets_per_user: 20,
            outbound_queue_frames: 1024,
            presence_state_limit: 1000,
            join_history_limit: 50,
            login_max_failures: 5,
            login_window_secs: 300,
            argon2_memory_kib: 19456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            store_cache_mib: 64,
            search_index: true,
            database_url: String::new(),
            database_pool_size: 16,
            metrics_token: String::new(),
            trust_forwarded_for: false,
            webhook_allowed_hosts: Vec::new(),
            webhook_retry_hours: 24,
            webhook_retry_base_ms: 1000,
            webhook_max_in_flight: 4,
            webhook_ca_file: String::new(),
            smtp_url: String::new(),
            smtp_password: String::new(),
            mail_from: String::new(),
            public_url: String::new(),
            welcome_link_hours: 72,
            reset_link_minutes: 60,
            nats_url: Vec::new(),
            node_name: String::new(),
            cluster_heartbeat_ms: 1000,
            cluster_down_after: 5,
        }
    }
}

/// Shows a secret as `<redacted>` unless it is empty.
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("\"\"")
        } else {
            f.write_str("<redacted>")
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let Config {
            listen,
            data_dir,
            log_level,
            log_format,
            registration,
            jwt_secret,
            token_ttl_secs,
            allowed_origins,
            heartbeat_timeout_secs,
            shutdown_grace_secs,
            max_http_body_bytes,
            header_read_timeout_secs,
            max_frame_bytes,
            websocket_compression,
            max_body_chars,
            push_burst,
            push_refill_per_sec,
            max_topics_per_socket,
            max_sockets_per_user,
            outbound_queue_frames,
            presence_state_limit,
            join_history_limit,
            login_max_failures,
            login_window_secs,
            argon2_memory_kib,
            argon2_iterations,
            argon2_parallelism,
            store_cache_mib,
            search_index,
            database_url,
            database_pool_size,
            metrics_token,
            trust_forwarded_for,
            webhook_allowed_hosts,
            webhook_retry_hours,
            webhook_retry_base_ms,
            webhook_max_in_flight,
            webhook_ca_file,
            smtp_url,
            smtp_password,
            mail_from,
            public_url,
            welcome_link_hours,
            reset_link_minutes,
            nats_url,
            node_name,
            cluster_heartbeat_ms,
            cluster_down_after,
        } = self;
        f.debug_struct("Config")
            .field("listen", listen)
            .field("data_dir", data_dir)
            .field("log_level", log_level)
            .field("log_format", log_format)
            .field("registration", registration)
            .field("jwt_secret", &Redacted(jwt_secret))
            .field("token_ttl_secs", token_ttl_secs)
            .field("allowed_origins", allowed_origins)
            .field("heartbeat_timeout_secs", heartbeat_timeout_secs)
            .field("shutdown_grace_secs", shutdown_grace_secs)
            .field("max_http_body_bytes", max_http_body_bytes)
            .field("header_read_timeout_secs", header_read_timeout_secs)
            .field("max_frame_bytes", max_frame_bytes)
            .field("websocket_compression", websocket_compression)
            .field("max_body_chars", max_body_chars)
            .field("push_burst", push_burst)
            .field("push_refill_per_sec", push_refill_per_sec)
            .field("max_topics_per_socket", max_topics_per_socket)
            .field("max_sockets_per_user", max_sockets_per_user)
            .field("outbound_queue_frames", outbound_queue_frames)
            .field("presence_state_limit", presence_state_limit)
            .field("join_history_limit", join_history_limit)
            .field("login_max_failures", login_max_failures)
            .field("login_window_secs", login_window_secs)
            .field("argon2_memory_kib", argon2_memory_kib)
            .field("argon2_iterations", argon2_iterations)
            .field("argon2_parallelism", argon2_parallelism)
            .field("store_cache_mib", store_cache_mib)
            .field("search_index", search_index)
            .field("database_url", &redact_database_url(database_url))
            .field("database_pool_size", database_pool_size)
            .field("metrics_token", &Redacted(metrics_token))
            .field("trust_forwarded_for", trust_forwarded_for)
            .field("webhook_allowed_hosts", webhook_allowed_hosts)
            .field("webhook_retry_hours", webhook_retry_hours)
            .field("webhook_retry_base_ms", webhook_retry_base_ms)
            .field("webhook_max_in_flight", webhook_max_in_flight)
            .field("webhook_ca_file", webhook_ca_file)
            .field("smtp_url", smtp_url)
            .field("smtp_password", &Redacted(smtp_password))
            .field("mail_from", mail_from)
            .field("public_url", public_url)
            .field("welcome_link_hours", welcome_link_hours)
            .field("reset_link_minutes", reset_link_minutes)
            .field("nats_url", &crate::cluster::bus::shown(nats_url))
            .field("node_name", node_name)
            .field("cluster_heartbeat_ms", cluster_heartbeat_ms)
            .field("cluster_down_after", cluster_down_after)
            .finish()
    }
}

/// Format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Accepted spellings, as in the config file.
    const CHOICES: &'static [(&'static str, LogFormat)] =
        &[("text", LogFormat::Text), ("json", LogFormat::Json)];
}

/// Whether anyone may create an account with `POST /api/register`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Registration {
    /// Anyone may register.
    Open,
    /// Registration answers 403; accounts are made by an admin.
    Closed,
}

impl Registration {
    /// Accepted spellings, as in the config file.
    const CHOICES: &'static [(&'static str, Registration)] = &[
        ("open", Registration::Open),
        ("closed", Registration::Closed),
    ];
}

/// Command-line overrides (filled by the CLI; None = not given).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// `--data DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--log-format text|json`.
    pub log_format: Option<LogFormat>,
    /// `--log-level FILTER`.
    pub log_level: Option<String>,
}

/// Where the config file comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// `--config FILE`: the file must exist.
    Explicit(PathBuf),
    /// `./config.toml` if it exists; built-in defaults otherwise.
    DefaultIfPresent,
}

impl ConfigSource {
    /// The file [`Config::load`] reads from this source, if any (for the
    /// startup banner): the explicit path, or `config.toml` if it exists.
    pub fn file(&self) -> Option<PathBuf> {
        match self {
            ConfigSource::Explicit(path) => Some(path.clone()),
            ConfigSource::DefaultIfPresent => {
                let path = PathBuf::from(DEFAULT_CONFIG_FILE);
                path.exists().then_some(path)
            }
        }
    }

    /// Reads the file, `default_file` for `DefaultIfPresent`: `Ok(None)` when
    /// there is none to read. Returns the file's name for messages and its text.
    fn read(&self, default_file: &Path) -> Result<Option<(String, String)>, ConfigError> {
        let (path, is_explicit) = match self {
            ConfigSource::Explicit(path) => (path.as_path(), true),
            ConfigSource::DefaultIfPresent => (default_file, false),
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some((path.display().to_string(), text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if is_explicit {
                    Err(ConfigError::NotFound {
                        path: path.to_path_buf(),
                    })
                } else {
                    Ok(None)
                }
            }
            Err(e) => Err(ConfigError::Read {
                origin: if is_explicit {
                    format!("--config {}", path.display())
                } else {
                    path.display().to_string()
                },
                error: e,
            }),
        }
    }
}

/// Why the configuration could not be loaded. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config` names a file that does not exist.
    #[error("--config {}: file not found", .path.display())]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The config file exists but cannot be read.
    #[error("{origin}: cannot read: {error}")]
    Read {
        /// `--config FILE` or `config.toml`.
        origin: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("{}: {message}", at(.origin, *.line))]
    Syntax {
        /// The file.
        origin: String,
        /// 1-based line of the error; 0 if unknown.
        line: usize,
        /// The parser's one-line message.
        message: String,
    },
    /// The config file sets a key that does not exist.
    #[error("{}: unknown key {key:?} ({})", at(.origin, *.line), key_hint(.key))]
    UnknownKey {
        /// The file.
        origin: String,
        /// 1-based line of the key.
        line: usize,
        /// The unknown key.
        key: String,
    },
    /// The config file gives a key a value of the wrong type or form.
    #[error("{}: key {key:?}: {message}", at(.origin, *.line))]
    BadValue {
        /// The file.
        origin: String,
        /// 1-based line of the value; 0 if unknown.
        line: usize,
        /// The key.
        key: &'static str,
        /// What is wrong, e.g. `invalid type: string "abc", expected u64`.
        message: String,
    },
    /// A `CONFAB_<KEY>` variable cannot be parsed.
    #[error("{var}={value:?}: {reason}")]
    Env {
        /// The variable's name.
        var: String,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Both `CONFAB_<KEY>` and `CONFAB_<KEY>_FILE` are set.
    #[error("{var} and {var}_FILE are both set: use only one")]
    EnvConflict {
        /// The plain variable's name, e.g. `CONFAB_JWT_SECRET`.
        var: String,
    },
    /// A `CONFAB_<KEY>_FILE` cannot be read or is empty.
    #[error("{var}={path:?}: {reason}")]
    SecretFile {
        /// The variable's name, e.g. `CONFAB_JWT_SECRET_FILE`.
        var: String,
        /// The path it holds.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A setting fails validation.
    #[error("{}", invalid_line(.origin.as_deref(), .key, .value.as_deref(), .reason))]
    Invalid {
        /// Where the value came from (`config.toml line 7`, `CONFAB_LISTEN`,
        /// `--listen`); `None` for a default or when not known.
        origin: Option<String>,
        /// The key.
        key: &'static str,
        /// The bad value as written in TOML; `None` for secrets.
        value: Option<String>,
        /// Why it is rejected, with a valid example where useful.
        reason: String,
    },
}

/// "config.toml line 3", or just the file when the line is unknown.
fn at(origin: &str, line: usize) -> String {
    if line == 0 {
        origin.to_owned()
    } else {
        format!("{origin} line {line}")
    }
}

/// The parenthesised hint after an unknown key.
fn key_hint(key: &str) -> String {
    let list = KEYS.join(", ");
    match closest_key(key) {
        Some(near) => format!("did you mean {near:?}? expected one of: {list}"),
        None => format!("expected one of: {list}"),
    }
}

/// The text of an [`ConfigError::Invalid`]: `[origin: ]key "k"[ = value]: reason`.
fn invalid_line(origin: Option<&str>, key: &str, value: Option<&str>, reason: &str) -> String {
    let mut line = String::new();
    if let Some(origin) = origin {
        line.push_str(origin);
        line.push_str(": ");
    }
    line.push_str(&format!("key {key:?}"));
    if let Some(value) = value {
        line.push_str(" = ");
        line.push_str(value);
    }
    line.push_str(": ");
    line.push_str(reason);
    line
}

impl ConfigError {
    /// A validation error whose origin is filled in later by `load`.
    fn invalid(key: &'static str, value: Option<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid {
            origin: None,
            key,
            value,
            reason: reason.into(),
        }
    }

    /// Fills in where an invalid value came from.
    fn with_origin(self, origins: &BTreeMap<&'static str, String>) -> Self {
        match self {
            ConfigError::Invalid {
                origin: None,
                key,
                value,
                reason,
            } => ConfigError::Invalid {
                origin: origins.get(key).cloned(),
                key,
                value,
                reason,
            },
            other => other,
        }
    }
}

impl Config {
    /// Defaults < file < env < overrides, then validate. `env` is passed in
    /// (an iterator of (key, value)) so tests need not mutate the process env;
    /// production passes `std::env::vars()`.
    ///
    /// Unknown `CONFAB_*` variables are ignored here; see [`unknown_env_keys`].
    pub fn load(
        source: &ConfigSource,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        // key -> where its current value came from, for validation errors
        Self::load_from(source, Path::new(DEFAULT_CONFIG_FILE), env, overrides)
    }

    /// [`Config::load`] with the file that `DefaultIfPresent` looks for.
    fn load_from(
        source: &ConfigSource,
        default_file: &Path,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut origins = BTreeMap::new();
        let mut config = match source.read(default_file)? {
            Some((origin, text)) => {
                let (config, lines) = Self::parse_file(&text, &origin)?;
                for (key, line) in lines {
                    origins.insert(key, at(&origin, line));
                }
                config
            }
            None => Config::default(),
        };
        config.apply_env(env, &mut origins)?;
        config.apply_overrides(overrides, &mut origins);
        config.validate().map_err(|e| e.with_origin(&origins))?;
        Ok(config)
    }

    /// Parses a config file's text (no validation). Keys it does not set keep
    /// their defaults. `origin` names the file in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        Self::parse_file(text, &origin.display().to_string()).map(|(config, _)| config)
    }

    /// Parses a config file and returns each key it sets with its line.
    fn parse_file(text: &str, origin: &str) -> Result<(Config, Vec<KeyLine>), ConfigError> {
        let syntax = |e: toml::de::Error| {
            let span = e.span().unwrap_or(0..0);
            let mut message = one_line(e.message());
            // Name what the parser tripped over, e.g. `duplicate key "listen"`.
            if let Some(found) = text.get(span.clone()) {
                if !found.is_empty() && found.len() <= 40 && !found.contains('\n') {
                    message = format!("{message} {found:?}");
                }
            }
            ConfigError::Syntax {
                origin: origin.to_owned(),
                line: e.span().map_or(0, |span| line_of(text, span.start)),
                message,
            }
        };
        // First pass: the spans of the top-level keys, to name unknown keys
        // and to find which key a type error belongs to.
        let table = toml::de::DeTable::parse(text).map_err(syntax)?;
        let mut entries = Vec::new();
        let mut unknown: Option<(usize, String)> = None;
        for (key, value) in table.get_ref().iter() {
            let start = key.span().start;
            match KEYS.iter().find(|k| **k == key.get_ref().as_ref()) {
                // A `[table]` header's value span starts before its key.
                Some(known) => {
                    let from = start.min(value.span().start);
                    let to = key.span().end.max(value.span().end);
                    entries.push((*known, from..to));
                }
                None if unknown.as_ref().is_some_and(|(s, _)| *s < start) => {}
                None => unknown = Some((start, key.get_ref().to_string())),
            }
        }
        if let Some((start, key)) = unknown {
            return Err(ConfigError::UnknownKey {
                origin: origin.to_owned(),
                line: line_of(text, start),
                key,
            });
        }
        let config: Config = toml::from_str(text).map_err(|e| {
            let span = e.span();
            let key = span.as_ref().and_then(|span| {
                entries
                    .iter()
                    .find(|(_, range)| range.contains(&span.start))
                    .map(|(key, _)| *key)
            });
            match key {
                Some(key) => ConfigError::BadValue {
                    origin: origin.to_owned(),
                    line: span.map_or(0, |span| line_of(text, span.start)),
                    key,
                    message: one_line(e.message()),
                },
                None => syntax(e),
            }
        })?;
        let mut lines: Vec<_> = entries
            .into_iter()
            .map(|(key, range)| (key, line_of(text, range.start)))
            .collect();
        lines.sort_by_key(|(_, line)| *line);
        Ok((config, lines))
    }

    /// Applies `CONFAB_<KEY>` (and `CONFAB_<KEY>_FILE` for secrets).
    fn apply_env(
        &mut self,
        env: impl IntoIterator<Item = (String, String)>,
        origins: &mut BTreeMap<&'static str, String>,
    ) -> Result<(), ConfigError> {
        let vars: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        for &key in KEYS {
            let var = env_var(key);
            let mut found = vars.get(&var).map(|value| (var.clone(), value.clone()));
            if SECRET_KEYS.contains(&key) {
                let file_var = format!("{var}_FILE");
                if let Some(path) = vars.get(&file_var) {
                    if found.is_some() {
                        return Err(ConfigError::EnvConflict { var });
                    }
                    found = Some((file_var.clone(), read_secret_file(&file_var, path)?));
                }
            }
            if let Some((name, value)) = found {
                self.set_from_text(key, &value)
                    .map_err(|reason| ConfigError::Env {
                        var: name.clone(),
                        value,
                        reason,
                    })?;
                origins.insert(key, name);
            }
        }
        Ok(())
    }

    /// Sets one key from its text form (an environment variable's value).
    /// This match is the one table from key to field and to how its text is
    /// read; `Err` is the reason the text is rejected.
    fn set_from_text(&mut self, key: &str, text: &str) -> Result<(), String> {
        match key {
            "listen" => self.listen = text.to_owned(),
            "data_dir" => self.data_dir = PathBuf::from(text),
            "log_level" => self.log_level = text.to_owned(),
            "log_format" => self.log_format = parse_choice(text, LogFormat::CHOICES)?,
            "registration" => self.registration = parse_choice(text, Registration::CHOICES)?,
            "jwt_secret" => self.jwt_secret = text.to_owned(),
            "token_ttl_secs" => self.token_ttl_secs = parse_int(text)?,
            "allowed_origins" => self.allowed_origins = parse_list(text),
            "heartbeat_timeout_secs" => self.heartbeat_timeout_secs = parse_int(text)?,
            "shutdown_grace_secs" => self.shutdown_grace_secs = parse_int(text)?,
            "max_http_body_bytes" => self.max_http_body_bytes = parse_int(text)?,
            "header_read_timeout_secs" => self.header_read_timeout_secs = parse_int(text)?,
            "max_frame_bytes" => self.max_frame_bytes = parse_int(text)?,
            "websocket_compression" => self.websocket_compression = parse_bool(text)?,
            "max_body_chars" => self.max_body_chars = parse_int(text)?,
            "push_burst" => self.push_burst = parse_int(text)?,
            "push_refill_per_sec" => self.push_refill_per_sec = parse_int(text)?,
            "max_topics_per_socket" => self.max_topics_per_socket = parse_int(text)?,
            "max_sockets_per_user" => self.max_sockets_per_user = parse_int(text)?,
            "outbound_queue_frames" => self.outbound_queue_frames = parse_int(text)?,
            "presence_state_limit" => self.presence_state_limit = parse_int(text)?,
            "join_history_limit" => self.join_history_limit = parse_int(text)?,
            "login_max_failures" => self.login_max_failures = parse_int(text)?,
            "login_window_secs" => self.login_window_secs = parse_int(text)?,
            "argon2_memory_kib" => self.argon2_memory_kib = parse_int(text)?,
            "argon2_iterations" => self.argon2_iterations = parse_int(text)?,
            "argon2_parallelism" => self.argon2_parallelism = parse_int(text)?,
            "store_cache_mib" => self.store_cache_mib = parse_int(text)?,
            "search_index" => self.search_index = parse_bool(text)?,
            "database_url" => self.database_url = text.trim().to_owned(),
            "database_pool_size" => self.database_pool_size = parse_int(text)?,
            "metrics_token" => self.metrics_token = text.to_owned(),
            "trust_forwarded_for" => self.trust_forwarded_for = parse_bool(text)?,
            "webhook_allowed_hosts" => self.webhook_allowed_hosts = parse_list(text),
            "webhook_retry_hours" => self.webhook_retry_hours = parse_int(text)?,
            "webhook_retry_base_ms" => self.webhook_retry_base_ms = parse_int(text)?,
            "webhook_max_in_flight" => self.webhook_max_in_flight = parse_int(text)?,
            "webhook_ca_file" => self.webhook_ca_file = text.trim().to_owned(),
            "smtp_url" => self.smtp_url = text.trim().to_owned(),
            "smtp_password" => self.smtp_password = text.to_owned(),
            "mail_from" => self.mail_from = text.trim().to_owned(),
            "public_url" => self.public_url = text.trim().to_owned(),
            "welcome_link_hours" => self.welcome_link_hours = parse_int(text)?,
            "reset_link_minutes" => self.reset_link_minutes = parse_int(text)?,
            "nats_url" => self.nats_url = parse_list(text),
            "node_name" => self.node_name = text.trim().to_owned(),
            "cluster_heartbeat_ms" => self.cluster_heartbeat_ms = parse_int(text)?,
            "cluster_down_after" => self.cluster_down_after = parse_int(text)?,
            _ => return Err(format!("unknown key {key:?}")),
        }
        Ok(())
    }

    fn apply_overrides(
        &mut self,
        overrides: &Overrides,
        origins: &mut BTreeMap<&'static str, String>,
    ) {
        let Overrides {
            listen,
            data_dir,
            log_format,
            log_level,
        } = overrides;
        if let Some(listen) = listen {
            self.listen = listen.clone();
            origins.insert("listen", "--listen".to_owned());
        }
        if let Some(data_dir) = data_dir {
            self.data_dir = data_dir.clone();
            origins.insert("data_dir", "--data".to_owned());
        }
        if let Some(log_format) = log_format {
            self.log_format = *log_format;
            origins.insert("log_format", "--log-format".to_owned());
        }
        if let Some(log_level) = log_level {
            self.log_level = log_level.clone();
            origins.insert("log_level", "--log-level".to_owned());
        }
    }

    /// Checks every setting; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "listen",
                Some(quoted(&self.listen)),
                "not an IP address and port (e.g. \"127.0.0.1:4000\" or \"0.0.0.0:4000\")",
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "data_dir",
                Some(quoted("")),
                "must not be empty (e.g. \"./data\")",
            ));
        }
        if self.log_level.trim().is_empty() {
            return Err(ConfigError::invalid(
                "log_level",
                Some(quoted(&self.log_level)),
                "must not be empty (e.g. \"info\" or \"confab=debug,info\")",
            ));
        }
        let secret_len = self.jwt_secret.len();
        if secret_len > 0 && secret_len < MIN_SECRET_BYTES {
            return Err(ConfigError::invalid(
                "jwt_secret",
                None,
                format!(
                    "must be at least {MIN_SECRET_BYTES} bytes, got {secret_len} \
                     (make one with `confab gen-secret`, or leave it empty to generate one)"
                ),
            ));
        }
        for origin in &self.allowed_origins {
            if let Some(reason) = origin_problem(origin, self.allowed_origins.len()) {
                return Err(ConfigError::invalid(
                    "allowed_origins",
                    Some(quoted(origin)),
                    reason,
                ));
            }
        }
        if let Some(reason) = database_url_problem(&self.database_url) {
            return Err(ConfigError::invalid(
                "database_url",
                Some(quoted(&redact_database_url(&self.database_url))),
                reason,
            ));
        }
        if let Some((key, value, reason)) = self.cluster_problem() {
            return Err(ConfigError::invalid(key, value.map(|v| quoted(&v)), reason));
        }
        if let Some((key, value, reason)) = crate::mail::settings::problem(self) {
            return Err(ConfigError::invalid(key, value.map(|v| quoted(&v)), reason));
        }
        if !self.webhook_ca_file.is_empty() {
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            if let Err(reason) = crate::bots::client::add_ca_file(&mut roots, &self.webhook_ca_file)
            {
                return Err(ConfigError::invalid(
                    "webhook_ca_file",
                    Some(quoted(&self.webhook_ca_file)),
                    reason,
                ));
            }
        }
        // Every numeric setting: (key, value, min, max).
        #[rustfmt::skip]
        let ranges: [(&str, u64, u64, u64); 28] = [
            ("token_ttl_secs",           wide(self.token_ttl_secs),            1,    NO_MAX),
            ("heartbeat_timeout_secs",   wide(self.heartbeat_timeout_secs),    1,    NO_MAX),
            ("shutdown_grace_secs",      wide(self.shutdown_grace_secs),       1,    300),
            ("max_http_body_bytes",      wide(self.max_http_body_bytes),       1024, NO_MAX),
            ("header_read_timeout_secs", wide(self.header_read_timeout_secs),  1,    NO_MAX),
            ("max_frame_bytes",          wide(self.max_frame_bytes),           1024, NO_MAX),
            ("max_body_chars",           wide(self.max_body_chars),            1,    NO_MAX),
            ("push_burst",               wide(self.push_burst),                1,    NO_MAX),
            ("push_refill_per_sec",      wide(self.push_refill_per_sec),       1,    NO_MAX),
            ("max_topics_per_socket",    wide(self.max_topics_per_socket),     1,    NO_MAX),
            ("max_sockets_per_user",     wide(self.max_sockets_per_user),      1,    NO_MAX),
            ("outbound_queue_frames",    wide(self.outbound_queue_frames),     16,   NO_MAX),
            ("presence_state_limit",     wide(self.presence_state_limit),      0,    NO_MAX),
            ("join_history_limit",       wide(self.join_history_limit),        1,    1000),
            ("login_max_failures",       wide(self.login_max_failures),        1,    NO_MAX),
            ("login_window_secs",        wide(self.login_window_secs),         1,    NO_MAX),
            ("argon2_memory_kib",        wide(self.argon2_memory_kib),         8192, NO_MAX),
            ("argon2_iterations",        wide(self.argon2_iterations),         1,    NO_MAX),
            ("argon2_parallelism",       wide(self.argon2_parallelism),        1,    16),
            ("store_cache_mib",          wide(self.store_cache_mib),           1,    NO_MAX),
            ("database_pool_size",       wide(self.database_pool_size),        1,    NO_MAX),
            ("webhook_retry_hours",      wide(self.webhook_retry_hours),       1,    NO_MAX),
            ("webhook_retry_base_ms",    wide(self.webhook_retry_base_ms),     1,    NO_MAX),
            ("webhook_max_in_flight",    wide(self.webhook_max_in_flight),     1,    NO_MAX),
            ("welcome_link_hours",       wide(self.welcome_link_hours),        1,    NO_MAX),
            ("reset_link_minutes",       wide(self.reset_link_minutes),        1,    NO_MAX),
            ("cluster_heartbeat_ms",     wide(self.cluster_heartbeat_ms),      50,   60_000),
            ("cluster_down_after",       wide(self.cluster_down_after),        2,    100),
        ];
        for (key, value, min, max) in ranges {
            if value < min || value > max {
                let reason = if max == NO_MAX {
                    format!("must be at least {min}")
                } else {
                    format!("must be between {min} and {max}")
                };
                return Err(ConfigError::invalid(key, Some(value.to_string()), reason));
            }
        }
        Ok(())
    }

    /// The address to listen on. Call after [`Config::validate`]; an
    /// unparsable `listen` falls back to 127.0.0.1:4000.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
            .parse()
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 4000)))
    }

    /// The redb file: `data_dir/confab.redb`.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join(STORE_FILE)
    }

    /// Why the cluster settings cannot work, if they cannot: a cluster
    /// needs one shared database and one shared token secret.
    fn cluster_problem(&self) -> Option<(&'static str, Option<String>, &'static str)> {
        if self.nats_url.is_empty() {
            return None;
        }
        for url in &self.nats_url {
            let rest = url
                .strip_prefix("nats://")
                .or_else(|| url.strip_prefix("tls://"))
                .unwrap_or(url);
            if rest.is_empty() || rest.contains(char::is_whitespace) || !rest.contains(':') {
                return Some((
                    "nats_url",
                    Some(url.clone()),
                    "not a NATS address (e.g. \"nats://10.0.0.5:4222\")",
                ));
            }
        }
        if self.database_url.is_empty() {
            return Some((
                "nats_url",
                None,
                "a cluster needs database_url: every node must use the same PostgreSQL database",
            ));
        }
        if self.jwt_secret.is_empty() {
            return Some((
                "nats_url",
                None,
                "a cluster needs jwt_secret: every node must sign and check tokens with the same secret",
            ));
        }
        None
    }

    /// Whether this node is one of a cluster (`nats_url` is set).
    pub fn clustered(&self) -> bool {
        !self.nats_url.is_empty()
    }

    /// Whether the store is PostgreSQL (`database_url` is set) rather than
    /// the embedded store in `data_dir`.
    pub fn uses_postgres(&self) -> bool {
        !self.database_url.is_empty()
    }
}

/// URL schemes accepted in `database_url`.
const DATABASE_SCHEMES: &[&str] = &["postgres://", "postgresql://"];

/// Why a non-empty `database_url` is unusable, if it is. The reason never
/// repeats the URL.
fn database_url_problem(url: &str) -> Option<String> {
    if url.is_empty() {
        return None;
    }
    const FORM: &str = "postgres://user:password@host:port/database";
    if !DATABASE_SCHEMES
        .iter()
        .any(|scheme| url.starts_with(scheme))
    {
        return Some(format!(
            "not a PostgreSQL URL: it must start with postgres:// or postgresql:// \
             (e.g. \"{FORM}\"), or be empty for the embedded store in data_dir"
        ));
    }
    match url.parse::<tokio_postgres::Config>() {
        Err(e) => {
            // The kind, then its cause (e.g. which option is bad); neither
            // repeats the URL.
            let reason = match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => e.to_string(),
            };
            Some(format!(
                "not a valid PostgreSQL URL ({}); expected \"{FORM}\"",
                one_line(&reason)
            ))
        }
        Ok(parsed) if parsed.get_hosts().is_empty() => {
            Some(format!("names no host; expected \"{FORM}\""))
        }
        Ok(_) => None,
    }
}

/// `database_url` with its password replaced by `<redacted>`, for logs and
/// messages: the password in `user:password@` and any `password=` query
/// parameter. A value that is not a URL at all is redacted whole.
pub fn redact_database_url(url: &str) -> String {
    const HIDDEN: &str = "<redacted>";
    if url.is_empty() {
        return String::new();
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return HIDDEN.to_owned();
    };
    // The last `@` ends the user info, even if the password holds `@`, `/`
    // or `?`; the query starts at the first `?` after it.
    let (user_info, after) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at..]),
        None => (None, rest),
    };
    let (host_part, query) = match after.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (after, None),
    };
    let mut out = format!("{scheme}://");
    if let Some(user_info) = user_info {
        match user_info.split_once(':') {
            Some((user, _password)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(HIDDEN);
            }
            None => out.push_str(user_info),
        }
    }
    out.push_str(host_part);
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                    format!("{name}={HIDDEN}")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// The `CONFAB_*` variables in `env` that are neither a config key, a
/// `_FILE` form of a secret, nor reserved (`CONFAB_LOG`), sorted. The caller
/// should log a warning naming them: they are most likely typos.
pub fn unknown_env_keys(env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let mut unknown: Vec<String> = env
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with(ENV_PREFIX) && !is_known_env(name))
        .collect();
    unknown.sort();
    unknown.dedup();
    unknown
}

fn is_known_env(name: &str) -> bool {
    RESERVED_ENV.contains(&name)
        || KEYS.iter().any(|key| env_var(key) == name)
        || SECRET_KEYS
            .iter()
            .any(|key| format!("{}_FILE", env_var(key)) == name)
}

/// `listen` -> `CONFAB_LISTEN`.
fn env_var(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// Reads a secret from the file named by a `_FILE` variable; trailing line
/// breaks are dropped.
fn read_secret_file(var: &str, path: &str) -> Result<String, ConfigError> {
    let fail = |reason: String| ConfigError::SecretFile {
        var: var.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(fail("file is empty".to_owned()));
    }
    Ok(secret.to_owned())
}

/// Upper bound meaning "no upper bound" in the range table.
const NO_MAX: u64 = u64::MAX;

/// Widens any unsigned setting for the range table.
fn wide<T: TryInto<u64>>(value: T) -> u64 {
    value.try_into().unwrap_or(u64::MAX)
}

/// A string value as TOML would write it.
fn quoted(text: &str) -> String {
    format!("{text:?}")
}

/// Why an `allowed_origins` entry is unusable, if it is.
fn origin_problem(origin: &str, entries: usize) -> Option<&'static str> {
    if origin == "*" {
        return (entries > 1).then_some("\"*\" allows any origin and must be the only entry");
    }
    let well_formed = match origin.split_once("://") {
        Some((scheme, host)) => {
            !scheme.is_empty()
                && !host.is_empty()
                && !host.contains('/')
                && !origin.contains(char::is_whitespace)
        }
        None => false,
    };
    (!well_formed).then_some(
        "an origin is scheme://host[:port] with no path or trailing slash \
         (e.g. \"https://chat.example.com\")",
    )
}

/// A parser message squeezed onto one line.
fn one_line(message: &str) -> String {
    message.trim().replace(['\n', '\r'], " ")
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.bytes().take(offset).filter(|&b| b == b'\n').count() + 1
}

fn parse_int<T: FromStr<Err = ParseIntError>>(text: &str) -> Result<T, String> {
    text.trim().parse().map_err(|e: ParseIntError| {
        match e.kind() {
            IntErrorKind::Empty => "empty, expected a whole number",
            IntErrorKind::PosOverflow => "too large",
            _ => "not a whole number",
        }
        .to_owned()
    })
}

fn parse_bool(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("expected true/false, 1/0 or yes/no".to_owned()),
    }
}

fn parse_choice<T: Copy>(text: &str, choices: &[(&str, T)]) -> Result<T, String> {
    let wanted = text.trim();
    choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            format!("expected one of: {}", names.join(", "))
        })
}

/// A comma-separated list; blanks around entries and empty entries dropped.
fn parse_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The known key an unknown one was probably meant to be.
fn closest_key(unknown: &str) -> Option<&'static str> {
    let wanted = unknown.to_ascii_lowercase().replace('-', "_");
    KEYS.iter()
        .map(|key| (edit_distance(&wanted, key), *key))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, key)| key)
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            let delete = previous[j + 1] + 1;
            let insert = current[j] + 1;
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SHIPPED: &str = include_str!("../config.toml");

    /// A file in the temp dir, removed on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(contents: &str) -> TempFile {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "confab-config-test-{}-{}.toml",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }

        fn path_str(&self) -> String {
            self.0.to_str().unwrap().to_owned()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("config.toml"))
    }

    fn load_file(
        text: &str,
        vars: &[(&str, &str)],
        overrides: &Overrides,
    ) -> (TempFile, Result<Config, ConfigError>) {
        let file = TempFile::new(text);
        let result = Config::load(
            &ConfigSource::Explicit(file.0.clone()),
            env(vars),
            overrides,
        );
        (file, result)
    }

    fn load_env(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let nowhere = std::env::temp_dir().join("confab-config-test-no-such-file.toml");
        Config::load_from(
            &ConfigSource::DefaultIfPresent,
            &nowhere,
            env(vars),
            &Overrides::default(),
        )
    }

    fn message(result: Result<Config, ConfigError>) -> String {
        let text = result.unwrap_err().to_string();
        assert!(!text.contains('\n'), "not one line: {text}");
        text
    }

    fn validation_message(config: &Config) -> String {
        let text = config.validate().unwrap_err().to_string();
        assert!(!text.contains('\n'), "not one line: {text}");
        text
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

    // --- the shipped file and the key table ---

    #[test]
    fn shipped_config_parses_to_default() {
        assert_eq!(parse(SHIPPED).unwrap(), Config::default());
    }

    #[test]
    fn shipped_config_sets_every_key_in_order() {
        let (_, lines) = Config::parse_file(SHIPPED, "config.toml").unwrap();
        let keys: Vec<&str> = lines.iter().map(|(key, _)| *key).collect();
        assert_eq!(keys, KEYS);
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
        assert_eq!(
            Config::default().listen_addr().to_string(),
            "127.0.0.1:4000"
        );
        assert_eq!(
            Config::default().store_path(),
            Path::new("./data").join("confab.redb")
        );
    }

    #[test]
    fn key_table_matches_struct_fields() {
        // serde lists the struct's fields when it meets an unknown one.
        let err = toml::from_str::<Config>("zzz = 1").unwrap_err();
        let fields: Vec<&str> = err.message().split('`').skip(3).step_by(2).collect();
        assert_eq!(fields, KEYS);
        // Every key is settable from the environment.
        for key in KEYS {
            let result = Config::default().set_from_text(key, "");
            assert!(
                !matches!(&result, Err(reason) if reason.starts_with("unknown key")),
                "{key} missing from set_from_text"
            );
        }
    }

    // --- precedence ---

    #[test]
    fn file_overrides_default_and_keeps_other_defaults() {
        let (_file, result) = load_file(
            "listen = \"0.0.0.0:5000\"\nregistration = \"closed\"\n",
            &[],
            &Overrides::default(),
        );
        let config = result.unwrap();
        assert_eq!(config.listen, "0.0.0.0:5000");
        assert_eq!(config.registration, Registration::Closed);
        assert_eq!(config.data_dir, Config::default().data_dir);
        assert_eq!(config.push_burst, 50);
    }

    #[test]
    fn env_overrides_file() {
        let (_file, result) = load_file(
            "listen = \"0.0.0.0:5000\"\npush_burst = 7\n",
            &[
                ("CONFAB_LISTEN", "0.0.0.0:6000"),
                ("CONFAB_DATA_DIR", "/srv/confab"),
            ],
            &Overrides::default(),
        );
        let config = result.unwrap();
        assert_eq!(config.listen, "0.0.0.0:6000");
        assert_eq!(config.data_dir, PathBuf::from("/srv/confab"));
        assert_eq!(config.push_burst, 7);
    }

    #[test]
    fn overrides_override_env() {
        let overrides = Overrides {
            listen: Some("[::1]:7000".to_owned()),
            data_dir: Some(PathBuf::from("/flag")),
            log_format: Some(LogFormat::Json),
            log_level: Some("debug".to_owned()),
        };
        let (_file, result) = load_file(
            "listen = \"0.0.0.0:5000\"\nlog_format = \"text\"\n",
            &[
                ("CONFAB_LISTEN", "0.0.0.0:6000"),
                ("CONFAB_DATA_DIR", "/env"),
                ("CONFAB_LOG_LEVEL", "warn"),
            ],
            &overrides,
        );
        let config = result.unwrap();
        assert_eq!(config.listen, "[::1]:7000");
        assert_eq!(config.listen_addr(), "[::1]:7000".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("/flag"));
        assert_eq!(config.store_path(), PathBuf::from("/flag/confab.redb"));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.log_level, "debug");
    }

    #[test]
    fn default_if_present_without_file_gives_defaults() {
        assert_eq!(load_env(&[]).unwrap(), Config::default());
        // In the crate root the shipped config.toml is present and also
        // gives the defaults.
        let loaded = Config::load(
            &ConfigSource::DefaultIfPresent,
            env(&[]),
            &Overrides::default(),
        );
        assert_eq!(loaded.unwrap(), Config::default());
    }

    #[test]
    fn default_if_present_reads_the_file() {
        let file = TempFile::new("push_burst = 9\n");
        let config = Config::load_from(
            &ConfigSource::DefaultIfPresent,
            &file.0,
            env(&[]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(config.push_burst, 9);
    }

    #[test]
    fn missing_explicit_config_is_an_error() {
        let path = std::env::temp_dir().join("confab-config-test-missing/y.toml");
        let result = Config::load(
            &ConfigSource::Explicit(path.clone()),
            env(&[]),
            &Overrides::default(),
        );
        assert_eq!(
            message(result),
            format!("--config {}: file not found", path.display())
        );
        assert_eq!(ConfigSource::Explicit(path.clone()).file(), Some(path));
    }

    #[test]
    fn unreadable_explicit_config_is_an_error() {
        let dir = std::env::temp_dir();
        let result = Config::load(
            &ConfigSource::Explicit(dir.clone()),
            env(&[]),
            &Overrides::default(),
        );
        let text = message(result);
        assert!(
            text.starts_with(&format!("--config {}: cannot read: ", dir.display())),
            "{text}"
        );
    }

    // --- file errors ---

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = message(parse(
            "# comment\nlisten = \"127.0.0.1:1\"\nlistn = \"x\"\n",
        ));
        assert!(
            text.starts_with(
                "config.toml line 3: unknown key \"listn\" (did you mean \"listen\"? \
                 expected one of: listen, data_dir, log_level,"
            ),
            "{text}"
        );
        assert!(text.ends_with("cluster_down_after)"), "{text}");
    }

    #[test]
    fn first_unknown_key_in_the_file_is_reported() {
        let text = message(parse("zeta = 1\nalpha = 2\n"));
        assert!(
            text.starts_with("config.toml line 1: unknown key \"zeta\" (expected one of: "),
            "{text}"
        );
    }

    #[test]
    fn tables_are_rejected() {
        let text = message(parse("[server]\nlisten = \"0.0.0.0:1\"\n"));
        assert!(
            text.starts_with("config.toml line 1: unknown key \"server\""),
            "{text}"
        );
        let text = message(parse("\n[listen]\nport = 1\n"));
        assert_eq!(
            text,
            "config.toml line 2: key \"listen\": invalid type: map, expected a string"
        );
    }

    #[test]
    fn bad_type_names_key_and_line() {
        let text = message(parse(
            "listen = \"0.0.0.0:1\"\n\nheartbeat_timeout_secs = \"abc\"\n",
        ));
        assert_eq!(
            text,
            "config.toml line 3: key \"heartbeat_timeout_secs\": invalid type: string \"abc\", expected u64"
        );
        let text = message(parse("log_format = \"xml\"\n"));
        assert_eq!(
            text,
            "config.toml line 1: key \"log_format\": unknown variant `xml`, expected `text` or `json`"
        );
        let text = message(parse("push_burst = -1\n"));
        assert!(
            text.starts_with("config.toml line 1: key \"push_burst\": "),
            "{text}"
        );
    }

    #[test]
    fn syntax_error_names_line() {
        assert_eq!(
            message(parse("listen = \"a:1\"\nlisten = \"b:2\"\n")),
            "config.toml line 2: duplicate key \"listen\""
        );
        let text = message(parse("push_burst = 1\nlisten = \n"));
        assert!(text.starts_with("config.toml line 2: "), "{text}");
    }

    #[test]
    fn file_errors_name_the_explicit_path() {
        let (file, result) = load_file("push_burst = \"x\"\n", &[], &Overrides::default());
        assert!(message(result)
            .starts_with(&format!("{} line 1: key \"push_burst\"", file.0.display())));
    }

    // --- environment ---

    #[test]
    fn env_values_of_every_kind() {
        let config = load_env(&[
            ("CONFAB_LOG_FORMAT", "JSON"),
            ("CONFAB_REGISTRATION", "closed"),
            ("CONFAB_TOKEN_TTL_SECS", " 3600 "),
            ("CONFAB_MAX_FRAME_BYTES", "2048"),
            ("CONFAB_PUSH_BURST", "5"),
            ("CONFAB_TRUST_FORWARDED_FOR", "yes"),
            ("CONFAB_JWT_SECRET", SECRET),
            ("CONFAB_METRICS_TOKEN", "m"),
            ("PATH", "/usr/bin"),
        ])
        .unwrap();
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.registration, Registration::Closed);
        assert_eq!(config.token_ttl_secs, 3600);
        assert_eq!(config.max_frame_bytes, 2048);
        assert_eq!(config.push_burst, 5);
        assert!(config.trust_forwarded_for);
        assert_eq!(config.jwt_secret, SECRET);
        assert_eq!(config.metrics_token, "m");
    }

    #[test]
    fn env_bools() {
        for (text, expected) in [
            ("true", true),
            ("1", true),
            ("yes", true),
            ("TRUE", true),
            ("false", false),
            ("0", false),
            ("no", false),
        ] {
            let config = load_env(&[("CONFAB_TRUST_FORWARDED_FOR", text)]).unwrap();
            assert_eq!(config.trust_forwarded_for, expected, "{text}");
        }
        assert_eq!(
            message(load_env(&[("CONFAB_TRUST_FORWARDED_FOR", "maybe")])),
            "CONFAB_TRUST_FORWARDED_FOR=\"maybe\": expected true/false, 1/0 or yes/no"
        );
    }

    #[test]
    fn env_parse_errors() {
        assert_eq!(
            message(load_env(&[("CONFAB_PUSH_BURST", "x")])),
            "CONFAB_PUSH_BURST=\"x\": not a whole number"
        );
        assert_eq!(
            message(load_env(&[("CONFAB_PUSH_BURST", "-3")])),
            "CONFAB_PUSH_BURST=\"-3\": not a whole number"
        );
        assert_eq!(
            message(load_env(&[("CONFAB_PUSH_BURST", "99999999999")])),
            "CONFAB_PUSH_BURST=\"99999999999\": too large"
        );
        assert_eq!(
            message(load_env(&[("CONFAB_MAX_BODY_CHARS", "")])),
            "CONFAB_MAX_BODY_CHARS=\"\": empty, expected a whole number"
        );
        assert_eq!(
            message(load_env(&[("CONFAB_LOG_FORMAT", "xml")])),
            "CONFAB_LOG_FORMAT=\"xml\": expected one of: text, json"
        );
        assert_eq!(
            message(load_env(&[("CONFAB_REGISTRATION", "invite")])),
            "CONFAB_REGISTRATION=\"invite\": expected one of: open, closed"
        );
    }

    #[test]
    fn env_allowed_origins_is_comma_separated() {
        let config = load_env(&[(
            "CONFAB_ALLOWED_ORIGINS",
            " https://a.example , https://b.example:8443,,",
        )])
        .unwrap();
        assert_eq!(
            config.allowed_origins,
            ["https://a.example", "https://b.example:8443"]
        );
        let config = load_env(&[("CONFAB_ALLOWED_ORIGINS", "*")]).unwrap();
        assert_eq!(config.allowed_origins, ["*"]);
        // An empty variable sets the empty list (same origin only).
        let (_file, result) = load_file(
            "allowed_origins = [\"https://a.example\"]\n",
            &[("CONFAB_ALLOWED_ORIGINS", "")],
            &Overrides::default(),
        );
        assert!(result.unwrap().allowed_origins.is_empty());
    }

    #[test]
    fn secret_files() {
        let jwt = TempFile::new(&format!("{SECRET}\n"));
        let metrics = TempFile::new("metrics-token\r\n");
        let config = load_env(&[
            ("CONFAB_JWT_SECRET_FILE", &jwt.path_str()),
            ("CONFAB_METRICS_TOKEN_FILE", &metrics.path_str()),
        ])
        .unwrap();
        assert_eq!(config.jwt_secret, SECRET);
        assert_eq!(config.metrics_token, "metrics-token");
    }

    #[test]
    fn secret_and_secret_file_together_is_an_error() {
        let jwt = TempFile::new(SECRET);
        assert_eq!(
            message(load_env(&[
                ("CONFAB_JWT_SECRET", SECRET),
                ("CONFAB_JWT_SECRET_FILE", &jwt.path_str()),
            ])),
            "CONFAB_JWT_SECRET and CONFAB_JWT_SECRET_FILE are both set: use only one"
        );
        assert_eq!(
            message(load_env(&[
                ("CONFAB_METRICS_TOKEN_FILE", &jwt.path_str()),
                ("CONFAB_METRICS_TOKEN", "m"),
            ])),
            "CONFAB_METRICS_TOKEN and CONFAB_METRICS_TOKEN_FILE are both set: use only one"
        );
    }

    #[test]
    fn bad_secret_files() {
        let missing = std::env::temp_dir().join("confab-config-test-no-secret");
        let missing = missing.to_str().unwrap();
        let text = message(load_env(&[("CONFAB_JWT_SECRET_FILE", missing)]));
        assert!(
            text.starts_with(&format!(
                "CONFAB_JWT_SECRET_FILE={missing:?}: cannot read: "
            )),
            "{text}"
        );
        let empty = TempFile::new("\n");
        assert_eq!(
            message(load_env(&[(
                "CONFAB_METRICS_TOKEN_FILE",
                &empty.path_str()
            )])),
            format!(
                "CONFAB_METRICS_TOKEN_FILE={:?}: file is empty",
                empty.path_str()
            )
        );
    }

    #[test]
    fn short_secret_from_file_is_rejected_without_echoing_it() {
        let jwt = TempFile::new("tooshort\n");
        let text = message(load_env(&[("CONFAB_JWT_SECRET_FILE", &jwt.path_str())]));
        assert!(
            text.starts_with(
                "CONFAB_JWT_SECRET_FILE: key \"jwt_secret\": must be at least 32 bytes, got 8"
            ),
            "{text}"
        );
        assert!(!text.contains("tooshort"));
    }

    #[test]
    fn unknown_env_keys_are_listed_not_fatal() {
        let vars = [
            ("CONFAB_LISTN", "x"),
            ("CONFAB_LISTEN", "0.0.0.0:1"),
            ("CONFAB_LOG", "debug"),
            ("CONFAB_LOG_LEVEL", "debug"),
            ("CONFAB_JWT_SECRET_FILE", "/nonexistent"),
            ("CONFAB_METRICS_TOKEN_FILE", "/nonexistent"),
            ("CONFAB_LISTEN_FILE", "/x"),
            ("CONFAB_", "x"),
            ("confab_listen", "x"),
            ("HOME", "/root"),
        ];
        assert_eq!(
            unknown_env_keys(env(&vars)),
            ["CONFAB_", "CONFAB_LISTEN_FILE", "CONFAB_LISTN"]
        );
        let config = load_env(&[("CONFAB_LISTN", "x"), ("CONFAB_LOG", "trace")]).unwrap();
        assert_eq!(config, Config::default());
    }

    // --- validation ---

    #[test]
    fn invalid_listen() {
        let config = Config {
            listen: "localhost:4000".to_owned(),
            ..Config::default()
        };
        assert_eq!(
            validation_message(&config),
            "key \"listen\" = \"localhost:4000\": not an IP address and port \
             (e.g. \"127.0.0.1:4000\" or \"0.0.0.0:4000\")"
        );
        // listen_addr never panics; it falls back to the default.
        assert_eq!(config.listen_addr().to_string(), "127.0.0.1:4000");
    }

    #[test]
    fn invalid_strings() {
        let config = Config {
            data_dir: PathBuf::new(),
            ..Config::default()
        };
        assert!(
            validation_message(&config).starts_with("key \"data_dir\" = \"\": must not be empty")
        );
        let config = Config {
            log_level: " ".to_owned(),
            ..Config::default()
        };
        assert!(
            validation_message(&config).starts_with("key \"log_level\" = \" \": must not be empty")
        );
    }

    #[test]
    fn jwt_secret_length() {
        let mut config = Config {
            jwt_secret: "x".repeat(31),
            ..Config::default()
        };
        let text = validation_message(&config);
        assert!(
            text.starts_with("key \"jwt_secret\": must be at least 32 bytes, got 31"),
            "{text}"
        );
        assert!(!text.contains("xxx"));
        config.jwt_secret = "x".repeat(32);
        config.validate().unwrap();
    }

    #[test]
    fn allowed_origins_rules() {
        let check = |origins: &[&str]| {
            Config {
                allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
                ..Config::default()
            }
            .validate()
        };
        check(&[]).unwrap();
        check(&["*"]).unwrap();
        check(&["https://chat.example.com", "http://localhost:3000"]).unwrap();
        check(&["tauri://localhost"]).unwrap();
        for bad in [
            &["https://chat.example.com/"][..],
            &["chat.example.com"],
            &["https://"],
            &["https://a.example/path"],
            &["https://a .example"],
            &[""],
        ] {
            let err = check(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "key \"allowed_origins\" = {:?}: an origin is",
                    bad[0]
                )),
                "{err}"
            );
        }
        let err = check(&["*", "https://a.example"]).unwrap_err().to_string();
        assert_eq!(
            err,
            "key \"allowed_origins\" = \"*\": \"*\" allows any origin and must be the only entry"
        );
    }

    #[test]
    fn numeric_ranges() {
        // (key, rejected, accepted) at each bound.
        let cases = [
            ("token_ttl_secs", "0", "1"),
            ("heartbeat_timeout_secs", "0", "1"),
            ("shutdown_grace_secs", "0", "1"),
            ("shutdown_grace_secs", "301", "300"),
            ("max_http_body_bytes", "1023", "1024"),
            ("header_read_timeout_secs", "0", "1"),
            ("max_frame_bytes", "1023", "1024"),
            ("max_body_chars", "0", "1"),
            ("push_burst", "0", "1"),
            ("push_refill_per_sec", "0", "1"),
            ("max_topics_per_socket", "0", "1"),
            ("max_sockets_per_user", "0", "1"),
            ("outbound_queue_frames", "15", "16"),
            ("join_history_limit", "0", "1"),
            ("join_history_limit", "1001", "1000"),
            ("login_max_failures", "0", "1"),
            ("login_window_secs", "0", "1"),
            ("argon2_memory_kib", "8191", "8192"),
            ("argon2_iterations", "0", "1"),
            ("argon2_parallelism", "0", "1"),
            ("argon2_parallelism", "17", "16"),
            ("store_cache_mib", "0", "1"),
        ];
        for (key, rejected, accepted) in cases {
            let mut config = Config::default();
            config.set_from_text(key, rejected).unwrap();
            let text = validation_message(&config);
            assert!(
                text.starts_with(&format!("key {key:?} = {rejected}: must be ")),
                "{text}"
            );
            config.set_from_text(key, accepted).unwrap();
            config.validate().unwrap();
        }
        let config = Config {
            outbound_queue_frames: 3,
            ..Config::default()
        };
        assert_eq!(
            validation_message(&config),
            "key \"outbound_queue_frames\" = 3: must be at least 16"
        );
        let config = Config {
            shutdown_grace_secs: 600,
            ..Config::default()
        };
        assert_eq!(
            validation_message(&config),
            "key \"shutdown_grace_secs\" = 600: must be between 1 and 300"
        );
    }

    #[test]
    fn validation_errors_name_their_source() {
        let text = message(load_env(&[("CONFAB_OUTBOUND_QUEUE_FRAMES", "3")]));
        assert_eq!(
            text,
            "CONFAB_OUTBOUND_QUEUE_FRAMES: key \"outbound_queue_frames\" = 3: must be at least 16"
        );
        let (file, result) = load_file("\npush_burst = 0\n", &[], &Overrides::default());
        assert_eq!(
            message(result),
            format!(
                "{} line 2: key \"push_burst\" = 0: must be at least 1",
                file.0.display()
            )
        );
        let overrides = Overrides {
            listen: Some("nope".to_owned()),
            ..Overrides::default()
        };
        let (_file, result) = load_file("", &[], &overrides);
        assert!(message(result).starts_with("--listen: key \"listen\" = \"nope\": "));
    }

    // --- Debug ---

    #[test]
    fn debug_redacts_secrets() {
        let config = Config {
            jwt_secret: SECRET.to_owned(),
            metrics_token: "metrics-token-value".to_owned(),
            ..Config::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("metrics-token-value"), "{text}");
        assert!(text.contains("jwt_secret: <redacted>"), "{text}");
        assert!(text.contains("metrics_token: <redacted>"), "{text}");
        assert!(text.contains("listen: \"127.0.0.1:4000\""), "{text}");
        assert!(text.contains("trust_forwarded_for: false"), "{text}");
        let text = format!("{:?}", Config::default());
        assert!(text.contains("jwt_secret: \"\""), "{text}");
        assert!(text.contains("metrics_token: \"\""), "{text}");
    }

    // --- database ---

    const PG_URL: &str = "postgres://confab:hunter2-secret@db.example:5433/chat";

    #[test]
    fn database_url_from_env_and_file() {
        let config = load_env(&[
            ("CONFAB_DATABASE_URL", PG_URL),
            ("CONFAB_DATABASE_POOL_SIZE", "4"),
        ])
        .unwrap();
        assert_eq!(config.database_url, PG_URL);
        assert_eq!(config.database_pool_size, 4);
        assert!(config.uses_postgres());
        assert!(!Config::default().uses_postgres());
        let file = TempFile::new(&format!("{PG_URL}\n"));
        let config = load_env(&[("CONFAB_DATABASE_URL_FILE", &file.path_str())]).unwrap();
        assert_eq!(config.database_url, PG_URL);
        let text = message(load_env(&[
            ("CONFAB_DATABASE_URL", PG_URL),
            ("CONFAB_DATABASE_URL_FILE", &file.path_str()),
        ]));
        assert!(text.contains("both set"), "{text}");
        assert!(unknown_env_keys(env(&[("CONFAB_DATABASE_URL_FILE", "x")])).is_empty());
    }

    #[test]
    fn a_cluster_needs_a_shared_database_and_secret() {
        let secret = "s".repeat(MIN_SECRET_BYTES);
        let nats = (
            "CONFAB_NATS_URL",
            "nats://10.0.0.5:4222, nats://10.0.0.6:4222",
        );
        let text = message(load_env(&[nats]));
        assert!(text.contains("a cluster needs database_url"), "{text}");
        let text = message(load_env(&[nats, ("CONFAB_DATABASE_URL", PG_URL)]));
        assert!(text.contains("a cluster needs jwt_secret"), "{text}");
        let config = load_env(&[
            nats,
            ("CONFAB_DATABASE_URL", PG_URL),
            ("CONFAB_JWT_SECRET", &secret),
            ("CONFAB_NODE_NAME", "chat-1"),
        ])
        .unwrap();
        assert_eq!(
            config.nats_url,
            ["nats://10.0.0.5:4222", "nats://10.0.0.6:4222"]
        );
        assert!(config.clustered());
        assert_eq!(config.node_name, "chat-1");
        let text = message(load_env(&[
            ("CONFAB_NATS_URL", "nats://no-port"),
            ("CONFAB_DATABASE_URL", PG_URL),
            ("CONFAB_JWT_SECRET", &secret),
        ]));
        assert!(text.contains("not a NATS address"), "{text}");
        let text = message(load_env(&[("CONFAB_CLUSTER_HEARTBEAT_MS", "10")]));
        assert!(text.contains("between 50 and 60000"), "{text}");
        assert!(!Config::default().clustered());
    }

    #[test]
    fn database_url_scheme_is_checked_without_echoing_the_password() {
        for good in [
            PG_URL,
            "postgresql://confab@127.0.0.1/chat",
            "postgres://u@localhost:5432/db?sslmode=disable",
        ] {
            let config = Config {
                database_url: good.to_owned(),
                ..Config::default()
            };
            config.validate().unwrap();
        }
        for bad in [
            "mysql://confab:hunter2-secret@db.example/chat",
            "db.example:5432 password=hunter2-secret",
            "postgres://confab:hunter2-secret@db.example:notaport/chat",
        ] {
            let text = message(load_env(&[("CONFAB_DATABASE_URL", bad)]));
            assert!(
                text.starts_with("CONFAB_DATABASE_URL: key \"database_url\""),
                "{text}"
            );
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("PostgreSQL URL"), "{text}");
        }
        let text = message(load_env(&[("CONFAB_DATABASE_URL", "redis://x")]));
        assert!(text.contains("postgres:// or postgresql://"), "{text}");
        let text = message(load_env(&[("CONFAB_DATABASE_POOL_SIZE", "0")]));
        assert!(text.ends_with("must be at least 1"), "{text}");
    }

    #[test]
    fn database_url_redaction() {
        let cases = [
            ("", ""),
            (PG_URL, "postgres://confab:<redacted>@db.example:5433/chat"),
            ("postgres://confab@db/chat", "postgres://confab@db/chat"),
            ("postgres://db:5432/chat", "postgres://db:5432/chat"),
            (
                "postgres://u:p@ss/w?rd@db/chat?sslmode=disable&password=x",
                "postgres://u:<redacted>@db/chat?sslmode=disable&password=<redacted>",
            ),
            ("host=db password=x", "<redacted>"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_database_url(url), shown, "{url}");
        }
        let config = Config {
            database_url: PG_URL.to_owned(),
            ..Config::default()
        };
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("db.example:5433"), "{text}");
    }

    #[test]
    fn suggestions_for_unknown_keys() {
        assert_eq!(closest_key("listn"), Some("listen"));
        assert_eq!(closest_key("data-dir"), Some("data_dir"));
        assert_eq!(closest_key("LOG_LEVEL"), Some("log_level"));
        assert_eq!(closest_key("database_ur"), Some("database_url"));
        assert_eq!(closest_key("nats_ur"), Some("nats_url"));
        assert_eq!(closest_key("kafka_brokers"), None);
    }

    #[test]
    fn webhook_ca_file_must_hold_certificates() {
        let missing = Config {
            webhook_ca_file: "/nonexistent/confab-ca.pem".to_owned(),
            ..Config::default()
        };
        let text = validation_message(&missing);
        assert!(
            text.starts_with(
                "key \"webhook_ca_file\" = \"/nonexistent/confab-ca.pem\": cannot read it: "
            ),
            "{text}"
        );
        let garbage = TempFile::new("not a certificate\n");
        let config = Config {
            webhook_ca_file: garbage.path_str(),
            ..Config::default()
        };
        assert!(validation_message(&config).ends_with(": holds no PEM certificate"));
        let broken =
            TempFile::new("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        let config = Config {
            webhook_ca_file: broken.path_str(),
            ..Config::default()
        };
        let text = validation_message(&config);
        assert!(text.contains("cannot be a trust root"), "{text}");
        let ca = TempFile::new(TEST_CA);
        let config = Config {
            webhook_ca_file: ca.path_str(),
            ..Config::default()
        };
        config.validate().unwrap();
        assert!(crate::bots::client::tls_config(&config.webhook_ca_file).is_ok());
    }

    /// A CA certificate (the one of the webhook TLS tests).
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBmjCCAT+gAwIBAgIUdH/eHqUupLHYRdYdD1z0ixZbenQwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOY29uZmFiIHRlc3QgQ0EwIBcNMjYxMjA1MDgwNzExWhgPMjEy
NjExMTEwODA3MTFaMBkxFzAVBgNVBAMMDmNvbmZhYiB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEzudeK0CBS9d4bm/5LlQ6q5L1SLMC2tuU1kToLxK8
p7c8nfHKaLhkffzdeD22Dbm1H83Y6u7vayZEAAhQ6jiEZqNjMGEwHQYDVR0OBBYE
FP7x4MUM2OWKmXA3uDO9ILzNgYy0MB8GA1UdIwQYMBaAFP7x4MUM2OWKmXA3uDO9
ILzNgYy0MA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgEGMAoGCCqGSM49
BAMCA0kAMEYCIQCyJMRBXiEsaWllKZVk8PQzUBwN60j+/4SKnkpWevE48wIhAIPt
gDjCdOl59cAJmR8thFnlu4Au2LxkO2ZtJa0WReen
-----END CERTIFICATE-----
";
}
