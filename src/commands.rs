//! The CLI subcommands other than `serve`: account, room, bot and webhook
//! administration, the export and rebuilding the search index (through a
//! running server's admin socket, or on a stopped server's store, with the
//! same output), import, secret generation, and the health probe used by Docker's
//! HEALTHCHECK. Each returns one clear line on failure.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::accounts::{self, Signup};
use crate::admin::{self, Request};
use crate::bots;
use crate::config::Config;
use crate::state::AppState;
use crate::store::Store;

/// Result of a subcommand: the error is the one line printed before exiting non-zero.
pub type CommandResult = Result<(), String>;

/// Opens the store and builds the state a command needs (refused with a
/// clear line while a server holds the data directory).
async fn open(cfg: &Config) -> Result<Arc<AppState>, String> {
    let store = Store::open_configured(cfg, None).await?;
    let state = AppState::new(cfg.clone(), store, CancellationToken::new(), Arc::default())
        .await
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(state))
}

fn close(state: Arc<AppState>) {
    if let Ok(state) = Arc::try_unwrap(state) {
        state.store.close();
    }
}

fn read_password_stdin() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err("no password on stdin".into());
    }
    Ok(password)
}

/// Options of `confab user add`.
pub struct UserAdd {
    pub username: String,
    pub admin: bool,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub password_stdin: bool,
}

/// Sends `request` to the running server's admin socket if one answers,
/// else runs it on the store directly; prints the same either way.
async fn dispatch(cfg: &Config, request: Request) -> CommandResult {
    if let Some(stream) = admin::client::connect(&cfg.data_dir)? {
        let reply = admin::client::call(stream, &request)?;
        return admin::client::print(reply);
    }
    let state = open(cfg).await?;
    let outcome = execute(&state, request).await;
    close(state);
    print!("{}", outcome?);
    Ok(())
}

/// Runs a store command on `state` (a stopped server's store opened by the
/// CLI, or the running server's own state behind the admin socket). `Ok` is
/// the text for stdout, `Err` the failure line. The export is streamed
/// instead (see [`crate::admin::listener`]).
pub async fn execute(state: &AppState, request: Request) -> Result<String, String> {
    match request {
        Request::UserAdd {
            username,
            admin,
            email,
            display_name,
            password,
        } => {
            let signup = Signup {
                username,
                password: String::new(),
                display_name,
                email,
                admin,
            };
            user_add_on(state, signup, password).await
        }
        Request::UserPasswd { username, password } => {
            user_passwd_on(state, &username, password).await
        }
        Request::UserList => user_list_on(state).await,
        Request::UserDisable { username } => user_set_disabled_on(state, &username, true).await,
        Request::UserEnable { username } => user_set_disabled_on(state, &username, false).await,
        Request::RoomAdd {
            name,
            private,
            description,
        } => room_add_on(state, &name, private, description).await,
        Request::RoomList => room_list_on(state).await,
        Request::BotAdd {
            name,
            display_name,
            webhook_url,
            all_messages,
        } => {
            let input = crate::bots::manage::BotInput {
                username: name,
                display_name,
                webhook_url,
                all_messages,
            };
            bots::cli::bot_add(state, input).await
        }
        Request::BotList => bots::cli::bot_list(state).await,
        Request::BotKey { name } => bots::cli::bot_key(state, &name).await,
        Request::BotDelete { name } => bots::cli::bot_delete(state, &name).await,
        Request::HookAdd { room, as_bot } => {
            bots::cli::hook_add(state, &room, as_bot.as_deref()).await
        }
        Request::HookList { room } => bots::cli::hook_list(state, &room).await,
        Request::HookDelete { room, id } => bots::cli::hook_delete(state, &room, &id).await,
        Request::Reindex => reindex_live(state).await,
        Request::Export => Err("the export is streamed, not run as one command".into()),
    }
}

/// `confab user add`: creates an account; prints a generated password.
pub async fn user_add(cfg: &Config, opts: UserAdd) -> CommandResult {
    let password = if opts.password_stdin {
        Some(read_password_stdin()?)
    } else {
        None
    };
    let request = Request::UserAdd {
        username: opts.username,
        admin: opts.admin,
        email: opts.email,
        display_name: opts.display_name,
        password,
    };
    dispatch(cfg, request).await
}

/// Creates the account in `signup` with `password` (generated if `None`).
async fn user_add_on(
    state: &AppState,
    mut signup: Signup,
    password: Option<String>,
) -> Result<String, String> {
    let generated = password.is_none();
    let password = password.unwrap_or_else(accounts::generate_password);
    signup.password = password.clone();
    let user = accounts::create(state, signup)
        .await
        .map_err(|e| describe(&e))?;
    let mut out = format!(
        "created user {} (id {}{})\n",
        user.username,
        user.id,
        if user.admin { ", admin" } else { "" }
    );
    if generated {
        out.push_str(&format!("password: {password}\n"));
    }
    if crate::http::api::users::welcome(state, &user).await {
        out.push_str("welcome mail queued\n");
    }
    Ok(out)
}

/// `confab user passwd`: sets a new password (revoking the user's tokens).
pub async fn user_passwd(cfg: &Config, username: &str, password_stdin: bool) -> CommandResult {
    let password = if password_stdin {
        Some(read_password_stdin()?)
    } else {
        None
    };
    let request = Request::UserPasswd {
        username: username.to_string(),
        password,
    };
    dispatch(cfg, request).await
}

async fn user_passwd_on(
    state: &AppState,
    username: &str,
    password: Option<String>,
) -> Result<String, String> {
    let generated = password.is_none();
    let password = password.unwrap_or_else(accounts::generate_password);
    let user = state
        .store
        .user_by_username(username)
        .await
        .map_err(|e| describe(&e))?
        .ok_or_else(|| format!("no user named {username:?}"))?;
    let user = accounts::set_password(state, user.id, &password)
        .await
        .map_err(|e| describe(&e))?;
    let mut out = format!(
        "password changed for {}; their older tokens are revoked\n",
        user.username
    );
    if generated {
        out.push_str(&format!("password: {password}\n"));
    }
    Ok(out)
}

/// `confab user list`.
pub async fn user_list(cfg: &Config) -> CommandResult {
    dispatch(cfg, Request::UserList).await
}

async fn user_list_on(state: &AppState) -> Result<String, String> {
    let users = state.store.users().await.map_err(|e| describe(&e))?;
    let mut out = format!(
        "{:>6}  {:<32}  {:<8}  display name\n",
        "id", "username", "flags"
    );
    for user in users {
        let flags = match (user.admin, user.disabled) {
            (true, true) => "admin,off",
            (true, false) => "admin",
            (false, true) => "disabled",
            (false, false) => "",
        };
        out.push_str(&format!(
            "{:>6}  {:<32}  {:<8}  {}\n",
            user.id, user.username, flags, user.display_name
        ));
    }
    Ok(out)
}

/// `confab user disable|enable`.
pub async fn user_set_disabled(cfg: &Config, username: &str, disabled: bool) -> CommandResult {
    let username = username.to_string();
    let request = if disabled {
        Request::UserDisable { username }
    } else {
        Request::UserEnable { username }
    };
    dispatch(cfg, request).await
}

/// Disables or enables the account; a disabled user's live sockets close.
async fn user_set_disabled_on(
    state: &AppState,
    username: &str,
    disabled: bool,
) -> Result<String, String> {
    let user = state
        .store
        .user_by_username(username)
        .await
        .map_err(|e| describe(&e))?
        .ok_or_else(|| format!("no user named {username:?}"))?;
    let user = accounts::set_disabled(state, user.id, disabled)
        .await
        .map_err(|e| describe(&e))?;
    Ok(format!(
        "user {} is now {}\n",
        user.username,
        if disabled { "disabled" } else { "enabled" }
    ))
}

/// `confab room add`: creates a room (owned by no user).
pub async fn room_add(
    cfg: &Config,
    name: &str,
    private: bool,
    description: Option<String>,
) -> CommandResult {
    if let Some(reason) = crate::http::api::rooms::room_name_problem(name) {
        return Err(format!("room name {name:?} {reason}"));
    }
    let request = Request::RoomAdd {
        name: name.to_string(),
        private,
        description,
    };
    dispatch(cfg, request).await
}

async fn room_add_on(
    state: &AppState,
    name: &str,
    private: bool,
    description: Option<String>,
) -> Result<String, String> {
    if let Some(reason) = crate::http::api::rooms::room_name_problem(name) {
        return Err(format!("room name {name:?} {reason}"));
    }
    let room = state
        .store
        .create_room(crate::store::ops::NewRoom {
            name: name.to_string(),
            private,
            description: description.unwrap_or_default(),
            owner: 0,
        })
        .await
        .map_err(|e| describe(&e))?;
    Ok(format!(
        "created {} room {} (topic room:{})\n",
        if room.private { "private" } else { "public" },
        room.name,
        room.name
    ))
}

/// `confab bot|hook ...` (and any other store command): through the
/// running server's admin socket if one answers, else on the store.
pub async fn run(cfg: &Config, request: Request) -> CommandResult {
    dispatch(cfg, request).await
}

/// `confab room list`.
pub async fn room_list(cfg: &Config) -> CommandResult {
    dispatch(cfg, Request::RoomList).await
}

async fn room_list_on(state: &AppState) -> Result<String, String> {
    let rooms = state.store.rooms().await.map_err(|e| describe(&e))?;
    let mut out = format!("{:<32}  {:<8}  description\n", "name", "access");
    for room in rooms {
        let access = if room.private { "private" } else { "public" };
        out.push_str(&format!(
            "{:<32}  {:<8}  {}\n",
            room.name, access, room.description
        ));
    }
    Ok(out)
}

/// `confab export`: the JSON Lines backup of the store, to `out` or stdout:
/// streamed from the running server's admin socket if one answers, else read
/// from the store (`database_url`'s PostgreSQL database, which a running
/// server may share, or the stopped server's data directory). Written to a
/// temporary file first so a failed export never leaves a truncated backup
/// behind.
pub async fn export(cfg: &Config, out: Option<&std::path::Path>) -> CommandResult {
    let live = admin::client::connect(&cfg.data_dir)?;
    match out {
        None => {
            let stdout = std::io::stdout();
            let mut writer = std::io::BufWriter::new(stdout.lock());
            let exit = write_export(cfg, live, &mut writer).await?;
            writer
                .flush()
                .map_err(|e| format!("cannot write the export: {e}"))?;
            admin::client::exit_if_failed(exit);
            Ok(())
        }
        Some(path) => {
            let partial = path.with_extension("partial");
            let file = std::fs::File::create(&partial)
                .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
            let mut writer = std::io::BufWriter::new(file);
            let result = write_export(cfg, live, &mut writer).await.and_then(|exit| {
                writer.flush().map_err(|e| e.to_string())?;
                writer.get_ref().sync_all().map_err(|e| e.to_string())?;
                Ok(exit)
            });
            match result {
                Ok(0) => {}
                Ok(exit) => {
                    let _ = std::fs::remove_file(&partial);
                    admin::client::exit_if_failed(exit);
                }
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e);
                }
            }
            std::fs::rename(&partial, path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            eprintln!("exported to {}", path.display());
            Ok(())
        }
    }
}

/// The export through the running server's admin socket (`live`), else
/// from the store itself; the exit code the server reported (0 offline).
async fn write_export(
    cfg: &Config,
    live: Option<std::os::unix::net::UnixStream>,
    writer: &mut dyn Write,
) -> Result<i32, String> {
    match live {
        Some(stream) => admin::client::export(stream, writer),
        None => crate::store::export_configured(cfg, writer)
            .await
            .map(|()| 0),
    }
}

/// `confab import FILE`: loads an export into an empty store: a new data
/// directory, or with `database_url` set an empty PostgreSQL database.
pub async fn import(cfg: &Config, file: &std::path::Path) -> CommandResult {
    let input =
        std::fs::File::open(file).map_err(|e| format!("cannot open {}: {e}", file.display()))?;
    let (count, location) = crate::store::import_configured(cfg, std::io::BufReader::new(input))
        .await
        .map_err(|e| format!("{}: {e}", file.display()))?;
    println!("imported {count} records into {location}");
    Ok(())
}

/// `confab reindex`: rebuilds the search index from the store: on the
/// running server through its admin socket (searches keep answering), else
/// offline.
pub async fn reindex(cfg: &Config) -> CommandResult {
    if let Some(stream) = admin::client::connect(&cfg.data_dir)? {
        let reply = admin::client::call(stream, &Request::Reindex)?;
        return admin::client::print(reply);
    }
    let store = Store::open_configured(cfg, None).await?;
    let started = std::time::Instant::now();
    let data_dir = cfg.data_dir.clone();
    let reader = store.clone();
    // The rebuild reads the store synchronously: off the runtime's threads.
    let result = tokio::task::spawn_blocking(move || crate::search::rebuild(&data_dir, reader))
        .await
        .map_err(|e| format!("the rebuild failed: {e}"))?;
    store.close();
    print!("{}", reindexed(cfg, result?, started));
    Ok(())
}

/// The running server's reindex.
async fn reindex_live(state: &AppState) -> Result<String, String> {
    let search = state
        .search
        .as_ref()
        .ok_or("the running server has no search index")?;
    let started = std::time::Instant::now();
    let count = search.rebuild_live().await?;
    Ok(reindexed(&state.cfg, count, started))
}

fn reindexed(cfg: &Config, count: u64, started: std::time::Instant) -> String {
    format!(
        "indexed {count} messages into {} in {:.1} s\n",
        crate::search::dir_of(&cfg.data_dir).display(),
        started.elapsed().as_secs_f64()
    )
}

/// `confab gen-secret`: a fresh 256-bit secret, URL-safe base64.
pub fn gen_secret() -> CommandResult {
    println!("{}", crate::auth::random_token(32));
    Ok(())
}

/// `confab healthcheck`: exit 0 if `/healthz` answers 200 within 3 s.
pub async fn healthcheck(cfg: &Config, url: Option<&str>) -> CommandResult {
    let (addr, host) = match url {
        Some(url) => parse_http_url(url)?,
        None => {
            let mut addr = cfg.listen_addr();
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            (addr, addr.to_string())
        }
    };
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("cannot send to {addr}: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("cannot read from {addr}: {e}"))?;
        let status_line = String::from_utf8_lossy(&response);
        let status = status_line.split_whitespace().nth(1).unwrap_or("");
        if status == "200" {
            Ok(())
        } else {
            Err(format!("{addr}/healthz answered {status:?}"))
        }
    };
    tokio::time::timeout(Duration::from_secs(3), probe)
        .await
        .map_err(|_| format!("{addr}/healthz did not answer within 3 s"))?
}

/// `http://host:port[/...]` → (resolved address, host header).
fn parse_http_url(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--url {url:?}: only http:// URLs are supported"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let with_port = if authority
        .rsplit(':')
        .next()
        .is_some_and(|p| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    use std::net::ToSocketAddrs;
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("--url {url:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("--url {url:?}: no address"))?;
    Ok((addr, authority.to_string()))
}

/// One line for a command's failure, with field errors spelled out.
pub(crate) fn describe(error: &crate::error::Error) -> String {
    match error {
        crate::error::Error::Validation(fields) => fields
            .iter()
            .map(|(field, reasons)| format!("{field} {}", reasons.join(", ")))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// `confab migrate`: with `database_url` set, applies the PostgreSQL schema
/// migrations and prints the schema version; the embedded store needs none.
pub async fn migrate(cfg: &Config) -> CommandResult {
    if !cfg.uses_postgres() {
        println!(
            "database_url is not set: the embedded store in {} needs no migrations",
            cfg.data_dir.display()
        );
        return Ok(());
    }
    let outcome = crate::store::postgres::prepare(cfg)
        .await
        .map_err(|e| e.to_string())?;
    if outcome.applied.is_empty() {
        println!(
            "PostgreSQL schema is up to date at version {}",
            outcome.version
        );
    } else {
        let applied: Vec<String> = outcome.applied.iter().map(i32::to_string).collect();
        println!(
            "PostgreSQL schema is at version {} (applied: {})",
            outcome.version,
            applied.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probe_urls() {
        let (addr, host) = parse_http_url("http://127.0.0.1:4000/healthz").unwrap();
        assert_eq!(addr.port(), 4000);
        assert_eq!(host, "127.0.0.1:4000");
        assert!(parse_http_url("https://x").is_err());
    }
}
